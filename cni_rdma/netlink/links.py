"""Links (network devices): the `Link` record, its decoder and the link requests of `Rtnl`.

Product operations only: create macvlan/ipvlan children, get, list, set, delete, altnames.
Links only tests create (veth, vlan, dummy) are in tests/netlink_ops.py.
"""
from __future__ import annotations

import _struct  # struct's C half: struct.py would be one module more on every call

from .. import errnos
from ..record import Record
from .core import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    NetlinkSocket,
    a_nest,
    a_str,
    a_u16,
    a_u32,
    attr,
    attr_map,
    d_be16,
    d_str,
    d_u8,
    d_u16,
    d_u32,
    mac_bytes,
    mac_str,
    parse_attrs,
    unpack,
)
from .errors import LinkNotFound, NetlinkDecodeError, NetlinkError
from .rtmsg import (
    IFF_UP,
    IFINFOMSG,
    RTM_DELLINK,
    RTM_DELLINKPROP,
    RTM_GETLINK,
    RTM_NEWLINK,
    RTM_NEWLINKPROP,
    ifinfomsg,
    name_of,
)

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


def _ext_mask(vfs: bool) -> int:
    """IFLA_EXT_MASK of a link request. RTEXT_FILTER_VF only when asked: it adds IFLA_NUM_VF and the PF's
    whole IFLA_VFINFO_LIST (one nest per VF) to the reply, so a plain lookup of a PF by name would carry
    every VF's configuration, and a link dump every PF's on a node with many VFs."""
    return RTEXT_FILTER_SKIP_STATS | (RTEXT_FILTER_VF if vfs else 0)

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

OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")


class Link(Record):
    """One network device as the kernel reports it."""

    index: int
    name: str
    mac: str | None = None  #: lowercase colon-separated hardware address
    mtu: int = 0
    flags: int = 0  #: IFF_* bits
    up: bool = False  #: administratively up (IFF_UP)
    operstate: str = "unknown"
    kind: str | None = None  #: IFLA_INFO_KIND: "macvlan", "ipvlan", "vlan", "veth", "dummy"...
    mode: str | None = None  #: macvlan mode or ipvlan mode
    flag: str | None = None  #: ipvlan flag: bridge/private/vepa
    vlan_id: int | None = None
    vlan_proto: str | None = None  #: "802.1Q" or "802.1ad"
    source_macs: tuple = ()  #: macvlan source mode: allowed source MACs
    master: int | None = None
    link: int | None = None  #: parent ifindex (in the netns of link_netnsid when set)
    link_netnsid: int | None = None
    txqlen: int | None = None
    altnames: tuple = ()
    num_vf: int | None = None  #: only from VfOps.pf_get/pfs (RTEXT_FILTER_VF)
    carrier: bool | None = None
    perm_mac: str | None = None
    min_mtu: int | None = None
    max_mtu: int | None = None
    parent_dev: str | None = None  #: e.g. the PCI address of a physical function
    slave_kind: str | None = None
    bcqueuelen: int | None = None  #: macvlan: broadcast/multicast queue length requested by this link
    link_type: int = 0  #: ifi_type, ARPHRD_* (1 Ethernet, 32 InfiniBand/IPoIB, 772 loopback)


# ---------------------------------------------------------------- decoding (pure functions)
def _operstate(b: bytes) -> str:
    st = d_u8(b, "operstate")
    return OPERSTATES[st] if st < len(OPERSTATES) else str(st)


def _s32(b: bytes) -> int:
    return _struct.unpack("=i", b[:4].ljust(4, b"\0"))[0]


def _altnames(b: bytes) -> tuple:
    return tuple(d_str(v) for t, v in parse_attrs(b) if t == IFLA_ALT_IFNAME)


def _mac_or_none(b: bytes) -> str | None:
    return mac_str(b) if b else None


