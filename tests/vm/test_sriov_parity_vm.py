"""sriov parity on the VM kernel: a netdevsim PF whose VF settings are real, an rxe device as the VF's RDMA
function (patched rdma_rxe, exclusive netns mode), a dummy standing in for the VF netdev, tied together by
the fake PCI tree (as tests/vm/test_rdma_vm.py).

- A pod created the sriov-cni way, PF side included (vlan/qos, spoofchk, trust, admin MAC set through the
  PF as its ApplyVFConfig does, its cache and claim written in its format): our DEL puts every PF-side
  setting back to what sriov-cni recorded in OrigVfState, and the netdev back to the host.
- ib-sriov-cni's rdmaIsolation: the VF's RDMA device follows the netdev into the pod and comes back on DEL.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_rdma.state import state_root
from cni_rdma.sysfs import Sysfs
from plugins.sriov import sriovcni
from tests import topology
from tests.topology import run_plugin
from tests.vm import guest
from tests.vm.test_rdma_vm import sriov_node  # noqa: F401  (fixture: netdevsim PF, dummy VF netdev, rxe device)

POD_MAC = "02:00:00:00:00:aa"


def data_dir() -> Path:
    """sriov-cni's directory as our sriov sees it: <state root>/sriov (the test's own root, tests/conftest.py)."""
    return Path(state_root()) / "sriov"


@pytest.fixture
def vf_node(sriov_node):  # noqa: F811
    node, pci, vf, rxe = sriov_node
    pf = Sysfs(str(pci.root)).vf(vf).pf_netdevs[0]
    yield node, pf, pci, vf, rxe
    sriovcni.drop_claim(vf, str(data_dir()))


def _set_vf(node, pf: str, *args: str) -> None:
    topology.sh("ip", "-n", node.name, "link", "set", "dev", pf, "vf", "0", *args)


def _pf_view(node, pf: str) -> dict:
    v = next(v for v in guest.link(pf, node.name)["vfinfo_list"] if v["vf"] == 0)
    vlan = (v.get("vlan_list") or [{}])[0]
    return {"mac": v.get("address"), "vlan": vlan.get("vlan", 0), "qos": vlan.get("qos", 0),
            "spoofchk": v.get("spoofchk"), "trust": v.get("trust")}


def test_our_del_restores_the_pf_side_of_a_sriov_cni_pod(vf_node, pod):  # noqa: F811
    node, pf, pci, vf, _ = vf_node
    before_pf = _pf_view(node, pf)
    before_link = guest.link("ens1f0v0", node.name)
    # sriov-cni's ADD: ApplyVFConfig through the PF, then SetupVF (move, rename, MAC, up)
    _set_vf(node, pf, "vlan", "100", "qos", "3")
    _set_vf(node, pf, "spoofchk", "off")
    _set_vf(node, pf, "trust", "on")
    _set_vf(node, pf, "mac", POD_MAC)
    topology.sh("ip", "-n", node.name, "link", "set", "ens1f0v0", "netns", pod.name)
    topology.sh("ip", "-n", pod.name, "link", "set", "ens1f0v0", "name", "net1")
    topology.sh("ip", "-n", pod.name, "link", "set", "net1", "address", POD_MAC, "up")
    assert _pf_view(node, pf) != before_pf
    cid = "legacy-" + topology.unique("c")
    cache = {"OrigVfState": {"HostIFName": "ens1f0v0", "SpoofChk": bool(before_pf["spoofchk"]),
                             "Trust": bool(before_pf["trust"]), "AdminMAC": before_pf["mac"],
                             "EffectiveMAC": before_link["address"], "Vlan": 0, "VlanQoS": 0, "VlanProto": 33024,
                             "MinTxRate": 0, "MaxTxRate": 0, "LinkState": 0, "MTU": before_link["mtu"]},
             "Master": pf, "MAC": POD_MAC, "MTU": before_link["mtu"], "VFID": 0, "cniVersion": "1.0.0",
             "deviceID": vf, "dns": {}, "name": "sriov-net", "type": "sriov", "vlan": 100, "vlanQoS": 3,
             "vlanProto": "802.1q", "spoofchk": "off", "trust": "on", "min_tx_rate": None, "max_tx_rate": None,
             "runtimeConfig": {}, "logLevel": "", "logFile": ""}
    data = data_dir()
    (data / "pci").mkdir(parents=True, exist_ok=True)
    (data / f"{cid}-net1").write_text(json.dumps(cache, sort_keys=True))
    (data / "pci" / vf).write_text(pod.path)
    conf = {"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov", "deviceID": vf, "vlan": 100, "vlanQoS": 3,
            "spoofchk": "off", "trust": "on", "mac": POD_MAC}
    r = run_plugin("sriov", "DEL", conf, netns=pod.path, container_id=cid, node=node, extra_env=pci.env)
    assert r.code == 0, r.stdout + r.stderr
    assert _pf_view(node, pf) == before_pf
    back = guest.link("ens1f0v0", node.name)
    assert back is not None and back["address"] == before_link["address"] and "UP" not in back["flags"]
    assert guest.link("net1", pod.name) is None
    assert not (data / f"{cid}-net1").exists() and sriovcni.read_claim(vf, str(data)) is None


def test_rdma_isolation_moves_the_rdma_device_with_the_vf(vf_node, pod):  # noqa: F811
    node, pf, pci, vf, rxe = vf_node
    conf = {"cniVersion": "1.1.0", "name": "ib-net", "type": "sriov", "deviceID": vf, "rdmaIsolation": True}
    cid = topology.unique("iso")
    r = run_plugin("sriov", "ADD", conf, netns=pod.path, container_id=cid, node=node, extra_env=pci.env)
    assert r.code == 0, r.stdout + r.stderr
    assert guest.rdma_dev_names(pod.name) == [rxe.name] and guest.rdma_dev_names(node.name) == []
    assert guest.link("net1", pod.name) is not None
    r = run_plugin("sriov", "DEL", conf, netns=pod.path, container_id=cid, node=node, extra_env=pci.env)
    assert r.code == 0, r.stdout + r.stderr
    assert guest.rdma_dev_names(node.name) == [rxe.name] and guest.rdma_dev_names(pod.name) == []
    assert guest.link("ens1f0v0", node.name) is not None
