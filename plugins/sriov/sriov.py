"""sriov: give a pod an SR-IOV virtual function, configured through its PF, restored on DEL.

Drop-in for k8snetworkplumbingwg/sriov-cni under the type name `sriov`. Multus passes the VF the
SR-IOV device plugin allocated as top-level `deviceID` (a PCI address); everything else about the
VF is discovered from sysfs (`cni_rdma.sysfs`, root from CNI_RDMA_SYSFS_ROOT for tests).

ADD, in order, under a per-VF lock:
  1. refuse a VF allocated to a live netns; take over a record whose netns is gone (restore first)
  2. snapshot the VF's original state (host name, MAC, MTU, up; the PF's view of the VF) and write
     the allocation record *before* changing anything, so a crash is always recoverable
  3. apply vlan/qos/proto, admin MAC, spoofchk, trust, link state, rates through the PF
  4. move the VF netdev into the pod under a temporary name (the host sees it leave under its own
     name, never renamed), rename it there to CNI_IFNAME, set MAC/MTU, bring it up
  5. IPAM, addresses, routes, gratuitous ARP / unsolicited NA
DPDK mode (VF bound to vfio-pci/uio): step 4 and the addresses are skipped; the result carries pciID.

    {"cniVersion": "1.0.0", "name": "sriov-rdma", "type": "sriov",
     "deviceID": "0000:af:00.2",            <- injected by Multus from the device plugin's allocation
     "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1ad", "mac": "02:00:00:00:00:01",
     "spoofchk": "on", "trust": "off", "link_state": "auto", "min_tx_rate": 0, "max_tx_rate": 1000,
     "mtu": 9000, "ipam": {"type": "host-local", "subnet": "10.56.0.0/16"}}

deviceID      VF PCI address (also runtimeConfig.deviceID); required
vlan          0-4094, through the PF; vlanQoS 0-7 and vlanProto 802.1q/802.1ad need it
mac           VF admin MAC (PF) and netdev MAC; precedence "mac" < CNI_ARGS "MAC=" < runtimeConfig.mac
spoofchk, trust  "on"/"off" (or true/false); link_state auto/enable/disable; min/max_tx_rate in Mbps
mtu           of the VF netdev in the pod (beyond sriov-cni)
Unlike sriov-cni, a key that is not set is not touched (sriov-cni resets vlan to 0 on every ADD);
whatever ADD changed is put back to the VF's own earlier value on DEL (sriov-cni: trust always off).
Any failure undoes all of it: VF back in the host with its original name and settings, IPAM
released, record removed. DEL restores in the reverse order (IPAM first, then the PF side, then the
netdev), is idempotent, and leaves a VF that a newer pod owns alone.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
from dataclasses import dataclass, replace

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

from cni_rdma import faults, ipam, netns
from cni_rdma.errors import CniError, INVALID_CONFIG, IO_FAILURE, TRY_AGAIN_LATER, config_error
from cni_rdma.skel import Request
from cni_rdma.state import Store
from cni_rdma.sysfs import Sysfs, VfInfo, normalize_pci
from cni_rdma.types import Interface, Result

ABOUT = "cni-rdma sriov"
STORE = "sriov"
RECORD_VERSION = 1
# Fault-injection points of ADD (cni_rdma.faults, CNI_RDMA_TEST_FAULT=<step>), in order; ipconfig adds
# "addresses" and "routes" between "ipam" and "result".
ADD_STEPS = ("recorded", "pf", "moved", "created", "ipam", "addresses", "routes", "result")

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_ZERO_MAC = "00:00:00:00:00:00"
_ON_OFF = {"on": True, "off": False, True: True, False: False}
_PROTOS = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}
_LINK_STATES = ("auto", "enable", "disable")
# What a PF-side setting returns to when the driver never reported its original value.
_PF_DEFAULTS = {"spoofchk": True, "trust": False, "link_state": "auto", "vlan": 0, "qos": 0,
                "vlan_proto": "802.1Q", "min_tx_rate": 0, "max_tx_rate": 0, "mac": _ZERO_MAC}


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SriovConf:
    """The sriov keys of a network config, validated (see load)."""

    device_id: str
    vlan: Optional[int] = None
    qos: Optional[int] = None
    vlan_proto: Optional[str] = None     # "802.1Q" / "802.1ad"
    mac: str = ""                        # lowercase; "" keeps the VF's own
    spoofchk: Optional[bool] = None
    trust: Optional[bool] = None
    link_state: Optional[str] = None
    min_tx_rate: Optional[int] = None
    max_tx_rate: Optional[int] = None
    mtu: Optional[int] = None
    sysfs: Sysfs = Sysfs()

    def pf_settings(self) -> dict[str, Any]:
        """The VF settings that go through the PF (vf_set keywords); only what the config asks for."""
        out: dict[str, Any] = {}
        if self.vlan is not None:
            out.update(vlan=self.vlan, qos=self.qos or 0, vlan_proto=self.vlan_proto or "802.1Q")
        if self.mac:
            out["mac"] = self.mac
        for key in ("spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _int(raw: dict, key: str, lo: int, hi: int) -> Optional[int]:
    v = raw.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise config_error(key, f"expected an integer in {lo}-{hi}, got {v!r}")
    if not lo <= v <= hi:
        raise config_error(key, f"{v} is out of range {lo}-{hi}")
    return v


def _mac(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise config_error(key, f"expected a MAC address string, got {value!r}")
    mac = value.strip().lower().replace("-", ":")
    if not _MAC_RE.match(mac):
        raise config_error(key, f"{value!r} is not a MAC address (want xx:xx:xx:xx:xx:xx)")
    if int(mac[:2], 16) & 1:
        raise config_error(key, f"{value!r} is a multicast address; a VF needs a unicast MAC")
    if mac == _ZERO_MAC:
        raise config_error(key, "the all-zero MAC cannot be assigned")
    return mac


def device_id_of(req: Request) -> str:
    """The VF's PCI address: top-level deviceID (Multus) or runtimeConfig.deviceID; code 7 otherwise."""
    raw = req.raw
    value = raw.get("deviceID")
    key = "deviceID"
    if value in (None, ""):
        value, key = req.conf.runtime_config.get("deviceID"), "runtimeConfig.deviceID"
    if value in (None, ""):
        raise CniError(INVALID_CONFIG, 'missing "deviceID": no VF PCI address was passed',
                       "Multus injects the PCI address that the SR-IOV device plugin allocated; check that the "
                       "NetworkAttachmentDefinition has the k8s.v1.cni.cncf.io/resourceName annotation and the "
                       "pod requests that resource")
    pci = normalize_pci(value) if isinstance(value, str) else None
    if pci is None:
        raise config_error(key, f"{value!r} is not a PCI address (want dddd:bb:dd.f)")
    return pci


