"""Host tier: our macvlan next to the real Go plugins (Debian's containernetworking-plugins 1.1.1).

- our macvlan with the Go `host-local` as its IPAM (ADD / CHECK / DEL, reservations released);
- the Go `tuning` plugin chained after ours: it parses our result strictly as its prevResult;
- Go `macvlan` CHECK accepts the link ours made, and ours accepts the link Go made;
- a table run through Go `macvlan` and ours: results compared field by field (MACs and IPs aside),
  and the error codes for the same bad configs.

Where the codes differ, it is deliberate: Go answers nearly every mistake with 999 ("internal"),
we answer a mistake in the config with 7 naming the key, a mistake in the environment with 4.

| config / situation                        | Go 1.1.1                                   | ours | why                                    |
|-------------------------------------------|--------------------------------------------|------|----------------------------------------|
| "mode": "foo"                             | 999 unknown macvlan mode                   | 7    | config error, names key and value      |
| "mode": "source"                          | 999 unknown macvlan mode                   | ok   | kernel mode supported (issue 5)        |
| "mtu" above the master's                  | 999 invalid MTU                            | 7    | config error naming "mtu"              |
| "mtu": -1                                 | 999 invalid MTU                            | 7    |                                        |
| "mtu": 20 (below 68)                      | 999 kernel EINVAL at create                | 7    | caught before touching the kernel      |
| "mtu": "1500" (wrong JSON type)           | 999 failed to load netconf                 | 7    | names the key and expected type        |
| "master": "nope0" (no such link)          | 999 Link not found                         | 7    | names "master" and the link            |
| no master, no default route               | 999 no default route interface found       | 7    | names "master"                         |
| "mac": "zz"                               | 999 invalid args ... MAC                   | 7    |                                        |
| "mac": multicast                          | 999 kernel EADDRNOTAVAIL at create         | 7    | caught before touching the kernel      |
| CNI_ARGS MAC=zz                           | 999                                        | 7    | names "CNI_ARGS MAC"                   |
| CNI_ARGS unknown key, no IgnoreUnknown    | 999 ARGS: unknown args                     | 4    | an environment error                   |
| ipam.type not in CNI_PATH                 | 999, and the macvlan link is LEAKED        | 7    | ours rolls the link back               |
| ipam block with keys but no "type"        | ok (treated as no IPAM)                    | 7    | core NetConf: an ipam block needs type |
| "ipam": {}                                | ok (no IPAM)                               | ok   | same                                   |
| CNI_IFNAME already exists in the pod      | 999 failed to rename ... file exists       | 4    | an environment error; nothing leaked   |
| L2 only with cniVersion 0.2.0             | 999 cannot convert, and the link is LEAKED | 999  | same error; ours rolls the link back   |
| cniVersion "9.9.9"                        | 1                                          | 1    | same                                   |
| "name": ""                                | 7                                          | 7    | same                                   |
| "linkInContainer", "bcqueuelen"           | ignored (not in 1.1.1)                     | used | keys of newer Go releases              |
| result cniVersion 1.1.0                   | unsupported (1.1.1 speaks up to 1.0.0)     | ok   | interfaces[0].mtu is added             |
"""
from __future__ import annotations

import pytest

from tests.netns.macvlan_helpers import (GO_MACVLAN, conf, err, go_path, host_local, ok, pod_links, reservations, run,
                                         with_prev)
from tests.topology import sh

GO_TUNING = "/usr/lib/cni/tuning"


def go(cmd, config, node, pod, **kw):
    return run(cmd, config, node, pod, plugin=str(GO_MACVLAN), path=go_path(), **kw)


def ours(cmd, config, node, pod, **kw):
    return run(cmd, config, node, pod, path=go_path(), **kw)


# ------------------------------------------------------------------ our macvlan + Go host-local
def test_ours_with_go_host_local(node, pod, tmp_path):
    c = conf(master="eth0", ipam=host_local(tmp_path, v4=True, v6=True))
    r = ok(ours("ADD", c, node, pod))
    assert len(r["ips"]) == 2 and len(reservations(tmp_path)) == 2
    ok(ours("CHECK", with_prev(c, r), node, pod))  # delegates CHECK to Go host-local too
    ok(ours("DEL", c, node, pod))
    assert reservations(tmp_path) == [] and pod_links(pod) == {"lo"}


# ------------------------------------------------------------------ Go tuning chained after ours
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_go_tuning_chained_after_ours(node, pod, tmp_path, version):
    c = conf(version, master="eth0", ipam=host_local(tmp_path))
    r = ok(ours("ADD", c, node, pod))
    tuning = {"cniVersion": version, "name": "mvnet", "type": "tuning", "mtu": 1400, "promisc": True,
              "sysctl": {"net.ipv4.conf.net1.arp_ignore": "1"}, "prevResult": r}
    t = ok(run("ADD", tuning, node, pod, plugin=GO_TUNING, path=go_path()))
    assert t["ips"] == r["ips"] and t["interfaces"][0]["name"] == "net1"
    link = pod.link("net1")
    assert link["mtu"] == 1400 and "PROMISC" in link["flags"]
    assert sh("cat", "/proc/sys/net/ipv4/conf/net1/arp_ignore", netns=pod.name).strip() == "1"
    if version != "0.3.1":
        ok(run("CHECK", dict(tuning, prevResult=t), node, pod, plugin=GO_TUNING, path=go_path()))
    ok(run("DEL", tuning, node, pod, plugin=GO_TUNING, path=go_path()))
    ok(ours("DEL", c, node, pod))
    assert pod_links(pod) == {"lo"}


