"""VM tier: our ipvlan next to the Go reference ipvlan (Debian's containernetworking-plugins 1.1.1).

The host kernel has no ipvlan, so this runs in the guest. Both plugins use the Go `host-local` as IPAM
(CNI_PATH=/usr/lib/cni), each with its own dataDir, so both allocate the same first address:

- a table of good configs (modes l2/l3/l3s, mtu, dns, cniVersion 0.2.0 to 1.0.0, the default master,
  chained on a prevResult, CNI_ARGS IP=) run through Go and ours one after the other, with the same
  ifname in the same pod: the ADD results must be equal as a whole (ipvlan shares the master's MAC, the
  sandbox is the same pod) and so must the pod's state read back with `ip -j` (mode, flag, MTU, MAC,
  up, addresses, routes, arp_notify; ndisc_notify differs, see below). Each link is CHECKed (from
  0.4.0) and DELeted by the *other* binary, and both IPAM dataDirs are empty afterwards.
- flags and mode against Go CHECK, and the kernel switching every child of a master (Go does not guard);
- the error codes for the same bad configs, and which of Go's failures leave the link behind.

Where the codes differ it is deliberate: Go answers nearly every mistake with 999 ("internal"), we
answer a mistake in the config with 7 naming the key, one in the environment with 4, and a CHECK that
finds the link different from the config with 5. (Go's error JSON also has no "cniVersion".)

| config / situation                           | Go 1.1.1                                        | ours | why                                       |
|----------------------------------------------|-------------------------------------------------|------|-------------------------------------------|
| "mode": "foo"                                | 999 unknown ipvlan mode                         | 7    | config error, names key and value         |
| "flag": "private" / "vepa"                   | ignored: the link is always "bridge"            | used | "flag" is a key of newer Go releases      |
| "flag": "foo"                                | ok (key ignored)                                | 7    |                                           |
| "mtu" above the master's                     | ok: kernel allows up to the master's max_mtu    | 7    | as macvlan: at most the master's MTU      |
| "mtu": -1                                    | ok (ignored: the master's MTU)                  | 7    |                                           |
| "mtu": 20 (below 68)                         | 999 kernel EINVAL at create                     | 7    | caught before touching the kernel         |
| "mtu": "1500" (wrong JSON type)              | 999 failed to load netconf                      | 7    | names the key and expected type           |
| "master": "nope0" (no such link)             | 999 failed to lookup master                     | 7    | names "master" and the link               |
| no master, no default route                  | 999 no default route interface found            | 7    | names "master"                            |
| no "ipam" (and no prevResult IPs)            | 999 no plugin name provided, link LEAKED        | ok   | L2 only: the link, up, no addresses       |
| "ipam": {}                                   | as no "ipam": 999, link LEAKED                  | ok   | as no "ipam"                              |
| "ipam" without "type" (other keys)           | 999 no plugin name provided, link LEAKED        | 7    | core NetConf: names "ipam.type"           |
| ipam.type not in CNI_PATH                    | 999, link LEAKED                                | 7    | ours rolls the link back                  |
| CNI_ARGS unknown key (host-local refuses it) | 999 from host-local, link LEAKED                | 999  | IPAM's code passed on; ours rolls back    |
| "linkInContainer": true, master on the host  | ok (key ignored: master looked up on the host)  | 7    | newer key: the master is in the pod       |
| chained, prevResult with two interfaces      | 999 chained master failure                      | 7    |                                           |
| CNI_IFNAME already exists in the pod         | 999 failed to rename, temp link LEAKED          | 4    | environment error; nothing leaked         |
| CHECK: link mode differs from config         | 999 mode does not match                         | 5    | CHECK failure: the link is not as asked   |
| CHECK: link flag differs from config         | ok (flag not checked)                           | 5    |                                           |
| CHECK without "master" in the config         | 999 failed to lookup master "" (not defaulted)  | ok   | the default route's link, as in ADD       |
| DEL without "master", no default route       | 999 no default route interface found            | ok   | DEL needs no master; best effort          |
| a new mode/flag on a master with children    | ok, the kernel silently switches every child    | 7    | refused (tests/vm/test_ipvlan_vm.py)      |
| cniVersion "9.9.9"                           | 1                                               | 1    | same                                      |
| "name": ""                                   | 7                                               | 7    | same                                      |
| cniVersion 1.1.0 (result, STATUS, GC)        | 1 (1.1.1 speaks up to 1.0.0); STATUS 4          | ok   | interfaces[0].mtu is added; STATUS, GC    |
| ndisc_notify on the pod interface            | not set (only arp_notify)                       | 1    | as newer Go releases                      |

A child Go made in a pod is invisible to our mode guard (it keeps no record and the child is not
beside the master), so ours adding another mode next to it switches it as Go would.
"""
from __future__ import annotations

