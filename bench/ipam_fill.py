"""host-local as a range fills: ours vs the Go host-local on a /16 at 0 % and at 90 % full (not a test).

Go finds a container's reservation by reading every file of the network on each ADD (duplicate check)
and DEL (release), so its cost grows with the fill level; ours reads one owner-index file (store.py).
Both stores are filled identically (random scatter, fixed seed, same round-robin cursor); then interleaved
rounds of ADD + DEL of a fresh container, each a real process. Reported: median wall and CPU (user+sys of
the child, from wait4) per call and the ours/Go ratio; also what our first call pays after another binary
changed the directory (the one-off index rebuild). Writes bench/ipam_fill.md.

    .venv/bin/python bench/ipam_fill.py [--prefix 16] [--fill 0.9] [--rounds 15] [--ours PATH] [--go PATH]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(binary: str, command: str, data_dir: str, subnet: str, cid: str) -> tuple[float, float]:
    conf = {"cniVersion": "1.0.0", "name": "bench", "type": "x",
            "ipam": {"type": "host-local", "dataDir": data_dir, "subnet": subnet}}
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/x",
           "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(binary)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([binary], input=json.dumps(conf).encode(), env=env, capture_output=True)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{binary} {command} failed: {p.stdout.decode()} {p.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def fill(data_dir: Path, net: ipaddress.IPv4Network, fraction: float, seed: int) -> int:
    usable = list(range(int(net.network_address) + 2, int(net.broadcast_address)))  # gateway .1 and broadcast out
    rng = random.Random(seed)
    chosen = rng.sample(usable, int(len(usable) * fraction))
    d = data_dir / "bench"
    d.mkdir(parents=True)
    for i, value in enumerate(chosen):
        (d / str(ipaddress.IPv4Address(value))).write_bytes(f"fill-{i}\r\neth0".encode())
    if chosen:
        (d / "last_reserved_ip.0").write_bytes(str(ipaddress.IPv4Address(rng.choice(chosen))).encode())
    return len(chosen)


def measure(args, fraction: float, tmp: Path) -> dict:
    net = ipaddress.ip_network(f"10.200.0.0/{args.prefix}")
    dirs = {"ours": tmp / f"ours-{fraction}", "go": tmp / f"go-{fraction}"}
    held = 0
    for d in dirs.values():
        held = fill(d, net, fraction, seed=7)
    bins = {"ours": args.ours, "go": args.go}
    # Our first call on a directory another writer filled: the index is rebuilt from every file, once.
    rebuild = run(args.ours, "DEL", str(dirs["ours"]), str(net), "nobody")
    samples = {who: {"ADD": [], "DEL": []} for who in bins}
    for i in range(args.rounds):
        order = ("ours", "go") if i % 2 == 0 else ("go", "ours")
        for who in order:
            for command in ("ADD", "DEL"):
                samples[who][command].append(run(bins[who], command, str(dirs[who]), str(net), f"b{i}"))
    out = {"fraction": fraction, "held": held, "rebuild_ms": rebuild}
    for command in ("ADD", "DEL"):
        for who in bins:
            out[f"{who}_{command}_wall"] = statistics.median(s[0] for s in samples[who][command])
            out[f"{who}_{command}_cpu"] = statistics.median(s[1] for s in samples[who][command])
        out[f"ratio_{command}_wall"] = out[f"ours_{command}_wall"] / out[f"go_{command}_wall"]
        out[f"ratio_{command}_cpu"] = out[f"ours_{command}_cpu"] / out[f"go_{command}_cpu"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefix", type=int, default=16)
    ap.add_argument("--fill", type=float, default=0.9)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--ours", default=str(ROOT / "build" / "dev-bin" / "host-local"))
    ap.add_argument("--go", default="/usr/lib/cni/host-local")
    ap.add_argument("--out", default=str(ROOT / "bench" / "ipam_fill.md"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ipam-fill-"))
    try:
        rows = [measure(args, f, tmp) for f in (0.0, args.fill)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [f"# host-local fill benchmark: /{args.prefix}, ours = {args.ours}, Go = {args.go}",
             "", f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.rounds} interleaved rounds, "
             "medians per call (real processes; wall includes start-up; CPU = user+sys of the child).", "",
             "| fill | held | call | ours wall ms | Go wall ms | ours/Go wall | ours CPU ms | Go CPU ms | ours/Go CPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for c in ("ADD", "DEL"):
            lines.append(f"| {r['fraction']:.0%} | {r['held']} | {c} | {r[f'ours_{c}_wall']:.1f} | {r[f'go_{c}_wall']:.1f} | "
                         f"{r[f'ratio_{c}_wall']:.2f} | {r[f'ours_{c}_cpu']:.1f} | {r[f'go_{c}_cpu']:.1f} | "
                         f"{r[f'ratio_{c}_cpu']:.2f} |")
    lines += ["", "One-off index rebuild (our first call after another writer changed the directory): "
              + ", ".join(f"{r['fraction']:.0%} full: {r['rebuild_ms'][0]:.0f} ms wall / {r['rebuild_ms'][1]:.0f} ms CPU"
                          for r in rows)]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
