"""sriov-cni's on-disk state, read and written in its own format: pods cross the DaemonSet swap both ways.

k8snetworkplumbingwg/sriov-cni keeps, under `DefaultCNIDir = "/var/lib/cni/sriov"` (pkg/config/config.go):

  <containerID>-<ifname>        its NetConf as JSON: written at the end of a successful ADD
                                (pkg/utils/utils.go SaveNetConf), read by DEL (config.LoadConfFromCache),
                                removed once that DEL succeeded (utils.CleanCachedNetConf)
  pci/<pci-addr>                the VF's allocation: the pod's netns path as the whole content
                                (pkg/utils/pci_allocator.go SaveAllocatedPCI); ADD refuses a VF whose
                                claim names a netns that still opens, and drops a claim whose netns
                                does not (IsAllocated); DEL removes it (DeleteAllocatedPCI)
  pci/vf_lock/<pci-addr>.lock   flock(LOCK_EX) on a file opened O_CREAT|O_RDONLY, held for the whole
                                ADD (config.LoadConf) and DEL (cnicommands.CmdDel), 60 s timeout

The cached NetConf (pkg/types/types.go, NetConf.MarshalJSON) is types.NetConf's keys (cniVersion, name,
type, ipam, dns, ...) merged over SriovNetConf's: "OrigVfState" {HostIFName, SpoofChk, Trust, AdminMAC,
EffectiveMAC, Vlan, VlanQoS, VlanProto (0x8100 / 0x88a8), MinTxRate, MaxTxRate, LinkState (0 auto,
1 enable, 2 disable), MTU}, "Master", "MAC", "MTU", "vlan", "vlanQoS", "vlanProto", "deviceID", "VFID",
"min_tx_rate", "max_tx_rate", "spoofchk", "trust", "link_state", "runtimeConfig" {"mac"}, "logLevel",
"logFile". DPDKMode is `json:"-"`: never saved. Go's encoding/json matches keys case-insensitively, and
so does `parse_cache`.

What sriov-cni's DEL puts back, and so what `SriovCniConf.pf_restore`/`netdev_restore` describe:
ResetVFConfig restores, through the PF, the vlan/qos/proto when "vlan" was set, spoofchk and trust when
set, the rates when either was set, the link state when set, and the admin MAC whenever OrigVfState has
one; ReleaseVF then takes the pod's `ifname` down, renames it back to HostIFName, puts back EffectiveMAC
and MTU (when non-zero) and moves it to the host netns, where it stays down.

Every file here is untrusted (a broken node, a hostile NAD author): opened O_NOFOLLOW|O_NONBLOCK, regular
files only, bounded reads, names built from validated IDs only, writes atomic (tmp + rename).
"""
from __future__ import annotations

import posix
import time

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

    from .vfstate import VfState

from cni_rdma import errnos, jsonc, paths
from cni_rdma.errors import INVALID_CONFIG, IO_FAILURE, TRY_AGAIN_LATER, CniError
from cni_rdma.native import LOCK_EX, LOCK_NB, flock
from cni_rdma.state import Held

DATA_DIR = "/var/lib/cni/sriov"  # sriov-cni's config.DefaultCNIDir (not configurable there); our Store("sriov").dir
MAX_CACHE = 1 << 20  # a NetConf is a few KB; anything bigger is not one
MAX_CLAIM = 4096  # a netns path
LOCK_TIMEOUT = 60.0  # seconds, as sriov-cni's pciLockAcquireTimeout
VLAN_PROTO_NUMBERS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}  # sriov-cni's VlanProtoInt (non-s390x)
LINK_STATE_NUMBERS = {"auto": 0, "enable": 1, "disable": 2}  # netlink VF_LINK_STATE_*
_LOWER_HEX = frozenset("0123456789abcdef")
_ZERO_MAC = "00:00:00:00:00:00"