def load(req: Request) -> SriovConf:
    """Parse and validate the sriov keys; every invalid value is code 7 naming its key."""
    raw = req.raw
    device_id = device_id_of(req)
    vlan = _int(raw, "vlan", 0, 4094)
    qos = _int(raw, "vlanQoS", 0, 7)
    proto = raw.get("vlanProto")
    if proto is not None:
        if not isinstance(proto, str) or proto.lower() not in _PROTOS:
            raise config_error("vlanProto", f"{proto!r} is not one of 802.1q, 802.1ad")
        proto = _PROTOS[proto.lower()]
    if vlan is None and qos is not None:
        raise config_error("vlanQoS", '"vlan" must be set to set a VLAN QoS')
    if vlan is None and proto is not None:
        raise config_error("vlanProto", '"vlan" must be set to set a VLAN protocol')
    if qos and not vlan:
        raise config_error("vlanQoS", "a non-zero QoS needs a non-zero vlan")
    if proto == "802.1ad" and not vlan:
        raise config_error("vlanProto", "802.1ad needs a non-zero vlan")

    # MAC: config, then CNI_ARGS MAC=, then runtimeConfig.mac (the same precedence as sriov-cni).
    mac = ""
    if raw.get("mac") not in (None, ""):
        mac = _mac(raw["mac"], "mac")
    args = req.args({"MAC"})
    if args.get("MAC"):
        mac = _mac(args["MAC"], "CNI_ARGS MAC")
    if req.conf.runtime_config.get("mac"):
        mac = _mac(req.conf.runtime_config["mac"], "runtimeConfig.mac")

    flags: dict[str, Optional[bool]] = {}
    for key in ("spoofchk", "trust"):
        v = raw.get(key)
        if v in (None, ""):
            flags[key] = None
        elif isinstance(v, (str, bool)) and (v.lower() if isinstance(v, str) else v) in _ON_OFF:
            flags[key] = _ON_OFF[v.lower() if isinstance(v, str) else v]
        else:
            raise config_error(key, f'{v!r} is not "on" or "off"')
    link_state = raw.get("link_state")
    if link_state in ("",):
        link_state = None
    if link_state is not None and link_state not in _LINK_STATES:
        raise config_error("link_state", f"{link_state!r} is not one of {', '.join(_LINK_STATES)}")
    min_rate = _int(raw, "min_tx_rate", 0, 0xFFFFFFFF)
    max_rate = _int(raw, "max_tx_rate", 0, 0xFFFFFFFF)
    if min_rate and max_rate and max_rate < min_rate:
        raise config_error("max_tx_rate", f"{max_rate} is below min_tx_rate {min_rate}")
    mtu = _int(raw, "mtu", 68, 65535)
    return SriovConf(device_id=device_id, vlan=vlan, qos=qos, vlan_proto=proto, mac=mac,
                     spoofchk=flags["spoofchk"], trust=flags["trust"], link_state=link_state,
                     min_tx_rate=min_rate, max_tx_rate=max_rate, mtu=mtu, sysfs=Sysfs.from_env(req.env))


