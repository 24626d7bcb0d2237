#!/usr/bin/env python3
"""A cached Debian userland for the frozen tier: `debootstrap --variant=minbase <suite>` once, reused after.

    python3 tools/rootfs.py [--suite bullseye] [--arch amd64] [--include pkg,pkg --name NAME]   # prints its path

The bundle is proven against an older glibc than the build machine's (bullseye: 2.31) by running it inside
this root (tests/netns/test_selfcontained.py). The root lives under ~/.cache/cni-rdma/rootfs/<suite>-<arch>
(CNI_RDMA_ROOTFS_CACHE overrides the parent), is built in a temporary directory and renamed into place when
debootstrap succeeded, so an interrupted build is never used; a lock serialises concurrent callers. The tests
never write into it: they bind-mount what they need in a private mount namespace.
Standard library only.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"


def cache_dir() -> Path:
    base = os.environ.get("CNI_RDMA_ROOTFS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cni-rdma", "rootfs")
    return Path(base)


def ensure(suite: str = "bullseye", arch: str = "amd64", quiet: bool = False, include: str = "",
           name: str = "") -> Path:
    """The path of a complete <suite>-<arch> root (or NAME), debootstrapping it first if there is none. A
    foreign arch (arm64 on x86) runs its second stage under qemu-user (binfmt with the F flag)."""
    top = cache_dir()
    top.mkdir(parents=True, exist_ok=True)
    name = name or f"{suite}-{arch}"
    root = top / name
    with open(top / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".cni-rdma-complete").exists():
            return root
        if not shutil.which("debootstrap"):
            sys.exit("rootfs: debootstrap is not installed (make deps)")
        tmp = top / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        cmd = ["debootstrap", "--variant=minbase", f"--arch={arch}", *([f"--include={include}"] if include else []),
               suite, str(tmp), MIRROR]
        start = time.monotonic()
        if not quiet:
            print(f"rootfs: {' '.join(cmd)} (once; cached in {root})", file=sys.stderr, flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            sys.exit(f"rootfs: debootstrap {suite} {arch} failed ({p.returncode}):\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
        # Drop the package cache (~no use here) so the root stays small.
        shutil.rmtree(tmp / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        (tmp / ".cni-rdma-complete").write_text(f"{' '.join(cmd)}\n{time.monotonic() - start:.0f} s\n")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
        if not quiet:
            print(f"rootfs: {root} ready in {time.monotonic() - start:.0f} s", file=sys.stderr)
        return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="bullseye")
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--include", default="", help="extra packages, comma-separated")
    ap.add_argument("--name", default="", help="cache entry name (default SUITE-ARCH)")
    args = ap.parse_args(argv)
    print(ensure(args.suite, args.arch, include=args.include, name=args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
