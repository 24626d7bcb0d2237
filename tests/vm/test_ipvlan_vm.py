"""VM tier: the ipvlan plugin as a real process on Debian's kernel (this host's kernel has no ipvlan).

Modes l2/l3/l3s with each flag, CHECK, DEL, STATUS, the default master, L2 only, linkInContainer,
chained use with the master and the IPs taken from prevResult, and refusal of a conflicting mode
or flag on a master that already has children (the kernel would silently switch them all).
Few, targeted tests: Python is much slower in the TCG guest. IPv4 only (IPv6 DAD is covered on the
host tier with macvlan, through the same shared code).
"""
from __future__ import annotations

import pytest

from tests import topology
from tests.netns.macvlan_helpers import err, host_local, ok, reservations, run, with_prev
from tests.vm import guest


@pytest.fixture(autouse=True)
def _ipvlan_module():
    guest.modprobe("ipvlan")


def ipvlan_conf(version: str = "1.0.0", name: str = "ivnet", ipam: dict | None = None, **keys) -> dict:
    c = {"cniVersion": version, "name": name, "type": "ipvlan", **keys}
    if ipam is not None:
        c["ipam"] = ipam
    return c


def iv(cmd, config, node, pod, **kw):
    return run(cmd, config, node, pod, plugin="ipvlan", timeout=240, **kw)  # the TCG guest is slow


def mode_flag(ns: str, ifname: str) -> tuple[str, str]:
    data = guest.link(ifname, ns)["linkinfo"]["info_data"]
    flag = next((f for f in ("private", "vepa", "bridge") if data.get(f)), "bridge")
    return data["mode"], flag


def test_modes_and_flags(dummy_master, pod, tmp_path):
    """Each mode with a different flag, each on its own master (mode and flag belong to the master)."""
    node = dummy_master
    cases = [("l2", "bridge", "dummy0"), ("l3", "private", guest.dummy_add("dm1", netns=node.name)),
             ("l3s", "vepa", guest.dummy_add("dm2", netns=node.name))]
    results = []
    for i, (mode, flag, master) in enumerate(cases):
        c = ipvlan_conf(master=master, mode=mode, flag=flag, ipam=host_local(tmp_path, routes=[]))
        r = ok(iv("ADD", c, node, pod, ifname=f"net{i}", cid=f"c{i}"))
        results.append(r)
        assert mode_flag(pod.name, f"net{i}") == (mode, flag)
        link = guest.link(f"net{i}", pod.name)
        assert r["interfaces"] == [{"name": f"net{i}", "mac": link["address"], "sandbox": pod.path}]
        assert link["address"] == guest.link(master, node.name)["address"]  # ipvlan shares the master's MAC
        assert r["ips"][0]["interface"] == 0 and r["ips"][0]["address"].startswith("10.9.0.")
    c = ipvlan_conf(master="dummy0", mode="l2", ipam=host_local(tmp_path, routes=[]))
    prev = results[0]
    ok(iv("CHECK", with_prev(dict(c, ipam=None), prev), node, pod, ifname="net0", cid="c0"))
    e = iv("CHECK", with_prev(dict(c, ipam=None, mode="l3"), prev), node, pod, ifname="net0", cid="c0").json
    assert "mode" in e["msg"]
    ok(iv("DEL", c, node, pod, ifname="net0", cid="c0"))
    assert guest.link("net0", pod.name) is None and len(reservations(tmp_path, "ivnet")) == 2


def test_default_master_l2_only_and_status(dummy_master, pod):
    node = dummy_master
    guest.ip("addr", "add", "192.0.2.1/24", "dev", "dummy0", netns=node.name)
    guest.ip("route", "add", "default", "via", "192.0.2.254", "dev", "dummy0", netns=node.name)
    r = ok(iv("ADD", ipvlan_conf("1.1.0"), node, pod))  # no master, no IPAM: L2 only on the default route's link
    assert "ips" not in r and r["interfaces"][0]["mtu"] == 1500
    link = guest.link("net1", pod.name)
    assert "UP" in link["flags"] and link["address"] == guest.link("dummy0", node.name)["address"]
    err(iv("STATUS", ipvlan_conf("1.1.0", master="gone0"), node, None), 50)
    ok(iv("STATUS", ipvlan_conf("1.1.0"), node, None))
    err(iv("ADD", ipvlan_conf(master="dummy0", mtu=9000), node, pod, ifname="big"), 7)
    assert guest.link("big", pod.name) is None


