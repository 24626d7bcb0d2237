"""The pool in etcd: key layout, blocks (a node's share of the pool) and the records of attachments.

    <prefix>/pools/<pool>/meta                     {"blockSize": {"4": 26, "6": 122}}: fixed at the first claim
    <prefix>/pools/<pool>/blocks/<net>-<len>       one block: {"cidr", "node", "alloc": {ip: "<cid>/<ifname>"}, "next"}
    <prefix>/pools/<pool>/affinity/<node>/<net>-<len>   "" — the index of a node's blocks (written with the block)
    <prefix>/pools/<pool>/records/<cid>/<ifname>   one attachment: node, network, pod, netns, time, ips

A block is an aligned CIDR of `blockSize` bits; the addresses a config hands out from it are its range sets'
usable addresses inside that CIDR (gateway, subnet and broadcast addresses and `exclude` never), so an address
maps to exactly one block key whatever the subnet. "node" is the block's affinity ("" when unaffined: a block
first touched by a requested address). A record and the allocations naming it always change in one etcd txn.
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Iterator, Optional

    from ipam.host_local.config import Range, RangeSet

    from .config import ClusterConf
    from .etcd import KV

from cni_rdma import jsonc
from cni_rdma.ipaddr import ip_address, ip_text
from cni_rdma.native import crc32


def ip_value(text: str) -> tuple[int, int]:
    a = ip_address(text)
    return a.version, a.value


class Block:
    """A block as read from etcd (rev 0: the key does not exist yet) and as it will be written back."""

    __slots__ = ("key", "version", "net", "prefix", "rev", "node", "alloc", "next", "dirty")

    def __init__(self, key: bytes, version: int, net: int, prefix: int, rev: int = 0, node: str = "",
                 alloc: Optional[dict[str, str]] = None, next_value: int = 0):
        self.key = key
        self.version = version
        self.net = net
        self.prefix = prefix
        self.rev = rev
        self.node = node
        self.alloc = alloc if alloc is not None else {}
        self.next = next_value
        self.dirty = False

    @property
    def cidr(self) -> str:
        return f"{ip_text(self.version, self.net)}/{self.prefix}"

    @property
    def last(self) -> int:
        return self.net | ((1 << ((32 if self.version == 4 else 128) - self.prefix)) - 1)

    def to_json(self) -> bytes:
        return jsonc.dumps({"cidr": self.cidr, "node": self.node, "alloc": self.alloc, "next": self.next},
                           separators=(",", ":"), sort_keys=True).encode()

    def copy(self) -> "Block":
        return Block(self.key, self.version, self.net, self.prefix, self.rev, self.node, dict(self.alloc), self.next)


class Pool:
    """Key names and block geometry of one pool as one config sees it."""

    def __init__(self, conf: ClusterConf):
        self.conf = conf
        self.root = f"{conf.etcd.prefix}/pools/{conf.pool}/"
        self.meta_key = (self.root + "meta").encode()
        self.blocks_prefix = (self.root + "blocks/").encode()
        self.records_prefix = (self.root + "records/").encode()
        self.affinity_prefix = (self.root + "affinity/").encode()

    # ---- keys -------------------------------------------------------------------------------------
    def meta_value(self) -> bytes:
        return jsonc.dumps({"blockSize": {str(v): n for v, n in sorted(self.conf.block_size.items())}},
                           sort_keys=True).encode()

    def record_key(self, cid: str, ifname: str) -> bytes:
        return self.records_prefix + f"{cid}/{ifname}".encode()

    def block_key(self, version: int, net: int) -> bytes:
        return self.blocks_prefix + f"{ip_text(version, net)}-{self.conf.block_size[version]}".encode()

    def affinity_key(self, node: str, block_key: bytes) -> bytes:
        return self.affinity_prefix + node.encode() + b"/" + block_key[len(self.blocks_prefix):]

    def node_affinity_prefix(self, node: str) -> bytes:
        return self.affinity_prefix + node.encode() + b"/"

    def block_key_of_affinity(self, key: bytes) -> bytes:
        return self.blocks_prefix + key.rsplit(b"/", 1)[1]

    # ---- geometry ---------------------------------------------------------------------------------
    def block_net(self, version: int, value: int) -> int:
        host = (32 if version == 4 else 128) - self.conf.block_size[version]
        return value >> host << host

    def new_block(self, version: int, net: int) -> Block:
        return Block(self.block_key(version, net), version, net, self.conf.block_size[version])

    def parse_block(self, kv: KV) -> Optional[Block]:
        """A block from its key and value; None for a key that is not a block of this pool's block size."""
        name = kv.key[len(self.blocks_prefix):].decode(errors="replace")
        addr, _, bits = name.rpartition("-")
        try:
            version, net = ip_value(addr)
        except ValueError:
            return None
        if bits != str(self.conf.block_size.get(version)):
            return None
        b = Block(kv.key, version, net, int(bits), kv.mod_revision)
        if kv.value:
            try:
                d = jsonc.loads(kv.value)
                b.node = str(d.get("node") or "")
                alloc = d.get("alloc") or {}
                b.alloc = {str(k): str(v) for k, v in alloc.items()} if isinstance(alloc, dict) else {}
                b.next = int(d.get("next") or 0)
            except (ValueError, TypeError, AttributeError):
                # Never hand out from a block we cannot read: mark every address taken.
                b.node, b.alloc, b.next = "?", {"*": "unreadable"}, 0
        return b

    def candidates(self, rs: RangeSet, b: Block) -> Iterator[tuple[Range, int]]:
        """Every address of range set rs inside block b that may be handed out, in address order."""
        for r in rs:
            if r.version != b.version:
                continue
            lo, hi = max(r.start, b.net), min(r.end, b.last)
            for value in range(lo, hi + 1):
                if r.usable(value) and not self.conf.excluded(r.version, value):
                    yield r, value

    def free(self, rs: RangeSet, b: Block) -> Optional[tuple[Range, int]]:
        """The next free address of rs in b, round-robin from the block's cursor (recently freed ones last)."""
        if "*" in b.alloc:
            return None
        first = None
        for r, value in self.candidates(rs, b):
            if ip_text(r.version, value) in b.alloc:
                continue
            if value >= b.next:
                return r, value
            if first is None:
                first = (r, value)
        return first

    def count(self, rs: RangeSet, b: Block) -> tuple[int, int]:
        """(used, free) addresses of rs in b."""
        used = free = 0
        for r, value in self.candidates(rs, b):
            if ip_text(r.version, value) in b.alloc:
                used += 1
            else:
                free += 1
        return used, free

    def block_nets(self, rs: RangeSet) -> Iterator[tuple[int, int]]:
        """(version, net) of every block covering rs, starting at a point derived from the node name so
        nodes claiming at once pick different blocks; each block once."""
        spans = []
        for r in rs:
            size = 1 << ((32 if r.version == 4 else 128) - self.conf.block_size[r.version])
            first, last = self.block_net(r.version, r.start), self.block_net(r.version, r.end)
            spans.append((r.version, first, (last - first) // size + 1, size))
        total = sum(n for _, _, n, _ in spans)
        start = crc32(self.conf.node.encode()) % total
        seen: set[tuple[int, int]] = set()
        for k in range(total):
            i = (start + k) % total
            for version, first, n, size in spans:
                if i < n:
                    key = (version, first + i * size)
                    if key not in seen:
                        seen.add(key)
                        yield key
                    break
                i -= n


def record_json(node: str, network: str, cid: str, ifname: str, netns: str, pod_namespace: str, pod_name: str,
                ips: list[tuple[str, str]], when: float) -> bytes:
    """The attachment record; ips are (address/prefix, block CIDR)."""
    import time

    return jsonc.dumps({"node": node, "network": network, "containerID": cid, "ifname": ifname, "netns": netns,
                        "podNamespace": pod_namespace, "podName": pod_name,
                        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
                        "ips": [{"address": a, "block": b} for a, b in ips]}, separators=(",", ":")).encode()


def parse_record(value: Optional[bytes]) -> Optional[dict]:
    if not value:
        return None
    try:
        d = jsonc.loads(value)
    except ValueError:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("ips"), list):
        return None
    return d