# ------------------------------------------------------------------ cross CHECK
def test_go_check_accepts_our_link_and_ours_accepts_gos(node, pod, tmp_path):
    c = conf(master="eth0", mode="private", ipam=host_local(tmp_path))
    r = ok(ours("ADD", c, node, pod, ifname="ours1", cid="a"))
    ok(go("CHECK", with_prev(c, r), node, pod, ifname="ours1", cid="a"))
    g = ok(go("ADD", c, node, pod, ifname="go1", cid="b"))
    ok(ours("CHECK", with_prev(c, g), node, pod, ifname="go1", cid="b"))
    # and each DELs the other's link
    ok(go("DEL", c, node, pod, ifname="ours1", cid="a"))
    ok(ours("DEL", c, node, pod, ifname="go1", cid="b"))
    assert pod_links(pod) == {"lo"} and reservations(tmp_path) == []


# ------------------------------------------------------------------ the comparison table
def shape(result: dict) -> dict:
    """A result without what legitimately differs (MACs, the addresses themselves)."""
    out = {k: v for k, v in result.items() if k not in ("interfaces", "ips")}
    out["interfaces"] = [{**i, "mac": bool(i.get("mac"))} for i in result.get("interfaces", [])]
    out["ips"] = [{**ip, "address": ip["address"].split("/")[1]} for ip in result.get("ips", [])]
    return out


GOOD = {
    "l2 1.0.0": ("1.0.0", {}, False),
    "l2 0.4.0": ("0.4.0", {}, False),
    "l2 0.3.1 vepa": ("0.3.1", {"mode": "vepa"}, False),
    "v4 1.0.0": ("1.0.0", {}, True),
    "v4 0.4.0 mtu": ("0.4.0", {"mtu": 1400}, True),
    "v4 0.3.0 dns": ("0.3.0", {"dns": {"nameservers": ["10.9.0.53"], "search": ["pod.local"]}}, True),
    "v4 1.0.0 passthru": ("1.0.0", {"mode": "passthru"}, True),
    "default master": ("1.0.0", {"master": None}, True),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_same_result_as_go(node, pod, tmp_path, case):
    version, keys, with_ipam = GOOD[case]
    results = {}
    for who, fn in (("go", go), ("ours", ours)):
        data = tmp_path / who
        c = conf(version, **{"master": "eth0", **keys})
        if c.get("master") is None:
            del c["master"]
        if with_ipam:
            c["ipam"] = host_local(data)
        results[who] = ok(fn("ADD", c, node, pod, ifname=f"{who}0", cid=who))
        link = pod.link(f"{who}0")
        assert link["linkinfo"]["info_data"]["mode"] == keys.get("mode", "bridge")
        assert link["mtu"] == keys.get("mtu", 1500)
        ok(fn("DEL", c, node, pod, ifname=f"{who}0", cid=who))
    g, o = shape(results["go"]), shape(results["ours"])
    g["interfaces"][0]["name"] = o["interfaces"][0]["name"] = "net"
    assert o == g


BAD = {
    # name: (config keys, CNI_ARGS, Go code, our code)
    "unknown mode": ({"mode": "foo"}, None, 999, 7),
    "mtu above master": ({"mtu": 9000}, None, 999, 7),
    "negative mtu": ({"mtu": -1}, None, 999, 7),
    "mtu below 68": ({"mtu": 20}, None, 999, 7),
    "mtu wrong type": ({"mtu": "1500"}, None, 999, 7),
    "no such master": ({"master": "nope0"}, None, 999, 7),
    "master wrong type": ({"master": 5}, None, 999, 7),
    "bad mac": ({"mac": "zz"}, None, 999, 7),
    "multicast mac": ({"mac": "01:00:5e:00:00:01"}, None, 999, 7),
    "bad CNI_ARGS MAC": ({}, "MAC=zz", 999, 7),
    "unknown CNI_ARGS": ({}, "FOO=1", 999, 4),
    "ipam not found": ({"ipam": {"type": "nope"}}, None, 999, 7),
    "bad version": ({"cniVersion": "9.9.9"}, None, 1, 1),
    "empty name": ({"name": ""}, None, 7, 7),
}


@pytest.mark.parametrize("case", list(BAD))
def test_error_codes_against_go(node, pod, case):
    keys, args, go_code, our_code = BAD[case]
    c = conf(**{"master": "eth0", **keys})
    err(go("ADD", c, node, pod, ifname="go0", cni_args=args), go_code)
    err(ours("ADD", c, node, pod, ifname="ours0", cni_args=args), our_code)
    assert pod.link("ours0") is None  # (Go leaks its link on "ipam not found")


def test_error_codes_name_clash_and_no_default_route(node, pod):
    sh("ip", "-n", pod.name, "link", "add", "name", "clash", "type", "veth", "peer", "name", "clp")
    err(go("ADD", conf(master="eth0"), node, pod, ifname="clash"), 999)
    err(ours("ADD", conf(master="eth0"), node, pod, ifname="clash"), 4)
    sh("ip", "-n", node.name, "route", "del", "default")
    err(go("ADD", conf(), node, pod, ifname="go1"), 999)
    err(ours("ADD", conf(), node, pod, ifname="ours1"), 7)
    assert pod_links(pod) == {"lo", "clash", "clp"}
