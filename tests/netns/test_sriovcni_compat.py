"""Host tier: swapping sriov-cni for our `sriov` with pods running, and back (plugins/sriov/sriovcni.py).

A pod is created "the sriov-cni way": the kernel state its ADD leaves (pkg/sriov/sriov.go SetupVF: the VF
netdev moved into the pod, renamed to CNI_IFNAME, its MAC set, optimistic DAD and arp/ndisc_notify on, up,
the IPAM address on it) and its files (pkg/utils/utils.go SaveNetConf: /var/lib/cni/sriov/<cid>-<ifname>;
pkg/utils/pci_allocator.go SaveAllocatedPCI: /var/lib/cni/sriov/pci/<pci>). Our DEL must give everything
back as sriov-cni's own DEL would (ResetVFConfig + ReleaseVF: the host name, MAC and MTU, down, in the
host netns) and release the claim and the cache. The other way round, our ADD writes those files in
sriov-cni's format, so its DEL can undo our pods after a rollback.
Fake PCI tree, real links (veth ends stand in for VF netdevs; PF-side settings need the VM tier).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cni_rdma.state import state_root
from plugins.sriov import sriovcni
from tests import topology
from tests.netns.test_sriov import host, pod2  # noqa: F401  (fixtures: the fake PCI tree over veths, a 2nd pod)
from tests.sriov_env import SriovHost, link_state, result_json


def data_dir() -> Path:
    """sriov-cni's directory as our sriov sees it: <state root>/sriov (the test's own root, tests/conftest.py)."""
    return Path(state_root()) / "sriov"


POD_MAC = "02:00:00:00:00:aa"


@pytest.fixture(autouse=True)
def no_claims_left(host):  # noqa: F811
    yield
    for addr in host.vfs.values():
        sriovcni.drop_claim(addr, str(data_dir()))


def sriov_cni_add(h: SriovHost, vf: int, pod, cid: str, ifname: str = "net1") -> dict:
    """What sriov-cni's ADD leaves for `{"deviceID": ..., "mac": POD_MAC, "ipam": {stub}}`."""
    host_name = h.vf_netdev[vf]
    before = h.link(host_name)
    n = h.node.name
    topology.sh("ip", "-n", n, "link", "set", host_name, "netns", pod.name)
    topology.sh("ip", "-n", pod.name, "link", "set", host_name, "name", ifname)
    for key in (f"net/ipv4/conf/{ifname}/arp_notify", f"net/ipv6/conf/{ifname}/ndisc_notify",
                f"net/ipv6/conf/{ifname}/optimistic_dad"):
        topology.sh("sysctl", "-q", "-w", f"{key.replace('/', '.')}=1", netns=pod.name)
    topology.sh("ip", "-n", pod.name, "link", "set", ifname, "address", POD_MAC)
    topology.sh("ip", "-n", pod.name, "link", "set", ifname, "up")
    topology.sh("ip", "-n", pod.name, "addr", "add", "10.56.217.5/24", "dev", ifname)
    conf = h.config(vf, version="1.0.0", mac=POD_MAC)
    cache = {  # NetConf.MarshalJSON: types.NetConf keys over SriovNetConf's, map keys sorted by encoding/json
        "OrigVfState": {"AdminMAC": "", "EffectiveMAC": before["address"], "HostIFName": host_name, "LinkState": 0,
                        "MTU": before["mtu"], "MaxTxRate": 0, "MinTxRate": 0, "SpoofChk": False, "Trust": False,
                        "Vlan": 0, "VlanProto": 0, "VlanQoS": 0},
        "Master": h.pf, "MAC": POD_MAC, "MTU": before["mtu"], "VFID": vf, "cniVersion": conf["cniVersion"],
        "deviceID": h.vfs[vf], "dns": {}, "ipam": conf["ipam"], "logFile": "", "logLevel": "",
        "max_tx_rate": None, "min_tx_rate": None, "name": conf["name"], "runtimeConfig": {}, "type": "sriov",
        "vlan": None, "vlanProto": None, "vlanQoS": None,
    }
    data_dir().mkdir(parents=True, exist_ok=True)
    (data_dir() / f"{h.cid(cid)}-{ifname}").write_text(json.dumps(cache, sort_keys=True))
    (data_dir() / "pci").mkdir(exist_ok=True)
    (data_dir() / "pci" / h.vfs[vf]).write_text(pod.path)
    return conf


