"""rtnetlink (NETLINK_ROUTE): one socket class over the per-object modules.

    links.py      Link, decode_link, LinkOps        addresses.py  Addr, decode_addr, AddrOps
    routes.py     NlRoute, Nexthop, RouteOps        vfs.py        VfConfig, VfOps (through the PF)
    rtmsg.py      families, message types, headers shared by all four

`Rtnl()` opens its socket in the netns of the calling thread. For another netns, open it inside
`cni_rdma.netns.in_netns`:

    def configure(ifname):
        with Rtnl() as nl:
            link = nl.link_get(name=ifname)
            nl.link_set(link.index, up=True)
    in_netns(netns_path, configure, "net1")

Records are immutable. Addresses are `cni_rdma.ipaddr.IPInterface` values, route destinations
`IPNetwork`, gateways `IPAddress`. Operations only tests need (veth, vlan, dummy, deleting
addresses and routes) live in tests/netlink_ops.py.
"""
from __future__ import annotations

from .addresses import AddrOps
from .core import NETLINK_ROUTE
from .routes import RouteOps
from .vfs import VfOps


class Rtnl(VfOps, AddrOps, RouteOps):
    """An rtnetlink socket in the calling thread's netns. Use as a context manager."""

    protocol = NETLINK_ROUTE
