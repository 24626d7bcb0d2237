"""Prepare (once) and cache what the VM boots: Debian's kernel, its modules, extra modules, an initramfs.

Cache layout (``$CNI_RDMA_VM_CACHE``, default ``~/.cache/cni-rdma-vm``)::

    current-linux-image-amd64 -> 6.1.0-56-amd64/
                        the kernel the runner boots ($CNI_RDMA_VM_KERNEL_PKG picks another
                        package; ``setup --refresh`` resolves the package again)
    6.1.0-56-amd64/
        vmlinux         uncompressed ELF kernel: QEMU boots it directly (PVH), skipping the slow
                        in-guest decompressor; vmlinuz is the fallback
        config          the kernel's .config
        root/lib/modules/<kver>/     Debian's modules, depmod'ed, bind-mounted on /lib/modules in the guest
            extra/netdevsim.ko, extra/siw.ko    built here: Debian does not ship them
            updates/rdma_rxe.ko                 built here, patched (patches/rxe-disassociate.patch);
                                                `modprobe rdma_rxe` picks it, the stock one stays in kernel/
        initrd.img      busybox + the modules that mount the host root (virtio 9p, overlay)
        *.ok            stamps: each stage is redone when its inputs change

Every stage runs under a flock, so concurrent first runs do the work once.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from .host import VmError, apt_download, apt_field, apt_install, depends, info, installed, locked, pipeline, run

HERE = Path(__file__).resolve().parent
PATCHES = HERE / "patches"

# command -> Debian package providing it (the guest runs the host's ip/rdma/devlink/modprobe too)
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
    "modprobe": "kmod",
    "xz": "xz-utils",
    "zstd": "zstd",
    "patch": "patch",
    "ip": "iproute2",
    "rdma": "iproute2",
    "devlink": "iproute2",
}
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def cache_dir() -> Path:
    if os.environ.get("CNI_RDMA_VM_CACHE"):
        return Path(os.environ["CNI_RDMA_VM_CACHE"]).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return (Path(base) / "cni-rdma-vm").resolve()


def ensure_host_tools() -> None:
    path = f"{os.environ.get('PATH', '')}:{SBIN_PATH}"
    need = [pkg for cmd, pkg in HOST_TOOLS.items() if not shutil.which(cmd, path=path)]
    # A *static* busybox goes into the initramfs and is the guest's PID 1 after switch_root.
    if not installed("busybox-static"):
        need.append("busybox-static")
    apt_install(need)


@dataclass(frozen=True)
class Kernel:
    dir: Path
    kver: str        # 6.1.0-56-amd64
    pkgver: str      # 6.1.192-2 (Debian version of the image, headers and source packages)
    package: str     # linux-image-6.1.0-56-amd64

    @property
    def modules(self) -> Path:
        return self.dir / "root" / "lib" / "modules" / self.kver

    @property
    def boot_image(self) -> Path:
        vmlinux = self.dir / "vmlinux"
        return vmlinux if vmlinux.exists() else self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @classmethod
    def load(cls, kdir: Path) -> "Kernel":
        kdir = kdir.resolve()
        return cls(kdir, (kdir / "kver").read_text().strip(), (kdir / "pkgver").read_text().strip(),
                   (kdir / "package").read_text().strip())


def _stamp(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _stamp_ok(path: Path, stamp: str) -> bool:
    return path.exists() and path.read_text().strip() == stamp


# ---------------------------------------------------------------------------------------------
# The kernel package
# ---------------------------------------------------------------------------------------------
def resolve_image_package(pkg: str) -> str:
    """linux-image-amd64 (a meta package) -> linux-image-6.1.0-56-amd64 (the one with the files)."""
    for _ in range(4):
        nxt = [d for d in depends(pkg) if d.startswith("linux-image-")]
        if not nxt:
            return pkg
        pkg = nxt[0]
    raise VmError(f"cannot resolve kernel package {pkg}")


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF vmlinux inside a bzImage (what scripts/extract-vmlinux does), or None."""
    def xz(data: bytes) -> bytes:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)

    def gz(data: bytes) -> bytes:
        return zlib.decompressobj(wbits=31).decompress(data)

    def zstd(data: bytes) -> bytes:
        return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True).stdout

    for magic, decompress in ((b"\xfd7zXZ\x00", xz), (b"\x28\xb5\x2f\xfd", zstd), (b"\x1f\x8b\x08", gz)):
        off = bzimage.find(magic)
        while off >= 0:
            try:
                out = decompress(bzimage[off:])
            except (lzma.LZMAError, zlib.error, OSError):
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            off = bzimage.find(magic, off + 1)
    return None