def test_our_del_gives_back_a_vf_sriov_cni_configured(host, pod):  # noqa: F811
    before = link_state(host.link(host.vf_netdev[1]))
    assert before["up"] is False  # sriov-cni leaves it down on the way back; start from that
    conf = sriov_cni_add(host, 1, pod, "legacy")
    assert host.link(host.vf_netdev[1]) is None and pod.link("net1")["address"] == POD_MAC
    r = host.run("DEL", conf, netns=pod.path, container_id="legacy")
    assert r.code == 0, r.stdout + r.stderr
    assert link_state(host.link(host.vf_netdev[1])) == before  # name, MAC, MTU, down, in the host
    assert pod.link("net1") is None
    assert not (data_dir() / f"{host.cid('legacy')}-net1").exists()
    assert sriovcni.read_claim(host.vfs[1], str(data_dir())) is None
    assert host.ipam_calls() == ["DEL legacy"]
    again = host.run("DEL", conf, netns=pod.path, container_id="legacy")  # idempotent
    assert again.code == 0, again.stdout


def test_del_without_device_id_finds_the_sriov_cni_cache(host, pod):  # noqa: F811
    before = link_state(host.link(host.vf_netdev[1]))
    conf = sriov_cni_add(host, 1, pod, "nodev")
    del conf["deviceID"]  # a runtime's DEL from its own cache, without Multus' deviceID
    r = host.run("DEL", conf, netns=pod.path, container_id="nodev")
    assert r.code == 0, r.stdout + r.stderr
    assert link_state(host.link(host.vf_netdev[1])) == before and sriovcni.read_claim(host.vfs[1], str(data_dir())) is None


def test_our_add_respects_a_live_sriov_cni_claim_and_drops_a_stale_one(host, pod, pod2):  # noqa: F811
    conf = sriov_cni_add(host, 1, pod, "legacy")
    busy = host.run("ADD", host.config(1), netns=pod2.path, container_id="new")
    assert busy.code == 1 and busy.json["code"] == 11, busy.stdout
    assert "sriov-cni" in busy.json["msg"] + busy.json.get("details", "") and pod2.link("net1") is None
    assert sriovcni.read_claim(host.vfs[1], str(data_dir())) == pod.path  # untouched
    host.run("DEL", conf, netns=pod.path, container_id="legacy")
    # a claim naming a netns that is gone (sriov-cni's IsAllocated drops it too)
    (data_dir() / "pci" / host.vfs[0]).write_text("/var/run/netns/crn-gone-" + host.tag)
    ok = host.run("ADD", host.config(0), netns=pod2.path, container_id="new")
    assert ok.code == 0, ok.stdout + ok.stderr
    assert sriovcni.read_claim(host.vfs[0], str(data_dir())) == pod2.path
    assert host.run("DEL", host.config(0), netns=pod2.path, container_id="new").code == 0
    assert sriovcni.read_claim(host.vfs[0], str(data_dir())) is None


