"""Host tier: the lean rtnetlink layer against this machine's kernel, checked with `ip -j` and pyroute2.

Every operation runs inside throwaway namespaces (the `node`/`pod` fixtures) through
`cni_rdma.netns.in_netns`, with the Rtnl socket opened inside the namespace thread.
"""
from __future__ import annotations

import errno
import os

import pytest

from cni_rdma import ipaddr, sysctl
from cni_rdma.netlink.errors import LinkNotFound, NetlinkError
from cni_rdma.netlink.routes import Nexthop, NlRoute
from cni_rdma.netlink.rtmsg import AF_INET, AF_INET6
from cni_rdma.netns import in_netns, open_netns
from tests.netlink_ops import RtnlForTests
from tests.topology import ip_json, sh


def nl_in(path: str, fn, *args, **kwargs):
    """Run fn(nl, ...) with an Rtnl socket opened inside the netns at path."""
    def inner():
        with RtnlForTests() as nl:
            return fn(nl, *args, **kwargs)
    return in_netns(path, inner)


def ip_link(ns: str, name: str) -> dict:
    return ip_json("-d", "link", "show", "dev", name, netns=ns)[0]


def idx(ns: str, name: str) -> int:
    return ip_link(ns, name)["ifindex"]


# ------------------------------------------------------------------ links: decode what ip created
def test_links_dump_matches_ip(node):
    sh("ip", "-n", node.name, "link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "private")
    sh("ip", "-n", node.name, "link", "set", "mv0", "mtu", "1400", "txqlen", "77")
    ours = {l.name: l for l in nl_in(node.path, lambda nl: nl.links())}
    theirs = ip_json("-d", "link", "show", netns=node.name)
    assert set(ours) == {l["ifname"] for l in theirs}
    for t in theirs:
        o = ours[t["ifname"]]
        assert o.index == t["ifindex"]
        assert o.mtu == t["mtu"]
        assert o.mac == t.get("address")
        assert o.up == ("UP" in t["flags"])
        assert o.operstate == t["operstate"].lower()
        assert o.txqlen == t["txqlen"]
        assert o.kind == t.get("linkinfo", {}).get("info_kind")
        assert o.min_mtu == t["min_mtu"] and o.max_mtu == t["max_mtu"]
    mv = ours["mv0"]
    assert mv.kind == "macvlan" and mv.mode == "private" and mv.link == ours["eth0"].index
    assert mv.txqlen == 77 and mv.mtu == 1400
    assert ours["eth0"].kind == "veth" and ours["eth0"].link == ours["peer0"].index


def test_link_get_by_name_and_index(node):
    eth0 = ip_link(node.name, "eth0")
    by_name = nl_in(node.path, lambda nl: nl.link_get(name="eth0"))
    by_index = nl_in(node.path, lambda nl: nl.link_get(index=eth0["ifindex"]))
    assert by_name == by_index
    assert by_name.name == "eth0" and by_name.mac == eth0["address"] and by_name.up
    assert nl_in(node.path, lambda nl: nl.link_index("eth0")) == eth0["ifindex"]


def test_link_not_found_is_enodev_naming_the_device(node):
    with pytest.raises(LinkNotFound) as ei:
        nl_in(node.path, lambda nl: nl.link_get(name="nope0"))
    assert ei.value.errno == errno.ENODEV
    assert "nope0" in str(ei.value) and "get link" in str(ei.value)
    with pytest.raises(LinkNotFound):
        nl_in(node.path, lambda nl: nl.link_get(index=99999))
    with pytest.raises(LinkNotFound) as ei:
        nl_in(node.path, lambda nl: nl.link_index("nope0"))
    assert str(ei.value) == "netlink: get link 'nope0' failed: No such device (ENODEV)"
    assert nl_in(node.path, lambda nl: nl.link_exists("nope0")) is False
    assert nl_in(node.path, lambda nl: nl.link_exists("eth0")) is True


def test_socket_lives_in_the_thread_netns(node, pod):
    """Opened inside in_netns, the socket sees that netns only; the host's links stay invisible."""
    node_names = {l.name for l in nl_in(node.path, lambda nl: nl.links())}
    pod_names = {l.name for l in nl_in(pod.path, lambda nl: nl.links())}
    assert node_names == {"lo", "eth0", "peer0"}
    assert pod_names == {"lo"}


# ------------------------------------------------------------------ macvlan
@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru", "source"])
def test_macvlan_modes(node, mode):
    parent = idx(node.name, "eth0")
    src = ["02:00:00:00:00:01", "02:00:00:00:00:02"] if mode == "source" else ()
    nl_in(node.path, lambda nl: nl.link_add_macvlan("mv1", parent, mode, source_macs=src))
    t = ip_link(node.name, "mv1")
    assert t["linkinfo"]["info_kind"] == "macvlan"
    assert t["linkinfo"]["info_data"]["mode"] == mode
    o = nl_in(node.path, lambda nl: nl.link_get(name="mv1"))
    assert (o.kind, o.mode, o.link) == ("macvlan", mode, parent)
    if mode == "source":
        assert sorted(o.source_macs) == src
        assert t["linkinfo"]["info_data"]["macaddr_count"] == 2


def test_macvlan_with_mac_mtu_txqlen_up(node):
    parent = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_add_macvlan("mv2", parent, mac="02:11:22:33:44:55", mtu=1280,
                                                     txqlen=10, up=True))
    t = ip_link(node.name, "mv2")
    assert t["address"] == "02:11:22:33:44:55" and t["mtu"] == 1280 and t["txqlen"] == 10
    assert "UP" in t["flags"]


