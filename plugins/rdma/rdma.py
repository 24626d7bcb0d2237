"""rdma: move the RDMA device of a VF (or subfunction) into the pod's network namespace.

A drop-in for k8snetworkplumbingwg/rdma-cni (type "rdma"): chained after `sriov` in a conflist, it
moves the RDMA device that belongs to the pod's VF (e.g. mlx5_3) into the pod netns, so `rdma link`
inside the pod shows that one device and no other. It needs the RDMA subsystem in *exclusive*
netns mode (`ib_core netns_mode=0`); in the default shared mode every netns sees every device.

    {"cniVersion": "1.0.0", "name": "rdma-net", "plugins": [
        {"type": "sriov", ...},
        {"type": "rdma"}                 # Multus adds "deviceID": "0000:af:00.2" to every plugin
    ]}

Config (all optional):
    deviceID                 PCI address of the VF ("0000:af:00.2") or an auxiliary device
                             ("mlx5_core.sf.4"); Multus injects it. runtimeConfig.deviceID is read too.
                             Without either: the prevResult interface's pciID, then the VF whose
                             PF-side admin MAC equals the interface MAC in prevResult.
    dataDir                  state root (default /var/lib/cni); records live in <dataDir>/rdma/,
                             named <network>-<containerID>-<ifname>, in rdma-cni's format.

ADD prints prevResult unchanged (in the requested version). DEL moves the device back to the
runtime's netns; the request is sent from *inside* the pod netns because the kernel looks the device
up in the caller's netns. A pod netns that is already gone needs nothing: the kernel returns its RDMA
devices to the initial netns when the netns dies. CHECK verifies the device is in the pod and not in
the host; STATUS answers code 50 unless RDMA netlink works and the mode is exclusive; GC drops the
records of attachments the runtime no longer lists (without `cni.dev/valid-attachments` it
releases nothing, as every plugin here).

Plugin error codes: 100 RDMA netlink unavailable, 101 netns mode not exclusive, 102 no single RDMA
device for the attachment, 103 the kernel refused to move the device.
"""
from __future__ import annotations

import posix
import time

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Optional

    from cni_rdma.netlink.rdma import Rdma

from cni_rdma import errnos, paths
from cni_rdma.confkeys import gc_keep
from cni_rdma.errors import INVALID_CONFIG, NOT_AVAILABLE, UNKNOWN_CONTAINER, CniError, config_error
from cni_rdma.frozen import Frozen
from cni_rdma.netns import NetnsNotFound, in_netns, open_netns
from cni_rdma.skel import Request
from cni_rdma.state import Store, UnreadableRecord
from cni_rdma.sysfs import Sysfs, normalize_pci
from cni_rdma.types import Result

ABOUT = "cni-rdma rdma: moves a VF's RDMA device into the pod netns (RDMA exclusive netns mode)"

ERR_RDMA_UNAVAILABLE = 100
ERR_NOT_EXCLUSIVE = 101
ERR_DEVICE = 102
ERR_MOVE = 103

STATE_PLUGIN = "rdma"
STATE_VERSION = "1.0"  # rdma-cni's RdmaNetState version: records stay readable by either plugin
HOST_NETNS = "/proc/self/ns/net"  # opened in the main thread: the runtime's (host) netns
# After a pod netns is destroyed the kernel hands its RDMA devices back asynchronously (netns cleanup
# runs from a workqueue); DEL waits this long for the device to show up in the host before moving on.
RETURN_WAIT = 3.0

FIX_MODE = ("switch the RDMA subsystem to exclusive mode: `rdma system set netns exclusive` (works only while "
            "no network namespace other than the initial one exists, so at boot), and make it persistent with "
            "`options ib_core netns_mode=0` in /etc/modprobe.d/ (or the kernel argument ib_core.netns_mode=0)")


