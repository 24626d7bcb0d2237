"""Two nodes on one L2: two node netns whose `eth0` are ports of one bridge (a "switch" netns). Node A runs
containers with containerd (`ctr run --cni`), node B with podman; each runtime runs in its node's netns, so our
macvlan's master is that node's `eth0`, and each node has its own pool (host-local, disjoint ranges of one
subnet). A pod on A and a pod on B reach each other across the switch; DEL on each node releases its pool.
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
import uuid

from tests import topology
from tests.e2e import runtimes

SUBNET = "10.64.0.0/24"
RANGES = {"a": ("10.64.0.10", "10.64.0.19"), "b": ("10.64.0.20", "10.64.0.29")}


def conflist(node: str) -> dict:
    start, end = RANGES[node]
    return {"cniVersion": "1.0.0", "name": f"e2e-l2-{node}", "plugins": [
        {"type": "macvlan", "master": "eth0", "mode": "bridge",
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET, "rangeStart": start, "rangeEnd": end}]]}}]}


def _in_range(ip: str, node: str) -> bool:
    start, end = (ipaddress.ip_address(x) for x in RANGES[node])
    return start <= ipaddress.ip_address(ip) <= end


def test_containerd_node_and_podman_node_share_one_l2(fabric, jail, containerd, podman, rootfs, tmp_path):
    node_a, node_b = fabric.add_node("192.0.2.1/24"), fabric.add_node("192.0.2.2/24")
    # ctr loads the first file of /etc/cni/net.d (go-cni WithDefaultConf); podman picks its network by name.
    jail.write_conf("10-node-a.conflist", conflist("a"))
    jail.write_conf("20-node-b.conflist", conflist("b"))
    shared = tmp_path / "shared"
    shared.mkdir()
    script = ("ip -o -4 addr show eth0 > /shared/a.tmp && mv /shared/a.tmp /shared/a.addr; "
              "while [ ! -e /shared/peer ]; do sleep 0.1; done; "
              "ping -c 3 -W 2 $(cat /shared/peer) > /shared/a.tmp 2>&1; echo rc=$? >> /shared/a.tmp; "
              "mv /shared/a.tmp /shared/a.ping")
    a = subprocess.Popen(containerd.ctr_cmd("run", "--rm", "--cni", "--mount",
                                            f"type=bind,src={shared},dst=/shared,options=rbind:rw",
                                            "--rootfs", str(rootfs), "pod-a", "/bin/sh", "-c", script,
                                            net=node_a.path),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        a_ip = runtimes.wait_file(shared / "a.addr", a).split()[3].split("/")[0]
        podman("run", "-d", "--network", "e2e-l2-b", "--name", "pod-b", "--rootfs", str(rootfs),
               "/bin/sleep", "600", net=node_b.path)
        b_ip = podman("exec", "pod-b", "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3].split("/")[0]
        assert _in_range(a_ip, "a") and _in_range(b_ip, "b"), (a_ip, b_ip)

        ping = podman("exec", "pod-b", "ping", "-c", "3", "-W", "2", a_ip, check=False)
        assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout + ping.stderr
        (shared / "peer").write_text(b_ip)
        result = runtimes.wait_file(shared / "a.ping", a)
        assert "rc=0" in result and " 0% packet loss" in result, result
        out, err = a.communicate(timeout=120)
        assert a.returncode == 0, err
    finally:
        (shared / "peer").touch()
        if a.poll() is None:
            runtimes.stop_pid(a)
    podman("rm", "-f", "-t", "0", "pod-b", net=node_b.path)
    for net in ("e2e-l2-a", "e2e-l2-b"):
        left = jail.leftovers(net)
        assert all(v == [] for v in left.values()), (net, left)


def test_two_nodes_one_cluster_ipam_pool(fabric, driver, tmp_path):
    """The seed deployments' model: one address pool shared by every node. Each node runs its own libcni
    invocation (the e2e driver in its netns, its own NETCONFPATH and cache) with cluster-ipam on one etcd,
    reached over the L2 the nodes share; pods on both nodes get distinct addresses of one subnet and ping."""
    from tests.etcd.cluster import EtcdCluster

    nodes = [fabric.add_node("198.18.66.1/24"), fabric.add_node("198.18.66.2/24")]
    fabric.add_host_port("198.18.66.250/24")  # etcd and the test's own reads live in the initial netns
    etcd = EtcdCluster(size=1, host="198.18.66.250").up()
    pods = [topology.make_pod(), topology.make_pod()]
    try:
        prefix = f"/e2e-{uuid.uuid4().hex[:8]}"
        ipam = {"type": "cluster-ipam", "etcd": etcd.etcd_conf(prefix=prefix),
                "ranges": [[{"subnet": "10.66.0.0/24"}]]}
        drivers, results = [], []
        for i, (node, pod) in enumerate(zip(nodes, pods)):
            d = runtimes.Driver(driver.exe, tmp_path / f"netconf-{i}", driver.bin_dir, tmp_path / f"cache-{i}")
            d.conf_dir.mkdir()
            conf = {"cniVersion": "1.0.0", "name": "e2e-cipam", "plugins": [
                {"type": "macvlan", "master": "eth0", "mode": "bridge", "ipam": {**ipam, "nodeName": f"node-{i}"}}]}
            (d.conf_dir / "e2e-cipam.conflist").write_text(json.dumps(conf))
            r = d("add", "e2e-cipam", pod.path, container_id=f"cipam-{i}", node_netns=node.path)
            assert r.returncode == 0, r.stderr
            drivers.append(d)
            results.append(json.loads(r.stdout)["ips"][0]["address"].split("/")[0])
        assert results[0] != results[1] and all(ipaddress.ip_address(a) in ipaddress.ip_network("10.66.0.0/24")
                                                 for a in results)
        pool = {"ipam": ipam, "name": "e2e-cipam"}
        assert sorted(allocations(etcd, pool)) == sorted(results)
        ping = topology.sh(str(runtimes.BUSYBOX), "ping", "-c", "2", "-W", "2", results[1], netns=pods[0].name,
                           check=False)
        assert " 0% packet loss" in ping, ping
        for i, (node, pod) in enumerate(zip(nodes, pods)):
            d = drivers[i]
            assert d("del", "e2e-cipam", pod.path, container_id=f"cipam-{i}", node_netns=node.path).returncode == 0
        assert allocations(etcd, pool) == {}
    finally:
        for p in pods:
            topology.netns_del(p.name)
        etcd.destroy()


def allocations(etcd, conf: dict) -> dict[str, str]:
    """ip -> owner over the pool's blocks in etcd (cluster-ipam's layout, as tests/etcd reads it)."""
    pool = conf["ipam"].get("pool") or conf["name"]
    out: dict[str, str] = {}
    for value in etcd.range_prefix(f"{conf['ipam']['etcd']['prefix']}/pools/{pool}/blocks/").values():
        out.update(json.loads(value)["alloc"])
    return out
