"""rtnetlink (NETLINK_ROUTE): links, addresses, routes and SR-IOV VF configuration.

`Rtnl()` opens its socket in the netns of the calling thread. For another netns, open it inside
`cni_rdma.netns.in_netns`:

    def configure(ifname):
        with Rtnl() as nl:
            link = nl.link_get(name=ifname)
            nl.link_set(link.index, up=True)
    in_netns(netns_path, configure, "net1")

Records (`Link`, `Addr`, `Route`, `Nexthop`, `VfInfo`) are immutable. Addresses are
`ipaddress.ip_interface` values, route destinations `ip_network`, gateways `ip_address`.
"""
from __future__ import annotations

import errno
import struct

from .core import (
    NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, BE16, LinkNotFound, Record, NetlinkDecodeError, NetlinkError, NetlinkSocket, NETLINK_ROUTE,
    a_be16, a_nest, a_str, a_u16, a_u32, attr, attr_map, d_be16, d_str, d_u16, d_u32, d_u8, mac_bytes, mac_str,
    parse_attrs, unpack,
)

AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10

# message types (linux/rtnetlink.h)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWLINKPROP, RTM_DELLINKPROP = 108, 109

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops, ifindex

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000

# ifi_type values (linux/if_arp.h) that the plugins tell apart
ARPHRD_ETHER = 1
ARPHRD_INFINIBAND = 32
ARPHRD_LOOPBACK = 772

# IFLA_* (linux/if_link.h)
IFLA_ADDRESS = 1
IFLA_BROADCAST = 2
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_TXQLEN = 13
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_NUM_VF = 21
IFLA_VFINFO_LIST = 22
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_CARRIER = 33
IFLA_LINK_NETNSID = 37
IFLA_MIN_MTU = 50
IFLA_MAX_MTU = 51
IFLA_PROP_LIST = 52
IFLA_ALT_IFNAME = 53
IFLA_PERM_ADDRESS = 54
IFLA_PARENT_DEV_NAME = 56

IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4

RTEXT_FILTER_VF = 1 << 0
RTEXT_FILTER_SKIP_STATS = 1 << 3

# macvlan
IFLA_MACVLAN_MODE = 1
IFLA_MACVLAN_FLAGS = 2
IFLA_MACVLAN_MACADDR_MODE = 3
IFLA_MACVLAN_MACADDR = 4
IFLA_MACVLAN_MACADDR_DATA = 5
IFLA_MACVLAN_BC_QUEUE_LEN = 7
MACVLAN_MACADDR_SET = 3
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
# ipvlan
IFLA_IPVLAN_MODE = 1
IFLA_IPVLAN_FLAGS = 2
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}
# vlan
IFLA_VLAN_ID = 1
IFLA_VLAN_PROTOCOL = 5
VLAN_PROTOS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
# veth
VETH_INFO_PEER = 1

OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

# addresses (linux/if_addr.h)
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80
IFA_F_NOPREFIXROUTE = 0x200

# routes
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_METRICS = 8
RTA_MULTIPATH = 9
RTA_TABLE = 15
RTAX_MTU = 2
RTAX_ADVMSS = 8
RTNH_F_ONLINK = 4
RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
RTPROT_UNSPEC = 0
RTPROT_KERNEL = 2
RTPROT_BOOT = 3
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BROADCAST = 3
RTN_ANYCAST = 4
RTN_MULTICAST = 5

# SR-IOV VF attributes (IFLA_VFINFO_LIST > IFLA_VF_INFO > IFLA_VF_*)
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
VF_MAC = struct.Struct("=I32s")  # struct ifla_vf_mac
VF_VLAN = struct.Struct("=III")  # struct ifla_vf_vlan: vf, vlan, qos
VF_VLAN_INFO = struct.Struct("=IIIH2x")  # struct ifla_vf_vlan_info: 16 bytes, vlan_proto big-endian
VF_SETTING = struct.Struct("=II")  # spoofchk, trust, link_state, tx_rate, rss_query_en: vf, value
VF_RATE = struct.Struct("=III")  # vf, min_tx_rate, max_tx_rate
VF_GUID = struct.Struct("=I4xQ")  # struct ifla_vf_guid (u64 aligned)
_UNSET32 = 0xFFFFFFFF


def _name_of(table: dict[str, int], value: int) -> str:
    for k, v in table.items():
        if v == value:
            return k
    return str(value)


