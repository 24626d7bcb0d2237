"""A fake sysfs PCI tree for SR-IOV tests: PF/VF device dirs, physfn, virtfnN, net/<ifname>, driver.

There is no SR-IOV hardware here, so the *PCI topology* is the one thing the tests invent; the
netdevs it names are real links (veth ends on the host tier, netdevsim PF + dummy VFs in the VM).
Shaped like the real thing: devices live under devices/pci<domain>:00/, bus/pci/devices/<addr>
are symlinks to them, class/net/<ifname> links back. Point plugins at it with CNI_RDMA_SYSFS_ROOT.

The kernel keeps the real net/ directories up to date as netdevs come and go; here the test does
it (`set_netdev`) where a scenario needs sysfs to reflect a move.
"""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path


class FakePci:
    def __init__(self, root: str | Path | None = None, domain: int | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="crn-sysfs-"))
        # A random PCI domain keeps state records (named by PCI address) of parallel tests apart.
        self.domain = domain if domain is not None else random.randrange(0x1000, 0xFFFF)
        self.bridge = self.root / "devices" / f"pci{self.domain:04x}:00"
        for d in (self.bridge, self.root / "bus" / "pci" / "devices", self.root / "bus" / "pci" / "drivers",
                  self.root / "class" / "net"):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict:
        return {"CNI_RDMA_SYSFS_ROOT": str(self.root)}

    def addr(self, bus: int, dev: int, fn: int) -> str:
        return f"{self.domain:04x}:{bus:02x}:{dev:02x}.{fn}"

    def dev_dir(self, addr: str) -> Path:
        return self.bridge / addr

    def _device(self, addr: str) -> Path:
        d = self.dev_dir(addr)
        d.mkdir(parents=True, exist_ok=True)
        (d / "net").mkdir(exist_ok=True)
        link = self.root / "bus" / "pci" / "devices" / addr
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(d, link.parent))
        return d

    def add_pf(self, addr: str, netdev: str | None, driver: str = "fake_pf", totalvfs: int = 8,
               offset: int | None = None, stride: int | None = None) -> str:
        """A PF; with offset/stride it also has sriov_offset/sriov_stride (VF N at routing ID PF + offset +
        N * stride, as the kernel reports them), which the tree does not check against add_vf's addresses."""
        d = self._device(addr)
        (d / "sriov_totalvfs").write_text(f"{totalvfs}\n")
        (d / "sriov_numvfs").write_text("0\n")
        for name, value in (("sriov_offset", offset), ("sriov_stride", stride)):
            if value is not None:
                (d / name).write_text(f"{value}\n")
        self.set_driver(addr, driver)
        if netdev:
            self.set_netdev(addr, netdev)
        return addr

    def add_vf(self, pf: str, vf_id: int, addr: str, netdev: str | None, driver: str | None = "fake_vf") -> str:
        d = self._device(addr)
        (d / "physfn").symlink_to(f"../{pf}")
        (self.dev_dir(pf) / f"virtfn{vf_id}").symlink_to(f"../{addr}")
        numvfs = self.dev_dir(pf) / "sriov_numvfs"
        numvfs.write_text(f"{max(int(numvfs.read_text()), vf_id + 1)}\n")
        self.set_driver(addr, driver)
        if netdev:
            self.set_netdev(addr, netdev)
        return addr

    def add_plain(self, addr: str, netdev: str | None = None, driver: str = "fake_nic") -> str:
        """A PCI function that is neither PF nor VF."""
        self._device(addr)
        self.set_driver(addr, driver)
        if netdev:
            self.set_netdev(addr, netdev)
        return addr

    def set_driver(self, addr: str, driver: str | None) -> None:
        link = self.dev_dir(addr) / "driver"
        if link.is_symlink():
            link.unlink()
        if driver:
            drv = self.root / "bus" / "pci" / "drivers" / driver
            drv.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(drv, link.parent))

    def set_netdev(self, addr: str, netdev: str | None) -> None:
        """What the kernel does when the function's netdev appears, is renamed or leaves this netns."""
        net = self.dev_dir(addr) / "net"
        for old in list(net.iterdir()):
            shutil.rmtree(old)
            cls = self.root / "class" / "net" / old.name
            if cls.is_symlink():
                cls.unlink()
        if netdev:
            (net / netdev).mkdir()
            (net / netdev / "device").symlink_to(f"../../../{addr}")
            (self.root / "class" / "net" / netdev).symlink_to(os.path.relpath(net / netdev, self.root / "class" / "net"))

    def set_ids(self, addr: str, vendor: int, device: int) -> None:
        """The function's PCI vendor and device IDs (what lspci -n and device plugin selectors read)."""
        (self.dev_dir(addr) / "vendor").write_text(f"0x{vendor:04x}\n")
        (self.dev_dir(addr) / "device").write_text(f"0x{device:04x}\n")

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
