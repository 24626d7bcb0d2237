#!/usr/bin/env python3
"""`make build-arm64`: the self-contained bundle for aarch64, built in a debootstrap'd Debian bookworm arm64
userland under qemu-user (Debian's qemu-user-static + binfmt-support; the binfmt entry's F flag lets chroots
run arm64 programs without a qemu binary inside them).

    python3 tools/arm64.py build            # -> build/arm64/cni-rdma, build/arm64/frozen-bin
    python3 tools/arm64.py pytest ARGS…     # pytest inside the arm64 userland (its own Python), e.g. tests/unit

The build root (~/.cache/cni-rdma/rootfs/bookworm-arm64-build: python3, libpython3.11, binutils, patchelf)
is debootstrapped once; a venv in it (/opt/venv) gets requirements-dev.txt from PyPI once. The source tree is
bind-mounted read-only at /src in a private mount namespace; the bundle is built into the root's /out by the
same tools/build_bundle.py (so: the same self-contained layout, the arm64 glibc 2.36 and loader
ld-linux-aarch64.so.1 inside), then copied to build/arm64/. Run the frozen tier's empty-root tests on it with
CNI_TEST_BIN_DIR=build/arm64/frozen-bin (the installer and the chroot run it through binfmt). Not in `make test`.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools import rootfs  # noqa: E402

PACKAGES = "python3,python3-venv,python3-pip,libpython3.11,libpython3.11-dev,gcc,libc6-dev,binutils,patchelf,ca-certificates,iproute2"
OUT = ROOT / "build" / "arm64"


def check_binfmt() -> None:
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not entry.exists():
        if not Path("/proc/sys/fs/binfmt_misc/register").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], check=False)
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=False, capture_output=True)
    if not entry.exists():
        sys.exit("arm64: no qemu-aarch64 binfmt entry (apt-get install qemu-user-static binfmt-support)")
    flags = [line.split(":", 1)[1].strip() for line in entry.read_text().splitlines() if line.startswith("flags:")]
    if not flags or "F" not in flags[0]:
        sys.exit(f"arm64: the qemu-aarch64 binfmt entry lacks the F flag ({flags}): chroots cannot run arm64")


def build_root() -> Path:
    check_binfmt()
    return rootfs.ensure("bookworm", "arm64", include=PACKAGES, name="bookworm-arm64-build")


def in_root(root: Path, script: str, env: dict | None = None, timeout: float = 7200) -> subprocess.CompletedProcess:
    """`script` (sh) chrooted into the arm64 root: private mount ns, /proc /dev /sys, source at /src (ro)."""
    r = shlex.quote(str(root))
    src = root / "src"
    src.mkdir(exist_ok=True)
    shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")  # pip reaches PyPI
    # This machine's CA bundle (a TLS-inspecting proxy's CA may be in it) for pip, and pip's index settings.
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", root / "etc" / "ssl" / "host-ca.crt")
    passed = {k: v for k, v in os.environ.items() if k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTPS_PROXY",
                                                            "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY")}
    setup = "; ".join([
        "set -e", f"mount --rbind /proc {r}/proc", f"mount --rbind /sys {r}/sys", f"mount --rbind /dev {r}/dev",
        f"mount --bind {shlex.quote(str(ROOT))} {r}/src", f"mount -o remount,bind,ro {r}/src",
        f'exec chroot {r} /bin/sh -c "$1"'])
    full_env = {"PATH": "/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
                "PIP_CERT": "/etc/ssl/host-ca.crt", **passed, **(env or {})}
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, "sh", script],
                          env=full_env, timeout=timeout)


def ensure_venv(root: Path) -> None:
    stamp = root / "opt" / "venv" / ".cni-rdma-requirements"
    want = (ROOT / "requirements-dev.txt").read_text()
    if stamp.exists() and stamp.read_text() == want:
        return
    p = in_root(root, "python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --disable-pip-version-check "
                      "-r /src/requirements-dev.txt")
    if p.returncode != 0:
        sys.exit("arm64: pip install in the arm64 root failed")
    stamp.write_text(want)


def build() -> int:
    root = build_root()
    ensure_venv(root)
    out = root / "out"
    if out.exists():
        shutil.rmtree(out)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    p = in_root(root, "cd /src && python3 tools/build_bundle.py --out /out", env={"CNI_RDMA_COMMIT": commit})
    if p.returncode != 0:
        return 1
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    shutil.copytree(out / "cni-rdma", OUT / "cni-rdma", symlinks=True)
    shutil.copytree(out / "frozen-bin", OUT / "frozen-bin", symlinks=True)
    # The build's PT_INTERP is the root's /out/…: point it at the copy here (the installer's own rewrite),
    # so build/arm64/frozen-bin runs on this machine through binfmt like build/frozen-bin.
    from cni_rdma.installer import loader_path, set_interp

    set_interp(str(OUT / "cni-rdma" / "cni-rdma"), loader_path(str(OUT / "cni-rdma"), str(OUT / "cni-rdma")))
    print(f"arm64 bundle in {OUT.relative_to(ROOT)}/cni-rdma "
          f"({sum(f.lstat().st_size for f in (OUT / 'cni-rdma').rglob('*') if not f.is_dir()) / 1e6:.1f} MB)")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        return build()
    if argv[:1] == ["pytest"]:
        root = build_root()
        ensure_venv(root)
        args = " ".join(shlex.quote(a) for a in argv[1:])
        return in_root(root, f"cd /src && python3 -m pytest -p no:cacheprovider {args}",
                       env={"PYTHONDONTWRITEBYTECODE": "1"}).returncode
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
