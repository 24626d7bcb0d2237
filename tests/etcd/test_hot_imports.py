"""What a cluster-ipam process imports on a real ADD/CHECK/DEL against a real etcd: the same budget as
tests/netns/test_hot_imports.py (its NEVER list) for the cluster IPAM, plain HTTP and a node-local configFile.
An https endpoint imports ssl (and socket with it) on purpose: that is the TLS the operator configured."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.etcd.conftest import code, netconf, on_node, run
from tests.netns.test_hot_imports import NEVER, PENDING
from tests.topology import ROOT

DEV_BIN = ROOT / "build" / "dev-bin"


def traced(command: str, conf: dict) -> tuple[set[str], str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "hotimports",
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": str(DEV_BIN)}
    if os.environ.get("CNI_RDMA_STATE_ROOT"):
        env["CNI_RDMA_STATE_ROOT"] = os.environ["CNI_RDMA_STATE_ROOT"]
    p = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(DEV_BIN / "cluster-ipam")],
                       input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=120)
    lines = p.stderr.decode(errors="replace").splitlines()
    assert p.returncode == 0, (p.stdout, [line for line in lines if not line.startswith("import time:")])
    names = {line.split("|")[2].strip() for line in lines
             if line.startswith("import time:") and "self [us]" not in line}
    assert "ipam.cluster_ipam.etcd" in names, "the trace shows no cluster-ipam call"
    return names, p.stdout.decode()


# the etcd client's TCP connection is a _socket socket: the one extension module the plugins' NEVER list has that
# cluster-ipam needs (ipam/cluster_ipam/etcd.py)
ETCD_CLIENT = frozenset({"_socket"})


def _check(names: set[str], what: str) -> None:
    bad = sorted(names & (NEVER - PENDING - ETCD_CLIENT))
    assert not bad, f"{what} imports {bad}"


def test_cluster_ipam_add_check_del(etcd_cluster):
    conf = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.88.0.0/24", "rangeEnd": "10.88.0.63"}]]})
    names, out = traced("ADD", conf)
    _check(names, "cluster-ipam ADD")
    conf["prevResult"] = json.loads(out)
    _check(traced("CHECK", conf)[0], "cluster-ipam CHECK")
    _check(traced("DEL", conf)[0], "cluster-ipam DEL")


def test_cluster_ipam_with_a_config_file(etcd_cluster, tmp_path):
    conf = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.89.0.0/24", "rangeEnd": "10.89.0.63"}]]})
    node_conf = tmp_path / "etcd.json"
    node_conf.write_text(json.dumps(conf["ipam"]["etcd"]))
    conf["ipam"]["etcd"] = {"configFile": str(node_conf)}
    names, out = traced("ADD", conf)
    _check(names, "cluster-ipam ADD (configFile)")
    assert json.loads(out)["ips"][0]["address"] == "10.89.0.2/24"  # .1 is the default gateway
    _check(traced("DEL", conf)[0], "cluster-ipam DEL (configFile)")


def test_cluster_ipam_add_that_borrows_a_block(etcd_cluster):
    # two blocks, both claimed by other nodes: node-c's ADD borrows (shuffling the blocks: without random)
    conf = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.90.0.0/24", "rangeEnd": "10.90.0.63"}]], "blockSize": 27})
    for node in ("node-a", "node-b"):
        assert code(run("ADD", on_node(conf, node), cid=f"c-{node}")) == 0
    names, out = traced("ADD", on_node(conf, "node-c"))
    _check(names, "cluster-ipam ADD (borrowing)")
    assert json.loads(out)["ips"][0]["address"].startswith("10.90.0.")
