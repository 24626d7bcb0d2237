"""Operator view of cluster-ipam pools: `python -m ipam.cluster_ipam ls --config <file>`.

<file> is a network config (a NAD's JSON, or a .conflist's plugin) using cluster-ipam — then free/used are
counted over its ranges — or a node's etcd config file (endpoints, TLS files, prefix), which lists every pool.
Prints, per pool: each block (CIDR, node affinity, used/free), records per node, and problems: records of this
node whose netns is gone (no live attachment: GC or DEL will release them), allocations without a record,
and records whose addresses are not allocated to them. Exit status 0, or 1 on a problem found or an error.
The `cni-rdma` CLI may expose the same as `cni-rdma ipam ls` (it only needs `inventory()` and `render()`).
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

from cni_rdma.errors import CniError

from . import etcd
from .blocks import Pool, parse_record
from .cluster_ipam import connect
from .config import ClusterConf, EtcdConf, etcd_keys, load, read_file


def _conf_from_file(path: str, node: str) -> tuple[EtcdConf, ClusterConf | None]:
    raw = json.loads(read_file(path, "--config", 1 << 20))
    if isinstance(raw, dict) and "plugins" in raw:  # a conflist: its first plugin using cluster-ipam
        found = [p for p in raw["plugins"]
                 if isinstance(p, dict) and (p.get("ipam") or {}).get("type") == "cluster-ipam"]
        if not found:
            raise SystemExit(f"{path}: no plugin with cluster-ipam in this conflist")
        raw = {"cniVersion": raw.get("cniVersion", "1.1.0"), "name": raw.get("name", ""), **found[0]}
    if isinstance(raw, dict) and isinstance(raw.get("ipam"), dict):
        if node:
            raw["ipam"]["nodeName"] = node
        conf = load(raw, {}, str(raw.get("cniVersion") or "1.1.0"))
        return conf.etcd, conf
    e = EtcdConf()
    e.source = path
    etcd_keys(raw, f"{path}:", e)
    return e, None


def inventory(e: EtcdConf, conf: ClusterConf | None, node: str) -> list[dict]:
    """Every pool under the prefix (or the config's pool): blocks, records, problems. Plain data."""
    if conf is None:
        conf = ClusterConf.__new__(ClusterConf)
        conf.etcd, conf.pool, conf.node, conf.strict, conf.exclude = e, "-", node, False, ()
        conf.block_size = {4: 26, 6: 122}
    client = connect(conf)
    try:
        root = f"{e.prefix}/pools/".encode()
        kvs = client.get_prefix(root)
    finally:
        client.close()
    by_pool: dict[str, list[etcd.KV]] = defaultdict(list)
    for kv in kvs:
        name = kv.key[len(root):].split(b"/", 1)[0].decode(errors="replace")
        by_pool[name].append(kv)
    out = []
    for name in sorted(by_pool):
        if conf.pool != "-" and name != conf.pool:
            continue
        out.append(_pool(conf, name, by_pool[name], node))
    return out


def _pool(conf: ClusterConf, name: str, kvs: list[etcd.KV], node: str) -> dict:
    view = ClusterConf.__new__(ClusterConf)
    for slot in ClusterConf.__slots__:
        if hasattr(conf, slot):
            setattr(view, slot, getattr(conf, slot))
    view.pool = name
    meta = next((kv for kv in kvs if kv.key.endswith(b"/meta")), None)
    if meta is not None and meta.value:
        sizes = json.loads(meta.value).get("blockSize", {})
        view.block_size = {int(v): int(n) for v, n in sizes.items()}
    pool = Pool(view)
    ranges = conf.ranges if conf.pool == name and hasattr(conf, "base") else None
    blocks, alloc = [], {}
    for kv in kvs:
        if not kv.key.startswith(pool.blocks_prefix):
            continue
        b = pool.parse_block(kv)
        if b is None:
            continue
        used = len(b.alloc)
        free = None
        if ranges:
            free = sum(pool.count(rs, b)[1] for rs in ranges if rs[0].version == b.version)
        blocks.append({"cidr": b.cidr, "node": b.node, "used": used, "free": free})
        for ip, owner in b.alloc.items():
            alloc[ip] = owner
    records: dict = {}
    per_node: defaultdict[str, int] = defaultdict(int)
    stale: list = []
    unallocated: list = []
    for kv in kvs:
        if not kv.key.startswith(pool.records_prefix):
            continue
        rec = parse_record(kv.value)
        handle = kv.key[len(pool.records_prefix):].decode(errors="replace")
        if rec is None:
            unallocated.append({"record": handle, "problem": "unreadable record"})
            continue
        records[handle] = rec
        per_node[str(rec.get("node"))] += 1
        addrs = [str(i.get("address", "")).split("/")[0] for i in rec["ips"] if isinstance(i, dict)]
        if rec.get("node") == node and rec.get("netns") and not os.path.exists(str(rec["netns"])):
            stale.append({"record": handle, "ips": addrs, "netns": rec["netns"], "pod": _pod(rec)})
        for a in addrs:
            if alloc.get(a) != handle:
                unallocated.append({"record": handle, "problem": f"{a} is not allocated to it ({alloc.get(a)})"})
    orphans = [{"ip": ip, "owner": owner} for ip, owner in sorted(alloc.items()) if owner not in records]
    free_total = _free_total(pool, ranges, kvs) if ranges else None
    return {"pool": name, "blocks": sorted(blocks, key=lambda b: (b["node"], b["cidr"])), "free_total": free_total,
            "records_per_node": dict(sorted(per_node.items())), "records": len(records),
            "without_live_attachment": stale, "allocations_without_record": orphans,
            "records_not_allocated": unallocated}


def _free_total(pool: Pool, ranges, kvs: list[etcd.KV]) -> int | None:
    """Free addresses over the whole config (claimed blocks and unclaimed ones); None past 4096 blocks."""
    existing = {kv.key: pool.parse_block(kv) for kv in kvs if kv.key.startswith(pool.blocks_prefix)}
    total = 0
    for rs in ranges:
        for n, (version, net) in enumerate(pool.block_nets(rs)):
            if n >= 4096:
                return None
            b = existing.get(pool.block_key(version, net)) or pool.new_block(version, net)
            total += pool.count(rs, b)[1]
    return total


def _pod(rec: dict) -> str:
    ns, name = rec.get("podNamespace") or "", rec.get("podName") or ""
    return f"{ns}/{name}" if name else ""


def render(pools: list[dict], node: str) -> str:
    lines = []
    for p in pools:
        used = sum(b["used"] for b in p["blocks"])
        free = "" if p["free_total"] is None else f", {p['free_total']} free"
        lines.append(f"pool {p['pool']}: {len(p['blocks'])} blocks, {used} addresses used{free}, "
                     f"{p['records']} records")
        for b in p["blocks"]:
            free = "?" if b["free"] is None else b["free"]
            lines.append(f"  block {b['cidr']:<22} node {b['node'] or '(none)':<20} used {b['used']:>5}  "
                         f"free {free:>5}")
        for n, count in p["records_per_node"].items():
            lines.append(f"  node {n}: {count} records")
        for s in p["without_live_attachment"]:
            lines.append(f"  NO LIVE ATTACHMENT (node {node}, netns {s['netns']} gone): {s['record']} "
                         f"{', '.join(s['ips'])} {s['pod']}".rstrip())
        for o in p["allocations_without_record"]:
            lines.append(f"  ALLOCATION WITHOUT RECORD: {o['ip']} -> {o['owner']}")
        for u in p["records_not_allocated"]:
            lines.append(f"  RECORD {u['record']}: {u['problem']}")
    return "\n".join(lines) if lines else "no pools"


USAGE = """usage: python -m ipam.cluster_ipam ls --config FILE [--node NAME] [--json]

  --config FILE  a network config using cluster-ipam (free/used over its ranges), or an etcd config file
  --node NAME    this node's name, whose records are checked for a live netns (default: uname -n)
  --json         machine-readable output
"""


def main(argv: list[str] | None = None) -> int:
    # No argparse: it imports gettext, which the frozen bundle leaves out (build.spec).
    args = list(sys.argv[1:] if argv is None else argv)
    opts = {"--config": "", "--node": os.uname().nodename}
    as_json = False
    if "-h" in args or "--help" in args:
        print(USAGE)
        return 0
    if not args or args[0] != "ls":
        print(USAGE, file=sys.stderr)
        return 2
    rest = args[1:]
    while rest:
        a = rest.pop(0)
        if a == "--json":
            as_json = True
        elif a in opts and rest:
            opts[a] = rest.pop(0)
        else:
            print(f"unknown argument {a!r}\n{USAGE}", file=sys.stderr)
            return 2
    if not opts["--config"]:
        print(USAGE, file=sys.stderr)
        return 2
    node = opts["--node"]
    try:
        e, conf = _conf_from_file(os.path.abspath(opts["--config"]), node)
        pools = inventory(e, conf, node)
    except (CniError, etcd.EtcdError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(pools, indent=2) if as_json else render(pools, node))
    problems = any(p["without_live_attachment"] or p["allocations_without_record"] or p["records_not_allocated"]
                   for p in pools)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
