"""Netlink socket, message framing, attribute codec and errors (standard library only).

A `NetlinkSocket` is opened in the network namespace of the thread that constructs it and stays
there for its whole life. To work inside another netns, construct the socket *inside* the function
given to `cni_rdma.netns.in_netns` (see `cni_rdma.netlink` for the pattern).

Decoding never trusts lengths from the wire: every malformed or truncated message raises
`NetlinkDecodeError` (a `NetlinkError`, see `errors`), never an IndexError/struct.error, never a hang.
"""
from __future__ import annotations

import _struct  # struct's C half: struct.py would be one module more on every call
import posix

from .. import errnos
from ..native import nl_recv, nl_send, nl_socket  # not _socket: its import costs ~0.7 ms of every call
from .errors import NetlinkDecodeError, NetlinkError, error_for

# --- netlink framing (linux/netlink.h) ---
NETLINK_ROUTE = 0
NETLINK_RDMA = 20
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ECHO = 0x08
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
# flags on an NLMSG_ERROR message
NLM_F_CAPPED = 0x100
NLM_F_ACK_TLVS = 0x200

NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2

NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0x3FFF

NLMSG_HDR = _struct.Struct("=IHHII")  # len, type, flags, seq, pid
NLA_HDR = _struct.Struct("=HH")  # len, type

U8 = _struct.Struct("=B")
U16 = _struct.Struct("=H")
U32 = _struct.Struct("=I")
S32 = _struct.Struct("=i")
U64 = _struct.Struct("=Q")
BE16 = _struct.Struct(">H")

_DUMP_RETRIES = 5


