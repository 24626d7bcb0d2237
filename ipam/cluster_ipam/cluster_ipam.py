"""cluster-ipam: one address pool shared by every node of a cluster, kept in etcd v3; never a duplicate address.

Config: host-local's (`ranges`, `subnet`..., `routes`, `resolvConf`, requested IPs) plus `pool`, `exclude`,
`blockSize`/`blockSizeV6`, `strictAffinity`, `nodeName` and `etcd` (config.py). Data model: blocks.py.

Block affinity (as Calico's IPAM): a node claims a block of the pool and allocates inside it, so the common ADD
is two reads (the record and the node's block index, then its blocks) and ONE write txn that adds the
allocation and the record, conditioned on the mod_revisions read. When the node's blocks are full, the same
txn also claims a free block (creates it with the node's affinity); when no block is free the node borrows an
address from another node's block (unless `strictAffinity`), so a pool serves to its last address. A txn
whose compares fail returns the keys' current values and the plan is redone, until the call's deadline. No
lock exists: a process killed at any point leaves either the whole change or none of it.

Error codes: 7 bad config (names the key or file), 11 etcd unreachable (names every endpoint and why) or the
pool exhausted / a requested address taken (names the pool), 100 the attachment already holds other addresses,
101 CHECK found no record, 50 STATUS (etcd unreachable, or the pool exhausted, saying which).
"""
from __future__ import annotations

import posix
import time

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Optional

    from ipam.host_local.config import Range, RangeSet

from cni_rdma import paths, safefile
from cni_rdma.confkeys import gc_keep
from cni_rdma.errors import INVALID_CONFIG, NOT_AVAILABLE, PLUGIN, TRY_AGAIN_LATER, CniError, config_error
from cni_rdma.skel import Request
from cni_rdma.types import DNS, IPConfig, Result
from ipam.host_local.config import parse_resolv_conf, rangeset_for, rangeset_str

from . import etcd
from .blocks import Block, Pool, ip_text, ip_value, parse_record, record_json
from .config import ClusterConf, load

ABOUT = "cni-rdma cluster-ipam (etcd v3)"
DUPLICATE = PLUGIN
NOT_FOUND = PLUGIN + 1
MAX_ATTEMPTS = 200  # conflicting txns per call before giving up (the deadline usually comes first)


# ---- config and connection ------------------------------------------------------------------------
def load_conf(req: Request) -> ClusterConf:
    return load(req.raw, req.args({"IP"}), req.conf.cni_version, req.container_id)


def _tls_context(conf: ClusterConf):  # -> ssl.SSLContext; ssl is imported only when an endpoint is https
    import ssl

    e = conf.etcd
    where = "ipam.etcd" if e.source == "ipam.etcd" else f"{e.source}:"
    if e.ca_file:
        from .config import read_file

        pem = read_file(e.ca_file, f"{where}.caFile").decode(errors="replace")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as err:
            raise config_error(f"{where}.caFile", f"{e.ca_file} holds no usable CA certificate: {err}") from None
    else:
        ctx = ssl.create_default_context()
    if e.cert_file:
        fds = []
        try:
            for key, path in (("certFile", e.cert_file), ("keyFile", e.key_file)):
                fds.append(_open_regular(path, f"{where}.{key}"))
            try:  # the files as opened (no symlink), through /proc: ssl reads only paths
                ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
            except (ssl.SSLError, OSError) as err:
                raise config_error(f"{where}.certFile", f"{e.cert_file} / {e.key_file}: not a usable certificate "
                                   f"and key: {err}") from None
        finally:
            for fd in fds:
                posix.close(fd)
    return ctx


def _open_regular(path: str, field: str) -> int:
    from cni_rdma import safefile

    try:
        return safefile.open_regular(path)
    except OSError as err:
        raise config_error(field, f"cannot open {path}: {err.strerror or err}") from None


