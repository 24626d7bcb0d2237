"""Plugin state under <root>/<plugin>/: flock'd, atomically written, never following symlinks.

The root is /var/lib/cni unless CNI_RDMA_STATE_ROOT names another directory (tests give every test its
own; an operator may move all of our state at once). It moves every plugin's records together: ipvlan,
sriov (and the sriov-cni files it shares), rdma without a dataDir, host-local without ipam.dataDir.

A record is JSON in one file; a process killed mid-write leaves either the old or the new file
(tmp + fsync + rename), and a stray temp file is ignored by readers and swept by the next writer.
"""
from __future__ import annotations

import posix
import time

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Callable, Optional

from . import jsonc, paths, safefile
from .errors import INVALID_CONFIG, IO_FAILURE, CniError
from .native import LOCK_EX, flock
from .paths import DEFAULT_STATE_ROOT as DEFAULT_ROOT  # noqa: F401 (re-exported)
from .paths import STATE_ROOT_ENV as ROOT_ENV  # noqa: F401 (re-exported)
from .paths import state_root

# A record name is [a-zA-Z0-9][a-zA-Z0-9_.:\-]* (fullmatch: "$" would accept a trailing newline), as sets: re
# costs ~5 ms to import.
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.:-")
TMP_SUFFIX = ".tmp"
_HEX = frozenset("0123456789abcdef")
TMP_MAX_AGE = 600  # seconds: a state write takes milliseconds; an older temp file outlived its writer


class UnreadableRecord(CniError):
    """A record that is not a regular file, too large or not JSON: DEL drops it (warning) rather than fail
    forever; ADD and CHECK report it (code 5)."""


def _tmp_owner(entry: str) -> Optional[int]:
    """The writer PID in "<name>.<pid>.<8 hex>.tmp" (or the older "<name>.<pid>.tmp"); None if neither."""
    parts = entry[: -len(TMP_SUFFIX)].split(".")
    if len(parts) >= 3 and len(parts[-1]) == 8 and set(parts[-1]) <= _HEX and parts[-2].isdigit():
        return int(parts[-2])
    if len(parts) >= 2 and parts[-1].isdigit():
        return int(parts[-1])
    return None


def _alive(pid: int) -> bool:
    if pid == posix.getpid():
        return True
    try:
        posix.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists
    return True


def check_name(name: str) -> str:
    """Only names built from validated IDs reach the filesystem: no separators, no '..', bounded."""
    if (not isinstance(name, str) or not name or name[0] not in _NAME_FIRST or not _NAME_REST.issuperset(name)
            or ".." in name or len(name) > 250):
        raise CniError(INVALID_CONFIG, f"invalid state record name {name!r}")
    return name


class Held:
    """A `with` block holding a lock: `take()` returns the locked fd on entry; closing it on exit releases the
    flock. (A class rather than contextlib.contextmanager: contextlib pulls in collections and functools,
    ~5 ms of every plugin call.)"""

    def __init__(self, take: Callable[[], int]) -> None:
        self._take = take
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = self._take()

    def __exit__(self, *exc: object) -> None:
        posix.close(self._fd)


