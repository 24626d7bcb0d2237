"""Routes: the `NlRoute` and `Nexthop` records, their codec and the route requests of `Rtnl`.

`NlRoute` is a kernel routing-table entry; `cni_rdma.types.Route` is a route of a CNI result.
"""
from __future__ import annotations

import _struct  # struct's C half: struct.py would be one module more on every call

from .. import errnos
from ..ipaddr import IPAddress, IPInterface, IPNetwork
from ..record import Record
from .core import (
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NetlinkSocket,
    a_nest,
    a_u32,
    attr,
    attr_map,
    d_u32,
    unpack,
)
from .errors import NetlinkDecodeError, NetlinkError
from .rtmsg import AF_INET, AF_INET6, AF_UNSPEC, RTM_GETROUTE, RTM_NEWROUTE, RTMSG, family_of, ip_from

RTNEXTHOP = _struct.Struct("=HBBi")  # len, flags, hops, ifindex

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


class Nexthop(Record):
    """One path of an ECMP route; weight is 1..256 (the kernel's hops + 1)."""

    gateway: IPAddress | None = None
    oif: int | None = None
    weight: int = 1
    onlink: bool = False
    flags: int = 0


class NlRoute(Record):
    """A kernel route. `dst` is an IPNetwork (0.0.0.0/0 or ::/0 for default).

    On add, `scope=None` picks what `ip route` picks (link without a gateway, else universe) and
    `proto=None` means boot; on delete, None fields match anything.
    """

    dst: IPNetwork
    gateway: IPAddress | None = None
    oif: int | None = None
    table: int = RT_TABLE_MAIN
    priority: int | None = None  #: the metric
    scope: int | None = None
    proto: int | None = None
    type: int = RTN_UNICAST
    src: IPAddress | None = None  #: preferred source address (RTA_PREFSRC)
    mtu: int | None = None
    advmss: int | None = None
    onlink: bool = False
    multipath: tuple = ()  #: tuple of Nexthop
    flags: int = 0  #: rtm_flags as read back (RTNH_F_*)

    @property
    def family(self) -> int:
        return family_of(self.dst)

    @property
    def is_default(self) -> bool:
        return self.dst.prefixlen == 0


# RTA attribute -> (NlRoute field, decoder given the family), and the RTAX metrics inside RTA_METRICS.
ROUTE_ATTRS: dict = {
    RTA_GATEWAY: ("gateway", lambda fam, b: ip_from(fam, b)),
    RTA_OIF: ("oif", lambda fam, b: d_u32(b, "RTA_OIF")),
    RTA_PRIORITY: ("priority", lambda fam, b: d_u32(b, "RTA_PRIORITY")),
    RTA_PREFSRC: ("src", lambda fam, b: ip_from(fam, b)),
}
METRICS = {RTAX_MTU: "mtu", RTAX_ADVMSS: "advmss"}


def decode_route(payload: bytes) -> NlRoute:
    """An RTM_NEWROUTE payload → NlRoute."""
    family, dst_len, _src_len, _tos, table, proto, scope, rtype, rflags = unpack(RTMSG, payload, "rtmsg")
    if family not in (AF_INET, AF_INET6):
        raise NetlinkDecodeError(f"route family {family}")
    if dst_len > (32 if family == AF_INET else 128):
        raise NetlinkDecodeError(f"route prefix length {dst_len}")
    a = attr_map(payload, RTMSG.size)
    if RTA_DST in a:
        dst = IPInterface(ip_from(family, a[RTA_DST]), dst_len).network  # host bits cleared
    else:
        dst = IPNetwork(IPAddress(4 if family == AF_INET else 6, 0), 0)
    if RTA_TABLE in a:
        table = d_u32(a[RTA_TABLE], "RTA_TABLE")
    kw: dict = {field: decode(family, a[key]) for key, (field, decode) in ROUTE_ATTRS.items() if key in a}
    if RTA_METRICS in a:
        m = attr_map(a[RTA_METRICS])
        kw.update({field: d_u32(m[key], field) for key, field in METRICS.items() if key in m})
    if RTA_MULTIPATH in a:
        kw["multipath"] = _decode_multipath(family, a[RTA_MULTIPATH])
    return NlRoute(dst=dst, table=table, proto=proto, scope=scope, type=rtype, flags=rflags,
                   onlink=bool(rflags & RTNH_F_ONLINK), **kw)