# ------------------------------------------------------------------------------------ discovery
def discover(conf: SriovConf) -> VfInfo:
    """The VF behind deviceID, from sysfs; clear errors for a missing device, a PF, no netdev."""
    fs = conf.sysfs
    if not fs.pci_exists(conf.device_id):
        raise CniError(INVALID_CONFIG, f'invalid "deviceID": no PCI device {conf.device_id}',
                       f"{fs.pci_dir(conf.device_id)} does not exist")
    vf = fs.vf(conf.device_id)
    if vf is None:
        raise CniError(INVALID_CONFIG, f'invalid "deviceID": {conf.device_id} is not an SR-IOV virtual function',
                       "it has no physfn link; the sriov plugin takes VFs, not PFs or plain devices")
    if vf.vf_id < 0:
        raise CniError(IO_FAILURE, f"VF {conf.device_id}: its PF {vf.pf_pci} lists no virtfnN link to it")
    if not vf.pf_netdevs:
        raise CniError(IO_FAILURE, f"VF {conf.device_id}: its PF {vf.pf_pci} has no network device",
                       "VF settings are applied through the PF netdev; is the PF driver bound?")
    if not vf.userspace and not vf.netdevs:
        raise CniError(IO_FAILURE, f"VF {conf.device_id} has no network device in the host netns",
                       f"driver {vf.driver or '(none)'!r}: neither a kernel netdev nor a DPDK driver "
                       "(vfio-pci/uio); is it already in use by another pod?")
    return vf


# ------------------------------------------------------------------------------------- helpers
def _record_name(device_id: str) -> str:
    return "vf-" + device_id


def _context(what: str, e: CniError) -> CniError:
    return CniError(e.code, f"{what}: {e.msg}", e.details)


def _tmp_name(index: int) -> str:
    return f"vftmp{index}"[:15]


def _host_netns_fd() -> int:
    # The main thread never leaves the host (node) netns: its own netns file is the host's.
    return netns.open_netns(netns.current_netns_path())


def _vf_state(nl, pf_index: int, vf_id: int):
    return next((v for v in nl.vfs(pf_index) if v.vf == vf_id), None)


def _netns_alive(path: str) -> bool:
    """The path still names a namespace: an nsfs file, not a leftover plain file of a runtime that
    unmounted the netns but did not unlink its mount point."""
    if not path:
        return False
    try:
        return os.stat(path).st_dev == os.stat(netns.current_netns_path()).st_dev  # nsfs: one device
    except OSError:
        return False


