"""Import cost of an etcd v3 client in a plugin process (cluster-ipam's choice; bench/etcd_client.md).

Each candidate is imported in a fresh `python -I -S` that has first imported what a plugin process already
holds (cni_rdma.main, the skeleton, json, socket): the figure is what the client ADDS to every CNI call.
CPU time of the imports, median and min over N interleaved runs. The PyPI clients (`etcd3`: gRPC + protobuf; `etcd3gw`: requests over
the JSON gateway) are measured from a throwaway venv given with --venv-python, never installed in the project:

    python3 -m venv /tmp/etcd-venv && /tmp/etcd-venv/bin/pip install etcd3 etcd3gw
    python3 bench/etcd_client.py --venv-python /tmp/etcd-venv/bin/python --runs 15
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = "import cni_rdma.main, cni_rdma.skel, json, socket"
CANDIDATES = [
    ("ours: ipam.cluster_ipam.etcd (socket + binascii + json)", "import ipam.cluster_ipam.etcd"),
    ("ours + ssl (only when an endpoint is https)", "import ipam.cluster_ipam.etcd, ssl"),
    ("stdlib http.client (a gateway client on it)", "import http.client, base64"),
    ("PyPI etcd3 (gRPC)", "import etcd3"),
    ("PyPI etcd3gw (requests, JSON gateway)", "import etcd3gw"),
    ("whole plugin: ipam.cluster_ipam.cluster_ipam", "import ipam.cluster_ipam.cluster_ipam"),
    ("whole plugin: ipam.host_local.host_local (reference)", "import ipam.host_local.host_local"),
]
# CPU time of the import (process_time): on a shared, loaded machine wall time measures the neighbours.
PROBE = ("import sys, time; sys.path.insert(0, {root!r}); {base}; t = time.process_time(); {extra}; "
         "print((time.process_time() - t) * 1000)")


def measure(python: str, extra: str, flags: list[str]) -> float | None:
    p = subprocess.run([python, *flags, "-c", PROBE.format(root=ROOT, base=BASE, extra=extra)],
                       capture_output=True, text=True)
    return float(p.stdout) if p.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv-python", default="", help="a python with etcd3 and etcd3gw installed")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    python = args.venv_python or sys.executable
    samples: dict[str, list[float]] = {name: [] for name, _ in CANDIDATES}
    missing = set()
    for _ in range(args.runs):
        for name, extra in CANDIDATES:
            # site-packages are needed for the PyPI clients only: -S elsewhere, as a plugin runs
            flags = ["-I"] if "PyPI" in name else ["-I", "-S"]
            v = measure(python, extra, flags)
            if v is None:
                missing.add(name)
            else:
                samples[name].append(v)
    load = open("/proc/loadavg").read().split()[0]
    print(f"python {python} ({sys.version.split()[0]}), {args.runs} runs, load {load}")
    print("| client | import CPU median ms | min ms |")
    print("|---|---|---|")
    for name, _ in CANDIDATES:
        s = samples[name]
        if s:
            print(f"| {name} | {statistics.median(s):.1f} | {min(s):.1f} |")
        else:
            print(f"| {name} | not installed | |")


if __name__ == "__main__":
    main()
