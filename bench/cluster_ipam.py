"""cluster-ipam figures (not a test): CPU per ADD/DEL against host-local, etcd transactions per ADD, 8 nodes x
200 pods wall time, ADD latency with one etcd member down. Writes a markdown table to stdout.

Runs a real 3-member etcd cluster (tests/etcd/cluster.py, loopback, tmpfs) on this machine; the plugins run as
processes from build/frozen-bin when it exists (`make build`) and from build/dev-bin (source launchers).
CPU per call is the child's user+sys (getrusage deltas; etcd's own CPU is reported apart, from /proc).

    .venv/bin/python bench/cluster_ipam.py [--rounds 30] [--pods 200] [--nodes 8] [--workers 16]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.etcd.cluster import EtcdCluster  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def call(bindir: Path, plugin: str, command: str, conf: dict, cid: str, stats: str = "") -> tuple[float, float, int]:
    """(wall ms, child CPU ms, exit code) of one plugin process."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/var/run/netns/bench", "CNI_IFNAME": "eth0", "CNI_PATH": str(bindir)}
    if stats:
        env["CNI_RDMA_ETCD_STATS"] = stats
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([str(bindir / plugin)], input=json.dumps(conf).encode(), env=env, capture_output=True)
    wall = (time.perf_counter() - t) * 1000
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000
    if p.returncode != 0 and command != "DEL":
        raise SystemExit(f"{plugin} {command} {cid} failed: {p.stdout.decode()[:300]}")
    return wall, cpu, p.returncode