# ---------------------------------------------------------------- config
class RdmaConf(Frozen):
    """The rdma keys of a network config: which RDMA device (deviceID) and where state is kept."""

    __slots__ = ("network", "device_id", "data_dir")
    network: str
    device_id: str  # "" when neither deviceID nor runtimeConfig.deviceID is set
    data_dir: Optional[str]

    def __init__(self, network: str, device_id: str, data_dir: Optional[str]) -> None:
        self._init(locals())

    def store(self) -> Store:
        return Store(STATE_PLUGIN, self.data_dir)


def load_conf(req: Request) -> RdmaConf:
    raw = req.raw
    top = raw.get("deviceID")
    runtime = req.conf.runtime_config.get("deviceID")
    for key, value in (("deviceID", top), ("runtimeConfig.deviceID", runtime)):
        if value is not None and not isinstance(value, str):
            raise config_error(key, "expected a string (a PCI address or an auxiliary device name)")
    top, runtime = (top or "").strip(), (runtime or "").strip()
    if top and runtime and _canonical(top) != _canonical(runtime):
        raise config_error("deviceID", f"{top!r} disagrees with runtimeConfig.deviceID {runtime!r}")
    data_dir = raw.get("dataDir")
    if data_dir is not None and (not isinstance(data_dir, str) or not paths.isabs(data_dir)):
        raise config_error("dataDir", "expected an absolute path")
    return RdmaConf(network=req.conf.name, device_id=top or runtime, data_dir=data_dir or None)


def _canonical(device_id: str) -> str:
    return normalize_pci(device_id) or device_id


def state_name(network: str, container_id: str, ifname: str) -> str:
    """rdma-cni's cache key, so a node can switch between the two plugins with pods running."""
    return f"{network}-{container_id}-{ifname}"


# ---------------------------------------------------------------- kernel access (RDMA netlink)
def _rdma_socket():
    """An RDMA netlink socket in the calling thread's netns; code 100 when the kernel has no RDMA."""
    from cni_rdma.netlink.rdma import Rdma, RdmaUnavailable

    try:
        return Rdma()
    except RdmaUnavailable as e:
        raise CniError(ERR_RDMA_UNAVAILABLE, "RDMA netlink is unavailable",
                       f"{e.details}; load ib_core and the driver of the RDMA device") from None


def _netns_mode(nl: Rdma) -> str:
    """ "exclusive" or "shared", asked of the kernel (RDMA_NLDEV_CMD_SYS_GET)."""
    from cni_rdma.netlink.errors import NetlinkError

    try:
        return nl.netns_mode()
    except NetlinkError as e:
        if e.errno in (errnos.EOPNOTSUPP, errnos.EINVAL):  # kernels before 5.2 have no netns modes at all
            raise CniError(ERR_RDMA_UNAVAILABLE, "RDMA netlink cannot report the netns mode",
                           f"{e.details}: the kernel is too old for RDMA network namespaces (needs 5.2+)") from None
        raise


def ensure_exclusive(nl: Optional[Rdma] = None) -> None:
    """Code 101 unless the RDMA subsystem is in exclusive netns mode (on the caller's socket, or a new one)."""
    if nl is None:
        with _rdma_socket() as own:
            return ensure_exclusive(own)
    mode = _netns_mode(nl)
    if mode != "exclusive":
        raise CniError(ERR_NOT_EXCLUSIVE, f"the RDMA subsystem netns mode is {mode!r}, the rdma plugin needs "
                                          f"'exclusive'", FIX_MODE)


def _devices_here() -> dict[str, int]:
    """RDMA device name -> kernel index, for the devices of the calling thread's netns."""
    with _rdma_socket() as nl:
        return {d.name: d.index for d in nl.devices()}


def _move_here_to(name: str, target_fd: int, where: str, nl: Optional[Rdma] = None) -> bool:
    """Move device `name` of the calling thread's netns to the netns of target_fd; False if not here.

    The move needs the device's index and nldev looks devices up by index only (no query by name), so
    this is one dump of the RDMA devices of this netns (iproute2's `rdma dev set` and rdma-cni do the
    same); on the caller's socket when it has one (opened in this thread's netns)."""
    from cni_rdma.netlink.errors import NetlinkError
    from cni_rdma.netlink.rdma import RdmaDeviceNotFound

    if nl is None:
        with _rdma_socket() as own:
            return _move_here_to(name, target_fd, where, own)
    try:
        index = nl.device(name=name).index
    except RdmaDeviceNotFound:
        return False
    try:
        nl.set_netns(index, target_fd)
    except NetlinkError as e:
        raise move_error(e, name, where) from None
    return True


