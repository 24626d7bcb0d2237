"""RDMA netlink (NETLINK_RDMA, the "nldev" client): devices, ports, netns mode, moving a device.

What `rdma dev`, `rdma link` and `rdma system` (iproute2) do, for the rdma plugin. Constants are
from include/uapi/rdma/rdma_netlink.h. Messages carry no family header: attributes follow the
netlink header directly, and the message type is RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, command).

Namespaces: like every socket of this layer, `Rdma()` lives in the netns of the thread that opened
it, and the kernel resolves device indexes in *that* netns. In exclusive mode (`netns_mode()` ==
"exclusive") a dump shows only the devices of the socket's netns, so moving a device *out* of a pod
netns means opening the socket inside it (`cni_rdma.netns.in_netns`) and passing an fd of the target
netns, opened beforehand in the main thread:

    host_fd = posix.open("/proc/self/ns/net", posix.O_RDONLY)  # main thread: the host netns
    def give_back(name):
        with Rdma() as nl:                                    # opened inside the pod netns
            nl.set_netns(nl.device(name=name).index, host_fd)
    in_netns(pod_netns_path, give_back, "mlx5_3")

A kernel without RDMA (no ib_core) refuses the socket itself: `RdmaUnavailable`.
"""
from __future__ import annotations

from .. import errnos
from ..record import Record
from .core import NETLINK_RDMA, NetlinkSocket, a_u32, attr_map, d_str, d_u8, d_u32, d_u64
from .errors import NetlinkDecodeError, NetlinkError, NotFound

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


class RdmaDeviceNotFound(NotFound):
    """No RDMA device of that name or index in the socket's netns."""

    def __init__(self, dev: str):
        super().__init__(errnos.ENODEV, "get RDMA device", dev)


class RdmaDevice(Record):
    """One RDMA device as the kernel reports it to the socket's netns."""

    index: int
    name: str
    ports: int = 0
    node_type: str | None = None  #: "ca", "rnic"...
    fw_version: str | None = None
    node_guid: int | None = None
    protocol: str | None = None  #: "ib", "roce", "iw"...
    driver: str | None = None  #: link type of a soft device ("rxe", "siw"); None for hardware


class RdmaPort(Record):
    """One port of an RDMA device; `netdev` only when the netdev is in the socket's netns."""

    dev_index: int
    dev_name: str
    port: int
    state: str | None = None
    phys_state: int | None = None
    netdev_index: int | None = None
    netdev: str | None = None


# ---------------------------------------------------------------- decoding (pure functions)
# nldev attribute -> (RdmaDevice field, decoder): one row per attribute, read by decode_device.
DEVICE_ATTRS: dict = {
    RDMA_NLDEV_ATTR_PORT_INDEX: ("ports", lambda b: d_u32(b, "ports")),
    RDMA_NLDEV_ATTR_DEV_NODE_TYPE: ("node_type", lambda b: _node_type(d_u8(b, "node type"))),
    RDMA_NLDEV_ATTR_FW_VERSION: ("fw_version", d_str),
    RDMA_NLDEV_ATTR_NODE_GUID: ("node_guid", lambda b: d_u64(b, "node guid")),
    RDMA_NLDEV_ATTR_DEV_PROTOCOL: ("protocol", d_str),
    RDMA_NLDEV_ATTR_LINK_TYPE: ("driver", d_str),
}


def _node_type(t: int) -> str:
    return NODE_TYPES.get(t, str(t))


def decode_device(payload: bytes) -> RdmaDevice:
    a = attr_map(payload)
    if RDMA_NLDEV_ATTR_DEV_INDEX not in a or RDMA_NLDEV_ATTR_DEV_NAME not in a:
        raise NetlinkDecodeError("RDMA device reply without index or name")
    kw = {field: decode(a[key]) for key, (field, decode) in DEVICE_ATTRS.items() if key in a}
    return RdmaDevice(index=d_u32(a[RDMA_NLDEV_ATTR_DEV_INDEX], "device index"),
                      name=d_str(a[RDMA_NLDEV_ATTR_DEV_NAME]), **kw)


def _port_state(s: int) -> str:
    return PORT_STATES[s] if s < len(PORT_STATES) else str(s)


# nldev port attribute -> (RdmaPort field, decoder).
PORT_ATTRS: dict = {
    RDMA_NLDEV_ATTR_PORT_STATE: ("state", lambda b: _port_state(d_u8(b, "port state"))),
    RDMA_NLDEV_ATTR_PORT_PHYS_STATE: ("phys_state", lambda b: d_u8(b, "phys state")),
    RDMA_NLDEV_ATTR_NDEV_INDEX: ("netdev_index", lambda b: d_u32(b, "netdev index")),
    RDMA_NLDEV_ATTR_NDEV_NAME: ("netdev", d_str),
}


def decode_port(payload: bytes) -> RdmaPort:
    a = attr_map(payload)
    for need in (RDMA_NLDEV_ATTR_DEV_INDEX, RDMA_NLDEV_ATTR_DEV_NAME, RDMA_NLDEV_ATTR_PORT_INDEX):
        if need not in a:
            raise NetlinkDecodeError(f"RDMA port reply without attribute {need}")
    kw = {field: decode(a[key]) for key, (field, decode) in PORT_ATTRS.items() if key in a}
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
            raise RdmaUnavailable(e.errno or errnos.EPROTONOSUPPORT) from None

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
        assert index is not None
        try:
            replies = self.request(nl_type(RDMA_NLDEV_CMD_GET), a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index),
                                   op="get RDMA device", dev=f"index {index}", reply_type=nl_type(RDMA_NLDEV_CMD_GET))
        except NetlinkError as e:
            if e.errno in (errnos.EINVAL, errnos.ENODEV):  # nldev answers EINVAL for an unknown index
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

    def set_netns(self, index: int, netns_fd: int) -> None:
        """Move device `index` (of this netns) to the netns of netns_fd (exclusive mode only).

        EOPNOTSUPP: shared mode, or a driver that cannot move (no disassociate_ucontext op).
        """
        body = a_u32(RDMA_NLDEV_ATTR_DEV_INDEX, index) + a_u32(RDMA_NLDEV_NET_NS_FD, netns_fd)
        self.request(nl_type(RDMA_NLDEV_CMD_SET), body, op="move RDMA device to netns", dev=f"index {index}")

    # ---- system
    def netns_mode(self) -> str:
        """ "exclusive" or "shared" (`rdma system show netns`). Kernels before 5.2: NetlinkError EOPNOTSUPP."""
        replies = self.request(nl_type(RDMA_NLDEV_CMD_SYS_GET), b"", op="get RDMA netns mode",
                               reply_type=nl_type(RDMA_NLDEV_CMD_SYS_GET))
        if not replies:
            raise NetlinkDecodeError("no reply to the RDMA system query")
        return decode_netns_mode(replies[0])
