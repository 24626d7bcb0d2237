#!/usr/bin/env python3
"""Bench: a plugin's kernel work through the lean layer vs pyroute2 vs `ip`, in the same run (ratios).

The sequence (what a macvlan ADD does): create a macvlan on the node's uplink, move it into the pod
netns renamed to net1, add an address, bring it up, add a default route. Two views:

  in-process   the sequence only (sockets opened, imports already paid)
  per-process  a fresh interpreter per sequence, as a plugin runs: imports included
               (`ip` is always per-process: five exec's)

Also the start-up figure of issue 4: importing the layer plus one link lookup, over a bare
`python -IS -c pass`, with `cni_rdma.errors` (the one module the layer depends on) shown apart.

Run as root: `.venv/bin/python bench/netlink_bench.py [-n 20]`. Numbers are medians; ratios are
against the lean layer. Never a timed test: a shared machine makes absolute numbers noisy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PY = sys.executable

# One sequence, parameterised by the netns names; run in-process or as `python -IS -c`.
OURS = r"""
import os, sys
sys.path.insert(0, {root!r})
from cni_rdma.netns import in_netns, open_netns
from cni_rdma.netlink.routes import NlRoute as Route
from cni_rdma.netlink.rtnl import Rtnl
import ipaddress

def run(node, pod):
    fd = open_netns(pod)
    try:
        def on_node():
            with Rtnl() as nl:
                parent = nl.link_get(name="eth0").index
                nl.link_add_macvlan("tmpbench", parent, "bridge")
                nl.link_set(nl.link_get(name="tmpbench").index, netns_fd=fd, name="net1")
        in_netns(node, on_node)
    finally:
        os.close(fd)
    def in_pod():
        with Rtnl() as nl:
            i = nl.link_get(name="net1").index
            nl.addr_add(i, ipaddress.ip_interface("10.99.0.5/24"))
            nl.link_set(i, up=True)
            nl.route_add(Route(dst=ipaddress.ip_network("0.0.0.0/0"), gateway=ipaddress.ip_address("10.99.0.1"), oif=i))
    in_netns(pod, in_pod)
"""

PYROUTE2 = r"""
import os, sys
sys.path.insert(0, {root!r})
from cni_rdma.netns import in_netns, open_netns
from pyroute2 import IPRoute

def run(node, pod):
    fd = open_netns(pod)
    try:
        def on_node():
            with IPRoute() as ipr:
                parent = ipr.link_lookup(ifname="eth0")[0]
                ipr.link("add", ifname="tmpbench", kind="macvlan", link=parent, macvlan_mode="bridge")
                idx = ipr.link_lookup(ifname="tmpbench")[0]
                ipr.link("set", index=idx, net_ns_fd=fd, ifname="net1")
        in_netns(node, on_node)
    finally:
        os.close(fd)
    def in_pod():
        with IPRoute() as ipr:
            i = ipr.link_lookup(ifname="net1")[0]
            ipr.addr("add", index=i, address="10.99.0.5", prefixlen=24)
            ipr.link("set", index=i, state="up")
            ipr.route("add", dst="0.0.0.0/0", gateway="10.99.0.1", oif=i)
    in_netns(pod, in_pod)
"""

MAIN = "\nimport sys\nrun(sys.argv[1], sys.argv[2])\n"


def ip_sequence(node: str, pod: str) -> None:
    for cmd in (["ip", "-n", node, "link", "add", "tmpbench", "link", "eth0", "type", "macvlan", "mode", "bridge"],
                ["ip", "-n", node, "link", "set", "tmpbench", "netns", pod, "name", "net1"],
                ["ip", "-n", pod, "addr", "add", "10.99.0.5/24", "dev", "net1"],
                ["ip", "-n", pod, "link", "set", "net1", "up"],
                ["ip", "-n", pod, "route", "add", "default", "via", "10.99.0.1", "dev", "net1"]):
        subprocess.run(cmd, check=True)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def reset(pod: str) -> None:
    subprocess.run(["ip", "-n", pod, "link", "del", "net1"], capture_output=True)


def time_it(fn, reset_fn, n: int) -> float:
    xs = []
    for _ in range(n):
        reset_fn()
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    reset_fn()
    return statistics.median(xs) * 1000


def startup(n: int) -> dict[str, float]:
    lookup = ("import sys; sys.path.insert(0, %r)\nfrom cni_rdma.netlink.rtnl import Rtnl\n"
              "with Rtnl() as nl: nl.link_get(name='lo')" % ROOT)
    errors_only = "import sys; sys.path.insert(0, %r)\nimport cni_rdma.errors" % ROOT
    out = {}
    for name, code in (("bare", "pass"), ("errors.py only", errors_only), ("layer + 1 lookup", lookup)):
        xs = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run([PY, "-IS", "-c", code], check=True)
            xs.append(time.perf_counter() - t)
        out[name] = min(xs) * 1000  # min: the least disturbed run on a shared machine
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="iterations per variant")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (creates network namespaces)")

    tag = uuid.uuid4().hex[:6]
    node, pod = f"bench-node-{tag}", f"bench-pod-{tag}"
    try:
        for ns in (node, pod):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        sh("ip", "-n", node, "link", "set", "eth0", "up")
        node_path, pod_path = f"/var/run/netns/{node}", f"/var/run/netns/{pod}"

        ours_ns: dict = {}
        exec(OURS.format(root=ROOT), ours_ns)
        pr_ns: dict = {}
        exec(PYROUTE2.format(root=ROOT), pr_ns)
        ours_ns["run"](node_path, pod_path)  # warm-up (and a check that both work)
        reset(pod)
        pr_ns["run"](node_path, pod_path)
        reset(pod)

        r = lambda: reset(pod)  # noqa: E731
        results = {
            "in-process: lean layer": time_it(lambda: ours_ns["run"](node_path, pod_path), r, a.n),
            "in-process: pyroute2": time_it(lambda: pr_ns["run"](node_path, pod_path), r, a.n),
            "per-process: lean layer": time_it(lambda: subprocess.run(
                [PY, "-IS", "-c", OURS.format(root=ROOT) + MAIN, node_path, pod_path], check=True), r, a.n),
            "per-process: pyroute2": time_it(lambda: subprocess.run(
                [PY, "-I", "-c", PYROUTE2.format(root=ROOT) + MAIN, node_path, pod_path], check=True), r, a.n),
            "per-process: ip (5 execs)": time_it(lambda: ip_sequence(node, pod), r, a.n),
        }
    finally:
        for ns in (node, pod):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    print(f"create macvlan -> move to pod netns -> address -> up -> default route   (median of {a.n})")
    for view in ("in-process", "per-process"):
        base = results[f"{view}: lean layer"]
        for k, v in results.items():
            if k.startswith(view):
                print(f"  {k:30s} {v:8.2f} ms   x{v / base:5.2f}")
    s = startup(max(a.n, 20))
    print(f"start-up (min of {max(a.n, 20)} runs of python -IS)")
    for k, v in s.items():
        print(f"  {k:30s} {v:8.2f} ms")
    print(f"  layer + lookup over bare:      {s['layer + 1 lookup'] - s['bare']:.2f} ms "
          f"(of which cni_rdma.errors: {s['errors.py only'] - s['bare']:.2f} ms; "
          f"layer alone: {s['layer + 1 lookup'] - s['errors.py only']:.2f} ms)")


if __name__ == "__main__":
    main()