# ----------------------------------------------------------------------------- snapshot/restore
def _snapshot(conf: SriovConf, vf: VfInfo, req: Request) -> dict:
    """The allocation record: who owns the VF and everything needed to give it back unchanged."""
    from cni_rdma.netlink.rtnl import Rtnl

    rec: dict[str, Any] = {
        "version": RECORD_VERSION, "phase": "adding", "container_id": req.container_id, "ifname": req.ifname,
        "netns": req.netns, "device_id": conf.device_id, "pf_pci": vf.pf_pci, "pf": vf.pf_netdevs[0],
        "vf_id": vf.vf_id, "dpdk": vf.userspace, "applied": conf.pf_settings(), "orig_vf": None, "orig": None,
        "pod_index": None, "pod_mac": "", "pod_mtu": 0,
    }
    with Rtnl() as nl:
        try:
            pf = nl.link_get(name=rec["pf"])
        except CniError as e:
            raise _context(f"PF netdev {rec['pf']} of VF {conf.device_id}", e) from None
        state = _vf_state(nl, pf.index, vf.vf_id)
        if state is not None:
            rec["orig_vf"] = {k: getattr(state, k) for k in _PF_DEFAULTS}
            if rec["orig_vf"]["vlan_proto"] not in _PROTOS.values():
                # A never-configured VF may report protocol 0 (netdevsim): that is plain 802.1Q.
                rec["orig_vf"]["vlan_proto"] = "802.1Q"
        elif rec["applied"]:
            raise CniError(IO_FAILURE, f"PF {pf.name} does not report VF {vf.vf_id}",
                           f"cannot apply {', '.join(sorted(rec['applied']))} through it (is sriov_numvfs set?)")
        if not vf.userspace:
            name = vf.netdevs[0]
            try:
                link = nl.link_get(name=name)
            except CniError as e:
                raise _context(f"VF {conf.device_id} netdev {name} (sysfs) is not in the host netns", e) from None
            rec["orig"] = {"name": link.name, "index": link.index, "mac": link.mac, "mtu": link.mtu, "up": link.up}
    return rec


def _restore_pf(rec: dict, log) -> None:
    """Put back every PF-side setting ADD changed (or meant to): the VF's original values."""
    from cni_rdma.netlink.core import LinkNotFound
    from cni_rdma.netlink.rtnl import Rtnl

    applied = rec.get("applied") or {}
    if not applied:
        return
    orig = rec.get("orig_vf") or {}
    back = {k: orig.get(k) if orig.get(k) is not None else _PF_DEFAULTS[k] for k in applied}
    if "mac" in back and back["mac"] is None:
        back["mac"] = _ZERO_MAC
    with Rtnl() as nl:
        try:
            pf = nl.link_get(name=rec["pf"])
        except LinkNotFound:
            log.warning(f"PF {rec['pf']} is gone; nothing to reset for VF {rec['vf_id']}")
            return
        if _vf_state(nl, pf.index, rec["vf_id"]) is None:
            log.warning(f"PF {rec['pf']} no longer has VF {rec['vf_id']} (sriov_numvfs lowered?); nothing to reset")
            return
        nl.vf_set(pf.index, rec["vf_id"], **back)


def _restore_host_link(nl, index: int, rec: dict) -> None:
    """In the host netns: the VF netdev gets its original name, MAC, MTU and admin state back."""
    orig = rec["orig"]
    link = nl.link_get(index=index)
    if link.up:
        nl.link_set(index, up=False)
    if link.name != orig["name"]:
        nl.link_set(index, name=orig["name"])
    nl.link_set(index, mac=orig["mac"] if orig.get("mac") and link.mac != orig["mac"] else None,
                mtu=orig["mtu"] if orig.get("mtu") and link.mtu != orig["mtu"] else None,
                up=True if orig.get("up") else None)


