"""Multus-shaped delegation (tests/e2e/multus.py) of the deployment documents' NADs, verbatim, to the installed
bundle through real libcni: the shared-mode example (deploy/examples/macvlan-roce-shared.yaml) with the pod
annotation of its DaemonSet, the shared-dev-plugin README's macvlan conf, the SR-IOV walkthrough's
`sriov-attach` over the fake-VF host (tests/sriov_env.py; its calico-ipam is the stub IPAM), and the exclusive
example (sriov -> rdma) on this host, whose kernel has no RDMA: the chain fails at `rdma` and Multus's
rollback must leave nothing behind.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from tests import deploy_examples, topology
from tests.e2e import multus as mu
from tests.e2e import runtimes
from tests.fakepci import FakePci
from tests.sriov_env import SriovHost, link_state

SEEDS = Path(__file__).with_name("seed_nads.yaml")


def _nads() -> dict[tuple[str, str], dict]:
    docs = [d for _, d in deploy_examples.nads()]
    docs += [d for d in yaml.safe_load_all(SEEDS.read_text()) if d]
    return {(d["metadata"].get("namespace", "default"), d["metadata"]["name"]): d for d in docs}


def _pod_annotations(example: str) -> dict:
    """The pod template annotations of the example's workload, as written in deploy/examples."""
    for doc in deploy_examples.documents(deploy_examples.DEPLOY / "examples" / example):
        if doc.get("kind") in ("DaemonSet", "Deployment"):
            return doc["spec"]["template"]["metadata"]["annotations"]
    raise AssertionError(f"no workload in {example}")


def _pod(name: str, annotations: dict, netns: str, namespace: str = "default") -> mu.Pod:
    return mu.Pod(namespace, name, str(uuid.uuid4()), uuid.uuid4().hex + uuid.uuid4().hex, netns, annotations)


def _node_with_uplinks(*names: str) -> topology.Node:
    """A node netns whose uplinks carry the names the NADs use (ens6f0np0, enp0s0f0): veth ends, up."""
    node = topology.make_node(default_route=False)
    for i, name in enumerate(names):
        topology.sh("ip", "-n", node.name, "link", "add", name, "type", "veth", "peer", "name", f"up{i}peer")
        topology.sh("ip", "-n", node.name, "link", "set", name, "up")
        topology.sh("ip", "-n", node.name, "link", "set", f"up{i}peer", "up")
    return node


@pytest.fixture
def shared_node():
    node = _node_with_uplinks("ens6f0np0", "enp0s0f0")
    yield node
    topology.netns_del(node.name)


@pytest.fixture
def pods():
    made = []

    def make():
        made.append(topology.make_pod())
        return made[-1]

    yield make
    for p in made:
        topology.netns_del(p.name)


def _addr(p: topology.Pod, ifname: str) -> str:
    return next(a["local"] for a in p.addrs(ifname) if a["family"] == "inet")