def depmod(root: Path, kver: str) -> None:
    # Our own config, not the host's /etc/depmod.d: updates/ beats extra/ beats Debian's kernel/.
    conf = root / "depmod.conf"
    conf.write_text("search updates extra built-in\n")
    run(["depmod", "-C", str(conf), "-b", str(root), kver], env={**os.environ, "PATH": SBIN_PATH})


def fetch_kernel(cache: Path, meta_pkg: str, current: Path) -> Kernel:
    pkg = resolve_image_package(meta_pkg)
    ver = apt_field(pkg, "Version")
    info(f"downloading {pkg} {ver} (one-time setup into {cache})")
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix="setup."))
    (tmp / "dl").mkdir()
    debs = apt_download([f"{pkg}={ver}"], tmp / "dl")
    run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "root")])
    found = sorted((tmp / "root").glob("lib/modules/*")) + sorted((tmp / "root").glob("usr/lib/modules/*"))
    if not found:
        raise VmError(f"no lib/modules in {debs[0].name}")
    kver = found[0].name
    mods = tmp / "root" / "lib" / "modules" / kver
    if found[0] != mods:  # one fixed layout, whatever the package used
        mods.parent.mkdir(parents=True, exist_ok=True)
        found[0].rename(mods)
    depmod(tmp / "root", kver)
    boot = tmp / "root" / "boot"
    shutil.copy(boot / f"vmlinuz-{kver}", tmp / "vmlinuz")
    shutil.copy(boot / f"config-{kver}", tmp / "config")
    vmlinux = extract_vmlinux((tmp / "vmlinuz").read_bytes())
    if vmlinux:
        (tmp / "vmlinux").write_bytes(vmlinux)
    else:
        info("could not extract vmlinux from the bzImage; booting vmlinuz (slower)")
    shutil.rmtree(boot)
    shutil.rmtree(tmp / "dl")
    (tmp / "kver").write_text(kver + "\n")
    (tmp / "pkgver").write_text(ver + "\n")
    (tmp / "package").write_text(pkg + "\n")
    final = cache / kver
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    final.chmod(0o755)
    link_tmp = current.with_name(current.name + ".tmp")
    link_tmp.unlink(missing_ok=True)
    link_tmp.symlink_to(kver)
    link_tmp.replace(current)
    return Kernel.load(final)


# ---------------------------------------------------------------------------------------------
# Out-of-tree modules: built from Debian's linux-source against the matching linux-headers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtraModule:
    name: str                 # module name (what modprobe takes)
    src: str                  # directory in the kernel tree
    config: str               # Kconfig symbol set to =m for the build
    dest: str                 # lib/modules/<kver>/<dest>/<name>.ko
    patch: str | None = None  # file in tools/vm/patches, applied with patch -p1
    always: bool = False      # build even when the kernel ships the module (patched variants)


EXTRA_MODULES = (
    # Debian's kernels have CONFIG_NETDEVSIM and CONFIG_RDMA_SIW off.
    ExtraModule("netdevsim", "drivers/net/netdevsim", "CONFIG_NETDEVSIM", "extra"),
    ExtraModule("siw", "drivers/infiniband/sw/siw", "CONFIG_RDMA_SIW", "extra"),
    # Test fixture: rxe that can change netns (see the patch's header). The stock one stays in kernel/.
    ExtraModule("rdma_rxe", "drivers/infiniband/sw/rxe", "CONFIG_RDMA_RXE", "updates",
                patch="rxe-disassociate.patch", always=True),
)
MODULES_BUILD_VERSION = "1"


def _ships(k: Kernel, name: str) -> bool:
    p = subprocess.run(["modprobe", "-d", str(k.dir / "root"), "-S", k.kver, "--show-depends", name],
                       capture_output=True, text=True, env={**os.environ, "PATH": SBIN_PATH})
    return p.returncode == 0 and "/extra/" not in p.stdout and "/updates/" not in p.stdout