def _decode_multipath(family: int, data: bytes) -> tuple:
    hops = []
    pos = 0
    while len(data) - pos >= RTNEXTHOP.size:
        n, flags, hopcount, ifindex = RTNEXTHOP.unpack_from(data, pos)
        if n < RTNEXTHOP.size or pos + n > len(data):
            raise NetlinkDecodeError(f"rtnexthop length {n} at offset {pos} of {len(data)}")
        a = attr_map(data, pos + RTNEXTHOP.size, pos + n)
        gw = ip_from(family, a[RTA_GATEWAY]) if RTA_GATEWAY in a else None
        hops.append(Nexthop(gateway=gw, oif=ifindex or None, weight=hopcount + 1,
                            onlink=bool(flags & RTNH_F_ONLINK), flags=flags))
        pos += (n + 3) & ~3
    return tuple(hops)


def _scope(r: NlRoute, delete: bool) -> int:
    """What `ip route` picks when no scope is given."""
    if r.scope is not None:
        return r.scope
    if delete:
        return RT_SCOPE_NOWHERE
    if r.type == RTN_LOCAL:
        return RT_SCOPE_HOST
    if r.type in (RTN_BROADCAST, RTN_MULTICAST, RTN_ANYCAST) or (r.gateway is None and not r.multipath):
        return RT_SCOPE_LINK
    return RT_SCOPE_UNIVERSE


def encode_route(r: NlRoute, delete: bool = False) -> bytes:
    """NlRoute → rtmsg + attributes for RTM_NEWROUTE (or RTM_DELROUTE when delete)."""
    dst = r.dst
    proto = r.proto if r.proto is not None else (RTPROT_UNSPEC if delete else RTPROT_BOOT)
    table = r.table if r.table is not None else RT_TABLE_MAIN
    flags = RTNH_F_ONLINK if r.onlink else 0
    body = [RTMSG.pack(family_of(dst), dst.prefixlen, 0, 0, table if table < 256 else RT_TABLE_UNSPEC,
                       proto, _scope(r, delete), r.type, flags),
            a_u32(RTA_TABLE, table)]
    if dst.prefixlen:
        body.append(attr(RTA_DST, dst.network_address.packed))
    if r.gateway is not None:
        body.append(attr(RTA_GATEWAY, r.gateway.packed))
    if r.oif is not None:
        body.append(a_u32(RTA_OIF, r.oif))
    if r.priority is not None:
        body.append(a_u32(RTA_PRIORITY, r.priority))
    if r.src is not None:
        body.append(attr(RTA_PREFSRC, r.src.packed))
    metrics = [a_u32(key, getattr(r, field)) for key, field in METRICS.items() if getattr(r, field) is not None]
    if metrics:
        body.append(a_nest(RTA_METRICS, *metrics))
    if r.multipath:
        hops = []
        for nh in r.multipath:
            if not 1 <= nh.weight <= 256:
                raise NetlinkError(errnos.EINVAL, "route nexthop", str(r.dst), f"weight {nh.weight} outside 1..256")
            sub = attr(RTA_GATEWAY, nh.gateway.packed) if nh.gateway is not None else b""
            hflags = (nh.flags & ~RTNH_F_ONLINK) | (RTNH_F_ONLINK if nh.onlink else 0)
            hops.append(RTNEXTHOP.pack(RTNEXTHOP.size + len(sub), hflags, nh.weight - 1, nh.oif or 0) + sub)
        body.append(attr(RTA_MULTIPATH, b"".join(hops)))
    return b"".join(body)


def route_desc(r: NlRoute) -> str:
    """`ip route`-style words naming a route in errors: "default via 10.0.0.1 table 100"."""
    s = "default" if r.dst.prefixlen == 0 else str(r.dst)
    if r.gateway is not None:
        s += f" via {r.gateway}"
    if r.table not in (None, RT_TABLE_MAIN):
        s += f" table {r.table}"
    return s


class RouteOps(NetlinkSocket):
    """The route requests of `Rtnl`."""

    def route_add(self, route: NlRoute, *, replace: bool = False, append: bool = False) -> None:
        """Add a route; replace= overwrites an existing one, append= adds beside it (Go's RouteAddEcmp)."""
        flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_APPEND if append else NLM_F_EXCL)
        self.request(RTM_NEWROUTE, encode_route(route), flags, op="add route", dev=route_desc(route))

    def routes(self, family: int | None = None, table: int | None = None, oif: int | None = None) -> list[NlRoute]:
        """Routes (all tables when table is None), excluding cached clones."""
        body = RTMSG.pack(family or AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
        if table is not None:
            body += a_u32(RTA_TABLE, table)
        try:
            payloads = self.dump(RTM_GETROUTE, body, op="dump routes", reply_type=RTM_NEWROUTE)
        except NetlinkError as e:
            if e.errno == errnos.ENOENT and table is not None:  # ENOENT: that table does not exist (yet)
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
