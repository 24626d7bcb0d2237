"""IP addresses, interface addresses (address/prefix) and networks: what the plugins used of `ipaddress`.

`import ipaddress` costs a plugin process ~3 ms on every CNI call (its class hierarchy, functools, and
re behind it). This module is three small records over C-level parsing (inet_pton(3), cni_rdma.native) and integer
math. Names and attributes follow ipaddress (`ip_address`, `.version`, `.packed`, `.ip`, `.network`,
`.prefixlen`, `.network_address`, `.broadcast_address`), so code reads the same, and the netlink encoders
still take ipaddress values (tests build them).

Accepted and printed text is ipaddress's (Python 3.11); tests/unit/test_ipaddr.py proves it against it:
  - IPv4: a dotted quad without leading zeros; after "/", a prefix length (leading zeros allowed: "/024")
    or a dotted netmask or hostmask ("10.0.0.0/255.255.0.0", "10.0.0.0/0.0.255.255");
  - IPv6: what inet_pton reads, plus a "%zone" suffix that is kept and printed back (as ipaddress has
    since 3.9); the prefix length in digits only;
  - IPv6 printed per RFC 5952 as ipaddress prints it. Not with inet_ntop: glibc picks dotted forms
    ipaddress never prints ("::ffff:1.2.3.4" for ipaddress's "::ffff:102:304", "::0.0.0.2" for "::2");
  - the ValueError for a bad text has ipaddress's words ("'x' does not appear to be an IPv4 or IPv6
    address", "10.0.0.1/24 has host bits set"): result parsing quotes it in CNI error messages.
Beyond ipaddress: addresses of both families order (IPv4 first) instead of raising TypeError.
"""
from __future__ import annotations

from .frozen import Frozen
from .native import inet_pton  # not _socket's: its import costs ~0.7 ms of every call

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

AF_INET, AF_INET6 = 2, 10  # <sys/socket.h>

_BITS = {4: 32, 6: 128}
_ALL4 = 0xFFFFFFFF


def ip_text(version: int, value: int) -> str:
    """The text of an address given as an integer: dotted quad, or RFC 5952 IPv6 (as ipaddress prints)."""
    if version == 4:
        return "%d.%d.%d.%d" % (value >> 24, value >> 16 & 255, value >> 8 & 255, value & 255)
    words = ["%x" % (value >> shift & 0xFFFF) for shift in range(112, -16, -16)]
    # The longest run of two or more zero words becomes "::"; of equal runs, the first.
    best, best_len, start = 0, 0, -1
    for i, w in enumerate(words):
        if w != "0":
            start = -1
            continue
        if start < 0:
            start = i
        if i - start + 1 > best_len:
            best, best_len = start, i - start + 1
    if best_len < 2:
        return ":".join(words)
    return ":".join(words[:best]) + "::" + ":".join(words[best + best_len:])


# The order of IPAddress and IPNetwork: by `_key()` among records of one class (ipaddress's order; both families:
# IPv4 first). Functions both classes take as their comparisons, not a base class: each class is ~0.07M
# instructions of every call that imports this module.
def _lt(self: Any, other: Any) -> bool:
    return self._key() < other._key() if other.__class__ is self.__class__ else NotImplemented


def _le(self: Any, other: Any) -> bool:
    return self._key() <= other._key() if other.__class__ is self.__class__ else NotImplemented


def _gt(self: Any, other: Any) -> bool:
    return self._key() > other._key() if other.__class__ is self.__class__ else NotImplemented


def _ge(self: Any, other: Any) -> bool:
    return self._key() >= other._key() if other.__class__ is self.__class__ else NotImplemented


class IPAddress(Frozen):
    """An IPv4 or IPv6 address; scope_id is an IPv6 zone ("fe80::1%eth0"), kept and printed back."""

    __slots__ = ("version", "value", "scope_id")
    version: int
    value: int
    scope_id: Optional[str]

    def __init__(self, version: int, value: int, scope_id: Optional[str] = None) -> None:
        if not 0 <= value < 1 << _BITS[version]:
            raise ValueError(f"{value} is not an IPv{version} address")
        self._init(locals())

    @property
    def max_prefixlen(self) -> int:
        return _BITS[self.version]

    @property
    def packed(self) -> bytes:
        return self.value.to_bytes(4 if self.version == 4 else 16, "big")

    @property
    def ipv4_mapped(self) -> Optional[IPAddress]:
        """The IPv4 address of ::ffff:a.b.c.d, else None."""
        if self.version != 6 or self.value >> 32 != 0xFFFF:
            return None
        return IPAddress(4, self.value & _ALL4)

    def __int__(self) -> int:
        return self.value

    def __str__(self) -> str:
        text = ip_text(self.version, self.value)
        return text if self.scope_id is None else f"{text}%{self.scope_id}"

    def __repr__(self) -> str:
        return f"ip_address({str(self)!r})"

    def __add__(self, n: int) -> IPAddress:
        """The address n further on (next: + 1); ValueError past the end of the family."""
        return IPAddress(self.version, self.value + n)

    def __sub__(self, n: int) -> IPAddress:
        return IPAddress(self.version, self.value - n)

    def _key(self) -> tuple:
        return self.version, self.value

    __lt__, __le__, __gt__, __ge__ = _lt, _le, _gt, _ge


def _mask(version: int, prefixlen: int) -> int:
    bits = _BITS[version]
    return ((1 << prefixlen) - 1) << (bits - prefixlen)


