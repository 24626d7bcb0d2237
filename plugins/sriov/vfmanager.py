"""The sriov plugin's VF manager: every kernel change the commands make to a VF, behind one small
interface (`VfManager`), so the commands' ordering and rollback are unit-tested against a fake
(tests/unit/test_sriov_commands.py) and the kernel work here against real links (tests/netns, tests/vm).

    snapshot(vf, applied)        -> OrigVfState   read only: the VF netdev in the host + the PF's view of it
    apply(st)                                     PF-side settings (vlan, admin MAC, spoofchk, trust, ...)
    move_in(st, pod_fd)                           host -> pod under st.tmp_name (down first)
    setup_in_pod(st, pod_fd, up) -> PodLink       altnames dropped, renamed to CNI_IFNAME, MTU, MAC, up
    restore(st, pod_netns)       -> str           everything back, from wherever an interrupted ADD/DEL left it
    configure_pod(st, result, dad, mac)           addresses, routes, gratuitous ARP: one entry into the pod netns
    pf_view(st), pod_link(st)                     what CHECK compares

`restore` depends on the VfState alone (not on how far ADD got), so a record read from another
plugin's state (sriov-cni's cache) restores through it as well. It looks for the netdev in the pod
(by its pod index, the temporary name, CNI_IFNAME) and then in the host (sysfs, the original name,
the temporary name, CNI_IFNAME: a physical VF returns to the host when its netns dies), and only
touches a link that is provably this VF (its PCI parent, or for stand-ins without one, a MAC the
record knows).

Per call, every lookup is targeted (a link by name or index, never a dump), one host rtnetlink socket
serves the whole call, and the PF's VF table (IFLA_VFINFO_LIST: the kernel has no per-VF query, the
reply grows with the PF's VF count) is read once where a decision needs it: the snapshot, the restore
check, and the read-back of an admin MAC. A plain lookup of the PF carries no VF table. See
bench/rails.md for the counts.

MAC changes are retried on a bounded schedule like sriov-cni's (utils.Retry(20, 100ms) around
SetVFHardwareMAC / SetVFEffectiveMAC): i40e/iavf apply a VF MAC asynchronously and answer EBUSY or
EAGAIN meanwhile, or report the old MAC for a moment. Only those transient answers are retried here;
EINVAL/EPERM fail at once.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Callable, Optional

    from cni_rdma.log import Logger
    from cni_rdma.netlink.links import Link
    from cni_rdma.netlink.rtnl import Rtnl
    from cni_rdma.types import Result

from cni_rdma import errnos, faults, netns
from cni_rdma.errors import INVALID_CONFIG, IO_FAILURE, CniError
from cni_rdma.netlink.errors import LinkNotFound, NetlinkError
from cni_rdma.netlink.rtmsg import ARPHRD_INFINIBAND
from cni_rdma.sysfs import Sysfs, VfInfo, normalize_pci

from .vfstate import OrigVfState, VfState

# Sleeps between the attempts of a MAC change: 20 attempts, 100 ms apart (sriov-cni's schedule).
MAC_RETRY_SLEEPS = (0.1,) * 19
_TRANSIENT = frozenset({errnos.EBUSY, errnos.EAGAIN})


class PodLink:
    """The VF netdev as the pod sees it."""

    __slots__ = ("index", "mac", "mtu", "up")
    index: int
    mac: str
    mtu: int
    up: bool

    def __init__(self, index: int, mac: str, mtu: int, up: bool = False) -> None:
        self.index, self.mac, self.mtu, self.up = index, mac, mtu, up


class VfManager:
    """The interface the commands use (see the module docstring); NetlinkVfManager implements it."""

    def snapshot(self, vf: VfInfo, applied: dict, host_ifname: str = "") -> OrigVfState:
        raise NotImplementedError

    def apply(self, st: VfState) -> None:
        raise NotImplementedError

    def move_in(self, st: VfState, pod_fd: int) -> None:
        raise NotImplementedError

    def setup_in_pod(self, st: VfState, pod_fd: int, up: bool) -> PodLink:
        raise NotImplementedError

    def restore(self, st: VfState, pod_netns: str) -> str:
        """Give the VF back; answers where its netdev was found: "pod", "host", "gone" or "dpdk"."""
        raise NotImplementedError

    def isolate_rdma(self, st: VfState, pod_fd: int) -> None:
        """rdmaIsolation: move st.rdma_dev (the VF's RDMA device) into the pod netns; restore moves it back."""
        raise NotImplementedError

    def configure_pod(self, st: VfState, result: Result, dad: str, mac: str) -> None:
        """The IPAM result on the pod interface (cni_rdma.ipconfig.configure), then a gratuitous ARP for its
        IPv4 addresses (best effort)."""
        raise NotImplementedError

    def pf_view(self, st: VfState) -> Optional[dict]:
        """The PF's current view of the VF (PF_KEYS -> value; None where unreported), None if absent."""
        raise NotImplementedError

    def pod_link(self, st: VfState) -> Optional[PodLink]:
        """CNI_IFNAME in the pod, if it is there."""
        raise NotImplementedError


def set_mac_with_retry(set_mac: Callable[[], None], read_mac: Callable[[], Optional[str]], mac: str, what: str,
                       fault: str, sleeps: tuple[float, ...] = MAC_RETRY_SLEEPS,
                       sleep: Optional[Callable[[float], None]] = None) -> int:
    """Set a MAC and read it back until the kernel reports it; transient refusals are retried on the
    schedule `sleeps`. Answers the number of attempts; CniError once the schedule is spent."""

    if sleep is None:
        import time

        sleep = time.sleep
    last = ""
    for attempt in range(1, len(sleeps) + 2):
        try:
            if faults.transient(fault):
                raise NetlinkError(errnos.EBUSY, f"set {what} MAC", mac, "injected test fault")
            set_mac()
        except NetlinkError as e:
            if e.errno not in _TRANSIENT:
                raise
            last = str(e)
        else:
            have = read_mac()
            if have == mac:
                return attempt
            last = f"the kernel still reports {have}"
        if attempt <= len(sleeps):
            sleep(sleeps[attempt - 1])
    raise CniError(IO_FAILURE, f"{what}: MAC {mac} not applied after {len(sleeps) + 1} attempts "
                               f"over {sum(sleeps):.1f}s", last)


def _is_this_vf(link: Link, st: VfState) -> bool:
    """A link is the record's VF: its PCI parent says so, or (stand-ins without one) it carries a MAC
    the record knows. Never touch a look-alike: a pod's own net1, another VF."""
    if link.parent_dev:
        return normalize_pci(link.parent_dev) == st.device_id
    return link.mac in st.known_macs()


def _drop_altnames(nl: Rtnl, link: Link, keep: tuple[str, ...] = ()) -> None:
    """Remove a VF's alternative names (but keep): an altname equal to a name the VF is renamed to
    makes that rename fail with EEXIST (sriov-cni #292, #445)."""

    for alt in link.altnames:
        if alt not in keep:
            try:
                nl.link_altname_del(link.index, alt)
            except NetlinkError:  # gone meanwhile: fine
                pass


class NetlinkVfManager(VfManager):
    """The real VF manager: rtnetlink in the host and, through cni_rdma.netns, in the pod."""

    def __init__(self, sysfs: Sysfs, log: Logger) -> None:
        self.sysfs = sysfs
        self.log = log
        self._nl: Optional[Rtnl] = None
        self._pf_index: dict[str, int] = {}  # PF netdev name -> ifindex, as this call found it

    def _host(self) -> Rtnl:
        """The call's rtnetlink socket in the host netns (opened here, in the main thread, on first use;
        closed with the process)."""
        if self._nl is None:
            from cni_rdma.netlink.rtnl import Rtnl

            self._nl = Rtnl()
        return self._nl

    def _pf(self, nl: Rtnl, name: str) -> int:
        if name not in self._pf_index:
            self._pf_index[name] = nl.link_index(name)  # no VF table: just the index
        return self._pf_index[name]

    # ------------------------------------------------------------------------------ snapshot
    def snapshot(self, vf: VfInfo, applied: dict, host_ifname: str = "") -> OrigVfState:
        pf_name = vf.pf_netdevs[0]
        nl = self._host()
        try:
            pf, reported = nl.pf_get(name=pf_name, vf=vf.vf_id)  # the one read of the VF table in ADD
        except LinkNotFound as e:
            raise _context(f"PF netdev {pf_name} of VF {vf.pci}", e) from None
        self._pf_index[pf_name] = pf.index
        if "node_guid" in applied and pf.link_type != ARPHRD_INFINIBAND:
            raise CniError(INVALID_CONFIG, "an InfiniBand GUID (runtimeConfig.infinibandGUID or args.cni.guid) "
                                           f"needs an InfiniBand VF: VF {vf.pci} belongs to an Ethernet PF",
                           f"PF {pf.name} has link type {pf.link_type}, not {ARPHRD_INFINIBAND} (InfiniBand)")
        state = reported[0] if reported else None
        if state is None and applied:
            raise CniError(IO_FAILURE, f"PF {pf.name} does not report VF {vf.vf_id}",
                           f"cannot apply {', '.join(sorted(applied))} through it (is sriov_numvfs set?)")
        orig = OrigVfState()
        if state is not None:
            orig = OrigVfState(pf_reported=True, admin_mac=state.mac, vlan=state.vlan, qos=state.qos,
                               vlan_proto=state.vlan_proto, spoofchk=state.spoofchk, trust=state.trust,
                               link_state=state.link_state, min_tx_rate=state.min_tx_rate,
                               max_tx_rate=state.max_tx_rate, node_guid=state.node_guid,
                               port_guid=state.port_guid)
        if vf.userspace:
            _original_guids(orig, None, applied)
            return orig
        name = host_ifname or vf.netdevs[0]
        try:
            link = nl.link_get(name=name)
        except LinkNotFound as e:  # only "not found" means that: EPERM and the like propagate as they are
            raise _context(f"VF {vf.pci} netdev {name} (sysfs) is not in the host netns", e) from None
        orig.host_ifname, orig.host_index, orig.effective_mac = link.name, link.index, link.mac or ""
        orig.mtu, orig.up, orig.altnames = link.mtu, link.up, tuple(link.altnames)
        _original_guids(orig, link.mac, applied)
        return orig

    # ------------------------------------------------------------------------ PF-side settings
    def apply(self, st: VfState) -> None:
        try:
            self._set_pf(st, st.applied)
        except (CniError, NetlinkError) as e:
            raise _context(f"configuring VF {st.vf_id} of {st.pf}", e) from None
        if "node_guid" in st.applied and not st.dpdk:
            rebind_vf(self.sysfs, st.device_id)  # the netdev is re-created: move_in finds it again

    def _set_pf(self, st: VfState, settings: dict) -> None:
        """vf_set through the PF; the admin MAC last, retried until the PF reports it."""
        if not settings:
            return
        rest = {k: v for k, v in settings.items() if k != "mac"}
        nl = self._host()
        pf_index = self._pf(nl, st.pf)
        if rest:
            nl.vf_set(pf_index, st.vf_id, **rest)
        mac = settings.get("mac")
        if mac is not None:
            def read() -> Optional[str]:
                vf = nl.vf_get(pf_index, st.vf_id)
                return None if vf is None else vf.mac

            set_mac_with_retry(lambda: nl.vf_set(pf_index, st.vf_id, mac=mac), read, mac,
                               f"VF {st.vf_id} of {st.pf} admin", "vf-admin-mac")

    # ----------------------------------------------------------------------------- into the pod
    def move_in(self, st: VfState, pod_fd: int) -> None:
        """Down, then into the pod under the temporary name, in one message: the host never sees a rename."""
        nl = self._host()
        index = self._host_index(nl, st)
        nl.link_set(index, up=False)
        nl.link_set(index, name=st.tmp_name, netns_fd=pod_fd)

    def _host_index(self, nl: Rtnl, st: VfState) -> int:
        """The VF netdev in the host now: the snapshot's, or, when a driver rebind (a new IB GUID) re-created
        it under a new index and maybe a new name, the one sysfs names for the VF."""
        try:
            link = nl.link_get(index=st.orig.host_index)
            if _is_this_vf(link, st):
                return link.index
        except LinkNotFound:
            pass
        for name in self.sysfs.netdevs(st.device_id):
            try:
                return nl.link_index(name)
            except LinkNotFound:
                pass
        raise CniError(IO_FAILURE, f"VF {st.device_id}: its netdev {st.orig.host_ifname} is no longer in the host")

    def setup_in_pod(self, st: VfState, pod_fd: int, up: bool) -> PodLink:
        return netns.in_netns_fd(pod_fd, _setup_here, st.tmp_name, st.ifname, st.want_mac, st.want_mtu, up,
                                 st.netns, _path=st.netns)

    # ----------------------------------------------------------------------------------- restore
    def restore(self, st: VfState, pod_netns: str) -> str:
        """PF side first (some drivers refuse netdev changes under an admin MAC), then the netdev."""
        if st.rdma_dev:
            self._return_rdma(st, pod_netns)
        self._restore_pf(st)
        if st.dpdk or not st.orig.host_ifname:
            return "dpdk"
        where = "pod"
        link = None
        nl = self._host()
        pod_fd = _open_alive(pod_netns)
        if pod_fd is not None:
            host_fd = netns.open_netns(netns.current_netns_path())  # the main thread never leaves the host
            try:
                name = netns.in_netns_fd(pod_fd, _out_of_pod, st, host_fd, _path=pod_netns)
            finally:
                posix.close(host_fd)
                posix.close(pod_fd)
            if name:
                link = nl.link_get(name=name)
        if link is None:
            where = "host"
            link = self._find_in_host(st)
        if link is None:
            self.log.warning(f"VF {st.device_id} netdev not found in the pod or the host; nothing to restore")
            return "gone"
        _restore_host_netdev(nl, link, st, self.log)
        return where

    # ----------------------------------------------------------------- rdmaIsolation (ib-sriov-cni)
    def isolate_rdma(self, st: VfState, pod_fd: int) -> None:
        from plugins.rdma import rdma

        with rdma._rdma_socket() as nl:  # one RDMA socket for the mode check and the move
            rdma.ensure_exclusive(nl)  # ib-sriov-cni: EnsureRdmaSystemMode
            if not rdma._move_here_to(st.rdma_dev, pod_fd, f"the pod netns {st.netns}", nl):
                raise CniError(rdma.ERR_DEVICE,
                               f"RDMA device {st.rdma_dev} of VF {st.device_id} is not in the host netns")

    def _return_rdma(self, st: VfState, pod_netns: str) -> None:
        """First on the way back (ib-sriov-cni does it before ResetVFConfig): the RDMA device to the host.
        A pod netns that is gone returns it by itself (the kernel, when the netns dies)."""
        from plugins.rdma import rdma

        if not netns.netns_alive(pod_netns):
            return
        try:
            rdma._move_back(pod_netns, st.rdma_dev)
        except (CniError, NetlinkError) as e:
            self.log.warning(f"RDMA device {st.rdma_dev} of VF {st.device_id} not moved back: {e}")

    def _restore_pf(self, st: VfState) -> None:
        back = st.restore_pf()
        if not back:
            return
        try:
            pf, reported = self._host().pf_get(name=st.pf, vf=st.vf_id)
        except LinkNotFound:
            self.log.warning(f"PF {st.pf} is gone; nothing to reset for VF {st.vf_id}")
            return
        if not reported:
            self.log.warning(f"PF {st.pf} no longer has VF {st.vf_id} (sriov_numvfs lowered?); nothing to reset")
            return
        self._pf_index[st.pf] = pf.index
        self._set_pf(st, back)
        if "node_guid" in back and not st.dpdk:
            rebind_vf(self.sysfs, st.device_id)  # the netdev reappears in the host: found there by sysfs

    def _find_in_host(self, st: VfState) -> Optional[Link]:
        """The VF netdev in the host: where sysfs says, or under any name an interrupted ADD or a dying
        netns left it (a physical VF returns to the host under its pod name when the netns goes)."""
        candidates = (*self.sysfs.netdevs(st.device_id), st.orig.host_ifname, st.tmp_name, st.ifname)
        nl = self._host()
        for name in dict.fromkeys(candidates):
            try:
                link = nl.link_get(name=name)
            except LinkNotFound:
                continue
            if _is_this_vf(link, st):
                return link
        return None

    def configure_pod(self, st: VfState, result: Result, dad: str, mac: str) -> None:
        """Addresses and routes, then the gratuitous ARP, in one thread inside the pod netns."""
        v4 = [ip.address.ip for ip in result.ips if ip.address.version == 4]
        netns.in_netns(st.netns, _configure_here, st.ifname, result, dad, mac, v4)

    # ------------------------------------------------------------------------------------- CHECK
    def pf_view(self, st: VfState) -> Optional[dict]:
        from .vfstate import PF_KEYS

        _pf, reported = self._host().pf_get(name=st.pf, vf=st.vf_id)
        return {k: getattr(reported[0], k) for k in PF_KEYS} if reported else None

    def pod_link(self, st: VfState) -> Optional[PodLink]:
        return netns.in_netns(st.netns, _pod_link_here, st.ifname)


# ------------------------------------------------------------ run inside the pod netns (own thread)
def _setup_here(tmp: str, ifname: str, mac: str, mtu: int, up: bool, where: str) -> PodLink:
    """Pod side of ADD: drop altnames, final name and MTU (one message), MAC (retried), up."""
    from cni_rdma.netlink.rtnl import Rtnl

    with Rtnl() as nl:
        link = nl.link_get(name=tmp)
        _drop_altnames(nl, link)  # first: an altname of its own equal to ifname would look like a clash
        if nl.link_exists(ifname):
            raise CniError(INVALID_CONFIG, f"interface {ifname} already exists in the pod netns {where}")
        index = link.index
        nl.link_set(index, name=ifname, mtu=mtu or None)
        if mac and link.mac != mac:
            set_mac_with_retry(lambda: nl.link_set(index, mac=mac), lambda: nl.link_get(index=index).mac, mac,
                               f"VF netdev {ifname}", "vf-mac")
        if up:
            nl.link_set(index, up=True)
        link = nl.link_get(index=index)
        return PodLink(link.index, link.mac or "", link.mtu, link.up)


def _configure_here(ifname: str, result: Result, dad: str, mac: str, v4: list) -> None:
    """Pod side of ADD's addressing: ipconfig (the shared core), then the gratuitous ARP (best effort, as
    sriov-cni): a re-used address moved to a new MAC. arp_notify only fires when a link comes up with
    addresses already on it; IPv6 gets its unsolicited NA from ndisc_notify when DAD completes."""
    from cni_rdma import ipconfig

    ipconfig.configure(ifname, result, dad=dad)
    if v4 and mac:
        try:
            _announce_here(ifname, mac, v4)
        except (CniError, NetlinkError, OSError):
            pass


def _announce_here(ifname: str, mac: str, v4: list, wait: float = 0.2) -> None:
    import _socket  # the C module: socket.py pulls in enum and selectors (~6 ms)
    import struct
    import time

    from cni_rdma.netlink.core import mac_bytes
    from cni_rdma.netlink.rtnl import Rtnl

    with Rtnl() as nl:  # a VF may take a moment to report carrier
        deadline = time.monotonic() + wait
        while not nl.link_get(name=ifname).carrier and time.monotonic() < deadline:
            time.sleep(0.02)
    hw = mac_bytes(mac)
    try:
        s = _socket.socket(_socket.AF_PACKET, _socket.SOCK_RAW)
    except OSError:
        return
    try:
        s.bind((ifname, 0))
        for ip in v4:
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, hw, ip.packed, b"\0" * 6, ip.packed)
            s.send(b"\xff" * 6 + hw + struct.pack("!H", 0x0806) + arp)
    except OSError:
        pass
    finally:
        s.close()