def connect(conf: ClusterConf) -> etcd.Client:
    e = conf.etcd
    eps = [etcd.parse_endpoint(u) for u in e.endpoints]
    return etcd.Client([x for x in eps if x is not None], e.timeout, min(e.timeout, 3.0),
                       _tls_context(conf) if e.tls else None, (e.username, e.password) if e.username else None)


def etcd_failure(conf: ClusterConf, err: etcd.EtcdError, code: int = TRY_AGAIN_LATER) -> CniError:
    if isinstance(err, etcd.Refused) and (err.grpc_code in (7, 16) or "user name" in str(err)
                                          or "authentication failed" in str(err)):
        # permission denied, unauthenticated, or auth on and no credentials given ("user name is empty")
        field = "ipam.etcd.username" if conf.etcd.source == "ipam.etcd" else f"{conf.etcd.source}:.username"
        return config_error(field, str(err))
    return CniError(code, f"cluster-ipam pool {conf.pool!r}: {err}")


# ---- reading the pool -----------------------------------------------------------------------------
class Session:
    """One call's connection and view of the pool: blocks read so far (by key), the node's block index.
    `with Session(conf) as s:` closes the connection and turns etcd errors into CNI errors (code 11, or 50
    for STATUS)."""

    def __init__(self, conf: ClusterConf, code: int = TRY_AGAIN_LATER):
        self.conf = conf
        self.pool = Pool(conf)
        self.c = connect(conf)
        self.code = code
        self.blocks: dict[bytes, Block] = {}
        self.mine: list[bytes] = []          # block keys with this node's affinity
        self.existing: Optional[set[bytes]] = None  # every block key of the pool (read on the first claim)
        self.all_read = False
        self.meta_rev = 0

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, kind, err, tb) -> None:
        self.c.close()
        if isinstance(err, etcd.EtcdError):
            raise etcd_failure(self.conf, err, self.code) from None

    def start(self, record_key: bytes) -> etcd.KV:
        """The record, the pool's meta and the node's block index in one read; then the node's blocks."""
        p = self.pool
        self.c.reads += 1
        mine = p.node_affinity_prefix(self.conf.node)
        resp = self.c.call("/v3/kv/txn", {"success": [
            etcd.op_range(record_key), etcd.op_range(p.meta_key),
            etcd.op_range(mine, etcd.prefix_end(mine), keys_only=True)]})
        parts = [etcd.kvs(r.get("response_range", {})) for r in resp.get("responses", ())]
        record = parts[0][0] if parts[0] else etcd.KV(record_key, None)
        self._check_meta(parts[1][0] if parts[1] else None)
        self.mine = sorted(p.block_key_of_affinity(kv.key) for kv in parts[2])
        if self.mine:
            self.load(self.mine)
        return record

    def _check_meta(self, kv: Optional[etcd.KV]) -> None:
        if kv is None or kv.value is None:
            return
        self.meta_rev = kv.mod_revision
        want = self.pool.meta_value()
        if kv.value != want:
            raise config_error("ipam.blockSize", f"pool {self.conf.pool!r} was created with block sizes "
                               f"{kv.value.decode(errors='replace')[:120]}; this config says {want.decode()}")

    def load(self, keys: list[bytes]) -> None:
        for kv in self.c.get(keys):
            self.update(kv)

    def update(self, kv: etcd.KV) -> None:
        if kv.key.startswith(self.pool.blocks_prefix):
            b = self.pool.parse_block(kv)
            if b is not None:
                self.blocks[kv.key] = b
                if self.existing is not None and kv.value is not None:
                    self.existing.add(kv.key)

    def block(self, version: int, net: int) -> Block:
        key = self.pool.block_key(version, net)
        if key not in self.blocks:
            self.load([key])
        b = self.blocks.get(key)
        return b if b is not None else self.pool.new_block(version, net)

    def read_all(self) -> None:
        if not self.all_read:
            for kv in self.c.get_prefix(self.pool.blocks_prefix):
                self.update(kv)
            self.existing = {k for k, b in self.blocks.items() if b.rev}
            self.all_read = True

    def read_existing(self) -> set[bytes]:
        if self.existing is None:
            self.existing = {kv.key for kv in self.c.get_prefix(self.pool.blocks_prefix, keys_only=True)}
        return self.existing