def build_modules(k: Kernel) -> None:
    stamp = _stamp(MODULES_BUILD_VERSION, repr(EXTRA_MODULES),
                   *[(PATCHES / m.patch).read_bytes() for m in EXTRA_MODULES if m.patch])
    if _stamp_ok(k.dir / "modules.ok", stamp):
        return
    want = [m for m in EXTRA_MODULES if m.always or not _ships(k, m.name)]
    series = ".".join(k.kver.split(".")[:2])  # 6.1
    headers = f"linux-headers-{k.kver}"
    info(f"building modules {', '.join(m.name for m in want)} from linux-source-{series} {k.pkgver}")
    tmp = Path(tempfile.mkdtemp(dir=k.dir, prefix="build."))
    try:
        (tmp / "dl").mkdir()
        hdr_deps = [d for d in depends(f"{headers}={k.pkgver}") if d.startswith(("linux-headers-", "linux-kbuild-"))]
        specs = [f"{p}={k.pkgver}" for p in (headers, *hdr_deps, f"linux-source-{series}")]
        debs = apt_download(specs, tmp / "dl")
        hdr = tmp / "hdr"
        for deb in debs:
            if deb.name.startswith(("linux-headers-", "linux-kbuild-")):
                run(["dpkg-deb", "-x", str(deb), str(hdr)])
        kbuild_dir = hdr / "usr" / "src" / headers
        # The arch headers' Makefile includes the -common one by absolute path: point it here.
        mk = kbuild_dir / "Makefile"
        mk.write_text(re.sub(r"^include /usr/src/", f"include {hdr}/usr/src/", mk.read_text(), flags=re.M))
        install_build_deps(k, debs, kbuild_dir)
        source_deb = next(d for d in debs if d.name.startswith("linux-source-"))
        top = f"linux-source-{series}"
        # Only the module directories are unpacked from the ~140 MB source tarball.
        pipeline([["dpkg-deb", "--fsys-tarfile", str(source_deb)],
                  ["tar", "-xO", "--wildcards", f"./usr/src/{top}.tar.xz"],
                  ["tar", "-xJf", "-", *[f"{top}/{m.src}" for m in want]]], cwd=tmp)
        shutil.rmtree(tmp / "dl")  # 200 MB of .debs: not needed any more
        src_root = tmp / top
        for m in want:
            if m.patch:
                run(["patch", "-p1", "--forward", "-i", str(PATCHES / m.patch)], cwd=src_root)
            mdir = src_root / m.src
            log = tmp / f"{m.name}.log"
            run(["make", "-C", str(kbuild_dir), f"M={mdir}", f"{m.config}=m", f"-j{os.cpu_count() or 1}",
                 "modules"], log=log)
            dest = k.modules / m.dest
            dest.mkdir(parents=True, exist_ok=True)
            run(["strip", "--strip-debug", "-o", str(dest / f"{m.name}.ko"), str(mdir / f"{m.name}.ko")])
            info(f"built {m.dest}/{m.name}.ko")
        depmod(k.dir / "root", k.kver)
        (k.dir / "modules.ok").write_text(stamp + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install_build_deps(k: Kernel, debs: list[Path], kbuild_dir: Path) -> None:
    """The compiler the kernel was built with (gcc-12 for 6.1), make, binutils, what kbuild links."""
    gcc = None
    variables = kbuild_dir / ".kernelvariables"
    if variables.exists():
        found = re.search(r"\bgcc-\d+\b", variables.read_text())
        gcc = found.group(0) if found else None
    need = [gcc or "gcc", "make", "binutils"]
    for deb in debs:
        if deb.name.startswith("linux-kbuild-"):
            deps = run(["dpkg-deb", "-f", str(deb), "Depends"])
            need += [d.split("|")[0].strip().split(" ")[0] for d in deps.split(",") if d.strip()]
    apt_install(need)


# ---------------------------------------------------------------------------------------------
# The initramfs: busybox + the modules needed to mount the host root; /init hands over to the
# per-run stage2 script (tools/vm/run.py) found on the run share.
# ---------------------------------------------------------------------------------------------
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

INIT = r"""#!/bin/busybox sh
# cni-rdma VM initramfs: mount the host's / (9p, read-only, cached) under a tmpfs overlay, a fresh
# /run, the per-run share on /run/vm, then switch_root and run the per-run stage2.sh.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
fail() { echo "vm init: $*"; reboot -f; }
while read -r m; do insmod "/modules/$m" || fail "insmod $m"; done </modules/order
p9='trans=virtio,version=9p2000.L,msize=512000'
mount -t 9p -o "$p9,ro,cache=loose" hostroot /mnt/lower || fail "mount hostroot"
mount -t tmpfs -o mode=755 upper /mnt/upper
mkdir -p /mnt/upper/u /mnt/upper/w
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/upper/u,workdir=/mnt/upper/w overlay /newroot \
    || fail "mount overlay"
mount -t tmpfs -o mode=755,nosuid,nodev run /newroot/run
mkdir -p /newroot/run/vm
mount -t 9p -o "$p9,cache=mmap" vmrun /newroot/run/vm || fail "mount vmrun"
[ -f /newroot/run/vm/stage2.sh ] || fail "no stage2.sh"
umount /proc /sys
exec switch_root /newroot /bin/busybox sh /run/vm/stage2.sh
"""


def cpio_newc(entries: list[tuple[str, int, bytes, int]]) -> bytes:
    """A "newc" cpio archive (what the kernel unpacks as initramfs): (name, mode, data, rdev)."""
    out = bytearray()

    def pad():
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", 0)], start=1):
        nb = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(nb), 0)
        out += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + nb
        pad()
        out += data
        pad()
    return bytes(out)


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=True).stdout
    if path.suffix == ".gz":
        return zlib.decompress(data, wbits=31)
    return data


