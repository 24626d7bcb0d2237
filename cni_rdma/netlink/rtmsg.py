"""rtnetlink basics shared by links, addresses, routes and VFs: families, message types, headers."""
from __future__ import annotations

import _struct  # struct's C half: struct.py would be one module more on every call

from ..ipaddr import IPAddress, from_packed
from .errors import NetlinkDecodeError

AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10

# message types (linux/rtnetlink.h)
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWLINKPROP, RTM_DELLINKPROP = 108, 109

IFINFOMSG = _struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = _struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = _struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000

# ifi_type values (linux/if_arp.h) that the plugins tell apart
ARPHRD_ETHER = 1
ARPHRD_INFINIBAND = 32
ARPHRD_LOOPBACK = 772


def ifinfomsg(index: int = 0, up: bool | None = None, family: int = AF_UNSPEC) -> bytes:
    """The ifinfomsg header of a link request; up= sets or clears IFF_UP (None leaves it)."""
    if up is None:
        return IFINFOMSG.pack(family, 0, index, 0, 0)
    return IFINFOMSG.pack(family, 0, index, IFF_UP if up else 0, IFF_UP)


def family_of(ip) -> int:
    """AF_INET or AF_INET6 of an address, interface or network (cni_rdma.ipaddr's or ipaddress's)."""
    return AF_INET if ip.version == 4 else AF_INET6


def ip_from(family: int, b: bytes) -> IPAddress:
    """The address in the first 4 or 16 bytes of an attribute."""
    n = 4 if family == AF_INET else 16
    if len(b) < n:
        raise NetlinkDecodeError(f"address of {len(b)} bytes for family {family}")
    return from_packed(bytes(b[:n]))


def name_of(table: dict[str, int], value: int) -> str:
    """The name of a kernel value in a name -> value table; the number itself when unknown."""
    for k, v in table.items():
        if v == value:
            return k
    return str(value)
