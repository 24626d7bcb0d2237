"""Addresses: the `Addr` record, its decoder and the address requests of `Rtnl` (add, list, DAD wait)."""
from __future__ import annotations

from .. import errnos
from ..ipaddr import IPInterface, ip_interface
from ..record import Record
from .core import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NetlinkSocket, a_u32, attr, attr_map, d_str, d_u32, unpack
from .errors import NetlinkDecodeError, NetlinkError
from .rtmsg import AF_INET, AF_INET6, AF_UNSPEC, IFADDRMSG, RTM_GETADDR, RTM_NEWADDR, family_of, ip_from

# linux/if_addr.h
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


class Addr(Record):
    """One address on a link; `address` is the address with its prefix length."""

    index: int
    address: IPInterface
    flags: int = 0  #: IFA_F_* bits
    scope: int = 0
    label: str | None = None

    @property
    def family(self) -> int:
        return family_of(self.address)

    @property
    def tentative(self) -> bool:
        return bool(self.flags & IFA_F_TENTATIVE) and not self.flags & IFA_F_DADFAILED

    @property
    def dadfailed(self) -> bool:
        return bool(self.flags & IFA_F_DADFAILED)

    @property
    def permanent(self) -> bool:
        return bool(self.flags & IFA_F_PERMANENT)


def decode_addr(payload: bytes) -> Addr:
    """An RTM_NEWADDR payload → Addr."""
    family, prefixlen, flags, scope, index = unpack(IFADDRMSG, payload, "ifaddrmsg")
    if family not in (AF_INET, AF_INET6):
        raise NetlinkDecodeError(f"address family {family}")
    a = attr_map(payload, IFADDRMSG.size)
    raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
    if raw is None:
        raise NetlinkDecodeError(f"address on link {index} without IFA_LOCAL/IFA_ADDRESS")
    ip = ip_from(family, raw)
    if prefixlen > (32 if family == AF_INET else 128):
        raise NetlinkDecodeError(f"prefix length {prefixlen}")
    if IFA_FLAGS in a:
        flags = d_u32(a[IFA_FLAGS], "IFA_FLAGS")
    label = d_str(a[IFA_LABEL]) if IFA_LABEL in a else None
    return Addr(index=index, address=IPInterface(ip, prefixlen), flags=flags, scope=scope,
                label=label)


def addr_msg(index: int, address, flags: int, broadcast: bool) -> bytes:
    """ifaddrmsg + attributes for one address: an IPInterface, or its text ("10.1.2.3/24"; tests pass ipaddress's)."""
    iface = address if isinstance(address, IPInterface) else ip_interface(str(address))
    family = family_of(iface)
    packed = iface.ip.packed
    body = [IFADDRMSG.pack(family, iface.prefixlen, flags & 0xFF, 0, index),
            attr(IFA_LOCAL, packed), attr(IFA_ADDRESS, packed)]
    if flags > 0xFF:
        body.append(a_u32(IFA_FLAGS, flags))
    if broadcast and family == AF_INET and iface.prefixlen < 31:
        body.append(attr(IFA_BROADCAST, iface.network.broadcast_address.packed))
    return b"".join(body)


class AddrOps(NetlinkSocket):
    """The address requests of `Rtnl`."""

    def addr_add(self, index: int, address, *, nodad: bool = False, optimistic: bool = False,
                 noprefixroute: bool = False, replace: bool = False) -> None:
        """Add an address (an IPInterface or "10.1.2.3/24"); IPv4 gets the subnet broadcast.

        optimistic (IPv6) only takes effect where the link's `optimistic_dad` sysctl is 1: the kernel
        ignores the flag otherwise and the address stays tentative until DAD completes.
        """
        flags = ((IFA_F_NODAD if nodad else 0) | (IFA_F_OPTIMISTIC if optimistic else 0)
                 | (IFA_F_NOPREFIXROUTE if noprefixroute else 0))
        nlflags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        self.request(RTM_NEWADDR, addr_msg(index, address, flags, True), nlflags,
                     op=f"add address {address}", dev=f"ifindex {index}")

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
                    raise NetlinkError(errnos.EADDRNOTAVAIL, "duplicate address detection", f"ifindex {index}",
                                       f"{a.address} is a duplicate")
                pending = pending or a.tentative
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise NetlinkError(errnos.ETIME, "duplicate address detection", f"ifindex {index}",
                                   f"addresses still tentative after {timeout}s")
            time.sleep(interval)