class CacheError(CniError):
    """A sriov-cni cache or claim file that cannot be used (unreadable, not JSON, wrong types)."""

    def __init__(self, path: str, problem: str):
        super().__init__(IO_FAILURE, f"sriov-cni state {path}: {problem}")


class CachedOrigState:
    """sriov-cni's VfState as cached under "OrigVfState": the VF before its ADD changed anything."""

    __slots__ = ("host_ifname", "spoofchk", "trust", "admin_mac", "effective_mac", "vlan", "vlan_qos",
                 "vlan_proto", "min_tx_rate", "max_tx_rate", "link_state", "mtu")
    host_ifname: str
    spoofchk: bool
    trust: bool
    admin_mac: str  #: "" when sriov-cni recorded none
    effective_mac: str
    vlan: int
    vlan_qos: int
    vlan_proto: int  #: ethertype, 0 = not recorded (sriov-cni then restores 802.1Q)
    min_tx_rate: int
    max_tx_rate: int
    link_state: int  #: 0 auto, 1 enable, 2 disable
    mtu: int  #: 0 = not recorded

    def __init__(self, **kw: Any):
        for name in self.__slots__:
            setattr(self, name, kw[name])

    def to_json(self) -> dict:
        return {"HostIFName": self.host_ifname, "SpoofChk": self.spoofchk, "Trust": self.trust,
                "AdminMAC": self.admin_mac, "EffectiveMAC": self.effective_mac, "Vlan": self.vlan,
                "VlanQoS": self.vlan_qos, "VlanProto": self.vlan_proto, "MinTxRate": self.min_tx_rate,
                "MaxTxRate": self.max_tx_rate, "LinkState": self.link_state, "MTU": self.mtu}


class SriovCniConf:
    """One attachment as sriov-cni cached it: which VF, what its ADD set, and the VF's earlier state."""

    __slots__ = ("device_id", "master", "vf_id", "mac", "mtu", "vlan", "vlan_qos", "vlan_proto", "spoofchk",
                 "trust", "link_state", "min_tx_rate", "max_tx_rate", "ipam_type", "orig")
    device_id: str
    master: str  #: the PF netdev
    vf_id: int
    mac: str  #: "" when the ADD set none
    mtu: Optional[int]
    vlan: Optional[int]  #: None: the ADD did not touch the VLAN (and DEL does not restore it)
    vlan_qos: Optional[int]
    vlan_proto: Optional[str]  #: "802.1q" / "802.1ad" as sriov-cni stores it
    spoofchk: str  #: "on" / "off" / "" (not set)
    trust: str
    link_state: str  #: "auto" / "enable" / "disable" / ""
    min_tx_rate: Optional[int]
    max_tx_rate: Optional[int]
    ipam_type: str
    orig: CachedOrigState

    def __init__(self, **kw: Any):
        for name in self.__slots__:
            setattr(self, name, kw[name])

    def pf_restore(self) -> dict:
        """The PF-side settings sriov-cni's ResetVFConfig puts back, as Rtnl.vf_set keywords."""
        o = self.orig
        out: dict[str, Any] = {}
        if self.vlan is not None:
            proto = next((k for k, v in VLAN_PROTO_NUMBERS.items() if v == o.vlan_proto), "802.1Q")
            out.update(vlan=o.vlan, qos=o.vlan_qos, vlan_proto=proto)
        if self.spoofchk:
            out["spoofchk"] = o.spoofchk
        if o.admin_mac:
            out["mac"] = o.admin_mac
        if self.trust:
            out["trust"] = o.trust
        if self.min_tx_rate is not None or self.max_tx_rate is not None:
            out.update(min_tx_rate=o.min_tx_rate, max_tx_rate=o.max_tx_rate)
        if self.link_state:
            out["link_state"] = next((k for k, v in LINK_STATE_NUMBERS.items() if v == o.link_state), "auto")
        return out

    def netdev_restore(self) -> dict:
        """What ReleaseVF gives the VF netdev back: name, MAC (if known), MTU (if known); it stays down."""
        return {"name": self.orig.host_ifname, "mac": self.orig.effective_mac or None, "mtu": self.orig.mtu or None,
                "up": False}


