"""The SR-IOV network device plugin's resource pools, matched against this node's VFs, so that
`nad exclusive --from-node` can name the `k8s.v1.cni.cncf.io/resourceName` Multus asks the device plugin for.

The config is sriov-network-device-plugin's own (`/etc/pcidp/config.json`, its --config-file default):
`resourceList[]` entries with `resourceName`, optional `resourcePrefix` (else the daemon's --resource-prefix,
default "intel.com"), `deviceType` ("netDevice" when absent; accelerators and auxiliary devices are not VFs
our sriov plugin can move) and `selectors`: one object or a list of objects (any one object selects a device;
inside one object every key must match). `isRdma` may sit in a selector object (current) or on the entry
(older releases). The selector keys are read as the device plugin reads them: `vendors`/`devices` are the
VF's hex IDs, `drivers` its driver, `pfNames`/`rootDevices` its PF's netdev name / PCI address with an
optional `#0,2-5` VF index list, `linkTypes` its netdev's link type, `isRdma` an RDMA device present.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from cni_rdma.sysfs import Sysfs

from .common import CliError, one_line, read_file

DEFAULT_CONFIG = "/etc/pcidp/config.json"
DEFAULT_PREFIX = "intel.com"  # sriovdp's --resource-prefix default
CONFIG_MAX = 1 << 20  # a resource list is a few KiB
_LIST_KEYS = ("vendors", "devices", "drivers", "pciAddresses", "acpiIndexes", "pfNames", "rootDevices",
              "linkTypes", "ddpProfiles", "pKeys")
# keys whose value this node cannot tell from sysfs: reported, never silently treated as a match
_UNCHECKED = ("ddpProfiles", "pKeys")
_LINK_TYPES = {1: "ether", 32: "infiniband"}  # ARPHRD_* of /sys/class/net/<if>/type, as netlink names them


@dataclass
class Vf:
    """One VF as the device plugin's selectors see it."""

    pci: str
    index: int
    pf_pci: str
    pf_names: list[str]
    vendor: str
    device: str
    driver: str
    netdevs: list[str]
    link_type: Optional[str]
    rdma: list[str]
    acpi_index: Optional[str]

    def describe(self) -> str:
        pf = self.pf_names[0] if self.pf_names else self.pf_pci
        return (f"VF {self.index} {self.pci} of {pf} ({self.vendor or '?'}:{self.device or '?'}, "
                f"driver {self.driver or 'none'}, RDMA {', '.join(self.rdma) or 'none'})")


@dataclass
class Resource:
    name: str  # prefix/resourceName, as the NAD annotation names it
    selectors: list[dict[str, Any]]  # parse_selector's form; `isRdma` in each (the pod gets /dev/infiniband)
    unchecked: list[str] = field(default_factory=list)

    def matching(self, vfs: list[Vf]) -> list[tuple[Vf, dict[str, Any]]]:
        """(VF, the first selector object that takes it) for every VF this resource pools."""
        out = []
        for vf in vfs:
            sel = next((s for s in self.selectors if selects(s, vf)), None)
            if sel is not None:
                out.append((vf, sel))
        return out


def load(path: str, default_prefix: str = DEFAULT_PREFIX) -> list[Resource]:
    """The config's netDevice resources; a CliError naming the path and the field when it is unusable."""
    data = read_file(path, CONFIG_MAX)  # safefile: no symlink, regular file, non-blocking, bounded
    where = one_line(path)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise CliError(f"{where}: invalid JSON: {one_line(str(e).splitlines()[0])}") from None
    entries = doc.get("resourceList") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise CliError(f"{where}: resourceList: expected a list of resources")
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}: resourceList[{i}]"
        if not isinstance(entry, dict):
            raise CliError(f"{at}: expected an object")
        name = entry.get("resourceName")
        if not isinstance(name, str) or not name:
            raise CliError(f"{at}.resourceName: expected a non-empty string")
        prefix = entry.get("resourcePrefix") or default_prefix
        if not isinstance(prefix, str):
            raise CliError(f"{at}.resourcePrefix: expected a string")
        if entry.get("deviceType", "netDevice") != "netDevice":
            continue  # accelerator / auxNetDevice pools hold no VF netdev
        raw = entry.get("selectors", [{}])
        selectors = [raw] if isinstance(raw, dict) else raw
        if not isinstance(selectors, list) or not all(isinstance(s, dict) for s in selectors):
            raise CliError(f"{at}.selectors: expected an object or a list of objects")
        selectors = [parse_selector(s, entry.get("isRdma"), f"{at}.selectors[{j}]") for j, s in enumerate(selectors)]
        unchecked = sorted({k for s in selectors for k in _UNCHECKED if s.get(k)})
        out.append(Resource(f"{prefix}/{name}", selectors, unchecked))
    return out