def test_macvlan_created_directly_in_target_netns(node, pod):
    """IFLA_NET_NS_FD at creation: the parent is resolved in the socket's netns, the link lands in the pod."""
    parent = idx(node.name, "eth0")
    fd = open_netns(pod.path)
    try:
        nl_in(node.path, lambda nl: nl.link_add_macvlan("net1", parent, "bridge", mtu=1300, netns_fd=fd))
    finally:
        os.close(fd)
    assert "net1" not in {l["ifname"] for l in node.links()}
    t = pod.link("net1")
    assert t["linkinfo"]["info_data"]["mode"] == "bridge" and t["mtu"] == 1300
    o = nl_in(pod.path, lambda nl: nl.link_get(name="net1"))
    assert o.kind == "macvlan" and o.link == parent and o.link_netnsid is not None
    assert o.link_netnsid == t["link_netnsid"]


def test_macvlan_bad_parent_raises_with_device_and_errno(node):
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.link_add_macvlan("mv3", 99999))
    assert ei.value.errno in (errno.ENODEV, errno.EINVAL)
    assert "mv3" in str(ei.value) and "create macvlan" in str(ei.value)


def test_duplicate_create_is_eexist(node):
    parent = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_add_macvlan("mv4", parent))
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.link_add_macvlan("mv4", parent))
    assert ei.value.errno == errno.EEXIST


def test_extended_ack_text_is_carried(node):
    """An over-long name fails attribute validation; the kernel explains why in the extended ack."""
    parent = idx(node.name, "eth0")
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.link_add_macvlan("x" * 20, parent))
    assert ei.value.errno in (errno.EINVAL, errno.ERANGE)
    assert ei.value.ext_ack, "kernel sent no extended ack text"
    assert ei.value.ext_ack in str(ei.value)


def test_link_del(node):
    parent = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_add_macvlan("mv5", parent))
    i = idx(node.name, "mv5")
    nl_in(node.path, lambda nl: nl.link_del(i))
    assert "mv5" not in {l["ifname"] for l in node.links()}
    with pytest.raises(LinkNotFound):
        nl_in(node.path, lambda nl: nl.link_del(i))


