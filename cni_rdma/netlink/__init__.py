"""The lean netlink layer: rtnetlink (`rtnl`) and RDMA nldev (`rdma`), standard library only.

The plugins never import pyroute2 (≈170 ms per process); tests use pyroute2 and `ip -j` as an
independent oracle.

Modules, one per object:

    core.py       socket, framing, attribute codec, `Record` (immutable typed records, fields declared once)
    errors.py     the layer's exception root: `NetlinkError` (errno, op, dev, ext_ack), `NotFound`,
                  `LinkNotFound` (ENODEV), `NetlinkDecodeError` (a malformed reply)
    rtmsg.py      rtnetlink families, message types, headers
    links.py      `Link`, link requests       addresses.py  `Addr`, address requests
    routes.py     `NlRoute`, `Nexthop`        vfs.py        `VfConfig`, VF requests through the PF
    rtnl.py       `Rtnl`: one socket with all of the above
    rdma.py       `Rdma`: RDMA devices, netns mode, moving a device

Namespaces: a netlink socket belongs to the netns of the thread that opened it. Nothing here
enters a namespace by itself; to act inside a pod's netns, open the socket *inside* the function
run by `cni_rdma.netns.in_netns` (a dedicated short-lived thread that did setns):

    from cni_rdma.netns import in_netns
    from cni_rdma.netlink.rtnl import Rtnl

    def setup(ifname, addr):
        with Rtnl() as nl:                       # opened here: lives in the pod netns
            link = nl.link_get(name=ifname)
            nl.addr_add(link.index, addr)
            nl.link_set(link.index, up=True)
    in_netns(pod_netns_path, setup, "net1", "10.1.0.5/24")

Moving things between namespaces takes an fd of the *target* netns (`netns.open_netns(path)`),
e.g. `nl.link_add_macvlan(name, parent_index, netns_fd=fd)` creates the macvlan straight in the
target while looking its parent up in the socket's own netns; `nl.link_set(index, netns_fd=fd)`
moves an existing link.

API (every method sends one request and waits for the kernel's ack; sockets are not thread-safe):

    rtnl.Rtnl()        link_get(name=|index=) -> Link, link_exists(name), links()
                       link_add_macvlan(name, parent_index, mode, *, mac, mtu, netns_fd, txqlen,
                           source_macs, bcqueuelen, up)
                       link_add_ipvlan(name, parent_index, mode, flag, *, mtu, netns_fd, up)
                       newlink(name, kind, data, ...), link_del(index)
                       link_set(index, *, up, mtu, mac, name, netns_fd, txqlen), link_altname_add/del(index, altname)
                       addr_add(index, address, *, nodad, noprefixroute, replace)
                       addrs(index=None, family=None) -> [Addr], wait_dad(index, timeout)
                       route_add(NlRoute, *, replace, append), routes(family=None, table=None, oif=None)
                       vfs(pf_index) -> [VfConfig], vf_set(pf_index, vf, *, mac, vlan, qos, vlan_proto,
                           spoofchk, trust, link_state, min_tx_rate, max_tx_rate, node_guid, port_guid)
    rdma.Rdma()        devices(), device(name=|index=), set_netns(index, netns_fd), netns_mode()
    cni_rdma.sysctl    get(key), set(key, value)  (call inside in_netns for a pod's sysctls)

Operations only tests use (veth/vlan/dummy, deleting addresses and routes, soft RDMA devices, the
RDMA netns-mode switch) are in tests/netlink_ops.py (`RtnlForTests`, `RdmaForTests`).

Errors are not CNI errors: code that means "absent" catches `NotFound` (or `LinkNotFound`), never
the root, so EPERM is never read as "not there"; whatever escapes a plugin is mapped once, in
`cni_rdma.skel.call`, to code 5 with the message "netlink: <op> <dev> failed" and the reason.
"""