class Plan:
    """One attempt: blocks changed (copies), addresses chosen, blocks newly claimed by this node."""

    def __init__(self) -> None:
        self.touched: dict[bytes, Block] = {}
        self.claimed: list[bytes] = []
        self.chosen: list[tuple[Range, int, Block]] = []

    def edit(self, b: Block) -> Block:
        if b.key not in self.touched:
            self.touched[b.key] = b.copy()
        return self.touched[b.key]


# Spreading borrowers and writers needs noise, not the random module: importing it pulls os, hashlib and bisect
# (~5 ms) into an ADD that borrows (every ADD on a node once the pool has no free block left for it).
def _uniform() -> float:
    """A float in [0, 1) from the kernel's CSPRNG, as random.random() is for this use."""
    return int.from_bytes(posix.urandom(4), "little") / (1 << 32)


def _shuffle(items: list) -> None:
    """random.shuffle: Fisher-Yates in place (a modulo bias below 2**-32 * n: nothing to spreading borrowers)."""
    noise = posix.urandom(4 * len(items))
    for i in range(len(items) - 1, 0, -1):
        j = int.from_bytes(noise[4 * i:4 * i + 4], "little") % (i + 1)
        items[i], items[j] = items[j], items[i]


def _pick(s: Session, plan: Plan, idx: int, rs: RangeSet, handle: str) -> tuple[Range, int, Block]:
    conf, pool = s.conf, s.pool
    # 1. the node's own blocks
    for key in s.mine:
        b = plan.touched.get(key) or s.blocks.get(key)
        if b is not None and b.node == conf.node:
            got = pool.free(rs, b)
            if got is not None:
                return got[0], got[1], plan.edit(b)
    # 2. claim a block: one that does not exist yet, or an unaffined one (made by a requested address)
    existing = s.read_existing()
    for version, net in pool.block_nets(rs):
        key = pool.block_key(version, net)
        b = plan.touched.get(key) or s.blocks.get(key)
        if b is None and key in existing:
            continue  # claimed by some node (an unaffined one is found by borrowing)
        if b is not None and b.rev and b.node:
            continue
        got = pool.free(rs, b if b is not None else pool.new_block(version, net))
        if got is not None:  # (a block whose addresses are all excluded is never written)
            b = plan.edit(b if b is not None else pool.new_block(version, net))
            b.node = conf.node
            plan.claimed.append(key)
            return got[0], got[1], b
    # 3. borrow from another node's block
    if not conf.strict:
        s.read_all()
        keys = [k for k, b in s.blocks.items() if b.rev]
        _shuffle(keys)  # borrowers spread over the blocks instead of all racing for the first one
        for key in keys:
            b = plan.touched.get(key) or s.blocks[key]
            got = pool.free(rs, b)
            if got is not None:
                return got[0], got[1], plan.edit(b)
    how = "this node's blocks are full and no block is free (strictAffinity)" if conf.strict else "every block is full"
    raise CniError(TRY_AGAIN_LATER, f"cluster-ipam pool {conf.pool!r}: no free address in range set {idx} "
                   f"({rangeset_str(rs)}): {how}")