def test_our_add_writes_what_sriov_cni_needs_to_del_it(host, pod):  # noqa: F811
    """Rollback direction: after our ADD, sriov-cni's files describe the attachment in its own format; with
    our own record gone (a node rolled back to sriov-cni ignores it), those files alone restore the VF."""
    before = link_state(host.link(host.vf_netdev[0]))
    conf = host.config(0, version="1.0.0", mtu=9000)  # no PF-side keys: a veth "PF" has no VFs (VM tier)
    res = result_json(host.run("ADD", conf, netns=pod.path, container_id="ours"))
    assert res["interfaces"][0]["name"] == "net1" and pod.link("net1")["mtu"] == 9000
    path = data_dir() / f"{host.cid('ours')}-net1"
    written = json.loads(path.read_text())
    assert set(written["OrigVfState"]) == {"HostIFName", "SpoofChk", "Trust", "AdminMAC", "EffectiveMAC", "Vlan",
                                           "VlanQoS", "VlanProto", "MinTxRate", "MaxTxRate", "LinkState", "MTU"}
    assert {k: written[k] for k in ("deviceID", "Master", "VFID", "MAC", "cniVersion", "name", "type")} == {
        "deviceID": host.vfs[0], "Master": "pf0", "VFID": 0, "MAC": "", "cniVersion": "1.0.0",
        "name": "sriov-net", "type": "sriov"}
    assert (written["MTU"], written["vlan"], written["min_tx_rate"]) == (9000, None, None)
    assert not {"spoofchk", "trust", "link_state"} & set(written)  # omitempty, and this ADD set none
    assert written["ipam"] == conf["ipam"]
    o = written["OrigVfState"]
    assert (o["HostIFName"], o["EffectiveMAC"], o["MTU"]) == (before["ifname"], before["address"], before["mtu"])
    assert sriovcni.read_claim(host.vfs[0], str(data_dir())) == pod.path
    # sriov-cni would DEL from these files alone: so must we
    from cni_rdma.state import Store

    Store("sriov").delete("vf-" + host.vfs[0])
    r = host.run("DEL", conf, netns=pod.path, container_id="ours")
    assert r.code == 0, r.stdout + r.stderr
    got = link_state(host.link(host.vf_netdev[0]))
    assert (got["ifname"], got["address"], got["mtu"]) == (before["ifname"], before["address"], before["mtu"])
    assert not path.exists() and sriovcni.read_claim(host.vfs[0], str(data_dir())) is None and pod.link("net1") is None


def test_our_own_del_removes_the_sriov_cni_files_too(host, pod):  # noqa: F811
    before = link_state(host.link(host.vf_netdev[0]))
    conf = host.config(0)
    result_json(host.run("ADD", conf, netns=pod.path, container_id="both"))
    assert (data_dir() / f"{host.cid('both')}-net1").exists()
    assert host.run("DEL", conf, netns=pod.path, container_id="both").code == 0
    assert link_state(host.link(host.vf_netdev[0])) == before
    assert not (data_dir() / f"{host.cid('both')}-net1").exists() and sriovcni.read_claim(host.vfs[0], str(data_dir())) is None
    assert not os.path.exists(data_dir() / f"vf-{host.vfs[0]}")


def test_infiniband_guid_on_an_ethernet_vf_is_code_7_and_changes_nothing(host, pod):  # noqa: F811
    """ib-sriov-cni's GUID keys need an InfiniBand PF (ifi_type 32, from the kernel's link answer); the
    veth "PF" here is Ethernet, so the ADD names the problem before touching the VF."""
    before = link_state(host.link(host.vf_netdev[0]))
    for keys in ({"runtimeConfig": {"infinibandGUID": "02:00:00:00:00:00:00:07"}},
                 {"args": {"cni": {"guid": "02:00:00:00:00:00:00:07"}}}):
        r = host.run("ADD", host.config(0, **keys), netns=pod.path, container_id="ib")
        assert r.code == 1 and r.json["code"] == 7, r.stdout
        assert "InfiniBand" in r.json["msg"] and "guid" in r.json["msg"].lower()
        assert link_state(host.link(host.vf_netdev[0])) == before and pod.link("net1") is None
    assert sriovcni.read_claim(host.vfs[0], str(data_dir())) is None and host.ipam_calls() == []
