"""host-local configuration: the Go plugin's keys and canonicalisation, with errors that name the field.

Accepted exactly as Go's allocator.LoadIPAMConfig does: `ipam.ranges` (a list of range sets), the legacy
single `ipam.subnet`/`rangeStart`/`rangeEnd`/`gateway` (prepended as range set 0), `runtimeConfig.ipRanges`
(prepended before both), `ipam.routes` (with the CNI 1.1.0 route attributes mtu, advmss, priority,
table and scope, passed through to the result), `ipam.dataDir`, `ipam.resolvConf`; requested addresses
from CNI_ARGS `IP=`, `args.cni.ips` and `runtimeConfig.ips`, in that order, duplicates collapsed. A
requested address may carry a prefix ("10.1.2.5/24", as CONVENTIONS.md shows): it must then be the
prefix of the range the address falls in (Go ignores it and answers with the range's prefix anyway).
Addresses are handled as integers; a Range knows its family and prints as Go's "start-end".
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

from cni_rdma import paths, safefile
from cni_rdma.errors import INVALID_ENV, CniError, config_error
from cni_rdma.frozen import Frozen
from cni_rdma.ipaddr import IPAddress, IPInterface, ip_address, ip_interface, ip_network, ip_text
from cni_rdma.types import DNS, Route

MAX_NAME = 255          # the network name is one directory entry
MAX_CONTAINER_ID = 200  # runtimes use 64; a longer one is refused (CNI error) rather than carried around


class Range(Frozen):
    """One range of a range set, addresses as integers."""

    __slots__ = ("version", "network", "prefix", "start", "end", "gateway")
    version: int
    network: int      # subnet address as an integer
    prefix: int
    start: int        # first address handed out, inclusive
    end: int          # last address handed out, inclusive
    gateway: int

    def __init__(self, version: int, network: int, prefix: int, start: int, end: int, gateway: int) -> None:
        self._init(locals())

    @property
    def bits(self) -> int:
        return 32 if self.version == 4 else 128

    @property
    def broadcast(self) -> int:
        return self.network | ((1 << (self.bits - self.prefix)) - 1)

    def contains(self, version: int, value: int) -> bool:
        return version == self.version and self.start <= value <= self.end

    def usable(self, value: int) -> bool:
        """Never hand out the gateway, the subnet address, or the IPv4 broadcast."""
        if value == self.gateway or value == self.network:
            return False
        return not (self.version == 4 and value == self.broadcast)

    def capacity(self) -> int:
        n = self.end - self.start + 1
        skip = {self.gateway, self.network} | ({self.broadcast} if self.version == 4 else set())
        return n - sum(1 for v in skip if self.start <= v <= self.end)

    def address(self, value: int) -> str:
        return ip_text(self.version, value)

    def interface(self, value: int) -> IPInterface:
        return IPInterface(IPAddress(self.version, value), self.prefix)

    def gateway_ip(self) -> IPAddress:
        return IPAddress(self.version, self.gateway)

    def overlaps(self, other: "Range") -> bool:
        return self.version == other.version and self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        return f"{self.address(self.start)}-{self.address(self.end)}"


RangeSet = tuple[Range, ...]


def rangeset_str(rs: RangeSet) -> str:
    return ",".join(str(r) for r in rs)


def rangeset_for(rs: RangeSet, version: int, value: int) -> Optional[Range]:
    for r in rs:
        if r.contains(version, value):
            return r
    return None


class Requested(Frozen):
    """An address the runtime asked for (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips)."""

    __slots__ = ("version", "value", "text", "source", "prefix")
    version: int
    value: int
    text: str     # canonical string, the map key Go uses
    source: str   # the field it came from, for error messages
    prefix: Optional[int]  # the prefix length it was asked for with, if any

    def __init__(self, version: int, value: int, text: str, source: str, prefix: Optional[int] = None) -> None:
        self._init(locals())


class Config(Frozen):
    """A validated host-local IPAM config."""

    __slots__ = ("name", "cni_version", "data_dir", "ranges", "routes", "resolv_conf", "requested")
    name: str
    cni_version: str
    data_dir: str
    ranges: tuple[RangeSet, ...]
    routes: tuple[Route, ...]
    resolv_conf: str
    requested: tuple[Requested, ...]

    def __init__(self, name: str, cni_version: str, data_dir: str, ranges: tuple[RangeSet, ...],
                 routes: tuple[Route, ...], resolv_conf: str, requested: tuple[Requested, ...]) -> None:
        self._init(locals())


def parse_ip(text: Any, field: str) -> tuple[int, int]:
    if not isinstance(text, str):
        raise config_error(field, "expected an IP address string")
    try:
        a = ip_address(text)
    except ValueError:
        raise config_error(field, f"{text!r} is not an IP address") from None
    a = a.ipv4_mapped or a  # Go folds ::ffff:a.b.c.d into IPv4
    return a.version, a.value


def _parse_range(d: Any, field: str) -> Range:
    if not isinstance(d, dict):
        raise config_error(field, "expected an object with a subnet")
    subnet = d.get("subnet")
    if not isinstance(subnet, str) or "/" not in subnet:
        raise config_error(f"{field}.subnet", f"expected a CIDR, got {subnet!r}")
    try:
        iface = ip_interface(subnet)
    except ValueError:
        raise config_error(f"{field}.subnet", f"{subnet!r} is not a CIDR") from None
    net = iface.network
    version, bits = net.version, net.max_prefixlen
    if net.prefixlen > bits - 2:
        raise config_error(f"{field}.subnet", f"network {net} too small to allocate from")
    network = net.network_address.value
    if iface.ip.value != network:
        raise config_error(f"{field}.subnet", f"network has host bits set: for a subnet mask of length "
                           f"{net.prefixlen} the network address is {net.network_address}")

    def inside(key: str, default: int) -> int:
        if d.get(key) in (None, ""):
            return default
        v, value = parse_ip(d.get(key), f"{field}.{key}")
        if v != version:
            raise config_error(f"{field}.{key}", f"{d[key]} is not the same protocol as subnet {net}")
        if not network <= value <= net.broadcast_address.value:
            raise config_error(f"{field}.{key}", f"{d[key]} not in network {net}")
        return value

    gateway = inside("gateway", network + 1)
    start = inside("rangeStart", network + 1)
    last = net.broadcast_address.value - (1 if version == 4 else 0)
    end = inside("rangeEnd", last)
    if end < start:
        raise config_error(f"{field}.rangeEnd", f"{d['rangeEnd']} is in network {net} but before start "
                           f"{ip_text(version, start)}")
    return Range(version, network, net.prefixlen, start, end, gateway)


def _parse_rangeset(x: Any, field: str) -> RangeSet:
    if not isinstance(x, list) or not x:
        raise config_error(field, "expected a non-empty list of ranges")
    rs = tuple(_parse_range(d, f"{field}[{i}]") for i, d in enumerate(x))
    for i, r in enumerate(rs):
        if r.version != rs[0].version:
            raise config_error(f"{field}[{i}]", "mixed address families in one range set")
        for j in range(i):
            if r.overlaps(rs[j]):
                raise config_error(f"{field}[{i}]", f"subnets {rs[j]} and {r} overlap")
    return rs


def _parse_requested(text: Any, field: str) -> tuple[int, int, Optional[int]]:
    """An address, optionally with a prefix length: (version, value, prefix or None)."""
    if isinstance(text, str) and "/" in text:
        try:
            iface = ip_interface(text)
        except ValueError:
            raise config_error(field, f"{text!r} is not an IP address or an address with a prefix length") from None
        version, value = parse_ip(str(iface.ip), field)
        prefix = iface.prefixlen
        if version == 4 and iface.version == 6:  # ::ffff:a.b.c.d/n folded into IPv4: n counts the v6 bits
            prefix -= 96
            if prefix < 0:
                raise config_error(field, f"{text!r}: prefix too short for an IPv4-mapped address")
        return version, value, prefix
    version, value = parse_ip(text, field)
    return version, value, None


def _requested(raw: dict, cni_args: dict[str, str]) -> tuple[Requested, ...]:
    found: list[tuple[str, str]] = []  # (text, field)
    if cni_args.get("IP"):
        found.append((cni_args["IP"], "CNI_ARGS IP"))
    args = raw.get("args")
    cni = args.get("cni") if isinstance(args, dict) else None
    if cni is not None:
        if not isinstance(cni, dict):
            raise config_error("args.cni", "expected an object")
        ips = cni.get("ips")
        if ips is not None:
            if not isinstance(ips, list):
                raise config_error("args.cni.ips", "expected a list of IP addresses")
            found += [(ip, f"args.cni.ips[{i}]") for i, ip in enumerate(ips)]
    rc = raw.get("runtimeConfig") or {}
    ips = rc.get("ips")
    if ips is not None:
        if not isinstance(ips, list):
            raise config_error("runtimeConfig.ips", "expected a list of IP addresses")
        found += [(ip, f"runtimeConfig.ips[{i}]") for i, ip in enumerate(ips)]
    out: dict[str, Requested] = {}
    for text, field in found:
        version, value, prefix = _parse_requested(text, field)
        key = ip_text(version, value)
        out.setdefault(key, Requested(version, value, key, field, prefix))
    return tuple(out.values())


def check_requested_prefix(want: Requested, r: Range) -> None:
    """A requested address's prefix, when given, must be the one its range hands out."""
    if want.prefix is not None and want.prefix != r.prefix:
        subnet = f"{r.address(r.network)}/{r.prefix}"
        raise config_error(want.source, f"{want.text}/{want.prefix} does not match the prefix of its range "
                           f"{subnet}: ask for {want.text}/{r.prefix} or {want.text}")


