"""Run code inside a network namespace given by path, without ever moving the main thread.

setns() switches only the calling thread, so each call gets a fresh short-lived thread: the
namespace can never leak into the main thread or into a later call. Opening a path never
creates a namespace (unlike pyroute2's IPRoute(netns=...)).
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Callable, TypeVar

from . import errnos
from .errors import IO_FAILURE, CniError

if TYPE_CHECKING:
    T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), Linux >= 4.11: the CLONE_NEW* type of an nsfs fd
OWN_NETNS_MSG = "plugin's netns and netns from CNI_NETNS should not be the same"  # Go pkg/skel, code 8
INVALID_NETNS = 8  # Go's types.ErrInvalidNetNS


class NetnsNotFound(CniError):
    """The netns path does not exist (DEL treats this as "already gone")."""

    def __init__(self, path: str):
        super().__init__(IO_FAILURE, f"failed to open netns {path!r}", "no such network namespace")
        self.path = path


def _setns(fd: int) -> None:
    if hasattr(posix, "setns"):
        posix.setns(fd, CLONE_NEWNET)
        return
    # Python 3.11 has no os.setns: our C module (cni_rdma/_native.c, built into the bundle's executable and in
    # place by `make dev`); ctypes, ~1.7 ms of the call, only where it was never built (a plain wheel install).
    try:
        from ._native import setns
    except ImportError:
        pass
    else:
        setns(fd, CLONE_NEWNET)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, posix.strerror(err))


def _ns_type(fd: int) -> int:
    try:
        from ._native import ns_type  # cni_rdma/_native.c: fcntl (for its ioctl) is a dlopen of every call
    except ImportError:  # never built (a plain wheel install)
        import fcntl

        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    return ns_type(fd)


def open_netns(path: str) -> int:
    """Open a netns path read-only and make sure it is one (nsfs, CLONE_NEWNET): NetnsNotFound when missing,
    code 5 for anything else (a FIFO opens without blocking thanks to O_NONBLOCK, then fails the type check);
    the caller closes the fd. No O_NOFOLLOW: /proc/<pid>/ns/net is a magic link runtimes pass on purpose."""
    if not path:
        raise NetnsNotFound(path)
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK | posix.O_NOCTTY)
    except FileNotFoundError:
        raise NetnsNotFound(path) from None
    except ValueError:  # NUL byte or lone surrogates in CNI_NETNS
        raise CniError(IO_FAILURE, f"failed to open netns {path!r}", "invalid path") from None
    except OSError as e:
        raise CniError(IO_FAILURE, f"failed to open netns {path!r}", e.strerror or str(e)) from None
    try:
        nstype = _ns_type(fd)
    except OSError:
        nstype = 0  # ENOTTY: not an nsfs file
    if nstype != CLONE_NEWNET:
        posix.close(fd)
        raise CniError(IO_FAILURE, f"{path!r} is not a network namespace")
    return fd


def is_plugin_netns(path: str) -> bool:
    """Go's ns.CheckNetNS: does path name the netns this process runs in? False for anything that is not a
    netns at all (the plugin reports that itself)."""
    try:
        fd = open_netns(path)
    except CniError:
        return False
    try:
        st = posix.fstat(fd)
    finally:
        posix.close(fd)
    own = posix.stat("/proc/self/ns/net")
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def netns_alive(path: str) -> bool:
    """Does path still name a network namespace? False for "", a missing path, and the leftover plain file
    of a runtime that unmounted the netns but did not unlink its mount point (or anything else)."""
    try:
        posix.close(open_netns(path))
    except CniError:
        return False
    return True


def in_netns(path: str, fn: Callable[..., T], *args, **kwargs) -> T:
    """Call fn(*args, **kwargs) inside the netns at path; return its value or re-raise its exception."""
    fd = open_netns(path)
    try:
        return in_netns_fd(fd, fn, *args, _path=path, **kwargs)
    finally:
        posix.close(fd)


def in_netns_fd(fd: int, fn: Callable[..., T], *args, _path: str = "", **kwargs) -> T:
    return started_in_netns_fd(fd, fn, *args, _path=_path, **kwargs)()


def started_in_netns_fd(fd: int, fn: Callable[..., T], *args, _path: str = "", **kwargs) -> Callable[[], T]:
    """fn(*args, **kwargs) started in its thread inside the netns of fd; the caller goes on in its own netns. The
    returned join() waits for fn and returns its value or re-raises its exception (call it exactly once; fd must
    stay open until it returns)."""
    # A bare _thread thread and a lock for the join: threading (~3.5 ms of start-up) adds nothing needed here.
    import _thread

    box: dict[str, object] = {}
    done = _thread.allocate_lock()
    done.acquire()

    def runner() -> None:
        try:
            try:
                _setns(fd)
            except OSError as e:
                what = _path or f"fd {fd}"
                if e.errno == errnos.EINVAL:
                    raise CniError(IO_FAILURE, f"{what} is not a network namespace") from None
                raise CniError(IO_FAILURE, f"setns into {what} failed", e.strerror or str(e)) from None
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e
        finally:
            done.release()

    _thread.start_new_thread(runner, ())

    def join() -> T:
        done.acquire()  # the thread has finished fn: its netns dies with it, the caller's thread never moved
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["value"]  # type: ignore[return-value]

    return join


def current_netns_path() -> str:
    """The path of the caller thread's own netns (used to move things back to the host)."""
    import _thread

    return f"/proc/{posix.getpid()}/task/{_thread.get_native_id()}/ns/net"