# ------------------------------------------------------------------ veth and netns moves
def test_veth_pair_with_peer_in_other_netns(node, pod):
    fd = open_netns(pod.path)
    try:
        nl_in(node.path, lambda nl: nl.link_add_veth("vh0", "vp0", peer_netns_fd=fd, mtu=1450,
                                                      peer_mac="02:aa:bb:cc:dd:ee"))
    finally:
        os.close(fd)
    host = ip_link(node.name, "vh0")
    peer = pod.link("vp0")
    assert host["linkinfo"]["info_kind"] == "veth" and peer["linkinfo"]["info_kind"] == "veth"
    assert host["mtu"] == 1450 and peer["mtu"] == 1450 and peer["address"] == "02:aa:bb:cc:dd:ee"
    o = nl_in(pod.path, lambda nl: nl.link_get(name="vp0"))
    assert o.link == host["ifindex"] and o.link_netnsid is not None


def test_link_set_every_field(node):
    parent = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_add_macvlan("mv6", parent))
    i = idx(node.name, "mv6")
    nl_in(node.path, lambda nl: nl.link_set(i, mtu=1234, mac="02:01:02:03:04:05", txqlen=5, name="renamed6"))
    t = ip_link(node.name, "renamed6")
    assert (t["ifindex"], t["mtu"], t["address"], t["txqlen"]) == (i, 1234, "02:01:02:03:04:05", 5)
    assert "UP" not in t["flags"]
    nl_in(node.path, lambda nl: nl.link_set(i, up=True))
    assert "UP" in ip_link(node.name, "renamed6")["flags"]
    assert nl_in(node.path, lambda nl: nl.link_get(index=i)).up
    nl_in(node.path, lambda nl: nl.link_set(i, up=False))
    assert "UP" not in ip_link(node.name, "renamed6")["flags"]


def test_link_move_to_netns_with_rename_and_back(node, pod):
    parent = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_add_macvlan("tmp7", parent))
    i = idx(node.name, "tmp7")
    fd = open_netns(pod.path)
    try:
        nl_in(node.path, lambda nl: nl.link_set(i, netns_fd=fd, name="net1"))
    finally:
        os.close(fd)
    assert "tmp7" not in {l["ifname"] for l in node.links()}
    assert pod.link("net1")["linkinfo"]["info_kind"] == "macvlan"
    # and back, from inside the pod, to the node
    j = nl_in(pod.path, lambda nl: nl.link_get(name="net1")).index
    fd = open_netns(node.path)
    try:
        nl_in(pod.path, lambda nl: nl.link_set(j, netns_fd=fd, name="back7"))
    finally:
        os.close(fd)
    assert pod.link("net1") is None
    assert ip_link(node.name, "back7")["linkinfo"]["info_kind"] == "macvlan"


def test_altnames(node):
    i = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_altname_add(i, "uplink-with-a-long-name"))
    assert "uplink-with-a-long-name" in ip_link(node.name, "eth0").get("altnames", [])
    assert nl_in(node.path, lambda nl: nl.link_get(index=i)).altnames == ("uplink-with-a-long-name",)
    assert nl_in(node.path, lambda nl: nl.link_get(name="uplink-with-a-long-name")).index == i
    nl_in(node.path, lambda nl: nl.link_altname_del(i, "uplink-with-a-long-name"))
    assert nl_in(node.path, lambda nl: nl.link_get(index=i)).altnames == ()
    # and an altname added by ip is decoded
    sh("ip", "-n", node.name, "link", "property", "add", "dev", "eth0", "altname", "up0alt")
    assert nl_in(node.path, lambda nl: nl.link_get(index=i)).altnames == ("up0alt",)


def test_link_state_seen_by_pyroute2(node):
    """A second oracle: pyroute2, opened inside the same netns thread."""
    from pyroute2 import IPRoute

    parent = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_add_macvlan("mv8", parent, "vepa", mac="02:00:00:00:08:08", mtu=1400))

    def read():
        with IPRoute() as ipr:
            msg = ipr.link("get", ifname="mv8")[0]
            info = msg.get_attr("IFLA_LINKINFO")
            return (msg.get_attr("IFLA_ADDRESS"), msg.get_attr("IFLA_MTU"), info.get_attr("IFLA_INFO_KIND"),
                    info.get_attr("IFLA_INFO_DATA").get_attr("IFLA_MACVLAN_MODE"), msg.get_attr("IFLA_LINK"))

    mac, mtu, kind, mode, link = in_netns(node.path, read)
    assert (mac, mtu, kind, link) == ("02:00:00:00:08:08", 1400, "macvlan", parent)
    assert mode in ("vepa", 2)


