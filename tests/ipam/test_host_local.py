"""host-local behaviour, real processes: results, store format, round-robin, requested IPs, errors, CHECK/STATUS/GC."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import topology
from tests.ipam.conftest import addr, code, conf, ours, reservations

DUAL = {"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]]}


def test_add_result_and_store_format(data_dir):
    c = conf(data_dir, {"subnet": "10.77.0.0/24", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.77.0.9"}]})
    r = ours("ADD", c)
    assert r.code == 0, r.stdout
    assert r.json == {"cniVersion": "1.0.0", "ips": [{"address": "10.77.0.2/24", "gateway": "10.77.0.1"}],
                      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.77.0.9"}], "dns": {}}
    net = data_dir / "net1"
    assert (net / "10.77.0.2").read_bytes() == b"ctr1\r\neth0"
    assert (net / "last_reserved_ip.0").read_bytes() == b"10.77.0.2"
    assert (net / "lock").exists()
    assert oct((net / "10.77.0.2").stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in net.iterdir()) == ["10.77.0.2", "last_reserved_ip.0", "lock"]


def test_round_robin_and_release(data_dir):
    c = conf(data_dir)
    assert addr(ours("ADD", c, cid="a")) == ["10.77.0.2/24"]
    assert addr(ours("ADD", c, cid="b")) == ["10.77.0.3/24"]
    assert ours("DEL", c, cid="a").code == 0
    assert addr(ours("ADD", c, cid="c")) == ["10.77.0.4/24"]  # not the freed .2: round-robin
    assert sorted(reservations(data_dir)) == ["10.77.0.3", "10.77.0.4"]
    assert ours("DEL", c, cid="a").code == 0  # idempotent
    assert ours("DEL", c, cid="never-added").code == 0


def test_dual_stack_and_versions(data_dir):
    r = ours("ADD", conf(data_dir, DUAL, version="0.4.0"))
    assert r.code == 0, r.stdout
    assert r.json["ips"] == [{"version": "4", "address": "10.77.0.2/24", "gateway": "10.77.0.1"},
                             {"version": "6", "address": "fd77::2/64", "gateway": "fd77::1"}]
    assert (data_dir / "net1" / "fd77::2").read_bytes() == b"ctr1\r\neth0"
    assert (data_dir / "net1" / "last_reserved_ip.1").read_bytes() == b"fd77::2"
    r = ours("ADD", conf(data_dir, DUAL, version="0.2.0"), cid="old")
    assert r.json["ip4"] == {"ip": "10.77.0.3/24", "gateway": "10.77.0.1"} and r.json["ip6"]["ip"] == "fd77::3/64"


def test_range_walk_skips_gateway_network_broadcast_and_exhausts_with_code_11(data_dir):
    c = conf(data_dir, {"ranges": [[{"subnet": "10.78.0.0/30", "rangeStart": "10.78.0.0", "rangeEnd": "10.78.0.3"},
                                    {"subnet": "10.79.0.0/29", "gateway": "10.79.0.6", "rangeStart": "10.79.0.5"}]]})
    got = [addr(ours("ADD", c, cid=f"c{i}"))[0] for i in range(2)]
    assert got == ["10.78.0.2/30", "10.79.0.5/29"]
    r = ours("ADD", c, cid="c9")
    assert code(r) == 11 and "no IP addresses available in range set: 10.78.0.0-10.78.0.3,10.79.0.5-10.79.0.6" in r.json["msg"]
    assert sorted(reservations(data_dir)) == ["10.78.0.2", "10.79.0.5"]


def test_duplicate_add_is_an_error_other_ifname_is_not(data_dir):
    c = conf(data_dir)
    assert ours("ADD", c).code == 0
    r = ours("ADD", c)
    assert code(r) == 100 and "duplicate allocation is not allowed" in r.json["msg"]
    assert addr(ours("ADD", c, ifname="net2")) == ["10.77.0.3/24"]
    assert ours("DEL", c).code == 0
    assert reservations(data_dir) == {"10.77.0.3": "ctr1\r\nnet2"}


def test_requested_ips_from_every_source(data_dir):
    c = conf(data_dir, DUAL)
    assert addr(ours("ADD", c, cid="a", args="IP=10.77.0.50")) == ["10.77.0.50/24", "fd77::2/64"]
    c2 = conf(data_dir, DUAL, args={"cni": {"ips": ["10.77.0.60", "fd77::60"]}})
    assert addr(ours("ADD", c2, cid="b")) == ["10.77.0.60/24", "fd77::60/64"]
    c3 = conf(data_dir, DUAL, runtimeConfig={"ips": ["10.77.0.70/24"]})
    assert addr(ours("ADD", c3, cid="c")) == ["10.77.0.70/24", "fd77::61/64"]
    # The same address from CNI_ARGS and args collapses into one request.
    assert addr(ours("ADD", conf(data_dir, args={"cni": {"ips": ["10.77.0.80"]}}, name="n2"), args="IP=10.77.0.80")) == ["10.77.0.80/24"]


def test_requested_ip_errors_name_the_source(data_dir):
    c = conf(data_dir)
    assert ours("ADD", c, cid="a", args="IP=10.77.0.50").code == 0
    taken = ours("ADD", c, cid="b", args="IP=10.77.0.50")
    assert code(taken) == 11 and "10.77.0.50 is not available" in taken.json["msg"] and "held by a/eth0" in taken.json["msg"]
    out = ours("ADD", conf(data_dir, runtimeConfig={"ips": ["10.99.0.5"]}), cid="c")
    assert code(out) == 7 and "10.99.0.5 (from runtimeConfig.ips[0])" in out.json["msg"]
    gw = ours("ADD", conf(data_dir, args={"cni": {"ips": ["10.77.0.1"]}}), cid="d")
    assert code(gw) == 7 and "args.cni.ips[0]" in gw.json["msg"] and "gateway" in gw.json["msg"]
    bad = ours("ADD", c, cid="e", args="IP=banana")
    assert code(bad) == 7 and "CNI_ARGS IP" in bad.json["msg"]
    # Failed ADDs leave nothing behind.
    assert sorted(reservations(data_dir)) == ["10.77.0.50"]


@pytest.mark.parametrize("ipam, field", [
    ({"subnet": "10.77.0.0"}, "ipam.subnet"),
    ({"subnet": "10.77.0.5/24"}, "ipam.subnet"),
    ({"subnet": "10.77.0.0/31"}, "ipam.subnet"),
    ({"subnet": "10.77.0.0/24", "gateway": "10.78.0.1"}, "ipam.gateway"),
    ({"subnet": "10.77.0.0/24", "rangeStart": "10.78.0.1"}, "ipam.rangeStart"),
    ({"subnet": "10.77.0.0/24", "rangeEnd": "fd00::1"}, "ipam.rangeEnd"),
    ({"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.9", "rangeEnd": "10.77.0.3"}, "ipam.rangeEnd"),
    ({"ranges": "10.77.0.0/24"}, "ipam.ranges"),
    ({"ranges": [[{"subnet": "10.77.0.0/24"}, {"subnet": "fd00::/64"}]]}, "ipam.ranges[0][1]"),
    ({"ranges": [[{"subnet": "10.77.0.0/24"}, {"subnet": "10.77.0.0/25"}]]}, "ipam.ranges[0][1]"),
    ({"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "10.77.0.128/25"}]]}, "ipam.ranges"),
    ({"ranges": [[]]}, "ipam.ranges[0]"),
    ({"type": "host-local"}, "ipam.ranges"),
    ({"subnet": "fd00::/127"}, "ipam.subnet"),
    ({"subnet": "10.77.0.0/24", "routes": [{"dst": "nope"}]}, "ipam.routes[0].dst"),
    ({"subnet": "10.77.0.0/24", "routes": {"dst": "0.0.0.0/0"}}, "ipam.routes"),
    ({"subnet": "10.77.0.0/24", "dataDir": 5}, "ipam.dataDir"),
    ({"subnet": "10.77.0.0/24", "resolvConf": "/nonexistent/resolv.conf"}, "ipam.resolvConf"),
])
def test_bad_config_is_code_7_naming_the_field(data_dir, ipam, field):
    c = conf(data_dir)
    c["ipam"] = {"type": "host-local", "dataDir": str(data_dir), **ipam}
    r = ours("ADD", c)
    assert code(r) == 7, r.stdout
    assert f'"{field}"' in r.json["msg"], r.json["msg"]
    assert not reservations(data_dir)


def test_two_families_per_config_need_cni_030(data_dir):
    c = conf(data_dir, {"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "10.78.0.0/24"}]]}, version="0.2.0")
    r = ours("ADD", c)
    assert code(r) == 7 and '"cniVersion"' in r.json["msg"]


def test_resolv_conf(data_dir, tmp_path):
    rc = tmp_path / "resolv.conf"
    rc.write_text("# c\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.org\nsearch a.example b.example\n"
                  "options ndots:2 edns0\n;x\nbogus\n")
    r = ours("ADD", conf(data_dir, {"subnet": "10.77.0.0/24", "resolvConf": str(rc)}))
    assert r.json["dns"] == {"nameservers": ["10.0.0.53", "fd00::53"], "domain": "example.org",
                             "search": ["a.example", "b.example"], "options": ["ndots:2", "edns0"]}


def test_check(data_dir):
    c = conf(data_dir, DUAL)
    added = ours("ADD", c)
    assert ours("CHECK", c).code == 0
    with_prev = dict(c, prevResult=added.json)
    assert ours("CHECK", with_prev).code == 0
    r = ours("CHECK", c, cid="other")
    assert code(r) == 101 and "Failed to find address added by container other" in r.json["msg"]
    wrong = json.loads(json.dumps(added.json))
    wrong["ips"][0]["address"] = "10.77.0.99/24"
    r = ours("CHECK", dict(c, prevResult=wrong))
    assert code(r) == 101 and "10.77.0.99" in r.json["msg"]
    # A reservation file taken over by someone else is not ours any more.
    (data_dir / "net1" / "10.77.0.2").write_bytes(b"intruder\r\neth0")
    (data_dir / "net1" / "fd77::2").write_bytes(b"intruder\r\neth0")
    assert code(ours("CHECK", c)) == 101


def test_status(data_dir, tmp_path):
    small = conf(data_dir, {"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "10.78.0.0/30"}]]}, version="1.1.0")
    assert ours("STATUS", small).code == 0
    assert ours("ADD", small).code == 0
    r = ours("STATUS", small)
    assert code(r) == 50 and "range set 1 (10.78.0.1-10.78.0.2) is exhausted" in r.json["msg"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = ours("STATUS", conf(blocker / "sub", version="1.1.0"))
    assert code(r) == 50 and "not usable" in r.json["msg"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a read-only tmpfs")
def test_status_read_only_store(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "net1").mkdir()
    (ro / ".cni-rdma" / "net1").mkdir(parents=True)
    subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        r = ours("STATUS", conf(ro, version="1.1.0"))
        assert code(r) == 50 and "not writable" in r.json["msg"], r.stdout
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_gc(data_dir, tmp_path):
    c = conf(data_dir, DUAL, version="1.1.0", logFile=str(tmp_path / "hl.log"))
    for cid in ("keep", "drop"):
        assert ours("ADD", c, cid=cid).code == 0
    assert ours("ADD", c, cid="keep", ifname="net2").code == 0
    (data_dir / "net1" / "10.77.0.200").write_bytes(b"legacy-keep")
    (data_dir / "net1" / "10.77.0.201").write_bytes(b"legacy-drop")
    (data_dir / "net1" / "10.77.0.202").write_bytes(b"")  # what a Go ADD killed mid-write leaves
    before = reservations(data_dir)
    assert ours("GC", c).code == 0  # no valid list: nothing released
    assert reservations(data_dir) == before
    assert "no cni.dev/valid-attachments in the config\\x3b releasing nothing" in (tmp_path / "hl.log").read_text()
    gc = dict(c, **{"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"},
                                                   {"containerID": "legacy-keep", "ifname": "eth0"}]})
    assert ours("GC", gc).code == 0
    assert sorted(reservations(data_dir).values()) == ["keep\r\neth0", "keep\r\neth0", "legacy-keep"]
    assert "GC released 6: " in (tmp_path / "hl.log").read_text()
    # The index follows: DEL of a GC'd attachment is a no-op, of a kept one releases it.
    assert ours("DEL", c, cid="keep").code == 0
    assert sorted(reservations(data_dir).values()) == ["legacy-keep"]
    bad = dict(c, **{"cni.dev/valid-attachments": [{"containerID": 5}]})
    r = ours("GC", bad)
    assert code(r) == 7 and "cni.dev/valid-attachments[0].containerID" in r.json["msg"]


def test_legacy_one_line_files(data_dir):
    c = conf(data_dir)
    net = data_dir / "net1"
    net.mkdir(parents=True)
    (net / "10.77.0.9").write_bytes(b"old\n")
    r = ours("ADD", c, cid="old")
    assert code(r) == 100 and "10.77.0.9" in r.json["msg"]
    assert ours("CHECK", c, cid="old").code == 0
    assert ours("DEL", c, cid="old").code == 0
    assert reservations(data_dir) == {}


def test_index_follows_changes_made_behind_its_back(data_dir):
    c = conf(data_dir)
    assert ours("ADD", c, cid="a").code == 0
    (data_dir / "net1" / "10.77.0.2").unlink()  # an operator cleans up by hand
    (data_dir / "net1" / "10.77.0.30").write_bytes(b"a\r\neth0")
    r = ours("ADD", c, cid="a")
    assert code(r) == 100 and "10.77.0.30" in r.json["msg"]
    assert ours("DEL", c, cid="a").code == 0
    assert reservations(data_dir) == {}


def test_in_process_delegation_from_another_plugin(data_dir):
    """cni_rdma.ipam runs our host-local in the calling plugin's process (no exec) and the result is the same."""
    stdin = json.dumps(conf(data_dir))
    script = f"""
import json, subprocess, sys, types
sys.argv[0] = {str(topology.bin_dir() / "macvlan")!r}
sys.path.insert(0, {str(topology.ROOT)!r})
from cni_rdma import ipam, skel
def forbidden(*a, **k):
    raise AssertionError("IPAM was exec'd")
subprocess.run = forbidden
stub = types.ModuleType("stub")
stub.add = ipam.add
stub.delete = ipam.delete
env = {{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "inproc", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": {str(topology.bin_dir())!r}}}
res = skel.call(stub, env, {stdin!r}.encode())
print(json.dumps([res.to_json("1.0.0"), "ipam.host_local.host_local" in sys.modules]))
env["CNI_COMMAND"] = "DEL"
skel.call(stub, env, {stdin!r}.encode())
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    result, loaded = json.loads(p.stdout)
    assert loaded is True
    assert result["ips"] == [{"address": "10.77.0.2/24", "gateway": "10.77.0.1"}]
    assert reservations(data_dir) == {}


def test_route_attributes_pass_through_at_1_1_0(data_dir):
    """ipam.routes[].mtu/advmss/priority/table/scope (CNI 1.1.0) reach the result; older results drop them."""
    routes = [{"dst": "10.90.0.0/16", "gw": "10.77.0.254", "mtu": 1400, "advmss": 1360, "priority": 7,
               "table": 1000, "scope": 0},
              {"dst": "10.91.0.0/16", "scope": 253, "table": 0}]
    r = ours("ADD", conf(data_dir, {"subnet": "10.77.0.0/24", "routes": routes}, version="1.1.0"))
    assert r.code == 0, r.stdout
    assert r.json["routes"] == routes
    r = ours("ADD", conf(data_dir, {"subnet": "10.77.0.0/24", "routes": routes}, version="1.0.0"), cid="b")
    assert r.json["routes"] == [{"dst": "10.90.0.0/16", "gw": "10.77.0.254"}, {"dst": "10.91.0.0/16"}]


@pytest.mark.parametrize("route, field", [
    ({"dst": "10.90.0.0/16", "mtu": "1400"}, "ipam.routes[0].mtu"),
    ({"dst": "10.90.0.0/16", "table": -1}, "ipam.routes[0].table"),
    ({"dst": "10.90.0.0/16", "scope": 256}, "ipam.routes[0].scope"),
    ({"dst": "10.90.0.0/16", "priority": True}, "ipam.routes[0].priority"),
    ({"dst": "10.90.0.0/16", "advmss": 1.5}, "ipam.routes[0].advmss"),
])
def test_route_attribute_errors_name_the_field(data_dir, route, field):
    r = ours("ADD", conf(data_dir, {"subnet": "10.77.0.0/24", "routes": [route]}, version="1.1.0"))
    assert code(r) == 7 and field in r.json["msg"], r.stdout
    assert reservations(data_dir) == {}


def test_requested_ips_with_a_prefix(data_dir):
    """CONVENTIONS.md's `"ips": ["10.2.2.42/24"]` and `IP=10.1.2.5/24`: the prefix must be the range's."""
    c = conf(data_dir, DUAL, args={"cni": {"ips": ["10.77.0.42/24", "fd77::42/64"]}})
    assert addr(ours("ADD", c, cid="a")) == ["10.77.0.42/24", "fd77::42/64"]
    assert addr(ours("ADD", conf(data_dir, DUAL), cid="b", args="IP=10.77.0.43/24")) == ["10.77.0.43/24", "fd77::43/64"]
    c = conf(data_dir, DUAL, runtimeConfig={"ips": ["fd77::44/64"]})
    assert addr(ours("ADD", c, cid="c")) == ["10.77.0.44/24", "fd77::44/64"]
    bad = ours("ADD", conf(data_dir, DUAL, args={"cni": {"ips": ["10.77.0.45/16"]}}), cid="d")
    assert code(bad) == 7 and "args.cni.ips[0]" in bad.json["msg"] and "10.77.0.0/24" in bad.json["msg"]
    junk = ours("ADD", conf(data_dir, DUAL), cid="e", args="IP=10.77.0.46/33")
    assert code(junk) == 7 and "CNI_ARGS IP" in junk.json["msg"]
    assert sorted(reservations(data_dir)) == ["10.77.0.42", "10.77.0.43", "10.77.0.44", "fd77::42", "fd77::43",
                                              "fd77::44"]
