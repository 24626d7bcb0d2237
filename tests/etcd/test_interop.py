"""cluster-ipam under our interface plugins, on this host's kernel (root): macvlan pods on two "node" namespaces
sharing one L2 segment (a bridge) get distinct addresses from one pool and ping each other; the sriov -> rdma
chain (fake PCI tree over veth "VFs", tests/sriov_env.py) takes its address from the pool and gives it back
when the chain is torn down. Our plugins run cluster-ipam in-process (it is in CNI_PATH, same executable)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from tests import topology
from tests.etcd.cluster import EtcdCluster
from tests.etcd.conftest import allocations, netconf, records
from tests.netns.test_sriov import host  # noqa: F401 - the fake-VF host fixture

BUSYBOX = shutil.which("busybox") or "/bin/busybox"  # busybox-static (tools/install-deps.sh): its ping
if os.geteuid() != 0:
    pytest.skip("needs root to create network namespaces", allow_module_level=True)


@pytest.fixture
def fabric():
    """Two node namespaces whose eth0 ends on one bridge in a third (the RoCE fabric's flat L2); the etcd
    cluster runs in the fabric namespace on 10.254.0.254, which the nodes reach over their eth0."""
    names = []
    fab = topology.unique("crn-fab")
    topology.netns_add(fab)
    names.append(fab)
    topology.sh("ip", "-n", fab, "link", "add", "br0", "type", "bridge")
    topology.sh("ip", "-n", fab, "addr", "add", "10.254.0.254/24", "dev", "br0")
    topology.sh("ip", "-n", fab, "link", "set", "br0", "up")
    nodes = []
    for i in range(2):
        n = topology.unique(f"crn-n{i}")
        path = topology.netns_add(n)
        names.append(n)
        topology.sh("ip", "-n", fab, "link", "add", f"up{i}", "type", "veth", "peer", "name", "eth0", "netns", n)
        topology.sh("ip", "-n", fab, "link", "set", f"up{i}", "master", "br0", "up")
        topology.sh("ip", "-n", n, "addr", "add", f"10.254.0.{i + 1}/24", "dev", "eth0")
        topology.sh("ip", "-n", n, "link", "set", "eth0", "up")
        nodes.append(topology.Node(name=n, path=path))
    cluster = EtcdCluster(netns=fab, host="10.254.0.254").up()
    yield cluster, nodes
    cluster.destroy()
    for n in names:
        topology.netns_del(n)


def test_macvlan_pods_on_two_nodes_share_one_pool_and_ping(fabric):
    etcd_cluster, fabric = fabric
    base = netconf(etcd_cluster, {"ranges": [[{"subnet": "172.81.0.0/16", "rangeStart": "172.81.0.100",
                                               "rangeEnd": "172.81.0.120", "gateway": "172.81.0.1"}]]},
                   name="macvlan-rdma", master="eth0", mode="bridge")
    pods, added = [], []
    try:
        for i in range(4):  # two pods per node
            node = fabric[i % 2]
            conf = json.loads(json.dumps(base))
            conf["ipam"]["nodeName"] = node.name
            pod = topology.make_pod()
            pods.append(pod)
            r = topology.run_plugin("macvlan", "ADD", conf, netns=pod.path, node=node, container_id=f"pod{i}")
            assert r.code == 0, r.stdout + r.stderr
            added.append((conf, pod, node, f"pod{i}", r.json["ips"][0]["address"].split("/")[0]))
        addrs = [a for *_, a in added]
        assert len(set(addrs)) == 4 and all(a.startswith("172.81.0.") for a in addrs)
        assert sorted(rec["node"] for rec in records(etcd_cluster, base).values()) == sorted(
            [fabric[0].name, fabric[1].name] * 2)
        # across nodes, both ways
        for src, dst in ((0, 1), (1, 0), (2, 3)):
            out = topology.sh(BUSYBOX, "ping", "-c", "1", "-W", "3", addrs[dst], netns=pods[src].name, check=False)
            assert " 0% packet loss" in out, (src, dst, out)
    finally:
        for conf, pod, node, cid, _ in added:
            r = topology.run_plugin("macvlan", "DEL", conf, netns=pod.path, node=node, container_id=cid)
            assert r.code == 0, r.stdout
        for pod in pods:
            topology.netns_del(pod.name)
    assert allocations(etcd_cluster, base) == {} and records(etcd_cluster, base) == {}


@pytest.fixture
def etcd_on_host_node(host):  # noqa: F811
    """The sriov host's node namespace runs its own etcd cluster on its loopback."""
    c = EtcdCluster(netns=host.node.name).up()
    yield c
    c.destroy()


def test_sriov_rdma_chain_with_cluster_ipam(etcd_on_host_node, host, pod):  # noqa: F811
    etcd_cluster = etcd_on_host_node
    ipam = netconf(etcd_cluster, {"ranges": [[{"subnet": "172.81.0.0/16", "rangeStart": "172.81.0.100",
                                               "rangeEnd": "172.81.0.120", "gateway": "172.81.0.1"}]]},
                   name="sriov-rdma")["ipam"]
    conf = host.config(0, ipam=ipam)
    conf["name"] = "sriov-rdma"
    pool = {"name": "sriov-rdma", "ipam": ipam}
    r = host.run("ADD", conf, netns=pod.path)
    assert r.code == 0, r.stdout + r.stderr
    addr = r.json["ips"][0]["address"]
    assert addr.startswith("172.81.0.1") and addr.endswith("/16")
    have = {f"{a['local']}/{a['prefixlen']}" for a in pod.addrs("net1")}
    assert addr in have
    assert list(allocations(etcd_cluster, pool)) == [addr.split("/")[0]]
    # the chain's next plugin: rdma with sriov's result. This kernel has no RDMA, so it fails like a node
    # without ib_core would, and the runtime tears the whole chain down (DEL in reverse order).
    rdma = {"cniVersion": "1.1.0", "name": "sriov-rdma", "type": "rdma", "deviceID": conf["deviceID"],
            "prevResult": r.json}
    rr = topology.run_plugin("rdma", "ADD", rdma, netns=pod.path, container_id=host.cid("ctr1"), ifname="net1")
    if rr.code == 0:  # a kernel with RDMA netlink: the chain stands; tear it down anyway
        topology.run_plugin("rdma", "DEL", rdma, netns=pod.path, container_id=host.cid("ctr1"), ifname="net1")
    else:
        assert rr.json["code"] == 100 and "RDMA" in rr.json["msg"], rr.stdout
        d = topology.run_plugin("rdma", "DEL", rdma, netns=pod.path, container_id=host.cid("ctr1"), ifname="net1")
        assert d.code == 0, d.stdout
    assert host.run("DEL", conf, netns=pod.path).code == 0
    assert allocations(etcd_cluster, pool) == {} and records(etcd_cluster, pool) == {}
    assert pod.link("net1") is None
