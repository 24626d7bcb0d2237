"""What this node has for RDMA networking: network PCI functions, SR-IOV PFs and their VFs, netdevs,
RDMA devices with their ports. Read by `doctor` and `nad --from-node`.

Two enumeration backends give the same shape:
  udev   pyudev (libudev) walks the devices and names vendor and model from the hardware database
         (the udev database's ID_*_FROM_DATABASE when udevd ran, else a hwdb lookup of the modalias);
  sysfs  plain directory reads under a sysfs root (containers usually have no udev), names from pci.ids
         when pciutils' copy is there.
`auto` takes udev when libudev loads and the sysfs root is the real /sys (libudev cannot read any other).

SR-IOV PFs are found through their netdevs (class/net/<if>/device/sriov_numvfs), so a non-PCI PF such as
netdevsim is inventoried too; its VFs have no functions of their own and are listed from the PF's netlink
VF table. RDMA devices and ports come from the RDMA netlink socket of this netns (`rdma link`).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any, Optional

from cni_rdma import safefile
from cni_rdma.sysfs import USERSPACE_DRIVERS, Sysfs

# pciutils' copy, then hwdata's (RHEL/Fedora; where misc/pci.ids is a symlink into hwdata, safefile skips the
# link and the real file is read as the second path)
PCI_IDS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")
PCI_IDS_MAX = 16 << 20  # Debian 12's is 1.3 MB
_NETWORK_CLASS = 0x02  # PCI base class "network controller" (ethernet 0x0200, infiniband 0x0207)


class Backend:
    """Device enumeration + naming; `name` says which one answered."""

    name = "?"

    def pci_functions(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def netdevs(self) -> list[str]:
        raise NotImplementedError


class SysfsBackend(Backend):
    name = "sysfs"

    def __init__(self, sysfs: Sysfs, pci_ids: Optional[str] = None):
        self.sysfs = sysfs
        self._names = PciIds.load(pci_ids)

    def pci_functions(self) -> list[dict[str, Any]]:
        out = []
        for addr in self.sysfs._listdir(self.sysfs.path("bus", "pci", "devices")):
            d = self.sysfs.pci_dir(addr)
            vendor = self.sysfs.read(os.path.join(d, "vendor")) or ""
            device = self.sysfs.read(os.path.join(d, "device")) or ""
            cls = self.sysfs.read_int(os.path.join(d, "class"))
            vname, mname = self._names.lookup(vendor, device)
            out.append(_function(addr, vendor, device, cls, vname, mname))
        return out

    def netdevs(self) -> list[str]:
        return self.sysfs._listdir(self.sysfs.path("class", "net"))


class UdevBackend(Backend):
    name = "udev"

    def __init__(self) -> None:
        import pyudev  # only here: the sysfs path must work where libudev is missing

        self.context = pyudev.Context()  # raises ImportError/OSError when libudev cannot be loaded
        self._hwdb: Any = None  # the udev_hwdb handle; False once it proved unavailable

    def _hwdb_props(self, modalias: str) -> dict[str, str]:
        """The hardware database entries for a modalias (udevadm hwdb --test=MODALIAS)."""
        lib = self.context._libudev
        if self._hwdb is None:
            try:
                self._hwdb = lib.udev_hwdb_new(self.context)
            except Exception:  # no hwdb.bin: names stay empty, IDs remain
                self._hwdb = False
        if not self._hwdb or not modalias:
            return {}
        from pyudev._util import udev_list_iterate

        entry = lib.udev_hwdb_get_properties_list_entry(self._hwdb, modalias.encode(), 0)
        return {k.decode(): v.decode(errors="replace") for k, v in udev_list_iterate(lib, entry)}

    def pci_functions(self) -> list[dict[str, Any]]:
        out = []
        for dev in self.context.list_devices(subsystem="pci"):
            attrs = dev.attributes
            vendor, device = _attr(attrs, "vendor"), _attr(attrs, "device")
            cls = _attr(attrs, "class")
            props = dev.properties
            vname = props.get("ID_VENDOR_FROM_DATABASE")
            mname = props.get("ID_MODEL_FROM_DATABASE")
            if not (vname and mname):
                db = self._hwdb_props(props.get("MODALIAS", ""))
                vname = vname or db.get("ID_VENDOR_FROM_DATABASE")
                mname = mname or db.get("ID_MODEL_FROM_DATABASE")
            out.append(_function(dev.sys_name, vendor, device, _int(cls), vname, mname))
        return sorted(out, key=lambda f: f["pci"])

    def netdevs(self) -> list[str]:
        return sorted(d.sys_name for d in self.context.list_devices(subsystem="net"))


def _attr(attrs, name: str) -> str:
    try:
        return attrs.asstring(name).strip()
    except (KeyError, UnicodeDecodeError, OSError):
        return ""


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text, 0) if text else None
    except ValueError:
        return None


def _function(addr: str, vendor: str, device: str, cls: Optional[int], vname, mname) -> dict[str, Any]:
    return {"pci": addr, "vendor_id": _hex4(vendor), "device_id": _hex4(device),
            "class": f"0x{cls:06x}" if cls is not None else None, "vendor": vname or None, "model": mname or None}


def _hex4(text: str) -> Optional[str]:
    v = _int(text)
    return f"{v:04x}" if v is not None else None


class PciIds:
    """Vendor and device names from pciutils' pci.ids (the sysfs backend's hwdb)."""

    def __init__(self, vendors: dict[str, tuple[str, dict[str, str]]]):
        self.vendors = vendors

    @classmethod
    def load(cls, path: Optional[str] = None) -> "PciIds":
        """The first of the paths that is a readable regular file (safefile: a symlink, FIFO or oversized file
        is skipped like a missing one: names are a nicety, IDs remain); no file, no names."""
        vendors: dict[str, tuple[str, dict[str, str]]] = {}
        for p in ([path] if path else PCI_IDS):
            try:
                text = safefile.read(p, PCI_IDS_MAX).decode("utf-8", errors="replace")
            except OSError:
                continue
            models: dict[str, str] = {}
            for line in text.splitlines():
                if line.startswith("C "):  # device classes follow the vendors: done
                    break
                if not line.strip() or line.startswith("#"):
                    continue
                if line[0] != "\t":
                    vid, _, name = line.partition("  ")
                    models = {}
                    vendors[vid.strip().lower()] = (name.strip(), models)
                elif line[1:2] != "\t":
                    did, _, name = line[1:].partition("  ")
                    models[did.strip().lower()] = name.strip()
            break
        return cls(vendors)

    def lookup(self, vendor: str, device: str) -> tuple[Optional[str], Optional[str]]:
        v, d = _hex4(vendor), _hex4(device)
        entry = self.vendors.get(v or "")
        if entry is None:
            return None, None
        return entry[0], entry[1].get(d or "")


def pick_backend(sysfs: Sysfs, want: str = "auto") -> Backend:
    """`auto`: udev when libudev loads and sysfs is the real /sys; `udev` insists (error if unavailable)."""
    if want == "sysfs" or (want == "auto" and os.path.realpath(sysfs.root) != "/sys"):
        return SysfsBackend(sysfs)
    try:
        return UdevBackend()
    except (ImportError, OSError) as e:
        if want == "udev":
            raise BackendUnavailable(f"udev backend unavailable: {e}") from None
        return SysfsBackend(sysfs)


class BackendUnavailable(Exception):
    pass


# ------------------------------------------------------------------------------------ SR-IOV
_VF_PORT_NAME = re.compile(r"^(?:c\d+)?pf\d+vf\d+$")


def sriov_pfs(sysfs: Sysfs, functions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every netdev whose device can do SR-IOV (PCI PFs, netdevsim), with VF inventory."""
    out = []
    seen: set[str] = set()
    for ifname in sysfs._listdir(sysfs.path("class", "net")):
        dev_dir = os.path.join(sysfs.net_dir(ifname), "device")
        numvfs = sysfs.read_int(os.path.join(dev_dir, "sriov_numvfs"))
        if numvfs is None:
            continue
        try:
            real = os.path.realpath(dev_dir)
        except OSError:
            continue
        dev = os.path.basename(real)
        if dev in seen:  # one entry per device even with several ports/netdevs
            continue
        seen.add(dev)
        bus = "pci" if sysfs.pci_exists(dev) else os.path.basename(os.path.realpath(os.path.join(dev_dir, "subsystem")))
        pf: dict[str, Any] = {
            "device": dev, "bus": bus, "netdevs": list(sysfs.netdevs(dev)) if bus == "pci" else [ifname],
            "driver": sysfs._link_name(os.path.join(dev_dir, "driver")) or "",
            "totalvfs": sysfs.read_int(os.path.join(dev_dir, "sriov_totalvfs")), "numvfs": numvfs,
            "eswitch": eswitch_mode(sysfs, bus, dev, ifname), "vfs": [],
        }
        if dev in functions:
            pf.update({k: functions[dev][k] for k in ("vendor_id", "device_id", "vendor", "model")})
        if bus == "pci":
            for vf_id, addr in sorted(sysfs.virtfns(dev).items()):
                driver = sysfs.driver(addr)
                netdevs = list(sysfs.netdevs(addr))
                mode = "dpdk" if driver in USERSPACE_DRIVERS else ("netdev" if netdevs else
                                                                   ("unbound" if not driver else "no-netdev"))
                pf["vfs"].append({"vf": vf_id, "pci": addr, "driver": driver, "netdevs": netdevs, "mode": mode,
                                  "rdma": list(sysfs.rdma_devices_of_pci(addr))})
        else:  # netdevsim-style: VFs exist only in the PF's netlink VF table
            for v in _netlink_vfs(ifname):
                pf["vfs"].append({"vf": v["vf"], "pci": None, "driver": "", "netdevs": [], "mode": "pf-only",
                                  "rdma": [], "mac": v.get("mac")})
        out.append(pf)
    return out