class Link(Record):
    """One network device as the kernel reports it."""

    __slots__ = ("index", "name", "mac", "mtu", "flags", "up", "operstate", "kind", "mode", "flag",
                 "vlan_id", "vlan_proto", "source_macs", "master", "link", "link_netnsid", "txqlen",
                 "altnames", "num_vf", "carrier", "perm_mac", "min_mtu", "max_mtu", "parent_dev", "slave_kind",
                 "bcqueuelen", "link_type")
    _defaults = dict(mac=None, mtu=0, flags=0, up=False, operstate="unknown", kind=None, mode=None, flag=None,
                     vlan_id=None, vlan_proto=None, source_macs=(), master=None, link=None, link_netnsid=None,
                     txqlen=None, altnames=(), num_vf=None, carrier=None, perm_mac=None, min_mtu=None,
                     max_mtu=None, parent_dev=None, slave_kind=None, bcqueuelen=None, link_type=0)
    index: int
    name: str
    mac: str | None  #: lowercase colon-separated hardware address
    mtu: int
    flags: int  #: IFF_* bits
    up: bool  #: administratively up (IFF_UP)
    operstate: str
    kind: str | None  #: IFLA_INFO_KIND: "macvlan", "ipvlan", "vlan", "veth", "dummy"...
    mode: str | None  #: macvlan mode or ipvlan mode
    flag: str | None  #: ipvlan flag: bridge/private/vepa
    vlan_id: int | None
    vlan_proto: str | None  #: "802.1Q" or "802.1ad"
    source_macs: tuple  #: macvlan source mode: allowed source MACs
    master: int | None
    link: int | None  #: parent ifindex (in the netns of link_netnsid when set)
    link_netnsid: int | None
    txqlen: int | None
    altnames: tuple
    num_vf: int | None
    carrier: bool | None
    perm_mac: str | None
    min_mtu: int | None
    max_mtu: int | None
    parent_dev: str | None  #: e.g. the PCI address of a physical function
    slave_kind: str | None
    bcqueuelen: int | None  #: macvlan: broadcast/multicast queue length requested by this link
    link_type: int  #: ifi_type, ARPHRD_* (1 Ethernet, 32 InfiniBand/IPoIB, 772 loopback)


class Addr(Record):
    """One address on a link; `address` is an ipaddress interface (address with prefix)."""

    __slots__ = ("index", "address", "flags", "scope", "label")
    _defaults = dict(flags=0, scope=0, label=None)
    index: int
    address: object  # IPv4Interface | IPv6Interface
    flags: int  #: IFA_F_* bits
    scope: int
    label: str | None

    @property
    def family(self) -> int:
        return AF_INET if self.address.version == 4 else AF_INET6

    @property
    def tentative(self) -> bool:
        return bool(self.flags & IFA_F_TENTATIVE) and not self.flags & IFA_F_DADFAILED

    @property
    def dadfailed(self) -> bool:
        return bool(self.flags & IFA_F_DADFAILED)

    @property
    def permanent(self) -> bool:
        return bool(self.flags & IFA_F_PERMANENT)


class Nexthop(Record):
    """One path of an ECMP route; weight is 1..256 (the kernel's hops + 1)."""

    __slots__ = ("gateway", "oif", "weight", "onlink", "flags")
    _defaults = dict(gateway=None, oif=None, weight=1, onlink=False, flags=0)
    gateway: object  # IPv4Address | IPv6Address | None
    oif: int | None
    weight: int
    onlink: bool
    flags: int


class Route(Record):
    """A route. `dst` is an ip_network (0.0.0.0/0 or ::/0 for default).

    On add, `scope=None` picks what `ip route` picks (link without a gateway, else universe) and
    `proto=None` means boot; on delete, None fields match anything.
    """

    __slots__ = ("dst", "gateway", "oif", "table", "priority", "scope", "proto", "type", "src", "mtu",
                 "advmss", "onlink", "multipath", "flags")
    _defaults = dict(gateway=None, oif=None, table=RT_TABLE_MAIN, priority=None, scope=None, proto=None,
                     type=RTN_UNICAST, src=None, mtu=None, advmss=None, onlink=False, multipath=(), flags=0)
    dst: object  # IPv4Network | IPv6Network
    gateway: object
    oif: int | None
    table: int
    priority: int | None  #: the metric
    scope: int | None
    proto: int | None
    type: int
    src: object  #: preferred source address (RTA_PREFSRC)
    mtu: int | None
    advmss: int | None
    onlink: bool
    multipath: tuple  #: tuple of Nexthop
    flags: int  #: rtm_flags as read back (RTNH_F_*)

    @property
    def family(self) -> int:
        return AF_INET if self.dst.version == 4 else AF_INET6

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0


class VfInfo(Record):
    """SR-IOV VF configuration as the PF driver reports it; None where the driver reports nothing."""

    __slots__ = ("vf", "mac", "vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate",
                 "max_tx_rate", "rss_query_en", "node_guid", "port_guid")
    _defaults = dict(mac=None, vlan=0, qos=0, vlan_proto="802.1Q", spoofchk=None, trust=None, link_state=None,
                     min_tx_rate=0, max_tx_rate=0, rss_query_en=None, node_guid=None, port_guid=None)
    vf: int
    mac: str | None
    vlan: int
    qos: int
    vlan_proto: str
    spoofchk: bool | None
    trust: bool | None
    link_state: str | None  #: auto / enable / disable
    min_tx_rate: int  #: Mbps
    max_tx_rate: int
    rss_query_en: bool | None
    node_guid: int | None
    port_guid: int | None


# ---------------------------------------------------------------- decoding (pure functions)
def _ifinfo(payload: bytes) -> tuple[int, int, int, int]:
    _family, link_type, index, flags, _change = unpack(IFINFOMSG, payload, "ifinfomsg")
    return index, flags, link_type, IFINFOMSG.size


