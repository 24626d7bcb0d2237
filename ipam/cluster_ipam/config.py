"""cluster-ipam configuration: host-local's range format (parsed by host-local's own loader) plus the keys of a
cluster-wide pool and where its etcd is.

    "ipam": {"type": "cluster-ipam",
             "ranges": [[{"subnet": "172.81.0.0/16", "rangeStart": "172.81.0.100", "rangeEnd": "172.81.0.120",
                          "gateway": "172.81.0.1"}]],          # host-local's keys: subnet, ranges, routes, ...
             "pool": "rdma-pool",        # default: the network name; NADs naming one pool share its addresses
             "exclude": ["172.81.0.110/31", "172.81.0.115"],  # never handed out
             "blockSize": 26, "blockSizeV6": 122,             # prefix length of a node's block
             "strictAffinity": false,    # true: a node allocates only inside its own blocks (no borrowing)
             "nodeName": "node-a",       # default: uname -n
             "etcd": {"endpoints": ["https://10.0.0.1:2379", ...], "caFile": ..., "certFile": ..., "keyFile": ...,
                      "prefix": "/cni-rdma/ipam", "timeout": 10}}
or `"etcd": {"configFile": "/etc/cni/net.d/cni-rdma-etcd.json"}` (a node-local file holding those keys plus
`username`/`passwordFile`; also the default when `etcd` is absent): credentials are refused in a NAD.

Files named by a config are opened O_NOFOLLOW|O_NONBLOCK, must be regular and small: a NAD author may name any
path, so a FIFO, a device or a symlink to a secret is refused with code 7 naming the key and the file.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any

from cni_rdma import jsonc, paths, safefile
from cni_rdma.errors import config_error
from cni_rdma.ipaddr import ip_network
from ipam.host_local import config as hl

DEFAULT_ETCD_CONFIG = "/etc/cni/net.d/cni-rdma-etcd.json"
DEFAULT_PREFIX = "/cni-rdma/ipam"
DEFAULT_TIMEOUT = 10.0     # seconds a call may spend reaching etcd before code 11 (plus at most one request)
REQUEST_TIMEOUT = 3.0      # one HTTP request to one member
MAX_FILE = 64 << 10
# A name is [A-Za-z0-9][A-Za-z0-9_.\-]{0,252}, a key prefix (/[A-Za-z0-9_.\-]+)+, both the whole string (a trailing
# newline refused): checked as sets, re costs ~5 ms to import.
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def is_name(s: str) -> bool:
    return 0 < len(s) <= 253 and s[0] in _NAME_FIRST and _NAME_REST.issuperset(s)


def is_prefix(s: str) -> bool:
    segments = s.split("/")
    return len(segments) > 1 and segments[0] == "" and all(p and _NAME_REST.issuperset(p) for p in segments[1:])
ETCD_KEYS = ("endpoints", "caFile", "certFile", "keyFile", "username", "passwordFile", "prefix", "timeout")
BLOCK_LIMITS = {4: ("blockSize", 26, 16, 32), 6: ("blockSizeV6", 122, 112, 128)}  # key, default, min, max


class EtcdConf:
    __slots__ = ("endpoints", "ca_file", "cert_file", "key_file", "username", "password", "prefix", "timeout",
                 "source")

    def __init__(self) -> None:
        self.endpoints: list[str] = []
        self.ca_file = self.cert_file = self.key_file = self.username = self.password = ""
        self.prefix = DEFAULT_PREFIX
        self.timeout = DEFAULT_TIMEOUT
        self.source = "ipam.etcd"  # the field (or file) errors name

    @property
    def tls(self) -> bool:
        return any(e.startswith("https:") for e in self.endpoints)


class ClusterConf:
    """A validated cluster-ipam config: host-local's parsed config (`base`) and the cluster keys."""

    __slots__ = ("base", "pool", "node", "exclude", "block_size", "strict", "etcd", "pod_namespace", "pod_name")

    def __init__(self, base: hl.Config, pool: str, node: str, exclude: tuple[tuple[int, int, int], ...],
                 block_size: dict[int, int], strict: bool, etcd: EtcdConf, pod_namespace: str, pod_name: str):
        self.base = base
        self.pool = pool
        self.node = node
        self.exclude = exclude          # (version, first, last) inclusive
        self.block_size = block_size    # version -> prefix length
        self.strict = strict
        self.etcd = etcd
        self.pod_namespace = pod_namespace
        self.pod_name = pod_name

    @property
    def ranges(self) -> tuple[hl.RangeSet, ...]:
        return self.base.ranges

    def excluded(self, version: int, value: int) -> bool:
        return any(v == version and lo <= value <= hi for v, lo, hi in self.exclude)


