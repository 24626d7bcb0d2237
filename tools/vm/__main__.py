"""cni-rdma VM runner: run a command inside a QEMU guest booted with Debian's kernel.

    python -m tools.vm setup [--refresh]       download + prepare the kernel, modules, initramfs
    python -m tools.vm run [options] -- CMD...   run CMD as root in a fresh VM (setup first if needed)
    python -m tools.vm info                    where the cache is, which kernel is prepared

`make test-vm` is `python -m tools.vm run -- .venv/bin/python -m pytest tests/vm $(VM_PYTEST_ARGS)`.
Exit status: CMD's own; 124 timeout; 125 VM or setup failure. See DEVELOPERS.md "VM tier".

Environment (all optional; options win):
    CNI_RDMA_VM_CACHE       cache dir (default ~/.cache/cni-rdma-vm)
    CNI_RDMA_VM_KERNEL_PKG  kernel package (default linux-image-amd64)
    CNI_RDMA_VM_TIMEOUT     seconds before the VM is killed (default 1800)
    CNI_RDMA_VM_MEM         guest MiB (default 2048)
    CNI_RDMA_VM_CPUS        guest vCPUs (default: host cores, at most 4)
    CNI_RDMA_VM_APPEND      extra kernel command line (added to the defaults, see run.BASE_APPEND)
    CNI_RDMA_VM_ACCEL       auto | kvm | tcg (default auto: kvm only when really usable)
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from . import host
from .host import VmError
from .prepare import cache_dir, prepare
from .run import BASE_APPEND, run_in_vm


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    ap = argparse.ArgumentParser(prog="python -m tools.vm", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup", help="prepare the cached kernel, modules and initramfs")
    s.add_argument("--refresh", action="store_true", help="resolve and download the kernel package again")
    sub.add_parser("info", help="show the cache and the prepared kernel")
    r = sub.add_parser("run", help="run a command in a fresh VM")
    r.add_argument("--timeout", type=float, default=float(env("CNI_RDMA_VM_TIMEOUT", 1800)))
    r.add_argument("--mem", type=int, default=int(env("CNI_RDMA_VM_MEM", 2048)), help="guest MiB")
    r.add_argument("--cpus", type=int, default=int(env("CNI_RDMA_VM_CPUS", min(os.cpu_count() or 1, 4))))
    r.add_argument("--append", default=env("CNI_RDMA_VM_APPEND", ""),
                   help=f"extra kernel command line (always: {BASE_APPEND})")
    r.add_argument("--accel", choices=("auto", "kvm", "tcg"), default=env("CNI_RDMA_VM_ACCEL", "auto"))
    r.add_argument("--rw", action="append", default=[], metavar="PATH",
                   help="also share PATH read-write (the repo always is)")
    r.add_argument("--keep", action="store_true", help="keep the run directory (console log etc.)")
    r.add_argument("--retry", type=int, default=int(env("CNI_RDMA_VM_RETRY", 0)),
                   help="boot again, up to N times, when the VM itself failed (125: no result from the command, "
                        "e.g. a hung guest kernel); the command's own failures are never retried")
    r.add_argument("-v", "--verbose", action="store_true", help="stream the guest console too")
    r.add_argument("-q", "--quiet", action="store_true", help="no messages from the runner")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    a = ap.parse_args(argv)
    host.QUIET = getattr(a, "quiet", False)

    def terminated(signum, frame):  # unwind (QEMU killed, run dir removed) instead of dying on the spot
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGHUP, terminated)

    try:
        if a.cmd == "info":
            print(f"cache: {cache_dir()}")
            for link in sorted(cache_dir().glob("current-*")):
                print(f"{link.name} -> {os.readlink(link)}")
            return 0
        started = time.monotonic()
        k = prepare(refresh=getattr(a, "refresh", False))
        if time.monotonic() - started > 5:
            host.info(f"setup took {time.monotonic() - started:.0f}s")
        if a.cmd == "setup":
            host.info(f"ready: {k.kver} ({k.package} {k.pkgver}) in {k.dir}")
            return 0
        command = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not command:
            ap.error("run: no command (python -m tools.vm run -- CMD ...)")
        for attempt in range(a.retry + 1):
            rc = run_in_vm(k, command, rw=a.rw, timeout=a.timeout, mem=a.mem, cpus=a.cpus, append=a.append,
                           accel=a.accel, verbose=a.verbose, keep=a.keep)
            if rc != 125 or attempt == a.retry:
                return rc
            host.warn(f"the VM failed (not the command): booting again ({attempt + 1} of {a.retry})")
        return rc
    except VmError as e:
        print(f"vm: error: {e}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
