"""Findings 4 and 11, fixed by their owners (sriov: issue 17 item 4; house: issue 15's one GC meaning).

Finding 4's full kill -9 sweep (>= 100 kills at random points) is tests/netns/test_sriov_kill.py; here one
kill at the window the finding names (VF renamed to CNI_IFNAME in the pod, record not yet saying so).
"""
from __future__ import annotations

import json

import pytest

from tests import topology
from tests.fakepci import FakePci
from tests.security.conftest import link_names
from tests.sriov_env import SriovHost, link_state, result_json


def _rdma(command: str, data_dir, **top) -> topology.PluginRun:
    conf = {"cniVersion": "1.1.0", "name": "rdmanet", "type": "rdma", "dataDir": str(data_dir), **top}
    return topology.run_plugin("rdma", command, conf, netns="", ifname="", container_id="", timeout=30)


def _record(data_dir, cid: str) -> str:
    d = data_dir / "rdma"
    d.mkdir(parents=True, exist_ok=True)
    name = f"rdmanet-{cid}-net1"
    (d / name).write_text(json.dumps({"version": "1", "deviceID": "0000:af:00.2", "sandboxRdmaDevName": "rxe0",
                                      "containerRdmaDevName": "rxe0", "network": "rdmanet", "containerID": cid,
                                      "ifname": "net1", "netns": "/var/run/netns/gone"}))
    return name


def test_rdma_gc_without_valid_attachments_releases_nothing(tmp_path):
    # Finding 11 (fixed by house, confkeys.gc_keep): rdma GC forgot every record of the network; host-local
    # released nothing. One meaning now: no list, nothing released.
    kept = _record(tmp_path, "ctr1")
    r = _rdma("GC", tmp_path)
    assert r.code == 0, r.stdout + r.stderr
    assert (tmp_path / "rdma" / kept).exists()  # a later DEL still has its record to undo


def test_rdma_gc_with_a_list_releases_what_it_does_not_name(tmp_path):
    kept, dropped = _record(tmp_path, "ctr1"), _record(tmp_path, "ctr2")
    r = _rdma("GC", tmp_path, **{"cni.dev/valid-attachments": [{"containerID": "ctr1", "ifname": "net1"}]})
    assert r.code == 0, r.stdout + r.stderr
    assert (tmp_path / "rdma" / kept).exists() and not (tmp_path / "rdma" / dropped).exists()
    bad = _rdma("GC", tmp_path, **{"cni.dev/valid-attachments": "ctr1"})
    assert bad.code == 1 and bad.json["code"] == 7 and "valid-attachments" in bad.json["msg"]


@pytest.fixture
def sriov_host():
    node = topology.make_node(default_route=False)
    topology.sh("ip", "-n", node.name, "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
    pci = FakePci()
    pf_addr = pci.add_pf(pci.addr(0x3d, 0, 0), "pf0")
    h = SriovHost(node=node, pci=pci, pf="pf0", pf_addr=pf_addr)
    topology.sh("ip", "-n", node.name, "link", "add", "secvf0", "address", "02:5c:00:00:00:10", "mtu", "1500",
                "type", "veth", "peer", "name", "secpeer0")
    h.vf_netdev[0] = "secvf0"
    h.vfs[0] = pci.add_vf(pf_addr, 0, pci.addr(0x3d, 0, 2), "secvf0")
    yield h
    h.cleanup()


def test_sriov_killed_after_the_rename_then_del_gives_the_vf_back(sriov_host, pod):
    # Finding 4: killed with the VF already renamed to CNI_IFNAME in the pod; DEL used to drop the record and
    # abandon the VF (name/MAC/MTU changed), and the next ADD on it failed.
    h = sriov_host
    before = link_state(h.link("secvf0"))
    conf = h.config(0, mtu=9000)
    assert h.run("ADD", conf, netns=pod.path, fault="renamed!kill").code == -9
    assert h.run("DEL", conf, netns=pod.path).code == 0
    assert link_state(h.link("secvf0")) == before and "net1" not in link_names(pod.name)
    assert result_json(h.run("ADD", conf, netns=pod.path, container_id="next"))["interfaces"][0]["mtu"] == 9000
    assert h.run("DEL", conf, netns=pod.path, container_id="next").code == 0
    assert link_state(h.link("secvf0")) == before
