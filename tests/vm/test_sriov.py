"""sriov plugin, VM tier: the PF is a netdevsim device with sriov_numvfs=4, so every PF-side setting
(IFLA_VF_MAC/VLAN/VLAN_LIST/SPOOFCHK/TRUST/LINK_STATE/RATE) is really set and read back by the
kernel; each VF netdev is a dummy link (real move, rename, MAC, MTU, up/down). Only the PCI topology
(physfn, virtfnN, net/, driver) is the fake tree of tests/fakepci.py.

Python is slow in the guest, so each test covers a whole scenario.
"""
from __future__ import annotations

import threading

import pytest

from tests import topology
from tests.fakepci import FakePci
from tests.sriov_env import SriovHost, link_state, result_json
from tests.vm import guest

MACS = {0: "02:5a:00:00:01:00", 1: "02:5a:00:00:01:01", 2: "02:5a:00:00:01:02"}
EVERY_KEY = dict(vlan=100, vlanQoS=3, vlanProto="802.1ad", mac="02:aa:bb:cc:dd:01", spoofchk="off", trust="on",
                 link_state="disable", min_tx_rate=100, max_tx_rate=1000, mtu=9000)


@pytest.fixture
def sim(netdevsim_pf):
    name = topology.unique("crn-node")
    path = topology.netns_add(name)
    node = topology.Node(name=name, path=path, master="")
    pf = netdevsim_pf(numvfs=4, netns=name)
    pci = FakePci()
    pf_addr = pci.add_pf(pci.addr(0x5e, 0, 0), pf.ifname, driver="netdevsim")
    h = SriovHost(node=node, pci=pci, pf=pf.ifname, pf_addr=pf_addr)
    for vf in (0, 1, 2):
        dev = guest.dummy_add(f"simvf{vf}", netns=name, up=(vf == 0))
        guest.ip("link", "set", dev, "address", MACS[vf], netns=name)
        h.vf_netdev[vf] = dev
        h.vfs[vf] = pci.add_vf(pf_addr, vf, pci.addr(0x5e, 0, 1 + vf), dev, driver="iavf")
    h.vfs[3] = pci.add_vf(pf_addr, 3, pci.addr(0x5e, 0, 4), None, driver="vfio-pci")  # DPDK
    # Non-default originals, so "restored" cannot mean "reset to defaults" by accident.
    pf.set_vf(1, "mac", "02:00:00:00:aa:01", "vlan", "7", "qos", "1", "trust", "on")
    yield h
    h.cleanup()


def pf_view(h: SriovHost, vf: int) -> dict:
    v = h.pf_vf(vf)
    vlans = v.get("vlan_list") or [{}]
    return {"mac": v.get("address"), "vlan": vlans[0].get("vlan", 0), "qos": vlans[0].get("qos", 0),
            "proto": vlans[0].get("protocol", "802.1Q"), "spoofchk": v.get("spoofchk"), "trust": v.get("trust"),
            "link_state": v.get("link_state"), "rate": v.get("rate")}


def snapshot(h: SriovHost, vf: int) -> tuple:
    return pf_view(h, vf), link_state(h.link(h.vf_netdev[vf])) if vf in h.vf_netdev else None


def test_every_key_add_check_del(sim, pod):
    before = snapshot(sim, 0)
    conf = sim.config(0, **EVERY_KEY)
    res = result_json(sim.run("ADD", conf, netns=pod.path))
    iface = res["interfaces"][0]
    assert iface == {"name": "net1", "mac": "02:aa:bb:cc:dd:01", "mtu": 9000, "sandbox": pod.path,
                     "pciID": sim.vfs[0]}
    got = pf_view(sim, 0)
    assert got["mac"] == "02:aa:bb:cc:dd:01"
    assert (got["vlan"], got["qos"], got["proto"]) == (100, 3, "802.1ad")
    assert got["spoofchk"] is False and got["trust"] is True and got["link_state"] == "disable"
    assert got["rate"] == {"max_tx": 1000, "min_tx": 100}
    link = pod.link("net1")
    assert link["address"] == "02:aa:bb:cc:dd:01" and link["mtu"] == 9000 and "UP" in link["flags"]
    assert link["linkinfo"]["info_kind"] == "dummy"
    assert sim.link(sim.vf_netdev[0]) is None
    assert sim.run("CHECK", dict(conf, prevResult=res), netns=pod.path).code == 0

    # CHECK sees the PF side drift
    guest.ip("link", "set", sim.pf, "vf", "0", "trust", "off", netns=sim.node.name)
    r = sim.run("CHECK", dict(conf, prevResult=res), netns=pod.path)
    assert r.code == 1 and "trust" in r.json["msg"]

    assert sim.run("DEL", conf, netns=pod.path).code == 0
    assert snapshot(sim, 0) == before
    assert sim.run("DEL", conf, netns=pod.path).code == 0
    assert snapshot(sim, 0) == before


