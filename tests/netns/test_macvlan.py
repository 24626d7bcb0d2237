"""Host tier: the macvlan plugin as a real process on this kernel, in throwaway node/pod namespaces.

Covers every mode, the default master, MTU rules, MAC precedence, bcqueuelen, linkInContainer,
dual-stack IPAM (host-local: ours once it exists, else Go's), CHECK drift, the DEL matrix, STATUS,
GC, and rollback at every ADD step (real failures first, the test fault hook for the rest),
proving nothing is left behind: no link in the pod, no temp link, no IP reservation.
"""
from __future__ import annotations

import os

import pytest

from tests.netns.macvlan_helpers import (conf, err, host_local, ipam_path, node_links, ok, pod_links, reservations,
                                         routes, run, with_prev)
from tests import topology
from tests.topology import bin_dir, make_node, netns_del, sh


def info(pod, ifname="net1") -> dict:
    link = pod.link(ifname)
    assert link is not None, f"{ifname} missing in pod"
    return link


# ------------------------------------------------------------------ modes, master, mtu, mac
@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru", "source"])
def test_every_mode(node, pod, mode):
    r = ok(run("ADD", conf(master="eth0", mode=mode), node, pod))
    link = info(pod)
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert link["linkinfo"]["info_data"]["mode"] == mode
    assert "UP" in link["flags"]
    assert r["interfaces"] == [{"name": "net1", "mac": link["address"], "sandbox": pod.path}]


def test_default_mode_is_bridge_and_unknown_mode_is_code_7_naming_it(node, pod):
    ok(run("ADD", conf(master="eth0"), node, pod))
    assert info(pod)["linkinfo"]["info_data"]["mode"] == "bridge"
    e = err(run("ADD", conf(master="eth0", mode="bridged"), node, pod, ifname="net2"), 7)
    assert "bridged" in e["msg"] and '"mode"' in e["msg"]
    assert pod.link("net2") is None


def test_default_master_is_the_default_route_interface(node, pod):
    sh("ip", "-n", node.name, "link", "add", "name", "other0", "type", "veth", "peer", "name", "other1")
    ok(run("ADD", conf(), node, pod))
    link = info(pod)
    eth0 = node.link("eth0")
    assert link["link_index"] == eth0["ifindex"]


def test_no_master_and_no_default_route_names_the_key(pod):
    bare = make_node(default_route=False)
    try:
        e = err(run("ADD", conf(), bare, pod), 7)
        assert '"master"' in e["msg"] and "default route" in e["msg"]
        e = err(run("ADD", conf(master="nope0"), bare, pod), 7)
        assert '"master"' in e["msg"] and "nope0" in e["msg"]
    finally:
        netns_del(bare.name)
    assert pod_links(pod) == {"lo"}


def test_mtu_rules(pod):
    big = make_node(mtu=9000)
    try:
        ok(run("ADD", conf(master="eth0"), big, pod, ifname="inherit"))
        assert info(pod, "inherit")["mtu"] == 9000
        r = ok(run("ADD", conf("1.1.0", master="eth0", mtu=1400), big, pod, ifname="small"))
        assert info(pod, "small")["mtu"] == 1400 and r["interfaces"][0]["mtu"] == 1400
        e = err(run("ADD", conf(master="eth0", mtu=9001), big, pod, ifname="toobig"), 7)
        assert '"mtu"' in e["msg"] and "9000" in e["msg"]
        for bad in (-1, 20, "1500"):
            err(run("ADD", conf(master="eth0", mtu=bad), big, pod, ifname="bad"), 7)
        assert pod.link("toobig") is None and pod.link("bad") is None
    finally:
        netns_del(big.name)


def test_mac_precedence_config_then_cni_args_then_runtime_config(node, pod):
    base = dict(master="eth0", mac="02:00:00:00:00:01")
    ok(run("ADD", conf(**base), node, pod, ifname="m1"))
    assert info(pod, "m1")["address"] == "02:00:00:00:00:01"
    r = ok(run("ADD", conf(**base), node, pod, ifname="m2", cni_args="IgnoreUnknown=1;MAC=02:00:00:00:00:02"))
    assert info(pod, "m2")["address"] == "02:00:00:00:00:02" == r["interfaces"][0]["mac"]
    ok(run("ADD", conf(**base, runtimeConfig={"mac": "02:00:00:00:00:03"}), node, pod, ifname="m3",
           cni_args="MAC=02:00:00:00:00:02"))
    assert info(pod, "m3")["address"] == "02:00:00:00:00:03"
    for bad, where in (("zz:00:00:00:00:01", '"mac"'), ("01:00:5e:00:00:01", "multicast")):
        e = err(run("ADD", conf(master="eth0", mac=bad), node, pod, ifname="m4"), 7)
        assert where in e["msg"]
    e = err(run("ADD", conf(**base), node, pod, ifname="m4", cni_args="MAC=nope"), 7)
    assert "CNI_ARGS" in e["msg"]
    assert pod.link("m4") is None