def _netlink_vfs(pf_ifname: str) -> list[dict[str, Any]]:
    from cni_rdma.netlink.errors import NetlinkError
    from cni_rdma.netlink.rtnl import Rtnl

    try:
        with Rtnl() as nl:
            return [{"vf": v.vf, "mac": v.mac} for v in nl.vfs(nl.link_get(name=pf_ifname).index)]
    except NetlinkError:
        return []


def eswitch_mode(sysfs: Sysfs, bus: str, dev: str, ifname: str) -> Optional[str]:
    """"legacy" / "switchdev" from devlink (iproute2's `devlink -j dev eswitch show`); None if unknown."""
    compat = sysfs.read(os.path.join(sysfs.net_dir(ifname), "compat", "devlink", "mode"))
    if compat:
        return compat
    if sysfs.root != "/sys":
        return None
    try:
        p = subprocess.run(["devlink", "-j", "dev", "eswitch", "show", f"{bus}/{dev}"], capture_output=True,
                           text=True, timeout=10)
        data = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    for value in (data.get("dev") or {}).values():
        if isinstance(value, dict) and value.get("mode"):
            return str(value["mode"])
    return None


# ---------------------------------------------------------------------------------------- RDMA
def rdma_links() -> tuple[Optional[str], Optional[str], list[dict[str, Any]]]:
    """(netns mode, error, devices with ports) from this netns's RDMA netlink socket."""
    from cni_rdma.netlink.errors import NetlinkError
    from cni_rdma.netlink.rdma import Rdma

    try:
        with Rdma(timeout=10.0) as nl:
            try:
                mode: Optional[str] = nl.netns_mode()
            except NetlinkError:
                mode = None
            devices = []
            for d in nl.devices():
                ports = [{"port": p.port, "state": p.state, "netdev": p.netdev} for p in nl.ports(d.index)]
                devices.append({"name": d.name, "index": d.index, "protocol": d.protocol, "driver": d.driver,
                                "node_type": d.node_type, "ports": ports})
            return mode, None, devices
    except NetlinkError as e:
        return None, f"{e.msg}: {e.details}" if e.details else e.msg, []


