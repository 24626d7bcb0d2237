"""cluster-ipam under load and faults, real processes on a real 3-member etcd: many nodes racing for a pool too
small for them, a member killed mid-storm, every member down, and our plugin killed at random points.

The invariant checked after each: no address is held twice (results and etcd), every allocation in a block has
its record and every record's addresses are allocated to it — nothing half-written.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests import topology
from tests.etcd.conftest import allocations, code, ips, netconf, on_node, records, run, startup_seconds

SMALL = {"ranges": [[{"subnet": "10.90.0.0/24", "rangeStart": "10.90.0.2", "rangeEnd": "10.90.0.101"}]],
         "blockSize": 28}          # 100 addresses in 7 blocks of 16 (the first and last partly in range)
SMALL_SIZE = 100


def consistent(cluster, conf) -> dict[str, str]:
    """Blocks and records agree exactly; returns ip -> owner."""
    alloc = allocations(cluster, conf)
    recs = records(cluster, conf)
    from_records = {}
    for owner, rec in recs.items():
        for ip in rec["ips"]:
            addr = ip["address"].split("/")[0]
            assert addr not in from_records, f"{addr} in two records"
            from_records[addr] = owner
    assert alloc == from_records, (alloc, from_records)
    return alloc


def storm(confs: list[dict], per_node: int, workers: int, prefix: str = "p"):
    """per_node ADDs on every node config, `workers` at a time, interleaved across nodes."""
    jobs = [(conf, f"{prefix}{n}-{i}") for i in range(per_node) for n, conf in enumerate(confs)]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        results = list(ex.map(lambda j: (j[1], j[0], run("ADD", j[0], cid=j[1], timeout=120)), jobs))
    return results


def test_eight_nodes_fifty_adds_each_on_a_pool_too_small(etcd_cluster):
    base = netconf(etcd_cluster, SMALL, etcd={"timeout": 20})
    nodes = [on_node(base, f"node-{n}") for n in range(8)]
    t = time.monotonic()
    results = storm(nodes, per_node=50, workers=50)
    took = time.monotonic() - t
    won = {cid: ips(r)[0] for cid, _, r in results if r.code == 0}
    lost = [r for _, _, r in results if r.code != 0]
    assert len(won) + len(lost) == 400
    assert len(set(won.values())) == len(won), "an address was handed out twice"
    for r in lost:
        assert code(r) == 11 and "'ci-net'" in r.json["msg"], r.stdout
    # borrowing: the pool serves to its last address however the blocks were claimed
    assert len(won) == SMALL_SIZE, (len(won), Counter(r.json["msg"][:60] for r in lost))
    alloc = consistent(etcd_cluster, base)
    assert sorted(alloc) == sorted(ip.split("/")[0] for ip in won.values())
    per_node = Counter(records(etcd_cluster, base)[f"{cid}/eth0"]["node"] for cid in won)
    assert len(per_node) >= 4, per_node  # the race is spread over the nodes, not won by one
    # DEL from the node that added it (every winner, a sample of the losers: DEL of nothing is a no-op)
    by_cid = {cid: conf for cid, conf, r in results}
    losers = [cid for cid in by_cid if cid not in won]
    with ThreadPoolExecutor(max_workers=16) as ex:
        dels = list(ex.map(lambda cid: run("DEL", by_cid[cid], cid=cid, timeout=120), [*won, *losers[::10]]))
    assert all(code(r) == 0 for r in dels)
    assert allocations(etcd_cluster, base) == {} and records(etcd_cluster, base) == {}
    print(f"storm: 400 ADDs from 8 nodes, 50 at a time, in {took:.1f} s")


def _leader(cluster) -> int:
    for i in range(len(cluster.members)):
        try:
            st = cluster.post("/v3/maintenance/status", {}, member=i, timeout=2)
        except RuntimeError:
            continue
        if st.get("leader") and st["leader"] == st["header"]["member_id"]:
            return i
    raise AssertionError("no leader")


def test_member_killed_mid_storm(private_cluster):
    cluster = private_cluster()
    base = netconf(cluster, SMALL, etcd={"timeout": 15})
    nodes = [on_node(base, f"node-{n}") for n in range(4)]
    jobs = [(conf, f"k{n}-{i}") for i in range(30) for n, conf in enumerate(nodes)]
    results = []
    with ThreadPoolExecutor(max_workers=16) as ex:
        futures = [ex.submit(lambda j: (j[1], j[0], run("ADD", j[0], cid=j[1], timeout=120)), j) for j in jobs]
        while sum(f.done() for f in futures) < len(jobs) // 4:
            time.sleep(0.02)
        victim = _leader(cluster)
        cluster.kill(victim)  # kill -9 the leader: an election in the middle of the storm
        results = [f.result() for f in futures]
    won = {cid: ips(r)[0] for cid, _, r in results if r.code == 0}
    assert len(set(won.values())) == len(won), "an address was handed out twice"
    failed = [(cid, conf, r) for cid, conf, r in results if r.code != 0]
    for _, _, r in failed:
        assert code(r) == 11, r.stdout  # a clean CNI error, never a traceback or a hang
    # the cluster goes on with 2 of 3 members
    survivors = on_node(base, "node-0")
    assert code(run("ADD", survivors, cid="after-kill")) in (0, 11)
    # a failed ADD may have committed before its answer was lost: DEL (what the runtime does) undoes it
    for cid, conf, _ in failed:
        assert code(run("DEL", conf, cid=cid)) == 0
    alloc = consistent(cluster, base)
    assert set(alloc.values()) <= {f"{cid}/eth0" for cid in won} | {"after-kill/eth0"}
    assert {f"{cid}/eth0" for cid in won} <= set(alloc.values())
    cluster.start(victim)
    cluster.wait_healthy(members=[victim])
    assert len(won) + len(failed) == len(jobs)
    print(f"member {victim} (leader) killed: {len(won)} ADDs won, {len(failed)} failed cleanly")


def test_all_members_down_fails_within_the_bound_and_leaves_nothing_half_written(private_cluster):
    cluster = private_cluster()
    conf = netconf(cluster, etcd={"timeout": 3})
    assert code(run("ADD", conf, cid="before")) == 0
    for i in range(3):
        cluster.kill(i)
    start = startup_seconds()
    t = time.monotonic()
    r = run("ADD", conf, cid="during")
    took = time.monotonic() - t
    assert code(r) == 11, r.stdout
    for ep in cluster.endpoints:
        assert ep in r.json["msg"]
    assert "unreachable" in r.json["msg"]
    # the bound: etcd.timeout (3 s) + at most one request (3 s), plus process start-up
    assert took < 3 + 3 + 2 * start, (took, start)
    assert code(run("DEL", conf, cid="before")) == 11
    cluster.start()
    cluster.wait_healthy()
    consistent(cluster, conf)
    assert list(records(cluster, conf)) == ["before/eth0"]
    assert code(run("ADD", conf, cid="during")) == 0
    assert code(run("DEL", conf, cid="before")) == 0
    assert list(records(cluster, conf)) == ["during/eth0"]


def _spawn(conf: dict, cid: str) -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": "ADD", "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": str(topology.bin_dir())}
    p = subprocess.Popen([str(topology.bin_dir() / "cluster-ipam")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdin.write(json.dumps(conf).encode())
    p.stdin.close()
    return p


def test_plugin_killed_at_random_points_then_gc_per_node(etcd_cluster):
    base = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.91.0.0/23"}]], "blockSize": 27})
    nodes = [on_node(base, f"node-{n}") for n in range(4)]
    rng = random.Random(12)
    kills = 0
    attempted: dict[str, int] = {}  # cid -> node index
    batch, one = 10, 0.0
    while kills < 120:
        procs = []
        for _ in range(batch):
            n = rng.randrange(4)
            cid = f"kill-{len(attempted)}"
            attempted[cid] = n
            # the first batch runs to completion: how long a call takes here, batch-parallel, on this load;
            # the kills then land anywhere in a call, after the commit included
            procs.append((_spawn(nodes[n], cid), rng.uniform(0, one) if one else None))
        start = time.monotonic()
        for p, at in sorted(procs, key=lambda x: x[1] or 0):
            if at is None:
                continue
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
        for p, _ in procs:
            p.wait()
            p.stdout.close()
            p.stderr.close()
        one = one or (time.monotonic() - start) * 1.1
    alloc = consistent(etcd_cluster, base)  # whatever a kill left is whole: a record with its allocations
    recs = records(etcd_cluster, base)
    assert len(set(alloc)) == len(alloc)
    # GC on each node with a random half of its attempted attachments as valid
    valid = {cid for cid in attempted if rng.random() < 0.5}
    for n, conf in enumerate(nodes):
        listed = [{"containerID": cid, "ifname": "eth0"} for cid in valid if attempted.get(cid, 0) == n]
        assert code(run("GC", {**conf, "cni.dev/valid-attachments": listed})) == 0
    left = records(etcd_cluster, base)
    assert set(left) == {f"{cid}/eth0" for cid in valid} & set(recs), "GC left exactly the valid attachments"
    consistent(etcd_cluster, base)
    assert len(recs) > batch, "no kill landed after a commit"
    print(f"{kills} kills in {len(attempted)} ADDs ({len(recs)} left a record), a batch of {batch} {one * 1000:.0f} ms")