def test_bcqueuelen(node, pod):
    ok(run("ADD", conf(master="eth0", bcqueuelen=2000), node, pod))
    assert info(pod)["linkinfo"]["info_data"]["bcqueuelen"] == 2000


def test_link_in_container(node, pod):
    # the master lives in the pod: a veth pair created there (as if moved in by an earlier plugin)
    sh("ip", "-n", pod.name, "link", "add", "name", "up0", "type", "veth", "peer", "name", "up1")
    sh("ip", "-n", pod.name, "link", "set", "up0", "up")
    before = node_links(node)
    r = ok(run("ADD", conf(master="up0", linkInContainer=True), node, pod))
    link = info(pod)
    assert link.get("link") == "up0" and "link_netnsid" not in link
    assert node_links(node) == before
    chk = ok(run("CHECK", with_prev(conf(master="up0", linkInContainer=True), r), node, pod))
    assert chk is None
    # the master is looked up in the pod, not on the node
    e = err(run("ADD", conf(master="eth0", linkInContainer=True), node, pod, ifname="net2"), 7)
    assert "eth0" in e["msg"] and "pod" in e["msg"]
    ok(run("DEL", conf(master="up0", linkInContainer=True), node, pod))
    assert pod.link("net1") is None and pod.link("up0") is not None


# ------------------------------------------------------------------ IPAM
def test_dual_stack_ipam(node, pod, tmp_path):
    c = conf(master="eth0", ipam=host_local(tmp_path, v4=True, v6=True), dns={"nameservers": ["10.9.0.53"]})
    r = ok(run("ADD", c, node, pod))
    assert [ip["interface"] for ip in r["ips"]] == [0, 0]
    addrs = {(a["local"], a["prefixlen"]) for a in pod.addrs("net1") if a.get("scope") == "global"}
    assert addrs == {(ip["address"].split("/")[0], int(ip["address"].split("/")[1])) for ip in r["ips"]}
    v4 = [x for x in routes(pod.name, "-4") if x["dst"] == "default"]
    v6 = [x for x in routes(pod.name, "-6") if x["dst"] == "default"]
    assert v4 and v4[0]["gateway"] == "10.9.0.1" and v4[0]["dev"] == "net1"
    assert v6 and v6[0]["gateway"] == "fd00:9::1" and v6[0]["dev"] == "net1"
    # usable at once: tentative only while optimistic (the default `dad`; test_ipconfig_parity.py)
    assert all(a.get("optimistic") for a in pod.addrs("net1") if a.get("tentative"))
    assert r["dns"] == {"nameservers": ["10.9.0.53"]}
    assert len(reservations(tmp_path)) == 2
    assert ok(run("CHECK", with_prev(c, r), node, pod)) is None
    ok(run("DEL", c, node, pod))
    assert reservations(tmp_path) == [] and pod.link("net1") is None


def test_gratuitous_arp_announces_the_new_address(node, pod, tmp_path):
    """arp_notify fires as the link comes up, so the addresses must already be on it."""
    with topology.ArpSniffer(node.name, "peer0") as sniffer:
        r = ok(run("ADD", conf(master="eth0", ipam=host_local(tmp_path)), node, pod))
        mac, ip = r["interfaces"][0]["mac"], r["ips"][0]["address"].split("/")[0]
        frames = sniffer.until(lambda seen: topology.gratuitous_arps(seen, mac, ip))
    assert topology.gratuitous_arps(frames, mac, ip), [f.hex() for f in frames]


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_result_versions(node, pod, tmp_path, version):
    if version == "1.1.0" and not ipam_path().startswith(str(bin_dir())):
        pytest.skip("Go host-local 1.1.1 does not speak 1.1.0 (ours does)")
    c = conf(version, master="eth0", ipam=host_local(tmp_path))
    r = ok(run("ADD", c, node, pod))
    assert r["cniVersion"] == version
    ip = r["ips"][0]
    assert ip["address"].startswith("10.9.0.") and ip["interface"] == 0
    assert ("version" in ip) == (version in ("0.3.1", "0.4.0"))
    assert r["interfaces"][0]["name"] == "net1"
    assert r["interfaces"][0].get("mtu") == (1500 if version == "1.1.0" else None)