def _move_to_host(pod_path: str, pod_name_or_index, rec: dict, host_fd: int) -> Optional[int]:
    """Pod side: down, original MAC/MTU, a temporary name; then into the host under its original
    name in one message (the host sees it arrive, never renamed from a pod name). Its host index."""
    from cni_rdma.netlink.core import LinkNotFound, NetlinkError
    from cni_rdma.netlink.rtnl import Rtnl

    orig = rec["orig"]

    def out() -> Optional[str]:
        with Rtnl() as nl:
            try:
                if isinstance(pod_name_or_index, int):
                    link = nl.link_get(index=pod_name_or_index)
                else:
                    link = nl.link_get(name=pod_name_or_index)
            except LinkNotFound:
                return None
            tmp = _tmp_name(link.index)
            nl.link_set(link.index, up=False)
            nl.link_set(link.index, name=tmp if link.name != tmp else None,
                        mac=orig["mac"] if orig.get("mac") and link.mac != orig["mac"] else None,
                        mtu=orig["mtu"] if orig.get("mtu") and link.mtu != orig["mtu"] else None)
            try:
                nl.link_set(link.index, name=orig["name"], netns_fd=host_fd)
            except NetlinkError as e:
                if e.errno != errno.EEXIST:
                    raise
                # Moved, but the host already has a device with its old name: it keeps the temporary one.
            return tmp

    tmp = netns.in_netns(pod_path, out)
    if tmp is None:
        return None
    with Rtnl() as nl:
        for name in (orig["name"], tmp):
            with contextlib.suppress(LinkNotFound):
                link = nl.link_get(name=name)
                if name == tmp or link.mac == orig.get("mac") or not orig.get("mac"):
                    return link.index
    raise CniError(IO_FAILURE, f"VF {rec['device_id']} left the pod but is not in the host as "
                               f"{orig['name']} or {tmp}")


def _find_in_host(rec: dict, sysfs: Sysfs) -> Optional[int]:
    """The VF netdev back in the host (its netns died): by sysfs, then by the names it may carry."""
    from cni_rdma.netlink.core import LinkNotFound
    from cni_rdma.netlink.rtnl import Rtnl

    candidates = list(sysfs.netdevs(rec["device_id"]))
    candidates += [rec["ifname"], rec["orig"]["name"], _tmp_name(rec["orig"]["index"])]
    if rec.get("pod_index"):
        candidates.append(_tmp_name(rec["pod_index"]))
    with Rtnl() as nl:
        for name in dict.fromkeys(candidates):
            try:
                link = nl.link_get(name=name)
            except LinkNotFound:
                continue
            if link.parent_dev:
                if normalize_pci(link.parent_dev) == rec["device_id"]:
                    return link.index
                continue
            # No bus device behind it (test stand-ins): the MAC the pod had, or untouched original.
            if link.mac in {rec.get("pod_mac"), rec["orig"].get("mac")} - {None, ""}:
                return link.index
    return None


def _release(rec: dict, pod_path: str, host_fd: int, sysfs: Sysfs, log) -> None:
    """Give the VF back: PF side first (drivers refuse some netdev changes otherwise), then the netdev."""
    from cni_rdma.netlink.rtnl import Rtnl

    _restore_pf(rec, log)
    if rec.get("dpdk") or not rec.get("orig"):
        return
    index = None
    if _netns_alive(pod_path):
        # Ours for sure: the index it got in the pod, or the temporary name it entered under.
        for where in (rec.get("pod_index"), _tmp_name(rec["orig"]["index"])):
            if where is not None:
                index = _move_to_host(pod_path, where, rec, host_fd)
                if index is not None:
                    break
    if index is None:
        index = _find_in_host(rec, sysfs)
    if index is None:
        log.warning(f"VF {rec['device_id']} netdev not found in the pod or the host; nothing to restore")
        return
    with Rtnl() as nl:
        _restore_host_link(nl, index, rec)


