"""The one way to open a file whose path comes from config, env or state (DEVELOPERS.md "Threat model").

    data = safefile.read(path, safefile.RESOLV_CONF_MAX)      # bytes, or OSError
    fd = safefile.open_regular(name, posix.O_RDWR | posix.O_CREAT, dir_fd=d, mode=0o600)

Every open adds O_NOFOLLOW (a symlink is ELOOP, never followed), O_NONBLOCK (a FIFO or a device opens
without waiting for a peer), O_CLOEXEC and O_NOCTTY, then fstat()s the descriptor: anything but a regular file
is refused before a byte is read, so a FIFO can never hang a call and /dev/zero can never fill memory. Reads
stop at a named limit. Every refusal is an OSError (the caller already handles those) whose strerror says
why; a path with a NUL byte or lone surrogates is an OSError too, never a ValueError traceback. Plain OSErrors,
no subclass of ours: every caller catches OSError and words it by its strerror (`describe`), and each class
would be created on every call that imports this module (~0.1M instructions each, issue 13).
"""
from __future__ import annotations

import _stat  # the C half of stat (os and stat cost ~2 ms: cni_rdma/paths.py)
import posix

from . import errnos

RESOLV_CONF_MAX = 64 << 10      # a resolv.conf is a few hundred bytes; glibc reads far less than this
STATE_RECORD_MAX = 1 << 20      # one plugin state record (a few hundred bytes of JSON)
_FLAGS = posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC | posix.O_NOCTTY
_KINDS = ((_stat.S_ISFIFO, "a FIFO"), (_stat.S_ISCHR, "a character device"), (_stat.S_ISBLK, "a block device"),
          (_stat.S_ISDIR, "a directory"), (_stat.S_ISSOCK, "a socket"))


def kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | bytes, flags: int = posix.O_RDONLY, *, dir_fd: int | None = None,
                 mode: int = 0o600, follow: bool = False) -> int:
    """posix.open with the module's flags added, then a regular-file check; the caller closes the fd.
    follow=True drops O_NOFOLLOW, only for a read-only file that is commonly a symlink (resolv.conf)."""
    try:
        fd = posix.open(path, (flags | _FLAGS) & ~posix.O_NOFOLLOW if follow else flags | _FLAGS, mode, dir_fd=dir_fd)
    except ValueError:  # embedded NUL, or a str with lone surrogates
        raise OSError(errnos.EINVAL, "path contains a NUL byte or is not valid UTF-8") from None
    except OSError as e:
        if e.errno == errnos.ELOOP:
            raise OSError(errnos.ELOOP, "is a symlink; refusing to follow it", path) from None
        raise
    try:
        st = posix.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            # a FIFO, device, directory or socket: refused before any read
            raise OSError(errnos.EINVAL, f"is {kind(st.st_mode)}, not a regular file", path)
    except BaseException:
        posix.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int) -> bytes:
    """At most limit bytes of an open regular file; an OSError (EFBIG) if there are more."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = posix.read(fd, min(limit + 1 - size, 1 << 16))  # 64 KiB: a 1 MiB read buffer is an mmap each
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise OSError(errnos.EFBIG, f"is larger than {limit} bytes")


def read(path: str | bytes, limit: int, *, dir_fd: int | None = None, follow: bool = False) -> bytes:
    """A regular file's bytes (open_regular, then read_fd)."""
    fd = open_regular(path, dir_fd=dir_fd, follow=follow)
    try:
        return read_fd(fd, limit)
    finally:
        posix.close(fd)


def describe(e: OSError) -> str:
    """One line saying why, for a CNI error message."""
    return e.strerror or str(e)
