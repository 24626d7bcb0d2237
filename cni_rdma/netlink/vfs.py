"""SR-IOV VFs as their PF reports them: the `VfConfig` record, its codec and the VF requests of `Rtnl`.

`VfConfig` is what the PF driver says about one VF (admin MAC, VLAN, trust...);
`cni_rdma.sysfs.VfInfo` is where a VF sits in the PCI topology.
"""
from __future__ import annotations

import _struct  # struct's C half: struct.py would be one module more on every call

from .. import errnos
from ..record import Record
from .core import BE16, attr, attr_map, mac_bytes, mac_str, parse_attrs, unpack
from .errors import NetlinkDecodeError, NetlinkError
from .links import IFLA_ADDRESS, IFLA_VFINFO_LIST, VLAN_PROTOS, Link, LinkOps, decode_link
from .rtmsg import IFINFOMSG, RTM_NEWLINK, ifinfomsg, name_of

# IFLA_VFINFO_LIST > IFLA_VF_INFO > IFLA_VF_* (linux/if_link.h)
IFLA_VF_INFO = 1
IFLA_VF_MAC = 1
IFLA_VF_VLAN = 2
IFLA_VF_TX_RATE = 3
IFLA_VF_SPOOFCHK = 4
IFLA_VF_LINK_STATE = 5
IFLA_VF_RATE = 6
IFLA_VF_RSS_QUERY_EN = 7
IFLA_VF_TRUST = 9
IFLA_VF_IB_NODE_GUID = 10
IFLA_VF_IB_PORT_GUID = 11
IFLA_VF_VLAN_LIST = 12
IFLA_VF_VLAN_INFO = 1
VF_LINK_STATES = {"auto": 0, "enable": 1, "disable": 2}
VF_MAC = _struct.Struct("=I32s")  # struct ifla_vf_mac
VF_VLAN = _struct.Struct("=III")  # struct ifla_vf_vlan: vf, vlan, qos
VF_VLAN_INFO = _struct.Struct("=IIIH2x")  # struct ifla_vf_vlan_info: 16 bytes, vlan_proto big-endian
VF_SETTING = _struct.Struct("=II")  # spoofchk, trust, link_state, tx_rate, rss_query_en: vf, value
VF_RATE = _struct.Struct("=III")  # vf, min_tx_rate, max_tx_rate
VF_GUID = _struct.Struct("=I4xQ")  # struct ifla_vf_guid (u64 aligned)
_UNSET32 = 0xFFFFFFFF


class VfConfig(Record):
    """SR-IOV VF configuration as the PF driver reports it; None where the driver reports nothing."""

    vf: int
    mac: str | None = None
    vlan: int = 0
    qos: int = 0
    vlan_proto: str = "802.1Q"
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None  #: auto / enable / disable
    min_tx_rate: int = 0  #: Mbps
    max_tx_rate: int = 0
    rss_query_en: bool | None = None
    node_guid: int | None = None
    port_guid: int | None = None


def _flag(b: bytes, name: str) -> bool | None:
    v = unpack(VF_SETTING, b, name)[1]
    return None if v == _UNSET32 else bool(v)


# IFLA_VF_* attribute -> (VfConfig field, decoder); VLAN, rates and MAC need more than one field.
VF_ATTRS: dict = {
    IFLA_VF_SPOOFCHK: ("spoofchk", lambda b: _flag(b, "spoofchk")),
    IFLA_VF_TRUST: ("trust", lambda b: _flag(b, "trust")),
    IFLA_VF_RSS_QUERY_EN: ("rss_query_en", lambda b: _flag(b, "rss_query_en")),
    IFLA_VF_LINK_STATE: ("link_state", lambda b: name_of(VF_LINK_STATES, unpack(VF_SETTING, b, "link state")[1])),
    IFLA_VF_IB_NODE_GUID: ("node_guid", lambda b: unpack(VF_GUID, b, "node_guid")[1]),
    IFLA_VF_IB_PORT_GUID: ("port_guid", lambda b: unpack(VF_GUID, b, "port_guid")[1]),
}