# ------------------------------------------------------------------------------------------ ADD
def _claim(store: Store, name: str, req: Request, sysfs: Sysfs, host_fd: int) -> Optional[str]:
    """Refuse a VF owned by a live netns; restore and drop a record whose netns is gone (then return
    the host name it was given back under)."""
    rec = store.read(name)
    if rec is None:
        return None
    owner = rec.get("netns", "")
    if _netns_alive(owner):
        raise CniError(TRY_AGAIN_LATER, f"VF {rec.get('device_id')} is already allocated",
                       f"to container {rec.get('container_id')} ({rec.get('ifname')} in {owner})")
    req.log.info(f"taking over stale allocation of {rec.get('device_id')} from container {rec.get('container_id')}")
    _release(rec, owner, host_fd, sysfs, req.log)
    store.delete(name)
    return (rec.get("orig") or {}).get("name")


def _move_in(rec: dict, req: Request, conf: SriovConf, pod_fd: int) -> None:
    """Host side: down, then into the pod under a temporary name (one message: the host never sees a rename)."""
    from cni_rdma.netlink.rtnl import Rtnl

    index = rec["orig"]["index"]
    with Rtnl() as nl:
        nl.link_set(index, up=False)
        nl.link_set(index, name=_tmp_name(index), netns_fd=pod_fd)


def _configure_in_pod(rec: dict, req: Request, conf: SriovConf) -> dict:
    """Pod side: the final name, MAC, MTU, up; return what the pod sees."""
    from cni_rdma.netlink.rtnl import Rtnl

    with Rtnl() as nl:
        link = nl.link_get(name=_tmp_name(rec["orig"]["index"]))
        rec["pod_index"] = link.index  # seen by the caller: a rollback from here on finds it by index
        if nl.link_exists(req.ifname):
            raise CniError(INVALID_CONFIG, f"interface {req.ifname} already exists in the pod netns {req.netns}")
        nl.link_set(link.index, name=req.ifname, mac=conf.mac or None, mtu=conf.mtu)
        if not req.conf.ipam_type:
            nl.link_set(link.index, up=True)  # with IPAM, ipconfig brings it up (after arp/ndisc_notify)
        link = nl.link_get(index=link.index)
        return {"index": link.index, "mac": link.mac, "mtu": link.mtu}


def _apply_ips(req: Request, result: Result) -> None:
    """Addresses and routes from the IPAM result on the pod interface (shared core: ipconfig)."""
    from cni_rdma import ipconfig

    return netns.in_netns(req.netns, ipconfig.configure, req.ifname, result)


def _announce(ifname: str, mac: str, result: Result, wait: float = 0.2) -> None:
    """Gratuitous ARP for each IPv4 address (in the pod netns; best effort, as sriov-cni): a re-used
    address moved to a new MAC. arp_notify only fires when a link comes up with addresses already on
    it; IPv6 gets its unsolicited NA from ndisc_notify when DAD completes."""
    import socket
    import struct
    import time

    from cni_rdma.netlink.core import mac_bytes
    from cni_rdma.netlink.rtnl import Rtnl

    v4 = [ip.address.ip for ip in result.ips if ip.address.version == 4]
    if not v4 or not mac:
        return
    with Rtnl() as nl:  # a VF may take a moment to report carrier
        deadline = time.monotonic() + wait
        while not nl.link_get(name=ifname).carrier and time.monotonic() < deadline:
            time.sleep(0.02)
    hw = mac_bytes(mac)
    with contextlib.suppress(OSError), socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        for ip in v4:
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, hw, ip.packed, b"\0" * 6, ip.packed)
            s.send(b"\xff" * 6 + hw + struct.pack("!H", 0x0806) + arp)


def add(req: Request) -> Result:
    conf = load(req)
    vf = discover(conf)
    store = Store(STORE)
    name = _record_name(conf.device_id)
    pod_fd = netns.open_netns(req.netns)
    host_fd = _host_netns_fd()
    try:
        with store.lock(name):
            restored = _claim(store, name, req, conf.sysfs, host_fd)
            if restored:
                vf = replace(discover(conf), netdevs=(restored,))
            rec = _snapshot(conf, vf, req)
            store.write(name, rec)  # before any change: a crash from here on is recoverable by DEL
            try:
                return _add(req, conf, rec, store, name, pod_fd)
            except BaseException as e:
                try:
                    _release(rec, req.netns, host_fd, conf.sysfs, req.log)
                except Exception as undo:  # never mask the original failure
                    req.log.error(f"rollback of VF {conf.device_id} incomplete: {undo}")
                else:
                    store.delete(name)
                req.log.error(f"ADD failed, VF {conf.device_id} given back: {e}")
                raise
    finally:
        os.close(pod_fd)
        os.close(host_fd)


