"""RDMA netlink (NETLINK_RDMA, the "nldev" client): devices, ports, netns mode, moving a device.

What `rdma dev`, `rdma link` and `rdma system` (iproute2) do, for the rdma plugin. Constants are
from include/uapi/rdma/rdma_netlink.h. Messages carry no family header: attributes follow the
netlink header directly, and the message type is RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, command).

Namespaces: like every socket of this layer, `Rdma()` lives in the netns of the thread that opened
it, and the kernel resolves device indexes in *that* netns. In exclusive mode (`netns_mode()` ==
"exclusive") a dump shows only the devices of the socket's netns, so moving a device *out* of a pod
netns means opening the socket inside it (`cni_rdma.netns.in_netns`) and passing an fd of the target
netns, opened beforehand in the main thread:

    host_fd = os.open("/proc/self/ns/net", os.O_RDONLY)        # main thread: the host netns
    def give_back(name):
        with Rdma() as nl:                                    # opened inside the pod netns
            nl.set_netns(nl.device(name=name).index, host_fd)
    in_netns(pod_netns_path, give_back, "mlx5_3")

A kernel without RDMA (no ib_core) refuses the socket itself: `RdmaUnavailable`.
"""
from __future__ import annotations

import errno

from .core import (
    NETLINK_RDMA, NetlinkDecodeError, NetlinkError, NetlinkSocket, Record, a_str, a_u32, a_u8, attr_map, d_str,
    d_u32, d_u64, d_u8,
)

# include/uapi/rdma/rdma_netlink.h
RDMA_NL_NLDEV = 5

RDMA_NLDEV_CMD_GET = 1
RDMA_NLDEV_CMD_SET = 2
RDMA_NLDEV_CMD_NEWLINK = 3
RDMA_NLDEV_CMD_DELLINK = 4
RDMA_NLDEV_CMD_PORT_GET = 5
RDMA_NLDEV_CMD_SYS_GET = 6
RDMA_NLDEV_CMD_SYS_SET = 7

RDMA_NLDEV_ATTR_DEV_INDEX = 1  # u32
RDMA_NLDEV_ATTR_DEV_NAME = 2  # string
RDMA_NLDEV_ATTR_PORT_INDEX = 3  # u32 (in a device reply: the number of ports)
RDMA_NLDEV_ATTR_FW_VERSION = 5  # string
RDMA_NLDEV_ATTR_NODE_GUID = 6  # u64
RDMA_NLDEV_ATTR_PORT_STATE = 12  # u8
RDMA_NLDEV_ATTR_PORT_PHYS_STATE = 13  # u8
RDMA_NLDEV_ATTR_DEV_NODE_TYPE = 14  # u8
RDMA_NLDEV_ATTR_NDEV_INDEX = 50  # u32
RDMA_NLDEV_ATTR_NDEV_NAME = 51  # string
RDMA_NLDEV_ATTR_LINK_TYPE = 65  # string, the driver of a soft device ("rxe", "siw")
RDMA_NLDEV_SYS_ATTR_NETNS_MODE = 66  # u8: 1 shared, 0 exclusive
RDMA_NLDEV_ATTR_DEV_PROTOCOL = 67  # string: "ib", "roce", "iw", "opa", "usnic"
RDMA_NLDEV_NET_NS_FD = 68  # u32

NETNS_SHARED = 1
NETNS_EXCLUSIVE = 0

# include/rdma/ib_verbs.h enum ib_port_state (index = value)
PORT_STATES = ("nop", "down", "init", "armed", "active", "active_defer")
# include/rdma/ib_verbs.h enum rdma_node_type
NODE_TYPES = {1: "ca", 2: "switch", 3: "router", 4: "rnic", 5: "usnic", 6: "usnic_udp", 7: "unspecified"}


def nl_type(command: int) -> int:
    """RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, command)."""
    return (RDMA_NL_NLDEV << 10) + command


class RdmaUnavailable(NetlinkError):
    """The kernel has no RDMA netlink (ib_core not loaded or not built): the socket itself fails."""

    def __init__(self, err: int):
        super().__init__(err, "open RDMA netlink socket", None,
                         "no RDMA subsystem in this kernel (is ib_core loaded?)")


class RdmaDeviceNotFound(NetlinkError):
    """No RDMA device of that name or index in the socket's netns."""

    def __init__(self, dev: str):
        super().__init__(errno.ENODEV, "get RDMA device", dev)


class RdmaDevice(Record):
    """One RDMA device as the kernel reports it to the socket's netns."""

    __slots__ = ("index", "name", "ports", "node_type", "fw_version", "node_guid", "protocol", "driver")
    _defaults = dict(ports=0, node_type=None, fw_version=None, node_guid=None, protocol=None, driver=None)
    index: int
    name: str
    ports: int
    node_type: str | None  #: "ca", "rnic"...
    fw_version: str | None
    node_guid: int | None
    protocol: str | None  #: "ib", "roce", "iw"...
    driver: str | None  #: link type of a soft device ("rxe", "siw"); None for hardware


