"""PCI and netdev topology read from sysfs (standard library only, read-only).

Every lookup goes through a `Sysfs` value whose `root` is "/sys" on a node and a fake tree in
tests (`Sysfs.from_env()` reads CNI_RDMA_SYSFS_ROOT). The value is immutable and carries no
cache: sysfs is the cache. Lookups that find nothing return None / empty; only a malformed PCI
address is a user error, and callers word their own errors (they know which config key it was).

Layout relied on (Documentation/ABI/testing/sysfs-bus-pci, sysfs-class-net):
    bus/pci/devices/<addr>/physfn        -> ../<pf addr>      (present only on a VF)
    bus/pci/devices/<addr>/virtfn<N>     -> ../<vf addr>      (on a PF, one per VF)
    bus/pci/devices/<addr>/net/<ifname>/                      (netdevs of this function, host netns)
    bus/pci/devices/<addr>/driver        -> .../drivers/<name> (absent when unbound)
    bus/pci/devices/<addr>/sriov_numvfs, sriov_totalvfs       (on a PF)
    bus/pci/devices/<addr>/sriov_offset, sriov_stride         (on a PF: where its VFs sit, see vf_id)
    class/net/<ifname>/device            -> the PCI function behind a netdev
    bus/pci/devices/<addr>/infiniband/<rdma dev>/             (RDMA devices of a function, this netns)
    bus/auxiliary/devices/<name>/infiniband/<rdma dev>/       (same for an auxiliary device, e.g. an SF)

The infiniband class is netns-aware in exclusive mode: a device moved into a pod's netns disappears
from these directories as seen from the host.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Mapping, Optional

from . import paths
from .frozen import Frozen

ENV_ROOT = "CNI_RDMA_SYSFS_ROOT"
DEFAULT_ROOT = "/sys"

# domain:bus:device.function, as the SR-IOV device plugin hands it to Multus ("0000:af:00.2"): checked with
# string operations, re costs ~5 ms to import.
_HEX = frozenset("0123456789abcdefABCDEF")
READ_MAX = 1 << 16  # bytes read of one attribute (sysfs attributes are at most a page)
# Drivers that take a function away from the kernel's network stack (userspace / DPDK use).
USERSPACE_DRIVERS = frozenset({"vfio-pci", "uio_pci_generic", "igb_uio"})


def normalize_pci(addr: str) -> Optional[str]:
    """"af:00.2" / "0000:AF:00.2" -> "0000:af:00.2"; None if it is not a PCI address."""
    if not isinstance(addr, str):
        return None
    # (?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7]), the whole (stripped) string
    head, dot, fn = addr.strip().rpartition(".")
    parts = head.split(":")
    if len(parts) == 2:
        parts.insert(0, "0000")
    if not dot or len(fn) != 1 or fn not in "01234567" or len(parts) != 3:
        return None
    domain, bus, dev = parts
    if not (4 <= len(domain) <= 8 and len(bus) == 2 and len(dev) == 2 and dev[0] in "01"
            and _HEX.issuperset(domain + bus + dev)):
        return None
    return f"{domain.lower()}:{bus.lower()}:{dev.lower()}.{fn}"


def _routing_id(addr: str) -> Optional[tuple[int, int]]:
    """"0000:af:00.2" -> (domain, bus << 8 | device << 3 | function); None if it is not that shape."""
    try:
        domain, bus, devfn = addr.split(":")
        dev, fn = devfn.split(".")
        return int(domain, 16), int(bus, 16) << 8 | int(dev, 16) << 3 | int(fn, 16)
    except ValueError:
        return None


class VfInfo(Frozen):
    """One SR-IOV virtual function as sysfs shows it right now."""

    __slots__ = ("pci", "pf_pci", "vf_id", "driver", "netdevs", "pf_netdevs")
    pci: str            # the VF's own address
    pf_pci: str         # its physical function
    vf_id: int          # N in the PF's virtfnN
    driver: str         # "" when unbound
    netdevs: tuple[str, ...]     # the VF's netdevs in the host netns (empty for DPDK or when moved away)
    pf_netdevs: tuple[str, ...]  # the PF's netdevs

    def __init__(self, pci: str, pf_pci: str, vf_id: int, driver: str, netdevs: tuple[str, ...],
                 pf_netdevs: tuple[str, ...]) -> None:
        self._init(locals())

    @property
    def userspace(self) -> bool:
        """Bound to vfio-pci/uio: no kernel netdev, configured only through the PF (DPDK mode)."""
        return self.driver in USERSPACE_DRIVERS


class Sysfs(Frozen):
    """sysfs lookups under a root: /sys, or CNI_RDMA_SYSFS_ROOT (a fake PCI tree in tests)."""

    __slots__ = ("root",)
    root: str

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self._init(locals())

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Sysfs":
        env = paths.environ() if env is None else env
        return cls(env.get(ENV_ROOT) or DEFAULT_ROOT)

    # --- paths ---
    def path(self, *parts: str) -> str:
        return paths.join(self.root, *parts)

    def pci_dir(self, addr: str) -> str:
        return self.path("bus", "pci", "devices", addr)

    def net_dir(self, ifname: str) -> str:
        return self.path("class", "net", ifname)

    # --- small readers ---
    def read(self, path: str) -> Optional[str]:
        """A sysfs attribute's text, stripped; None if it is missing or unreadable. One open and a bounded
        read (an attribute is at most a page; READ_MAX bounds anything else), never blocking."""
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK | posix.O_NOCTTY)
        except (OSError, ValueError):
            return None
        try:
            chunks = []
            size = 0
            while size < READ_MAX:
                chunk = posix.read(fd, READ_MAX - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError:
            return None
        finally:
            posix.close(fd)
        return b"".join(chunks).decode(errors="replace").strip()

    def read_int(self, path: str) -> Optional[int]:
        text = self.read(path)
        try:
            return int(text, 0) if text is not None else None
        except ValueError:
            return None

    @staticmethod
    def _link_name(path: str) -> Optional[str]:
        try:
            return paths.basename(posix.readlink(path))
        except OSError:
            return None

    @staticmethod
    def _listdir(path: str) -> list[str]:
        try:
            return sorted(posix.listdir(path))
        except OSError:
            return []

    # --- PCI functions ---
    def pci_exists(self, addr: str) -> bool:
        return paths.isdir(self.pci_dir(addr))

    def driver(self, addr: str) -> str:
        """Name of the driver bound to a PCI function; "" when unbound or missing."""
        return self._link_name(paths.join(self.pci_dir(addr), "driver")) or ""

    def physfn(self, addr: str) -> Optional[str]:
        """The PF address of a VF; None when addr is not a VF."""
        return self._link_name(paths.join(self.pci_dir(addr), "physfn"))

    def virtfns(self, pf: str) -> dict[int, str]:
        """VF id -> VF PCI address for every virtfnN link of a PF."""
        out: dict[int, str] = {}
        for entry in self._listdir(self.pci_dir(pf)):
            n = entry[len("virtfn"):]
            if entry.startswith("virtfn") and n.isdecimal():  # virtfn(\d+): \d is any Unicode decimal digit
                target = self._link_name(paths.join(self.pci_dir(pf), entry))
                if target:
                    out[int(n)] = target
        return out

    def vf_id(self, pf: str, vf: str) -> Optional[int]:
        """N such that the PF's virtfnN points at vf; None if the PF does not list it.

        The PF's sriov_offset and sriov_stride place VF N at routing ID PF + offset + N * stride (PCIe
        SR-IOV), so N comes from the two addresses and one readlink confirms it, whatever the PF's VF
        count; the PF's virtfn links are scanned only without those attributes or when they disagree."""
        n = self._vf_index_from_rid(pf, vf)
        if n is not None and self._link_name(paths.join(self.pci_dir(pf), f"virtfn{n}")) == vf:
            return n
        for n, addr in self.virtfns(pf).items():
            if addr == vf:
                return n
        return None

    def _vf_index_from_rid(self, pf: str, vf: str) -> Optional[int]:
        pf_rid, vf_rid = _routing_id(pf), _routing_id(vf)
        if pf_rid is None or vf_rid is None or pf_rid[0] != vf_rid[0]:
            return None
        offset = self.read_int(paths.join(self.pci_dir(pf), "sriov_offset"))
        stride = self.read_int(paths.join(self.pci_dir(pf), "sriov_stride"))
        if offset is None or not stride:
            return None
        n, rest = divmod(vf_rid[1] - pf_rid[1] - offset, stride)
        return n if n >= 0 and not rest else None

    def netdevs(self, addr: str) -> tuple[str, ...]:
        """Netdev names of a PCI function (as seen from the host netns)."""
        return tuple(self._listdir(paths.join(self.pci_dir(addr), "net")))

    def numvfs(self, pf: str) -> Optional[int]:
        return self.read_int(paths.join(self.pci_dir(pf), "sriov_numvfs"))

    def totalvfs(self, pf: str) -> Optional[int]:
        return self.read_int(paths.join(self.pci_dir(pf), "sriov_totalvfs"))

    def vf(self, addr: str) -> Optional[VfInfo]:
        """Everything about VF `addr` in one read; None when it is not a VF (no physfn link)."""
        pf = self.physfn(addr)
        if pf is None:
            return None
        vf_id = self.vf_id(pf, addr)
        return VfInfo(
            pci=addr,
            pf_pci=pf,
            vf_id=-1 if vf_id is None else vf_id,
            driver=self.driver(addr),
            netdevs=self.netdevs(addr),
            pf_netdevs=self.netdevs(pf),
        )

    # --- netdevs ---
    def pci_of_netdev(self, ifname: str) -> Optional[str]:
        """The PCI function behind a host-netns netdev; None for virtual devices."""
        return self._link_name(paths.join(self.net_dir(ifname), "device"))

    # --- RDMA devices (infiniband class entries under their parent device) ---
    def aux_dir(self, name: str) -> str:
        return self.path("bus", "auxiliary", "devices", name)

    def aux_exists(self, name: str) -> bool:
        """An auxiliary bus device such as "mlx5_core.sf.4" (a subfunction)."""
        return bool(name) and "/" not in name and name not in (".", "..") and paths.isdir(self.aux_dir(name))

    def rdma_devices_of_pci(self, addr: str) -> tuple[str, ...]:
        """RDMA device names of a PCI function as this netns sees them ("mlx5_3")."""
        return tuple(self._listdir(paths.join(self.pci_dir(addr), "infiniband")))

    def rdma_devices_of_aux(self, name: str) -> tuple[str, ...]:
        """RDMA device names of an auxiliary device as this netns sees them."""
        return tuple(self._listdir(paths.join(self.aux_dir(name), "infiniband")))

    def virtfn_of_netdev(self, pf_ifname: str, vf_id: int) -> Optional[str]:
        """PCI address of VF `vf_id` of the PF behind netdev `pf_ifname` (the admin-MAC lookup's last step)."""
        return self._link_name(paths.join(self.net_dir(pf_ifname), "device", f"virtfn{vf_id}"))