def _add(req: Request, conf: SriovConf, rec: dict, store: Store, name: str, pod_fd: int) -> Result:
    from cni_rdma.netlink.rtnl import Rtnl

    faults.point("recorded")
    if rec["applied"]:
        with Rtnl() as nl:
            try:
                nl.vf_set(nl.link_get(name=rec["pf"]).index, rec["vf_id"], **rec["applied"])
            except CniError as e:
                raise _context(f"configuring VF {rec['vf_id']} of {rec['pf']}", e) from None
    faults.point("pf")
    iface = Interface(name=req.ifname, sandbox=req.netns, pci_id=conf.device_id, mac=conf.mac)
    if not rec["dpdk"]:
        _move_in(rec, req, conf, pod_fd)
        faults.point("moved")
        seen = netns.in_netns(req.netns, _configure_in_pod, rec, req, conf)
        rec.update(pod_index=seen["index"], pod_mac=seen["mac"], pod_mtu=seen["mtu"])
        store.write(name, rec)
        iface = Interface(name=req.ifname, sandbox=req.netns, pci_id=conf.device_id, mac=seen["mac"],
                          mtu=seen["mtu"])
        faults.point("created")
    elif not conf.mac and rec.get("orig_vf") and rec["orig_vf"].get("mac") not in (None, _ZERO_MAC):
        iface = Interface(name=req.ifname, sandbox=req.netns, pci_id=conf.device_id, mac=rec["orig_vf"]["mac"])
    result = Result(cni_version=req.conf.cni_version, interfaces=(iface,))
    if req.conf.ipam_type:
        with ipam.allocated(req) as got:
            faults.point("ipam")
            if not got.ips:
                raise CniError(IO_FAILURE, f"IPAM plugin {req.conf.ipam_type!r} returned no IP addresses")
            result = Result(cni_version=req.conf.cni_version, interfaces=(iface,),
                            ips=tuple(_on_iface0(ip) for ip in got.ips), routes=got.routes, dns=got.dns)
            if not rec["dpdk"]:
                _apply_ips(req, result)
                with contextlib.suppress(CniError, OSError):
                    netns.in_netns(req.netns, _announce, req.ifname, iface.mac, result)
            _finish(req, rec, store, name)
    else:
        _finish(req, rec, store, name)
    return result


def _finish(req: Request, rec: dict, store: Store, name: str) -> None:
    faults.point("result")
    rec["phase"] = "ready"
    store.write(name, rec)
    where = "DPDK, stays on the host" if rec["dpdk"] else f"{rec['orig']['name']} -> {req.ifname}"
    req.log.info(f"VF {rec['device_id']} (vf {rec['vf_id']} of {rec['pf']}, {where}) given to {req.netns}; "
                 f"PF settings {rec['applied']}")


def _on_iface0(ip):
    return replace(ip, interface=0)


# ------------------------------------------------------------------------------------------ DEL
def _find_record(store: Store, req: Request) -> Optional[str]:
    """The VF record of this attachment: by deviceID when the config has one, else by owner."""
    try:
        return _record_name(device_id_of(req))
    except CniError:
        pass
    found = []
    for name in store.names():
        if not name.startswith("vf-"):
            continue
        with contextlib.suppress(CniError):
            rec = store.read(name)
            if rec and rec.get("container_id") == req.container_id and rec.get("ifname") == req.ifname:
                found.append((rec.get("netns") != req.netns, name))  # the same netns first
    return min(found)[1] if found else None