def _leases(root: Path) -> list[str]:
    """host-local's lease files under a dataDir (not its lock, last_reserved_ip.*, or our .cni-rdma/ bookkeeping)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".cni-rdma" not in p.parts
                  and p.name != "lock" and not p.name.startswith("last_reserved_ip"))


def _host_local_into(nad: dict, data_dir: Path) -> dict:
    """The NAD unchanged but for host-local's dataDir (a temp dir instead of the machine's /var/lib/cni)."""
    nad = json.loads(json.dumps(nad))
    conf = json.loads(nad["spec"]["config"])
    for plugin in conf.get("plugins", [conf]):
        if plugin.get("ipam", {}).get("type") == "host-local":
            plugin["ipam"]["dataDir"] = str(data_dir)
    nad["spec"]["config"] = json.dumps(conf)
    return nad


def test_shared_example_two_pods(driver, shared_node, pods, tmp_path):
    nads = {k: _host_local_into(v, tmp_path / "ipam") for k, v in _nads().items()}
    annotations = _pod_annotations("macvlan-roce-shared.yaml")
    assert annotations[mu.NETWORKS] == "kube-system/macvlan-ens6f0np0"
    m = mu.Multus(driver, tmp_path, node_netns=shared_node.path)
    # The RDMA shared device plugin's device IDs are opaque to Multus; it injects whatever was allocated.
    allocated = {"spidernet.io/hca_shared_devices": "hca_shared_devices-3"}
    p1, p2 = pods(), pods()
    pod1, pod2 = _pod("rdma-macvlan-a", annotations, p1.path), _pod("rdma-macvlan-b", annotations, p2.path)
    ds1, ds2 = mu.delegates(pod1, nads, allocated), mu.delegates(pod2, nads, allocated)
    assert ds1[0].conf["deviceID"] == ds1[0].conf["pciBusID"] == "hca_shared_devices-3"
    assert ds1[0].ifname == "net1" and ds1[0].single
    r1, r2 = m.add(pod1, ds1)[0], m.add(pod2, ds2)[0]
    assert r1["cniVersion"] == "1.0.0" and r1["interfaces"][0]["name"] == r2["interfaces"][0]["name"] == "net1"
    a1, a2 = _addr(p1, "net1"), _addr(p2, "net1")
    assert a1 != a2 and all(a.startswith("172.81.0.1") for a in (a1, a2))
    assert r1["routes"] == [{"dst": "172.81.0.0/16"}]  # the NAD's route, no gateway on it
    ping = topology.sh(str(runtimes.BUSYBOX), "ping", "-c", "2", "-W", "2", a2, netns=p1.name, check=False)
    assert " 0% packet loss" in ping, ping
    # the pod's K8S_* args went to the plugins as CNI_ARGS: host-local records the sandbox as the owner
    owners = {(tmp_path / "ipam" / "macvlan-ens6f0np0" / a).read_text().splitlines()[0] for a in (a1, a2)}
    assert owners == {pod1.sandbox, pod2.sandbox}
    assert all(r.returncode == 0 for r in m.check(pod1, ds1) + m.check(pod2, ds2))
    assert m.delete(pod1, ds1) == [] and m.delete(pod2, ds2) == []
    assert p1.link("net1") is None and p2.link("net1") is None
    assert _leases(tmp_path / "ipam") == [] and not list((tmp_path / "multus-cache").rglob("*-net1"))


def test_shared_dev_plugin_readme_conf(driver, shared_node, pods, tmp_path):
    """The README's conf (0.3.1, default route via its gateway); a JSON selection with an interface name and
    a mac/ips request, which libcni withholds from a plugin that declares no capabilities (as Multus does)."""
    nads = {k: _host_local_into(v, tmp_path / "ipam") for k, v in _nads().items()}
    p = pods()
    sel = [{"name": "mynet", "interface": "rdma0", "mac": "02:00:00:aa:bb:cc", "ips": ["10.56.217.200/24"]}]
    pod = _pod("readme", {mu.NETWORKS: json.dumps(sel)}, p.path)
    ds = mu.delegates(pod, nads, {})
    assert ds[0].ifname == "rdma0" and ds[0].caps == {"mac": "02:00:00:aa:bb:cc", "ips": ["10.56.217.200/24"]}
    m = mu.Multus(driver, tmp_path, node_netns=shared_node.path)
    r = m.add(pod, ds)[0]
    assert r["cniVersion"] == "0.3.1"
    addr = _addr(p, "rdma0")
    assert addr != "10.56.217.200" and 171 <= int(addr.rsplit(".", 1)[1]) <= 181
    assert p.link("rdma0")["address"] != "02:00:00:aa:bb:cc"
    assert any(rt.get("dst") == "default" and rt.get("gateway") == "10.56.217.1" for rt in p.routes())
    assert m.delete(pod, ds) == [] and _leases(tmp_path / "ipam") == []


@pytest.fixture
def sriov_host():
    """Fake-VF host as the sriov tiers build it: PF pf0 and two VF netdevs (veth ends) in a node netns."""
    node = topology.make_node(default_route=False)
    topology.sh("ip", "-n", node.name, "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
    pci = FakePci()
    pf_addr = pci.add_pf(pci.addr(0x41, 0, 0), "pf0", driver="fake_pf")
    h = SriovHost(node=node, pci=pci, pf="pf0", pf_addr=pf_addr)
    for vf in (0, 1):
        name = f"ens19f0v{vf}"
        topology.sh("ip", "-n", node.name, "link", "add", name, "address", f"02:5a:00:00:01:0{vf}",
                    "type", "veth", "peer", "name", f"vfpeer{vf}")
        h.vf_netdev[vf] = name
        h.vfs[vf] = pci.add_vf(pf_addr, vf, pci.addr(0x41, 0, 6 + vf), name)
    yield h
    h.cleanup()


def _sriov_multus(driver, h: SriovHost, tmp_path) -> mu.Multus:
    # the stub IPAM serves calico-ipam; our bin dir follows it on CNI_PATH (Multus: BinDir, then CNI_PATH)
    d = runtimes.Driver(driver.exe, driver.conf_dir, Path(f"{h.ipam_dir}:{driver.bin_dir}"), driver.cache_dir)
    return mu.Multus(d, tmp_path, node_netns=h.node.path, env=h.pci.env)


def _sriov_records(h: SriovHost) -> list[str]:
    from cni_rdma.state import Store

    return [n for n in Store("sriov").names() if n.startswith("vf-") and n[3:7] == f"{h.pci.domain:04x}"]


def test_sriov_attach_walkthrough(driver, sriov_host, pods, tmp_path):
    h = sriov_host
    nads = _nads()
    resource = nads[("default", "sriov-attach")]["metadata"]["annotations"][mu.RESOURCE]
    p = pods()
    pod = _pod("sriov-65c8f754f9-jlcd5", {mu.NETWORKS: "sriov-attach"}, p.path)
    ds = mu.delegates(pod, nads, {resource: h.vfs[1]})
    assert ds[0].conf["deviceID"] == h.vfs[1] and ds[0].caps["deviceID"] == h.vfs[1]
    before = link_state(h.link("ens19f0v1"))
    m = _sriov_multus(driver, h, tmp_path)
    r = m.add(pod, ds)[0]
    assert r["cniVersion"] == "0.3.1" and r["interfaces"][0]["name"] == "net1"
    assert h.link("ens19f0v1") is None and p.link("net1")["address"] == before["address"]
    assert _addr(p, "net1") == "10.56.217.5"  # what the stub calico-ipam hands out
    assert [c for c in h.ipam_calls() if c.startswith("ADD")] == [f"ADD {pod.sandbox}"]
    # libcni itself refuses CHECK below 0.4.0 (before any plugin runs): what Multus's CHECK gets for this NAD
    check = m.check(pod, ds)[0]
    assert check.returncode != 0 and 'version "0.3.1" does not support the CHECK command' in check.stderr
    assert m.delete(pod, ds) == []
    assert link_state(h.link("ens19f0v1")) == before and p.link("net1") is None
    assert _sriov_records(h) == []


def test_exclusive_example_rolls_back_when_rdma_fails(driver, sriov_host, pods, tmp_path):
    """sriov -> rdma on a kernel without RDMA: `rdma` ADD fails (code 100); libcni does not undo the chain,
    Multus DELs the delegate (no cached result, so no prevResult): the VF is back, the lease released."""
    h = sriov_host
    nads = {k: _host_local_into(v, tmp_path / "ipam") for k, v in _nads().items()}
    annotations = _pod_annotations("sriov-rdma-exclusive.yaml")
    p = pods()
    pod = _pod("rdma-sriov-x", annotations, p.path)
    ds = mu.delegates(pod, nads, {"spidernet.io/mellanoxrdma": h.vfs[0]})
    assert [pl["deviceID"] for pl in ds[0].conf["plugins"]] == [h.vfs[0], h.vfs[0]]
    before = link_state(h.link("ens19f0v0"))
    m = _sriov_multus(driver, h, tmp_path)
    with pytest.raises(mu.MultusError) as e:
        m.add(pod, ds)
    assert 'type="rdma"' in e.value.message, e.value.message
    assert m.calls == [("ADD", "sriov-rdma", "net1"), ("DEL", "sriov-rdma", "net1")]
    assert link_state(h.link("ens19f0v0")) == before and p.link("net1") is None
    assert _leases(tmp_path / "ipam") == [] and _sriov_records(h) == []
