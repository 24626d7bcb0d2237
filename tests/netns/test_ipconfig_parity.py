"""Host tier: what ipconfig applies in the pod beyond addresses (issue 18 + the DAD bullet of issue 13).

- CNI 1.1.0 route attributes from host-local (`routes[].mtu/advmss/priority/table/scope`) land in the
  kernel as route attributes (read back with `ip -j route show table N`), and CHECK finds them.
- IPv6 `keep_addr_on_down=1` in the pod, as Go's ConfigureIface since containernetworking/plugins#1155
  (Debian's Go macvlan 1.1.1 predates it and leaves 0): a link bounce keeps the addresses.
- The `dad` key: "optimistic" (default) returns without waiting for IPv6 DAD while the address is
  usable at once, proven by a process in the pod that binds it and sends from it while the kernel still
  marks it tentative+optimistic; "wait" is Go's (settled before ADD returns); "off" adds with nodad.
  A duplicate: "wait" fails the ADD; "optimistic" turns the address dadfailed (bind refused) and CHECK
  reports it.
"""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.netns.macvlan_helpers import conf, err, host_local, ok, run, with_prev
from tests.topology import ip_json, sh

IFA_F_OPTIMISTIC = 0x04
IFA_F_TENTATIVE = 0x40


def dual(tmp_path, **keys) -> dict:
    return conf("1.1.0", master="eth0", ipam=host_local(tmp_path, v4=True, v6=True), **keys)


def v6_addr(pod, ifname="net1") -> dict:
    found = [a for a in pod.addrs(ifname) if a["family"] == "inet6" and a["scope"] == "global"]
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------ route attributes
def test_route_attributes_reach_the_kernel_and_check(node, pod, tmp_path):
    routes = [{"dst": "0.0.0.0/0"},
              {"dst": "198.51.100.0/24", "mtu": 1400, "advmss": 1360, "priority": 7, "table": 1000},
              {"dst": "203.0.113.0/24", "gw": "10.9.0.254", "table": 1000, "scope": 200},
              {"dst": "2001:db8:77::/48", "gw": "fd00:9::fe", "mtu": 1300, "priority": 9, "table": 1000}]
    c = conf("1.1.0", master="eth0", ipam=host_local(tmp_path, v4=True, v6=True, routes=routes))
    r = ok(run("ADD", c, node, pod))
    assert r["routes"] == routes  # passed through by host-local
    v4 = {x["dst"]: x for x in ip_json("-4", "route", "show", "table", "1000", netns=pod.name)}
    assert v4["198.51.100.0/24"]["gateway"] == "10.9.0.1" and v4["198.51.100.0/24"]["dev"] == "net1"
    assert v4["198.51.100.0/24"]["metric"] == 7
    assert v4["198.51.100.0/24"]["metrics"] == [{"mtu": 1400, "advmss": 1360}]
    assert v4["203.0.113.0/24"]["gateway"] == "10.9.0.254" and v4["203.0.113.0/24"]["scope"] == "site"
    v6 = {x["dst"]: x for x in ip_json("-6", "route", "show", "table", "1000", netns=pod.name)}
    assert v6["2001:db8:77::/48"]["gateway"] == "fd00:9::fe" and v6["2001:db8:77::/48"]["metric"] == 9
    assert v6["2001:db8:77::/48"]["metrics"] == [{"mtu": 1300}]
    main = {x["dst"] for x in ip_json("-4", "route", "show", netns=pod.name)}
    assert "198.51.100.0/24" not in main and "default" in main
    assert ok(run("CHECK", with_prev(c, r), node, pod)) is None
    sh("ip", "-n", pod.name, "route", "del", "198.51.100.0/24", "table", "1000")
    e = err(run("CHECK", with_prev(c, r), node, pod), 5)
    assert "198.51.100.0/24" in e["msg"] and "table 1000" in e["msg"]
    ok(run("DEL", c, node, pod))


# ------------------------------------------------------------------ keep_addr_on_down
def test_ipv6_addresses_survive_a_link_bounce(node, pod, tmp_path):
    r = ok(run("ADD", dual(tmp_path), node, pod))
    v6 = next(ip["address"] for ip in r["ips"] if ":" in ip["address"])
    assert sh("cat", "/proc/sys/net/ipv6/conf/net1/keep_addr_on_down", netns=pod.name).strip() == "1"
    sh("ip", "-n", pod.name, "link", "set", "net1", "down")
    sh("ip", "-n", pod.name, "link", "set", "net1", "up")
    have = {f'{a["local"]}/{a["prefixlen"]}' for a in pod.addrs("net1")}
    assert v6 in have
    ok(run("DEL", dual(tmp_path), node, pod))


# ------------------------------------------------------------------ DAD
_SEND = r"""
import socket, sys
addr = sys.stdin.readline().strip()  # started before the ADD: no process start-up inside the DAD window
flags = next(int(l.split()[4], 16) for l in open("/proc/net/if_inet6")
             if socket.inet_pton(socket.AF_INET6, addr).hex() == l.split()[0])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((addr, 0))
s.sendto(b"hello from the pod", (sys.argv[1], int(sys.argv[2])))
print(flags)
"""

