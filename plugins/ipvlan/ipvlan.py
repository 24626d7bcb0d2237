"""ipvlan: give the pod an ipvlan child of a host NIC (shared-mode RDMA; one MAC, many pods).

A drop-in for the Go `ipvlan` plugin of containernetworking/plugins: the same keys, results and
errors, except that every bad input is a code-7 error naming the key (Go: mostly code 999).

    {"cniVersion": "1.0.0", "name": "rdma-net", "type": "ipvlan",
     "master": "ens1f0", "mode": "l2", "flag": "bridge", "mtu": 1500, "linkInContainer": false,
     "ipam": {"type": "host-local", "subnet": "10.56.0.0/16"}}

master  parent NIC; default: the only named interface of prevResult when chained, else the
        interface of the host's default route
mode    l2 (default), l3, l3s
flag    bridge (default), private, vepa
mtu     0 = the master's; at most the master's
linkInContainer  the master lives in the pod netns
dad     IPv6 duplicate address detection: optimistic (default), wait (as Go), off (ipconfig.dad_mode)
ipam    optional: chained without it, the IPs of prevResult are applied; with neither, L2 only

One mode per master: the kernel keeps mode and flag per master and silently switches every
existing child when a new one asks for another. This plugin refuses that instead: it records each
child it creates (/var/lib/cni/ipvlan/), and before creating one compares the requested mode and
flag with the live children it knows of and with those visible next to the master.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Optional

from cni_rdma import childlink, faults, ipam
from cni_rdma.confkeys import get_bool, get_choice, get_int, get_str, q
from cni_rdma.errors import INTERNAL, INVALID_CONFIG, CniError
from cni_rdma.netlink.errors import LinkNotFound, NetlinkError
from cni_rdma.netlink.links import Link, LinkOps
from cni_rdma.netns import NetnsNotFound, in_netns
from cni_rdma.record import Record
from cni_rdma.skel import Request
from cni_rdma.state import Store
from cni_rdma.types import Interface, Result

ABOUT = "cni-rdma ipvlan"
KIND = "ipvlan"
MODES = ("l2", "l3", "l3s")
FLAGS = ("bridge", "private", "vepa")
# Imported inside add() and check(): a DEL configures no address or route, and every module it imports runs
# before its RTM_DELLINK (cni_rdma.ipconfig brings sysctl and the address and route requests: ~1 ms).
# Frozen, these commands run them with this module's own imports (tools/build_bundle.py, cni_rdma.bundled).
COMMAND_IMPORTS = {"ADD": ("cni_rdma.ipconfig",), "CHECK": ("cni_rdma.ipconfig",)}


class Config(Record):
    """The ipvlan keys of a network config, validated (master from prevResult when chained)."""

    master: str
    mode: str
    flag: str
    mtu: int
    link_in_container: bool
    has_ipam: bool


def load_conf(req: Request, chained_master: bool = True) -> Config:
    """chained_master: take an unset master from prevResult's single named interface (ADD, not CHECK)."""
    raw = req.raw
    master = get_str(raw, "master")
    prev = req.conf.prev_result
    if not master and prev is not None and chained_master:
        named = [i for i in prev.interfaces if i.name]
        if len(prev.interfaces) != 1 or not named:
            raise CniError(INVALID_CONFIG, 'invalid "master": not set, and prevResult lacks a single named '
                                           'interface to chain on (chained master failure)')
        master = named[0].name
    return Config(
        master=master,
        mode=get_choice(raw, "mode", MODES, "l2", "ipvlan mode"),
        flag=get_choice(raw, "flag", FLAGS, "bridge", "ipvlan flag"),
        mtu=get_int(raw, "mtu", 0, lo=0),
        link_in_container=get_bool(raw, "linkInContainer"),
        has_ipam=bool(req.conf.ipam_type),
    )


# ------------------------------------------------------------------ one mode per master
def _store() -> Store:
    """The child records, under the state root (cni_rdma.state: CNI_RDMA_STATE_ROOT or /var/lib/cni)."""
    return Store("ipvlan")


def _child_record(req: Request) -> str:
    # container IDs are validated by the skeleton; interface names may hold any byte but / : and blanks
    return f"{req.container_id}.{req.ifname.encode().hex()}"


def _host_ns() -> str:
    """Identity of the netns this plugin runs in: master names are only unique within one."""
    st = posix.stat("/proc/self/ns/net")
    return f"{st.st_dev}:{st.st_ino}"


def _live_mode(netns: str, ifname: str) -> Optional[tuple[str, str]]:
    """(mode, flag) of a recorded child if it still exists, else None (a stale record)."""
    def look() -> Optional[tuple[str, str]]:
        with LinkOps() as nl:  # links only, as cni_rdma.childlink
            try:
                link = nl.link_get(name=ifname)
            except LinkNotFound:
                return None
            return (link.mode or "", link.flag or "") if link.kind == KIND else None
    try:
        return in_netns(netns, look)
    except NetnsNotFound:
        return None


def _siblings(master: Link) -> list[Link]:
    """ipvlan children of master visible in the master's own netns."""
    with LinkOps() as nl:
        return [ln for ln in nl.links(kind=KIND)
                if ln.kind == KIND and ln.link == master.index and ln.link_netnsid is None]


