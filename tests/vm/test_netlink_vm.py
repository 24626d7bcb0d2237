"""VM tier for the lean netlink layer: what this host kernel lacks (ipvlan, vlan, dummy, netdevsim VFs, rxe).

Each write goes through cni_rdma.netlink and is read back with iproute2 (`ip -j -d`, `rdma -j`,
`rdma system`); each read is compared with what iproute2 created or reports. Kept few: Python is
slow under TCG.
"""
from __future__ import annotations

import errno
import os
import time

import pytest

from cni_rdma.netlink.errors import NetlinkError
from tests.netlink_ops import RdmaForTests as Rdma
from tests.netlink_ops import RtnlForTests as Rtnl
from cni_rdma.netns import in_netns, open_netns
from tests import topology
from tests.vm import guest


def nl_in(path: str | None, fn, *args):
    """fn(nl, *args) with an Rtnl socket opened in the netns at path (None: the guest's initial netns)."""
    def inner():
        with Rtnl() as nl:
            return fn(nl, *args)
    return in_netns(path, inner) if path else inner()


def rdma_in(path: str | None, fn, *args):
    def inner():
        with Rdma() as nl:
            return fn(nl, *args)
    return in_netns(path, inner) if path else inner()


def ifindex(name: str, ns: str | None = None) -> int:
    return guest.link(name, ns)["ifindex"]


# ------------------------------------------------------------------ ipvlan, vlan, dummy
IPVLAN_CASES = [(m, f) for m in ("l2", "l3", "l3s") for f in ("bridge", "private", "vepa")]


def test_ipvlan_modes_and_flags_created_by_us(dummy_master):
    """Mode and flags belong to the master's ipvlan port (shared by its ipvlans): one link at a time."""
    guest.modprobe("ipvlan")
    ns, path = dummy_master.name, dummy_master.path
    parent = ifindex("dummy0", ns)

    def create_read_delete(nl, mode, flag):
        nl.link_add_ipvlan("iv0", parent, mode, flag)
        link = nl.link_get(name="iv0")
        data = guest.link("iv0", ns)["linkinfo"]["info_data"]
        nl.link_del(link.index)
        return link, data

    for mode, flag in IPVLAN_CASES:
        ours, data = nl_in(path, create_read_delete, mode, flag)
        assert data["mode"] == mode, (mode, flag, data)
        assert data.get(flag) is True, (mode, flag, data)  # iproute2 prints the flag as a boolean key
        assert (ours.kind, ours.mode, ours.flag, ours.link) == ("ipvlan", mode, flag, parent)


def test_ipvlan_created_by_ip_decoded_and_created_in_pod(dummy_master, pod):
    guest.modprobe("ipvlan")
    ns = dummy_master.name
    guest.ip("link", "add", "ivx", "link", "dummy0", "type", "ipvlan", "mode", "l3s", "private", netns=ns)
    got = nl_in(dummy_master.path, lambda nl: nl.link_get(name="ivx"))
    assert (got.kind, got.mode, got.flag, got.link) == ("ipvlan", "l3s", "private", ifindex("dummy0", ns))
    # straight into the pod netns, parent looked up in the node netns
    fd = open_netns(pod.path)
    try:
        nl_in(dummy_master.path, lambda nl: nl.link_add_ipvlan("net1", ifindex("dummy0", ns), "l2", "vepa",
                                                                mtu=1400, netns_fd=fd))
    finally:
        os.close(fd)
    data = pod.link("net1")
    assert data["linkinfo"]["info_data"]["mode"] == "l2" and data["linkinfo"]["info_data"].get("vepa") is True
    assert data["mtu"] == 1400


@pytest.mark.parametrize("proto", ["802.1Q", "802.1ad"])
def test_vlan_protocols(dummy_master, proto):
    guest.modprobe("8021q")
    ns = dummy_master.name
    parent = ifindex("dummy0", ns)
    nl_in(dummy_master.path, lambda nl: nl.link_add_vlan("vl7", parent, 7, proto, mtu=1400))
    data = guest.link("vl7", ns)
    assert data["linkinfo"]["info_kind"] == "vlan"
    assert data["linkinfo"]["info_data"]["id"] == 7 and data["linkinfo"]["info_data"]["protocol"] == proto
    assert data["mtu"] == 1400
    # and the reverse: made by ip, decoded by us
    guest.ip("link", "add", "link", "dummy0", "name", "vl9", "type", "vlan", "proto", proto, "id", "9", netns=ns)
    got = nl_in(dummy_master.path, lambda nl: nl.link_get(name="vl9"))
    assert (got.kind, got.vlan_id, got.vlan_proto, got.link) == ("vlan", 9, proto, parent)