def _requested_block(s: Session, plan: Plan, idx: int, rs: RangeSet, want, handle: str) -> tuple[Range, int, Block]:
    conf = s.conf
    r = rangeset_for(rs, want.version, want.value)
    assert r is not None
    if want.value == r.gateway:
        raise CniError(INVALID_CONFIG, f'invalid "{want.source}": requested ip {want.text} is subnet\'s gateway')
    if not r.usable(want.value):
        raise CniError(INVALID_CONFIG, f'invalid "{want.source}": requested ip {want.text} is the subnet or '
                       "broadcast address")
    if conf.excluded(want.version, want.value):
        raise CniError(INVALID_CONFIG, f'invalid "{want.source}": requested ip {want.text} is excluded by '
                       "ipam.exclude")
    net = s.pool.block_net(want.version, want.value)
    b = plan.touched.get(s.pool.block_key(want.version, net)) or s.block(want.version, net)
    holder = b.alloc.get(want.text)
    if holder is not None and holder != handle:
        raise CniError(TRY_AGAIN_LATER, f"cluster-ipam pool {conf.pool!r}: requested IP address {want.text} "
                       f"(from {want.source}) is in use by {holder}")
    return r, want.value, plan.edit(b)


def _result(conf: ClusterConf, req: Request, addrs: list[tuple[int, int]]) -> Result:
    dns = parse_resolv_conf(conf.base.resolv_conf) if conf.base.resolv_conf else DNS()
    ips = []
    for version, value in addrs:
        for rs in conf.ranges:
            r = rangeset_for(rs, version, value)
            if r is not None:
                ips.append(IPConfig(address=r.interface(value), gateway=r.gateway_ip()))
                break
    return Result(cni_version=req.conf.cni_version, ips=tuple(ips), routes=conf.base.routes, dns=dns)


def _record_addrs(conf: ClusterConf, rec: dict, handle: str) -> list[tuple[int, int]]:
    """The addresses of an existing record for this attachment, one per range set, or code 100."""
    out = []
    for ip in rec.get("ips", ()):
        try:
            out.append(ip_value(str(ip.get("address", "")).split("/")[0]))
        except (ValueError, AttributeError):
            continue
    covered = all(any(rangeset_for(rs, v, x) for v, x in out) for rs in conf.ranges)
    wanted = {(r.version, r.value) for r in conf.base.requested}
    if not covered or len(out) != len(conf.ranges) or not wanted <= set(out):
        have = ", ".join(ip_text(v, x) for v, x in out) or "none"
        raise CniError(DUPLICATE, f"cluster-ipam pool {conf.pool!r}: {handle} already holds {have}, which does not "
                       "match this config; DEL it first")
    return out


# ---- the CNI commands -----------------------------------------------------------------------------
def add(req: Request) -> Result:
    conf = load_conf(req)
    handle = f"{req.container_id}/{req.ifname}"
    with Session(conf) as s:
        client = s.c
        rkey = s.pool.record_key(req.container_id, req.ifname)
        record = s.start(rkey)
        for attempt in range(MAX_ATTEMPTS):
            rec = parse_record(record.value)
            if rec is not None:  # a retried ADD (or our own txn that committed before a lost answer)
                addrs = _record_addrs(conf, rec, handle)
                _stats(req, "ADD (existing record)", client)
                return _result(conf, req, addrs)
            plan = Plan()
            pending = {r.text: r for r in conf.base.requested}
            for idx, rs in enumerate(conf.ranges):
                want = next((r for r in pending.values() if rangeset_for(rs, r.version, r.value)), None)
                if want is not None:
                    del pending[want.text]
                    r, value, b = _requested_block(s, plan, idx, rs, want, handle)
                else:
                    r, value, b = _pick(s, plan, idx, rs, handle)
                b.alloc[ip_text(r.version, value)] = handle
                b.next = value + 1
                plan.chosen.append((r, value, b))
            if pending:
                left = ", ".join(f"{r.text} (from {r.source})" for r in pending.values())
                raise CniError(INVALID_CONFIG, f"failed to allocate all requested IPs: {left}: in no range set, or "
                               "its range set already gave the one address it gives to another requested IP")
            ok, current = _commit(s, plan, req, conf, record)
            if ok:
                s.mine += plan.claimed
                _stats(req, f"ADD {', '.join(ip_text(r.version, v) for r, v, _ in plan.chosen)}", client)
                return _result(conf, req, [(r.version, v) for r, v, _ in plan.chosen])
            for kv in current:
                if kv.key == rkey:
                    record = kv
                else:
                    s.update(kv)
                    if kv.value is None:
                        s.blocks.pop(kv.key, None)
            if client.left() <= 0:
                break
            if attempt >= 3:  # many writers: spread them
                time.sleep(_uniform() * min(0.2, 0.01 * attempt, client.left()))
        raise CniError(TRY_AGAIN_LATER, f"cluster-ipam pool {conf.pool!r}: {client.txns} conflicting updates in "
                       f"{conf.etcd.timeout:g} s (the pool is contended); try again")