def read_file(path: Any, field: str, limit: int = MAX_FILE) -> bytes:
    """A small regular file named by a config (cni_rdma.safefile: no symlink, FIFO or device); code 7 naming
    the field and the file."""
    if not isinstance(path, str) or not path:
        raise config_error(field, "expected a file path")
    if not paths.isabs(path) or "\0" in path:
        raise config_error(field, f"{path!r} is not an absolute path")
    try:
        return safefile.read(path, limit)
    except OSError as e:
        raise config_error(field, f"cannot read {path}: {e.strerror or e}") from None


def _str(d: dict, key: str, field: str, default: str = "") -> str:
    v = d.get(key)
    if v is None or v == "":
        return default
    if not isinstance(v, str) or "\0" in v:
        raise config_error(field, "expected a string")
    return v


def _name(d: dict, key: str, field: str, default: str) -> str:
    v = _str(d, key, field, default)
    if not is_name(v):
        raise config_error(field, f"{v!r} is not a valid name (letters, digits, '-', '_', '.'; at most 253)")
    return v


def etcd_keys(d: dict, where: str, out: EtcdConf) -> None:
    unknown = sorted(k for k in d if k not in ETCD_KEYS)
    if unknown:
        raise config_error(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(ETCD_KEYS)})")
    eps = d.get("endpoints")
    if not isinstance(eps, list) or not eps:
        raise config_error(f"{where}.endpoints", "expected a non-empty list of http(s)://host:port URLs")
    from .etcd import parse_endpoint

    for i, e in enumerate(eps):
        if not isinstance(e, str) or parse_endpoint(e) is None:
            raise config_error(f"{where}.endpoints[{i}]", f"expected http(s)://host:port, got {e!r}"[:200])
    out.endpoints = list(eps)
    schemes = {e.split(":", 1)[0] for e in eps}
    if len(schemes) > 1:
        raise config_error(f"{where}.endpoints", "mixes http and https endpoints")
    for key in ("caFile", "certFile", "keyFile", "passwordFile"):
        v = d.get(key)
        if v is not None and v != "" and (not isinstance(v, str) or not paths.isabs(v) or "\0" in v):
            raise config_error(f"{where}.{key}", f"expected an absolute file path, got {v!r}"[:200])
    out.ca_file = _str(d, "caFile", f"{where}.caFile")
    out.cert_file = _str(d, "certFile", f"{where}.certFile")
    out.key_file = _str(d, "keyFile", f"{where}.keyFile")
    if bool(out.cert_file) != bool(out.key_file):
        missing = "keyFile" if out.cert_file else "certFile"
        raise config_error(f"{where}.{missing}", "certFile and keyFile go together")
    if (out.ca_file or out.cert_file) and not out.tls:
        raise config_error(f"{where}.endpoints", "TLS files are set but the endpoints are not https://")
    out.username = _str(d, "username", f"{where}.username")
    password_file = _str(d, "passwordFile", f"{where}.passwordFile")
    if bool(out.username) != bool(password_file):
        raise config_error(f"{where}.{'passwordFile' if out.username else 'username'}",
                           "username and passwordFile go together")
    if password_file:
        text = read_file(password_file, f"{where}.passwordFile", 1024).decode(errors="replace")
        lines = text.strip("\r\n").splitlines()
        if len(lines) != 1 or not lines[0]:
            raise config_error(f"{where}.passwordFile", f"{password_file} must hold the password on one line")
        out.password = lines[0]
    out.prefix = _str(d, "prefix", f"{where}.prefix", DEFAULT_PREFIX).rstrip("/") or DEFAULT_PREFIX
    if not is_prefix(out.prefix) or len(out.prefix) > 200:
        raise config_error(f"{where}.prefix", f"{out.prefix!r} is not a key prefix like /cni-rdma/ipam"[:200])
    t = d.get("timeout")
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 1 <= t <= 120:
            raise config_error(f"{where}.timeout", f"expected seconds between 1 and 120, got {t!r}"[:200])
        out.timeout = float(t)