def test_legacy_version_result(node, pod, tmp_path):
    r = ok(run("ADD", conf("0.2.0", master="eth0", ipam=host_local(tmp_path)), node, pod))
    assert r["ip4"]["ip"].startswith("10.9.0.") and "interfaces" not in r


def test_l2_only_1_1_0_result_has_mtu(node, pod):
    r = ok(run("ADD", conf("1.1.0", master="eth0"), node, pod))
    assert r["interfaces"][0]["mtu"] == 1500 and "ips" not in r


def test_ecmp_and_explicit_routes(node, pod, tmp_path):
    routes_ = [{"dst": "198.51.100.0/24", "gw": "10.9.0.251"}, {"dst": "198.51.100.0/24", "gw": "10.9.0.252"},
               {"dst": "203.0.113.0/24"}]
    c = conf(master="eth0", ipam=host_local(tmp_path, routes=routes_))
    r = ok(run("ADD", c, node, pod))
    got = {x["dst"]: x for x in routes(pod.name)}
    hops = {h["gateway"] for h in got["198.51.100.0/24"]["nexthops"]}
    assert hops == {"10.9.0.251", "10.9.0.252"}
    assert got["203.0.113.0/24"]["gateway"] == "10.9.0.1"  # no gw: the family's gateway
    assert ok(run("CHECK", with_prev(c, r), node, pod)) is None
    sh("ip", "-n", pod.name, "route", "replace", "198.51.100.0/24", "via", "10.9.0.251", "dev", "net1")
    e = run("CHECK", with_prev(c, r), node, pod).json
    assert "198.51.100.0/24" in e["msg"]


# ------------------------------------------------------------------ CHECK
@pytest.fixture
def added(node, pod, tmp_path):
    c = conf(master="eth0", ipam=host_local(tmp_path))
    r = ok(run("ADD", c, node, pod))
    return c, r


def test_check_ok(node, pod, added):
    c, r = added
    assert ok(run("CHECK", with_prev(c, r), node, pod)) is None


def test_check_detects_address_removed(node, pod, added):
    c, r = added
    sh("ip", "-n", pod.name, "addr", "del", r["ips"][0]["address"], "dev", "net1")
    e = run("CHECK", with_prev(c, r), node, pod).json
    assert r["ips"][0]["address"] in e["msg"]


def test_check_detects_link_down(node, pod, added):
    c, r = added
    sh("ip", "-n", pod.name, "link", "set", "net1", "down")
    assert "down" in run("CHECK", with_prev(c, r), node, pod).json["msg"]


def test_check_detects_mac_changed(node, pod, added):
    c, r = added
    sh("ip", "-n", pod.name, "link", "set", "net1", "address", "02:00:00:00:00:99")
    assert "MAC" in run("CHECK", with_prev(c, r), node, pod).json["msg"]


def test_check_detects_route_removed_and_mode_and_missing_link(node, pod, added):
    c, r = added
    assert "bridge" in run("CHECK", with_prev(dict(c, mode="vepa"), r), node, pod).json["msg"]
    sh("ip", "-n", pod.name, "route", "del", "default")
    assert "0.0.0.0/0" in run("CHECK", with_prev(c, r), node, pod).json["msg"]
    sh("ip", "-n", pod.name, "link", "del", "net1")
    assert "not found" in run("CHECK", with_prev(c, r), node, pod).json["msg"]


def test_check_needs_prev_result_and_matching_sandbox(node, pod, added):
    c, r = added
    assert "prevResult" in err(run("CHECK", c, node, pod), 7)["msg"]
    other = dict(r, interfaces=[dict(r["interfaces"][0], sandbox="/var/run/netns/elsewhere")])
    assert "sandbox" in err(run("CHECK", with_prev(c, other), node, pod), 7)["msg"]


# ------------------------------------------------------------------ DEL matrix
def test_del_is_idempotent_and_releases_ip(node, pod, added, tmp_path):
    c, _ = added
    assert len(reservations(tmp_path)) == 1
    for _ in range(2):
        ok(run("DEL", c, node, pod))
    assert pod.link("net1") is None and reservations(tmp_path) == []


def test_del_with_link_already_gone(node, pod, added, tmp_path):
    c, _ = added
    sh("ip", "-n", pod.name, "link", "del", "net1")
    ok(run("DEL", c, node, pod))
    assert reservations(tmp_path) == []


def test_del_with_netns_gone_or_empty_still_releases_ip(node, pod, added, tmp_path):
    c, _ = added
    netns_del(pod.name)
    ok(run("DEL", c, node, pod))  # the path no longer exists
    assert reservations(tmp_path) == []