def decode_link(payload: bytes) -> Link:
    """An RTM_NEWLINK payload → Link."""
    index, flags, link_type, off = _ifinfo(payload)
    a = attr_map(payload, off)
    kw: dict = {"link_type": link_type}
    if IFLA_IFNAME not in a:
        raise NetlinkDecodeError(f"link {index} has no IFLA_IFNAME")
    if IFLA_ADDRESS in a and a[IFLA_ADDRESS]:
        kw["mac"] = mac_str(a[IFLA_ADDRESS])
    if IFLA_PERM_ADDRESS in a and a[IFLA_PERM_ADDRESS]:
        kw["perm_mac"] = mac_str(a[IFLA_PERM_ADDRESS])
    for key, kind in ((IFLA_MTU, "mtu"), (IFLA_MASTER, "master"), (IFLA_LINK, "link"), (IFLA_TXQLEN, "txqlen"),
                      (IFLA_NUM_VF, "num_vf"), (IFLA_MIN_MTU, "min_mtu"), (IFLA_MAX_MTU, "max_mtu")):
        if key in a:
            kw[kind] = d_u32(a[key], kind)
    if IFLA_LINK_NETNSID in a:
        kw["link_netnsid"] = struct.unpack("=i", a[IFLA_LINK_NETNSID][:4].ljust(4, b"\0"))[0]
    if IFLA_OPERSTATE in a:
        st = d_u8(a[IFLA_OPERSTATE], "operstate")
        kw["operstate"] = OPERSTATES[st] if st < len(OPERSTATES) else str(st)
    if IFLA_CARRIER in a:
        kw["carrier"] = bool(d_u8(a[IFLA_CARRIER], "carrier"))
    if IFLA_PARENT_DEV_NAME in a:
        kw["parent_dev"] = d_str(a[IFLA_PARENT_DEV_NAME])
    if IFLA_PROP_LIST in a:
        kw["altnames"] = tuple(d_str(v) for t, v in parse_attrs(a[IFLA_PROP_LIST]) if t == IFLA_ALT_IFNAME)
    if IFLA_LINKINFO in a:
        kw.update(_decode_linkinfo(a[IFLA_LINKINFO]))
    return Link(index=index, name=d_str(a[IFLA_IFNAME]), flags=flags, up=bool(flags & IFF_UP), **kw)


def _decode_linkinfo(data: bytes) -> dict:
    info = attr_map(data)
    out: dict = {}
    kind = d_str(info[IFLA_INFO_KIND]) if IFLA_INFO_KIND in info else None
    out["kind"] = kind
    if IFLA_INFO_SLAVE_KIND in info:
        out["slave_kind"] = d_str(info[IFLA_INFO_SLAVE_KIND])
    d = attr_map(info[IFLA_INFO_DATA]) if IFLA_INFO_DATA in info else {}
    if kind in ("macvlan", "macvtap"):
        if IFLA_MACVLAN_MODE in d:
            out["mode"] = _name_of(MACVLAN_MODES, d_u32(d[IFLA_MACVLAN_MODE], "macvlan mode"))
        if IFLA_MACVLAN_BC_QUEUE_LEN in d:
            out["bcqueuelen"] = d_u32(d[IFLA_MACVLAN_BC_QUEUE_LEN], "macvlan bcqueuelen")
        if IFLA_MACVLAN_MACADDR_DATA in d:
            out["source_macs"] = tuple(mac_str(v) for t, v in parse_attrs(d[IFLA_MACVLAN_MACADDR_DATA])
                                       if t == IFLA_MACVLAN_MACADDR)
    elif kind in ("ipvlan", "ipvtap"):
        if IFLA_IPVLAN_MODE in d:
            out["mode"] = _name_of(IPVLAN_MODES, d_u16(d[IFLA_IPVLAN_MODE], "ipvlan mode"))
        if IFLA_IPVLAN_FLAGS in d:
            out["flag"] = _name_of(IPVLAN_FLAGS, d_u16(d[IFLA_IPVLAN_FLAGS], "ipvlan flags"))
    elif kind == "vlan":
        if IFLA_VLAN_ID in d:
            out["vlan_id"] = d_u16(d[IFLA_VLAN_ID], "vlan id")
        if IFLA_VLAN_PROTOCOL in d:
            out["vlan_proto"] = _name_of(VLAN_PROTOS, d_be16(d[IFLA_VLAN_PROTOCOL], "vlan protocol"))
    return out


def _ip_from(family: int, b: bytes):
    import ipaddress
    n = 4 if family == AF_INET else 16
    if len(b) < n:
        raise NetlinkDecodeError(f"address of {len(b)} bytes for family {family}")
    return ipaddress.ip_address(bytes(b[:n]))


def decode_addr(payload: bytes) -> Addr:
    """An RTM_NEWADDR payload → Addr."""
    import ipaddress
    family, prefixlen, flags, scope, index = unpack(IFADDRMSG, payload, "ifaddrmsg")
    if family not in (AF_INET, AF_INET6):
        raise NetlinkDecodeError(f"address family {family}")
    a = attr_map(payload, IFADDRMSG.size)
    raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
    if raw is None:
        raise NetlinkDecodeError(f"address on link {index} without IFA_LOCAL/IFA_ADDRESS")
    ip = _ip_from(family, raw)
    if prefixlen > (32 if family == AF_INET else 128):
        raise NetlinkDecodeError(f"prefix length {prefixlen}")
    if IFA_FLAGS in a:
        flags = d_u32(a[IFA_FLAGS], "IFA_FLAGS")
    label = d_str(a[IFA_LABEL]) if IFA_LABEL in a else None
    return Addr(index=index, address=ipaddress.ip_interface((ip, prefixlen)), flags=flags, scope=scope,
                label=label)


