"""Parity with the Go host-local (containernetworking-plugins, /usr/lib/cni/host-local) on the same files.

Field by field: the same configs give the same results from both binaries (each on its own dataDir).
Both ways: reservations made by one binary are seen, checked and released by the other, and the
round-robin cursor carries over, on one shared dataDir.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.ipam.conftest import addr, code, conf, go, needs_go, ours, reservations

pytestmark = needs_go

V4 = {"subnet": "10.80.0.0/24"}
V6 = {"subnet": "fd80::/64"}
PARITY = {
    "v4-legacy": (V4, {}),
    "v4-range-gateway": ({"ranges": [[{"subnet": "10.80.0.0/24", "rangeStart": "10.80.0.10", "rangeEnd": "10.80.0.12",
                                       "gateway": "10.80.0.11"}]]}, {}),
    "v4-gateway-default-small": ({"subnet": "10.80.0.0/30"}, {}),
    "v6": (V6, {}),
    "v6-range": ({"ranges": [[{"subnet": "fd80::/120", "rangeStart": "fd80::fe", "gateway": "fd80::ff"}]]}, {}),
    "dual": ({"ranges": [[V4], [V6]]}, {}),
    "multi-range-set": ({"ranges": [[{"subnet": "10.80.0.0/30"}, {"subnet": "10.81.0.0/29", "rangeStart": "10.81.0.4"}]]}, {}),
    "legacy-plus-ranges": ({"subnet": "10.82.0.0/24", "ranges": [[V6]]}, {}),
    "routes": ({"ranges": [[V4], [V6]], "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.90.0.0/16", "gw": "10.80.0.254"},
                                                    {"dst": "::/0", "gw": "fd80::1"}]}, {}),
    "cni-args-ip": (V4, {"args": "IP=10.80.0.77"}),
    "args-cni-ips": ({"ranges": [[V4], [V6]]}, {"top": {"args": {"cni": {"ips": ["fd80::77", "10.80.0.78"]}}}}),
    "runtime-ips": ({"ranges": [[V4], [V6]]}, {"top": {"runtimeConfig": {"ips": ["10.80.0.79/24"]}}}),
    "runtime-ip-ranges": (V4, {"top": {"runtimeConfig": {"ipRanges": [[{"subnet": "10.83.0.0/28"}]]}}}),
    # Requested addresses with a prefix (CONVENTIONS.md's `"ips": ["10.2.2.42/24"]`): Go accepts every source.
    "cni-args-ip-prefix": (V4, {"args": "IP=10.80.0.77/24"}),
    "args-cni-ips-prefix": ({"ranges": [[V4], [V6]]}, {"top": {"args": {"cni": {"ips": ["fd80::77/64", "10.80.0.78/24"]}}}}),
    "runtime-ips-prefix-v6": ({"ranges": [[V4], [V6]]}, {"top": {"runtimeConfig": {"ips": ["fd80::79/64"]}}}),
    # CNI 1.1.0 route attributes: neither prints them in a 1.0.0 result (Go 1.1.1 has no such fields at all).
    "routes-attrs": ({"ranges": [[V4]], "routes": [{"dst": "10.90.0.0/16", "gw": "10.80.0.254", "mtu": 1400,
                                                    "advmss": 1360, "priority": 7, "table": 100, "scope": 0}]}, {}),
}


def _configs(ipam, extra, data_dir, version):
    c = conf(data_dir, ipam, version=version, **extra.get("top", {}))
    return c


@pytest.mark.parametrize("case, version", [(c, "1.0.0") for c in sorted(PARITY)]
                         + [(c, v) for c in ("dual", "routes", "cni-args-ip") for v in ("0.4.0", "0.3.1")])
def test_results_match_go_field_by_field(tmp_path, case, version):
    ipam, extra = PARITY[case]
    results = {}
    for who, runner in (("go", go), ("ours", ours)):
        d = tmp_path / who
        c = _configs(ipam, extra, d, version)
        runs = [runner("ADD", c, cid="c0", args=extra.get("args"))]
        runs += [runner("ADD", c, cid=f"c{i}") for i in (1, 2)]  # round-robin order too
        results[who] = [(r.code, r.json if r.code == 0 else None) for r in runs]
        results[who + "-files"] = reservations(d)
        results[who + "-last"] = sorted(p.name + "=" + p.read_text() for p in (d / "net1").glob("last_reserved_ip.*"))
    assert results["ours"] == results["go"]
    assert results["ours-files"] == results["go-files"]
    assert results["ours-last"] == results["go-last"]


def test_legacy_versions_match_go(tmp_path):
    for version in ("0.1.0", "0.2.0"):
        out = {}
        for who, runner in (("go", go), ("ours", ours)):
            out[who] = runner("ADD", conf(tmp_path / who / version, {"ranges": [[V4], [V6]]}, version=version)).json
        assert out["ours"] == out["go"]


def test_resolv_conf_matches_go(tmp_path):
    rc = tmp_path / "resolv.conf"
    rc.write_text("nameserver 10.0.0.53\n# x\ndomain d.example\nsearch a b\noptions ndots:5\nnameserver fd00::53\n")
    out = {who: runner("ADD", conf(tmp_path / who, dict(V4, resolvConf=str(rc)))).json
           for who, runner in (("go", go), ("ours", ours))}
    assert out["ours"] == out["go"]


BAD = {
    "no-ipam-ranges": {},
    "subnet-not-cidr": {"subnet": "10.80.0.0"},
    "host-bits": {"subnet": "10.80.0.5/24"},
    "too-small": {"subnet": "10.80.0.0/31"},
    "start-outside": {"subnet": "10.80.0.0/24", "rangeStart": "10.81.0.1"},
    "end-before-start": {"subnet": "10.80.0.0/24", "rangeStart": "10.80.0.9", "rangeEnd": "10.80.0.3"},
    "mixed-family-set": {"ranges": [[V4, V6]]},
    "overlap-in-set": {"ranges": [[V4, {"subnet": "10.80.0.128/25"}]]},
    "overlap-across-sets": {"ranges": [[V4], [{"subnet": "10.80.0.0/25"}]]},
    "empty-set": {"ranges": [[]]},
    "route-dst": {"subnet": "10.80.0.0/24", "routes": [{"dst": "bogus"}]},
    "resolv-missing": {"subnet": "10.80.0.0/24", "resolvConf": "/nonexistent/resolv.conf"},
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configs_rejected_by_both(tmp_path, case):
    go_run = go("ADD", conf(tmp_path / "go", BAD[case]))
    our_run = ours("ADD", conf(tmp_path / "ours", BAD[case]))
    assert go_run.code != 0, go_run.stdout
    assert code(our_run) == 7, our_run.stdout  # Go: 999 for all of these; ours names the field
    assert not reservations(tmp_path / "ours")


def test_requested_ip_errors_both(tmp_path):
    for who, runner in (("go", go), ("ours", ours)):
        c = conf(tmp_path / who, V4)
        assert runner("ADD", c, cid="a", args="IP=10.80.0.50").code == 0
        assert runner("ADD", c, cid="b", args="IP=10.80.0.50").code == 1       # taken
        assert runner("ADD", c, cid="b", args="IP=10.99.0.50").code == 1       # outside every range
        assert runner("ADD", c, cid="b", args="IP=10.80.0.1").code == 1        # the gateway
        assert sorted(reservations(tmp_path / who)) == ["10.80.0.50"]
    assert code(ours("ADD", conf(tmp_path / "ours", V4), cid="b", args="IP=10.80.0.50")) == 11


def test_requested_prefix_must_match_the_range_where_go_ignores_it(tmp_path):
    """Deliberate difference: a prefix that is not its range's is a code-7 error naming the field; Go hands
    out the address with the range's prefix anyway (so the pod silently gets a netmask it did not ask for)."""
    for args, top, field, asked in (
            ("IP=10.80.0.77/16", {}, "CNI_ARGS IP", "10.80.0.77/16"),
            (None, {"args": {"cni": {"ips": ["10.80.0.78/25"]}}}, "args.cni.ips[0]", "10.80.0.78/25"),
            (None, {"runtimeConfig": {"ips": ["fd80::79/120"]}}, "runtimeConfig.ips[0]", "fd80::79/120")):
        c = {who: conf(tmp_path / who / field, {"ranges": [[V4], [V6]]}, **top) for who in ("go", "ours")}
        g = go("ADD", c["go"], args=args)
        ip = asked.split("/")[0]
        given = [a for a in addr(g) if a.startswith(ip + "/")]
        assert given and given[0] != asked, (asked, addr(g))  # Go: the address, with the range's prefix
        o = ours("ADD", c["ours"], args=args)
        assert code(o) == 7, o.stdout
        assert field in o.json["msg"] and "does not match the prefix of its range" in o.json["msg"], o.json
        assert not reservations(tmp_path / "ours" / field)