def test_del_with_empty_netns_releases_ip(node, pod, tmp_path):
    c = conf(master="eth0", ipam=host_local(tmp_path))
    ok(run("ADD", c, node, pod, cid="ctrX"))
    ok(run("DEL", c, node, None, cid="ctrX"))
    assert reservations(tmp_path) == []


def test_del_leaves_another_plugins_interface_alone(node, pod):
    sh("ip", "-n", pod.name, "link", "add", "name", "net1", "type", "veth", "peer", "name", "vpeer")
    ok(run("DEL", conf(master="eth0"), node, pod))
    assert pod.link("net1") is not None


# ------------------------------------------------------------------ rollback: nothing left behind
def assert_clean(node, pod, data, before_node: set[str], pod_expected=frozenset({"lo"})):
    assert pod_links(pod) == set(pod_expected)
    assert node_links(node) == before_node
    assert reservations(data) == []


def test_rollback_name_clash_in_pod(node, pod, tmp_path):
    sh("ip", "-n", pod.name, "link", "add", "name", "net1", "type", "veth", "peer", "name", "vpeer")
    before = node_links(node)
    e = err(run("ADD", conf(master="eth0", ipam=host_local(tmp_path)), node, pod), 4)
    assert "already exists" in e["msg"]
    assert_clean(node, pod, tmp_path, before, {"lo", "net1", "vpeer"})
    assert pod.link("net1")["linkinfo"]["info_kind"] == "veth"


def test_rollback_ipam_failure(node, pod, tmp_path):
    before = node_links(node)
    c = conf(master="eth0", ipam={"type": "host-local", "dataDir": str(tmp_path), "ranges": [[{"subnet": "bogus"}]]})
    r = run("ADD", c, node, pod)
    assert r.code != 0
    assert_clean(node, pod, tmp_path, before)
    c = conf(master="eth0", ipam={"type": "no-such-ipam"})
    err(run("ADD", c, node, pod), 7)
    assert_clean(node, pod, tmp_path, before)


def test_rollback_range_exhausted(node, pod, tmp_path):
    one = host_local(tmp_path, r4={"rangeStart": "10.9.0.5", "rangeEnd": "10.9.0.5"})
    c = conf(master="eth0", ipam=one)
    ok(run("ADD", c, node, pod, cid="first", ifname="first"))
    before = node_links(node)
    assert run("ADD", c, node, pod, cid="second", ifname="second").code != 0
    assert pod.link("second") is None and node_links(node) == before
    assert reservations(tmp_path) == ["10.9.0.5"]


def test_rollback_bad_route(node, pod, tmp_path):
    before = node_links(node)
    c = conf(master="eth0", ipam=host_local(tmp_path, routes=[{"dst": "198.51.100.0/24", "gw": "203.0.113.1"}]))
    e = err(run("ADD", c, node, pod), 5)
    assert "198.51.100.0/24" in e["msg"]
    assert_clean(node, pod, tmp_path, before)


def test_rollback_dad_failure(node, pod, tmp_path):
    # the node's side of the wire already holds the address the pod is about to get
    sh("ip", "-n", node.name, "addr", "add", "fd00:9::5/64", "dev", "peer0", "nodad")
    before = node_links(node)
    ipam = host_local(tmp_path, v4=False, v6=True, r6={"rangeStart": "fd00:9::5", "rangeEnd": "fd00:9::5"})
    e = err(run("ADD", conf(master="eth0", ipam=ipam, dad="wait"), node, pod), 5)  # Go's: wait for DAD
    assert "duplicate address" in e["msg"] and "fd00:9::5" in e.get("details", "")
    assert_clean(node, pod, tmp_path, before)


def test_rollback_unprintable_result(node, pod):
    # L2 only cannot be printed as 0.2.0 (no IP): the ADD fails and takes its link with it
    before = node_links(node)
    assert run("ADD", conf("0.2.0", master="eth0"), node, pod).code != 0
    assert pod_links(pod) == {"lo"} and node_links(node) == before


@pytest.mark.parametrize("step", ["created", "ipam", "addresses", "routes", "result"])
def test_rollback_at_every_step(node, pod, tmp_path, step):
    before = node_links(node)
    c = conf(master="eth0", ipam=host_local(tmp_path, v4=True, v6=False))
    e = err(run("ADD", c, node, pod, extra_env={"CNI_RDMA_TEST_FAULT": step}), 999)
    assert step in e["msg"]
    assert_clean(node, pod, tmp_path, before)
    ok(run("ADD", c, node, pod))  # and the same ADD then works