def decode_route(payload: bytes) -> Route:
    """An RTM_NEWROUTE payload → Route."""
    import ipaddress
    family, dst_len, _src_len, _tos, table, proto, scope, rtype, rflags = unpack(RTMSG, payload, "rtmsg")
    if family not in (AF_INET, AF_INET6):
        raise NetlinkDecodeError(f"route family {family}")
    if dst_len > (32 if family == AF_INET else 128):
        raise NetlinkDecodeError(f"route prefix length {dst_len}")
    a = attr_map(payload, RTMSG.size)
    if RTA_DST in a:
        dst = ipaddress.ip_network((_ip_from(family, a[RTA_DST]), dst_len), strict=False)
    else:
        dst = ipaddress.ip_network("0.0.0.0/0" if family == AF_INET else "::/0")
    kw: dict = {}
    if RTA_TABLE in a:
        table = d_u32(a[RTA_TABLE], "RTA_TABLE")
    if RTA_GATEWAY in a:
        kw["gateway"] = _ip_from(family, a[RTA_GATEWAY])
    if RTA_OIF in a:
        kw["oif"] = d_u32(a[RTA_OIF], "RTA_OIF")
    if RTA_PRIORITY in a:
        kw["priority"] = d_u32(a[RTA_PRIORITY], "RTA_PRIORITY")
    if RTA_PREFSRC in a:
        kw["src"] = _ip_from(family, a[RTA_PREFSRC])
    if RTA_METRICS in a:
        m = attr_map(a[RTA_METRICS])
        if RTAX_MTU in m:
            kw["mtu"] = d_u32(m[RTAX_MTU], "RTAX_MTU")
        if RTAX_ADVMSS in m:
            kw["advmss"] = d_u32(m[RTAX_ADVMSS], "RTAX_ADVMSS")
    if RTA_MULTIPATH in a:
        kw["multipath"] = _decode_multipath(family, a[RTA_MULTIPATH])
    return Route(dst=dst, table=table, proto=proto, scope=scope, type=rtype, flags=rflags,
                 onlink=bool(rflags & RTNH_F_ONLINK), **kw)


def _decode_multipath(family: int, data: bytes) -> tuple:
    hops = []
    pos = 0
    while len(data) - pos >= RTNEXTHOP.size:
        n, flags, hopcount, ifindex = RTNEXTHOP.unpack_from(data, pos)
        if n < RTNEXTHOP.size or pos + n > len(data):
            raise NetlinkDecodeError(f"rtnexthop length {n} at offset {pos} of {len(data)}")
        a = attr_map(data, pos + RTNEXTHOP.size, pos + n)
        gw = _ip_from(family, a[RTA_GATEWAY]) if RTA_GATEWAY in a else None
        hops.append(Nexthop(gateway=gw, oif=ifindex or None, weight=hopcount + 1,
                            onlink=bool(flags & RTNH_F_ONLINK), flags=flags))
        pos += (n + 3) & ~3
    return tuple(hops)


