#!/usr/bin/env python3
"""Install or remove the frozen cni-rdma bundle: `make install` / `make uninstall`, and the DaemonSet's installer.

install: copy the onedir bundle to LIB_DIR (e.g. /opt/cni/lib/cni-rdma) and create one symlink per plugin
type (listed in the bundle's TYPES file) in BIN_DIR (e.g. /opt/cni/bin) pointing at LIB_DIR/cni-rdma. A
regular file of the same name -- typically the Go reference plugin from containernetworking-plugins -- is
left alone unless --force (or FORCE=1 in the environment, as deploy/daemonset.yaml sets it). DESTDIR is prepended to every path written but not to the symlinks' targets, so
`--destdir /host` inside a container with the host's /opt mounted at /host/opt yields links valid on the host.

uninstall: remove the symlinks in BIN_DIR that point into LIB_DIR, then LIB_DIR. Nothing else is touched.
Standard library only; Python >= 3.8.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

EXE = "cni-rdma"


def _under(destdir: str, path: str) -> str:
    return os.path.join(destdir, path.lstrip("/")) if destdir else path


def _types(bundle: str) -> list[str]:
    with open(os.path.join(bundle, "TYPES")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _copy_bundle(bundle: str, lib: str) -> None:
    """Copy next to the target, then swap it in with two renames: a running plugin never sees half a bundle."""
    parent = os.path.dirname(lib.rstrip("/"))
    os.makedirs(parent, exist_ok=True)
    new, old = f"{lib}.new.{os.getpid()}", f"{lib}.old.{os.getpid()}"
    shutil.copytree(bundle, new, symlinks=True)
    if os.path.lexists(lib):
        os.rename(lib, old)
    os.rename(new, lib)
    if os.path.lexists(old):
        shutil.rmtree(old)


def _link(link: str, target: str) -> None:
    tmp = f"{os.path.dirname(link)}/.{os.path.basename(link)}.cni-rdma.{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)  # atomic: the name always resolves to a plugin


def install(args: argparse.Namespace) -> int:
    bundle = os.path.abspath(args.bundle)
    if not os.path.isfile(os.path.join(bundle, EXE)):
        print(f"install: no bundle at {bundle} (run `make build`)", file=sys.stderr)
        return 1
    types = _types(bundle)
    lib, bin_dir = _under(args.destdir, args.lib_dir), _under(args.destdir, args.bin_dir)
    target = os.path.join(args.lib_dir, EXE)  # the path as seen on the final system

    # Check every name before changing anything: all or nothing.
    blocked = [t for t in types
               if os.path.lexists(os.path.join(bin_dir, t)) and not os.path.islink(os.path.join(bin_dir, t))]
    force = args.force or os.environ.get("FORCE", "").lower() in ("1", "true", "yes")
    if blocked and not force:
        for t in blocked:
            print(f"install: {os.path.join(bin_dir, t)} exists and is not a symlink: probably the Go reference "
                  f"plugin (containernetworking-plugins) or another vendor's {t}.", file=sys.stderr)
        print("install: nothing changed; to replace those files with cni-rdma run again with FORCE=1 "
              "(make install FORCE=1, or --force).", file=sys.stderr)
        return 1

    _copy_bundle(bundle, lib)
    os.makedirs(bin_dir, exist_ok=True)
    for t in types:
        link = os.path.join(bin_dir, t)
        if t in blocked:
            print(f"install: replacing {link} (was a regular file) -- FORCE")
        elif os.path.islink(link) and os.readlink(link) != target:
            print(f"install: replacing symlink {link} -> {os.readlink(link)}")
        _link(link, target)
    print(f"installed {lib} and {len(types)} plugins in {bin_dir}: {', '.join(types)}")
    if not args.destdir:
        p = subprocess.run([os.path.join(bin_dir, types[0]), "--version"], capture_output=True, text=True)
        sys.stdout.write(p.stdout)
        if p.returncode != 0:
            print(f"install: {types[0]} --version failed: {p.stderr.strip()}", file=sys.stderr)
            return 1
    return 0


def uninstall(args: argparse.Namespace) -> int:
    lib, bin_dir = _under(args.destdir, args.lib_dir), _under(args.destdir, args.bin_dir)
    prefix = args.lib_dir.rstrip("/") + "/"
    removed = []
    if os.path.isdir(bin_dir):
        for name in sorted(os.listdir(bin_dir)):
            link = os.path.join(bin_dir, name)
            if os.path.islink(link) and os.readlink(link).startswith(prefix):
                os.unlink(link)
                removed.append(name)
    if os.path.isdir(lib):
        shutil.rmtree(lib)
    print(f"uninstalled {lib}; removed links in {bin_dir}: {', '.join(removed) or 'none'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("install", "uninstall"))
    p.add_argument("--bundle", default="build/cni-rdma", help="the onedir bundle (install)")
    p.add_argument("--lib-dir", default="/opt/cni/lib/cni-rdma")
    p.add_argument("--bin-dir", default="/opt/cni/bin")
    p.add_argument("--destdir", default="")
    p.add_argument("--force", action="store_true", help="replace regular files of the same name (or FORCE=1)")
    args = p.parse_args(argv)
    for d in (args.lib_dir, args.bin_dir):
        if not os.path.isabs(d):
            p.error(f"{d}: directories must be absolute (they are the symlinks' targets)")
    return install(args) if args.action == "install" else uninstall(args)


if __name__ == "__main__":
    sys.exit(main())