def test_chained_master_and_ips_from_prev_result(dummy_master, pod):
    node = dummy_master
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "dummy0"}],
            "ips": [{"address": "10.7.0.5/24", "gateway": "10.7.0.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0"}]}
    r = ok(iv("ADD", ipvlan_conf(mode="l3", prevResult=prev), node, pod))
    assert mode_flag(pod.name, "net1") == ("l3", "bridge")
    assert guest.link("net1", pod.name)["address"] == guest.link("dummy0", node.name)["address"]
    assert r["interfaces"][0]["name"] == "net1" and r["ips"][0]["address"] == "10.7.0.5/24"
    addrs = topology.ip_json("addr", "show", "dev", "net1", netns=pod.name)[0]["addr_info"]
    assert any(a["local"] == "10.7.0.5" for a in addrs)
    default = [x for x in topology.ip_json("route", "show", netns=pod.name) if x["dst"] == "default"]
    assert default and default[0]["dev"] == "net1"
    two = dict(prev, interfaces=[{"name": "dummy0"}, {"name": "other"}])
    e = err(iv("ADD", ipvlan_conf(prevResult=two), node, pod, ifname="net2"), 7)
    assert "chained master" in e["msg"] and guest.link("net2", pod.name) is None


def test_conflicting_mode_is_refused(dummy_master, make_pod):
    node = dummy_master
    p1, p2, p3 = make_pod(), make_pod(), make_pod()
    l2 = ipvlan_conf(master="dummy0", mode="l2")
    ok(iv("ADD", l2, node, p1))
    ok(iv("ADD", l2, node, p3))  # the same mode is fine
    e = err(iv("ADD", ipvlan_conf(master="dummy0", mode="l3"), node, p2), 7)
    assert "dummy0" in e["msg"] and "l3" in e["msg"]
    assert guest.link("net1", p2.name) is None
    assert mode_flag(p1.name, "net1") == ("l2", "bridge")  # the first pods' children were not switched
    # once the l2 children are gone (one by DEL, one with its pod and no DEL), l3 is allowed
    ok(iv("DEL", l2, node, p1))
    topology.netns_del(p3.name)
    ok(iv("ADD", ipvlan_conf(master="dummy0", mode="l3"), node, p2))
    assert mode_flag(p2.name, "net1") == ("l3", "bridge")


def test_conflict_with_a_child_next_to_the_master(dummy_master, pod):
    node = dummy_master
    guest.ip("link", "add", "side0", "link", "dummy0", "type", "ipvlan", "mode", "l3", netns=node.name)
    e = err(iv("ADD", ipvlan_conf(master="dummy0", mode="l2", flag="private"), node, pod), 7)
    assert "side0" in e["msg"]
    assert guest.link("net1", pod.name) is None


def test_link_in_container_and_rollback_on_name_clash(dummy_master, pod):
    node = dummy_master
    guest.dummy_add("up0", netns=pod.name)
    c = ipvlan_conf(master="up0", linkInContainer=True, mode="l2")
    ok(iv("ADD", c, node, pod))
    assert guest.link("net1", pod.name)["link"] == "up0"
    e = err(iv("ADD", c, node, pod, cid="ctr2"), 4)  # net1 exists already
    assert "already exists" in e["msg"]
    assert {l["ifname"] for l in pod.links()} == {"lo", "up0", "net1"}
    ok(iv("DEL", c, node, pod))
    assert guest.link("net1", pod.name) is None and guest.link("up0", pod.name) is not None