def move_error(e, name: str, where: str) -> CniError:
    hint = ""
    if e.errno == errnos.EOPNOTSUPP:
        hint = (": the driver of this device cannot change netns (it has no disassociate_ucontext op, "
                "like stock rdma_rxe and siw), or the RDMA subsystem is in shared mode")
    elif e.errno == errnos.EBUSY:
        hint = ": a device of that name already exists in the target netns"
    return CniError(ERR_MOVE, f"failed to move RDMA device {name!r} to {where}", f"{e.details}{hint}")


# ---------------------------------------------------------------- finding the device
def resolve_device_id(conf: RdmaConf, req: Request, sysfs: Sysfs) -> str:
    """The PCI address or auxiliary device the attachment uses."""
    if conf.device_id:
        return conf.device_id
    prev = req.conf.prev_result
    ifaces = _pod_interfaces(prev, req.ifname) if prev is not None else []
    pci_ids = {i.pci_id for i in ifaces if i.pci_id}
    if len(pci_ids) == 1:
        return pci_ids.pop()
    macs = {i.mac.lower() for i in ifaces if i.mac}
    if len(macs) != 1:
        raise CniError(ERR_DEVICE, "cannot tell which device to use: no \"deviceID\" in the config",
                       "set deviceID (Multus does it when the network has a resourceName), or chain rdma after "
                       f"a plugin whose result has exactly one interface {req.ifname!r} with a MAC "
                       f"(found {sorted(macs) or 'none'})")
    mac = macs.pop()
    req.log.warning(f"no deviceID in the config; looking for the VF whose PF admin MAC is {mac}")
    return vf_by_admin_mac(mac, sysfs)


def _pod_interfaces(prev: Result, ifname: str) -> list:
    """The prevResult interfaces that are the pod's `ifname`, else all pod-side ones, else all of them."""
    named = [i for i in prev.interfaces if i.name == ifname and i.sandbox]
    if named:
        return named
    in_pod = [i for i in prev.interfaces if i.sandbox]
    return in_pod or list(prev.interfaces)


def vf_by_admin_mac(mac: str, sysfs: Sysfs) -> str:
    """PCI address of the one VF whose admin MAC (set on its PF) is `mac`, over every PF of the host."""
    from cni_rdma.netlink.rtnl import Rtnl

    found = []
    with Rtnl() as nl:
        pfs = nl.pfs()  # one dump: every PF with its VF table
    for link, vfs in pfs:
        for vf in vfs:
            if vf.mac and vf.mac.lower() == mac:
                addr = sysfs.virtfn_of_netdev(link.name, vf.vf)
                found.append(addr or f"{link.name} vf {vf.vf} (no virtfn{vf.vf} in sysfs)")
    if len(found) != 1:
        what = "no VF" if not found else f"{len(found)} VFs ({', '.join(found)})"
        raise CniError(ERR_DEVICE, f"{what} with admin MAC {mac} on any PF of this node",
                       "set deviceID in the config to name the VF")
    if normalize_pci(found[0]) is None:
        raise CniError(ERR_DEVICE, f"the VF with admin MAC {mac} has no PCI address in sysfs", found[0])
    return found[0]