def test_dpdk_mode_configures_through_the_pf(sim, pod):
    before = pf_view(sim, 3)
    conf = sim.config(3, vlan=200, mac="02:aa:bb:cc:dd:03", trust="on")
    res = result_json(sim.run("ADD", conf, netns=pod.path))
    assert res["interfaces"][0] == {"name": "net1", "mac": "02:aa:bb:cc:dd:03", "sandbox": pod.path,
                                    "pciID": sim.vfs[3]}
    got = pf_view(sim, 3)
    assert (got["mac"], got["vlan"], got["trust"]) == ("02:aa:bb:cc:dd:03", 200, True)
    assert pod.link("net1") is None
    assert sim.run("CHECK", dict(conf, prevResult=res), netns=pod.path).code == 0
    assert sim.run("DEL", conf, netns=pod.path).code == 0
    assert pf_view(sim, 3) == before


def test_fault_at_each_add_step_restores_pf_and_netdev(sim, pod):
    """VF 1 starts with a non-default admin MAC, vlan 7 qos 1 and trust on; it must get exactly those back."""
    before = snapshot(sim, 1)
    conf = sim.config(1, **EVERY_KEY)
    calls = 0
    for step in ("recorded", "pf", "moved", "renamed", "created", "ipam", "addresses", "routes", "result"):
        r = sim.run("ADD", conf, netns=pod.path, fault=step)
        assert r.code == 1 and step in r.json["msg"], (step, r.stdout)
        assert snapshot(sim, 1) == before, step
        assert pod.link("net1") is None, step
        calls += 2 if step in ("ipam", "addresses", "routes", "result") else 0
        assert len(sim.ipam_calls()) == calls and all(
            c.startswith(("ADD", "DEL")) for c in sim.ipam_calls()), step
    # and a real kernel refusal midway: the pod already has a net1
    guest.dummy_add("net1", netns=pod.name)
    r = sim.run("ADD", conf, netns=pod.path)
    assert r.code == 1 and "already exists" in r.json["msg"]
    assert snapshot(sim, 1) == before


def test_vf_the_pf_does_not_have(sim, pod):
    """virtfn7 on a PF with sriov_numvfs=4: the kernel reports no such VF."""
    dev = guest.dummy_add("simvf7", netns=sim.node.name)
    addr = sim.pci.add_vf(sim.pf_addr, 7, sim.pci.addr(0x5e, 1, 0), dev)
    r = sim.run("ADD", dict(sim.config(0), deviceID=addr, vlan=5), netns=pod.path)
    assert r.code == 1 and "does not report VF 7" in r.json["msg"], r.stdout
    assert sim.link(dev) is not None


def _die_with_vf_returned(h: SriovHost, pod, vf: int) -> None:
    """The kernel returns a physical VF to the host when the pod netns dies (a dummy would be
    destroyed instead), keeping its pod name: do that by hand, and let sysfs follow."""
    guest.ip("link", "set", "net1", "down", netns=pod.name)
    guest.ip("link", "set", "net1", "netns", h.node.name, netns=pod.name)
    topology.netns_del(pod.name)
    h.pci.set_netdev(h.vfs[vf], "net1")


def test_del_matrix(sim, make_pod):
    # netns gone: PF side reset and the netdev restored in the host
    before = snapshot(sim, 1)
    pod = make_pod()
    conf = sim.config(1, **EVERY_KEY)
    assert sim.run("ADD", conf, netns=pod.path).code == 0
    _die_with_vf_returned(sim, pod, 1)
    assert sim.run("DEL", conf, netns=pod.path).code == 0
    sim.pci.set_netdev(sim.vfs[1], sim.vf_netdev[1])
    assert snapshot(sim, 1) == before
    # VF netdev vanished: the PF side is still reset
    before = pf_view(sim, 2)
    pod = make_pod()
    conf = sim.config(2, vlan=42, spoofchk="off")
    assert sim.run("ADD", conf, netns=pod.path).code == 0
    guest.ip("link", "del", "net1", netns=pod.name)
    assert sim.run("DEL", conf, netns=pod.path).code == 0
    assert pf_view(sim, 2) == before
    assert sim.run("DEL", conf, netns=pod.path).code == 0