def decode_vfinfo_list(data: bytes, addr_len: int = 6) -> list[VfInfo]:
    """The payload of IFLA_VFINFO_LIST → [VfInfo] (in VF order as reported)."""
    out = []
    for t, vfdata in parse_attrs(data):
        if t != IFLA_VF_INFO:
            continue
        a = attr_map(vfdata)
        if IFLA_VF_MAC not in a:
            raise NetlinkDecodeError("IFLA_VF_INFO without IFLA_VF_MAC")
        vf, mac = unpack(VF_MAC, a[IFLA_VF_MAC], "IFLA_VF_MAC")
        kw: dict = {"mac": mac_str(mac[:addr_len])}
        if IFLA_VF_VLAN in a:
            _, kw["vlan"], kw["qos"] = unpack(VF_VLAN, a[IFLA_VF_VLAN], "IFLA_VF_VLAN")
        if IFLA_VF_VLAN_LIST in a:
            for lt, lv in parse_attrs(a[IFLA_VF_VLAN_LIST]):
                if lt == IFLA_VF_VLAN_INFO:
                    _, vlan, qos, _proto = unpack(VF_VLAN_INFO, lv, "IFLA_VF_VLAN_INFO")
                    proto = BE16.unpack_from(lv, 12)[0]
                    # a driver that never had a VLAN set reports protocol 0: that is plain 802.1Q
                    kw.update(vlan=vlan, qos=qos, vlan_proto=_name_of(VLAN_PROTOS, proto or 0x8100))
                    break
        if IFLA_VF_RATE in a:
            _, kw["min_tx_rate"], kw["max_tx_rate"] = unpack(VF_RATE, a[IFLA_VF_RATE], "IFLA_VF_RATE")
        elif IFLA_VF_TX_RATE in a:
            kw["max_tx_rate"] = unpack(VF_SETTING, a[IFLA_VF_TX_RATE], "IFLA_VF_TX_RATE")[1]
        for key, name in ((IFLA_VF_SPOOFCHK, "spoofchk"), (IFLA_VF_TRUST, "trust"),
                          (IFLA_VF_RSS_QUERY_EN, "rss_query_en")):
            if key in a:
                v = unpack(VF_SETTING, a[key], name)[1]
                kw[name] = None if v == _UNSET32 else bool(v)
        if IFLA_VF_LINK_STATE in a:
            kw["link_state"] = _name_of(VF_LINK_STATES, unpack(VF_SETTING, a[IFLA_VF_LINK_STATE], "link state")[1])
        for key, name in ((IFLA_VF_IB_NODE_GUID, "node_guid"), (IFLA_VF_IB_PORT_GUID, "port_guid")):
            if key in a:
                kw[name] = unpack(VF_GUID, a[key], name)[1]
        out.append(VfInfo(vf=vf, **kw))
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
            raise NetlinkError(errno.EINVAL, "set vf vlan", dev, f"unknown vlan protocol {proto!r}")
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
            raise NetlinkError(errno.EINVAL, "set vf link state", dev, f"unknown link state {link_state!r}")
        sub.append(attr(IFLA_VF_LINK_STATE, VF_SETTING.pack(vf, VF_LINK_STATES[link_state])))
    if min_tx_rate is not None or max_tx_rate is not None:
        sub.append(attr(IFLA_VF_RATE, VF_RATE.pack(vf, min_tx_rate or 0, max_tx_rate or 0)))
    if node_guid is not None:
        sub.append(attr(IFLA_VF_IB_NODE_GUID, VF_GUID.pack(vf, node_guid)))
    if port_guid is not None:
        sub.append(attr(IFLA_VF_IB_PORT_GUID, VF_GUID.pack(vf, port_guid)))
    return b"".join(sub)


# ---------------------------------------------------------------- encoding helpers
def _ifinfomsg(index: int = 0, up: bool | None = None, family: int = AF_UNSPEC) -> bytes:
    if up is None:
        return IFINFOMSG.pack(family, 0, index, 0, 0)
    return IFINFOMSG.pack(family, 0, index, IFF_UP if up else 0, IFF_UP)


def _ip_bytes(ip) -> bytes:
    return ip.packed


def _family_of(ip) -> int:
    return AF_INET if ip.version == 4 else AF_INET6


def encode_route(r: Route, delete: bool = False) -> bytes:
    """Route → rtmsg + attributes for RTM_NEWROUTE (or RTM_DELROUTE when delete)."""
    family = _family_of(r.dst)
    if r.scope is not None:
        scope = r.scope
    elif delete:
        scope = RT_SCOPE_NOWHERE
    elif r.type == RTN_LOCAL:
        scope = RT_SCOPE_HOST
    elif r.type in (RTN_BROADCAST, RTN_MULTICAST, RTN_ANYCAST):
        scope = RT_SCOPE_LINK
    elif r.gateway is None and not r.multipath:
        scope = RT_SCOPE_LINK
    else:
        scope = RT_SCOPE_UNIVERSE
    proto = r.proto if r.proto is not None else (RTPROT_UNSPEC if delete else RTPROT_BOOT)
    table = r.table if r.table is not None else RT_TABLE_MAIN
    rtype = r.type
    flags = RTNH_F_ONLINK if r.onlink else 0
    body = [RTMSG.pack(family, r.dst.prefixlen, 0, 0, table if table < 256 else RT_TABLE_UNSPEC, proto, scope,
                       rtype, flags),
            a_u32(RTA_TABLE, table)]
    if r.dst.prefixlen:
        body.append(attr(RTA_DST, r.dst.network_address.packed))
    if r.gateway is not None:
        body.append(attr(RTA_GATEWAY, _ip_bytes(r.gateway)))
    if r.oif is not None:
        body.append(a_u32(RTA_OIF, r.oif))
    if r.priority is not None:
        body.append(a_u32(RTA_PRIORITY, r.priority))
    if r.src is not None:
        body.append(attr(RTA_PREFSRC, _ip_bytes(r.src)))
    metrics = []
    if r.mtu is not None:
        metrics.append(a_u32(RTAX_MTU, r.mtu))
    if r.advmss is not None:
        metrics.append(a_u32(RTAX_ADVMSS, r.advmss))
    if metrics:
        body.append(a_nest(RTA_METRICS, *metrics))
    if r.multipath:
        hops = []
        for nh in r.multipath:
            if not 1 <= nh.weight <= 256:
                raise NetlinkError(errno.EINVAL, "route nexthop", str(r.dst), f"weight {nh.weight} outside 1..256")
            sub = attr(RTA_GATEWAY, _ip_bytes(nh.gateway)) if nh.gateway is not None else b""
            hflags = (nh.flags & ~RTNH_F_ONLINK) | (RTNH_F_ONLINK if nh.onlink else 0)
            hops.append(RTNEXTHOP.pack(RTNEXTHOP.size + len(sub), hflags, nh.weight - 1, nh.oif or 0) + sub)
        body.append(attr(RTA_MULTIPATH, b"".join(hops)))
    return b"".join(body)