def refuse_conflict(req: Request, conf: Config, master: Link) -> None:
    """Raise if master already has ipvlan children in another mode or flag."""
    want = (conf.mode, conf.flag)
    siblings = in_netns(req.netns, _siblings, master) if conf.link_in_container else _siblings(master)
    for sib in siblings:
        if (sib.mode, sib.flag) != want:
            _conflict(conf, master, f"{sib.name} ({sib.mode} {sib.flag})")
    if conf.link_in_container:
        return  # a master inside the pod belongs to that pod alone: its siblings are all visible
    host = _host_ns()
    for name in _store().names():
        rec = _store().read(name) or {}
        if (rec.get("master"), rec.get("hostns")) != (master.name, host) or (rec.get("mode"), rec.get("flag")) == want:
            continue
        live = _live_mode(str(rec.get("netns", "")), str(rec.get("ifname", "")))
        if live is None:
            _store().delete(name)  # the pod or its link is gone without a DEL
        elif live != want:
            _conflict(conf, master, f"{rec.get('ifname')} of container {rec.get('containerID')} ({live[0]} {live[1]})")


def _conflict(conf: Config, master: Link, who: str) -> None:
    raise CniError(INVALID_CONFIG, f'invalid "mode": master {q(master.name)} already has an ipvlan child {who}; '
                                   f"the kernel would switch every child to {conf.mode} {conf.flag}, refusing")


# ------------------------------------------------------------------ commands
def add(req: Request) -> Result:
    from cni_rdma import ipconfig  # see COMMAND_IMPORTS

    conf = load_conf(req)
    ipconfig.dad_mode(req.raw)  # a bad value fails before anything is created
    master = childlink.find_master(req.netns, conf.master, conf.link_in_container)
    childlink.check_mtu(conf.mtu, master)

    def make(nl, name, netns_fd):
        nl.link_add_ipvlan(name, master.index, conf.mode, conf.flag, mtu=conf.mtu or None, netns_fd=netns_fd)

    with _store().lock():
        refuse_conflict(req, conf, master)
        with childlink.created(req.netns, req.ifname, make, conf.link_in_container) as link:
            iface = Interface(name=req.ifname, mac=link.mac or "", mtu=link.mtu, sandbox=req.netns)
            prev = req.conf.prev_result
            if conf.has_ipam:
                with ipam.allocated(req) as allocated:
                    faults.point("ipam")
                    if not allocated.ips:
                        raise CniError(INTERNAL, "IPAM plugin returned missing IP config")
                    result = _configure(req, iface, allocated, link)
                    _remember(req, conf, master)
                    return result
            if prev is not None and prev.ips:
                result = _configure(req, iface, prev, link)  # chained: apply the IPs an earlier plugin allocated
            else:
                result = _configure(req, iface, Result(), link)  # L2 only: just up
            _remember(req, conf, master)
            return result


def _configure(req: Request, iface: Interface, source: Result, link: Link) -> Result:
    from cni_rdma import ipconfig  # see COMMAND_IMPORTS

    result = Result(interfaces=(iface,), ips=tuple(ip.replace(interface=0) for ip in source.ips),
                    routes=source.routes, dns=req.conf.dns)
    in_netns(req.netns, ipconfig.configure, req.ifname, result, dad=ipconfig.dad_mode(req.raw), link=link)
    result.to_json(req.conf.cni_version)  # fail inside the rollback scope if it cannot be printed
    faults.point("result")
    return result


def _remember(req: Request, conf: Config, master: Link) -> None:
    if conf.link_in_container:
        return
    _store().write(_child_record(req), {"containerID": req.container_id, "ifname": req.ifname, "netns": req.netns,
                                    "master": master.name, "hostns": _host_ns(), "mode": conf.mode,
                                    "flag": conf.flag})


def delete(req: Request) -> None:
    # The addresses are released even when the netns is gone, while the kernel deletes the link (delete_beside).
    release = (lambda: ipam.delete(req)) if req.conf.ipam_type else None
    childlink.delete_beside(req.netns, req.ifname, KIND, release)
    try:
        with _store().lock():
            _store().delete(_child_record(req))
    except CniError:
        pass


def check(req: Request) -> None:
    conf = load_conf(req, chained_master=False)
    if conf.has_ipam:
        ipam.check(req)
    prev = req.conf.prev_result
    iface = childlink.prev_interface(prev, req.ifname, req.netns)
    master = childlink.find_master(req.netns, conf.master, conf.link_in_container)
    in_netns(req.netns, _check_in_pod, req.ifname, iface, conf, master.index, prev)


def _check_in_pod(ifname: str, iface: Interface, conf: Config, master_index: int, prev: Result) -> None:
    from cni_rdma import ipconfig  # see COMMAND_IMPORTS

    link = childlink.check_pod_link(ifname, KIND, f"{conf.mode} {conf.flag}", master_index,
                                    conf.master or "(default)", iface.mac)
    ipconfig.verify(ifname, prev, link)


def status(req: Request) -> None:
    if not get_bool(req.raw, "linkInContainer") and not req.conf.prev_result:
        childlink.master_status(get_str(req.raw, "master"))
    if req.conf.ipam_type:
        ipam.status(req)


def gc(req: Request) -> None:
    if req.conf.ipam_type:
        ipam.gc(req)
    # Forget children whose pod or link is gone (a DEL that never came); best effort.
    try:
        with _store().lock():
            for name in _store().names():
                rec = _store().read(name) or {}
                if _live_mode(str(rec.get("netns", "")), str(rec.get("ifname", ""))) is None:
                    _store().delete(name)
    except (CniError, NetlinkError):
        pass