# --- attribute encoding ---
def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (header + payload + padding to 4 bytes)."""
    n = 4 + len(payload)
    if n > 0xFFFF:
        raise NetlinkError(errnos.EMSGSIZE, "encode attribute", f"type {kind}", f"{n} bytes, at most 65535")
    return NLA_HDR.pack(n, kind) + payload + b"\0" * (_pad(n) - n)


def a_u8(kind: int, v: int) -> bytes:
    return attr(kind, U8.pack(v))


def a_u16(kind: int, v: int) -> bytes:
    return attr(kind, U16.pack(v))


def a_be16(kind: int, v: int) -> bytes:
    return attr(kind | NLA_F_NET_BYTEORDER, BE16.pack(v))


def a_u32(kind: int, v: int) -> bytes:
    return attr(kind, U32.pack(v))


def a_s32(kind: int, v: int) -> bytes:
    return attr(kind, S32.pack(v))


def a_u64(kind: int, v: int) -> bytes:
    return attr(kind, U64.pack(v))


def a_str(kind: int, v: str) -> bytes:
    """NUL-terminated string attribute (NLA_NUL_STRING / NLA_STRING both accept it)."""
    return attr(kind, v.encode() + b"\0")


def a_nest(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


# --- attribute decoding ---
def parse_attrs(data: bytes | memoryview, start: int = 0, end: int | None = None) -> list[tuple[int, bytes]]:
    """All attributes in data[start:end] as (type without flag bits, payload bytes), in wire order."""
    buf = bytes(data)
    end = len(buf) if end is None else end
    if end > len(buf) or start > end:
        raise NetlinkDecodeError(f"attribute area {start}..{end} beyond message of {len(buf)} bytes")
    out: list[tuple[int, bytes]] = []
    append, header = out.append, NLA_HDR.unpack_from  # the loop runs ~40 times per link message
    pos = start
    while end - pos >= 4:
        n, kind = header(buf, pos)
        if n < 4 or pos + n > end:
            raise NetlinkDecodeError(f"attribute type {kind & NLA_TYPE_MASK} has length {n} at offset {pos}, "
                                     f"{end - pos} bytes left")
        append((kind & NLA_TYPE_MASK, buf[pos + 4:pos + n]))
        pos += (n + 3) & ~3  # _pad(n)
    # Like the kernel's nla_for_each_attr, 1-3 trailing bytes (short of a header) are ignored.
    return out


def attr_map(data: bytes | memoryview, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    """Like parse_attrs, as a dict (the last occurrence wins)."""
    return dict(parse_attrs(data, start, end))


def _fixed(st: _struct.Struct, b: bytes, what: str):
    if len(b) < st.size:
        raise NetlinkDecodeError(f"{what}: {len(b)} bytes, need {st.size}")
    return st.unpack_from(b)[0]


def d_u8(b: bytes, what: str = "u8") -> int:
    return _fixed(U8, b, what)


def d_u16(b: bytes, what: str = "u16") -> int:
    return _fixed(U16, b, what)


def d_be16(b: bytes, what: str = "be16") -> int:
    return _fixed(BE16, b, what)


def d_u32(b: bytes, what: str = "u32") -> int:
    return _fixed(U32, b, what)


def d_s32(b: bytes, what: str = "s32") -> int:
    return _fixed(S32, b, what)


def d_u64(b: bytes, what: str = "u64") -> int:
    return _fixed(U64, b, what)


def d_str(b: bytes, what: str = "string") -> str:
    i = b.find(b"\0")
    return (b if i < 0 else b[:i]).decode(errors="replace")


def unpack(st: _struct.Struct, b: bytes, what: str, offset: int = 0) -> tuple:
    if len(b) - offset < st.size or offset < 0:
        raise NetlinkDecodeError(f"{what}: {len(b) - offset} bytes, need {st.size}")
    return st.unpack_from(b, offset)


def mac_str(b: bytes) -> str:
    return b.hex(":")  # "aa:bb:cc:dd:ee:ff" (empty bytes: "")


def mac_bytes(mac: str) -> bytes:
    parts = mac.replace("-", ":").split(":")
    try:
        if any(len(p) not in (1, 2) for p in parts):
            raise ValueError
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise NetlinkError(errnos.EINVAL, "encode MAC address", mac) from None


# --- message framing ---
def message(kind: int, flags: int, seq: int, body: bytes, pid: int = 0) -> bytes:
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), kind, flags, seq, pid) + body


def split_messages(data: bytes | memoryview) -> list[tuple[int, int, int, bytes]]:
    """A datagram → [(type, flags, seq, payload)]; raises NetlinkDecodeError on any bad length."""
    buf = bytes(data)
    out = []
    pos = 0
    while pos < len(buf):
        if len(buf) - pos < NLMSG_HDR.size:
            raise NetlinkDecodeError(f"{len(buf) - pos} bytes left, less than a netlink header")
        n, kind, flags, seq, _pid = NLMSG_HDR.unpack_from(buf, pos)
        if n < NLMSG_HDR.size or pos + n > len(buf):
            raise NetlinkDecodeError(f"message length {n} at offset {pos} of a {len(buf)}-byte datagram")
        out.append((kind, flags, seq, buf[pos + NLMSG_HDR.size:pos + n]))
        pos += _pad(n)
    return out


def parse_error(flags: int, payload: bytes) -> tuple[int, str]:
    """An NLMSG_ERROR payload → (positive errno or 0, extended-ack message or '')."""
    if len(payload) < 4:
        raise NetlinkDecodeError(f"NLMSG_ERROR payload of {len(payload)} bytes")
    err = -S32.unpack_from(payload)[0]
    ext = ""
    if flags & NLM_F_ACK_TLVS and len(payload) >= 4 + NLMSG_HDR.size:
        orig_len = U32.unpack_from(payload, 4)[0]
        off = 4 + (NLMSG_HDR.size if flags & NLM_F_CAPPED else _pad(orig_len))
        if off <= len(payload):
            try:
                tlvs = attr_map(payload, off)
            except NetlinkDecodeError:
                tlvs = {}
            if NLMSGERR_ATTR_MSG in tlvs:
                ext = d_str(tlvs[NLMSGERR_ATTR_MSG])
    return err, ext


def parse_done(flags: int, payload: bytes) -> tuple[int, str]:
    """An NLMSG_DONE payload (an int error, then extended-ack TLVs) → (positive errno or 0, text)."""
    if len(payload) < 4:
        return 0, ""
    err = -S32.unpack_from(payload)[0]
    ext = ""
    if err and flags & NLM_F_ACK_TLVS:
        try:
            ext = d_str(attr_map(payload, 4).get(NLMSGERR_ATTR_MSG, b""))
        except NetlinkDecodeError:
            pass
    return err, ext


class NetlinkSocket:
    """A netlink socket bound in the calling thread's netns, with request/ack and dump helpers."""

    protocol = NETLINK_ROUTE

    def __init__(self, timeout: float | None = 30.0):
        # The kernel's receive timeout (SO_RCVTIMEO), not a Python-level one: that would make the socket
        # non-blocking and poll before every send and receive (two syscalls per request more).
        timeout_us = 0 if timeout is None else max(int(timeout * 1_000_000), 1)
        self._fd = nl_socket(self.protocol, timeout_us)  # bound, with extended acks (cni_rdma/_native.c)
        self._seq = 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            posix.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        return self._fd

    def _send(self, kind: int, flags: int, body: bytes, op: str, dev: str | None) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        try:
            nl_send(self._fd, message(kind, flags, self._seq, body))
        except OSError as e:
            raise NetlinkError(e.errno or errnos.EIO, op, dev) from None
        return self._seq

    def _recv(self, op: str, dev: str | None) -> list[tuple[int, int, int, bytes]]:
        # The next datagram whole, at its own length (nl_recv peeks it first): no fixed receive buffer to outgrow
        # (a PF's VF table has no upper bound) and none to allocate per socket.
        try:
            data = nl_recv(self._fd)
        except BlockingIOError:  # SO_RCVTIMEO ran out (EAGAIN)
            raise NetlinkError(errnos.ETIMEDOUT, op, dev, "no reply from the kernel") from None
        except OSError as e:
            raise NetlinkError(e.errno or errnos.EIO, op, dev) from None
        if not data:
            raise NetlinkDecodeError(f"{op}: empty datagram")
        return split_messages(data)

    def request(self, kind: int, body: bytes, flags: int = 0, *, op: str, dev: str | None = None,
                reply_type: int | None = None) -> list[bytes]:
        """Send a request with NLM_F_ACK; return the payloads of replies received before the ack."""
        seq = self._send(kind, NLM_F_REQUEST | NLM_F_ACK | flags, body, op, dev)
        replies: list[bytes] = []
        while True:
            for mkind, mflags, mseq, payload in self._recv(op, dev):
                if mseq != seq:
                    continue  # a stale reply to an earlier, abandoned request
                if mkind == NLMSG_ERROR:
                    err, ext = parse_error(mflags, payload)
                    if err:
                        raise error_for(err, op, dev, ext)
                    return replies
                if mkind == NLMSG_DONE:
                    return replies
                if mkind == NLMSG_NOOP:
                    continue
                if reply_type is None or mkind == reply_type:
                    replies.append(payload)

    def dump(self, kind: int, body: bytes, *, op: str, dev: str | None = None,
             reply_type: int | None = None) -> list[bytes]:
        """Send a dump request; return every multipart payload (retrying an interrupted dump)."""
        for _attempt in range(_DUMP_RETRIES):
            seq = self._send(kind, NLM_F_REQUEST | NLM_F_DUMP, body, op, dev)
            replies: list[bytes] = []
            interrupted = False
            done = False
            while not done:
                for mkind, mflags, mseq, payload in self._recv(op, dev):
                    if mseq != seq:
                        continue
                    if mflags & NLM_F_DUMP_INTR:
                        interrupted = True
                    if mkind == NLMSG_DONE:
                        err, ext = parse_done(mflags, payload)
                        if err:
                            raise error_for(err, op, dev, ext)
                        done = True
                        break
                    if mkind == NLMSG_ERROR:
                        err, ext = parse_error(mflags, payload)
                        if err:
                            raise error_for(err, op, dev, ext)
                        done = True
                        break
                    if mkind == NLMSG_NOOP:
                        continue
                    if reply_type is None or mkind == reply_type:
                        replies.append(payload)
            if not interrupted:
                return replies
        raise NetlinkError(errnos.EINTR, op, dev, "dump kept being interrupted by concurrent changes")
