"""Configs and results (SPEC.md "Network configuration format" and "Result types").

A result is held in one internal form (the 1.1.0 shape) and converted on the way out to the
version the caller asked for, and on the way in from whatever version a peer printed.
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

from .confkeys import as_int
from .errors import DECODE_FAILURE, INCOMPATIBLE_VERSION, INTERNAL, INVALID_CONFIG, CniError
from .frozen import Frozen
from .ipaddr import IPAddress, IPInterface, IPNetwork, ip_address, ip_interface, ip_network
from .version import SUPPORTED

LEGACY = ("0.1.0", "0.2.0")
V04 = ("0.3.0", "0.3.1", "0.4.0")


class Interface(Frozen):
    """An entry of a result's "interfaces" (SPEC.md "Success"): sandbox is the netns path for pod links."""

    __slots__ = ("name", "mac", "mtu", "sandbox", "socket_path", "pci_id")
    name: str
    mac: str
    mtu: int
    sandbox: str
    socket_path: str
    pci_id: str

    def __init__(self, name: str, mac: str = "", mtu: int = 0, sandbox: str = "", socket_path: str = "",
                 pci_id: str = "") -> None:
        self._init(locals())


class IPConfig(Frozen):
    """An entry of a result's "ips"; interface indexes the result's interfaces."""

    __slots__ = ("address", "gateway", "interface")
    address: IPInterface
    gateway: Optional[IPAddress]
    interface: Optional[int]

    def __init__(self, address: IPInterface, gateway: Optional[IPAddress] = None,
                 interface: Optional[int] = None) -> None:
        self._init(locals())

    @property
    def version(self) -> str:
        return str(self.address.version)


class Route(Frozen):
    """An entry of a result's (or an IPAM config's) "routes"; mtu..scope are the 1.1.0 route attributes."""

    __slots__ = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
    dst: IPNetwork
    gw: Optional[IPAddress]
    mtu: int
    advmss: int
    priority: int
    table: Optional[int]
    scope: Optional[int]

    def __init__(self, dst: IPNetwork, gw: Optional[IPAddress] = None, mtu: int = 0, advmss: int = 0,
                 priority: int = 0, table: Optional[int] = None, scope: Optional[int] = None) -> None:
        self._init(locals())


class DNS(Frozen):
    """The "dns" object of a config or a result."""

    __slots__ = ("nameservers", "domain", "search", "options")
    nameservers: tuple[str, ...]
    domain: str
    search: tuple[str, ...]
    options: tuple[str, ...]

    def __init__(self, nameservers: tuple[str, ...] = (), domain: str = "", search: tuple[str, ...] = (),
                 options: tuple[str, ...] = ()) -> None:
        self._init(locals())

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.nameservers:
            out["nameservers"] = list(self.nameservers)
        if self.domain:
            out["domain"] = self.domain
        if self.search:
            out["search"] = list(self.search)
        if self.options:
            out["options"] = list(self.options)
        return out

    @classmethod
    def from_json(cls, d: Any, where: str = "dns") -> "DNS":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise CniError(DECODE_FAILURE, f'invalid "{where}": expected an object')
        return cls(
            nameservers=_str_list(d.get("nameservers"), f"{where}.nameservers"),
            domain=_str(d.get("domain"), f"{where}.domain"),
            search=_str_list(d.get("search"), f"{where}.search"),
            options=_str_list(d.get("options"), f"{where}.options"),
        )


