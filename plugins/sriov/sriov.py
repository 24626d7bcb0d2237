"""sriov: give a pod an SR-IOV virtual function, configured through its PF, restored on DEL.

Drop-in for k8snetworkplumbingwg/sriov-cni under the type name `sriov`. Multus passes the VF the
SR-IOV device plugin allocated as top-level `deviceID` (a PCI address); everything else about the
VF is discovered from sysfs (`cni_rdma.sysfs`, root from CNI_RDMA_SYSFS_ROOT for tests).

    {"cniVersion": "1.0.0", "name": "sriov-rdma", "type": "sriov",
     "deviceID": "0000:af:00.2",            <- injected by Multus from the device plugin's allocation
     "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1ad", "mac": "02:00:00:00:00:01",
     "spoofchk": "on", "trust": "off", "link_state": "auto", "min_tx_rate": 0, "max_tx_rate": 1000,
     "mtu": 9000, "ipam": {"type": "host-local", "subnet": "10.56.0.0/16"}}

This file holds the commands; the keys are in config.py, the records (VfState, OrigVfState) in
vfstate.py, every kernel change to the VF in vfmanager.py.

ADD, in order, under a per-VF lock:
  1. refuse a VF allocated to a live netns; take over a record whose netns is gone (restore first)
  2. snapshot the VF's original state and write the allocation record: the whole intent of this ADD
     (PF settings, temporary name, CNI_IFNAME, MAC, MTU), durable before any kernel change, so DEL
     finds and restores the VF wherever a killed ADD left it
  3. apply vlan/qos/proto, admin MAC, spoofchk, trust, link state, rates through the PF
  4. move the VF netdev into the pod under a temporary name (the host never sees it renamed), drop
     its altnames, rename it there to CNI_IFNAME, set MTU and MAC, bring it up
  5. IPAM, addresses, routes, gratuitous ARP / unsolicited NA
DPDK mode (VF bound to vfio-pci/uio): step 4 and the addresses are skipped; the result carries pciID.

Unlike sriov-cni, a key that is not set is not touched (sriov-cni resets vlan to 0 on every ADD);
whatever ADD changed is put back to the VF's own earlier value on DEL (sriov-cni: trust always off).
Any failure undoes all of it: VF back in the host with its original name and settings, IPAM
released, record removed. DEL restores in the reverse order (IPAM first, then the PF side, then the
netdev), is idempotent, and leaves a VF that a newer pod owns alone.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Optional

    from cni_rdma.log import Logger

from cni_rdma import confkeys, faults, ipam, netns
from cni_rdma.errors import INVALID_CONFIG, IO_FAILURE, TRY_AGAIN_LATER, CniError
from cni_rdma.netlink.errors import NetlinkError
from cni_rdma.skel import Request
from cni_rdma.state import Store
from cni_rdma.sysfs import Sysfs, VfInfo
from cni_rdma.types import Interface, Result

from . import sriovcni
from .config import SriovConf, device_id_of, discover, load_conf
from .vfmanager import NetlinkVfManager, VfManager
from .vfstate import ZERO_MAC, VfState

ABOUT = "cni-rdma sriov"
STORE = "sriov"
# Fault-injection points of ADD (cni_rdma.faults, CNI_RDMA_TEST_FAULT=<step>), in order; ipconfig adds
# "addresses" and "routes" between "ipam" and "result".
ADD_STEPS = ("recorded", "pf", "moved", "renamed", "created", "ipam", "addresses", "routes", "result")


def vf_manager(sysfs: Sysfs, log: Logger) -> VfManager:
    """The kernel side of every command (unit tests put a fake here)."""
    return NetlinkVfManager(sysfs, log)


def store_of(req: Request) -> Store:
    return Store(STORE)


def record_name(device_id: str) -> str:
    return "vf-" + device_id


def read_record(store: Store, name: str) -> Optional[VfState]:
    raw = store.read(name)
    if raw is None:
        return None
    try:
        return VfState.from_json(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CniError(IO_FAILURE, f"state record {name!r} is corrupt", str(e)) from None


# ------------------------------------------------------------------------------------------ ADD
def add(req: Request) -> Result:
    conf = load_conf(req)
    if req.conf.ipam_type:
        from cni_rdma import ipconfig

        ipconfig.dad_mode(req.raw)  # a bad "dad" fails before the VF is touched
    vf = discover(conf)
    store = store_of(req)
    mgr = vf_manager(conf.sysfs, req.log)
    name = record_name(conf.device_id)
    pod_fd = netns.open_netns(req.netns)  # a missing netns fails before anything changes
    try:
        # sriov-cni's per-VF lock first (it may be configuring this VF right now), then ours
        with sriovcni.pci_lock(conf.device_id, store.dir), store.lock(name):
            host_ifname = _take_over_stale(store, name, mgr, req)
            _take_over_sriov_cni(conf, vf, mgr, req, store.dir)
            orig = mgr.snapshot(vf, conf.pf_settings(), host_ifname)
            st = VfState(container_id=req.container_id, ifname=req.ifname, netns=req.netns,
                         device_id=conf.device_id, pf=vf.pf_netdevs[0], pf_pci=vf.pf_pci, vf_id=vf.vf_id,
                         dpdk=vf.userspace, orig=orig, applied=conf.pf_settings(), want_mac=conf.mac,
                         want_mtu=conf.mtu or 0)
            store.write(name, st.to_json())  # the whole intent, durable before the first change
            try:
                return _add(req, conf, st, mgr, store, name, pod_fd)
            except BaseException as e:
                try:
                    mgr.restore(st, req.netns)
                except Exception as undo:  # never mask the original failure; DEL retries from the record
                    req.log.error(f"rollback of VF {conf.device_id} incomplete: {undo}")
                else:
                    store.delete(name)
                    sriovcni.forget(req.container_id, req.ifname, conf.device_id, req.netns, store.dir)
                req.log.error(f"ADD failed, VF {conf.device_id} given back: {e}")
                raise
    finally:
        posix.close(pod_fd)


def _take_over_stale(store: Store, name: str, mgr: VfManager, req: Request) -> str:
    """Refuse a VF owned by a live netns; restore and drop a record whose netns is gone, or a
    half-done ADD of this very attachment (then answer the host name the VF was given back under)."""
    st = read_record(store, name)
    if st is None:
        return ""
    retried = st.phase == "adding" and st.owned_by(req.container_id, req.ifname)
    if netns.netns_alive(st.netns) and not retried:
        raise CniError(TRY_AGAIN_LATER, f"VF {st.device_id} is already allocated",
                       f"to container {st.container_id} ({st.ifname} in {st.netns})")
    req.log.info(f"taking over stale allocation of {st.device_id} from container {st.container_id}")
    mgr.restore(st, st.netns)
    store.delete(name)
    sriovcni.forget(st.container_id, st.ifname, st.device_id, None, store.dir)  # any claim on it was ours
    return st.orig.host_ifname


def _take_over_sriov_cni(conf: SriovConf, vf: VfInfo, mgr: VfManager, req: Request, root: str) -> None:
    """sriov-cni's claim on the VF (its pci/<addr> file, a node mid-swap): refuse the VF while the
    claimed netns lives; once it is gone, give back what sriov-cni cached for the VF and drop it all."""
    owner = sriovcni.read_claim(conf.device_id, root)
    if owner is None:
        return
    if netns.netns_alive(owner):
        raise CniError(TRY_AGAIN_LATER, f"VF {conf.device_id} is already allocated",
                       f"to {owner} (sriov-cni's claim {sriovcni.claim_path(conf.device_id, root)})")
    for cache, cached in sriovcni.caches_for_device(conf.device_id, root):
        cid, _, ifname = cache.rpartition("-")
        req.log.info(f"taking over VF {conf.device_id} from sriov-cni's stale attachment {cache}")
        mgr.restore(sriovcni.to_vf_state(cached, cid, ifname, owner, vf.pf_pci, vf.userspace), owner)
        sriovcni.drop_cache(cid, ifname, root)
    sriovcni.drop_claim(conf.device_id, root)


def _add(req: Request, conf: SriovConf, st: VfState, mgr: VfManager, store: Store, name: str,
         pod_fd: int) -> Result:
    faults.point("recorded")
    mgr.apply(st)
    faults.point("pf")
    iface = Interface(name=req.ifname, sandbox=req.netns, pci_id=conf.device_id, mac=conf.mac)
    if not st.dpdk:
        mgr.move_in(st, pod_fd)
        faults.point("moved")
        seen = mgr.setup_in_pod(st, pod_fd, up=not req.conf.ipam_type)  # with IPAM, ipconfig brings it up
        faults.point("renamed")  # CNI_IFNAME in the pod, not yet in the record: DEL must still find it
        st.pod_index, st.pod_mac, st.pod_mtu = seen.index, seen.mac, seen.mtu
        store.write(name, st.to_json())  # what CHECK compares against
        iface = Interface(name=req.ifname, sandbox=req.netns, pci_id=conf.device_id, mac=seen.mac, mtu=seen.mtu)
        faults.point("created")
        if conf.ib.rdma_isolation:  # ib-sriov-cni's key: the VF's RDMA device into the pod as well
            from plugins.rdma.rdma import rdma_device_for

            st.rdma_dev = rdma_device_for(conf.device_id, conf.sysfs)
            store.write(name, st.to_json())  # intent first: restore moves it back from wherever it is
            mgr.isolate_rdma(st, pod_fd)
    elif not conf.mac and st.orig.admin_mac not in (None, ZERO_MAC):
        iface = Interface(name=req.ifname, sandbox=req.netns, pci_id=conf.device_id, mac=st.orig.admin_mac)
    result = Result(cni_version=req.conf.cni_version, interfaces=(iface,))
    if req.conf.ipam_type:
        with ipam.allocated(req) as got:
            faults.point("ipam")
            if not got.ips:
                raise CniError(IO_FAILURE, f"IPAM plugin {req.conf.ipam_type!r} returned no IP addresses")
            result = Result(cni_version=req.conf.cni_version, interfaces=(iface,),
                            ips=tuple(ip.replace(interface=0) for ip in got.ips), routes=got.routes, dns=got.dns)
            if not st.dpdk:
                from cni_rdma import ipconfig

                mgr.configure_pod(st, result, ipconfig.dad_mode(req.raw), iface.mac)
            _mark_ready(req, st, store, name)
    else:
        _mark_ready(req, st, store, name)
    return result


def _mark_ready(req: Request, st: VfState, store: Store, name: str) -> None:
    faults.point("result")
    why_not = sriovcni.remember(st, req.raw, store.dir)  # so that sriov-cni's DEL can undo this pod after a rollback
    if why_not:
        req.log.info(f"VF {st.device_id}: no sriov-cni cache written ({why_not})")
    st.phase = "ready"
    store.write(name, st.to_json())
    where = "DPDK, stays on the host" if st.dpdk else f"{st.orig.host_ifname} -> {req.ifname}"
    req.log.info(f"VF {st.device_id} (vf {st.vf_id} of {st.pf}, {where}) given to {req.netns}; "
                 f"PF settings {st.applied}")


# ------------------------------------------------------------------------------------------ DEL
def delete(req: Request) -> None:
    store = store_of(req)
    name = _find_record(store, req)
    if req.conf.ipam_type:
        ipam.delete(req)
    if name is not None:
        with sriovcni.pci_lock(name[len("vf-"):], store.dir), store.lock(name):
            st = read_record(store, name)
            if st is not None and not st.owned_by(req.container_id, req.ifname):
                req.log.info(f"{st.device_id} now belongs to container {st.container_id}; leaving it alone")
                sriovcni.drop_cache(req.container_id, req.ifname, store.dir)  # a sriov-cni leftover of this attachment
                return
            if st is not None:
                where = vf_manager(Sysfs.from_env(req.env), req.log).restore(st, st.netns or req.netns)
                store.delete(name)
                sriovcni.forget(req.container_id, req.ifname, st.device_id, st.netns, store.dir)
                req.log.info(f"VF {st.device_id} given back to the host (found: {where}, ADD phase {st.phase})")
                return
    _delete_sriov_cni(req, store)


def _delete_sriov_cni(req: Request, store: Store) -> None:
    """DEL of an attachment sriov-cni made (or whose record only sriov-cni's files still hold): restore
    the VF from its cache the way sriov-cni's DEL would, then drop the cache and the claim."""
    try:
        cached = sriovcni.load_cache(req.container_id, req.ifname, store.dir)
    except CniError as e:  # never fail DEL forever over a file we cannot use (sriov-cni answers 0 too)
        req.log.warning(f"ignoring sriov-cni's cache of {req.container_id}/{req.ifname}: {e}")
        return
    if cached is None:
        return
    name = record_name(cached.device_id)
    with sriovcni.pci_lock(cached.device_id, store.dir), store.lock(name):
        ours = read_record(store, name)
        if ours is not None:  # the VF went to another pod since: only the stale cache goes
            req.log.info(f"{cached.device_id} now belongs to container {ours.container_id}; leaving it alone")
            sriovcni.drop_cache(req.container_id, req.ifname, store.dir)
            return
        sysfs = Sysfs.from_env(req.env)
        vf = sysfs.vf(cached.device_id)
        st = sriovcni.to_vf_state(cached, req.container_id, req.ifname, req.netns, vf.pf_pci if vf else "",
                                  bool(vf and vf.userspace))
        where = vf_manager(sysfs, req.log).restore(st, req.netns)
        sriovcni.drop_cache(req.container_id, req.ifname, store.dir)
        claim = sriovcni.read_claim(cached.device_id, store.dir)
        if claim is not None and (claim == req.netns or not netns.netns_alive(claim)):
            sriovcni.drop_claim(cached.device_id, store.dir)
        req.log.info(f"VF {cached.device_id} configured by sriov-cni given back to the host (found: {where})")


def _find_record(store: Store, req: Request) -> Optional[str]:
    """The VF record of this attachment: by deviceID when the config has one, else by owner."""
    try:
        return record_name(device_id_of(req))
    except CniError:
        pass
    found = []
    for name in store.names():
        if not name.startswith("vf-"):
            continue
        try:
            st = read_record(store, name)
        except CniError:
            continue
        if st is not None and st.owned_by(req.container_id, req.ifname):
            found.append((st.netns != req.netns, name))  # the same netns first
    return min(found)[1] if found else None


# ---------------------------------------------------------------------------------------- CHECK
def check(req: Request) -> None:
    conf = load_conf(req)
    prev = req.conf.prev_result
    if prev is None:
        raise CniError(INVALID_CONFIG, "CHECK needs a prevResult")
    st = read_record(store_of(req), record_name(conf.device_id))
    if st is None or not st.owned_by(req.container_id, req.ifname):
        raise CniError(IO_FAILURE, f"VF {conf.device_id} is not allocated to {req.container_id}/{req.ifname}")
    if req.conf.ipam_type:
        ipam.check(req)
    mgr = vf_manager(conf.sysfs, req.log)
    want = conf.pf_settings()
    if want:
        have = mgr.pf_view(st)
        if have is None:
            raise CniError(IO_FAILURE, f"PF {st.pf} no longer reports VF {st.vf_id}")
        for key, value in want.items():
            if have.get(key) is not None and have[key] != value:
                raise CniError(IO_FAILURE, f"VF {st.vf_id} of {st.pf}: {key} is {have[key]!r}, expected {value!r}")
    if st.dpdk:
        return
    link = mgr.pod_link(st)
    if link is None:
        raise CniError(IO_FAILURE, f"interface {req.ifname} not found in {req.netns}")
    if st.pod_index and link.index != st.pod_index:
        raise CniError(IO_FAILURE, f"{req.ifname} in {req.netns} is not VF {conf.device_id}",
                       f"ifindex {link.index}, the VF was {st.pod_index}")
    mac = conf.mac or st.pod_mac
    if mac and link.mac != mac:
        raise CniError(IO_FAILURE, f"{req.ifname}: MAC is {link.mac}, expected {mac}")
    mtu = conf.mtu or st.pod_mtu
    if mtu and link.mtu != mtu:
        raise CniError(IO_FAILURE, f"{req.ifname}: MTU is {link.mtu}, expected {mtu}")
    if req.conf.ipam_type:
        from cni_rdma import ipconfig

        netns.in_netns(req.netns, ipconfig.verify, req.ifname, prev)


# ----------------------------------------------------------------------------------- STATUS / GC
def status(req: Request) -> None:
    if req.conf.ipam_type:
        ipam.status(req)


def gc(req: Request) -> None:
    """Give back VFs whose attachment the runtime no longer lists and whose netns is gone; without a
    cni.dev/valid-attachments list, release nothing."""
    keep = confkeys.gc_keep(req)
    if keep is not None:
        store = store_of(req)
        mgr = vf_manager(Sysfs.from_env(req.env), req.log)
        for name in store.names():
            if name.startswith("vf-"):
                _gc_one(store, name, keep, mgr, req)
    if req.conf.ipam_type:
        ipam.gc(req)


def _gc_one(store: Store, name: str, keep: set, mgr: VfManager, req: Request) -> None:
    with store.lock(name):
        try:
            st = read_record(store, name)
        except CniError as e:
            req.log.warning(f"GC skips {name}: {e}")
            return
        if st is None or (st.container_id, st.ifname) in keep:
            return
        if netns.netns_alive(st.netns):
            return  # still wired into a live pod: the runtime will DEL it
        try:
            mgr.restore(st, "")
        except (CniError, NetlinkError) as e:
            req.log.warning(f"GC could not restore {st.device_id}: {e}")
            return
        store.delete(name)
        sriovcni.forget(st.container_id, st.ifname, st.device_id, st.netns, store.dir)