# ------------------------------------------------------------------ STATUS / GC
def script_ipam(tmp_path, name: str, body: str) -> str:
    """An exec'd IPAM plugin `name`: a shell script (stdin read and dropped, then body); the CNI_PATH to find it."""
    exe = tmp_path / "bin" / name
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f"#!/bin/sh\ncat >/dev/null\n{body}")
    exe.chmod(0o755)
    return f"{exe.parent}:{ipam_path()}"


def fake_ipam(tmp_path):
    log = tmp_path / "ipam.log"
    return script_ipam(tmp_path, "fake-ipam", f"echo \"$CNI_COMMAND\" >> {log}\n").split(":")[0], log


ADDRESS_ON_ADD = "echo '{\"cniVersion\": \"1.0.0\", \"ips\": [{\"address\": \"10.99.0.5/24\"}]}'\n"


def test_del_releases_the_addresses_in_the_nodes_netns_while_the_link_goes(node, pod, tmp_path):
    # DEL releases the addresses while the kernel deletes the pod's link (childlink.delete_beside: on the calling
    # thread, the netns thread sends the delete); the release must run in the node's netns, as the IPAM call always
    # did (cluster-ipam reaches etcd there; an exec'd IPAM inherits it), never in the pod's.
    seen = tmp_path / "ipam-netns"
    path = script_ipam(tmp_path, "ns-ipam", f"if [ \"$CNI_COMMAND\" = DEL ]; then readlink /proc/self/ns/net > {seen}; "
                       "exit 0; fi\n" + ADDRESS_ON_ADD)
    c = conf(master="eth0", ipam={"type": "ns-ipam"})
    ok(run("ADD", c, node, pod, path=path))
    ok(run("DEL", c, node, pod, path=path))
    assert seen.read_text().strip() == f"net:[{os.stat(node.path).st_ino}]"
    assert "net1" not in pod_links(pod)


def test_del_whose_release_fails_still_deletes_the_link_and_reports_the_ipams_error(node, pod, tmp_path):
    # the release runs beside the kernel's delete (childlink.delete_beside): its error is DEL's answer, the link
    # goes all the same, and the retried DEL (IPAM working again) succeeds with nothing left to delete
    flag = tmp_path / "fail-del"
    path = script_ipam(tmp_path, "flaky-ipam", f"if [ \"$CNI_COMMAND\" = DEL ] && [ -e {flag} ]; then "
                       "echo '{\"cniVersion\": \"1.0.0\", \"code\": 11, \"msg\": \"store unreachable\"}'; exit 1; fi\n"
                       "if [ \"$CNI_COMMAND\" = DEL ]; then exit 0; fi\n" + ADDRESS_ON_ADD)
    c = conf(master="eth0", ipam={"type": "flaky-ipam"})
    ok(run("ADD", c, node, pod, path=path))
    flag.write_text("")
    e = err(run("DEL", c, node, pod, path=path), 11)
    assert e["msg"] == "store unreachable"
    assert "net1" not in pod_links(pod)
    flag.unlink()
    ok(run("DEL", c, node, pod, path=path))


def test_del_into_a_path_that_is_no_netns_still_releases_first(node, tmp_path):
    # a netns path that is a plain file: the release runs (in order, before the delete's error), then the error
    log = tmp_path / "ipam.log"
    path = script_ipam(tmp_path, "log-ipam", f"echo \"$CNI_COMMAND\" >> {log}\n")
    not_netns = tmp_path / "not-a-netns"
    not_netns.write_text("")
    c = conf(master="eth0", ipam={"type": "log-ipam"})
    r = run("DEL", c, node, topology.Pod(name="x", path=str(not_netns)), path=path)
    assert log.read_text().split() == ["DEL"]
    e = err(r, 5)
    assert "not a network namespace" in e["msg"], e


def test_status_and_gc_delegate_to_ipam(node, tmp_path):
    path, log = fake_ipam(tmp_path)
    c = conf("1.1.0", master="eth0", ipam={"type": "fake-ipam"})
    ok(run("STATUS", c, node, path=path))
    ok(run("GC", dict(c, **{"cni.dev/valid-attachments": []}), node, path=path))
    assert log.read_text().split() == ["STATUS", "GC"]


def test_status_fails_50_when_master_missing(node, tmp_path):
    e = err(run("STATUS", conf("1.1.0", master="gone0"), node), 50)
    assert "gone0" in e["msg"]
    ok(run("STATUS", conf("1.1.0", master="eth0"), node))
    ok(run("STATUS", conf("1.1.0"), node))  # default route interface
    bare = make_node(default_route=False)
    try:
        err(run("STATUS", conf("1.1.0"), bare), 50)
    finally:
        netns_del(bare.name)