class Result(Frozen):
    """A plugin's result in its newest form; to_json/from_json convert to and from every CNI version."""

    __slots__ = ("cni_version", "interfaces", "ips", "routes", "dns")
    cni_version: str
    interfaces: tuple[Interface, ...]
    ips: tuple[IPConfig, ...]
    routes: tuple[Route, ...]
    dns: DNS

    def __init__(self, cni_version: str = "1.1.0", interfaces: tuple[Interface, ...] = (),
                 ips: tuple[IPConfig, ...] = (), routes: tuple[Route, ...] = (), dns: Optional[DNS] = None) -> None:
        dns = DNS() if dns is None else dns
        self._init(locals())

    def with_version(self, v: str) -> "Result":
        return self.replace(cni_version=v)

    def to_json(self, version: Optional[str] = None) -> dict:
        """The result as the given version prints it (SPEC.md "Result types", per version)."""
        v = version or self.cni_version
        if v in LEGACY:
            return self._to_legacy(v)
        if v not in SUPPORTED:
            raise CniError(INCOMPATIBLE_VERSION, f"unsupported CNI result version {v!r}")
        out: dict[str, Any] = {"cniVersion": v}
        if self.interfaces:
            out["interfaces"] = [_iface_json(i, v) for i in self.interfaces]
        if self.ips:
            out["ips"] = [_ip_json(ip, v) for ip in self.ips]
        if self.routes:
            out["routes"] = [_route_json(r, v) for r in self.routes]
        out["dns"] = self.dns.to_json()
        return out

    def _to_legacy(self, v: str) -> dict:
        # 0.1.0/0.2.0 hold one address per family; Go converts the first of each and fails without any.
        ip4 = next((ip for ip in self.ips if ip.address.version == 4), None)
        ip6 = next((ip for ip in self.ips if ip.address.version == 6), None)
        if ip4 is None and ip6 is None:
            raise CniError(INTERNAL, "cannot convert: no valid IP addresses")
        out: dict[str, Any] = {"cniVersion": v}
        for key, ip in (("ip4", ip4), ("ip6", ip6)):
            if ip is None:
                continue
            entry: dict[str, Any] = {"ip": str(ip.address)}
            if ip.gateway is not None:
                entry["gateway"] = str(ip.gateway)
            routes = [_route_json(r, v) for r in self.routes if r.dst.version == ip.address.version]
            if routes:
                entry["routes"] = routes
            out[key] = entry
        out["dns"] = self.dns.to_json()
        return out

    @classmethod
    def from_json(cls, d: Any, default_version: str = "", where: str = "result") -> "Result":
        """Parse a result printed in any supported version (cniVersion absent -> default_version)."""
        if not isinstance(d, dict):
            raise CniError(DECODE_FAILURE, f"could not parse {where}: expected a JSON object")
        v = d.get("cniVersion") or default_version or "0.1.0"
        if not isinstance(v, str) or v not in SUPPORTED:
            raise CniError(INCOMPATIBLE_VERSION, f"could not parse {where}: unsupported cniVersion {v!r}")
        try:
            if v in LEGACY:
                ips: list[IPConfig] = []
                routes: list[Route] = []
                for key in ("ip4", "ip6"):
                    entry = d.get(key)
                    if entry is None:
                        continue
                    if not isinstance(entry, dict):
                        raise ValueError(f"{key}: expected an object")
                    ips.append(IPConfig(_iface(entry.get("ip"), f"{key}.ip"),
                                        _addr(entry.get("gateway"), f"{key}.gateway")))
                    routes += [_route(r, f"{key}.routes") for r in _list(entry.get("routes"), f"{key}.routes")]
                return cls(v, (), tuple(ips), tuple(routes), DNS.from_json(d.get("dns"), f"{where}.dns"))
            interfaces = tuple(_iface_from(i) for i in _list(d.get("interfaces"), "interfaces"))
            ips = [_ip_from(ip) for ip in _list(d.get("ips"), "ips")]
            routes = [_route(r, "routes") for r in _list(d.get("routes"), "routes")]
        except (ValueError, TypeError, AttributeError) as e:
            raise CniError(DECODE_FAILURE, f"could not parse {where}: {e}") from None
        return cls(v, interfaces, tuple(ips), tuple(routes), DNS.from_json(d.get("dns"), f"{where}.dns"))


def _iface_json(i: Interface, v: str) -> dict:
    out: dict[str, Any] = {"name": i.name}
    if i.mac:
        out["mac"] = i.mac
    if v == "1.1.0":
        if i.mtu:
            out["mtu"] = i.mtu
    if i.sandbox:
        out["sandbox"] = i.sandbox
    if v == "1.1.0":
        if i.socket_path:
            out["socketPath"] = i.socket_path
        if i.pci_id:
            out["pciID"] = i.pci_id
    return out


def _ip_json(ip: IPConfig, v: str) -> dict:
    out: dict[str, Any] = {}
    if v in V04:
        out["version"] = ip.version
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = str(ip.address)
    if ip.gateway is not None:
        out["gateway"] = str(ip.gateway)
    return out


def _route_json(r: Route, v: str) -> dict:
    out: dict[str, Any] = {"dst": str(r.dst)}
    if r.gw is not None:
        out["gw"] = str(r.gw)
    if v == "1.1.0":
        for key, val in (("mtu", r.mtu), ("advmss", r.advmss), ("priority", r.priority)):
            if val:
                out[key] = val
        if r.table is not None:
            out["table"] = r.table
        if r.scope is not None:
            out["scope"] = r.scope
    return out


def _list(x: Any, where: str) -> list:
    if x is None:
        return []
    if not isinstance(x, list):
        raise ValueError(f"{where}: expected a list")
    return x


def _str(x: Any, where: str) -> str:
    if x is None:
        return ""
    if not isinstance(x, str):
        raise CniError(DECODE_FAILURE, f'invalid "{where}": expected a string')
    return x


def _str_list(x: Any, where: str) -> tuple[str, ...]:
    if x is None:
        return ()
    if not isinstance(x, list) or not all(isinstance(s, str) for s in x):
        raise CniError(DECODE_FAILURE, f'invalid "{where}": expected a list of strings')
    return tuple(x)


