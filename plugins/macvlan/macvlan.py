"""macvlan: give the pod a macvlan child of a host NIC (shared-mode RDMA over RoCE).

A drop-in for the Go `macvlan` plugin of containernetworking/plugins: the same keys, results and
errors, except that every bad input is a code-7 error naming the key (Go: mostly code 999).

    {"cniVersion": "1.0.0", "name": "rdma-net", "type": "macvlan",
     "master": "ens1f0", "mode": "bridge", "mtu": 1500, "mac": "02:00:00:00:00:01",
     "bcqueuelen": 1000, "linkInContainer": false,
     "ipam": {"type": "host-local", "subnet": "10.56.0.0/16"}}

master     parent NIC; default: the interface of the host's default route
mode       bridge (default), private, vepa, passthru, source
mtu        0 = the master's; at most the master's
mac        precedence: "mac" < CNI_ARGS "MAC=" < runtimeConfig.mac (cni_rdma.confkeys.mac)
bcqueuelen broadcast/multicast receive queue length of the master (kernel default 1000)
linkInContainer  the master lives in the pod netns (e.g. moved there by an earlier plugin)
dad        IPv6 duplicate address detection: optimistic (default), wait (as Go), off (ipconfig.dad_mode)
ipam       optional: without it the interface is L2 only (up, no addresses)
"""
from __future__ import annotations

from cni_rdma import childlink, confkeys, faults, ipam
from cni_rdma.confkeys import get_bool, get_choice, get_int, get_str, q
from cni_rdma.errors import INTERNAL, CniError, config_error
from cni_rdma.netlink.links import Link
from cni_rdma.netlink.rtmsg import ARPHRD_ETHER, ARPHRD_INFINIBAND, IFF_LOOPBACK
from cni_rdma.netns import in_netns
from cni_rdma.record import Record
from cni_rdma.skel import Request
from cni_rdma.types import Interface, Result

ABOUT = "cni-rdma macvlan"
KIND = "macvlan"
MODES = ("bridge", "private", "vepa", "passthru", "source")
# Imported inside add() and check(): a DEL configures no address or route, and every module it imports runs
# before its RTM_DELLINK (cni_rdma.ipconfig brings sysctl and the address and route requests: ~1 ms).
# Frozen, these commands run them with this module's own imports (tools/build_bundle.py, cni_rdma.bundled).
COMMAND_IMPORTS = {"ADD": ("cni_rdma.ipconfig",), "CHECK": ("cni_rdma.ipconfig",)}


class Config(Record):
    """The macvlan keys of a network config, validated (see the module docstring; MAC precedence applied)."""

    master: str
    mode: str
    mtu: int
    mac: str
    bcqueuelen: int
    link_in_container: bool
    has_ipam: bool


def load_conf(req: Request) -> Config:
    raw = req.raw
    return Config(
        master=get_str(raw, "master"),
        mode=get_choice(raw, "mode", MODES, "bridge", "macvlan mode"),
        mtu=get_int(raw, "mtu", 0, lo=0),
        mac=confkeys.mac(req),
        bcqueuelen=get_int(raw, "bcqueuelen", 0, lo=0, hi=0xFFFFFFFF),
        link_in_container=get_bool(raw, "linkInContainer"),
        has_ipam=bool(req.conf.ipam_type),
    )


def require_ethernet(master: Link) -> None:
    """macvlan needs an Ethernet master (the kernel answers a bare EINVAL otherwise): say why, and what works."""
    if master.link_type == ARPHRD_INFINIBAND:
        raise config_error("master", f"{q(master.name)} is an InfiniBand (IPoIB) interface and macvlan needs "
                           "Ethernet MAC addresses: use the ipvlan plugin on it where the kernel takes ipvlan "
                           "over IPoIB (NVIDIA's MLNX_OFED drivers; upstream ipvlan also wants an Ethernet "
                           "master), or give the pod an InfiniBand VF with the sriov plugin")
    if master.link_type != ARPHRD_ETHER or master.flags & IFF_LOOPBACK:
        raise config_error("master", f"{q(master.name)} is not an Ethernet interface (link type "
                           f"{master.link_type}); macvlan needs an Ethernet master")


def add(req: Request) -> Result:
    from cni_rdma import ipconfig  # see COMMAND_IMPORTS

    conf = load_conf(req)
    dad = ipconfig.dad_mode(req.raw)
    master = childlink.find_master(req.netns, conf.master, conf.link_in_container)
    require_ethernet(master)
    childlink.check_mtu(conf.mtu, master)

    def make(nl, name, netns_fd):
        nl.link_add_macvlan(name, master.index, conf.mode, mac=conf.mac or None, mtu=conf.mtu or None,
                            bcqueuelen=conf.bcqueuelen or None, netns_fd=netns_fd)

    with childlink.created(req.netns, req.ifname, make, conf.link_in_container) as link:
        iface = Interface(name=req.ifname, mac=link.mac or "", mtu=link.mtu, sandbox=req.netns)
        if not conf.has_ipam:
            in_netns(req.netns, ipconfig.configure, req.ifname, Result(interfaces=(iface,)), link=link)
            return _checked_result(req, Result(interfaces=(iface,), dns=req.conf.dns))
        with ipam.allocated(req) as allocated:
            faults.point("ipam")
            if not allocated.ips:
                raise CniError(INTERNAL, "IPAM plugin returned missing IP config")
            result = Result(interfaces=(iface,), ips=tuple(_on_first(ip) for ip in allocated.ips),
                            routes=allocated.routes, dns=req.conf.dns)
            in_netns(req.netns, ipconfig.configure, req.ifname, result, dad=dad, link=link)
            return _checked_result(req, result)


def _on_first(ipc):
    return ipc.replace(interface=0)  # every address belongs to interfaces[0]


def _checked_result(req: Request, result: Result) -> Result:
    # Convert now, inside the rollback scope: a result that cannot be printed in the requested
    # version (e.g. L2-only as 0.2.0) fails the ADD cleanly instead of leaking the link.
    result.to_json(req.conf.cni_version)
    faults.point("result")
    return result


def delete(req: Request) -> None:
    # The addresses are released even when the netns is gone, while the kernel deletes the link (delete_beside).
    release = (lambda: ipam.delete(req)) if req.conf.ipam_type else None
    childlink.delete_beside(req.netns, req.ifname, KIND, release)


def check(req: Request) -> None:
    conf = load_conf(req)
    master = childlink.find_master(req.netns, conf.master, conf.link_in_container)
    childlink.check_mtu(conf.mtu, master)
    if conf.has_ipam:
        ipam.check(req)
    prev = req.conf.prev_result
    iface = childlink.prev_interface(prev, req.ifname, req.netns)
    in_netns(req.netns, _check_in_pod, req.ifname, iface, conf, master.index, prev)


def _check_in_pod(ifname: str, iface: Interface, conf: Config, master_index: int, prev: Result) -> None:
    from cni_rdma import ipconfig  # see COMMAND_IMPORTS

    link = childlink.check_pod_link(ifname, KIND, conf.mode, master_index, conf.master or "(default)", iface.mac)
    ipconfig.verify(ifname, prev, link)


def status(req: Request) -> None:
    conf_master = get_str(req.raw, "master")
    if not get_bool(req.raw, "linkInContainer"):
        childlink.master_status(conf_master)
    if req.conf.ipam_type:
        ipam.status(req)


def gc(req: Request) -> None:
    if req.conf.ipam_type:
        ipam.gc(req)