def delete(req: Request) -> None:
    store = Store(STORE)
    name = _find_record(store, req)
    if req.conf.ipam_type:
        ipam.delete(req)
    if name is None:
        return
    host_fd = _host_netns_fd()
    try:
        with store.lock(name):
            rec = store.read(name)
            if rec is None:
                return
            if rec.get("container_id") != req.container_id or rec.get("ifname") != req.ifname:
                req.log.info(f"{rec.get('device_id')} now belongs to container {rec.get('container_id')}; "
                             "leaving it alone")
                return
            _release(rec, rec.get("netns") or req.netns, host_fd, Sysfs.from_env(req.env), req.log)
            store.delete(name)
            req.log.info(f"VF {rec['device_id']} given back to the host")
    finally:
        os.close(host_fd)


# ---------------------------------------------------------------------------------------- CHECK
def check(req: Request) -> None:
    from cni_rdma import ipconfig
    from cni_rdma.netlink.rtnl import Rtnl

    conf = load(req)
    prev = req.conf.prev_result
    if prev is None:
        raise CniError(INVALID_CONFIG, "CHECK needs a prevResult")
    rec = Store(STORE).read(_record_name(conf.device_id))
    if rec is None or rec.get("container_id") != req.container_id or rec.get("ifname") != req.ifname:
        raise CniError(IO_FAILURE, f"VF {conf.device_id} is not allocated to {req.container_id}/{req.ifname}")
    if req.conf.ipam_type:
        ipam.check(req)
    want = conf.pf_settings()
    if want:
        with Rtnl() as nl:
            state = _vf_state(nl, nl.link_get(name=rec["pf"]).index, rec["vf_id"])
        if state is None:
            raise CniError(IO_FAILURE, f"PF {rec['pf']} no longer reports VF {rec['vf_id']}")
        for key, value in want.items():
            have = getattr(state, key)
            if have is not None and have != value:
                raise CniError(IO_FAILURE, f"VF {rec['vf_id']} of {rec['pf']}: {key} is {have!r}, expected {value!r}")
    if rec.get("dpdk"):
        return

    def look() -> None:
        with Rtnl() as nl:
            try:
                link = nl.link_get(name=req.ifname)
            except CniError:
                raise CniError(IO_FAILURE, f"interface {req.ifname} not found in {req.netns}") from None
            if rec.get("pod_index") and link.index != rec["pod_index"]:
                raise CniError(IO_FAILURE, f"{req.ifname} in {req.netns} is not VF {conf.device_id}",
                               f"ifindex {link.index}, the VF was {rec['pod_index']}")
            mac = conf.mac or rec.get("pod_mac")
            if mac and link.mac != mac:
                raise CniError(IO_FAILURE, f"{req.ifname}: MAC is {link.mac}, expected {mac}")
            mtu = conf.mtu or rec.get("pod_mtu")
            if mtu and link.mtu != mtu:
                raise CniError(IO_FAILURE, f"{req.ifname}: MTU is {link.mtu}, expected {mtu}")
        if req.conf.ipam_type:
            ipconfig.verify(req.ifname, prev)

    netns.in_netns(req.netns, look)


# ----------------------------------------------------------------------------------- STATUS / GC
def status(req: Request) -> None:
    if req.conf.ipam_type:
        ipam.status(req)


def gc(req: Request) -> None:
    """Give back VFs whose attachment the runtime no longer lists and whose netns is gone."""
    valid = req.raw.get("cni.dev/valid-attachments")
    keep = set()
    if isinstance(valid, list):
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid if isinstance(a, dict)}
    store = Store(STORE)
    sysfs = Sysfs.from_env(req.env)
    host_fd = _host_netns_fd()
    try:
        for name in store.names():
            if not name.startswith("vf-"):
                continue
            with store.lock(name), contextlib.suppress(CniError):
                rec = store.read(name)
                if rec is None or (rec.get("container_id"), rec.get("ifname")) in keep:
                    continue
                if _netns_alive(rec.get("netns", "")):
                    continue  # still wired into a live pod: the runtime will DEL it
                _release(rec, "", host_fd, sysfs, req.log)
                store.delete(name)
    finally:
        os.close(host_fd)
    if req.conf.ipam_type:
        ipam.gc(req)