# The CNI 1.1.0 route attributes (SPEC.md "Routes"): key -> (upper bound, inclusive).
ROUTE_INTS = {"mtu": 0xFFFFFFFF, "advmss": 0xFFFFFFFF, "priority": 0xFFFFFFFF, "table": 0xFFFFFFFF, "scope": 255}


def _route_int(d: dict, key: str, field: str) -> Optional[int]:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise config_error(f"{field}.{key}", f"expected an integer, got {v!r}")
    if not 0 <= v <= ROUTE_INTS[key]:
        raise config_error(f"{field}.{key}", f"{v} is out of range [0, {ROUTE_INTS[key]}]")
    return v


def _routes(x: Any) -> tuple[Route, ...]:
    if x is None:
        return ()
    if not isinstance(x, list):
        raise config_error("ipam.routes", "expected a list of routes")
    out = []
    for i, d in enumerate(x):
        field = f"ipam.routes[{i}]"
        if not isinstance(d, dict) or not isinstance(d.get("dst"), str):
            raise config_error(f"{field}.dst", "expected a destination CIDR")
        try:
            dst = ip_network(d["dst"], strict=False)
        except ValueError:
            raise config_error(f"{field}.dst", f"{d['dst']!r} is not a CIDR") from None
        gw = None
        if d.get("gw") not in (None, ""):
            v, value = parse_ip(d["gw"], f"{field}.gw")
            gw = IPAddress(v, value)
        attrs = {k: _route_int(d, k, field) for k in ROUTE_INTS}
        out.append(Route(dst=dst, gw=gw, mtu=attrs["mtu"] or 0, advmss=attrs["advmss"] or 0,
                         priority=attrs["priority"] or 0, table=attrs["table"], scope=attrs["scope"]))
    return tuple(out)