# ------------------------------------------------------------------ addresses
def test_addresses_add_dump_del_v4_v6(node):
    i = idx(node.name, "eth0")
    v4 = ipaddr.ip_interface("10.9.8.7/22")
    v6 = ipaddr.ip_interface("2001:db8:1::7/64")

    def add(nl):
        nl.addr_add(i, v4)
        nl.addr_add(i, v6, nodad=True)
        return nl.addrs(index=i)

    ours = nl_in(node.path, add)
    theirs = ip_json("addr", "show", "dev", "eth0", netns=node.name)[0]["addr_info"]
    assert {a.address for a in ours} == {ipaddr.ip_interface(f"{t['local']}/{t['prefixlen']}") for t in theirs}
    t4 = next(t for t in theirs if t["local"] == "10.9.8.7")
    assert t4["broadcast"] == "10.9.11.255"
    t6 = next(t for t in theirs if t["local"] == "2001:db8:1::7")
    assert t6.get("nodad") is True
    a6 = next(a for a in ours if a.address == v6)
    assert not a6.tentative and a6.permanent
    assert {a.address for a in nl_in(node.path, lambda nl: nl.addrs(index=i, family=AF_INET))} == \
        {ipaddr.ip_interface("192.0.2.1/24"), v4}
    nl_in(node.path, lambda nl: (nl.addr_del(i, v4), nl.addr_del(i, v6)))
    left = {t["local"] for t in ip_json("addr", "show", "dev", "eth0", netns=node.name)[0]["addr_info"]}
    assert "10.9.8.7" not in left and "2001:db8:1::7" not in left
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.addr_del(i, v4))
    assert ei.value.errno == errno.EADDRNOTAVAIL


def test_addresses_added_by_ip_are_decoded(node):
    sh("ip", "-n", node.name, "addr", "add", "198.51.100.9/25", "dev", "eth0", "label", "eth0:x")
    sh("ip", "-n", node.name, "-6", "addr", "add", "2001:db8::9/80", "dev", "eth0", "nodad")
    i = idx(node.name, "eth0")
    got = {a.address: a for a in nl_in(node.path, lambda nl: nl.addrs(index=i))}
    a4 = got[ipaddr.ip_interface("198.51.100.9/25")]
    assert a4.label == "eth0:x" and a4.scope == 0
    a6 = got[ipaddr.ip_interface("2001:db8::9/80")]
    assert a6.flags & 0x02  # IFA_F_NODAD


def test_duplicate_address_detection_flags(node):
    """DAD really runs between the two veth ends: a duplicate comes back dadfailed, a fresh one settles."""
    sh("ip", "-n", node.name, "-6", "addr", "add", "2001:db8:d::1/64", "dev", "peer0", "nodad")
    i = idx(node.name, "eth0")

    def add_fresh(nl):
        nl.addr_add(i, "2001:db8:d::2/64")
        first = {str(a.address.ip): a for a in nl.addrs(index=i, family=AF_INET6)}
        nl.wait_dad(i, timeout=10)
        return first

    first = nl_in(node.path, add_fresh)
    assert first["2001:db8:d::2"].tentative  # DAD takes about a second: read right after the add
    nl_in(node.path, lambda nl: nl.addr_add(i, "2001:db8:d::1/64"))
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.wait_dad(i, timeout=10))
    assert ei.value.errno == errno.EADDRNOTAVAIL and "2001:db8:d::1" in str(ei.value)
    after = {str(a.address.ip): a for a in nl_in(node.path, lambda nl: nl.addrs(index=i, family=AF_INET6))}
    assert after["2001:db8:d::1"].dadfailed
    assert not after["2001:db8:d::2"].tentative and not after["2001:db8:d::2"].dadfailed
    theirs = {t["local"]: t for t in ip_json("-6", "addr", "show", "dev", "eth0", netns=node.name)[0]["addr_info"]}
    assert theirs["2001:db8:d::1"].get("dadfailed") is True and theirs["2001:db8:d::1"].get("tentative") is True