def test_reuse_race_old_del_after_new_add(sim, make_pod):
    before = snapshot(sim, 0)
    pod_a, pod_b = make_pod(), make_pod()
    conf_a = sim.config(0, vlan=10, mac="02:aa:00:00:00:0a")
    assert sim.run("ADD", conf_a, netns=pod_a.path, container_id="podA").code == 0
    _die_with_vf_returned(sim, pod_a, 0)
    conf_b = sim.config(0, vlan=20, mac="02:bb:00:00:00:0b", mtu=4000)
    res = result_json(sim.run("ADD", conf_b, netns=pod_b.path, container_id="podB"))
    sim.pci.set_netdev(sim.vfs[0], sim.vf_netdev[0])
    assert sim.run("DEL", conf_a, netns=pod_a.path, container_id="podA").code == 0  # late
    assert pf_view(sim, 0)["vlan"] == 20 and pf_view(sim, 0)["mac"] == "02:bb:00:00:00:0b"
    assert pod_b.link("net1")["address"] == "02:bb:00:00:00:0b"
    assert sim.run("CHECK", dict(conf_b, prevResult=res), netns=pod_b.path, container_id="podB").code == 0
    assert sim.run("DEL", conf_b, netns=pod_b.path, container_id="podB").code == 0
    assert snapshot(sim, 0) == before


def test_concurrent_adds_on_one_pf(sim, make_pod):
    before = {vf: snapshot(sim, vf) for vf in (0, 1, 2)}
    pods = {vf: make_pod() for vf in (0, 1, 2)}
    confs = {vf: sim.config(vf, vlan=300 + vf, mac=f"02:cc:00:00:00:0{vf}", trust="on") for vf in (0, 1, 2)}
    runs = {}

    def go(vf):
        runs[vf] = sim.run("ADD", confs[vf], netns=pods[vf].path, container_id=f"c{vf}")

    threads = [threading.Thread(target=go, args=(vf,)) for vf in (0, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for vf in (0, 1, 2):
        assert runs[vf].code == 0, runs[vf].stdout
        got = pf_view(sim, vf)
        assert (got["vlan"], got["mac"], got["trust"]) == (300 + vf, f"02:cc:00:00:00:0{vf}", True)
        assert pods[vf].link("net1")["address"] == f"02:cc:00:00:00:0{vf}"
    for vf in (0, 1, 2):
        assert sim.run("DEL", confs[vf], netns=pods[vf].path, container_id=f"c{vf}").code == 0
        assert snapshot(sim, vf) == before[vf]


def test_mac_set_rides_out_transient_refusals(sim, pod):
    """i40e/iavf apply a VF MAC asynchronously and answer EBUSY meanwhile: the admin MAC (PF) and the
    netdev MAC are retried on sriov-cni's schedule (20 attempts, 100 ms apart), then given up cleanly.
    The refusals come from the fault point in front of each attempt (the kernel here never refuses)."""
    before = snapshot(sim, 2)
    conf = sim.config(2, mac="02:aa:bb:cc:dd:02")
    res = result_json(sim.run("ADD", conf, netns=pod.path, fault="vf-admin-mac*3"))
    assert res["interfaces"][0]["mac"] == "02:aa:bb:cc:dd:02" and pf_view(sim, 2)["mac"] == "02:aa:bb:cc:dd:02"
    assert sim.run("DEL", conf, netns=pod.path, fault="vf-mac*3").code == 0  # the netdev MAC back, retried
    assert snapshot(sim, 2) == before
    res = result_json(sim.run("ADD", conf, netns=pod.path, fault="vf-mac*4"))
    assert pod.link("net1")["address"] == "02:aa:bb:cc:dd:02"
    assert sim.run("DEL", conf, netns=pod.path).code == 0
    r = sim.run("ADD", conf, netns=pod.path, fault="vf-admin-mac*20")
    assert r.code == 1 and "not applied after 20 attempts" in r.json["msg"], r.stdout
    assert snapshot(sim, 2) == before and pod.link("net1") is None