def _int(x: Any, where: str, default: Any = 0) -> Any:
    """confkeys' one integer check, as the ValueError result parsing turns into its own error."""
    if x is None:
        return default
    try:
        return as_int(x, where)
    except CniError as e:
        raise ValueError(e.msg) from None


def _iface(x: Any, where: str) -> IPInterface:
    if not isinstance(x, str) or "/" not in x:
        raise ValueError(f"{where}: expected an address in CIDR form, got {x!r}")
    return ip_interface(x)


def _addr(x: Any, where: str) -> Optional[IPAddress]:
    if x is None or x == "":
        return None
    if not isinstance(x, str):
        raise ValueError(f"{where}: expected an IP address")
    return ip_address(x)


def _iface_from(d: Any) -> Interface:
    if not isinstance(d, dict):
        raise ValueError("interfaces: expected objects")
    return Interface(
        name=_str(d.get("name"), "interfaces.name"),
        mac=_str(d.get("mac"), "interfaces.mac"),
        mtu=_int(d.get("mtu"), "interfaces.mtu"),
        sandbox=_str(d.get("sandbox"), "interfaces.sandbox"),
        socket_path=_str(d.get("socketPath"), "interfaces.socketPath"),
        pci_id=_str(d.get("pciID"), "interfaces.pciID"),
    )


def _ip_from(d: Any) -> IPConfig:
    if not isinstance(d, dict):
        raise ValueError("ips: expected objects")
    address = _iface(d.get("address"), "ips.address")
    ver = d.get("version")
    if ver is not None and ver != str(address.version):
        raise ValueError(f"ips.version {ver!r} does not match address {address}")
    return IPConfig(address, _addr(d.get("gateway"), "ips.gateway"), _int(d.get("interface"), "ips.interface", None))


def _route(d: Any, where: str) -> Route:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected objects")
    dst = d.get("dst")
    if not isinstance(dst, str):
        raise ValueError(f"{where}.dst: expected a CIDR")
    return Route(
        dst=ip_network(dst, strict=False),
        gw=_addr(d.get("gw"), f"{where}.gw"),
        mtu=_int(d.get("mtu"), f"{where}.mtu"),
        advmss=_int(d.get("advmss"), f"{where}.advmss"),
        priority=_int(d.get("priority"), f"{where}.priority"),
        table=_int(d.get("table"), f"{where}.table", None),
        scope=_int(d.get("scope"), f"{where}.scope", None),
    )


class NetConf(Frozen):
    """The keys every plugin shares (SPEC.md "Plugin configuration objects"); plugins read the rest from raw."""

    __slots__ = ("cni_version", "name", "type", "raw", "ipam", "dns", "args", "runtime_config", "capabilities",
                 "prev_result")
    cni_version: str
    name: str
    type: str
    raw: dict
    ipam: dict
    dns: DNS
    args: dict
    runtime_config: dict
    capabilities: dict
    prev_result: Optional[Result]

    def __init__(self, cni_version: str, name: str, type: str, raw: dict, ipam: Optional[dict] = None,
                 dns: Optional[DNS] = None, args: Optional[dict] = None, runtime_config: Optional[dict] = None,
                 capabilities: Optional[dict] = None, prev_result: Optional[Result] = None) -> None:
        ipam = {} if ipam is None else ipam
        dns = DNS() if dns is None else dns
        args = {} if args is None else args
        runtime_config = {} if runtime_config is None else runtime_config
        capabilities = {} if capabilities is None else capabilities
        self._init(locals())

    @property
    def ipam_type(self) -> str:
        return self.ipam.get("type", "") if self.ipam else ""

    @classmethod
    def from_json(cls, raw: dict) -> "NetConf":
        v = raw.get("cniVersion") or "0.1.0"
        for key in ("ipam", "args", "runtimeConfig", "capabilities"):
            if raw.get(key) is not None and not isinstance(raw[key], dict):
                raise CniError(INVALID_CONFIG, f'invalid "{key}": expected a JSON object')
        ptype = raw.get("type")
        if ptype is not None and not isinstance(ptype, str):
            raise CniError(INVALID_CONFIG, 'invalid "type": expected a string')
        ipam = raw.get("ipam") or {}
        if ipam and not isinstance(ipam.get("type"), str):
            raise CniError(INVALID_CONFIG, 'invalid "ipam.type": expected the name of an IPAM plugin')
        prev = None
        if raw.get("prevResult") is not None:
            # A prevResult without cniVersion takes the config's (libcni injects it that way).
            prev = Result.from_json(raw["prevResult"], v, "prevResult")
        return cls(
            cni_version=v,
            name=raw.get("name", ""),
            type=ptype or "",
            raw=raw,
            ipam=ipam,
            dns=DNS.from_json(raw.get("dns")),
            args=raw.get("args") or {},
            runtime_config=raw.get("runtimeConfig") or {},
            capabilities=raw.get("capabilities") or {},
            prev_result=prev,
        )