def test_wait_dad_returns_once_settled(node):
    i = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: (nl.addr_add(i, "2001:db8:e::5/64"), nl.wait_dad(i, timeout=10)))
    t = {t["local"]: t for t in ip_json("-6", "addr", "show", "dev", "eth0", netns=node.name)[0]["addr_info"]}
    assert "tentative" not in t["2001:db8:e::5"]


# ------------------------------------------------------------------ routes
def _ip_routes(ns: str, family: str = "-4", table: str = "main"):
    return ip_json(family, "-d", "route", "show", "table", table, netns=ns)


def _metrics(t: dict) -> dict:
    out = {}
    for m in t.get("metrics", []):
        out.update(m)
    return out


def test_route_default_and_prefix_v4(node):
    i = idx(node.name, "eth0")
    sh("ip", "-n", node.name, "route", "del", "default")
    net = ipaddr.ip_network

    def add(nl):
        nl.route_add(NlRoute(dst=net("0.0.0.0/0"), gateway=ipaddr.ip_address("192.0.2.254"), oif=i))
        nl.route_add(NlRoute(dst=net("10.20.0.0/16"), gateway=ipaddr.ip_address("192.0.2.253"), oif=i,
                           priority=50, mtu=1300, advmss=1260))
        nl.route_add(NlRoute(dst=net("10.30.0.0/24"), oif=i, src=ipaddr.ip_address("192.0.2.1")))
        nl.route_add(NlRoute(dst=net("10.40.0.0/24"), gateway=ipaddr.ip_address("203.0.113.1"), oif=i,
                           onlink=True))
        return nl.routes(family=AF_INET, table=254)

    ours = {str(r.dst): r for r in nl_in(node.path, add)}
    theirs = {t["dst"]: t for t in _ip_routes(node.name)}
    assert theirs["default"]["gateway"] == "192.0.2.254" and theirs["default"]["dev"] == "eth0"
    t = theirs["10.20.0.0/16"]
    assert t["metric"] == 50 and t["gateway"] == "192.0.2.253"
    assert _metrics(t) == {"mtu": 1300, "advmss": 1260}
    assert theirs["10.30.0.0/24"]["scope"] == "link" and theirs["10.30.0.0/24"]["prefsrc"] == "192.0.2.1"
    assert "onlink" in theirs["10.40.0.0/24"]["flags"]
    r = ours["10.20.0.0/16"]
    assert (r.priority, r.mtu, r.advmss, str(r.gateway), r.oif) == (50, 1300, 1260, "192.0.2.253", i)
    assert ours["0.0.0.0/0"].is_default and ours["10.40.0.0/24"].onlink
    assert ours["10.30.0.0/24"].scope == 253 and str(ours["10.30.0.0/24"].src) == "192.0.2.1"
    nl_in(node.path, lambda nl: nl.route_del(NlRoute(dst=net("10.20.0.0/16"), gateway=ipaddr.ip_address(
        "192.0.2.253"), oif=i, priority=50)))
    assert "10.20.0.0/16" not in {t["dst"] for t in _ip_routes(node.name)}
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.route_del(NlRoute(dst=net("10.20.0.0/16"))))
    assert ei.value.errno == errno.ESRCH and "10.20.0.0/16" in str(ei.value)