def _commit(s: Session, plan: Plan, req: Request, conf: ClusterConf, record: etcd.KV) -> tuple[bool, list[etcd.KV]]:
    pool = s.pool
    compares = [etcd.cmp_mod(record.key, record.mod_revision)]
    success = []
    for key, b in plan.touched.items():
        compares.append(etcd.cmp_mod(key, b.rev))
        success.append(etcd.op_put(key, b.to_json()))
    for key in plan.claimed:
        success.append(etcd.op_put(pool.affinity_key(conf.node, key), b""))
    if plan.claimed and not s.meta_rev:
        compares.append(etcd.cmp_mod(pool.meta_key, 0))
        success.append(etcd.op_put(pool.meta_key, pool.meta_value()))
    ips = [(f"{ip_text(r.version, v)}/{r.prefix}", b.cidr) for r, v, b in plan.chosen]
    success.append(etcd.op_put(record.key, record_json(conf.node, conf.base.name, req.container_id, req.ifname,
                                                       req.netns, conf.pod_namespace, conf.pod_name, ips, time.time())))
    keys = [record.key, *plan.touched]
    if plan.claimed and not s.meta_rev:
        keys.append(pool.meta_key)
    ok, current = s.c.txn(compares, success, keys)
    for kv in current:
        if kv.key == pool.meta_key:
            s._check_meta(kv)
    return ok, [kv for kv in current if kv.key != pool.meta_key]


def _stats(req: Request, what: str, c: etcd.Client) -> None:
    req.log.debug(f"{what}: reads={c.reads} txns={c.txns} conflicts={c.conflicts}")
    path = paths.getenv("CNI_RDMA_ETCD_STATS")  # bench only: one line per call
    if path:
        try:  # an env-named path: never a symlink, a FIFO (would block) or a device (safefile)
            fd = safefile.open_regular(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT, mode=0o600)
        except OSError:
            return
        try:
            posix.write(fd, f"{req.command} reads={c.reads} txns={c.txns} conflicts={c.conflicts}\n".encode())
        except OSError:
            pass
        finally:
            posix.close(fd)


def release(s: Session, rkey: bytes, handle: str, only_if: Optional[dict] = None) -> list[str]:
    """Remove one record and its allocations in one txn (retried on conflict). Returns what was released.
    only_if: GC passes the record it judged stale; if the record changed meanwhile it is left alone."""
    record = s.c.get([rkey])[0]
    for _ in range(MAX_ATTEMPTS):
        rec = parse_record(record.value)
        if record.value is None:
            return []
        if only_if is not None and rec != only_if:
            return []
        blocks: dict[bytes, Block] = {}
        freed = []
        for ip in (rec or {}).get("ips", ()):
            try:
                version, value = ip_value(str(ip.get("address", "")).split("/")[0])
            except (ValueError, AttributeError):
                continue
            net = s.pool.block_net(version, value)
            key = s.pool.block_key(version, net)
            if key not in blocks:
                blocks[key] = s.block(version, net).copy()
            text = ip_text(version, value)
            if blocks[key].alloc.get(text) == handle:
                del blocks[key].alloc[text]
                freed.append(text)
        compares = [etcd.cmp_mod(rkey, record.mod_revision)]
        success = [etcd.op_delete(rkey)]
        for key, b in blocks.items():
            if b.rev:
                compares.append(etcd.cmp_mod(key, b.rev))
                success.append(etcd.op_put(key, b.to_json()))
        ok, current = s.c.txn(compares, success, [rkey, *blocks])
        if ok:
            return freed
        for kv in current:
            if kv.key == rkey:
                record = kv
            else:
                s.update(kv)
        if s.c.left() <= 0:
            break
    raise CniError(TRY_AGAIN_LATER, f"cluster-ipam pool {s.conf.pool!r}: {s.c.txns} conflicting updates "
                   f"releasing {handle} in {s.conf.etcd.timeout:g} s; try again")