def build_initramfs(k: Kernel) -> None:
    busybox = Path("/bin/busybox").read_bytes()
    stamp = _stamp(INIT, repr(BOOT_MODULES), hashlib.sha256(busybox).hexdigest())
    if _stamp_ok(k.dir / "initrd.ok", stamp) and k.initrd.exists():
        return
    # insmod lines in dependency order ("builtin" ones need nothing); busybox insmod wants plain .ko
    order: list[Path] = []
    for name in BOOT_MODULES:
        out = run(["modprobe", "-d", str(k.dir / "root"), "-S", k.kver, "--show-depends", name],
                  env={**os.environ, "PATH": SBIN_PATH})
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == ["insmod"] and Path(parts[1]) not in order:
                order.append(Path(parts[1]))
    d, x, f = 0o040755, 0o100755, 0o100644
    entries = [(p, d, b"", 0) for p in ("bin", "dev", "proc", "sys", "mnt", "mnt/lower", "mnt/upper",
                                        "newroot", "modules")]
    entries.append(("dev/console", 0o020600, b"", (5 << 8) | 1))
    entries.append(("bin/busybox", x, busybox, 0))
    entries.append(("init", x, INIT.encode(), 0))
    names = []
    for path in order:
        name = path.name.split(".ko")[0] + ".ko"
        names.append(name)
        entries.append((f"modules/{name}", f, _read_module(path), 0))
    entries.append(("modules/order", f, "".join(n + "\n" for n in names).encode(), 0))
    tmp = k.initrd.with_suffix(".tmp")
    tmp.write_bytes(cpio_newc(entries))  # uncompressed: nothing to inflate under emulation
    tmp.replace(k.initrd)
    (k.dir / "initrd.ok").write_text(stamp + "\n")


# ---------------------------------------------------------------------------------------------
def prepare(refresh: bool = False) -> Kernel:
    """Return a ready kernel, setting up (or completing) the cache first when needed."""
    ensure_host_tools()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / ".lock"):
        for leftover in [*cache.glob("setup.*"), *cache.glob("*/build.*")]:  # interrupted setups
            shutil.rmtree(leftover, ignore_errors=True)
        meta = os.environ.get("CNI_RDMA_VM_KERNEL_PKG", "linux-image-amd64")
        current = cache / f"current-{meta}"
        if not refresh and (current / "kver").exists() and (current / "vmlinuz").exists():
            k = Kernel.load(current)
        else:
            k = fetch_kernel(cache, meta, current)
        build_modules(k)
        build_initramfs(k)
    return k