def _string(d: dict, key: str, field: str, default: str = "") -> str:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise config_error(field, "expected a string")
    if "\0" in v:
        raise config_error(field, "contains a NUL byte")
    return v


def check_names(name: str, container_id: str = "") -> None:
    """Names become directory entries: bounded here (the skeleton already rejects '/', '..' and NUL)."""
    if len(name.encode()) > MAX_NAME:
        raise config_error("name", f"network name longer than {MAX_NAME} bytes")
    if len(container_id) > MAX_CONTAINER_ID:
        raise CniError(INVALID_ENV, f"containerID longer than {MAX_CONTAINER_ID} characters")


def load(raw: dict, cni_args: dict[str, str], cni_version: str) -> Config:
    ipam = raw.get("ipam")
    if not isinstance(ipam, dict):
        raise config_error("ipam", "missing IPAM configuration (the 'ipam' key)")
    name = raw.get("name", "")
    check_names(name)
    data_dir = _string(ipam, "dataDir", "ipam.dataDir") or paths.join(paths.state_root(), "networks")
    resolv_conf = _string(ipam, "resolvConf", "ipam.resolvConf")

    sets: list[RangeSet] = []
    rc = raw.get("runtimeConfig") or {}
    if rc.get("ipRanges") is not None:
        if not isinstance(rc["ipRanges"], list):
            raise config_error("runtimeConfig.ipRanges", "expected a list of range sets")
        sets += [_parse_rangeset(x, f"runtimeConfig.ipRanges[{i}]") for i, x in enumerate(rc["ipRanges"])]
    if ipam.get("subnet") not in (None, ""):
        sets.append((_parse_range({k: ipam.get(k) for k in ("subnet", "rangeStart", "rangeEnd", "gateway")}, "ipam"),))
    if ipam.get("ranges") is not None:
        if not isinstance(ipam["ranges"], list):
            raise config_error("ipam.ranges", "expected a list of range sets")
        sets += [_parse_rangeset(x, f"ipam.ranges[{i}]") for i, x in enumerate(ipam["ranges"])]
    if not sets:
        raise config_error("ipam.ranges", "no IP ranges specified")

    families = [rs[0].version for rs in sets]
    if (families.count(4) > 1 or families.count(6) > 1) and cni_version in ("0.1.0", "0.2.0"):
        raise config_error("cniVersion", f"CNI version {cni_version} does not support more than 1 address per family")
    for i, rs in enumerate(sets):
        for j in range(i):
            if any(a.overlaps(b) for a in rs for b in sets[j]):
                raise config_error("ipam.ranges", f"range set {j} overlaps with {i}")

    return Config(
        name=name,
        cni_version=cni_version,
        data_dir=data_dir,
        ranges=tuple(sets),
        routes=_routes(ipam.get("routes")),
        resolv_conf=resolv_conf,
        requested=_requested(raw, cni_args),
    )


def parse_resolv_conf(path: str) -> DNS:
    """Go's parseResolvConf: nameserver / domain / search / options lines; comments skipped."""
    # A NAD-named path, read as root: no FIFO or device, bounded (cni_rdma.safefile). The one followed
    # symlink of the tree: /etc/resolv.conf is one under systemd-resolved, and Go follows it; naming a
    # file directly reaches the same targets, and only nameserver/domain/search/options lines are used.
    try:
        lines = safefile.read(path, safefile.RESOLV_CONF_MAX, follow=True).decode("utf-8", "replace").splitlines()
    except OSError as e:
        raise config_error("ipam.resolvConf", f"cannot read {path!r}: {safefile.describe(e)}") from None
    ns: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for line in lines:
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        if fields[0] == "nameserver":
            ns.append(fields[1])
        elif fields[0] == "domain":
            domain = fields[1]
        elif fields[0] == "search":
            search += fields[1:]
        elif fields[0] == "options":
            options += fields[1:]
    return DNS(tuple(ns), domain, tuple(search), tuple(options))

