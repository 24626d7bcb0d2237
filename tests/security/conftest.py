"""Security tier: each numbered finding of issue 17 as a test against plugins run as real processes.

Every test here failed against the tree before the hardening (checked with CNI_TEST_BIN_DIR pointing at
launchers of that tree) and must pass now; DEVELOPERS.md "Threat model" says what each one defends.
"""
from __future__ import annotations

import json
import os
import re

import pytest

from tests import topology

if os.geteuid() != 0:
    pytest.skip("the security tier creates namespaces and links: it needs root (CI is root)", allow_module_level=True)

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (PANIC|ERROR|WARNING|INFO|DEBUG) ")


def host_local_conf(data_dir, name: str = "net1", subnet: str = "10.99.0.0/24", **top) -> dict:
    c = {"cniVersion": "1.0.0", "name": name, "type": "host-local",
         "ipam": {"type": "host-local", "dataDir": str(data_dir), "subnet": subnet}}
    c.update(top)
    return c


def host_local(command: str, config, cid: str = "ctr1", ifname: str = "eth0", **kw) -> topology.PluginRun:
    return topology.run_plugin("host-local", command, config, netns="/var/run/netns/none", container_id=cid,
                               ifname=ifname, **kw)


def cni_error(run: topology.PluginRun) -> dict:
    """The CNI error JSON a failed run printed: exit 1, one JSON object on stdout, no traceback anywhere."""
    assert run.code == 1, (run.code, run.stdout, run.stderr)
    assert "Traceback" not in run.stdout + run.stderr
    err = json.loads(run.stdout)
    assert isinstance(err.get("code"), int) and isinstance(err.get("msg"), str), err
    return err


def macvlan(command: str, node, netns: str, ifname: str = "net1", cid: str = "ctr1", ipam: dict | None = None,
            **kw) -> topology.PluginRun:
    conf = {"cniVersion": "1.0.0", "name": "secnet", "type": "macvlan", "master": "eth0"}
    if ipam is not None:
        conf["ipam"] = ipam
    return topology.run_plugin("macvlan", command, conf, netns=netns, ifname=ifname, container_id=cid, node=node,
                               **kw)


def link_names(netns_name: str) -> list[str]:
    return sorted(link["ifname"] for link in topology.ip_json("link", "show", netns=netns_name))
