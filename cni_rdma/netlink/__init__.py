"""The lean netlink layer: rtnetlink (`rtnl`) and RDMA nldev (`rdma`), standard library only.

The plugins never import pyroute2 (≈170 ms per process); tests use pyroute2 and `ip -j` as an
independent oracle.

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

Errors are `core.NetlinkError` (a `CniError`) with `.errno`, `.op`, `.dev` and `.ext_ack`;
`core.LinkNotFound` (ENODEV) for missing devices; `core.NetlinkDecodeError` for malformed replies.
"""
