"""InfiniBand VFs in the sriov plugin: ib-sriov-cni's keys, with the same meaning.

k8snetworkplumbingwg/ib-sriov-cni (cmd/ib-sriov-cni/main.go, pkg/types/types.go, pkg/sriov/sriov.go):

  runtimeConfig.infinibandGUID  the VF's GUID (Multus fills it from the pod's annotation when the plugin
                                declares the "infinibandGUID" capability; ib-kubernetes writes it)
  args.cni.guid                 the same, when runtimeConfig has none (getGUIDFromConf)
  pkey                          NOT applied by the CNI: ib-kubernetes reads it from the network config and
                                adds the GUID to that partition in the subnet manager (UFM/OpenSM)
  rdmaIsolation                 move the VF's RDMA device into the pod netns (needs the RDMA subsystem in
                                exclusive netns mode, else ADD fails), and back on DEL
  ibKubernetesEnabled           a VF without a GUID is an error (ib-kubernetes must have assigned one)

A GUID is "xx:xx:xx:xx:xx:xx:xx:xx" (utils.IsValidGUID: that pattern, not all zero). ib-sriov-cni sets it
as both the node and the port GUID through the PF (IFLA_VF_IB_NODE_GUID / IFLA_VF_IB_PORT_GUID), then
rebinds the VF driver so mlx5 applies it; DEL puts back the GUID the VF netdev had (the last 8 bytes of its
20-byte IPoIB address; an all-zero one becomes ff:ff:ff:ff:ff:ff:ff:ff, "let the SM assign").
The GUID travels as a u64 whose most significant byte is the first one written: iproute2 (get_guid)
and vishvananda/netlink (binary.BigEndian) agree, and so does `parse_guid`.
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional

from cni_rdma.errors import config_error

_HEX = frozenset("0123456789abcdefABCDEF")
ALL_ONES = 0xFFFFFFFFFFFFFFFF  # ib-sriov-cni's DefaultGUID: what an all-zero original is restored as


def _is_guid(s: str) -> bool:
    """[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){7}, whole string (re costs ~5 ms to import)."""
    parts = s.split(":")
    return len(parts) == 8 and all(len(p) == 2 and _HEX.issuperset(p) for p in parts)


def parse_guid(value: Any, key: str) -> int:
    """An IB GUID string → the u64 the kernel takes; code 7 naming key when it is not one."""
    if not isinstance(value, str) or not _is_guid(value):
        raise config_error(key, f"{value!r} is not a GUID (want xx:xx:xx:xx:xx:xx:xx:xx)")
    guid = int(value.replace(":", ""), 16)
    if guid == 0:
        raise config_error(key, "the all-zero GUID is not a valid GUID")
    return guid


def guid_str(guid: int) -> str:
    raw = guid.to_bytes(8, "big").hex()
    return ":".join(raw[i:i + 2] for i in range(0, 16, 2))


def guid_of_ipoib_addr(mac: Optional[str]) -> Optional[int]:
    """The port GUID inside a 20-byte IPoIB hardware address (its last 8 bytes), as ib-sriov-cni reads it."""
    if not mac:
        return None
    parts = mac.split(":")
    if len(parts) != 20:
        return None
    return int("".join(parts[12:]), 16)


def parse_pkey(value: Any, key: str = "pkey") -> Optional[int]:
    """ib-sriov-cni's `pkey`: a string such as "0x8001", passed on to ib-kubernetes; 16 bits."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise config_error(key, f"expected a string such as \"0x8001\", got {value!r}")
    try:
        pkey = int(value, 0)
    except ValueError:
        raise config_error(key, f"{value!r} is not a partition key (want e.g. \"0x8001\")") from None
    if not 0 < pkey <= 0xFFFF or pkey & 0x7FFF == 0:
        raise config_error(key, f"{value!r} is outside the partition key range 0x0001-0xffff (0x8000 is invalid)")
    return pkey


class IbConf:
    """The InfiniBand keys of a sriov config, validated."""

    __slots__ = ("guid", "guid_key", "pkey", "rdma_isolation", "ib_kubernetes")
    guid: Optional[int]
    guid_key: str  #: where the GUID came from, for messages
    pkey: Optional[int]
    rdma_isolation: bool
    ib_kubernetes: bool

    def __init__(self, guid: Optional[int] = None, guid_key: str = "", pkey: Optional[int] = None,
                 rdma_isolation: bool = False, ib_kubernetes: bool = False):
        self.guid, self.guid_key, self.pkey = guid, guid_key, pkey
        self.rdma_isolation, self.ib_kubernetes = rdma_isolation, ib_kubernetes

    @property
    def wanted(self) -> bool:
        """Any key that only means something for an InfiniBand VF."""
        return self.guid is not None or self.pkey is not None or self.ib_kubernetes


def load(raw: dict) -> IbConf:
    """ib-sriov-cni's keys from a network config (runtimeConfig.infinibandGUID first, then args.cni.guid)."""
    rc: dict = raw["runtimeConfig"] if isinstance(raw.get("runtimeConfig"), dict) else {}
    args: dict = raw["args"] if isinstance(raw.get("args"), dict) else {}
    cni: dict = args["cni"] if isinstance(args.get("cni"), dict) else {}
    guid, guid_key = None, ""
    if rc.get("infinibandGUID") not in (None, ""):
        guid_key = "runtimeConfig.infinibandGUID"
        guid = parse_guid(rc["infinibandGUID"], guid_key)
    elif cni.get("guid") not in (None, ""):
        guid_key = "args.cni.guid"
        guid = parse_guid(cni["guid"], guid_key)
    flags = {}
    for key in ("rdmaIsolation", "ibKubernetesEnabled"):
        v = raw.get(key, False)
        if not isinstance(v, bool):
            raise config_error(key, f"expected true or false, got {v!r}")
        flags[key] = v
    if flags["ibKubernetesEnabled"] and guid is None:
        raise config_error("runtimeConfig.infinibandGUID", "ibKubernetesEnabled is set but no GUID was passed "
                           "(ib-kubernetes assigns one through the pod's network annotation)")
    return IbConf(guid, guid_key, parse_pkey(raw.get("pkey")), flags["rdmaIsolation"], flags["ibKubernetesEnabled"])