class RdmaPort(Record):
    """One port of an RDMA device; `netdev` only when the netdev is in the socket's netns."""

    __slots__ = ("dev_index", "dev_name", "port", "state", "phys_state", "netdev_index", "netdev")
    _defaults = dict(state=None, phys_state=None, netdev_index=None, netdev=None)
    dev_index: int
    dev_name: str
    port: int
    state: str | None
    phys_state: int | None
    netdev_index: int | None
    netdev: str | None


# ---------------------------------------------------------------- decoding (pure functions)
def decode_device(payload: bytes) -> RdmaDevice:
    a = attr_map(payload)
    if RDMA_NLDEV_ATTR_DEV_INDEX not in a or RDMA_NLDEV_ATTR_DEV_NAME not in a:
        raise NetlinkDecodeError("RDMA device reply without index or name")
    kw: dict = {}
    if RDMA_NLDEV_ATTR_PORT_INDEX in a:
        kw["ports"] = d_u32(a[RDMA_NLDEV_ATTR_PORT_INDEX], "ports")
    if RDMA_NLDEV_ATTR_DEV_NODE_TYPE in a:
        t = d_u8(a[RDMA_NLDEV_ATTR_DEV_NODE_TYPE], "node type")
        kw["node_type"] = NODE_TYPES.get(t, str(t))
    if RDMA_NLDEV_ATTR_FW_VERSION in a:
        kw["fw_version"] = d_str(a[RDMA_NLDEV_ATTR_FW_VERSION])
    if RDMA_NLDEV_ATTR_NODE_GUID in a:
        kw["node_guid"] = d_u64(a[RDMA_NLDEV_ATTR_NODE_GUID], "node guid")
    if RDMA_NLDEV_ATTR_DEV_PROTOCOL in a:
        kw["protocol"] = d_str(a[RDMA_NLDEV_ATTR_DEV_PROTOCOL])
    if RDMA_NLDEV_ATTR_LINK_TYPE in a:
        kw["driver"] = d_str(a[RDMA_NLDEV_ATTR_LINK_TYPE])
    return RdmaDevice(index=d_u32(a[RDMA_NLDEV_ATTR_DEV_INDEX], "device index"),
                      name=d_str(a[RDMA_NLDEV_ATTR_DEV_NAME]), **kw)


def decode_port(payload: bytes) -> RdmaPort:
    a = attr_map(payload)
    for need in (RDMA_NLDEV_ATTR_DEV_INDEX, RDMA_NLDEV_ATTR_DEV_NAME, RDMA_NLDEV_ATTR_PORT_INDEX):
        if need not in a:
            raise NetlinkDecodeError(f"RDMA port reply without attribute {need}")
    kw: dict = {}
    if RDMA_NLDEV_ATTR_PORT_STATE in a:
        s = d_u8(a[RDMA_NLDEV_ATTR_PORT_STATE], "port state")
        kw["state"] = PORT_STATES[s] if s < len(PORT_STATES) else str(s)
    if RDMA_NLDEV_ATTR_PORT_PHYS_STATE in a:
        kw["phys_state"] = d_u8(a[RDMA_NLDEV_ATTR_PORT_PHYS_STATE], "phys state")
    if RDMA_NLDEV_ATTR_NDEV_INDEX in a:
        kw["netdev_index"] = d_u32(a[RDMA_NLDEV_ATTR_NDEV_INDEX], "netdev index")
    if RDMA_NLDEV_ATTR_NDEV_NAME in a:
        kw["netdev"] = d_str(a[RDMA_NLDEV_ATTR_NDEV_NAME])
    return RdmaPort(dev_index=d_u32(a[RDMA_NLDEV_ATTR_DEV_INDEX], "device index"),
                    dev_name=d_str(a[RDMA_NLDEV_ATTR_DEV_NAME]),
                    port=d_u32(a[RDMA_NLDEV_ATTR_PORT_INDEX], "port index"), **kw)


def decode_netns_mode(payload: bytes) -> str:
    a = attr_map(payload)
    if RDMA_NLDEV_SYS_ATTR_NETNS_MODE not in a:
        raise NetlinkDecodeError("RDMA system reply without the netns mode")
    return "shared" if d_u8(a[RDMA_NLDEV_SYS_ATTR_NETNS_MODE], "netns mode") else "exclusive"