def load_etcd(ipam: dict) -> EtcdConf:
    out = EtcdConf()
    d = ipam.get("etcd")
    if d is None:
        d = {"configFile": DEFAULT_ETCD_CONFIG}
    if not isinstance(d, dict):
        raise config_error("ipam.etcd", "expected an object with endpoints, or with configFile")
    if "configFile" in d:
        if len(d) > 1:
            others = sorted(k for k in d if k != "configFile")
            raise config_error(f"ipam.etcd.{others[0]}", "configFile holds every etcd key: set it there")
        path = d["configFile"]
        data = read_file(path, "ipam.etcd.configFile")
        try:
            d = jsonc.loads(data)
        except (ValueError, RecursionError):
            raise config_error("ipam.etcd.configFile", f"{path} is not JSON") from None
        if not isinstance(d, dict):
            raise config_error("ipam.etcd.configFile", f"{path} must hold a JSON object")
        out.source = path
        etcd_keys(d, f"{path}:", out)
    else:
        # The password file's content is sent to the endpoints: a NAD author naming both could read any one-line
        # root-only file off the node. Credentials therefore come only from the node-local configFile.
        for key in ("passwordFile", "username"):
            if key in d:
                raise config_error(f"ipam.etcd.{key}", "etcd credentials are read only from the node-local "
                                   f"configFile (default {DEFAULT_ETCD_CONFIG}), never from a network config")
        etcd_keys(d, "ipam.etcd", out)
    return out


def _exclude(x: Any) -> tuple[tuple[int, int, int], ...]:
    if x is None:
        return ()
    if not isinstance(x, list):
        raise config_error("ipam.exclude", "expected a list of CIDRs or addresses")
    out = []
    for i, e in enumerate(x):
        field = f"ipam.exclude[{i}]"
        if not isinstance(e, str):
            raise config_error(field, "expected a CIDR or an address")
        try:
            net = ip_network(e, strict=False)
        except ValueError:
            raise config_error(field, f"{e!r} is not a CIDR or an address"[:200]) from None
        out.append((net.version, net.network_address.value, net.broadcast_address.value))
    return tuple(out)


def _block_sizes(ipam: dict) -> dict[int, int]:
    out = {}
    for version, (key, default, lo, hi) in BLOCK_LIMITS.items():
        v = ipam.get(key, default)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise config_error(f"ipam.{key}", f"expected a prefix length between {lo} and {hi}, got {v!r}"[:200])
        out[version] = v
    return out


def load(raw: dict, cni_args: dict[str, str], cni_version: str, container_id: str = "") -> ClusterConf:
    hl.check_names(raw.get("name", ""), container_id)
    base = hl.load(raw, cni_args, cni_version)
    ipam = raw["ipam"]
    strict = ipam.get("strictAffinity", False)
    if not isinstance(strict, bool):
        raise config_error("ipam.strictAffinity", f"expected true or false, got {strict!r}"[:200])
    return ClusterConf(
        base=base,
        pool=_name(ipam, "pool", "ipam.pool", base.name),
        node=_name(ipam, "nodeName", "ipam.nodeName", posix.uname().nodename),
        exclude=_exclude(ipam.get("exclude")),
        block_size=_block_sizes(ipam),
        strict=strict,
        etcd=load_etcd(ipam),
        pod_namespace=cni_args.get("K8S_POD_NAMESPACE", ""),
        pod_name=cni_args.get("K8S_POD_NAME", ""),
    )