# ------------------------------------------------------------------------------ paths and names
def cache_name(container_id: str, ifname: str) -> str:
    """sriov-cni's cache file name, refusing anything that could leave the directory."""
    name = f"{container_id}-{ifname}"
    if "/" in name or "\0" in name or name.startswith(".") or len(name.encode()) > 255:
        raise CniError(IO_FAILURE, f"no sriov-cni cache name for container {container_id!r} / {ifname!r}")
    return name


def _is_pci(addr: str) -> bool:
    """sriov-cni's PCI address form [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7], whole string (re: ~5 ms to import)."""
    return (len(addr) == 12 and addr[4] == ":" and addr[7] == ":" and addr[10] == "." and addr[11] in "01234567"
            and _LOWER_HEX.issuperset(addr[:4] + addr[5:7] + addr[8:10]))


def _pci(addr: str) -> str:
    if not _is_pci(addr):
        raise CniError(IO_FAILURE, f"{addr!r} is not a PCI address")
    return addr


# -------------------------------------------------------------------------------- safe file I/O
def _read_small(path: str, limit: int) -> Optional[bytes]:
    """A regular file's bytes (cni_rdma.safefile: no symlink, no blocking, bounded); None when absent."""
    from cni_rdma import safefile

    try:
        return safefile.read(path, limit)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CacheError(path, safefile.describe(e)) from None


def _write_atomic(path: str, data: bytes) -> None:
    """Through cni_rdma.state (temp file + fsync + rename, no symlinked directory)."""
    from cni_rdma.state import Store

    directory, name = paths.split(path)
    Store(paths.basename(directory), root=paths.dirname(directory)).write_bytes(name, data)


def _unlink(path: str) -> None:
    try:
        posix.unlink(path)
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------- the cache file
def _field(d: dict, key: str) -> Any:
    """d[key] matched case-insensitively, as Go's encoding/json does (the exact spelling wins)."""
    if key in d:
        return d[key]
    low = key.lower()
    return next((v for k, v in d.items() if isinstance(k, str) and k.lower() == low), None)


def parse_cache(data: bytes, where: str = "cache") -> SriovCniConf:
    """sriov-cni's cached NetConf → SriovCniConf; CacheError naming the field that is wrong."""
    try:
        d = jsonc.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CacheError(where, "not JSON") from None
    if not isinstance(d, dict):
        raise CacheError(where, "not a JSON object")

    def typed(src: dict, key: str, kind: type, default: Any, label: str = "") -> Any:
        v = _field(src, key)
        if v is None:
            return default
        if kind is int and isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise CacheError(where, f'"{label or key}" should be {kind.__name__}, not {type(v).__name__}')
        return v

    o = _field(d, "OrigVfState")
    if not isinstance(o, dict):
        raise CacheError(where, '"OrigVfState" missing or not an object')
    orig = CachedOrigState(
        host_ifname=typed(o, "HostIFName", str, "", "OrigVfState.HostIFName"),
        spoofchk=typed(o, "SpoofChk", bool, False, "OrigVfState.SpoofChk"),
        trust=typed(o, "Trust", bool, False, "OrigVfState.Trust"),
        admin_mac=typed(o, "AdminMAC", str, "", "OrigVfState.AdminMAC").lower(),
        effective_mac=typed(o, "EffectiveMAC", str, "", "OrigVfState.EffectiveMAC").lower(),
        vlan=typed(o, "Vlan", int, 0, "OrigVfState.Vlan"),
        vlan_qos=typed(o, "VlanQoS", int, 0, "OrigVfState.VlanQoS"),
        vlan_proto=typed(o, "VlanProto", int, 0, "OrigVfState.VlanProto"),
        min_tx_rate=typed(o, "MinTxRate", int, 0, "OrigVfState.MinTxRate"),
        max_tx_rate=typed(o, "MaxTxRate", int, 0, "OrigVfState.MaxTxRate"),
        link_state=typed(o, "LinkState", int, 0, "OrigVfState.LinkState"),
        mtu=typed(o, "MTU", int, 0, "OrigVfState.MTU"),
    )
    device_id = typed(d, "deviceID", str, "").lower()
    if not _is_pci(device_id):
        raise CacheError(where, f'"deviceID" {device_id!r} is not a PCI address')
    ipam = _field(d, "ipam")
    ipam_type = ipam.get("type", "") if isinstance(ipam, dict) else ""
    return SriovCniConf(
        device_id=device_id,
        master=typed(d, "Master", str, ""),
        vf_id=typed(d, "VFID", int, 0),
        mac=typed(d, "MAC", str, "").lower(),
        mtu=typed(d, "MTU", int, None),
        vlan=typed(d, "vlan", int, None),
        vlan_qos=typed(d, "vlanQoS", int, None),
        vlan_proto=typed(d, "vlanProto", str, None),
        spoofchk=typed(d, "spoofchk", str, ""),
        trust=typed(d, "trust", str, ""),
        link_state=typed(d, "link_state", str, ""),
        min_tx_rate=typed(d, "min_tx_rate", int, None),
        max_tx_rate=typed(d, "max_tx_rate", int, None),
        ipam_type=ipam_type if isinstance(ipam_type, str) else "",
        orig=orig,
    )