class Store:
    def __init__(self, plugin: str, root: Optional[str] = None):
        self.dir = paths.join(root or state_root(), check_name(plugin))

    def _ensure_dir(self) -> None:
        try:
            paths.makedirs(self.dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise CniError(IO_FAILURE, f"cannot create state directory {self.dir}", e.strerror or str(e)) from None
        if paths.islink(self.dir):
            raise CniError(IO_FAILURE, f"state directory {self.dir} is a symlink; refusing to follow it")

    def lock(self, name: str = "lock") -> Held:
        """Exclusive flock on <dir>/<name>.lock for the duration of the `with` block."""
        return Held(lambda: self._take_lock(name))

    def _take_lock(self, name: str) -> int:
        self._ensure_dir()
        path = paths.join(self.dir, check_name(name) + ".lock")
        try:  # never a symlink, and a planted FIFO must not block (safefile)
            fd = safefile.open_regular(path, posix.O_RDWR | posix.O_CREAT)
        except OSError as e:
            raise CniError(IO_FAILURE, f"cannot open state lock {path}", safefile.describe(e)) from None
        try:
            flock(fd, LOCK_EX)
        except BaseException:
            posix.close(fd)
            raise
        return fd

    def path(self, name: str) -> str:
        return paths.join(self.dir, check_name(name))

    def read(self, name: str) -> Optional[dict]:
        try:  # a FIFO or device planted as a record must not hang or flood a DEL
            data = safefile.read(self.path(name), safefile.STATE_RECORD_MAX)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise UnreadableRecord(IO_FAILURE, f"cannot read state {name!r}", safefile.describe(e)) from None
        try:
            value = jsonc.loads(data)
        except (ValueError, RecursionError):
            raise UnreadableRecord(IO_FAILURE, f"state record {name!r} is corrupt") from None
        return value if isinstance(value, dict) else None

    def write(self, name: str, record: dict) -> None:
        self.write_bytes(name, jsonc.dumps(record, sort_keys=True).encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically replace <dir>/<name> with data (another program's format: sriov-cni's files)."""
        self._ensure_dir()
        final = self.path(name)
        self.sweep_tmp()
        fd, tmp = self._create_tmp(final, name)
        try:
            try:
                posix.write(fd, data)
                posix.fsync(fd)
            finally:
                posix.close(fd)
            posix.rename(tmp, final)
            dfd = posix.open(self.dir, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
            try:
                posix.fsync(dfd)
            finally:
                posix.close(dfd)
        except OSError as e:
            try:
                posix.unlink(tmp)
            except OSError:
                pass
            raise CniError(IO_FAILURE, f"cannot write state {name!r}", e.strerror or str(e)) from None

    @staticmethod
    def _create_tmp(final: str, name: str) -> tuple[int, str]:
        """A fresh temp file "<final>.<pid>.<random>.tmp" (O_EXCL): a planted or PID-reused name is skipped."""
        err: OSError = FileExistsError()
        for _ in range(8):
            tmp = f"{final}.{posix.getpid()}.{posix.urandom(4).hex()}{TMP_SUFFIX}"
            try:
                flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
                return posix.open(tmp, flags, 0o600), tmp
            except FileExistsError as e:
                err = e
            except OSError as e:
                err = e
                break
        raise CniError(IO_FAILURE, f"cannot write state {name!r}", err.strerror or "no free temp file name")

    def sweep_tmp(self) -> int:
        """Remove temp files of writers that are gone (their PID is not running) or older than TMP_MAX_AGE
        (the PID was reused); a live writer's file stays. Returns how many were removed."""
        try:
            entries = posix.listdir(self.dir)
        except OSError:
            return 0
        removed = 0
        now = time.time()
        for entry in entries:
            if not entry.endswith(TMP_SUFFIX):
                continue
            pid = _tmp_owner(entry)
            try:
                old = now - posix.lstat(paths.join(self.dir, entry)).st_mtime > TMP_MAX_AGE
            except OSError:
                continue
            if pid is not None and (old or not _alive(pid)):  # None: not a name we write; leave it
                try:
                    posix.unlink(paths.join(self.dir, entry))
                    removed += 1
                except OSError:
                    pass
        return removed

    def delete(self, name: str) -> None:
        """Remove a record, whatever a broken node left under its name (an empty directory too); code 5 if
        it cannot be removed."""
        path = self.path(name)
        try:
            posix.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            try:
                posix.rmdir(path)
            except OSError as e:
                raise CniError(IO_FAILURE, f"cannot remove state {name!r}", e.strerror or str(e)) from None
        except OSError as e:
            raise CniError(IO_FAILURE, f"cannot remove state {name!r}", e.strerror or str(e)) from None

    def names(self) -> list[str]:
        try:
            entries = posix.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if not e.endswith((".lock", TMP_SUFFIX)))