# ---------------------------------------------------------------- the socket
class Rdma(NetlinkSocket):
    """An RDMA netlink socket in the calling thread's netns. Use as a context manager."""

    protocol = NETLINK_RDMA

    def __init__(self, timeout: float | None = 30.0):
        try:
            super().__init__(timeout)
        except OSError as e:  # EPROTONOSUPPORT: no ib_core; anything else is just as fatal here
            raise RdmaUnavailable(e.errno or errno.EPROTONOSUPPORT) from None

    # ---- devices
    def devices(self) -> list[RdmaDevice]:
        """Every RDMA device visible in this netns (exclusive mode: only the ones it holds)."""
        return [decode_device(p) for p in self.dump(nl_type(RDMA_NLDEV_CMD_GET), b"", op="dump RDMA devices",
                                                     reply_type=nl_type(RDMA_NLDEV_CMD_GET))]

    def device(self, name: str | None = None, index: int | None = None) -> RdmaDevice:
        """One device by name or index; RdmaDeviceNotFound when this netns has no such device."""
        if (name is None) == (index is None):
            raise TypeError("device needs exactly one of name= or index=")
        if name is not None:
            for d in self.devices():
                if d.name == name:
                    return d
            raise RdmaDeviceNotFound(name)
        try:
            replies = self.request(nl_type(RDMA_NLDEV_CMD_GET), a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index),
                                   op="get RDMA device", dev=f"index {index}", reply_type=nl_type(RDMA_NLDEV_CMD_GET))
        except NetlinkError as e:
            if e.errno in (errno.EINVAL, errno.ENODEV):  # nldev answers EINVAL for an unknown index
                raise RdmaDeviceNotFound(f"index {index}") from None
            raise
        if not replies:
            raise NetlinkDecodeError(f"no reply for RDMA device index {index}")
        return decode_device(replies[0])

    def ports(self, dev_index: int) -> list[RdmaPort]:
        """The ports of one device, with the netdev of each (when it is in this netns)."""
        return [decode_port(p) for p in self.dump(nl_type(RDMA_NLDEV_CMD_PORT_GET),
                                                   a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, dev_index),
                                                   op="dump RDMA ports", dev=f"index {dev_index}",
                                                   reply_type=nl_type(RDMA_NLDEV_CMD_PORT_GET))]

    def netdevs(self) -> dict[str, tuple[str, ...]]:
        """RDMA device name -> names of its ports' netdevs in this netns (`rdma link` in short)."""
        out = {}
        for d in self.devices():
            out[d.name] = tuple(p.netdev for p in self.ports(d.index) if p.netdev)
        return out

    def set_netns(self, index: int, netns_fd: int) -> None:
        """Move device `index` (of this netns) to the netns of netns_fd (exclusive mode only).

        EOPNOTSUPP: shared mode, or a driver that cannot move (no disassociate_ucontext op).
        """
        body = a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index) + a_u32(RDMA_NLDEV_NET_NS_FD, netns_fd)
        self.request(nl_type(RDMA_NLDEV_CMD_SET), body, op="move RDMA device to netns", dev=f"index {index}")

    def rename(self, index: int, name: str) -> None:
        body = a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index) + a_str(RDMA_NLDEV_ATTR_DEV_NAME, name)
        self.request(nl_type(RDMA_NLDEV_CMD_SET), body, op="rename RDMA device", dev=f"index {index}")

    # ---- system
    def netns_mode(self) -> str:
        """ "exclusive" or "shared" (`rdma system show netns`). Kernels before 5.2: NetlinkError EOPNOTSUPP."""
        replies = self.request(nl_type(RDMA_NLDEV_CMD_SYS_GET), b"", op="get RDMA netns mode",
                               reply_type=nl_type(RDMA_NLDEV_CMD_SYS_GET))
        if not replies:
            raise NetlinkDecodeError("no reply to the RDMA system query")
        return decode_netns_mode(replies[0])

    def set_netns_mode(self, mode: str) -> None:
        """`rdma system set netns exclusive|shared`; EBUSY while any netns but the initial one exists."""
        if mode not in ("exclusive", "shared"):
            raise ValueError(f"netns mode {mode!r}: expected 'exclusive' or 'shared'")
        body = a_u8(RDMA_NLDEV_SYS_ATTR_NETNS_MODE, NETNS_SHARED if mode == "shared" else NETNS_EXCLUSIVE)
        self.request(nl_type(RDMA_NLDEV_CMD_SYS_SET), body, op="set RDMA netns mode", dev=mode)

    # ---- soft devices (tests and rxe/siw setups)
    def link_add(self, name: str, link_type: str, netdev: str) -> None:
        """`rdma link add NAME type rxe|siw netdev NETDEV` (the netdev is looked up in this netns)."""
        body = (a_str(RDMA_NLDEV_ATTR_DEV_NAME, name) + a_str(RDMA_NLDEV_ATTR_LINK_TYPE, link_type) +
                a_str(RDMA_NLDEV_ATTR_NDEV_NAME, netdev))
        self.request(nl_type(RDMA_NLDEV_CMD_NEWLINK), body, op=f"create {link_type} RDMA device", dev=name)

    def link_del(self, index: int) -> None:
        """`rdma link delete` of a soft device."""
        self.request(nl_type(RDMA_NLDEV_CMD_DELLINK), a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index),
                     op="delete RDMA device", dev=f"index {index}")