def _pod_link_here(ifname: str) -> Optional[PodLink]:
    from cni_rdma.netlink.rtnl import Rtnl

    with Rtnl() as nl:
        try:
            link = nl.link_get(name=ifname)
        except LinkNotFound:
            return None
        return PodLink(link.index, link.mac or "", link.mtu, link.up)


def _out_of_pod(st: VfState, host_fd: int) -> Optional[str]:
    """Pod side of DEL: find the VF (pod index, temporary name, CNI_IFNAME), take it down, drop its
    altnames, and move it to the host under its original name in one message (the temporary one if
    the host has a device of that name). Answers its name in the host; None when not in the pod."""
    from cni_rdma.netlink.rtnl import Rtnl

    with Rtnl() as nl:
        link = None
        for key in (st.pod_index, st.tmp_name, st.ifname):
            if not key:
                continue
            try:
                found = nl.link_get(index=key) if isinstance(key, int) else nl.link_get(name=key)
            except LinkNotFound:
                continue
            if _is_this_vf(found, st):
                link = found
                break
        if link is None:
            return None
        if link.up:
            nl.link_set(link.index, up=False)
        _drop_altnames(nl, link)
        for name in (st.orig.host_ifname, st.tmp_name):
            try:
                nl.link_set(link.index, name=name, netns_fd=host_fd)
                return name
            except NetlinkError as e:
                if e.errno != errnos.EEXIST:
                    raise
    raise CniError(IO_FAILURE, f"VF {st.device_id}: cannot move it to the host",
                   f"the host has devices named {st.orig.host_ifname} and {st.tmp_name}")