def rdma_device_for(device_id: str, sysfs: Sysfs) -> str:
    """The single RDMA device under a PCI function or an auxiliary device, as the host sees it now."""
    pci = normalize_pci(device_id)
    if pci is not None:
        if not sysfs.pci_exists(pci):
            raise CniError(ERR_DEVICE, f"PCI device {pci} (deviceID) does not exist", sysfs.pci_dir(pci))
        where, names = sysfs.path("bus", "pci", "devices", pci, "infiniband"), sysfs.rdma_devices_of_pci(pci)
    elif sysfs.aux_exists(device_id):
        where, names = paths.join(sysfs.aux_dir(device_id), "infiniband"), sysfs.rdma_devices_of_aux(device_id)
    else:
        raise CniError(ERR_DEVICE, f"deviceID {device_id!r} is neither a PCI address nor an auxiliary device",
                       f"nothing at {sysfs.aux_dir(device_id)}")
    if len(names) == 1:
        return names[0]
    if not names:
        raise CniError(ERR_DEVICE, f"no RDMA device for {device_id} in the host netns",
                       f"{where} is empty or missing: the device has no RDMA function (driver not loaded, RDMA "
                       f"disabled on the VF) or it is already in another pod's netns")
    raise CniError(ERR_DEVICE, f"{len(names)} RDMA devices for {device_id}: {', '.join(names)}",
                   "expected exactly one RDMA device per VF or subfunction")


# ---------------------------------------------------------------- commands
def add(req: Request) -> Result:
    conf = load_conf(req)
    prev = req.conf.prev_result
    if prev is None:
        raise CniError(INVALID_CONFIG, "the rdma plugin must be chained: no prevResult",
                       "put it after sriov in the \"plugins\" list of a conflist; it moves the RDMA device of the "
                       "VF that sriov gave the pod")
    pod_fd = open_netns(req.netns)
    try:
        with _rdma_socket() as nl:  # one socket in the host netns: the mode, the lookup, the move
            ensure_exclusive(nl)
            sysfs = Sysfs.from_env(req.env)
            device_id = resolve_device_id(conf, req, sysfs)
            store = conf.store()
            key = state_name(conf.network, req.container_id, req.ifname)
            with store.lock():
                if _already_attached(req, store.read(key), device_id):
                    return prev
                name = rdma_device_for(device_id, sysfs)  # sysfs: the VF's own infiniband/ entry
                req.log.info(f"moving RDMA device {name} of {device_id} to {req.netns}")
                if not _move_here_to(name, pod_fd, f"the pod netns {req.netns}", nl):
                    raise CniError(ERR_DEVICE, f"RDMA device {name!r} of {device_id} is not in the host netns",
                                   "sysfs lists it but RDMA netlink does not: is it moving right now?")
                try:
                    store.write(key, _record(conf, req, device_id, name))
                except CniError as e:
                    _undo_add(req, name, e)
                    raise
    finally:
        posix.close(pod_fd)
    return prev


def _already_attached(req: Request, record: Optional[dict], device_id: str) -> bool:
    """A repeated ADD of an attachment that is in place (the runtime retried): nothing to do."""
    if not record or _canonical(str(record.get("deviceID", ""))) != _canonical(device_id):
        return False
    name = record.get("containerRdmaDevName")
    if isinstance(name, str) and name in in_netns(req.netns, _devices_here):
        req.log.info(f"RDMA device {name} is already in {req.netns}")
        return True
    return False


def _record(conf: RdmaConf, req: Request, device_id: str, name: str) -> dict:
    return {
        # rdma-cni's RdmaNetState fields
        "version": STATE_VERSION, "deviceID": device_id, "sandboxRdmaDevName": name, "containerRdmaDevName": name,
        # ours: GC needs the identity without parsing the key (IDs may contain '-')
        "network": conf.network, "containerID": req.container_id, "ifname": req.ifname, "netns": req.netns,
    }


def _undo_add(req: Request, name: str, cause: CniError) -> None:
    from cni_rdma.netlink.errors import NetlinkError

    try:
        _move_back(req.netns, name)
    except (CniError, NetlinkError) as e:
        req.log.error(f"state write failed ({cause}) and moving {name} back failed too: {e}")
        cause.details = f"{cause.details}; moving {name} back to the host failed too: {e}"


def _move_back(netns: str, name: str) -> bool:
    """Move `name` from the pod netns to ours, from inside the pod; False if the pod does not hold it."""
    host_fd = posix.open(HOST_NETNS, posix.O_RDONLY | posix.O_CLOEXEC)  # here, in the main thread: the host netns
    try:
        return in_netns(netns, _move_here_to, name, host_fd, "the host netns")
    finally:
        posix.close(host_fd)


