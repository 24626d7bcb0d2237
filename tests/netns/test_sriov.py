"""sriov plugin, host tier: fake PCI tree, real links (veth ends stand in for VF netdevs).

A veth has no VFs, so the PF-side settings (vlan, admin MAC, spoofchk, trust, link state, rates) are
exercised in the VM tier (netdevsim PF); here the configs ask for none, and a config that does
must fail cleanly because the "PF" reports no VF. Everything netdev-side is real: the move into the
pod under a temporary name, rename, MTU, addresses, routes, and the way back.
"""
from __future__ import annotations

import json
import threading

import pytest

from tests import topology
from tests.fakepci import FakePci
from tests.sriov_env import SriovHost, link_state, result_json

ADD_STEPS = ("recorded", "pf", "moved", "renamed", "created", "ipam", "addresses", "routes", "result")
ORIG_MAC = {0: "02:5a:00:00:00:10", 1: "02:5a:00:00:00:11", 3: "02:5a:00:00:00:13"}


@pytest.fixture
def host():
    node = topology.make_node(default_route=False)
    n = node.name
    topology.sh("ip", "-n", n, "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
    pci = FakePci()
    pf_addr = pci.add_pf(pci.addr(0x3b, 0, 0), "pf0", driver="fake_pf")
    h = SriovHost(node=node, pci=pci, pf="pf0", pf_addr=pf_addr)
    for vf in (0, 1, 3):
        name = f"ens1f0v{vf}"
        topology.sh("ip", "-n", n, "link", "add", name, "address", ORIG_MAC[vf], "mtu", "1500", "type", "veth",
                    "peer", "name", f"vfpeer{vf}")
        h.vf_netdev[vf] = name
        h.vfs[vf] = pci.add_vf(pf_addr, vf, pci.addr(0x3b, 0, 2 + vf), name)
    topology.sh("ip", "-n", n, "link", "set", "ens1f0v0", "up")  # vf0 starts up, vf1/vf3 down
    h.vfs[2] = pci.add_vf(pf_addr, 2, pci.addr(0x3b, 0, 4), None, driver="vfio-pci")  # DPDK
    yield h
    h.cleanup()


@pytest.fixture
def pod2():
    p = topology.make_pod()
    yield p
    topology.netns_del(p.name)


def _host_state(h: SriovHost, vf: int) -> dict | None:
    return link_state(h.link(h.vf_netdev[vf]))


def _assert_back(h: SriovHost, vf: int, before: dict, pod=None):
    assert _host_state(h, vf) == before
    if pod is not None:
        assert pod.link("net1") is None
    assert not list(_records(h))


def _records(h: SriovHost):
    from cni_rdma.state import Store

    store = Store("sriov")
    for name in store.names():
        if name.startswith("vf-") and h.pci.domain and name[3:7] == f"{h.pci.domain:04x}":
            yield name


def test_add_check_del(host, pod):
    before = _host_state(host, 0)
    conf = host.config(0, mtu=9000)
    res = result_json(host.run("ADD", conf, netns=pod.path))
    iface = res["interfaces"][0]
    assert iface["name"] == "net1" and iface["sandbox"] == pod.path
    assert iface["pciID"] == host.vfs[0] and iface["mac"] == ORIG_MAC[0] and iface["mtu"] == 9000
    assert res["ips"] == [{"interface": 0, "address": "10.56.217.5/24", "gateway": "10.56.217.1"}]
    link = pod.link("net1")
    assert link["address"] == ORIG_MAC[0] and link["mtu"] == 9000 and "UP" in link["flags"]
    assert [a["local"] for a in pod.addrs("net1") if a["family"] == "inet"] == ["10.56.217.5"]
    assert any(r["dst"] == "default" and r.get("gateway") == "10.56.217.1" for r in pod.routes())
    assert host.link(host.vf_netdev[0]) is None  # left the host
    assert len(list(_records(host))) == 1

    chk = dict(conf, prevResult=res)
    r = host.run("CHECK", chk, netns=pod.path)
    assert r.code == 0, r.stdout

    r = host.run("DEL", conf, netns=pod.path)
    assert r.code == 0, r.stdout
    _assert_back(host, 0, before, pod)
    assert host.ipam_calls() == ["ADD ctr1", "CHECK ctr1", "DEL ctr1"]
    # again: nothing left, still success
    assert host.run("DEL", conf, netns=pod.path).code == 0
    _assert_back(host, 0, before, pod)


def test_check_detects_drift(host, pod):
    conf = host.config(1, mtu=1400)
    res = result_json(host.run("ADD", conf, netns=pod.path))
    topology.sh("ip", "-n", pod.name, "link", "set", "net1", "mtu", "1500")
    r = host.run("CHECK", dict(conf, prevResult=res), netns=pod.path)
    assert r.code != 0 and "MTU" in r.json["msg"]
    topology.sh("ip", "-n", pod.name, "link", "set", "net1", "mtu", "1400")
    topology.sh("ip", "-n", pod.name, "addr", "flush", "dev", "net1")
    r = host.run("CHECK", dict(conf, prevResult=res), netns=pod.path)
    assert r.code != 0 and "10.56.217.5" in r.json["msg"]
    r = host.run("CHECK", dict(conf, prevResult=res), netns=pod.path, container_id="other")
    assert r.code != 0 and "not allocated" in r.json["msg"]
    assert host.run("DEL", conf, netns=pod.path).code == 0


def test_without_ipam_and_old_versions(host, pod):
    before = _host_state(host, 1)
    conf = host.config(1, version="0.3.1", ipam=None)
    res = result_json(host.run("ADD", conf, netns=pod.path))
    assert res["interfaces"] == [{"name": "net1", "mac": ORIG_MAC[1], "sandbox": pod.path}]  # no mtu/pciID < 1.1.0
    assert "UP" in pod.link("net1")["flags"]
    assert host.run("DEL", conf, netns=pod.path).code == 0
    _assert_back(host, 1, before, pod)  # down again, as it was


def test_seed_nad_config_unchanged(host, pod):
    """The walkthrough's NAD verbatim; Multus adds the top-level deviceID of the allocated VF."""
    nad = json.loads('{"cniVersion": "0.3.1", "name": "sriov-attach", "type": "sriov",'
                     ' "ipam": {"type": "calico-ipam", "range": "222.0.0.0/8"}}')
    nad["deviceID"] = host.vfs[0]
    before = _host_state(host, 0)
    res = result_json(host.run("ADD", nad, netns=pod.path))
    assert res["ips"][0]["address"] == "10.56.217.5/24" and res["interfaces"][0]["name"] == "net1"
    assert host.run("DEL", nad, netns=pod.path).code == 0
    _assert_back(host, 0, before, pod)


def test_device_id_from_runtime_config(host, pod):
    conf = host.config(0)
    del conf["deviceID"]
    conf["runtimeConfig"] = {"deviceID": host.vfs[0].upper()}
    res = result_json(host.run("ADD", conf, netns=pod.path))
    assert res["interfaces"][0]["pciID"] == host.vfs[0]
    assert host.run("DEL", conf, netns=pod.path).code == 0


@pytest.mark.parametrize("key,value", [
    ("deviceID", "not-a-pci-address"), ("deviceID", 7), ("vlan", 4095), ("vlan", -1), ("vlan", "10"),
    ("vlanQoS", 8), ("vlanProto", "802.1x"), ("mac", "01:00:5e:00:00:01"), ("mac", "zz"),
    ("spoofchk", "maybe"), ("trust", 1), ("link_state", "up"), ("min_tx_rate", -5), ("max_tx_rate", "fast"),
    ("mtu", 20), ("mtu", True),
])
def test_invalid_values_are_code_7_naming_the_key(host, pod, key, value):
    conf = host.config(0, **({"vlan": 10} if key in ("vlanQoS", "vlanProto") else {}))
    conf[key] = value
    r = host.run("ADD", conf, netns=pod.path)
    assert r.code == 1 and r.json["code"] == 7, r.stdout
    assert key in r.json["msg"]
    assert host.ipam_calls() == []


@pytest.mark.parametrize("keys,named", [
    ({"vlanQoS": 3}, "vlanQoS"), ({"vlanProto": "802.1ad"}, "vlanProto"), ({"vlan": 0, "vlanQoS": 2}, "vlanQoS"),
    ({"vlan": 0, "vlanProto": "802.1ad"}, "vlanProto"), ({"min_tx_rate": 100, "max_tx_rate": 50}, "max_tx_rate"),
])
def test_inconsistent_keys(host, pod, keys, named):
    r = host.run("ADD", host.config(0, **keys), netns=pod.path)
    assert r.code == 1 and r.json["code"] == 7 and named in r.json["msg"], r.stdout


def test_missing_device_id_says_who_should_have_passed_it(host, pod):
    conf = host.config(0)
    del conf["deviceID"]
    r = host.run("ADD", conf, netns=pod.path)
    assert r.code == 1 and r.json["code"] == 7
    text = r.json["msg"] + r.json.get("details", "")
    assert "deviceID" in text and "Multus" in text and "device plugin" in text


def test_discovery_errors(host, pod):
    r = host.run("ADD", dict(host.config(0), deviceID=host.pf_addr), netns=pod.path)
    assert r.code == 1 and "not an SR-IOV virtual function" in r.json["msg"]
    r = host.run("ADD", dict(host.config(0), deviceID=host.pci.addr(0x7f, 0, 0)), netns=pod.path)
    assert r.code == 1 and r.json["code"] == 7 and "no PCI device" in r.json["msg"]
    lone = host.pci.add_vf(host.pf_addr, 5, host.pci.addr(0x3b, 1, 0), None, driver="fake_vf")
    r = host.run("ADD", dict(host.config(0), deviceID=lone), netns=pod.path)
    assert r.code == 1 and "no network device" in r.json["msg"] and "DPDK" in r.json["details"]
    host.pci.set_netdev(host.pf_addr, None)
    r = host.run("ADD", host.config(0), netns=pod.path)
    assert r.code == 1 and "PF" in r.json["msg"] and "no network device" in r.json["msg"]
    assert host.ipam_calls() == []


def test_pf_settings_need_a_pf_that_reports_vfs(host, pod):
    before = _host_state(host, 0)
    r = host.run("ADD", host.config(0, vlan=100, spoofchk="off"), netns=pod.path)
    assert r.code == 1 and "does not report VF 0" in r.json["msg"], r.stdout
    _assert_back(host, 0, before, pod)
    assert host.ipam_calls() == []


def test_dpdk_mode(host, pod):
    conf = host.config(2)
    res = result_json(host.run("ADD", conf, netns=pod.path))
    iface = res["interfaces"][0]
    assert iface == {"name": "net1", "sandbox": pod.path, "pciID": host.vfs[2]}
    assert res["ips"][0]["address"] == "10.56.217.5/24"
    assert pod.link("net1") is None  # nothing moved, nothing configured in the pod
    assert host.run("CHECK", dict(conf, prevResult=res), netns=pod.path).code == 0
    assert host.run("DEL", conf, netns=pod.path).code == 0
    assert not list(_records(host))
    assert host.ipam_calls() == ["ADD ctr1", "CHECK ctr1", "DEL ctr1"]


# Every ADD step after the allocation record is written; IPAM is released iff it was reached.
@pytest.mark.parametrize("step", ADD_STEPS)
def test_fault_at_each_add_step_gives_everything_back(host, pod, step):
    before = _host_state(host, 0)
    r = host.run("ADD", host.config(0, mtu=9000), netns=pod.path, fault=step)
    assert r.code == 1 and step in r.json["msg"], r.stdout
    _assert_back(host, 0, before, pod)
    reached_ipam = step in ("ipam", "addresses", "routes", "result")
    assert host.ipam_calls() == (["ADD ctr1", "DEL ctr1"] if reached_ipam else [])
    # the VF is free again
    res = result_json(host.run("ADD", host.config(0), netns=pod.path))
    assert res["interfaces"][0]["mac"] == ORIG_MAC[0]
    assert host.run("DEL", host.config(0), netns=pod.path).code == 0
    _assert_back(host, 0, before, pod)


def test_real_failures_roll_back(host, pod):
    before = _host_state(host, 0)
    # the pod already has an interface of that name
    topology.sh("ip", "-n", pod.name, "link", "add", "net1", "type", "veth", "peer", "name", "other1")
    r = host.run("ADD", host.config(0), netns=pod.path)
    assert r.code == 1 and "already exists" in r.json["msg"], r.stdout
    assert _host_state(host, 0) == before and not list(_records(host))
    assert pod.link("net1")["link_type"] == "ether" and pod.link("other1") is not None  # theirs, untouched
    topology.sh("ip", "-n", pod.name, "link", "del", "net1")
    # IPAM has no address left
    r = host.run("ADD", host.config(0, ipam={"type": "stub-ipam", "fail": "ADD"}), netns=pod.path)
    assert r.code == 1 and "no addresses left" in r.json["msg"]
    _assert_back(host, 0, before, pod)
    # the kernel refuses the MTU (a veth takes at most 65535... and at least 68: ask for more than the max)
    r = host.run("ADD", host.config(0, mtu=65535), netns=pod.path)
    if r.code == 1:
        _assert_back(host, 0, before, pod)
    else:
        assert host.run("DEL", host.config(0), netns=pod.path).code == 0
        _assert_back(host, 0, before, pod)


def test_missing_netns_is_an_error_before_anything_changes(host):
    before = _host_state(host, 0)
    r = host.run("ADD", host.config(0), netns="/var/run/netns/crn-does-not-exist")
    assert r.code == 1 and "netns" in r.json["msg"]
    _assert_back(host, 0, before)


# ---------------------------------------------------------------------------------- DEL matrix
def _die_with_vf_returned(host: SriovHost, pod, name: str = "net1", to: str | None = None) -> None:
    """What the kernel does to a physical VF when the pod netns dies: back to the host netns
    (veth stand-ins would be destroyed instead, so the test moves it first)."""
    topology.sh("ip", "-n", pod.name, "link", "set", name, "down")
    topology.sh("ip", "-n", pod.name, "link", "set", name, "netns", host.node.name, *(["name", to] if to else []))
    topology.netns_del(pod.name)


@pytest.mark.parametrize("returned_as", ["net1", "dev7"])
def test_del_after_netns_died_restores_on_host(host, pod, returned_as):
    before = _host_state(host, 0)
    conf = host.config(0, mtu=9000)
    assert host.run("ADD", conf, netns=pod.path).code == 0
    _die_with_vf_returned(host, pod, to=returned_as)
    host.pci.set_netdev(host.vfs[0], returned_as)  # sysfs follows the device back
    r = host.run("DEL", conf, netns=pod.path)
    assert r.code == 0, r.stdout
    host.pci.set_netdev(host.vfs[0], host.vf_netdev[0])
    _assert_back(host, 0, before)
    assert host.ipam_calls() == ["ADD ctr1", "DEL ctr1"]


def test_del_with_empty_netns_and_without_device_id(host, pod):
    """kubelet may pass no netns; a DEL config may lack deviceID: the record still finds the VF."""
    before = _host_state(host, 1)
    conf = host.config(1)
    assert host.run("ADD", conf, netns=pod.path).code == 0
    bare = dict(conf)
    del bare["deviceID"]
    assert host.run("DEL", bare, netns="").code == 0
    _assert_back(host, 1, before, pod)


def test_del_when_vf_vanished(host, pod):
    conf = host.config(3)
    assert host.run("ADD", conf, netns=pod.path).code == 0
    topology.sh("ip", "-n", pod.name, "link", "del", "net1")  # VF disabled under us (sriov_numvfs=0)
    r = host.run("DEL", conf, netns=pod.path)
    assert r.code == 0, r.stdout
    assert not list(_records(host))
    assert host.run("DEL", conf, netns=pod.path).code == 0


def test_del_never_added(host, pod):
    assert host.run("DEL", host.config(0), netns=pod.path).code == 0
    assert host.run("DEL", host.config(0), netns="").code == 0
    assert host.ipam_calls() == ["DEL ctr1", "DEL ctr1"]


# ------------------------------------------------------------------------------ ownership/races
def test_vf_in_live_pod_is_refused(host, pod, pod2):
    conf = host.config(0)
    assert host.run("ADD", conf, netns=pod.path).code == 0
    r = host.run("ADD", conf, netns=pod2.path, container_id="ctr2")
    assert r.code == 1 and r.json["code"] == 11 and "already allocated" in r.json["msg"]
    assert pod.link("net1") is not None and pod2.link("net1") is None
    assert host.run("DEL", conf, netns=pod.path).code == 0


def test_reuse_race_old_del_after_new_add(host, pod, pod2):
    """Pod A dies, the device plugin hands its VF to pod B, and only then A's DEL arrives."""
    before = _host_state(host, 0)
    conf = host.config(0, mtu=9000)
    assert host.run("ADD", conf, netns=pod.path, container_id="podA").code == 0
    _die_with_vf_returned(host, pod)  # A's netns is gone: its record is stale
    host.pci.set_netdev(host.vfs[0], "net1")
    conf_b = host.config(0, mtu=4000)
    res = result_json(host.run("ADD", conf_b, netns=pod2.path, container_id="podB"))
    assert res["interfaces"][0]["mtu"] == 4000
    host.pci.set_netdev(host.vfs[0], host.vf_netdev[0])
    assert pod2.link("net1")["mtu"] == 4000
    r = host.run("DEL", conf, netns=pod.path, container_id="podA")  # late DEL of A
    assert r.code == 0
    link = pod2.link("net1")
    assert link is not None and link["mtu"] == 4000 and "UP" in link["flags"]  # B's VF untouched
    assert host.run("CHECK", dict(conf_b, prevResult=res), netns=pod2.path, container_id="podB").code == 0
    assert host.run("DEL", conf_b, netns=pod2.path, container_id="podB").code == 0
    _assert_back(host, 0, before, pod2)
    assert host.ipam_calls() == ["ADD podA", "ADD podB", "DEL podA", "CHECK podB", "DEL podB"]


def test_concurrent_adds_on_one_pf(host, pod, pod2):
    runs = {}

    def go(vf, p, cid):
        runs[vf] = host.run("ADD", host.config(vf), netns=p.path, container_id=cid)

    threads = [threading.Thread(target=go, args=a) for a in ((0, pod, "c0"), (1, pod2, "c1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs[0].code == 0 and runs[1].code == 0, (runs[0].stdout, runs[1].stdout)
    assert pod.link("net1")["address"] == ORIG_MAC[0] and pod2.link("net1")["address"] == ORIG_MAC[1]
    assert host.run("DEL", host.config(0), netns=pod.path, container_id="c0").code == 0
    assert host.run("DEL", host.config(1), netns=pod2.path, container_id="c1").code == 0


def test_concurrent_adds_of_one_vf_one_wins(host, pod, pod2):
    runs = {}

    def go(p, cid):
        runs[cid] = host.run("ADD", host.config(0), netns=p.path, container_id=cid)

    threads = [threading.Thread(target=go, args=a) for a in ((pod, "c0"), (pod2, "c1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.code for r in runs.values())
    assert codes == [0, 1], {k: v.stdout for k, v in runs.items()}
    loser = next(r for r in runs.values() if r.code == 1)
    assert loser.json["code"] == 11
    winner, p = ("c0", pod) if runs["c0"].code == 0 else ("c1", pod2)
    assert host.run("DEL", host.config(0), netns=p.path, container_id=winner).code == 0


def test_gc_and_status(host, pod, pod2):
    before = _host_state(host, 0)
    conf = host.config(0)
    assert host.run("ADD", conf, netns=pod.path, container_id="gone").code == 0
    assert host.run("ADD", host.config(1), netns=pod2.path, container_id="kept").code == 0
    _die_with_vf_returned(host, pod)
    host.pci.set_netdev(host.vfs[0], "net1")
    gc = dict(host.config(0), **{"cni.dev/valid-attachments": [{"containerID": host.cid("kept"), "ifname": "net1"}]})
    del gc["deviceID"]
    r = host.run("GC", gc)
    assert r.code == 0, r.stdout
    host.pci.set_netdev(host.vfs[0], host.vf_netdev[0])
    assert _host_state(host, 0) == before
    assert pod2.link("net1") is not None  # listed: kept
    assert host.run("STATUS", dict(host.config(0))).code == 0
    assert host.run("DEL", host.config(1), netns=pod2.path, container_id="kept").code == 0


def test_log_file(host, pod, tmp_path):
    log = tmp_path / "sriov.log"
    conf = host.config(1, logFile=str(log), logLevel="debug")
    assert host.run("ADD", conf, netns=pod.path).code == 0
    assert host.run("DEL", conf, netns=pod.path).code == 0
    text = log.read_text()
    assert f"VF {host.vfs[1]}" in text and "given to" in text and "given back" in text


def test_with_host_local_ipam_dual_stack(host, pod, tmp_path):
    """Our own host-local (in-process IPAM path), IPv4 + IPv6: DAD settles, the lease is freed on DEL."""
    before = _host_state(host, 0)
    ipam = {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
            "ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd00:77::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}
    conf = host.config(0, ipam=ipam)
    res = result_json(host.run("ADD", conf, netns=pod.path))
    addrs = sorted(ip["address"] for ip in res["ips"])
    assert addrs == ["10.77.0.2/24", "fd00:77::2/64"]
    have = {f"{a['local']}/{a['prefixlen']}" for a in pod.addrs("net1")}
    assert set(addrs) <= have
    assert host.run("CHECK", dict(conf, prevResult=res), netns=pod.path).code == 0
    assert host.run("DEL", conf, netns=pod.path).code == 0
    _assert_back(host, 0, before, pod)
    leases = [p.name for p in (tmp_path / "ipam" / "sriov-net").iterdir() if p.name[0].isdigit() or ":" in p.name]
    assert leases == []


def test_unmounted_netns_file_counts_as_gone(host, pod, pod2):
    """A runtime that unmounts a pod netns but leaves its mount point behind: the VF is free again."""
    conf = host.config(0)
    assert host.run("ADD", conf, netns=pod.path, container_id="podA").code == 0
    topology.sh("ip", "-n", pod.name, "link", "set", "net1", "netns", host.node.name)
    topology.sh("umount", pod.path)  # the file stays
    host.pci.set_netdev(host.vfs[0], "net1")
    r = host.run("ADD", conf, netns=pod2.path, container_id="podB")
    host.pci.set_netdev(host.vfs[0], host.vf_netdev[0])
    assert r.code == 0, r.stdout
    assert host.run("DEL", conf, netns=pod2.path, container_id="podB").code == 0
    assert _host_state(host, 0)["ifname"] == host.vf_netdev[0]


def test_gratuitous_arp_for_the_new_address(host, pod):
    topology.sh("ip", "-n", host.node.name, "link", "set", "vfpeer0", "up")
    conf = host.config(0)
    with topology.ArpSniffer(host.node.name, "vfpeer0") as sniffer:
        assert host.run("ADD", conf, netns=pod.path).code == 0
        frames = sniffer.until(lambda seen: topology.gratuitous_arps(seen, ORIG_MAC[0], "10.56.217.5"))
    assert topology.gratuitous_arps(frames, ORIG_MAC[0], "10.56.217.5"), [f.hex() for f in frames]
    assert host.run("DEL", conf, netns=pod.path).code == 0


# ------------------------------------------------------------------------------------- altnames
def _altnames(h: SriovHost, name: str) -> list[str]:
    return sorted((h.link(name) or {}).get("altnames", []))


def test_stale_altname_of_the_pod_name_does_not_block_the_rename(host, pod):
    """sriov-cni #445: a VF that comes back carrying the pod name as an altname fails the next rename
    with "file exists". Altnames are dropped in the pod before the rename and put back on DEL."""
    name = host.vf_netdev[0]
    topology.sh("ip", "-n", host.node.name, "link", "property", "add", "dev", name, "altname", "net1")
    topology.sh("ip", "-n", host.node.name, "link", "property", "add", "dev", name, "altname", "enp59s0f0v0")
    before = _host_state(host, 0)
    conf = host.config(0)
    res = result_json(host.run("ADD", conf, netns=pod.path))
    assert res["interfaces"][0]["name"] == "net1"
    assert "altnames" not in pod.link("net1")  # no host naming inside the pod
    assert host.run("DEL", conf, netns=pod.path).code == 0
    _assert_back(host, 0, before, pod)
    assert _altnames(host, name) == ["enp59s0f0v0", "net1"]


def test_altnames_gained_in_the_pod_are_dropped_on_return(host, pod):
    name = host.vf_netdev[1]
    topology.sh("ip", "-n", host.node.name, "link", "property", "add", "dev", name, "altname", "enp59s0f0v1")
    before = _host_state(host, 1)
    conf = host.config(1)
    assert host.run("ADD", conf, netns=pod.path).code == 0
    topology.sh("ip", "-n", pod.name, "link", "property", "add", "dev", "net1", "altname", "podalias1")
    _die_with_vf_returned(host, pod)  # back in the host as net1, with the pod's altname
    assert _altnames(host, "net1") == ["podalias1"]
    assert host.run("DEL", conf, netns=pod.path).code == 0
    _assert_back(host, 1, before)
    assert _altnames(host, name) == ["enp59s0f0v1"] and host.link("podalias1") is None


# ------------------------------------------------------------------------------------- kill -9
@pytest.mark.parametrize("step", ADD_STEPS)
def test_kill_at_each_add_step_then_del_gives_everything_back(host, pod, step):
    """issue 17 item 4: a kubelet timeout kills ADD at exactly this step (SIGKILL, no rollback runs);
    DEL then finds the VF wherever it was left (host name, temp name in the pod, CNI_IFNAME in the pod),
    restores it and releases the IPAM, and the next ADD on that VF works."""
    name = host.vf_netdev[0]
    topology.sh("ip", "-n", host.node.name, "link", "property", "add", "dev", name, "altname", "enp59s0f0v0")
    before = _host_state(host, 0)
    conf = host.config(0, mtu=9000)
    r = host.run("ADD", conf, netns=pod.path, fault=f"{step}!kill")
    assert r.code == -9, r.stdout
    assert len(list(_records(host))) == 1  # the intent was durable before the first change
    r = host.run("DEL", conf, netns=pod.path)
    assert r.code == 0, r.stdout
    _assert_back(host, 0, before, pod)
    assert _altnames(host, name) == ["enp59s0f0v0"]
    reached_ipam = step in ("ipam", "addresses", "routes", "result")
    assert host.ipam_calls() == (["ADD ctr1", "DEL ctr1"] if reached_ipam else ["DEL ctr1"])
    res = result_json(host.run("ADD", conf, netns=pod.path, container_id="next"))
    assert res["interfaces"][0]["mtu"] == 9000
    assert host.run("DEL", conf, netns=pod.path, container_id="next").code == 0
    _assert_back(host, 0, before, pod)