def _route_desc(r: Route) -> str:
    s = "default" if r.dst.prefixlen == 0 else str(r.dst)
    if r.gateway is not None:
        s += f" via {r.gateway}"
    if r.table not in (None, RT_TABLE_MAIN):
        s += f" table {r.table}"
    return s


# ---------------------------------------------------------------- the socket

def _link_attrs(*, mac: str | None = None, mtu: int | None = None, txqlen: int | None = None,
                netns_fd: int | None = None) -> list[bytes]:
    """The optional IFLA_* attributes shared by link create, link set and a veth peer."""
    out = []
    if mac is not None:
        out.append(attr(IFLA_ADDRESS, mac_bytes(mac)))
    if mtu is not None:
        out.append(a_u32(IFLA_MTU, mtu))
    if txqlen is not None:
        out.append(a_u32(IFLA_TXQLEN, txqlen))
    if netns_fd is not None:
        out.append(a_u32(IFLA_NET_NS_FD, netns_fd))
    return out

class Rtnl(NetlinkSocket):
    """An rtnetlink socket in the calling thread's netns. Use as a context manager."""

    protocol = NETLINK_ROUTE

    # ---- links
    def link_get(self, name: str | None = None, index: int | None = None) -> Link:
        """One link by name (or alternative name) or by index; LinkNotFound when absent."""
        return decode_link(self._link_get_raw(name, index))

    def _link_get_raw(self, name: str | None, index: int | None) -> bytes:
        if (name is None) == (index is None):
            raise TypeError("link_get needs exactly one of name= or index=")
        # RTEXT_FILTER_VF also makes the kernel report IFLA_NUM_VF (else num_vf would always be None);
        # for links that are not PFs it adds nothing.
        body = _ifinfomsg(index or 0) + a_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS | RTEXT_FILTER_VF)
        if name is not None:
            body += a_str(IFLA_IFNAME if len(name.encode()) < 16 else IFLA_ALT_IFNAME, name)
        dev = name if name is not None else f"ifindex {index}"
        replies = self.request(RTM_GETLINK, body, op="get link", dev=dev, reply_type=RTM_NEWLINK)
        if not replies:
            raise NetlinkDecodeError(f"no RTM_NEWLINK in the reply for {dev}")
        return replies[0]

    def link_exists(self, name: str) -> bool:
        try:
            self.link_get(name=name)
            return True
        except LinkNotFound:
            return False

    def links(self) -> list[Link]:
        body = _ifinfomsg() + a_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS | RTEXT_FILTER_VF)
        return [decode_link(p) for p in self.dump(RTM_GETLINK, body, op="dump links", reply_type=RTM_NEWLINK)]

    def _newlink(self, name: str, kind: str, data: bytes = b"", *, parent_index: int | None = None,
                 mac: str | None = None, mtu: int | None = None, txqlen: int | None = None,
                 netns_fd: int | None = None, up: bool = False, extra: bytes = b"") -> None:
        body = [_ifinfomsg(up=True) if up else _ifinfomsg(), a_str(IFLA_IFNAME, name)]
        if parent_index is not None:
            body.append(a_u32(IFLA_LINK, parent_index))
        body += _link_attrs(mac=mac, mtu=mtu, txqlen=txqlen, netns_fd=netns_fd)
        body.append(extra)
        info = [a_str(IFLA_INFO_KIND, kind)]
        if data:
            info.append(a_nest(IFLA_INFO_DATA, data))
        body.append(a_nest(IFLA_LINKINFO, *info))
        self.request(RTM_NEWLINK, b"".join(body), NLM_F_CREATE | NLM_F_EXCL, op=f"create {kind}", dev=name)

    def link_add_macvlan(self, name: str, parent_index: int, mode: str = "bridge", *, mac: str | None = None,
                         mtu: int | None = None, netns_fd: int | None = None, txqlen: int | None = None,
                         source_macs: tuple | list = (), bcqueuelen: int | None = None, up: bool = False) -> None:
        """Create a macvlan on parent_index (in this netns); with netns_fd it is created in that netns."""
        if mode not in MACVLAN_MODES:
            raise NetlinkError(errno.EINVAL, "create macvlan", name, f"unknown mode {mode!r}")
        data = a_u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])
        if source_macs:
            data += a_u32(IFLA_MACVLAN_MACADDR_MODE, MACVLAN_MACADDR_SET)
            data += a_nest(IFLA_MACVLAN_MACADDR_DATA, *(attr(IFLA_MACVLAN_MACADDR, mac_bytes(m)) for m in source_macs))
        if bcqueuelen is not None:
            data += a_u32(IFLA_MACVLAN_BC_QUEUE_LEN, bcqueuelen)
        self._newlink(name, "macvlan", data, parent_index=parent_index, mac=mac, mtu=mtu, txqlen=txqlen,
                      netns_fd=netns_fd, up=up)

    def link_add_ipvlan(self, name: str, parent_index: int, mode: str = "l2", flag: str = "bridge", *,
                        mtu: int | None = None, netns_fd: int | None = None, up: bool = False) -> None:
        if mode not in IPVLAN_MODES:
            raise NetlinkError(errno.EINVAL, "create ipvlan", name, f"unknown mode {mode!r}")
        if flag not in IPVLAN_FLAGS:
            raise NetlinkError(errno.EINVAL, "create ipvlan", name, f"unknown flag {flag!r}")
        data = a_u16(IFLA_IPVLAN_MODE, IPVLAN_MODES[mode]) + a_u16(IFLA_IPVLAN_FLAGS, IPVLAN_FLAGS[flag])
        self._newlink(name, "ipvlan", data, parent_index=parent_index, mtu=mtu, netns_fd=netns_fd, up=up)

    def link_add_vlan(self, name: str, parent_index: int, vlan_id: int, proto: str = "802.1Q", *,
                      mtu: int | None = None, mac: str | None = None, netns_fd: int | None = None,
                      up: bool = False) -> None:
        if proto not in VLAN_PROTOS:
            raise NetlinkError(errno.EINVAL, "create vlan", name, f"unknown protocol {proto!r}")
        data = a_u16(IFLA_VLAN_ID, vlan_id) + a_be16(IFLA_VLAN_PROTOCOL, VLAN_PROTOS[proto])
        self._newlink(name, "vlan", data, parent_index=parent_index, mtu=mtu, mac=mac, netns_fd=netns_fd, up=up)

    def link_add_veth(self, name: str, peer: str, *, peer_netns_fd: int | None = None, mtu: int | None = None,
                      mac: str | None = None, peer_mac: str | None = None) -> None:
        pbody = [_ifinfomsg(), a_str(IFLA_IFNAME, peer), *_link_attrs(mac=peer_mac, mtu=mtu, netns_fd=peer_netns_fd)]
        self._newlink(name, "veth", attr(VETH_INFO_PEER, b"".join(pbody)), mtu=mtu, mac=mac)

    def link_add_dummy(self, name: str, *, mtu: int | None = None, mac: str | None = None) -> None:
        self._newlink(name, "dummy", mtu=mtu, mac=mac)

    def link_del(self, index: int) -> None:
        self.request(RTM_DELLINK, _ifinfomsg(index), op="delete link", dev=f"ifindex {index}")

    def link_set(self, index: int, *, up: bool | None = None, mtu: int | None = None, mac: str | None = None,
                 name: str | None = None, netns_fd: int | None = None, txqlen: int | None = None) -> None:
        """Change a link; everything in one message (the kernel moves netns and renames before bringing up)."""
        body = [_ifinfomsg(index, up)]
        if name is not None:
            body.append(a_str(IFLA_IFNAME, name))
        body += _link_attrs(mac=mac, mtu=mtu, txqlen=txqlen, netns_fd=netns_fd)
        self.request(RTM_NEWLINK, b"".join(body), op="set link", dev=name or f"ifindex {index}")

    def link_altname_add(self, index: int, altname: str) -> None:
        body = _ifinfomsg(index) + a_nest(IFLA_PROP_LIST, a_str(IFLA_ALT_IFNAME, altname))
        self.request(RTM_NEWLINKPROP, body, NLM_F_EXCL, op="add altname", dev=altname)

    def link_altname_del(self, index: int, altname: str) -> None:
        body = _ifinfomsg(index) + a_nest(IFLA_PROP_LIST, a_str(IFLA_ALT_IFNAME, altname))
        self.request(RTM_DELLINKPROP, body, op="delete altname", dev=altname)

    # ---- addresses
    def _addr_msg(self, index: int, address, flags: int, broadcast: bool) -> bytes:
        import ipaddress
        iface = ipaddress.ip_interface(address)
        family = _family_of(iface)
        packed = iface.ip.packed
        body = [IFADDRMSG.pack(family, iface.network.prefixlen, flags & 0xFF, 0, index),
                attr(IFA_LOCAL, packed), attr(IFA_ADDRESS, packed)]
        if flags > 0xFF:
            body.append(a_u32(IFA_FLAGS, flags))
        if broadcast and family == AF_INET and iface.network.prefixlen < 31:
            body.append(attr(IFA_BROADCAST, iface.network.broadcast_address.packed))
        return b"".join(body)

    def addr_add(self, index: int, address, *, nodad: bool = False, optimistic: bool = False,
                 noprefixroute: bool = False, replace: bool = False) -> None:
        """Add an address (an ip_interface or "10.1.2.3/24"); IPv4 gets the subnet broadcast.

        optimistic (IPv6) only takes effect where the link's `optimistic_dad` sysctl is 1: the kernel
        ignores the flag otherwise and the address stays tentative until DAD completes.
        """
        flags = ((IFA_F_NODAD if nodad else 0) | (IFA_F_OPTIMISTIC if optimistic else 0)
                 | (IFA_F_NOPREFIXROUTE if noprefixroute else 0))
        nlflags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        self.request(RTM_NEWADDR, self._addr_msg(index, address, flags, True), nlflags,
                     op=f"add address {address}", dev=f"ifindex {index}")

    def addr_del(self, index: int, address) -> None:
        self.request(RTM_DELADDR, self._addr_msg(index, address, 0, False), op=f"delete address {address}",
                     dev=f"ifindex {index}")

    def addrs(self, index: int | None = None, family: int | None = None) -> list[Addr]:
        body = IFADDRMSG.pack(family or AF_UNSPEC, 0, 0, 0, index or 0)
        out = []
        for p in self.dump(RTM_GETADDR, body, op="dump addresses", reply_type=RTM_NEWADDR):
            fam = p[0] if p else 0
            if fam not in (AF_INET, AF_INET6):
                continue
            a = decode_addr(p)
            if (index is None or a.index == index) and (family in (None, AF_UNSPEC) or a.family == family):
                out.append(a)
        return out

    def wait_dad(self, index: int, timeout: float = 5.0, interval: float = 0.05) -> None:
        """Wait until no IPv6 address on the link is tentative; NetlinkError(EADDRNOTAVAIL) on DAD failure."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            pending = False
            for a in self.addrs(index=index, family=AF_INET6):
                if a.dadfailed:
                    raise NetlinkError(errno.EADDRNOTAVAIL, "duplicate address detection", f"ifindex {index}",
                                       f"{a.address} is a duplicate")
                pending = pending or a.tentative
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise NetlinkError(errno.ETIME, "duplicate address detection", f"ifindex {index}",
                                   f"addresses still tentative after {timeout}s")
            time.sleep(interval)

    # ---- routes
    def route_add(self, route: Route, *, replace: bool = False, append: bool = False) -> None:
        """Add a route; replace= overwrites an existing one, append= adds beside it (Go's RouteAddEcmp)."""
        flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_APPEND if append else NLM_F_EXCL)
        self.request(RTM_NEWROUTE, encode_route(route), flags, op="add route", dev=_route_desc(route))

    def route_del(self, route: Route) -> None:
        self.request(RTM_DELROUTE, encode_route(route, delete=True), op="delete route", dev=_route_desc(route))

    def routes(self, family: int | None = None, table: int | None = None, oif: int | None = None) -> list[Route]:
        """Routes (all tables when table is None), excluding cached clones."""
        body = RTMSG.pack(family or AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
        if table is not None:
            body += a_u32(RTA_TABLE, table)
        try:
            payloads = self.dump(RTM_GETROUTE, body, op="dump routes", reply_type=RTM_NEWROUTE)
        except NetlinkError as e:
            if e.errno == errno.ENOENT and table is not None:  # ENOENT: that table does not exist (yet)
                return []
            raise
        out = []
        for p in payloads:
            if not p or p[0] not in (AF_INET, AF_INET6):
                continue
            r = decode_route(p)
            if table is not None and r.table != table:
                continue
            if family not in (None, AF_UNSPEC) and r.family != family:
                continue
            if oif is not None and r.oif != oif and not any(nh.oif == oif for nh in r.multipath):
                continue
            out.append(r)
        return out

    # ---- SR-IOV
    def vfs(self, pf_index: int) -> list[VfInfo]:
        """The PF's VF configuration (IFLA_VFINFO_LIST, requested with RTEXT_FILTER_VF)."""
        p = self._link_get_raw(None, pf_index)
        a = attr_map(p, IFINFOMSG.size)
        addr_len = len(a[IFLA_ADDRESS]) if a.get(IFLA_ADDRESS) else 6
        return decode_vfinfo_list(a[IFLA_VFINFO_LIST], addr_len) if IFLA_VFINFO_LIST in a else []

    def vf_set(self, pf_index: int, vf: int, *, mac: str | None = None, vlan: int | None = None,
               qos: int | None = None, vlan_proto: str | None = None, spoofchk: bool | None = None,
               trust: bool | None = None, link_state: str | None = None, min_tx_rate: int | None = None,
               max_tx_rate: int | None = None, node_guid: int | None = None,
               port_guid: int | None = None) -> None:
        """Configure one VF through its PF; only the given settings are sent."""
        dev = f"ifindex {pf_index} vf {vf}"
        if (min_tx_rate is None) != (max_tx_rate is None):  # IFLA_VF_RATE sets both: keep the other
            cur = next((v for v in self.vfs(pf_index) if v.vf == vf), None)
            if cur is None:
                raise NetlinkError(errno.EINVAL, "set vf rate", dev, "no such VF")
            min_tx_rate = cur.min_tx_rate if min_tx_rate is None else min_tx_rate
            max_tx_rate = cur.max_tx_rate if max_tx_rate is None else max_tx_rate
        sub = encode_vf_settings(vf, mac=mac, vlan=vlan, qos=qos, vlan_proto=vlan_proto, spoofchk=spoofchk,
                                 trust=trust, link_state=link_state, min_tx_rate=min_tx_rate,
                                 max_tx_rate=max_tx_rate, node_guid=node_guid, port_guid=port_guid, dev=dev)
        if not sub:
            return
        # Plain nests (no NLA_F_NESTED), as iproute2 and vishvananda/netlink send them: the same bytes
        # (tests/netns/test_vf_netlink_iproute2.py).
        body = _ifinfomsg(pf_index) + attr(IFLA_VFINFO_LIST, attr(IFLA_VF_INFO, sub))
        self.request(RTM_NEWLINK, body, op="set vf", dev=dev)
