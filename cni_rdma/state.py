"""Plugin state under /var/lib/cni/<plugin>/: flock'd, atomically written, never following symlinks.

A record is JSON in one file; a process killed mid-write leaves either the old or the new file
(tmp + fsync + rename), and a stray temp file is ignored by readers and swept by the next writer.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Iterator, Optional

from .errors import CniError, INVALID_CONFIG, IO_FAILURE

DEFAULT_ROOT = "/var/lib/cni"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.:\-]*$")
TMP_SUFFIX = ".tmp"


def check_name(name: str) -> str:
    """Only names built from validated IDs reach the filesystem: no separators, no '..', bounded."""
    if not _NAME_RE.match(name) or ".." in name or len(name) > 250:
        raise CniError(INVALID_CONFIG, f"invalid state record name {name!r}")
    return name


class Store:
    def __init__(self, plugin: str, root: Optional[str] = None):
        self.dir = os.path.join(root or DEFAULT_ROOT, check_name(plugin))

    def _ensure_dir(self) -> None:
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        except OSError as e:
            raise CniError(IO_FAILURE, f"cannot create state directory {self.dir}", e.strerror or str(e)) from None
        if os.path.islink(self.dir):
            raise CniError(IO_FAILURE, f"state directory {self.dir} is a symlink; refusing to follow it")

    @contextlib.contextmanager
    def lock(self, name: str = "lock") -> Iterator[None]:
        """Exclusive flock on <dir>/<name>.lock for the duration of the block."""
        self._ensure_dir()
        path = os.path.join(self.dir, check_name(name) + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, check_name(name))

    def read(self, name: str) -> Optional[dict]:
        try:
            fd = os.open(self.path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CniError(IO_FAILURE, f"cannot read state {name!r}", e.strerror or str(e)) from None
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        try:
            value = json.loads(data)
        except ValueError:
            raise CniError(IO_FAILURE, f"state record {name!r} is corrupt") from None
        return value if isinstance(value, dict) else None

    def write(self, name: str, record: dict) -> None:
        self._ensure_dir()
        final = self.path(name)
        tmp = f"{final}.{os.getpid()}{TMP_SUFFIX}"
        data = json.dumps(record, sort_keys=True).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise CniError(IO_FAILURE, f"cannot write state {name!r}", e.strerror or str(e)) from None

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(name))

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if not e.endswith((".lock", TMP_SUFFIX)))