def test_route_v6_table_and_metric(node):
    i = idx(node.name, "eth0")
    sh("ip", "-n", node.name, "-6", "addr", "add", "2001:db8:5::1/64", "dev", "eth0", "nodad")

    def add(nl):
        nl.route_add(NlRoute(dst=ipaddr.ip_network("::/0"), gateway=ipaddr.ip_address("2001:db8:5::fe"),
                           oif=i, table=100, priority=300))
        nl.route_add(NlRoute(dst=ipaddr.ip_network("2001:db8:77::/48"), oif=i, mtu=1400))
        return nl.routes(family=AF_INET6, table=100)

    ours = nl_in(node.path, add)
    assert len(ours) == 1 and ours[0].table == 100 and ours[0].priority == 300
    theirs = _ip_routes(node.name, "-6", "100")
    assert theirs[0]["dst"] == "default" and theirs[0]["gateway"] == "2001:db8:5::fe" and theirs[0]["metric"] == 300
    main = {t["dst"]: t for t in _ip_routes(node.name, "-6")}
    assert _metrics(main["2001:db8:77::/48"])["mtu"] == 1400
    # a table that does not exist is just empty
    assert nl_in(node.path, lambda nl: nl.routes(family=AF_INET, table=4321)) == []


def test_route_multipath_v4_and_v6(node):
    i = idx(node.name, "eth0")
    j = idx(node.name, "peer0")
    sh("ip", "-n", node.name, "addr", "add", "198.51.100.1/24", "dev", "peer0")
    sh("ip", "-n", node.name, "-6", "addr", "add", "2001:db8:6::1/64", "dev", "eth0", "nodad")
    sh("ip", "-n", node.name, "-6", "addr", "add", "2001:db8:7::1/64", "dev", "peer0", "nodad")
    ip = ipaddr.ip_address
    r4 = NlRoute(dst=ipaddr.ip_network("10.50.0.0/16"),
               multipath=(Nexthop(gateway=ip("192.0.2.10"), oif=i, weight=1),
                          Nexthop(gateway=ip("198.51.100.10"), oif=j, weight=3)))
    r6 = NlRoute(dst=ipaddr.ip_network("2001:db8:99::/48"),
               multipath=(Nexthop(gateway=ip("2001:db8:6::10"), oif=i, weight=2),
                          Nexthop(gateway=ip("2001:db8:7::10"), oif=j, weight=1)))

    def add(nl):
        nl.route_add(r4)
        nl.route_add(r6)
        return [r for r in nl.routes(table=254) if str(r.dst) in ("10.50.0.0/16", "2001:db8:99::/48")]

    ours = {str(r.dst): r for r in nl_in(node.path, add)}
    for mine, text, fam in ((r4, "10.50.0.0/16", "-4"), (r6, "2001:db8:99::/48", "-6")):
        got = ours[text]
        assert [(h.gateway, h.oif, h.weight) for h in got.multipath] == \
            [(h.gateway, h.oif, h.weight) for h in mine.multipath]
        t = next(t for t in _ip_routes(node.name, fam) if t["dst"] == text)
        assert [(n["gateway"], n["dev"], n.get("weight", 1)) for n in t["nexthops"]] == \
            [(str(h.gateway), "eth0" if h.oif == i else "peer0", h.weight) for h in mine.multipath]
    nl_in(node.path, lambda nl: (nl.route_del(r4), nl.route_del(r6)))
    assert not [t for t in _ip_routes(node.name) if t["dst"] == "10.50.0.0/16"]


def test_routes_added_by_ip_are_decoded(node):
    sh("ip", "-n", node.name, "route", "add", "10.60.0.0/16", "via", "192.0.2.9", "dev", "eth0", "metric", "7",
       "mtu", "lock", "1350", "advmss", "1300", "table", "1000", "proto", "static")
    sh("ip", "-n", node.name, "route", "add", "10.61.0.0/16", "dev", "eth0", "scope", "link")
    i = idx(node.name, "eth0")
    r = nl_in(node.path, lambda nl: nl.routes(table=1000))
    assert len(r) == 1
    r = r[0]
    assert (str(r.dst), str(r.gateway), r.oif, r.priority, r.mtu, r.advmss, r.table, r.proto) == \
        ("10.60.0.0/16", "192.0.2.9", i, 7, 1350, 1300, 1000, 4)
    r2 = next(x for x in nl_in(node.path, lambda nl: nl.routes(family=AF_INET)) if str(x.dst) == "10.61.0.0/16")
    assert r2.scope == 253 and r2.gateway is None and r2.table == 254