def decode_vfinfo_list(data: bytes, addr_len: int = 6, only: int | None = None) -> list[VfConfig]:
    """The payload of IFLA_VFINFO_LIST → [VfConfig] (in VF order as reported); with `only`, just that VF
    (the others are not decoded past their number)."""
    out = []
    for t, vfdata in parse_attrs(data):
        if t != IFLA_VF_INFO:
            continue
        a = attr_map(vfdata)
        if IFLA_VF_MAC not in a:
            raise NetlinkDecodeError("IFLA_VF_INFO without IFLA_VF_MAC")
        vf, mac = unpack(VF_MAC, a[IFLA_VF_MAC], "IFLA_VF_MAC")
        if only is not None and vf != only:
            continue
        kw: dict = {"mac": mac_str(mac[:addr_len])}
        if IFLA_VF_VLAN in a:
            _, kw["vlan"], kw["qos"] = unpack(VF_VLAN, a[IFLA_VF_VLAN], "IFLA_VF_VLAN")
        if IFLA_VF_VLAN_LIST in a:
            for lt, lv in parse_attrs(a[IFLA_VF_VLAN_LIST]):
                if lt == IFLA_VF_VLAN_INFO:
                    _, vlan, qos, _proto = unpack(VF_VLAN_INFO, lv, "IFLA_VF_VLAN_INFO")
                    proto = BE16.unpack_from(lv, 12)[0]
                    # a driver that never had a VLAN set reports protocol 0: that is plain 802.1Q
                    kw.update(vlan=vlan, qos=qos, vlan_proto=name_of(VLAN_PROTOS, proto or 0x8100))
                    break
        if IFLA_VF_RATE in a:
            _, kw["min_tx_rate"], kw["max_tx_rate"] = unpack(VF_RATE, a[IFLA_VF_RATE], "IFLA_VF_RATE")
        elif IFLA_VF_TX_RATE in a:
            kw["max_tx_rate"] = unpack(VF_SETTING, a[IFLA_VF_TX_RATE], "IFLA_VF_TX_RATE")[1]
        kw.update({field: decode(a[key]) for key, (field, decode) in VF_ATTRS.items() if key in a})
        out.append(VfConfig(vf=vf, **kw))
    return out


def encode_vf_settings(vf: int, *, mac=None, vlan=None, qos=None, vlan_proto=None, spoofchk=None, trust=None,
                       link_state=None, min_tx_rate=None, max_tx_rate=None, node_guid=None, port_guid=None,
                       dev: str = "") -> bytes:
    """The IFLA_VF_* attributes (the inside of one IFLA_VF_INFO) for the given settings only.

    802.1Q VLANs use plain IFLA_VF_VLAN (accepted by every driver); 802.1ad needs IFLA_VF_VLAN_LIST
    with a 16-byte struct ifla_vf_vlan_info (vlan_proto big-endian, then 2 bytes of padding).
    """
    sub = []
    if mac is not None:
        sub.append(attr(IFLA_VF_MAC, VF_MAC.pack(vf, mac_bytes(mac))))
    if vlan is not None or qos is not None or vlan_proto is not None:
        proto = vlan_proto or "802.1Q"
        if proto not in VLAN_PROTOS:
            raise NetlinkError(errnos.EINVAL, "set vf vlan", dev, f"unknown vlan protocol {proto!r}")
        if proto == "802.1Q":
            sub.append(attr(IFLA_VF_VLAN, VF_VLAN.pack(vf, vlan or 0, qos or 0)))
        else:
            info = VF_VLAN.pack(vf, vlan or 0, qos or 0) + BE16.pack(VLAN_PROTOS[proto]) + b"\0\0"
            sub.append(attr(IFLA_VF_VLAN_LIST, attr(IFLA_VF_VLAN_INFO, info)))
    if spoofchk is not None:
        sub.append(attr(IFLA_VF_SPOOFCHK, VF_SETTING.pack(vf, int(spoofchk))))
    if trust is not None:
        sub.append(attr(IFLA_VF_TRUST, VF_SETTING.pack(vf, int(trust))))
    if link_state is not None:
        if link_state not in VF_LINK_STATES:
            raise NetlinkError(errnos.EINVAL, "set vf link state", dev, f"unknown link state {link_state!r}")
        sub.append(attr(IFLA_VF_LINK_STATE, VF_SETTING.pack(vf, VF_LINK_STATES[link_state])))
    if min_tx_rate is not None or max_tx_rate is not None:
        sub.append(attr(IFLA_VF_RATE, VF_RATE.pack(vf, min_tx_rate or 0, max_tx_rate or 0)))
    if node_guid is not None:
        sub.append(attr(IFLA_VF_IB_NODE_GUID, VF_GUID.pack(vf, node_guid)))
    if port_guid is not None:
        sub.append(attr(IFLA_VF_IB_PORT_GUID, VF_GUID.pack(vf, port_guid)))
    return b"".join(sub)


