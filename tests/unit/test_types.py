"""Result conversion across every version (SPEC.md section 5 "Result Types" and each version's own spec)."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from cni_rdma import ipaddr
from cni_rdma.errors import CniError
from cni_rdma.types import DNS, Interface, IPConfig, NetConf, Result, Route

V1 = ("1.0.0", "1.1.0")
V04 = ("0.3.0", "0.3.1", "0.4.0")
LEGACY = ("0.1.0", "0.2.0")

ipv4 = st.builds(lambda a, p: ipaddr.IPInterface(ipaddr.IPAddress(4, a), p),
                 st.integers(1, 2**32 - 2), st.integers(1, 32))
ipv6 = st.builds(lambda a, p: ipaddr.IPInterface(ipaddr.IPAddress(6, a), p),
                 st.integers(1, 2**128 - 2), st.integers(1, 128))
addr = st.one_of(ipv4, ipv6)
names = st.text("abcdefghij0123456789-_.", min_size=1, max_size=15)
macs = st.builds(lambda b: ":".join(f"{x:02x}" for x in b), st.binary(min_size=6, max_size=6))
small = st.integers(0, 65535)


@st.composite
def results(draw, version="1.1.0", legacy_ok=False):
    full = version == "1.1.0"
    ifaces = tuple(draw(st.lists(st.builds(
        Interface, name=names, mac=macs, sandbox=st.sampled_from(["", "/var/run/netns/p"]),
        mtu=small if full else st.just(0),
        socket_path=st.sampled_from(["", "/run/x.sock"]) if full else st.just(""),
        pci_id=st.sampled_from(["", "0000:3b:00.2"]) if full else st.just("")), max_size=3)))
    ips = tuple(draw(st.lists(st.builds(
        IPConfig, address=addr, gateway=st.none(),
        interface=st.none() if not ifaces else st.integers(0, len(ifaces) - 1)), max_size=4)))
    ips = tuple(IPConfig(ip.address, ip.address.ip + 1 if ip.address.network.num_addresses > 2 else None, ip.interface)
                for ip in ips)
    routes = tuple(draw(st.lists(st.builds(
        lambda a, mtu, adv, prio, table, scope: Route(a.network, None, mtu, adv, prio, table, scope),
        addr, small if full else st.just(0), small if full else st.just(0), small if full else st.just(0),
        st.none() | small if full else st.none(), st.none() | st.integers(0, 255) if full else st.none()), max_size=3)))
    dns = draw(st.builds(DNS, nameservers=st.lists(st.sampled_from(["10.0.0.10", "fd00::a"]), max_size=2).map(tuple),
                         domain=st.sampled_from(["", "cluster.local"]),
                         search=st.lists(st.sampled_from(["a.svc", "b.svc"]), max_size=2).map(tuple),
                         options=st.lists(st.sampled_from(["ndots:5"]), max_size=1).map(tuple)))
    return Result(version, ifaces, ips, routes, dns)


@settings(max_examples=400)
@given(st.sampled_from(V1 + V04).flatmap(lambda v: results(v)))
def test_round_trip_same_version(r):
    """A result printed in its own version and parsed back is identical (lossless)."""
    printed = json.loads(json.dumps(r.to_json()))
    assert Result.from_json(printed) == r


@settings(max_examples=400)
@given(results("1.0.0"), st.sampled_from(V1 + V04))
def test_round_trip_between_rich_versions(r, v):
    """1.0.0 <-> 0.3.x/0.4.0: only the `version` field of ips differs; nothing is lost."""
    again = Result.from_json(json.loads(json.dumps(r.to_json(v))))
    assert again.with_version(r.cni_version) == r
    for ip, printed in zip(r.ips, r.to_json(v).get("ips", [])):
        assert ("version" in printed) == (v in V04)
        if v in V04:
            assert printed["version"] == str(ip.address.version)


@settings(max_examples=300)
@given(results("1.1.0"), st.sampled_from(LEGACY))
def test_legacy_keeps_first_address_of_each_family(r, v):
    """0.1.0/0.2.0 hold one IPv4 and one IPv6 config; Go converts the first of each, or fails without any."""
    if not r.ips:
        with pytest.raises(CniError) as e:
            r.to_json(v)
        assert e.value.code == 999 and e.value.msg == "cannot convert: no valid IP addresses"
        return
    out = r.to_json(v)
    first4 = next((ip for ip in r.ips if ip.address.version == 4), None)
    first6 = next((ip for ip in r.ips if ip.address.version == 6), None)
    assert ("ip4" in out) == (first4 is not None) and ("ip6" in out) == (first6 is not None)
    back = Result.from_json(json.loads(json.dumps(out)))
    assert [ip.address for ip in back.ips] == [ip.address for ip in (first4, first6) if ip]
    for fam, first in ((4, first4), (6, first6)):
        expected = [rt.dst for rt in r.routes if rt.dst.version == fam] if first else []
        assert [rt.dst for rt in back.routes if rt.dst.version == fam] == expected


def test_1_1_0_fields_only_in_1_1_0():
    r = Result("1.1.0", (Interface("net1", "aa:bb:cc:dd:ee:ff", 9000, "/ns", "/s.sock", "0000:01:00.1"),), (),
               (Route(ipaddr.ip_network("0.0.0.0/0"), ipaddr.ip_address("10.0.0.1"), 1400, 1360, 10, 100, 0),))
    full = r.to_json("1.1.0")
    assert full["interfaces"][0] == {"name": "net1", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 9000, "sandbox": "/ns",
                                     "socketPath": "/s.sock", "pciID": "0000:01:00.1"}
    assert full["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400, "advmss": 1360,
                                 "priority": 10, "table": 100, "scope": 0}
    old = r.to_json("1.0.0")
    assert old["interfaces"][0] == {"name": "net1", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/ns"}
    assert old["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.0.0.1"}


def test_go_shaped_0_2_0_result_parses():
    go = {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.2.3/24", "gateway": "10.1.2.1",
                                         "routes": [{"dst": "0.0.0.0/0"}]}, "dns": {}}
    r = Result.from_json(go)
    assert r.ips[0].address == ipaddr.ip_interface("10.1.2.3/24") and r.routes[0].dst.prefixlen == 0
    assert r.to_json("0.2.0") == go


def test_dns_always_printed_like_go():
    assert Result("1.0.0").to_json()["dns"] == {}


@pytest.mark.parametrize("bad", [
    {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]},  # no prefix
    {"cniVersion": "1.0.0", "ips": "x"},
    {"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.1/24"}]},
    {"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]},
    {"cniVersion": "1.0.0", "interfaces": [{"name": 5}]},
    {"cniVersion": "7.0.0"},
    [],
])
def test_malformed_results_are_clean_errors(bad):
    with pytest.raises(CniError) as e:
        Result.from_json(bad)
    assert e.value.code in (1, 6)


def test_netconf_common_keys():
    c = NetConf.from_json({"cniVersion": "1.0.0", "name": "n", "type": "macvlan", "ipam": {"type": "host-local"},
                           "runtimeConfig": {"mac": "x"}, "args": {"cni": {"ips": ["10.0.0.5"]}},
                           "dns": {"nameservers": ["1.1.1.1"]}})
    assert c.ipam_type == "host-local" and c.runtime_config == {"mac": "x"}
    assert c.dns.nameservers == ("1.1.1.1",) and c.args["cni"]["ips"] == ["10.0.0.5"]