def test_dummy_create_and_delete(pod):
    guest.modprobe("dummy")
    nl_in(pod.path, lambda nl: nl.link_add_dummy("dm0", mtu=9000, mac="02:00:00:00:d0:01"))
    data = pod.link("dm0")
    assert data["linkinfo"]["info_kind"] == "dummy" and data["mtu"] == 9000 and data["address"] == "02:00:00:00:d0:01"
    nl_in(pod.path, lambda nl: nl.link_del(nl.link_get(name="dm0").index))
    assert pod.link("dm0") is None


# ------------------------------------------------------------------ SR-IOV VF config on a netdevsim PF
def test_vf_set_every_field_read_back_by_ip(netdevsim_pf):
    pf = netdevsim_pf(numvfs=4)
    i = pf.ifindex

    def configure(nl):
        nl.vf_set(i, 0, mac="02:00:00:00:0f:00", vlan=10, qos=3, spoofchk=True, trust=True, link_state="enable",
                  min_tx_rate=0, max_tx_rate=1000)
        nl.vf_set(i, 1, mac="02:00:00:00:0f:01", vlan=20, qos=2, vlan_proto="802.1ad", spoofchk=False,
                  trust=False, link_state="disable", min_tx_rate=100, max_tx_rate=500)
        nl.vf_set(i, 2, link_state="auto", max_tx_rate=300)  # only max: min kept from the current value
        return nl.vfs(i)

    ours = {v.vf: v for v in nl_in(None, configure)}
    theirs = {v["vf"]: v for v in pf.vfs()}
    v0, v1, v2 = theirs[0], theirs[1], theirs[2]
    assert v0["address"] == "02:00:00:00:0f:00"
    assert v0["vlan_list"] == [{"vlan": 10, "qos": 3}]
    assert (v0["spoofchk"], v0["trust"], v0["link_state"]) == (True, True, "enable")
    assert v0["rate"] == {"min_tx": 0, "max_tx": 1000}
    assert v1["address"] == "02:00:00:00:0f:01"
    assert v1["vlan_list"] == [{"vlan": 20, "qos": 2, "protocol": "802.1ad"}]
    assert (v1["spoofchk"], v1["trust"], v1["link_state"]) == (False, False, "disable")
    assert v1["rate"] == {"min_tx": 100, "max_tx": 500}
    assert (v2["link_state"], v2["rate"]) == ("auto", {"min_tx": 0, "max_tx": 300})
    for n, t in theirs.items():  # and our read-back agrees with ip's on every VF, every field
        o = ours[n]
        vl = t["vlan_list"][0] if t.get("vlan_list") else {}
        assert (o.mac, o.vlan, o.qos, o.vlan_proto) == \
            (t["address"], vl.get("vlan", 0), vl.get("qos", 0), vl.get("protocol", "802.1Q"))
        assert (o.spoofchk, o.trust, o.link_state) == (t.get("spoofchk"), t.get("trust"), t["link_state"])
        assert (o.min_tx_rate, o.max_tx_rate) == (t["rate"]["min_tx"], t["rate"]["max_tx"])
        assert o.rss_query_en == t["query_rss_en"]


def test_vf_config_made_by_ip_decoded(netdevsim_pf, make_pod):
    node = make_pod()
    pf = netdevsim_pf(numvfs=2, netns=node.name)  # a PF in a named netns: socket opened there
    pf.set_vf(1, "mac", "02:00:00:00:0e:01", "vlan", "33", "qos", "5", "proto", "802.1ad", "trust", "on",
              "spoofchk", "off", "state", "disable", "min_tx_rate", "10", "max_tx_rate", "50")
    ours = nl_in(node.path, lambda nl: nl.vfs(nl.link_get(name=pf.ifname).index))
    assert [v.vf for v in ours] == [0, 1]
    v = ours[1]
    assert (v.mac, v.vlan, v.qos, v.vlan_proto) == ("02:00:00:00:0e:01", 33, 5, "802.1ad")
    assert (v.trust, v.spoofchk, v.link_state, v.min_tx_rate, v.max_tx_rate) == (True, False, "disable", 10, 50)
    assert nl_in(node.path, lambda nl: nl.pf_get(name=pf.ifname)[0].num_vf) == 2
    assert nl_in(node.path, lambda nl: nl.link_get(name=pf.ifname).num_vf) is None  # no VF table asked