def test_route_to_unreachable_gateway_has_ext_ack(node):
    i = idx(node.name, "eth0")
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.route_add(NlRoute(dst=ipaddr.ip_network("10.70.0.0/16"),
                                                       gateway=ipaddr.ip_address("203.0.113.9"), oif=i)))
    assert ei.value.errno == errno.ENETUNREACH
    assert ei.value.ext_ack  # "Nexthop has invalid gateway"
    assert "10.70.0.0/16 via 203.0.113.9" in str(ei.value)


# ------------------------------------------------------------------ sysctl inside a netns
def test_sysctl_inside_netns(pod):
    assert in_netns(pod.path, sysctl.get, "net/ipv4/conf/lo/arp_notify") == "0"
    in_netns(pod.path, sysctl.set, "net/ipv4/conf/lo/arp_notify", "1")
    assert sh("sysctl", "-n", "net.ipv4.conf.lo.arp_notify", netns=pod.name).strip() == "1"
    # the host's value is untouched
    assert sysctl.get("net/ipv4/conf/lo/arp_notify") == open("/proc/sys/net/ipv4/conf/lo/arp_notify").read().strip()
    assert in_netns(pod.path, sysctl.get, "net.ipv6.conf.lo.disable_ipv6") in ("0", "1")


def test_macvlan_bcqueuelen(node):
    parent = idx(node.name, "eth0")
    nl_in(node.path, lambda nl: nl.link_add_macvlan("mv9", parent, bcqueuelen=2000))
    data = ip_link(node.name, "mv9")["linkinfo"]["info_data"]
    assert data["bcqueuelen"] == 2000
    assert nl_in(node.path, lambda nl: nl.link_get(name="mv9")).bcqueuelen == 2000


def test_route_append_beside_another_interface_and_replace(node):
    """append= (NLM_F_APPEND) keeps an equal route of another interface; replace= overwrites."""
    i, j = idx(node.name, "eth0"), idx(node.name, "peer0")
    sh("ip", "-n", node.name, "-6", "addr", "add", "2001:db8:a::1/64", "dev", "eth0", "nodad")
    sh("ip", "-n", node.name, "-6", "addr", "add", "2001:db8:b::1/64", "dev", "peer0", "nodad")
    dst = ipaddr.ip_network("2001:db8:cc::/48")
    r1 = NlRoute(dst=dst, gateway=ipaddr.ip_address("2001:db8:a::fe"), oif=i)
    r2 = NlRoute(dst=dst, gateway=ipaddr.ip_address("2001:db8:b::fe"), oif=j)
    nl_in(node.path, lambda nl: (nl.route_add(r1), nl.route_add(r2, append=True)))
    t = [x for x in _ip_routes(node.name, "-6") if x["dst"] == "2001:db8:cc::/48"]
    hops = t[0].get("nexthops") or [{"gateway": x["gateway"]} for x in t]
    assert {h["gateway"] for h in hops} == {"2001:db8:a::fe", "2001:db8:b::fe"}
    with pytest.raises(NetlinkError) as ei:
        nl_in(node.path, lambda nl: nl.route_add(r1))
    assert ei.value.errno == errno.EEXIST
    v4 = NlRoute(dst=ipaddr.ip_network("10.80.0.0/16"), gateway=ipaddr.ip_address("192.0.2.7"), oif=i)
    nl_in(node.path, lambda nl: (nl.route_add(v4), nl.route_add(v4.replace(gateway=ipaddr.ip_address(
        "192.0.2.8")), replace=True)))
    got = [x for x in _ip_routes(node.name) if x["dst"] == "10.80.0.0/16"]
    assert [x["gateway"] for x in got] == ["192.0.2.8"]
