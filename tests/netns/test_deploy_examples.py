"""The deploy/examples NADs run through the plugins on this kernel (both passes: dev launchers and frozen).

macvlan shared mode: the NAD's config verbatim but for the master (the test node's veth) and the host-local
store (a temp dir). sriov -> rdma: the chain's sriov step, with the deviceID Multus would inject, over a
fake PCI tree whose VF netdev is a veth; the rdma step needs an RDMA device (VM tier).
"""
from __future__ import annotations

import ipaddress

import pytest

from tests import deploy_examples as dx
from tests import topology
from tests.sriov_env import one_vf_node


def _nad(names: tuple[str, ...]) -> dict:
    (nad,) = [n for _, n in dx.nads() if tuple(c["type"] for c in dx.plugin_confs(n)) == names]
    return nad


def _in_range(addr: str, r: dict) -> bool:
    ip = ipaddress.ip_interface(addr)
    return (ip.network == ipaddress.ip_network(r["subnet"])
            and ipaddress.ip_address(r["rangeStart"]) <= ip.ip <= ipaddress.ip_address(r["rangeEnd"]))


def test_macvlan_roce_shared_example(node, pod, tmp_path):
    (conf,) = dx.plugin_confs(_nad(("macvlan",)))
    conf["master"] = node.master
    conf["ipam"]["dataDir"] = str(tmp_path)
    rng = conf["ipam"]["ranges"][0][0]

    added = [topology.run_plugin("macvlan", "ADD", conf, netns=pod.path, ifname=f"net{i}", container_id=f"c{i}",
                                 node=node) for i in (1, 2)]
    for i, r in enumerate(added, 1):
        assert r.code == 0, r.stdout + r.stderr
        (ip,) = r.json["ips"]
        assert _in_range(ip["address"], rng) and ip["gateway"] == rng["gateway"]
        link = pod.link(f"net{i}")
        assert link["linkinfo"]["info_kind"] == "macvlan"
        assert link["linkinfo"]["info_data"]["mode"] == conf["mode"]
        assert any(f"{a['local']}/{a['prefixlen']}" == ip["address"] for a in pod.addrs(f"net{i}"))
    assert added[0].json["ips"][0]["address"] != added[1].json["ips"][0]["address"]

    for i in (1, 2):
        r = topology.run_plugin("macvlan", "DEL", conf, netns=pod.path, ifname=f"net{i}", container_id=f"c{i}",
                                node=node)
        assert r.code == 0, r.stdout + r.stderr
        assert pod.link(f"net{i}") is None


@pytest.fixture
def vf_host():
    with one_vf_node(0xAF, "ens6f0v0") as host:
        yield host


def test_sriov_rdma_example_sriov_step(vf_host, pod, tmp_path):
    node, pci, vf = vf_host
    sriov_conf, rdma_conf = dx.plugin_confs(_nad(("sriov", "rdma")), device_id=vf)
    assert rdma_conf["deviceID"] == vf  # Multus gives the rdma step the same VF
    sriov_conf["ipam"]["dataDir"] = str(tmp_path)
    rng = sriov_conf["ipam"]["ranges"][0][0]

    r = topology.run_plugin("sriov", "ADD", sriov_conf, netns=pod.path, node=node, extra_env=pci.env)
    assert r.code == 0, r.stdout + r.stderr
    (ip,) = r.json["ips"]
    assert _in_range(ip["address"], rng)
    assert pod.link("net1") is not None and node.links() and all(
        link["ifname"] != "ens6f0v0" for link in node.links())

    r = topology.run_plugin("sriov", "DEL", sriov_conf, netns=pod.path, node=node, extra_env=pci.env)
    assert r.code == 0, r.stdout + r.stderr
    assert pod.link("net1") is None
    assert any(link["ifname"] == "ens6f0v0" for link in node.links())