def load_cache(container_id: str, ifname: str, root: str = DATA_DIR) -> Optional[SriovCniConf]:
    """The attachment sriov-cni cached for (containerID, ifname), or None."""
    path = paths.join(root, cache_name(container_id, ifname))
    data = _read_small(path, MAX_CACHE)
    return None if data is None else parse_cache(data, path)


def render_cache(conf: SriovCniConf, netconf: dict) -> bytes:
    """The JSON sriov-cni's DEL reads: netconf's types.NetConf keys over the SriovNetConf fields."""
    out: dict[str, Any] = {
        "OrigVfState": conf.orig.to_json(), "Master": conf.master, "MAC": conf.mac, "MTU": conf.mtu,
        "vlan": conf.vlan, "vlanQoS": conf.vlan_qos, "vlanProto": conf.vlan_proto, "deviceID": conf.device_id,
        "VFID": conf.vf_id, "min_tx_rate": conf.min_tx_rate, "max_tx_rate": conf.max_tx_rate,
        "runtimeConfig": {},
    }
    for key in ("spoofchk", "trust", "link_state"):  # `json:",omitempty"` in sriov-cni
        if getattr(conf, key):
            out[key] = getattr(conf, key)
    for key in ("cniVersion", "name", "type", "capabilities", "ipam", "dns"):  # types.NetConf
        if netconf.get(key) is not None:
            out[key] = netconf[key]
    return jsonc.dumps(out, sort_keys=True).encode()


def save_cache(container_id: str, ifname: str, conf: SriovCniConf, netconf: dict, root: str = DATA_DIR) -> None:
    _write_atomic(paths.join(root, cache_name(container_id, ifname)), render_cache(conf, netconf))


def drop_cache(container_id: str, ifname: str, root: str = DATA_DIR) -> None:
    _unlink(paths.join(root, cache_name(container_id, ifname)))


def caches_for_device(device_id: str, root: str = DATA_DIR, limit: int = 4096) -> list[tuple[str, SriovCniConf]]:
    """Every readable cache file that names device_id (a claim does not say which cache is its own)."""
    out = []
    try:
        names = sorted(posix.listdir(root))[:limit]
    except OSError:
        return []
    for name in names:
        if "-" not in name or name.startswith(("vf-", ".")) or name.endswith((".lock", ".tmp")):
            continue
        path = paths.join(root, name)
        try:
            data = _read_small(path, MAX_CACHE)
            conf = parse_cache(data, path) if data is not None else None
        except CacheError:
            continue
        if conf is not None and conf.device_id == device_id:
            out.append((name, conf))
    return out