_RECV = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.settimeout(20)
print(s.getsockname()[1], flush=True)
data, peer = s.recvfrom(100)
print(data.decode(), peer[0], flush=True)
"""


def test_optimistic_dad_address_usable_the_moment_add_returns(node, pod, tmp_path):
    """Bind, send, and the datagram arrives while DAD is still running: Linux sends no neighbour solicitation
    from an optimistic address, so without the nodad link-local the datagram would wait for DAD to end."""
    sh("ip", "-n", node.name, "addr", "add", "fd00:9::1/64", "dev", "peer0", "nodad")  # the gateway, on the wire
    # 5 probes: DAD runs 5 s, so "still optimistic after delivery" holds on a loaded machine too
    sh("sysctl", "-q", "-w", "net.ipv6.conf.default.dad_transmits=5", netns=pod.name)
    recv = subprocess.Popen(["ip", "netns", "exec", node.name, "python3", "-c", _RECV, "fd00:9::1"],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = recv.stdout.readline().strip()
        sender = subprocess.Popen(["ip", "netns", "exec", pod.name, "python3", "-c", _SEND, "fd00:9::1", port],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        r = ok(run("ADD", dual(tmp_path), node, pod))
        v6 = next(ip["address"].split("/")[0] for ip in r["ips"] if ":" in ip["address"])
        out, err_ = sender.communicate(v6 + "\n", timeout=30)
        assert sender.returncode == 0, err_
        flags = int(out)
        # Bound and sent while DAD was still running: a plain tentative address refuses bind (EADDRNOTAVAIL).
        assert flags & IFA_F_TENTATIVE and flags & IFA_F_OPTIMISTIC, hex(flags)
        out, _ = recv.communicate(timeout=30)
        assert out.split() == ["hello", "from", "the", "pod", v6]
        a = v6_addr(pod)
        assert a.get("optimistic") and a.get("tentative"), a  # delivered before DAD ended
        ll = [x for x in pod.addrs("net1") if x["family"] == "inet6" and x["scope"] == "link"]
        assert [x.get("nodad") for x in ll] == [True], ll
    finally:
        recv.kill()
        recv.wait()
    # DAD still completes: the address ends up plain (no tentative, optimistic or dadfailed flag)
    deadline = time.monotonic() + 30
    while v6_addr(pod).get("tentative") and time.monotonic() < deadline:
        time.sleep(0.1)
    a = v6_addr(pod)
    assert not any(a.get(k) for k in ("tentative", "optimistic", "dadfailed", "nodad")), a
    assert sh("cat", "/proc/sys/net/ipv6/conf/net1/optimistic_dad", netns=pod.name).strip() == "1"
    ok(run("DEL", dual(tmp_path), node, pod))


def test_dad_wait_is_gos_behaviour_and_off_is_nodad(node, pod, tmp_path):
    ok(run("ADD", dual(tmp_path, dad="wait"), node, pod))
    a = v6_addr(pod)
    assert not any(a.get(k) for k in ("tentative", "optimistic", "nodad")), a
    ok(run("ADD", dual(tmp_path, dad="off"), node, pod, ifname="net2", cid="ctr2"))
    a = v6_addr(pod, "net2")
    assert a.get("nodad") is True and not a.get("tentative"), a


@pytest.mark.parametrize("value", ["optimistc", 1, True])
def test_dad_bad_value_is_code_7_naming_the_key(node, pod, tmp_path, value):
    e = err(run("ADD", dual(tmp_path, dad=value), node, pod), 7)
    assert '"dad"' in e["msg"] or "dad" in e["msg"].split(":")[0], e
    assert pod.link("net1") is None


def test_optimistic_duplicate_goes_dadfailed_and_check_says_so(node, pod, tmp_path):
    """What a duplicate does with the default: the kernel finds it within one DAD probe (a few ms on this
    wire, up to a second on a real fabric). If that happens before ADD looks (one address dump after the
    link comes up), the ADD fails as with "wait" and rolls back; else the ADD succeeds, the address
    turns dadfailed (unusable: bind refused), and CHECK fails naming it. Either way nothing uses the
    address while the peer holds it."""
    sh("ip", "-n", node.name, "addr", "add", "fd00:9::5/64", "dev", "peer0", "nodad")
    ipam = host_local(tmp_path, v4=False, v6=True, r6={"rangeStart": "fd00:9::5", "rangeEnd": "fd00:9::5"})
    c = conf("1.1.0", master="eth0", ipam=ipam)
    add = run("ADD", c, node, pod)
    if add.code != 0:
        e = err(add, 5)
        assert "duplicate address" in e["msg"] and pod.link("net1") is None
        return
    deadline = time.monotonic() + 15
    while not v6_addr(pod).get("dadfailed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert v6_addr(pod).get("dadfailed") is True
    bind = subprocess.run(["ip", "netns", "exec", pod.name, "python3", "-c",
                           "import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(('fd00:9::5', 0))"],
                          capture_output=True, text=True)
    assert bind.returncode != 0 and "Cannot assign requested address" in bind.stderr
    e = err(run("CHECK", with_prev(c, add.json), node, pod), 5)
    assert "fd00:9::5/64" in e["msg"] and "duplicate address detection" in e["msg"]
    ok(run("DEL", c, node, pod))


def test_dual_stack_add_does_not_wait_for_dad(node, pod, tmp_path):
    """Not a timing test: the kernel's own flags say the ADD returned while DAD was still running (a
    "wait" ADD cannot return before the address leaves the tentative state)."""
    ok(run("ADD", dual(tmp_path), node, pod))
    a = v6_addr(pod)
    assert a.get("tentative") is True and a.get("optimistic") is True, json.dumps(a)


# ------------------------------------------------------------------ non-Ethernet master
def test_macvlan_on_a_non_ethernet_master_names_it(node, pod):
    """The kernel refuses macvlan on anything but Ethernet with a bare EINVAL; the plugin reads the master's
    link type first and says so (an IPoIB master gets the ipvlan/IB-VF pointer: tests/unit/test_ipoib_master.py)."""
    e = err(run("ADD", conf(master="lo"), node, pod), 7)
    assert '"master"' in e["msg"] and '"lo"' in e["msg"] and "Ethernet" in e["msg"], e
    assert pod.link("net1") is None