class IPNetwork(Frozen):
    """A network: its address (no host bits) and prefix length."""

    __slots__ = ("network_address", "prefixlen")
    network_address: IPAddress
    prefixlen: int

    def __init__(self, network_address: IPAddress, prefixlen: int) -> None:
        if not 0 <= prefixlen <= network_address.max_prefixlen:
            raise ValueError(f"{prefixlen!r} is not a valid netmask")
        if network_address.value & ~_mask(network_address.version, prefixlen):
            raise ValueError(f"{network_address}/{prefixlen} has host bits set")
        self._init(locals())

    @property
    def version(self) -> int:
        return self.network_address.version

    @property
    def max_prefixlen(self) -> int:
        return self.network_address.max_prefixlen

    @property
    def netmask(self) -> IPAddress:
        return IPAddress(self.version, _mask(self.version, self.prefixlen))

    @property
    def broadcast_address(self) -> IPAddress:
        """The last address of the network (IPv6 too, as ipaddress)."""
        host = (1 << (self.max_prefixlen - self.prefixlen)) - 1
        return IPAddress(self.version, self.network_address.value | host)

    @property
    def num_addresses(self) -> int:
        return 1 << (self.max_prefixlen - self.prefixlen)

    def __contains__(self, addr: IPAddress) -> bool:
        return (addr.version == self.version
                and addr.value & _mask(self.version, self.prefixlen) == self.network_address.value)

    def __str__(self) -> str:
        return f"{self.network_address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"ip_network({str(self)!r})"

    def _key(self) -> tuple:
        return self.version, self.network_address.value, self.prefixlen

    __lt__, __le__, __gt__, __ge__ = _lt, _le, _gt, _ge


class IPInterface(Frozen):
    """An address with the prefix length of its network, as on a link: "10.1.2.3/24".

    As in ipaddress, an IPv6 zone ("fe80::1%eth0/64") is printed with the interface, not with its `ip`.
    """

    __slots__ = ("ip", "prefixlen", "scope_id")
    ip: IPAddress
    prefixlen: int
    scope_id: Optional[str]

    def __init__(self, ip: IPAddress, prefixlen: int, scope_id: Optional[str] = None) -> None:
        if not 0 <= prefixlen <= ip.max_prefixlen:
            raise ValueError(f"{prefixlen!r} is not a valid netmask")
        self._init(locals())

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def network(self) -> IPNetwork:
        """The network the address is in (host bits cleared; the zone stays only when there are none)."""
        ip = self.ip
        masked = ip.value & _mask(ip.version, self.prefixlen)
        return IPNetwork(IPAddress(ip.version, masked, self.scope_id if masked == ip.value else None), self.prefixlen)

    def __str__(self) -> str:
        zone = "" if self.scope_id is None else f"%{self.scope_id}"
        return f"{self.ip}{zone}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"ip_interface({str(self)!r})"


def from_packed(b: bytes) -> IPAddress:
    """The address in 4 (IPv4) or 16 (IPv6) network-order bytes."""
    if len(b) not in (4, 16):
        raise ValueError(f"{len(b)} bytes are not an IP address")
    return IPAddress(4 if len(b) == 4 else 6, int.from_bytes(b, "big"))


def _v4(text: str) -> Optional[int]:
    try:
        packed = inet_pton(AF_INET, text)
    except ValueError:  # a NUL or a lone surrogate in the text
        return None
    return None if packed is None else int.from_bytes(packed, "big")


def _parse(text: str) -> Optional[IPAddress]:
    """An address in ipaddress's syntax (no "/"), or None."""
    value = _v4(text)
    if value is not None:
        return IPAddress(4, value)
    addr, sep, zone = text.partition("%")
    if sep and (not zone or "%" in zone):
        return None
    try:
        packed = inet_pton(AF_INET6, addr)
    except ValueError:
        return None
    if packed is None:
        return None
    return IPAddress(6, int.from_bytes(packed, "big"), zone if sep else None)


def _prefixlen(version: int, text: str) -> Optional[int]:
    """The prefix length after "/": digits, or (IPv4) a dotted netmask or hostmask; None if invalid."""
    bits = _BITS[version]
    if text.isascii() and text.isdigit():
        try:
            n = int(text)
        except ValueError:  # more digits than int() reads (4300): as ipaddress, not a prefix length
            return None
        return n if n <= bits else None
    mask = _v4(text) if version == 4 else None
    if mask is None:
        return None
    for m in (mask, mask ^ _ALL4):  # a netmask first (so 0.0.0.0 is /0), then a hostmask
        zeros = ~m & _ALL4
        if zeros & (zeros + 1) == 0:  # ones then zeros
            return bits - zeros.bit_length()
    return None


def _with_prefix(text: str) -> Optional[IPInterface]:
    parts = text.split("/")
    if len(parts) > 2:
        return None
    ip = _parse(parts[0])
    if ip is None:
        return None
    plen = ip.max_prefixlen if len(parts) == 1 else _prefixlen(ip.version, parts[1])
    if plen is None:
        return None
    return IPInterface(IPAddress(ip.version, ip.value) if ip.scope_id else ip, plen, ip.scope_id)


def ip_address(text: str) -> IPAddress:
    """ipaddress.ip_address of a string: "10.1.2.3", "2001:db8::1", "fe80::1%eth0"."""
    ip = None if "/" in text else _parse(text)
    if ip is None:
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 address")
    return ip


def ip_interface(text: str) -> IPInterface:
    """ipaddress.ip_interface of a string: "10.1.2.3/24" (no "/": a host prefix)."""
    iface = _with_prefix(text)
    if iface is None:
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 interface")
    return iface


def ip_network(text: str, strict: bool = True) -> IPNetwork:
    """ipaddress.ip_network of a string; strict refuses host bits ("10.0.0.1/24"), else clears them."""
    iface = _with_prefix(text)
    if iface is None:
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 network")
    net = iface.network
    if strict and net.network_address.value != iface.ip.value:
        raise ValueError(f"{iface} has host bits set")
    return net