# ------------------------------------------------------------------------------- the PCI claim
def claim_path(device_id: str, root: str = DATA_DIR) -> str:
    return paths.join(root, "pci", _pci(device_id))


def read_claim(device_id: str, root: str = DATA_DIR) -> Optional[str]:
    """The netns path sriov-cni (or we, for it) recorded for the VF; None when unclaimed."""
    path = claim_path(device_id, root)
    data = _read_small(path, MAX_CLAIM)
    if data is None:
        return None
    return data.decode(errors="replace")


def save_claim(device_id: str, netns_path: str, root: str = DATA_DIR) -> None:
    _write_atomic(claim_path(device_id, root), netns_path.encode())


def drop_claim(device_id: str, root: str = DATA_DIR, netns_path: Optional[str] = None) -> None:
    """Remove the claim (only if it still names netns_path, when given: a newer pod's claim stays)."""
    if netns_path is not None and read_claim(device_id, root) not in (None, netns_path):
        return
    _unlink(claim_path(device_id, root))


def pci_lock(device_id: str, root: str = DATA_DIR, timeout: float = LOCK_TIMEOUT) -> Held:
    """sriov-cni's per-VF lock: flock(LOCK_EX) on pci/vf_lock/<pci>.lock for the `with` block, so the two
    never interleave."""
    return Held(lambda: _take_pci_lock(device_id, root, timeout))


def _take_pci_lock(device_id: str, root: str, timeout: float) -> int:
    from cni_rdma import safefile

    lock_dir = paths.join(root, "pci", "vf_lock")
    path = paths.join(lock_dir, _pci(device_id) + ".lock")
    try:
        paths.makedirs(lock_dir, mode=0o700, exist_ok=True)
        fd = safefile.open_regular(path, posix.O_RDONLY | posix.O_CREAT)
    except OSError as e:
        raise CniError(IO_FAILURE, f"cannot open the sriov-cni lock {path}", e.strerror or str(e)) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                flock(fd, LOCK_EX | LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errnos.EWOULDBLOCK, errnos.EAGAIN):
                    raise CniError(IO_FAILURE, f"cannot lock {path}", e.strerror or str(e)) from None
                if time.monotonic() >= deadline:
                    raise CniError(TRY_AGAIN_LATER, f"VF {device_id} is being configured by another plugin call",
                                   f"{path} still locked after {timeout:.0f}s") from None
                time.sleep(0.02)
    except BaseException:
        posix.close(fd)
        raise
    return fd


# --------------------------------------------------------------- to and from our VfState records
def to_vf_state(conf: SriovCniConf, container_id: str, ifname: str, netns: str, pf_pci: str = "",
                dpdk: bool = False) -> VfState:
    """A sriov-cni attachment as our record, so VfManager.restore gives it back the way sriov-cni's
    DEL would: `applied` names exactly the PF settings ResetVFConfig restores, and the netdev returns
    to HostIFName with EffectiveMAC and MTU, down (sriov-cni never records whether it was up)."""
    from .vfstate import OrigVfState as OurOrig
    from .vfstate import VfState

    o = conf.orig
    back = conf.pf_restore()
    orig = OurOrig(host_ifname="" if dpdk else o.host_ifname, effective_mac=o.effective_mac, mtu=o.mtu, up=False,
                   pf_reported=True, admin_mac=o.admin_mac or None, vlan=o.vlan, qos=o.vlan_qos,
                   vlan_proto=back.get("vlan_proto", "802.1Q"), spoofchk=o.spoofchk, trust=o.trust,
                   link_state=back.get("link_state", "auto"), min_tx_rate=o.min_tx_rate, max_tx_rate=o.max_tx_rate)
    proto = "802.1ad" if conf.vlan_proto == "802.1ad" else "802.1Q"
    was_set = {"vlan": conf.vlan, "qos": conf.vlan_qos, "vlan_proto": proto,
               "spoofchk": conf.spoofchk == "on", "trust": conf.trust == "on", "mac": conf.mac or None,
               "min_tx_rate": conf.min_tx_rate or 0, "max_tx_rate": conf.max_tx_rate or 0,
               "link_state": conf.link_state or "auto"}
    applied = {key: was_set[key] for key in back}  # what sriov-cni's ADD set, for the keys its DEL puts back
    return VfState(container_id=container_id, ifname=ifname, netns=netns, device_id=conf.device_id, pf=conf.master,
                   pf_pci=pf_pci, vf_id=conf.vf_id, dpdk=dpdk, orig=orig, applied=applied, want_mac=conf.mac,
                   phase="ready", pod_mac=conf.mac, pod_mtu=conf.mtu or 0)


