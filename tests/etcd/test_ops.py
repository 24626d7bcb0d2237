"""`python -m ipam.cluster_ipam ls`: blocks per node with used/free, records per node, records of this node
whose netns is gone (no live attachment), against the tier's etcd."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.etcd.conftest import code, netconf, on_node, run
from tests import topology
from tests.topology import ROOT


def ls(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ipam.cluster_ipam", "ls", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_ls_blocks_records_and_attachments_without_a_live_netns(etcd_cluster, tmp_path, pod):
    c = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.97.0.0/24", "rangeEnd": "10.97.0.40"}]], "blockSize": 28})
    for i in range(3):
        netns = pod.path if i == 0 else f"/var/run/netns/gone-{i}"
        r = topology.run_plugin("cluster-ipam", "ADD", c, netns=netns, container_id=f"a{i}", ifname="eth0",
                                cni_args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=p%d" % i)
        assert code(r) == 0
    assert code(run("ADD", on_node(c, "node-b"), cid="b0")) == 0
    f = tmp_path / "net.json"
    f.write_text(json.dumps(c))
    p = ls("--config", str(f), "--node", "node-a", "--json")
    assert p.returncode == 1, p.stderr  # problems found: two attachments without a live netns
    (pool,) = json.loads(p.stdout)
    assert pool["pool"] == "ci-net" and pool["records"] == 4
    assert pool["records_per_node"] == {"node-a": 3, "node-b": 1}
    assert sum(b["used"] for b in pool["blocks"]) == 4
    assert pool["free_total"] == 39 - 4  # .2-.40 (the gateway .1 never), in claimed blocks or not
    assert all(0 < b["used"] + b["free"] <= 16 for b in pool["blocks"])
    assert {b["node"] for b in pool["blocks"]} <= {"node-a", "node-b"}
    assert sorted(s["record"] for s in pool["without_live_attachment"]) == ["a1/eth0", "a2/eth0"]
    assert pool["without_live_attachment"][0]["pod"].startswith("default/p")
    assert pool["allocations_without_record"] == [] and pool["records_not_allocated"] == []
    text = ls("--config", str(f), "--node", "node-a").stdout
    assert "pool ci-net" in text and "NO LIVE ATTACHMENT" in text and "node node-b: 1 records" in text
    # GC with the live attachment as the only valid one: the listing is clean
    gc = {**c, "cni.dev/valid-attachments": [{"containerID": "a0", "ifname": "eth0"}]}
    assert code(run("GC", gc)) == 0
    p = ls("--config", str(f), "--node", "node-a", "--json")
    assert p.returncode == 0, p.stdout
    # the etcd config file form lists every pool under the prefix
    e = tmp_path / "etcd.json"
    e.write_text(json.dumps(c["ipam"]["etcd"]))
    p = ls("--config", str(e), "--node", "node-a", "--json")
    assert [x["pool"] for x in json.loads(p.stdout)] == ["ci-net"] and p.returncode == 0


def test_ls_usage_and_errors(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ipam.cluster_ipam"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and "usage" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"endpoints": ["http://127.0.0.1:9"], "timeout": 1}))
    p = ls("--config", str(bad))
    assert p.returncode == 1 and "unreachable" in p.stderr and "http://127.0.0.1:9" in p.stderr
