"""Netlink operations only tests need, over the product's sockets (the plugins never create these).

`RtnlForTests` adds veth/vlan/dummy creation, address and route delete to `Rtnl`;
`RdmaForTests` adds soft RDMA devices (rxe/siw), renames, `rdma link` in short and the netns mode switch.
"""
from __future__ import annotations

import errno

from cni_rdma.netlink.addresses import addr_msg
from cni_rdma.netlink.core import a_be16, a_nest, a_str, a_u16, a_u32, a_u8, attr, attr_map, d_str, d_u32, d_u8
from cni_rdma.netlink.errors import NetlinkError
from cni_rdma.netlink.links import IFLA_ALT_IFNAME, IFLA_IFNAME, IFLA_PROP_LIST, IFLA_VLAN_ID, IFLA_VLAN_PROTOCOL, VLAN_PROTOS, link_attrs
from cni_rdma.netlink.rdma import (
    NETNS_EXCLUSIVE, NETNS_SHARED, PORT_STATES, RDMA_NLDEV_ATTR_DEV_INDEX, RDMA_NLDEV_ATTR_DEV_NAME,
    RDMA_NLDEV_ATTR_LINK_TYPE, RDMA_NLDEV_ATTR_NDEV_INDEX, RDMA_NLDEV_ATTR_NDEV_NAME, RDMA_NLDEV_ATTR_PORT_INDEX,
    RDMA_NLDEV_ATTR_PORT_PHYS_STATE, RDMA_NLDEV_ATTR_PORT_STATE, RDMA_NLDEV_CMD_DELLINK, RDMA_NLDEV_CMD_NEWLINK,
    RDMA_NLDEV_CMD_PORT_GET, RDMA_NLDEV_CMD_SET, RDMA_NLDEV_CMD_SYS_SET, RDMA_NLDEV_SYS_ATTR_NETNS_MODE, Rdma, nl_type,
)
from cni_rdma.netlink.routes import NlRoute, encode_route, route_desc
from cni_rdma.netlink.rtmsg import RTM_DELADDR, RTM_DELROUTE, RTM_NEWLINKPROP, ifinfomsg
from cni_rdma.netlink.rtnl import Rtnl
from cni_rdma.netlink.core import NLM_F_EXCL

VETH_INFO_PEER = 1


class RtnlForTests(Rtnl):
    def link_add_vlan(self, name: str, parent_index: int, vlan_id: int, proto: str = "802.1Q", *,
                      mtu: int | None = None, mac: str | None = None, netns_fd: int | None = None,
                      up: bool = False) -> None:
        if proto not in VLAN_PROTOS:
            raise NetlinkError(errno.EINVAL, "create vlan", name, f"unknown protocol {proto!r}")
        data = a_u16(IFLA_VLAN_ID, vlan_id) + a_be16(IFLA_VLAN_PROTOCOL, VLAN_PROTOS[proto])
        self.newlink(name, "vlan", data, parent_index=parent_index, mtu=mtu, mac=mac, netns_fd=netns_fd, up=up)

    def link_add_veth(self, name: str, peer: str, *, peer_netns_fd: int | None = None, mtu: int | None = None,
                      mac: str | None = None, peer_mac: str | None = None) -> None:
        pbody = [ifinfomsg(), a_str(IFLA_IFNAME, peer), *link_attrs(mac=peer_mac, mtu=mtu, netns_fd=peer_netns_fd)]
        self.newlink(name, "veth", attr(VETH_INFO_PEER, b"".join(pbody)), mtu=mtu, mac=mac)

    def link_add_dummy(self, name: str, *, mtu: int | None = None, mac: str | None = None) -> None:
        self.newlink(name, "dummy", mtu=mtu, mac=mac)

    def addr_del(self, index: int, address) -> None:
        self.request(RTM_DELADDR, addr_msg(index, address, 0, False), op=f"delete address {address}",
                     dev=f"ifindex {index}")

    def route_del(self, route: NlRoute) -> None:
        self.request(RTM_DELROUTE, encode_route(route, delete=True), op="delete route", dev=route_desc(route))


class RdmaForTests(Rdma):
    def netdevs(self) -> dict[str, tuple[str, ...]]:
        """RDMA device name -> names of its ports' netdevs in this netns (`rdma link` in short)."""
        return {d.name: tuple(p.netdev for p in self.ports(d.index) if p.netdev) for d in self.devices()}

    def rename(self, index: int, name: str) -> None:
        body = a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index) + a_str(RDMA_NLDEV_ATTR_DEV_NAME, name)
        self.request(nl_type(RDMA_NLDEV_CMD_SET), body, op="rename RDMA device", dev=f"index {index}")

    def set_netns_mode(self, mode: str) -> None:
        """`rdma system set netns exclusive|shared`; EBUSY while any netns but the initial one exists."""
        if mode not in ("exclusive", "shared"):
            raise ValueError(f"netns mode {mode!r}: expected 'exclusive' or 'shared'")
        body = a_u8(RDMA_NLDEV_SYS_ATTR_NETNS_MODE, NETNS_SHARED if mode == "shared" else NETNS_EXCLUSIVE)
        self.request(nl_type(RDMA_NLDEV_CMD_SYS_SET), body, op="set RDMA netns mode", dev=mode)

    def link_add(self, name: str, link_type: str, netdev: str) -> None:
        """`rdma link add NAME type rxe|siw netdev NETDEV` (the netdev is looked up in this netns)."""
        body = (a_str(RDMA_NLDEV_ATTR_DEV_NAME, name) + a_str(RDMA_NLDEV_ATTR_LINK_TYPE, link_type) +
                a_str(RDMA_NLDEV_ATTR_NDEV_NAME, netdev))
        self.request(nl_type(RDMA_NLDEV_CMD_NEWLINK), body, op=f"create {link_type} RDMA device", dev=name)

    def link_del(self, index: int) -> None:
        """`rdma link delete` of a soft device."""
        self.request(nl_type(RDMA_NLDEV_CMD_DELLINK), a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index),
                     op="delete RDMA device", dev=f"index {index}")