# IFLA attribute -> (Link field, decoder): one row per attribute, read by decode_link.
LINK_ATTRS: dict = {
    IFLA_ADDRESS: ("mac", _mac_or_none),
    IFLA_PERM_ADDRESS: ("perm_mac", _mac_or_none),
    IFLA_MTU: ("mtu", lambda b: d_u32(b, "mtu")),
    IFLA_MASTER: ("master", lambda b: d_u32(b, "master")),
    IFLA_LINK: ("link", lambda b: d_u32(b, "link")),
    IFLA_TXQLEN: ("txqlen", lambda b: d_u32(b, "txqlen")),
    IFLA_NUM_VF: ("num_vf", lambda b: d_u32(b, "num_vf")),
    IFLA_MIN_MTU: ("min_mtu", lambda b: d_u32(b, "min_mtu")),
    IFLA_MAX_MTU: ("max_mtu", lambda b: d_u32(b, "max_mtu")),
    IFLA_LINK_NETNSID: ("link_netnsid", _s32),
    IFLA_OPERSTATE: ("operstate", _operstate),
    IFLA_CARRIER: ("carrier", lambda b: bool(d_u8(b, "carrier"))),
    IFLA_PARENT_DEV_NAME: ("parent_dev", d_str),
    IFLA_PROP_LIST: ("altnames", _altnames),
}

# IFLA_INFO_DATA attribute per link kind -> (Link field, decoder).
_MACVLAN_DATA: dict = {
    IFLA_MACVLAN_MODE: ("mode", lambda b: name_of(MACVLAN_MODES, d_u32(b, "macvlan mode"))),
    IFLA_MACVLAN_BC_QUEUE_LEN: ("bcqueuelen", lambda b: d_u32(b, "macvlan bcqueuelen")),
    IFLA_MACVLAN_MACADDR_DATA: ("source_macs", lambda b: tuple(mac_str(v) for t, v in parse_attrs(b)
                                                               if t == IFLA_MACVLAN_MACADDR)),
}
_IPVLAN_DATA: dict = {
    IFLA_IPVLAN_MODE: ("mode", lambda b: name_of(IPVLAN_MODES, d_u16(b, "ipvlan mode"))),
    IFLA_IPVLAN_FLAGS: ("flag", lambda b: name_of(IPVLAN_FLAGS, d_u16(b, "ipvlan flags"))),
}
LINKINFO_DATA: dict = {
    "macvlan": _MACVLAN_DATA, "macvtap": _MACVLAN_DATA, "ipvlan": _IPVLAN_DATA, "ipvtap": _IPVLAN_DATA,
    "vlan": {
        IFLA_VLAN_ID: ("vlan_id", lambda b: d_u16(b, "vlan id")),
        IFLA_VLAN_PROTOCOL: ("vlan_proto", lambda b: name_of(VLAN_PROTOS, d_be16(b, "vlan protocol"))),
    },
}


def _decode(table: dict, attrs: dict, out: dict) -> None:
    for key, (field, decode) in table.items():
        if key in attrs:
            out[field] = decode(attrs[key])


def decode_link(payload: bytes) -> Link:
    """An RTM_NEWLINK payload → Link."""
    _family, link_type, index, flags, _change = unpack(IFINFOMSG, payload, "ifinfomsg")
    a = attr_map(payload, IFINFOMSG.size)
    if IFLA_IFNAME not in a:
        raise NetlinkDecodeError(f"link {index} has no IFLA_IFNAME")
    kw: dict = {"link_type": link_type}
    _decode(LINK_ATTRS, a, kw)
    if IFLA_LINKINFO in a:
        info = attr_map(a[IFLA_LINKINFO])
        kind = d_str(info[IFLA_INFO_KIND]) if IFLA_INFO_KIND in info else None
        kw["kind"] = kind
        if IFLA_INFO_SLAVE_KIND in info:
            kw["slave_kind"] = d_str(info[IFLA_INFO_SLAVE_KIND])
        if IFLA_INFO_DATA in info and kind in LINKINFO_DATA:
            _decode(LINKINFO_DATA[kind], attr_map(info[IFLA_INFO_DATA]), kw)
    return Link(index=index, name=d_str(a[IFLA_IFNAME]), flags=flags, up=bool(flags & IFF_UP), **kw)