def test_go_allocates_ours_releases_and_back(data_dir):
    c = conf(data_dir, {"ranges": [[V4], [V6]]})
    assert addr(go("ADD", c, cid="g1")) == ["10.80.0.2/24", "fd80::2/64"]
    assert addr(ours("ADD", c, cid="o1")) == ["10.80.0.3/24", "fd80::3/64"]   # round-robin continues
    assert addr(go("ADD", c, cid="g2")) == ["10.80.0.4/24", "fd80::4/64"]     # ... and back again
    assert addr(ours("ADD", c, cid="o2")) == ["10.80.0.5/24", "fd80::5/64"]
    # Each side sees the other's reservations: duplicate ADD refused, CHECK passes.
    assert code(ours("ADD", c, cid="g1")) == 100
    assert go("ADD", c, cid="o1").code == 1 and "duplicate allocation" in go("ADD", c, cid="o1").json["msg"]
    assert ours("CHECK", c, cid="g2").code == 0
    assert go("CHECK", c, cid="o2").code == 0
    # Release across binaries.
    assert ours("DEL", c, cid="g1").code == 0
    assert go("DEL", c, cid="o1").code == 0
    assert sorted(reservations(data_dir).values()) == ["g2\r\neth0"] * 2 + ["o2\r\neth0"] * 2
    assert code(ours("CHECK", c, cid="o1")) == 101  # our index learnt that Go released it
    assert go("DEL", c, cid="o2").code == 0
    assert ours("DEL", c, cid="g2").code == 0
    assert reservations(data_dir) == {}
    assert addr(go("ADD", c, cid="g3")) == ["10.80.0.6/24", "fd80::6/64"]
    assert addr(ours("ADD", c, cid="o3")) == ["10.80.0.7/24", "fd80::7/64"]