def etcd_cpu(cluster: EtcdCluster) -> float:
    total = 0
    for m in cluster.members:
        if m.proc is not None and m.proc.poll() is None:
            f = open(f"/proc/{m.proc.pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
    return total * 1000 / TICK


def conf_ipam(cluster: EtcdCluster, prefix: str, node: str, subnet: str = "10.200.0.0/16", **ipam) -> dict:
    return {"cniVersion": "1.1.0", "name": "bench-net", "type": "cluster-ipam",
            "ipam": {"type": "cluster-ipam", "ranges": [[{"subnet": subnet}]], "nodeName": node,
                     "etcd": {"endpoints": cluster.endpoints, "prefix": prefix, "timeout": 30}, **ipam}}


def conf_hostlocal(data: str) -> dict:
    return {"cniVersion": "1.1.0", "name": "bench-net", "type": "host-local",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.201.0.0/16"}]], "dataDir": data}}


def stats_lines(path: str) -> list[dict]:
    out = []
    for line in Path(path).read_text().splitlines() if Path(path).exists() else []:
        cmd, *kv = line.split()
        out.append({"cmd": cmd, **{k: int(v) for k, v in (x.split("=") for x in kv)}})
    Path(path).unlink(missing_ok=True)
    return out


def cpu_table(cluster: EtcdCluster, bindirs: dict[str, Path], rounds: int) -> list[str]:
    rows = ["| binaries | IPAM | ADD CPU ms (median) | DEL CPU ms | ADD wall ms | DEL wall ms | etcd CPU ms per ADD+DEL |",
            "|---|---|---|---|---|---|---|"]
    for label, bindir in bindirs.items():
        data = tempfile.mkdtemp(prefix="bench-hl-")
        prefix = f"/bench-cpu-{label}-{os.getpid()}"
        samples: dict[str, dict[str, list[float]]] = {k: {"add": [], "del": [], "addw": [], "delw": [], "etcd": []}
                                                      for k in ("host-local", "cluster-ipam")}
        for i in range(rounds):
            for kind in (("host-local", "cluster-ipam") if i % 2 else ("cluster-ipam", "host-local")):
                conf = conf_hostlocal(data) if kind == "host-local" else conf_ipam(cluster, prefix, "bench-node")
                e0 = etcd_cpu(cluster)
                w, c, _ = call(bindir, kind, "ADD", conf, f"cpu{i}")
                w2, c2, _ = call(bindir, kind, "DEL", conf, f"cpu{i}")
                s = samples[kind]
                s["add"].append(c), s["del"].append(c2), s["addw"].append(w), s["delw"].append(w2)
                s["etcd"].append(etcd_cpu(cluster) - e0)
        for kind, s in samples.items():
            med = {k: statistics.median(v) for k, v in s.items()}
            etcd = f"{med['etcd']:.1f}" if kind == "cluster-ipam" else "-"
            rows.append(f"| {label} | {kind} | {med['add']:.1f} | {med['del']:.1f} | {med['addw']:.1f} | "
                        f"{med['delw']:.1f} | {etcd} |")
        ratio_add = statistics.median(samples["cluster-ipam"]["add"]) / statistics.median(samples["host-local"]["add"])
        ratio_del = statistics.median(samples["cluster-ipam"]["del"]) / statistics.median(samples["host-local"]["del"])
        rows.append(f"| {label} | ratio cluster-ipam / host-local | {ratio_add:.2f}x | {ratio_del:.2f}x | | | |")
    return rows


def txn_table(cluster: EtcdCluster, bindir: Path) -> list[str]:
    stats = tempfile.mktemp(prefix="bench-stats-")
    prefix = f"/bench-txn-{os.getpid()}"
    rows = ["| case | reads | write txns | conflicts |", "|---|---|---|---|"]
    # a /29 block size: 8 addresses per block, 2 blocks in the range; node A fills both, node B must borrow
    small = {"blockSize": 29}
    a = conf_ipam(cluster, prefix, "node-a", subnet="10.202.0.0/24", **small)
    a["ipam"]["ranges"] = [[{"subnet": "10.202.0.0/24", "rangeStart": "10.202.0.2", "rangeEnd": "10.202.0.15"}]]
    b = json.loads(json.dumps(a))
    b["ipam"]["nodeName"] = "node-b"

    def one(conf, cid, cmd="ADD"):
        call(bindir, "cluster-ipam", cmd, conf, cid, stats)
        return stats_lines(stats)[-1]

    first = one(a, "t0")
    common = [one(a, f"t{i}") for i in range(1, 6)]
    claim2 = one(a, "t6")  # .2-.7 filled the first block: the next ADD claims the second
    rest = [one(a, f"t{i}") for i in range(7, 13)]
    borrow = one(b, "tb")  # both blocks are node-a's and full but one address: node-b borrows it
    dele = one(a, "t3", "DEL")
    rows.append(f"| first ADD on a node (claims a block: same txn) | {first['reads']} | {first['txns']} | {first['conflicts']} |")
    rows.append(f"| common ADD (free address in the node's block), mean of {len(common)} | "
                f"{statistics.mean(x['reads'] for x in common):.1f} | {statistics.mean(x['txns'] for x in common):.1f} | "
                f"{statistics.mean(x['conflicts'] for x in common):.1f} |")
    rows.append(f"| ADD when the node's blocks are full (claims the next) | {claim2['reads']} | {claim2['txns']} | {claim2['conflicts']} |")
    rows.append(f"| ADD on another node, no free block (borrows) | {borrow['reads']} | {borrow['txns']} | {borrow['conflicts']} |")
    rows.append(f"| DEL | {dele['reads']} | {dele['txns']} | {dele['conflicts']} |")
    del rest
    return rows


def storm(cluster: EtcdCluster, bindir: Path, nodes: int, pods: int, workers: int) -> list[str]:
    stats = tempfile.mktemp(prefix="bench-storm-")
    prefix = f"/bench-storm-{os.getpid()}"
    confs = [conf_ipam(cluster, prefix, f"node-{n}", subnet="10.203.0.0/20") for n in range(nodes)]
    jobs = [(confs[n], f"s{n}-{i}") for i in range(pods) for n in range(nodes)]
    e0 = etcd_cpu(cluster)
    t = time.perf_counter()
    done = [0]

    def add(j):
        r = call(bindir, "cluster-ipam", "ADD", j[0], j[1], stats)
        done[0] += 1
        if done[0] % 200 == 0:  # progress, for a loaded machine
            print(f"<!-- {done[0]} ADDs after {time.perf_counter() - t:.0f} s, load "
                  f"{open('/proc/loadavg').read().split()[0]} -->", flush=True)
        return r

    with ThreadPoolExecutor(max_workers=workers) as ex:
        res = list(ex.map(add, jobs))
    add_wall = time.perf_counter() - t
    add_etcd = etcd_cpu(cluster) - e0
    st = stats_lines(stats)
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(lambda j: call(bindir, "cluster-ipam", "DEL", j[0], j[1]), jobs))
    del_wall = time.perf_counter() - t
    lat = sorted(w for w, _, _ in res)
    n = len(jobs)
    return [f"| {nodes} nodes x {pods} pods = {n} ADDs, {workers} at a time | {add_wall:.1f} s ({n / add_wall:.0f}/s) | "
            f"DEL all {del_wall:.1f} s | ADD wall p50 {lat[n // 2]:.0f} ms, p99 {lat[int(n * .99)]:.0f} ms | "
            f"txns/ADD {sum(x['txns'] for x in st) / n:.2f}, conflicts/ADD {sum(x['conflicts'] for x in st) / n:.2f}, "
            f"reads/ADD {sum(x['reads'] for x in st) / n:.2f} | etcd CPU {add_etcd / n:.1f} ms/ADD |"]


def member_down(cluster: EtcdCluster, bindir: Path, rounds: int) -> list[str]:
    prefix = f"/bench-down-{os.getpid()}"
    conf = conf_ipam(cluster, prefix, "node-a")
    rows = []
    for label in ("3/3 members up", "member m0 killed (-9)"):
        if label.startswith("member"):
            cluster.kill(0)
        walls = []
        for i in range(rounds):
            w, _, _ = call(bindir, "cluster-ipam", "ADD", conf, f"d{label[0]}{i}")
            walls.append(w)
            call(bindir, "cluster-ipam", "DEL", conf, f"d{label[0]}{i}")
        walls.sort()
        rows.append(f"| {label} | {statistics.median(walls):.1f} | {walls[int(len(walls) * .9)]:.1f} | {walls[-1]:.1f} |")
    cluster.start(0)
    cluster.wait_healthy()
    return ["| etcd | ADD wall median ms | p90 | max |", "|---|---|---|---|", *rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--pods", type=int, default=200)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--skip", default="", help="comma list of: cpu,txn,storm,down")
    args = ap.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the etcd members on kill
    skip = set(args.skip.split(","))
    bindirs = {k: ROOT / "build" / d for k, d in (("frozen", "frozen-bin"), ("dev", "dev-bin"))
               if (ROOT / "build" / d / "cluster-ipam").exists()}
    main_bin = next(iter(bindirs.values()))
    cluster = EtcdCluster().up()
    try:
        def emit(*lines: str) -> None:
            print("\n".join(lines), flush=True)

        emit(f"# cluster-ipam figures ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
             f"{open('/proc/loadavg').read().split()[0]}, {os.cpu_count()} CPUs, etcd 3-member on loopback/tmpfs)", "")
        if "txn" not in skip:
            emit(f"## etcd requests per call ({'frozen' if 'frozen' in bindirs else 'dev'})", "",
                 *txn_table(cluster, main_bin), "")
        if "cpu" not in skip:
            emit("## CPU per call vs host-local", "", *cpu_table(cluster, bindirs, args.rounds), "")
        if "down" not in skip:
            emit("## ADD latency with one member down (sequential ADDs)", "",
                 *member_down(cluster, main_bin, args.rounds), "")
        if "storm" not in skip:
            emit("## Many nodes", "", "| run | ADD wall | DEL wall | latency | etcd requests | etcd |",
                 "|---|---|---|---|---|---|")
            emit(*storm(cluster, main_bin, args.nodes, args.pods, args.workers), "")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