import copy

import pytest

from tests.netns.macvlan_helpers import err, host_local, ok, reservations, run, with_prev
from tests.topology import ip_json, sh
from tests.vm import guest

GO = "/usr/lib/cni/ipvlan"
GO_PATH = "/usr/lib/cni"  # both plugins use the Go host-local
NET = "ivnet"


@pytest.fixture(autouse=True)
def _ipvlan_module():
    guest.modprobe("ipvlan")


def conf(version: str = "1.0.0", **keys) -> dict:
    """An ipvlan config; a key whose value is None is left out."""
    c = {"cniVersion": version, "name": NET, "type": "ipvlan", "master": "dummy0", **keys}
    return {k: v for k, v in c.items() if v is not None}


def call(who: str, cmd: str, config: dict, node, pod, **kw):
    plugin = GO if who == "go" else "ipvlan"
    return run(cmd, config, node, pod, plugin=plugin, path=GO_PATH, timeout=240, **kw)  # the TCG guest is slow


OTHER = {"go": "ours", "ours": "go"}


def pod_state(pod, ifname: str = "net1") -> dict:
    """What the pod holds for ifname, read back with iproute2 and /proc (independent of both plugins)."""
    link = guest.link(ifname, pod.name)
    data = link["linkinfo"]["info_data"]
    addrs = ip_json("addr", "show", "dev", ifname, netns=pod.name)[0]["addr_info"]
    notify = sh("cat", f"/proc/sys/net/ipv4/conf/{ifname}/arp_notify", f"/proc/sys/net/ipv6/conf/{ifname}/ndisc_notify",
                netns=pod.name).split()
    return {
        "mode": data["mode"],
        "flag": next((f for f in ("private", "vepa") if data.get(f)), "bridge"),
        "mtu": link["mtu"], "mac": link["address"], "up": "UP" in link["flags"],
        "addrs": sorted(((a["family"], a["local"], a["prefixlen"], a.get("scope")) for a in addrs), key=str),
        "routes": sorted(((r["dst"], r.get("gateway"), r.get("dev"), r.get("scope"))
                          for r in ip_json("-4", "route", "show", netns=pod.name)), key=str),
        "arp_notify": notify[0], "ndisc_notify": notify[1],
    }


def pod_links(pod) -> set[str]:
    return {l["ifname"] for l in pod.links()}


# ------------------------------------------------------------------ the comparison table
DNS = {"nameservers": ["10.9.0.53"], "search": ["pod.local"]}
PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "dummy0"}],
        "ips": [{"address": "10.7.0.5/24", "gateway": "10.7.0.1", "interface": 0}], "routes": [{"dst": "0.0.0.0/0"}]}