def test_mixed_binaries_concurrently_share_the_lock(data_dir):
    c = conf(data_dir, {"subnet": "10.80.0.0/26"})  # 61 usable addresses for 40 callers
    jobs = [(go if i % 2 else ours, f"m{i}") for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda j: (j[1], j[0]("ADD", c, cid=j[1])), jobs))
    got = {cid: addr(r)[0].split("/")[0] for cid, r in runs}
    assert len(set(got.values())) == 40
    files = reservations(data_dir)
    assert files == {ip: f"{cid}\r\neth0" for cid, ip in got.items()}


def test_difference_gateway_outside_subnet_rejected(tmp_path):
    """Go 1.1.1 accepts a gateway outside the subnet (and then hands out .1); ours rejects the config."""
    ipam = {"subnet": "10.80.0.0/24", "gateway": "10.81.0.1"}
    assert addr(go("ADD", conf(tmp_path / "go", ipam))) == ["10.80.0.1/24"]
    r = ours("ADD", conf(tmp_path / "ours", ipam))
    assert code(r) == 7 and '"ipam.gateway"' in r.json["msg"]


def test_difference_network_address_never_handed_out(tmp_path):
    """Go 1.1.1 hands out the subnet address when rangeStart is set to it; ours skips it (documented)."""
    ipam = {"subnet": "10.80.0.0/29", "rangeStart": "10.80.0.0"}
    assert addr(go("ADD", conf(tmp_path / "go", ipam))) == ["10.80.0.0/29"]
    assert addr(ours("ADD", conf(tmp_path / "ours", ipam))) == ["10.80.0.2/29"]


def test_two_requested_ips_for_one_range_set_fail_in_both(tmp_path):
    """CNI_ARGS IP and args.cni.ips naming different addresses of one range set: Go and ours both refuse."""
    for who, runner in (("go", go), ("ours", ours)):
        c = conf(tmp_path / who, V4, args={"cni": {"ips": ["10.80.0.78"]}})
        r = runner("ADD", c, args="IP=10.80.0.77")
        assert r.code == 1 and "failed to allocate all requested IPs" in r.json["msg"], (who, r.stdout)
        assert reservations(tmp_path / who) == {}
