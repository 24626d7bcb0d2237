#!/usr/bin/env python3
"""Record real kernel rtnetlink replies as hex for the unit tests' decode checks (run as root).

State is built with `ip` in a throwaway netns; the raw RTM_NEWLINK/NEWADDR/NEWROUTE payloads are
read with the project's socket (framing only, no decoding) and written to
tests/unit/data/netlink_replies.json together with what `ip -j` says about the same objects.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from cni_rdma.netlink.core import NetlinkSocket  # noqa: E402
from cni_rdma.netlink import core, links, rtmsg  # noqa: E402
from cni_rdma.netns import in_netns  # noqa: E402

SETUP = """
link add eth0 type veth peer name peer0
link set eth0 up
link set peer0 up
link add mv0 link eth0 address 02:00:00:aa:bb:cc mtu 1400 type macvlan mode private
link add mvs link eth0 type macvlan mode source
link set mvs type macvlan macaddr add 02:00:00:00:00:01
link property add dev eth0 altname uplink-long-alternative
addr add 192.0.2.1/24 dev eth0
addr add 10.1.2.3/16 brd + dev eth0 label eth0:v
addr add 2001:db8::1/64 dev eth0 nodad
addr add 2001:db8:1::1/64 dev peer0 nodad
route add default via 192.0.2.254 dev eth0 metric 10
route add 10.50.0.0/16 nexthop via 192.0.2.10 dev eth0 weight 1 nexthop via 192.0.2.11 dev eth0 weight 3
route add 10.60.0.0/16 via 192.0.2.9 dev eth0 mtu lock 1350 advmss 1300 table 1000 proto static
route add 10.70.0.0/16 via 203.0.113.1 dev eth0 onlink
route add 2001:db8:99::/48 nexthop via 2001:db8::10 dev eth0 weight 2 nexthop via 2001:db8:1::10 dev peer0
"""


def main() -> None:
    ns = f"capture-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for line in SETUP.strip().splitlines():
            subprocess.run(["ip", "-n", ns, *line.split()], check=True)

        def grab():
            with NetlinkSocket() as s:
                body = rtmsg.ifinfomsg() + core.a_u32(links.IFLA_EXT_MASK, links.RTEXT_FILTER_SKIP_STATS)
                links = s.dump(rtmsg.RTM_GETLINK, body, op="dump", reply_type=rtmsg.RTM_NEWLINK)
                addrs = s.dump(rtmsg.RTM_GETADDR, rtmsg.IFADDRMSG.pack(0, 0, 0, 0, 0), op="dump",
                               reply_type=rtmsg.RTM_NEWADDR)
                routes = s.dump(rtmsg.RTM_GETROUTE, rtmsg.RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0), op="dump",
                                reply_type=rtmsg.RTM_NEWROUTE)
            return links, addrs, routes

        links, addrs, routes = in_netns(f"/var/run/netns/{ns}", grab)

        def ipj(*a):
            return json.loads(subprocess.run(["ip", "-j", "-n", ns, *a], check=True, capture_output=True,
                                             text=True).stdout)

        out = {
            "kernel": platform.release(),
            "links": [p.hex() for p in links],
            "addrs": [p.hex() for p in addrs],
            "routes": [p.hex() for p in routes],
            "ip_links": ipj("-d", "link", "show"),
            "ip_addrs": ipj("addr", "show"),
            "ip_routes": ipj("-d", "route", "show", "table", "all") + ipj("-6", "-d", "route", "show", "table", "all"),
        }
        path = os.path.join(ROOT, "tests", "unit", "data", "netlink_replies.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"wrote {path}: {len(links)} links, {len(addrs)} addrs, {len(routes)} routes")
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    main()