def test_vf_errors_name_the_vf(netdevsim_pf):
    pf = netdevsim_pf(numvfs=1)
    with pytest.raises(NetlinkError) as ei:
        nl_in(None, lambda nl: nl.vf_set(pf.ifindex, 0, vlan=5000))
    assert ei.value.errno == errno.EINVAL and "vf 0" in str(ei.value)


# ------------------------------------------------------------------ RDMA netlink on rxe
def _guid(g: int) -> str:
    return ":".join(f"{(g >> s) & 0xFFFF:04x}" for s in (48, 32, 16, 0))


def test_rdma_devices_and_ports_match_rdma_tool(rxe_device):
    devs = {d.name: d for d in rdma_in(None, lambda nl: nl.devices())}
    theirs = {d["ifname"]: d for d in guest.rdma_devs()}
    assert set(devs) == set(theirs)
    d = devs[rxe_device.name]
    t = theirs[rxe_device.name]
    assert d.index == t["ifindex"] and _guid(d.node_guid) == t["node_guid"]
    assert d.node_type == t["node_type"] and d.protocol == "roce"
    ports = rdma_in(None, lambda nl: nl.ports(d.index))
    links = [link for link in guest.rdma_links() if link["ifname"] == rxe_device.name]
    assert [(p.port, p.netdev, p.netdev_index) for p in ports] == \
        [(link["port"], link["netdev"], link["netdev_index"]) for link in links]
    assert [p.state for p in ports] == [link["state"].lower() for link in links]
    assert rdma_in(None, lambda nl: nl.device(index=d.index)) == d


def test_rdma_soft_device_add_and_delete_by_us(rdma_exclusive):
    guest.load_rxe("patched")
    nd = guest.dummy_add()
    try:
        rdma_in(None, lambda nl: nl.link_add("rxeours", "rxe", nd))
        link = next(link for link in guest.rdma_links() if link["ifname"] == "rxeours")
        assert link["netdev"] == nd
        idx = rdma_in(None, lambda nl: nl.device(name="rxeours").index)
        rdma_in(None, lambda nl: nl.link_del(idx))
        assert "rxeours" not in guest.rdma_dev_names()
    finally:
        guest.link_del(nd)


def test_rdma_move_to_pod_and_back(rxe_device, pod):
    idx = rdma_in(None, lambda nl: nl.device(name=rxe_device.name).index)
    fd = open_netns(pod.path)
    try:
        rdma_in(None, lambda nl: nl.set_netns(idx, fd))
    finally:
        os.close(fd)
    assert rxe_device.name in guest.rdma_dev_names(pod.name)
    assert rxe_device.name not in guest.rdma_dev_names()
    # from inside the pod, back to the initial netns
    host_fd = os.open(f"/proc/{os.getpid()}/ns/net", os.O_RDONLY)
    try:
        def give_back(nl):
            nl.set_netns(nl.device(name=rxe_device.name).index, host_fd)
        rdma_in(pod.path, give_back)
    finally:
        os.close(host_fd)
    assert rxe_device.name in guest.rdma_dev_names()


def test_rdma_netns_mode_get_and_set():
    guest.modprobe("ib_core")
    assert rdma_in(None, lambda nl: nl.netns_mode()) == guest.rdma_netns_mode()
    start = guest.rdma_netns_mode()
    other = "shared" if start == "exclusive" else "exclusive"

    def set_mode(mode):
        # the kernel refuses while any other netns exists, and netns teardown is asynchronous
        deadline = time.monotonic() + 30
        while True:
            try:
                return rdma_in(None, lambda nl: nl.set_netns_mode(mode))
            except NetlinkError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    set_mode(other)
    try:
        assert guest.rdma_netns_mode() == other
        assert rdma_in(None, lambda nl: nl.netns_mode()) == other
    finally:
        set_mode(start)
    assert guest.rdma_netns_mode() == start
    # while a pod netns exists, the kernel refuses with EBUSY
    p = topology.make_pod()
    try:
        with pytest.raises(NetlinkError) as ei:
            rdma_in(None, lambda nl: nl.set_netns_mode(other))
        assert ei.value.errno == errno.EBUSY
    finally:
        topology.netns_del(p.name)