def link_head(payload: bytes) -> tuple[int, str, str | None]:
    """(index, name, kind) of an RTM_NEWLINK payload, the rest left undecoded: as decode_link reads them, at about
    half its cost (a Link decodes every attribute, ~40 of them: ~0.3M instructions, ~0.2 ms)."""
    index = unpack(IFINFOMSG, payload, "ifinfomsg")[2]
    a = attr_map(payload, IFINFOMSG.size)
    if IFLA_IFNAME not in a:
        raise NetlinkDecodeError(f"link {index} has no IFLA_IFNAME")
    kind = None
    if IFLA_LINKINFO in a:
        info = attr_map(a[IFLA_LINKINFO])
        kind = d_str(info[IFLA_INFO_KIND]) if IFLA_INFO_KIND in info else None
    return index, d_str(a[IFLA_IFNAME]), kind


def link_attrs(*, mac: str | None = None, mtu: int | None = None, txqlen: int | None = None,
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


# ---------------------------------------------------------------- requests
class LinkOps(NetlinkSocket):
    """The link requests of `Rtnl`; alone, an rtnetlink socket for links only (cni_rdma.childlink: a DEL loads no
    address, route or VF code)."""

    def link_get(self, name: str | None = None, index: int | None = None) -> Link:
        """One link by name (or alternative name) or by index; LinkNotFound when absent."""
        return decode_link(self.link_get_raw(name, index))

    def link_get_raw(self, name: str | None, index: int | None, vfs: bool = False) -> bytes:
        """The undecoded RTM_NEWLINK payload of one link; with vfs, a PF's whole VF table too."""
        if (name is None) == (index is None):
            raise TypeError("link_get needs exactly one of name= or index=")
        body = ifinfomsg(index or 0) + a_u32(IFLA_EXT_MASK, _ext_mask(vfs))
        if name is not None:
            body += a_str(IFLA_IFNAME if len(name.encode()) < 16 else IFLA_ALT_IFNAME, name)
        dev = name if name is not None else f"ifindex {index}"
        replies = self.request(RTM_GETLINK, body, op="get link", dev=dev, reply_type=RTM_NEWLINK)
        if not replies:
            raise NetlinkDecodeError(f"no RTM_NEWLINK in the reply for {dev}")
        return replies[0]

    def link_index(self, name: str) -> int:
        """The index of a link by name (or alternative name); LinkNotFound when absent. Only link_head decodes the
        answer: ~half the cost of link_get, for callers that want nothing more."""
        return link_head(self.link_get_raw(name, None))[0]

    def link_exists(self, name: str) -> bool:
        try:
            self.link_get(name=name)
            return True
        except LinkNotFound:
            return False

    def links(self, kind: str | None = None) -> list[Link]:
        """Every link of this netns, without VF tables (num_vf stays None: see VfOps.pfs). kind: ask the kernel
        for links of that IFLA_INFO_KIND only (a kernel without dump filtering, or a kind no module has
        registered, answers them all: callers still check link.kind)."""
        return [decode_link(p) for p in self.links_raw(kind=kind)]

    def link_heads(self, kind: str) -> list[tuple[int, str, str | None]]:
        """links(kind=kind) as (index, name, kind) only (link_head): what a DEL looks through before its delete
        request, the critical path of a DEL (cni_rdma.childlink)."""
        return [link_head(p) for p in self.links_raw(kind=kind)]

    def links_raw(self, vfs: bool = False, kind: str | None = None) -> list[bytes]:
        body = ifinfomsg() + a_u32(IFLA_EXT_MASK, _ext_mask(vfs))
        if kind:
            body += a_nest(IFLA_LINKINFO, a_str(IFLA_INFO_KIND, kind))
        return self.dump(RTM_GETLINK, body, op="dump links", reply_type=RTM_NEWLINK)

    def newlink(self, name: str, kind: str, data: bytes = b"", *, parent_index: int | None = None,
                mac: str | None = None, mtu: int | None = None, txqlen: int | None = None,
                netns_fd: int | None = None, up: bool = False) -> None:
        """Create a link of `kind` with its IFLA_INFO_DATA; fails if the name exists."""
        body = [ifinfomsg(up=True) if up else ifinfomsg(), a_str(IFLA_IFNAME, name)]
        if parent_index is not None:
            body.append(a_u32(IFLA_LINK, parent_index))
        body += link_attrs(mac=mac, mtu=mtu, txqlen=txqlen, netns_fd=netns_fd)
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
            raise NetlinkError(errnos.EINVAL, "create macvlan", name, f"unknown mode {mode!r}")
        data = a_u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode])
        if source_macs:
            data += a_u32(IFLA_MACVLAN_MACADDR_MODE, MACVLAN_MACADDR_SET)
            data += a_nest(IFLA_MACVLAN_MACADDR_DATA, *(attr(IFLA_MACVLAN_MACADDR, mac_bytes(m)) for m in source_macs))
        if bcqueuelen is not None:
            data += a_u32(IFLA_MACVLAN_BC_QUEUE_LEN, bcqueuelen)
        self.newlink(name, "macvlan", data, parent_index=parent_index, mac=mac, mtu=mtu, txqlen=txqlen,
                     netns_fd=netns_fd, up=up)

    def link_add_ipvlan(self, name: str, parent_index: int, mode: str = "l2", flag: str = "bridge", *,
                        mtu: int | None = None, netns_fd: int | None = None, up: bool = False) -> None:
        if mode not in IPVLAN_MODES:
            raise NetlinkError(errnos.EINVAL, "create ipvlan", name, f"unknown mode {mode!r}")
        if flag not in IPVLAN_FLAGS:
            raise NetlinkError(errnos.EINVAL, "create ipvlan", name, f"unknown flag {flag!r}")
        data = a_u16(IFLA_IPVLAN_MODE, IPVLAN_MODES[mode]) + a_u16(IFLA_IPVLAN_FLAGS, IPVLAN_FLAGS[flag])
        self.newlink(name, "ipvlan", data, parent_index=parent_index, mtu=mtu, netns_fd=netns_fd, up=up)

    def link_del(self, index: int) -> None:
        self.request(RTM_DELLINK, ifinfomsg(index), op="delete link", dev=f"ifindex {index}")

    def link_set(self, index: int, *, up: bool | None = None, mtu: int | None = None, mac: str | None = None,
                 name: str | None = None, netns_fd: int | None = None, txqlen: int | None = None) -> None:
        """Change a link; everything in one message (the kernel moves netns and renames before bringing up)."""
        body = [ifinfomsg(index, up)]
        if name is not None:
            body.append(a_str(IFLA_IFNAME, name))
        body += link_attrs(mac=mac, mtu=mtu, txqlen=txqlen, netns_fd=netns_fd)
        self.request(RTM_NEWLINK, b"".join(body), op="set link", dev=name or f"ifindex {index}")

    def link_altname_add(self, index: int, altname: str) -> None:
        body = ifinfomsg(index) + a_nest(IFLA_PROP_LIST, a_str(IFLA_ALT_IFNAME, altname))
        self.request(RTM_NEWLINKPROP, body, NLM_F_EXCL, op="add altname", dev=altname)

    def link_altname_del(self, index: int, altname: str) -> None:
        body = ifinfomsg(index) + a_nest(IFLA_PROP_LIST, a_str(IFLA_ALT_IFNAME, altname))
        self.request(RTM_DELLINKPROP, body, op="delete altname", dev=altname)