def parse_selector(sel: dict[str, Any], entry_rdma: Any, at: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _LIST_KEYS:
        value = sel.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CliError(f"{at}.{key}: expected a list of strings")
        if key in ("pfNames", "rootDevices"):
            value = [_pf_entry(v, f"{at}.{key}") for v in value]
        out[key] = value
    is_rdma = sel.get("isRdma", entry_rdma)
    if is_rdma is not None and not isinstance(is_rdma, bool):
        raise CliError(f"{at}.isRdma: expected true or false")
    out["isRdma"] = bool(is_rdma)
    out["vdpaType"] = sel.get("vdpaType")
    return out


def _pf_entry(text: str, at: str) -> tuple[str, Optional[set[int]]]:
    """"ens1f0" (every VF) or "ens1f0#0,2-5" (those VF indexes)."""
    name, sep, ranges = text.partition("#")
    if not sep:
        return name, None
    indexes: set[int] = set()
    try:
        for part in ranges.split(","):
            first, dash, last = part.partition("-")
            lo, hi = int(first), int(last) if dash else int(first)
            if lo < 0 or hi < lo:
                raise ValueError
            indexes.update(range(lo, hi + 1))
    except ValueError:
        raise CliError(f"{at}: {one_line(text)!r}: expected NAME#N,FIRST-LAST,...") from None
    return name, indexes


def selects(sel: dict[str, Any], vf: Vf) -> bool:
    """Every key of one selector object holds for the VF (the device plugin ANDs them)."""
    if sel["vdpaType"]:
        return False  # a vDPA device is not a VF netdev our sriov plugin moves
    if sel["isRdma"] and not vf.rdma:
        return False
    checks = (("vendors", vf.vendor), ("devices", vf.device), ("drivers", vf.driver),
              ("pciAddresses", vf.pci), ("acpiIndexes", vf.acpi_index), ("linkTypes", vf.link_type))
    for key, value in checks:
        if key in sel and value not in sel[key]:
            return False
    if "pfNames" in sel and not any(_pf_match(e, vf, vf.pf_names) for e in sel["pfNames"]):
        return False
    if "rootDevices" in sel and not any(_pf_match(e, vf, [vf.pf_pci]) for e in sel["rootDevices"]):
        return False
    return True


def _pf_match(entry: tuple[str, Optional[set[int]]], vf: Vf, names: list[str]) -> bool:
    name, indexes = entry
    return name in names and (indexes is None or vf.index in indexes)


def node_vfs(sysfs: Sysfs, pfs: list[dict[str, Any]]) -> list[Vf]:
    """Every VF of the inventory's PCI PFs (`inventory.sriov_pfs`), with the facts selectors read."""
    out = []
    for pf in pfs:
        if pf["bus"] != "pci":
            continue
        for v in pf["vfs"]:
            d = sysfs.pci_dir(v["pci"])
            link_type = None
            for netdev in v["netdevs"]:
                link_type = _LINK_TYPES.get(sysfs.read_int(os.path.join(sysfs.net_dir(netdev), "type")) or -1)
                break
            out.append(Vf(pci=v["pci"], index=v["vf"], pf_pci=pf["device"], pf_names=list(pf["netdevs"]),
                          vendor=_hex(sysfs.read(os.path.join(d, "vendor"))),
                          device=_hex(sysfs.read(os.path.join(d, "device"))), driver=v["driver"],
                          netdevs=list(v["netdevs"]), link_type=link_type, rdma=list(v["rdma"]),
                          acpi_index=sysfs.read(os.path.join(d, "acpi_index"))))
    return out


def _hex(text: Optional[str]) -> str:
    """"0x15b3" -> "15b3" (how selectors spell IDs)."""
    try:
        return f"{int(text, 16):04x}" if text else ""
    except ValueError:
        return ""
