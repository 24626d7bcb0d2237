"""The sriov plugin's typed records: what a VF was before ADD (OrigVfState) and the allocation record
of one attachment (VfState), with their on-disk form.

Shaped after sriov-cni's `pkg/types` (OrigVfState: HostIFName, EffectiveMAC, AdminMAC, Vlan, VlanQoS,
SpoofChk, Trust, LinkState, MinTxRate, MaxTxRate, GUID), so a record read from sriov-cni's cache maps
field by field onto ours and restores through the same `VfManager.restore`.

Plain annotated classes with __slots__: no dataclass creation on the hot path (start-up cost), and
mypy checks them. They are mutable only while ADD builds them in the main thread; nothing running in a
netns thread touches them (those functions return values).
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

RECORD_VERSION = 2
ZERO_MAC = "00:00:00:00:00:00"
# The PF-side VF settings (the keyword names of the netlink layer's vf_set) ...
PF_KEYS = ("mac", "vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate")
# ... and what each returns to when the driver never reported its original value.
PF_DEFAULTS: dict[str, Any] = {"mac": ZERO_MAC, "vlan": 0, "qos": 0, "vlan_proto": "802.1Q", "spoofchk": True,
                               "trust": False, "link_state": "auto", "min_tx_rate": 0, "max_tx_rate": 0}
VLAN_PROTOS = ("802.1Q", "802.1ad")
_GUIDS = ("node_guid", "port_guid")


def tmp_name(host_index: int) -> str:
    """The name a VF netdev carries while it crosses between netns, in either direction (unique per
    VF: its host ifindex), so that an interrupted ADD or DEL leaves it under a name DEL looks for."""
    return f"vftmp{host_index}"[:15]


class OrigVfState:
    """The VF as it was before ADD: the netdev in the host (empty host_ifname for DPDK) and the PF's
    view of it (None where the driver reported nothing: restored to PF_DEFAULTS)."""

    __slots__ = ("host_ifname", "host_index", "effective_mac", "mtu", "up", "altnames", "pf_reported",
                 "admin_mac", "vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate",
                 "max_tx_rate", "node_guid", "port_guid")
    host_ifname: str
    host_index: int
    effective_mac: str
    mtu: int
    up: bool
    altnames: tuple[str, ...]
    pf_reported: bool  #: the PF listed this VF in IFLA_VFINFO_LIST when ADD looked
    admin_mac: Optional[str]
    vlan: Optional[int]
    qos: Optional[int]
    vlan_proto: Optional[str]
    spoofchk: Optional[bool]
    trust: Optional[bool]
    link_state: Optional[str]
    min_tx_rate: Optional[int]
    max_tx_rate: Optional[int]
    node_guid: Optional[int]  #: InfiniBand VFs
    port_guid: Optional[int]

    def __init__(self, host_ifname: str = "", host_index: int = 0, effective_mac: str = "", mtu: int = 0,
                 up: bool = False, altnames: tuple[str, ...] = (), pf_reported: bool = False, **pf: Any) -> None:
        self.host_ifname = host_ifname
        self.host_index = host_index
        self.effective_mac = effective_mac
        self.mtu = mtu
        self.up = up
        self.altnames = tuple(altnames)
        self.pf_reported = pf_reported
        self.admin_mac = pf.pop("admin_mac", None)
        for key in ("vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate",
                    "node_guid", "port_guid"):
            setattr(self, key, pf.pop(key, None))
        if pf:
            raise TypeError(f"OrigVfState: unknown field(s) {', '.join(pf)}")
        if self.vlan_proto is not None and self.vlan_proto not in VLAN_PROTOS:
            self.vlan_proto = "802.1Q"  # a never-configured VF may report protocol 0 (netdevsim): plain 802.1Q

    def pf_value(self, key: str) -> Any:
        """The original value of one PF-side setting (PF_KEYS, node_guid, port_guid), or its default
        when never reported (None for a GUID: nothing to put back)."""
        v = self.admin_mac if key == "mac" else getattr(self, key)
        return PF_DEFAULTS.get(key) if v is None else v

    def to_json(self) -> dict:
        return {k: list(self.altnames) if k == "altnames" else getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_json(cls, d: dict) -> OrigVfState:
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})


class VfState:
    """One attachment's allocation record: who owns the VF, what ADD set or means to set (written
    before it does), what the pod saw, and the OrigVfState to give back."""

    __slots__ = ("phase", "container_id", "ifname", "netns", "device_id", "pf", "pf_pci", "vf_id", "dpdk",
                 "applied", "want_mac", "want_mtu", "orig", "pod_index", "pod_mac", "pod_mtu", "rdma_dev")
    phase: str  #: "adding" until ADD returns its result, then "ready"
    container_id: str
    ifname: str  #: CNI_IFNAME: the VF's name in the pod
    netns: str
    device_id: str  #: the VF's PCI address
    pf: str  #: the PF netdev
    pf_pci: str
    vf_id: int
    dpdk: bool  #: bound to a userspace driver: configured through the PF only, never moved
    applied: dict  #: the PF-side settings ADD sets (vf_set keywords), restored from orig on DEL
    want_mac: str  #: the netdev MAC ADD sets in the pod ("" keeps the VF's own)
    want_mtu: int  #: the netdev MTU ADD sets in the pod (0 keeps it)
    orig: OrigVfState
    pod_index: int  #: seen after the move (0 until then)
    pod_mac: str
    pod_mtu: int
    rdma_dev: str  #: rdmaIsolation: the VF's RDMA device, moved into the pod ("" when not)

    def __init__(self, *, container_id: str, ifname: str, netns: str, device_id: str, pf: str, pf_pci: str,
                 vf_id: int, dpdk: bool, orig: OrigVfState, applied: Optional[dict] = None, want_mac: str = "",
                 want_mtu: int = 0, phase: str = "adding", pod_index: int = 0, pod_mac: str = "",
                 pod_mtu: int = 0, rdma_dev: str = "") -> None:
        self.phase = phase
        self.container_id = container_id
        self.ifname = ifname
        self.netns = netns
        self.device_id = device_id
        self.pf = pf
        self.pf_pci = pf_pci
        self.vf_id = vf_id
        self.dpdk = dpdk
        self.applied = dict(applied or {})
        self.want_mac = want_mac
        self.want_mtu = want_mtu
        self.orig = orig
        self.pod_index = pod_index
        self.pod_mac = pod_mac
        self.pod_mtu = pod_mtu
        self.rdma_dev = rdma_dev

    @property
    def tmp_name(self) -> str:
        return tmp_name(self.orig.host_index)

    def owned_by(self, container_id: str, ifname: str) -> bool:
        return self.container_id == container_id and self.ifname == ifname

    def known_macs(self) -> set[str]:
        """Every MAC the VF netdev can carry while this record holds it (identifies a VF stand-in that
        has no PCI parent): its own, the one ADD sets, the one the pod saw."""
        return {self.orig.effective_mac, self.want_mac, self.pod_mac} - {""}

    def restore_pf(self) -> dict:
        """vf_set keywords putting back every PF-side setting ADD set (or meant to): `applied` holds
        vf_set keywords, the IB node_guid/port_guid included."""
        back = {k: self.orig.pf_value(k) for k in self.applied if k in PF_DEFAULTS or k in _GUIDS}
        return {k: v for k, v in back.items() if v is not None}

    def to_json(self) -> dict:
        out: dict[str, Any] = {k: getattr(self, k) for k in self.__slots__}
        out["orig"] = self.orig.to_json()
        out["version"] = RECORD_VERSION
        return out

    @classmethod
    def from_json(cls, d: dict) -> VfState:
        """A record as written by to_json, or by version 1 (orig/orig_vf dicts) of this plugin."""
        d = dict(d)
        if d.pop("version", 1) == 1:
            d = _from_v1(d)
        d["orig"] = OrigVfState.from_json(d.get("orig") or {})
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})


def _from_v1(d: dict) -> dict:
    host = d.pop("orig", None) or {}
    pf = d.pop("orig_vf", None) or {}
    orig = {"host_ifname": host.get("name", ""), "host_index": host.get("index", 0),
            "effective_mac": host.get("mac") or "", "mtu": host.get("mtu", 0), "up": bool(host.get("up")),
            "pf_reported": bool(pf), **{k: v for k, v in pf.items() if k != "mac"}, "admin_mac": pf.get("mac")}
    d["orig"] = orig
    for key in ("pod_index", "pod_mtu"):
        d[key] = d.get(key) or 0
    d["pod_mac"] = d.get("pod_mac") or ""
    return d