def from_vf_state(st: VfState) -> SriovCniConf:
    """Our record as sriov-cni caches an attachment: its DEL then restores what ours would (the PF
    settings ADD changed, the netdev's name, MAC and MTU)."""
    o, a = st.orig, st.applied

    def on_off(key: str) -> str:
        return ("on" if a[key] else "off") if key in a else ""

    proto = str(a.get("vlan_proto") or "802.1Q")
    orig = CachedOrigState(
        host_ifname=o.host_ifname, spoofchk=bool(o.pf_value("spoofchk")), trust=bool(o.pf_value("trust")),
        admin_mac=str(o.pf_value("mac")) if "mac" in a else "", effective_mac=o.effective_mac,
        vlan=int(o.pf_value("vlan")), vlan_qos=int(o.pf_value("qos")),
        vlan_proto=VLAN_PROTO_NUMBERS.get(str(o.pf_value("vlan_proto")), 0x8100),
        min_tx_rate=int(o.pf_value("min_tx_rate")), max_tx_rate=int(o.pf_value("max_tx_rate")),
        link_state=LINK_STATE_NUMBERS.get(str(o.pf_value("link_state")), 0), mtu=o.mtu)
    return SriovCniConf(
        device_id=st.device_id, master=st.pf, vf_id=st.vf_id, mac=st.want_mac or str(a.get("mac") or ""),
        mtu=st.pod_mtu or None, vlan=a.get("vlan"), vlan_qos=a.get("qos") if "vlan" in a else None,
        vlan_proto=proto.lower() if "vlan" in a else None, spoofchk=on_off("spoofchk"), trust=on_off("trust"),
        link_state=str(a.get("link_state") or ""), min_tx_rate=a.get("min_tx_rate"),
        max_tx_rate=a.get("max_tx_rate"), ipam_type="", orig=orig)


def remember(st: VfState, netconf: dict, root: str = DATA_DIR) -> str:
    """After our ADD: what sriov-cni's DEL (and ADD's IsAllocated) needs. No cache for a DPDK VF:
    sriov-cni does not cache DPDKMode, so its DEL would look for a netdev in the pod; the claim
    alone keeps it from handing the VF to another pod. Answers why no cache was written ("" if one was)."""
    save_claim(st.device_id, st.netns, root)
    if st.dpdk:
        return "a DPDK VF"
    try:
        save_cache(st.container_id, st.ifname, from_vf_state(st), netconf, root)
    except CniError as e:
        if e.code != INVALID_CONFIG:
            raise
        # a container ID / ifname our state layer refuses as a file name: the pod still works; only a
        # rollback to sriov-cni would have to drain it
        return f"no file name for it: {e.msg}"
    return ""


def forget(container_id: str, ifname: str, device_id: str, netns_path: Optional[str], root: str = DATA_DIR) -> None:
    """The attachment's sriov-cni files, whoever wrote them; the claim only if it names netns_path (any
    claim when None)."""
    drop_cache(container_id, ifname, root)
    drop_claim(device_id, root, netns_path=netns_path)

