"""The C helpers of cni_rdma/_native.c, or their stdlib equivalents where it was never built.

flock(2) for every lock of ours (state records, host-local's store, sriov-cni's VF lock) and zlib's CRC-32 for
the names of state files (host-local's bucket files, cluster-ipam's first block): fcntl and zlib are extension
modules, a dlopen each on every call (~0.2 and ~0.45 ms). The netlink socket (cni_rdma.netlink.core) and
inet_pton (cni_rdma.ipaddr): _socket costs ~0.7 ms at import (a dlopen, ~500 constants, three types).
cni_rdma._native is built into the bundle's executable (and in place by `make dev`). A module of its own so
that host-local's store takes them without importing cni_rdma.state (17 kB of code it does not run).
"""
try:
    from ._native import crc32 as crc32  # "as": re-exported
    from ._native import flock as flock
    from ._native import inet_pton as inet_pton
    from ._native import nl_recv as nl_recv
    from ._native import nl_send as nl_send
    from ._native import nl_socket as nl_socket
except ImportError:  # a plain wheel install, where _native was never built
    from fcntl import flock as flock
    from zlib import crc32 as crc32

    def inet_pton(af: int, text: str, /) -> bytes | None:
        """The packed address, or None when text is not one of family af (_native.inet_pton's contract)."""
        import _socket

        try:
            return _socket.inet_pton(af, text)
        except OSError:
            return None

    def nl_socket(protocol: int, timeout_us: int, /) -> int:
        """A bound netlink socket's fd with the options _native.nl_socket sets."""
        import _socket

        s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)
        try:
            for opt in (11, 10, 12):  # NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK
                try:
                    s.setsockopt(270, opt, 1)  # SOL_NETLINK
                except OSError:
                    pass
            s.bind((0, 0))
            if timeout_us:  # a struct timeval: two native longs
                import struct

                s.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVTIMEO,
                             struct.pack("@ll", timeout_us // 1_000_000, timeout_us % 1_000_000))
        except BaseException:
            s.close()
            raise
        return s.detach()

    def nl_send(fd: int, data: bytes, /) -> int:
        import posix

        return posix.write(fd, data)  # an unconnected netlink socket writes to the kernel

    def nl_recv(fd: int, /) -> bytes:
        import _socket

        s = _socket.socket(fileno=fd)
        try:
            n = s.recv_into(bytearray(16), 0, _socket.MSG_PEEK | _socket.MSG_TRUNC)
            return s.recv(n) if n else b""
        finally:
            s.detach()
LOCK_EX, LOCK_NB = 2, 4  # <sys/file.h>: fcntl.LOCK_EX, fcntl.LOCK_NB without importing fcntl