def _open_alive(path: str) -> Optional[int]:
    """An fd of the netns at path, None when it is gone (netns_alive and the entry share one open)."""
    try:
        return netns.open_netns(path)
    except CniError:
        return None


# -------------------------------------------------------------------------- back in the host
def _restore_host_netdev(nl: Rtnl, link: Link, st: VfState, log: Logger) -> None:
    """In the host netns: the VF netdev (as just looked up) gets its original name, MTU, MAC, altnames and
    admin state back."""

    orig = st.orig
    index = link.index
    if link.up:
        nl.link_set(index, up=False)
    _drop_altnames(nl, link, keep=orig.altnames)
    rename = orig.host_ifname if link.name != orig.host_ifname else None
    mtu = orig.mtu if orig.mtu and link.mtu != orig.mtu else None
    try:
        if rename or mtu:
            nl.link_set(index, name=rename, mtu=mtu)
    except NetlinkError as e:
        if e.errno != errnos.EEXIST or rename is None:
            raise
        log.warning(f"VF {st.device_id}: the host already has a device named {rename}; it stays {link.name}")
        if mtu:
            nl.link_set(index, mtu=mtu)
    if orig.effective_mac and link.mac != orig.effective_mac:
        mac = orig.effective_mac
        set_mac_with_retry(lambda: nl.link_set(index, mac=mac), lambda: nl.link_get(index=index).mac, mac,
                           f"VF netdev {orig.host_ifname}", "vf-mac")
    have = set(nl.link_get(index=index).altnames) if orig.altnames else set()
    for alt in orig.altnames:
        if alt not in have:
            try:
                nl.link_altname_add(index, alt)
            except NetlinkError:  # taken meanwhile by another device: leave it
                pass
    if orig.up:
        nl.link_set(index, up=True)