def vfs_of(payload: bytes, only: int | None = None) -> list[VfConfig]:
    """The VF table in an RTM_NEWLINK payload asked with RTEXT_FILTER_VF ([] for a link without VFs)."""
    a = attr_map(payload, IFINFOMSG.size)
    addr_len = len(a[IFLA_ADDRESS]) if a.get(IFLA_ADDRESS) else 6
    return decode_vfinfo_list(a[IFLA_VFINFO_LIST], addr_len, only) if IFLA_VFINFO_LIST in a else []


class VfOps(LinkOps):
    """The VF requests of `Rtnl` (sent to the PF).

    The kernel has no per-VF query: RTEXT_FILTER_VF returns the PF's whole VF table (its size grows with
    the PF's VF count), so a caller asks for it once per decision and reads the PF's own link from the
    same reply (`pf_get`); a plain `link_get` of a PF carries no VF table."""

    def pf_get(self, name: str | None = None, index: int | None = None,
               vf: int | None = None) -> tuple[Link, list[VfConfig]]:
        """A PF and its VF table in one request (with `vf`: only that VF's entry decoded)."""
        p = self.link_get_raw(name, index, vfs=True)
        return decode_link(p), vfs_of(p, vf)

    def vf_get(self, pf_index: int, vf: int) -> VfConfig | None:
        """What the PF reports about one VF; None when it does not list it."""
        return next(iter(self.pf_get(index=pf_index, vf=vf)[1]), None)

    def vfs(self, pf_index: int) -> list[VfConfig]:
        """The PF's VF configuration (IFLA_VFINFO_LIST, requested with RTEXT_FILTER_VF)."""
        return self.pf_get(index=pf_index)[1]

    def pfs(self) -> list[tuple[Link, list[VfConfig]]]:
        """Every link that has VFs, with its VF table: one dump (the admin-MAC search over the node)."""
        out = []
        for p in self.links_raw(vfs=True):
            link = decode_link(p)
            if link.num_vf:
                out.append((link, vfs_of(p)))
        return out

    def vf_set(self, pf_index: int, vf: int, *, mac: str | None = None, vlan: int | None = None,
               qos: int | None = None, vlan_proto: str | None = None, spoofchk: bool | None = None,
               trust: bool | None = None, link_state: str | None = None, min_tx_rate: int | None = None,
               max_tx_rate: int | None = None, node_guid: int | None = None,
               port_guid: int | None = None) -> None:
        """Configure one VF through its PF; only the given settings are sent."""
        dev = f"ifindex {pf_index} vf {vf}"
        if (min_tx_rate is None) != (max_tx_rate is None):  # IFLA_VF_RATE sets both: keep the other
            cur = self.vf_get(pf_index, vf)
            if cur is None:
                raise NetlinkError(errnos.EINVAL, "set vf rate", dev, "no such VF")
            min_tx_rate = cur.min_tx_rate if min_tx_rate is None else min_tx_rate
            max_tx_rate = cur.max_tx_rate if max_tx_rate is None else max_tx_rate
        sub = encode_vf_settings(vf, mac=mac, vlan=vlan, qos=qos, vlan_proto=vlan_proto, spoofchk=spoofchk,
                                 trust=trust, link_state=link_state, min_tx_rate=min_tx_rate,
                                 max_tx_rate=max_tx_rate, node_guid=node_guid, port_guid=port_guid, dev=dev)
        if not sub:
            return
        # Plain nests (no NLA_F_NESTED), as iproute2 and vishvananda/netlink send them: the same bytes
        # (tests/netns/test_vf_netlink_iproute2.py).
        body = ifinfomsg(pf_index) + attr(IFLA_VFINFO_LIST, attr(IFLA_VF_INFO, sub))
        self.request(RTM_NEWLINK, body, op="set vf", dev=dev)
