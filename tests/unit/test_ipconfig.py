"""ipconfig's pure parts: which IPs belong to an interface, gateways per family, the route plan (ECMP)."""
from __future__ import annotations

import pytest

from cni_rdma import confkeys, ipconfig
from cni_rdma.errors import CniError
from cni_rdma.ipaddr import ip_address as ip
from cni_rdma.netlink.routes import RT_TABLE_MAIN
from cni_rdma.types import Result


def result(d: dict) -> Result:
    return Result.from_json({"cniVersion": "1.1.0", **d})


R = result({
    "interfaces": [{"name": "net1"}, {"name": "other"}],
    "ips": [{"address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 0},
            {"address": "10.0.0.6/24", "gateway": "10.0.0.254", "interface": 0},
            {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 0},
            {"address": "192.168.0.5/24", "interface": 1},
            {"address": "172.16.0.5/24"}],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"},
               {"dst": "198.51.100.0/24", "gw": "10.0.0.7"}, {"dst": "198.51.100.0/24", "gw": "10.0.0.8"},
               {"dst": "203.0.113.0/24", "gw": "10.0.0.9", "table": 100, "priority": 5, "mtu": 1400}],
})


def test_ips_for_picks_by_interface_index():
    got = [str(x.address) for x in ipconfig.ips_for("net1", R)]
    assert got == ["10.0.0.5/24", "10.0.0.6/24", "fd00::5/64"]
    assert [str(x.address) for x in ipconfig.ips_for("other", R)] == ["192.168.0.5/24"]


def test_ips_for_rejects_an_index_naming_another_interface():
    bad = result({"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.5/24", "interface": 3}]})
    with pytest.raises(CniError) as e:
        ipconfig.ips_for("eth0", bad)
    assert "invalid interface index" in e.value.msg


def test_first_gateway_per_family():
    gws = ipconfig.gateways(ipconfig.ips_for("net1", R))
    assert gws == {4: ip("10.0.0.1"), 6: ip("fd00::1")}


def test_route_plan_default_per_family_ecmp_and_1_1_0_fields():
    plan = {(str(r.dst), r.table): r for r in ipconfig.planned_routes(7, R, ipconfig.ips_for("net1", R))}
    assert plan[("0.0.0.0/0", RT_TABLE_MAIN)].gateway == ip("10.0.0.1")
    assert plan[("::/0", RT_TABLE_MAIN)].gateway == ip("fd00::1")
    ecmp = plan[("198.51.100.0/24", RT_TABLE_MAIN)]
    assert ecmp.gateway is None and [(h.gateway, h.oif) for h in ecmp.multipath] == [(ip("10.0.0.7"), 7),
                                                                                      (ip("10.0.0.8"), 7)]
    t = plan[("203.0.113.0/24", 100)]
    assert (t.gateway, t.priority, t.mtu, t.oif) == (ip("10.0.0.9"), 5, 1400, 7)


def test_route_without_any_gateway_is_a_device_route():
    r = result({"interfaces": [{"name": "net1"}], "ips": [{"address": "10.0.0.5/24", "interface": 0}],
                "routes": [{"dst": "10.1.0.0/16"}]})
    (route,) = ipconfig.planned_routes(3, r, ipconfig.ips_for("net1", r))
    assert route.gateway is None and route.oif == 3 and not route.multipath


@pytest.mark.parametrize("raw,key,call,msg", [
    ({"mtu": "9"}, "mtu", confkeys.get_int, "expected an integer"),
    ({"mtu": True}, "mtu", confkeys.get_int, "expected an integer"),
    ({"master": 5}, "master", confkeys.get_str, "expected a string"),
    ({"linkInContainer": "yes"}, "linkInContainer", confkeys.get_bool, "expected true or false"),
    ({"runtimeConfig": {"mac": 1}}, "runtimeConfig.mac", confkeys.get_str, "expected a string"),
])
def test_confkeys_type_errors_name_the_key(raw, key, call, msg):
    with pytest.raises(CniError) as e:
        call(raw, key)
    assert e.value.code == 7 and f'"{key}"' in e.value.msg and msg in e.value.msg


def test_confkeys_choice_and_defaults():
    assert confkeys.get_choice({}, "mode", ("a", "b"), "a", "mode") == "a"
    assert confkeys.get_choice({"mode": ""}, "mode", ("a", "b"), "a", "mode") == "a"
    with pytest.raises(CniError) as e:
        confkeys.get_choice({"mode": "c"}, "mode", ("a", "b"), "a", "thing mode")
    assert '"c"' in e.value.msg and "a, b" in e.value.msg
    assert confkeys.get_int({"n": 3.0}, "n") == 3 and confkeys.get_int({}, "n", 9) == 9
    with pytest.raises(CniError):
        confkeys.get_int({"n": 70000}, "n", hi=65535)
