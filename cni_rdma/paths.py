"""The few parts of `os` the plugin path needs that its C half, `posix`, does not have: path strings, makedirs,
the environment as str.

Why not `os`: importing it costs ~2 ms of every plugin call (os's body, plus _collections_abc for os.environ's
MutableMapping, posixpath, genericpath, stat), and every call it makes is a `posix` function: `os.open is
posix.open`. So the hot path calls `posix.open(...)` etc. directly and takes these helpers from here. Each one
behaves as its os / os.path namesake for the str paths we pass (tests/unit/test_paths.py compares them).
"""
import posix
import sys
from _stat import S_ISDIR, S_ISLNK, S_ISREG  # the C half of stat

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Mapping

SEP = "/"  # os.sep
PATHSEP = ":"  # os.pathsep: between CNI_PATH entries


def join(a: str, *rest: str) -> str:
    """os.path.join: an absolute part starts over, a separator is added only where missing."""
    path = a
    for b in rest:
        if b.startswith("/"):
            path = b
        elif not path or path.endswith("/"):
            path += b
        else:
            path += "/" + b
    return path


def split(path: str) -> "tuple[str, str]":
    """os.path.split: (head, tail), the head without its trailing slashes unless it is all slashes."""
    i = path.rfind("/") + 1
    head, tail = path[:i], path[i:]
    if head and head != "/" * len(head):
        head = head.rstrip("/")
    return head, tail


def basename(path: str) -> str:
    return path[path.rfind("/") + 1:]


def dirname(path: str) -> str:
    return split(path)[0]


def isabs(path: str) -> bool:
    return path.startswith("/")


def _mode(path: str, follow: bool = True) -> int:
    """st_mode of path, -1 when it cannot be stat'ed (as os.path's predicates: OSError or ValueError is False)."""
    try:
        return (posix.stat(path) if follow else posix.lstat(path)).st_mode
    except (OSError, ValueError):
        return -1


def exists(path: str) -> bool:
    return _mode(path) != -1


def isfile(path: str) -> bool:
    mode = _mode(path)
    return mode != -1 and S_ISREG(mode)


def isdir(path: str) -> bool:
    mode = _mode(path)
    return mode != -1 and S_ISDIR(mode)


def islink(path: str) -> bool:
    mode = _mode(path, follow=False)
    return mode != -1 and S_ISLNK(mode)


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """os.makedirs: missing parents first (with the default mode, as os makes them), then name with mode."""
    head, tail = split(name)
    if not tail:
        head, tail = split(head)
    if head and tail and not exists(head):
        try:
            makedirs(head, exist_ok=exist_ok)
        except FileExistsError:  # made meanwhile by another process
            pass
        if tail == ".":
            return
    try:
        posix.mkdir(name, mode)
    except OSError:
        if not exist_ok or not isdir(name):
            raise


def resolved(path: str) -> str:
    """The path the kernel resolves path to, every symlink followed: os.path.realpath of a path that exists,
    read back from /proc/self/fd of an O_PATH descriptor (no read access needed, nothing opened for I/O).
    "" when it cannot be resolved (missing, a dangling link, no /proc)."""
    try:
        fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except (OSError, ValueError):
        return ""
    try:
        return posix.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
    finally:
        posix.close(fd)


_environ: "dict[str, str] | None" = None


def environ() -> "Mapping[str, str]":
    """The environment as os.environ holds it. posix.environ is the environment the process started with, as
    bytes; os.environ is built from it, decoded with the filesystem encoding and surrogateescape (UTF-8 in the
    bundle), and is the one that changes when the process sets a variable (os.environ[...] = ..., a test's
    monkeypatch.setenv). So: once something has imported os, os.environ is the answer; until then nothing
    can have changed the environment, and the decoded posix.environ is what os.environ would hold."""
    os = sys.modules.get("os")
    if os is not None:
        return os.environ
    global _environ
    if _environ is None:
        from .early import environ as decoded  # the one decoder (cni_rdma/early.py: loaded on every plugin call)

        _environ = decoded()
    return _environ


def getenv(name: str, default: str = "") -> str:
    """os.environ.get(name, default)."""
    return environ().get(name, default)


DEFAULT_STATE_ROOT = "/var/lib/cni"
STATE_ROOT_ENV = "CNI_RDMA_STATE_ROOT"


def state_root() -> str:
    """Where every plugin keeps its state: $CNI_RDMA_STATE_ROOT (absolute) or /var/lib/cni (cni_rdma.state's
    stores; host-local's default dataDir, which thus needs no import of cni_rdma.state)."""
    root = getenv(STATE_ROOT_ENV, "")
    return root if isabs(root) else DEFAULT_STATE_ROOT
