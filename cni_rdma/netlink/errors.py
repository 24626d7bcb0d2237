"""The netlink layer's own exceptions: what the kernel refused, what was not there, what was garbled.

They are not CNI errors: the layer knows nothing of CNI codes. The plugin edge (`cni_rdma.skel.call`)
maps whatever escapes a plugin to one CNI error (code 5, "netlink: <op> <dev> failed", the reason as
details); code that means "not found" catches `NotFound`, never the root, so an EPERM or a timeout is
never mistaken for an absent device.
"""
from __future__ import annotations

import posix

from .. import errnos


class NetlinkError(Exception):
    """The kernel refused a request (or never answered): `errno`, `op`, `dev`, `ext_ack`.

    `msg` is the headline ("netlink: set link 'eth0' failed"), `details` the reason
    ("Operation not permitted (EPERM): <extended ack>"): the two fields of a CNI error.
    """

    def __init__(self, err: int, op: str, dev: str | None = None, ext_ack: str = ""):
        self.errno = err
        self.op = op
        self.dev = dev
        self.ext_ack = ext_ack
        what = f"{op} {dev!r}" if dev is not None else op
        self.msg = f"netlink: {what} failed"
        self._details: str | None = None
        super().__init__(self.msg)

    @property
    def details(self) -> str:
        # Worded when read, not when raised: the errno's name comes from the errno module (~0.2 ms to import),
        # and most of these are caught and handled (a link not there yet, a busy VF) without a word printed.
        if self._details is None:
            self._details = f"{posix.strerror(self.errno)} ({errnos.errorcode(self.errno)})"
            if self.ext_ack:
                self._details += f": {self.ext_ack}"
        return self._details

    @details.setter
    def details(self, text: str) -> None:
        self._details = text

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}"


class NotFound(NetlinkError):
    """The object the request names does not exist (a device, an RDMA device)."""


class LinkNotFound(NotFound):
    """No such network device (ENODEV)."""

    def __init__(self, op: str, dev: str | None, ext_ack: str = ""):
        super().__init__(errnos.ENODEV, op, dev, ext_ack)


class NetlinkDecodeError(NetlinkError):
    """A reply that cannot be decoded (truncated, bad length...): errno EBADMSG."""

    def __init__(self, what: str):
        super().__init__(errnos.EBADMSG, "decode netlink message")
        self.msg = "netlink: malformed message"
        self.details = what


def error_for(err: int, op: str, dev: str | None, ext_ack: str = "") -> NetlinkError:
    """The exception for a kernel errno: ENODEV is LinkNotFound, anything else the root."""
    if err == errnos.ENODEV:
        return LinkNotFound(op, dev, ext_ack)
    return NetlinkError(err, op, dev, ext_ack)