GOOD = {
    # name: (cniVersion, config keys, with host-local IPAM, CNI_ARGS)
    "l2 1.0.0": ("1.0.0", {"mode": "l2"}, True, None),
    "l3 0.4.0 mtu": ("0.4.0", {"mode": "l3", "mtu": 1400}, True, None),
    "l3s 1.0.0 dns": ("1.0.0", {"mode": "l3s", "dns": DNS}, True, None),
    "flag bridge 0.3.1": ("0.3.1", {"flag": "bridge"}, True, None),  # the kernel's default: Go ignores the key
    "l3 0.2.0": ("0.2.0", {"mode": "l3"}, True, None),
    "default master": ("1.0.0", {"master": None}, True, None),
    "chained on prevResult": ("1.0.0", {"master": None, "prevResult": PREV}, False, None),
    "CNI_ARGS IP": ("1.0.0", {}, True, "IgnoreUnknown=1;IP=10.9.0.50"),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_same_result_as_go(dummy_master, pod, tmp_path, case):
    """ADD by each in turn (same ifname, same pod), CHECK and DEL by the other; results and pod state equal."""
    node = dummy_master
    version, keys, with_ipam, args = GOOD[case]
    master_mac = guest.link("dummy0", node.name)["address"]
    if case == "default master":
        guest.ip("addr", "add", "192.0.2.1/24", "dev", "dummy0", netns=node.name)
        guest.ip("route", "add", "default", "via", "192.0.2.254", "dev", "dummy0", netns=node.name)
    results, states = {}, {}
    for who in ("go", "ours"):
        c = conf(version, **keys, ipam=host_local(tmp_path / who) if with_ipam else None)
        results[who] = r = ok(call(who, "ADD", c, node, pod, cni_args=args))
        states[who] = pod_state(pod)
        assert states[who]["mac"] == master_mac and states[who]["up"]
        if version in ("0.4.0", "1.0.0"):
            check = with_prev(dict(c, master="dummy0"), r)  # Go CHECK does not default the master
            ok(call(OTHER[who], "CHECK", check, node, pod, cni_args=args))
            if case == "default master" and who == "go":  # no "master" in CHECK's config:
                err(call("go", "CHECK", with_prev(c, r), node, pod), 999)
                ok(call("ours", "CHECK", with_prev(c, r), node, pod))
        ok(call(OTHER[who], "DEL", c, node, pod, cni_args=args))
        assert pod_links(pod) == {"lo"} and reservations(tmp_path / who, NET) == []
    assert results["ours"] == results["go"]
    assert (states["go"].pop("ndisc_notify"), states["ours"].pop("ndisc_notify")) == ("0", "1")
    assert states["ours"] == states["go"]
    want_mode = keys.get("mode", "l2")
    go_link = (states["go"]["mode"], states["go"]["flag"], states["go"]["mtu"])
    assert go_link == (want_mode, "bridge", keys.get("mtu", 1500))
    if version != "0.2.0":
        ip0 = results["go"]["ips"][0]["address"]
        assert ip0 == {"chained on prevResult": "10.7.0.5/24", "CNI_ARGS IP": "10.9.0.50/24"}.get(case, "10.9.0.2/24")


# ------------------------------------------------------------------ flags, modes and CHECK
def test_flags_modes_and_check_across(dummy_master, pod, tmp_path):
    node = dummy_master
    c = conf(mode="l3", flag="private", ipam=host_local(tmp_path))
    g = ok(call("go", "ADD", c, node, pod, ifname="go0", cid="g"))
    assert pod_state(pod, "go0")["flag"] == "bridge"  # Go 1.1.1 has no "flag": ignored
    e = err(call("ours", "CHECK", with_prev(c, g), node, pod, ifname="go0", cid="g"), 5)
    assert "private" in e["msg"]
    err(call("go", "CHECK", with_prev(dict(c, mode="l2"), g), node, pod, ifname="go0", cid="g"), 999)
    ok(call("go", "DEL", c, node, pod, ifname="go0", cid="g"))

    o = ok(call("ours", "ADD", c, node, pod, ifname="ours0", cid="o"))
    assert (pod_state(pod, "ours0")["mode"], pod_state(pod, "ours0")["flag"]) == ("l3", "private")
    ok(call("go", "CHECK", with_prev(c, o), node, pod, ifname="ours0", cid="o"))  # Go checks no flag
    e = err(call("ours", "CHECK", with_prev(dict(c, mode="l2"), o), node, pod, ifname="ours0", cid="o"), 5)
    assert "mode" in e["msg"]
    # Go adding another mode on the master: the kernel switches our child too, silently
    ok(call("go", "ADD", conf(mode="l2", ipam=host_local(tmp_path)), node, pod, ifname="go1", cid="g1"))
    assert (pod_state(pod, "ours0")["mode"], pod_state(pod, "ours0")["flag"]) == ("l2", "bridge")
    assert len(reservations(tmp_path, NET)) == 2


# ------------------------------------------------------------------ error codes
CHAINED_TWO = dict(PREV, interfaces=[{"name": "dummy0"}, {"name": "other0"}])
BAD = {
    # name: (config keys, CNI_ARGS, Go code, Go leaves its link behind, our code); code 0 = success
    "unknown mode": ({"mode": "foo"}, None, 999, False, 7),
    "unknown flag": ({"flag": "foo"}, None, 0, True, 7),
    "mtu above master": ({"mtu": 9000}, None, 0, True, 7),
    "negative mtu": ({"mtu": -1}, None, 0, True, 7),
    "mtu below 68": ({"mtu": 20}, None, 999, False, 7),
    "mtu wrong type": ({"mtu": "1500"}, None, 999, False, 7),
    "no such master": ({"master": "nope0"}, None, 999, False, 7),
    "no master, no default route": ({"master": None}, None, 999, False, 7),
    "no ipam": ({"ipam": None}, None, 999, True, 0),
    "ipam {}": ({"ipam": {}}, None, 999, True, 0),
    "ipam without type": ({"ipam": {"subnet": "10.9.0.0/24"}}, None, 999, True, 7),
    "ipam not found": ({"ipam": {"type": "nope"}}, None, 999, True, 7),
    "unknown CNI_ARGS": ({}, "FOO=1", 999, True, 999),
    "linkInContainer, master on host": ({"linkInContainer": True}, None, 0, True, 7),
    "chained, two interfaces": ({"master": None, "ipam": None, "prevResult": CHAINED_TWO}, None, 999, False, 7),
    "bad version": ({"cniVersion": "9.9.9"}, None, 1, False, 1),
    "version 1.1.0": ({"cniVersion": "1.1.0", "ipam": None}, None, 1, False, 0),  # (Go host-local: 1.0.0 at most)
    "empty name": ({"name": ""}, None, 7, False, 7),
}


@pytest.mark.parametrize("case", list(BAD))
def test_error_codes_against_go(dummy_master, pod, tmp_path, case):
    node = dummy_master
    keys, args, go_code, go_leaks, our_code = BAD[case]
    for who, code in (("go", go_code), ("ours", our_code)):
        c = conf(**{"ipam": host_local(tmp_path / who), **copy.deepcopy(keys)})
        r = call(who, "ADD", c, node, pod, ifname=f"{who}0", cid=who, cni_args=args)
        if code:
            err(r, code)
        else:
            ok(r)
        present = pod.link(f"{who}0") is not None
        assert present == (go_leaks if who == "go" else code == 0), f"{who}: link present={present}"
        if who == "ours" and code:
            assert reservations(tmp_path / who, NET) == []


def test_name_clash_no_default_route_and_status(dummy_master, pod):
    node = dummy_master
    guest.dummy_add("clash", netns=pod.name)
    c = conf(ipam=None)  # (Go fails on the rename, before IPAM)
    err(call("go", "ADD", c, node, pod, ifname="clash", cid="g"), 999)
    leaked = pod_links(pod) - {"lo", "clash"}
    assert len(leaked) == 1  # Go's link under its temporary name
    err(call("ours", "ADD", c, node, pod, ifname="clash", cid="o"), 4)
    assert pod_links(pod) == {"lo", "clash"} | leaked
    # DEL with no master and no default route: Go resolves the master even for DEL
    c = conf(master=None, ipam=None)
    err(call("go", "DEL", c, node, pod, ifname="clash", cid="g"), 999)
    ok(call("ours", "DEL", c, node, pod, ifname="gone", cid="o"))
    err(call("go", "STATUS", conf(), node, None), 4)  # unknown CNI_COMMAND in 1.1.1
    ok(call("ours", "STATUS", conf("1.1.0"), node, None))
