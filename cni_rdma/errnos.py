"""The errno values the plugins name, as Linux numbers them (<asm-generic/errno-base.h>, <asm-generic/errno.h>).

The errno module builds ~130 constants and their reverse table when imported: ~0.2 ms of every plugin call,
for a dozen numbers that mostly error paths read. tests/unit/test_errnos.py holds each to the errno module's.
"""
ENOENT = 2
EINTR = 4
EIO = 5
EAGAIN = EWOULDBLOCK = 11
EBUSY = 16
EEXIST = 17
EXDEV = 18
ENODEV = 19
ENOTDIR = 20
EINVAL = 22
EFBIG = 27
ELOOP = 40
ETIME = 62
EBADMSG = 74
EMSGSIZE = 90
EPROTONOSUPPORT = 93
EOPNOTSUPP = 95
EADDRNOTAVAIL = 99
ETIMEDOUT = 110


def errorcode(err: int) -> str | int:
    """errno.errorcode.get(err, err): the symbolic name ("EPERM") for an error's text (errors only)."""
    import errno

    return errno.errorcode.get(err, err)