def _netdevs_by_device(sysfs: Sysfs, names: list[str]) -> dict[str, list[str]]:
    """Real device path -> netdevs (a virtio NIC's netdev hangs off a child device of its PCI function)."""
    out: dict[str, list[str]] = {}
    for name in names:
        dev = os.path.join(sysfs.net_dir(name), "device")
        if os.path.exists(dev):
            out.setdefault(os.path.realpath(dev), []).append(name)
    return out


def collect(sysfs: Sysfs, backend: str = "auto") -> dict[str, Any]:
    """The whole inventory as JSON-ready data."""
    be = pick_backend(sysfs, backend)
    functions = {f["pci"]: f for f in be.pci_functions()}
    by_device = _netdevs_by_device(sysfs, be.netdevs())
    network_fns = []
    for addr, f in sorted(functions.items()):
        cls = int(f["class"], 16) if f["class"] else 0
        if cls >> 16 != _NETWORK_CLASS and sysfs.numvfs(addr) is None:
            continue
        f = dict(f)
        fdir = os.path.realpath(sysfs.pci_dir(addr))
        mine = sorted(n for d, names in by_device.items() if d == fdir or d.startswith(fdir + "/") for n in names)
        f.update(driver=sysfs.driver(addr), netdevs=mine,
                 rdma=list(sysfs.rdma_devices_of_pci(addr)), physfn=sysfs.physfn(addr))
        network_fns.append(f)
    mode, rdma_error, devices = rdma_links()
    return {"backend": be.name, "pci": network_fns, "sriov": sriov_pfs(sysfs, functions),
            "rdma": {"netns_mode": mode, "error": rdma_error, "devices": devices}}