def delete(req: Request) -> None:
    conf = load_conf(req)
    store = conf.store()
    key = state_name(conf.network, req.container_id, req.ifname)
    with store.lock():
        try:
            record = store.read(key)
        except UnreadableRecord as e:  # a FIFO, a device or garbage where the record was: DEL must finish
            req.log.warning(f"{e}; dropping it")
            store.delete(key)
            return
        if record is None:
            req.log.info(f"no state {key}: nothing to undo")
            return
        name = record.get("containerRdmaDevName") or record.get("sandboxRdmaDevName") or ""
        if not isinstance(name, str) or not name:
            req.log.warning(f"state {key} names no RDMA device; dropping it")
            store.delete(key)
            return
        try:
            _give_back(req, name)
        except CniError as e:
            if e.code != ERR_RDMA_UNAVAILABLE:
                raise  # the state stays: a retried DEL can still give the device back
            req.log.warning(f"{e}: with no RDMA subsystem there is no {name} to give back")
        store.delete(key)


def _give_back(req: Request, name: str) -> None:
    """Return device `name` to the host netns, or make sure it already is there."""
    gone = not req.netns
    if not gone:
        try:
            if _move_back(req.netns, name):
                req.log.info(f"moved RDMA device {name} back to the host netns")
                return
        except NetnsNotFound:
            gone = True
    # The pod netns is gone (the kernel returns its RDMA devices to the initial netns when it dies,
    # asynchronously) or it no longer holds the device (an earlier DEL moved it already).
    if not _wait_in_host(name, RETURN_WAIT if gone else 0.0):
        # A netns that outlives its path (still held by some process) keeps the device until it dies;
        # nothing a DEL can do about it, and the kernel returns the device then.
        req.log.warning(f"RDMA device {name} is neither in the pod netns nor in the host netns")


def _wait_in_host(name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if name in _devices_here():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def check(req: Request) -> None:
    conf = load_conf(req)
    if req.conf.prev_result is None:
        raise CniError(INVALID_CONFIG, "the rdma plugin must be chained: no prevResult to check")
    ensure_exclusive()
    key = state_name(conf.network, req.container_id, req.ifname)
    record = conf.store().read(key)
    if record is None:
        raise CniError(UNKNOWN_CONTAINER, f"no rdma state for {key}: ADD did not run or DEL already did")
    name = record.get("containerRdmaDevName") or ""
    if name not in in_netns(req.netns, _devices_here):
        raise CniError(ERR_DEVICE, f"RDMA device {name!r} is not in the pod netns {req.netns}")
    if name in _devices_here():
        raise CniError(ERR_DEVICE, f"RDMA device {name!r} is visible in the host netns")


def status(req: Request) -> None:
    load_conf(req)
    try:
        ensure_exclusive()
    except CniError as e:
        if e.code in (ERR_RDMA_UNAVAILABLE, ERR_NOT_EXCLUSIVE):
            raise CniError(NOT_AVAILABLE, e.msg, e.details) from None
        raise


def gc(req: Request) -> None:
    conf = load_conf(req)
    keep = gc_keep(req)
    if keep is None:  # without the list a leak cannot be told from a live attachment
        return
    store = conf.store()
    for key in store.names():
        if not key.startswith(f"{conf.network}-"):
            continue
        with store.lock():
            try:
                record = store.read(key)
            except UnreadableRecord as e:  # a FIFO or garbage: not attributable; GC goes on (DEL drops it)
                req.log.warning(f"gc: {e}; skipping it")
                continue
            if not record or record.get("network") != conf.network:
                continue  # another network sharing the prefix, or an rdma-cni record we cannot attribute
            if (record.get("containerID"), record.get("ifname")) in keep:
                continue
            req.log.info(f"gc: dropping {key} (RDMA device {record.get('containerRdmaDevName')})")
            store.delete(key)
