"""Install or remove the frozen cni-rdma bundle: `cni-rdma install|uninstall …`, `make install`, the DaemonSet.

install: copy the onedir bundle to LIB_DIR (e.g. /opt/cni/lib/cni-rdma) and create one symlink per plugin
type (listed in the bundle's TYPES file) in BIN_DIR (e.g. /opt/cni/bin) pointing at LIB_DIR/cni-rdma. A
regular file of the same name -- typically the Go reference plugin from containernetworking-plugins -- is
left alone unless --force (or FORCE=1 in the environment, as deploy/daemonset.yaml can set it). DESTDIR is
prepended to every path written but not to the symlinks' targets nor to the loader path below, so
`--destdir /host` inside a container with the host's /opt/cni mounted at /host/opt/cni yields a bundle that
runs on the host.

Relocation: the bundle carries its own glibc, and the kernel finds a program's loader by the ABSOLUTE path in
its ELF PT_INTERP header -- there is no "$ORIGIN" for it. The build reserves INTERP_RESERVED bytes for that
path; install rewrites it, in the copy, to LIB_DIR/_internal/lib/<loader> (the path as seen on the final
system) before the copy is swapped in. A LIB_DIR whose loader path does not fit is refused before anything
changes. A bundle copied by hand (cp -a) to another place does not start (execve: "No such file or
directory"): install it with this command instead.

uninstall: remove the symlinks in BIN_DIR that point into LIB_DIR, then LIB_DIR. Nothing else is touched.
Standard library only (it runs from the frozen bundle, from tools/install.py, and under any Python >= 3.8).
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys

EXE = "cni-rdma"
LOADER_DIR = "_internal/lib"  # the bundled glibc loader and libc (tools/build_bundle.py puts them there)
INTERP_RESERVED = 512  # bytes of PT_INTERP the build reserves, NUL included
_PT_INTERP = 3


class InstallError(Exception):
    """The installer refuses: the message says why and what to do; nothing was changed."""


def _under(destdir: str, path: str) -> str:
    return os.path.join(destdir, path.lstrip("/")) if destdir else path


def _types(bundle: str) -> list[str]:
    with open(os.path.join(bundle, "TYPES")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def interp_segment(exe: str) -> tuple[int, int, str]:
    """(file offset, size, path) of an ELF executable's PT_INTERP; InstallError if it has none."""
    with open(exe, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
            raise InstallError(f"{exe}: not an ELF executable")
        is64, end = head[4] == 2, "<" if head[5] == 1 else ">"
        if is64:
            phoff, = struct.unpack_from(end + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        else:
            phoff, = struct.unpack_from(end + "I", head, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        for i in range(phnum):
            ph = table[i * phentsize:(i + 1) * phentsize]
            if is64:
                p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(end + "IIQQQQ", ph)
            else:
                p_type, p_offset, _, _, p_filesz = struct.unpack_from(end + "IIIII", ph)
            if p_type == _PT_INTERP:
                f.seek(p_offset)
                raw = f.read(p_filesz)
                return p_offset, p_filesz, raw.split(b"\0", 1)[0].decode()
    raise InstallError(f"{exe}: has no ELF interpreter (PT_INTERP)")


def set_interp(exe: str, path: str) -> None:
    """Rewrite the executable's PT_INTERP in place to `path`, NUL-padded to the segment's reserved size."""
    offset, size, _ = interp_segment(exe)
    raw = path.encode()
    if b"\0" in raw or not path.startswith("/"):
        raise InstallError(f"{path!r}: the loader path must be absolute")
    if len(raw) + 1 > size:
        raise InstallError(f"{exe}: the loader path {path!r} is {len(raw)} bytes; this bundle has room for "
                           f"{size - 1}: install it under a shorter --lib-dir")
    with open(exe, "r+b") as f:
        f.seek(offset)
        f.write(raw.ljust(size, b"\0"))


def bundled_loader(bundle: str) -> str | None:
    """The name of the bundle's own ELF loader (ld-linux-*.so.*), or None for a bundle using the node's glibc."""
    d = os.path.join(bundle, LOADER_DIR)
    if not os.path.isdir(d):
        return None
    names = sorted(n for n in os.listdir(d) if n.startswith("ld-linux"))
    return names[0] if names else None


def loader_path(bundle: str, lib_dir: str) -> str | None:
    """The PT_INTERP the bundle needs once installed in lib_dir (None: it has no loader of its own)."""
    name = bundled_loader(bundle)
    return None if name is None else f"{lib_dir.rstrip('/')}/{LOADER_DIR}/{name}"


def copy_bundle(bundle: str, lib: str, interp: str | None) -> None:
    """Copy next to the target, point the copy's loader at its final place, then swap it in with two renames:
    a running plugin never sees half a bundle."""
    parent = os.path.dirname(lib.rstrip("/"))
    os.makedirs(parent, exist_ok=True)
    new, old = f"{lib}.new.{os.getpid()}", f"{lib}.old.{os.getpid()}"
    for stale in (new, old):
        if os.path.lexists(stale):
            shutil.rmtree(stale)
    shutil.copytree(bundle, new, symlinks=True)
    if interp is not None:
        set_interp(os.path.join(new, EXE), interp)
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


def _forced(flag: bool) -> bool:
    return flag or os.environ.get("FORCE", "").lower() in ("1", "true", "yes")


def install(bundle: str, lib_dir: str, bin_dir: str, destdir: str = "", force: bool = False) -> int:
    bundle = os.path.abspath(bundle)
    if not os.path.isfile(os.path.join(bundle, EXE)):
        raise InstallError(f"no bundle at {bundle} (run `make build`)")
    types = _types(bundle)
    lib, bin_path = _under(destdir, lib_dir), _under(destdir, bin_dir)
    target = os.path.join(lib_dir, EXE)  # the path as seen on the final system
    interp = loader_path(bundle, lib_dir)
    if interp is not None:
        _, size, _ = interp_segment(os.path.join(bundle, EXE))
        if len(interp.encode()) + 1 > size:
            raise InstallError(f"--lib-dir {lib_dir}: the bundle's loader path there ({interp}, "
                               f"{len(interp.encode())} bytes) does not fit the {size - 1} bytes the executable "
                               "reserves for it: choose a shorter --lib-dir (PREFIX)")

    # Check every name before changing anything: all or nothing.
    blocked = [t for t in types
               if os.path.lexists(os.path.join(bin_path, t)) and not os.path.islink(os.path.join(bin_path, t))]
    if blocked and not _forced(force):
        msg = [f"{os.path.join(bin_path, t)} exists and is not a symlink: probably the Go reference plugin "
               f"(containernetworking-plugins) or another vendor's {t}." for t in blocked]
        msg.append("nothing changed; to replace those files with cni-rdma run again with FORCE=1 "
                   "(make install FORCE=1, or --force).")
        raise InstallError("\ninstall: ".join(msg))

    copy_bundle(bundle, lib, interp)
    os.makedirs(bin_path, exist_ok=True)
    for t in types:
        link = os.path.join(bin_path, t)
        if t in blocked:
            print(f"install: replacing {link} (was a regular file) -- FORCE")
        elif os.path.islink(link) and os.readlink(link) != target:
            print(f"install: replacing symlink {link} -> {os.readlink(link)}")
        _link(link, target)
    where = f" (loader {interp})" if interp else ""
    print(f"installed {lib}{where} and {len(types)} plugins in {bin_path}: {', '.join(types)}")
    if not destdir:  # the installed copy must start where it is: prove it
        p = subprocess.run([os.path.join(bin_path, types[0]), "--version"], capture_output=True, text=True)
        sys.stdout.write(p.stdout)
        if p.returncode != 0:
            print(f"install: {types[0]} --version failed: {p.stderr.strip()}", file=sys.stderr)
            return 1
    sys.stdout.flush()
    return 0


def uninstall(lib_dir: str, bin_dir: str, destdir: str = "") -> int:
    lib, bin_path = _under(destdir, lib_dir), _under(destdir, bin_dir)
    prefix = lib_dir.rstrip("/") + "/"
    removed = []
    if os.path.isdir(bin_path):
        for name in sorted(os.listdir(bin_path)):
            link = os.path.join(bin_path, name)
            if os.path.islink(link) and os.readlink(link).startswith(prefix):
                os.unlink(link)
                removed.append(name)
    if os.path.isdir(lib):
        shutil.rmtree(lib)
    print(f"uninstalled {lib}; removed links in {bin_path}: {', '.join(removed) or 'none'}")
    return 0


def default_bundle() -> str:
    """The running bundle when frozen (`cni-rdma install` copies itself), else build/cni-rdma."""
    if getattr(sys, "frozen", False):
        return os.path.dirname(os.path.realpath(sys.executable))
    return "build/cni-rdma"


def main(argv: list[str] | None = None, prog: str = "cni-rdma") -> int:
    """argv: [install|uninstall, options…] (without the program name)."""
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("install", "uninstall"))
    p.add_argument("--bundle", default=default_bundle(), help="the onedir bundle (install; default: %(default)s)")
    p.add_argument("--lib-dir", default="/opt/cni/lib/cni-rdma")
    p.add_argument("--bin-dir", default="/opt/cni/bin")
    p.add_argument("--destdir", default="")
    p.add_argument("--force", action="store_true", help="replace regular files of the same name (or FORCE=1)")
    args = p.parse_args(argv)
    for d in (args.lib_dir, args.bin_dir):
        if not os.path.isabs(d):
            p.error(f"{d}: directories must be absolute (they are the symlinks' targets)")
    try:
        if args.action == "install":
            return install(args.bundle, args.lib_dir, args.bin_dir, args.destdir, args.force)
        return uninstall(args.lib_dir, args.bin_dir, args.destdir)
    except (InstallError, OSError) as e:
        print(f"{args.action}: {e}", file=sys.stderr)
        return 1
