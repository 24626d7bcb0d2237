"""sriov config: the keys sriov-cni takes, validated (`load_conf`), and the VF they name (`discover`).

deviceID      VF PCI address (also runtimeConfig.deviceID); required
vlan          0-4094, through the PF; vlanQoS 0-7 and vlanProto 802.1q/802.1ad need it
mac           VF admin MAC (PF) and netdev MAC; precedence "mac" < CNI_ARGS "MAC=" < runtimeConfig.mac
spoofchk, trust  "on"/"off" (or true/false); link_state auto/enable/disable; min/max_tx_rate in Mbps
mtu           of the VF netdev in the pod (beyond sriov-cni)
InfiniBand VFs (ib-sriov-cni's keys, infiniband.py): runtimeConfig.infinibandGUID (else args.cni.guid) as
node and port GUID, pkey (for ib-kubernetes), rdmaIsolation (the VF's RDMA device into the pod netns),
ibKubernetesEnabled (a GUID is required)
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

from cni_rdma import confkeys
from cni_rdma.errors import INVALID_CONFIG, IO_FAILURE, CniError, config_error
from cni_rdma.skel import Request
from cni_rdma.sysfs import Sysfs, VfInfo, normalize_pci

from . import infiniband

_ON_OFF = {"on": True, "off": False}
_PROTOS = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}
_LINK_STATES = ("auto", "enable", "disable")


class SriovConf:
    """The sriov keys of a network config, validated (see load_conf)."""

    __slots__ = ("device_id", "vlan", "qos", "vlan_proto", "mac", "spoofchk", "trust", "link_state",
                 "min_tx_rate", "max_tx_rate", "mtu", "sysfs", "ib")
    device_id: str
    vlan: Optional[int]
    qos: Optional[int]
    vlan_proto: Optional[str]  #: "802.1Q" / "802.1ad"
    mac: str  #: lowercase; "" keeps the VF's own
    spoofchk: Optional[bool]
    trust: Optional[bool]
    link_state: Optional[str]
    min_tx_rate: Optional[int]
    max_tx_rate: Optional[int]
    mtu: Optional[int]
    sysfs: Sysfs
    ib: infiniband.IbConf

    def __init__(self, device_id: str, sysfs: Optional[Sysfs] = None, mac: str = "",
                 ib: Optional[infiniband.IbConf] = None, **keys: Any) -> None:
        self.device_id = device_id
        self.sysfs = sysfs or Sysfs()
        self.mac = mac
        self.ib = ib or infiniband.IbConf()
        for key in ("vlan", "qos", "vlan_proto", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate",
                    "mtu"):
            setattr(self, key, keys.pop(key, None))
        if keys:
            raise TypeError(f"SriovConf: unknown field(s) {', '.join(keys)}")

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
        if self.ib.guid is not None:  # ib-sriov-cni sets the one GUID as both
            out.update(node_guid=self.ib.guid, port_guid=self.ib.guid)
        return out


def _on_off(raw: dict, key: str) -> Optional[bool]:
    v = raw.get(key)
    if v in (None, ""):
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in _ON_OFF:
        return _ON_OFF[v.lower()]
    raise config_error(key, f'{confkeys.q(v)} is not "on" or "off"')


def device_id_of(req: Request) -> str:
    """The VF's PCI address: top-level deviceID (Multus) or runtimeConfig.deviceID; code 7 otherwise."""
    value = req.raw.get("deviceID")
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
        raise config_error(key, f"{confkeys.q(value)} is not a PCI address (want dddd:bb:dd.f)")
    return pci


def load_conf(req: Request) -> SriovConf:
    """Parse and validate the sriov keys; every invalid value is code 7 naming its key."""
    raw = req.raw
    device_id = device_id_of(req)
    vlan = confkeys.get_opt_int(raw, "vlan", 0, 4094)
    qos = confkeys.get_opt_int(raw, "vlanQoS", 0, 7)
    proto = raw.get("vlanProto")
    if proto is not None:
        if not isinstance(proto, str) or proto.lower() not in _PROTOS:
            raise config_error("vlanProto", f"{confkeys.q(proto)} is not one of 802.1q, 802.1ad")
        proto = _PROTOS[proto.lower()]
    if vlan is None and qos is not None:
        raise config_error("vlanQoS", '"vlan" must be set to set a VLAN QoS')
    if vlan is None and proto is not None:
        raise config_error("vlanProto", '"vlan" must be set to set a VLAN protocol')
    if qos and not vlan:
        raise config_error("vlanQoS", "a non-zero QoS needs a non-zero vlan")
    if proto == "802.1ad" and not vlan:
        raise config_error("vlanProto", "802.1ad needs a non-zero vlan")

    mac = confkeys.mac(req)  # config, then CNI_ARGS MAC=, then runtimeConfig.mac (as sriov-cni)

    link_state = raw.get("link_state")
    if link_state == "":
        link_state = None
    if link_state is not None and link_state not in _LINK_STATES:
        raise config_error("link_state", f"{confkeys.q(link_state)} is not one of {', '.join(_LINK_STATES)}")
    min_rate = confkeys.get_opt_int(raw, "min_tx_rate", 0, 0xFFFFFFFF)
    max_rate = confkeys.get_opt_int(raw, "max_tx_rate", 0, 0xFFFFFFFF)
    if min_rate and max_rate and max_rate < min_rate:
        raise config_error("max_tx_rate", f"{max_rate} is below min_tx_rate {min_rate}")
    return SriovConf(device_id, Sysfs.from_env(req.env), mac=mac, vlan=vlan, qos=qos, vlan_proto=proto,
                     spoofchk=_on_off(raw, "spoofchk"), trust=_on_off(raw, "trust"), link_state=link_state,
                     min_tx_rate=min_rate, max_tx_rate=max_rate, mtu=confkeys.get_opt_int(raw, "mtu", 68, 65535),
                     ib=infiniband.load(raw))


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
