"""Shared helpers for the macvlan host-tier tests: configs, IPAM paths, reservations, read-back."""
from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

from tests import topology
from tests.topology import ROOT, bin_dir, ip_json

GO_DIR = Path("/usr/lib/cni")
GO_MACVLAN = GO_DIR / "macvlan"


def ipam_path() -> str:
    """CNI_PATH for IPAM: our host-local first once it exists, else the Go one (interop either way)."""
    ours = ROOT / "ipam" / "host_local" / "host_local.py"
    return f"{bin_dir()}:{GO_DIR}" if ours.exists() else f"{GO_DIR}"


def go_path() -> str:
    return str(GO_DIR)


def conf(version: str = "1.0.0", name: str = "mvnet", ipam: dict | None = None, **keys) -> dict:
    c = {"cniVersion": version, "name": name, "type": "macvlan", **keys}
    if ipam is not None:
        c["ipam"] = ipam
    return c


def host_local(data_dir, v4: bool = True, v6: bool = False, routes=None, **range_keys) -> dict:
    ranges = []
    if v4:
        ranges.append([{"subnet": "10.9.0.0/24", "gateway": "10.9.0.1", **range_keys.get("r4", {})}])
    if v6:
        ranges.append([{"subnet": "fd00:9::/64", "gateway": "fd00:9::1", **range_keys.get("r6", {})}])
    out = {"type": "host-local", "dataDir": str(data_dir), "ranges": ranges}
    if routes is None:
        routes = ([{"dst": "0.0.0.0/0"}] if v4 else []) + ([{"dst": "::/0"}] if v6 else [])
    out["routes"] = routes
    return out


def reservations(data_dir, net: str = "mvnet") -> list[str]:
    """IPs host-local holds for net (files named by address in dataDir/<net>)."""
    d = Path(data_dir) / net
    if not d.is_dir():
        return []
    out = []
    for f in os.listdir(d):
        try:
            ipaddress.ip_address(f)
        except ValueError:
            continue
        out.append(f)
    return sorted(out)


def run(cmd: str, config: dict, node, pod=None, *, ifname="net1", cid="ctr1", path=None, plugin="macvlan", **kw):
    return topology.run_plugin(plugin, cmd, config, netns=pod.path if pod else "", ifname=ifname,
                               container_id=cid, node=node, path=path if path is not None else ipam_path(), **kw)


def ok(r) -> dict:
    assert r.code == 0, f"plugin failed: {r.stdout} {r.stderr}"
    return r.json


def err(r, code: int) -> dict:
    assert r.code != 0, f"expected failure, got {r.stdout}"
    e = r.json
    assert e["code"] == code, e
    return e


def with_prev(config: dict, result: dict) -> dict:
    c = dict(config)
    c["prevResult"] = result
    return c


def pod_link(pod, ifname="net1"):
    return pod.link(ifname)


def pod_links(pod) -> set[str]:
    return {l["ifname"] for l in pod.links()}


def node_links(node) -> set[str]:
    return {l["ifname"] for l in node.links()}


def routes(ns: str, family: str = "-4"):
    return ip_json(family, "route", "show", netns=ns)


def dumps(x) -> str:
    return json.dumps(x, indent=1, sort_keys=True)