def rebind_vf(sysfs: Sysfs, device_id: str) -> None:
    """Unbind and bind the VF's driver, as ib-sriov-cni does after a GUID change (sriovnet UnbindVf/BindVf):
    mlx5 applies a VF's new node/port GUID only when the VF is probed again. The VF netdev (and RDMA
    device) are destroyed and re-created in the host netns."""
    driver = sysfs.driver(device_id)
    if not driver:
        return  # nothing bound: the next probe takes the GUID anyway
    for op in ("unbind", "bind"):
        path = sysfs.path("bus", "pci", "drivers", driver, op)
        try:
            fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, device_id.encode())
            finally:
                posix.close(fd)
        except OSError as e:
            raise CniError(IO_FAILURE, f"VF {device_id}: driver {driver} {op} failed (applying the IB GUID)",
                           e.strerror or str(e)) from None


def _original_guids(orig: OrigVfState, hwaddr: Optional[str], applied: dict) -> None:
    """The GUIDs to put back when ADD sets new ones (ib-sriov-cni's HostIFGUID): what the PF reported, else
    the port GUID inside the VF netdev's 20-byte IPoIB address; all-zero or unknown becomes all-ones (its
    DefaultGUID: the subnet manager assigns one)."""
    if "node_guid" not in applied:
        return
    from .infiniband import ALL_ONES, guid_of_ipoib_addr

    seen = guid_of_ipoib_addr(hwaddr)
    for key in ("node_guid", "port_guid"):
        setattr(orig, key, getattr(orig, key) or seen or ALL_ONES)


def _context(what: str, e: CniError | NetlinkError) -> CniError:
    """What we were doing in front of a CNI or netlink error (a netlink error is an I/O failure, code 5)."""
    return CniError(e.code if isinstance(e, CniError) else IO_FAILURE, f"{what}: {e.msg}", e.details)