def delete(req: Request) -> None:
    conf = load_conf(req)
    with Session(conf) as s:
        handle = f"{req.container_id}/{req.ifname}"
        freed = release(s, s.pool.record_key(req.container_id, req.ifname), handle)
        _stats(req, f"DEL released {', '.join(freed) or 'nothing'}", s.c)


def check(req: Request) -> None:
    conf = load_conf(req)
    handle = f"{req.container_id}/{req.ifname}"
    with Session(conf) as s:
        record = s.c.get([s.pool.record_key(req.container_id, req.ifname)])[0]
        rec = parse_record(record.value)
        if rec is None:
            raise CniError(NOT_FOUND, f"cluster-ipam pool {conf.pool!r}: no record for {handle}")
        addrs = _record_addrs(conf, rec, handle)
        for version, value in addrs:
            b = s.block(version, s.pool.block_net(version, value))
            if b.alloc.get(ip_text(version, value)) != handle:
                raise CniError(NOT_FOUND, f"cluster-ipam pool {conf.pool!r}: {ip_text(version, value)} of {handle} "
                               f"is not allocated to it in block {b.cidr}")
        prev = req.conf.prev_result
        held = {ip_text(v, x) for v, x in addrs}
        for ipc in prev.ips if prev is not None else ():
            ip = str(ipc.address.ip)
            version, value = ip_value(ip)
            if any(rangeset_for(rs, version, value) for rs in conf.ranges) and ip not in held:
                raise CniError(NOT_FOUND, f"cluster-ipam pool {conf.pool!r}: {ip} from prevResult is not held by "
                               f"{handle}", f"held: {', '.join(sorted(held))}")


def status(req: Request) -> None:
    conf = load_conf(req)
    with Session(conf, NOT_AVAILABLE) as s:
        s.start(s.pool.record_key("-", "-"))
        for idx, rs in enumerate(conf.ranges):
            if not _has_free(s, rs):
                how = " for this node (strictAffinity)" if conf.strict else ""
                raise CniError(NOT_AVAILABLE, f"cluster-ipam pool {conf.pool!r} is exhausted{how}: range set {idx} "
                               f"({rangeset_str(rs)}) has no free address")


def _has_free(s: Session, rs: RangeSet) -> bool:
    existing = s.read_existing()
    for version, net in s.pool.block_nets(rs):
        key = s.pool.block_key(version, net)
        if key not in existing:
            if s.pool.free(rs, s.pool.new_block(version, net)) is not None:
                return True
    s.read_all()
    return any(s.pool.free(rs, b) is not None for b in s.blocks.values()
               if b.rev and (not s.conf.strict or b.node in (s.conf.node, "")))


def gc(req: Request) -> None:
    conf = load_conf(req)
    valid = gc_keep(req)
    if valid is None:
        return
    released = []
    with Session(conf) as s:
        for kv in s.c.get_prefix(s.pool.records_prefix):
            rec = parse_record(kv.value)
            if rec is None or rec.get("node") != conf.node or rec.get("network") != conf.base.name:
                continue
            cid, ifname = str(rec.get("containerID", "")), str(rec.get("ifname", ""))
            if (cid, ifname) in valid:
                continue
            released += release(s, kv.key, f"{cid}/{ifname}", only_if=rec)
    if released:
        req.log.info(f"GC released {len(released)}: {', '.join(released)}")
