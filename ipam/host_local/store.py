"""The reservation store: byte-compatible with Go's host-local disk backend, plus an owner index.

Go's layout, which both binaries read and write (a node can switch binaries at any time):
    <dataDir>/<network>/<ip>                  "<containerID>\\r\\n<ifname>", mode 0644 (legacy: "<containerID>")
    <dataDir>/<network>/last_reserved_ip.<N>  the last address reserved from range set N (round-robin cursor)
    <dataDir>/<network>/lock                  flock(LOCK_EX) held for every change (go-filemutex, mode 0750)

Go finds a container's addresses by reading every file of the network (twice per ADD/DEL at worst); at
a /16 that is ~60k reads per call. Ours keeps an index beside the network directory, never inside it:
    <dataDir>/.cni-rdma/<network>/b.<xx>   owners hashed (crc32 & 0xff) into at most 256 buckets, a line
                                           each: "<containerID>\t<ifname>\t<ip> <ip>" (fields %-escaped)
    <dataDir>/.cni-rdma/<network>/token    "<boot_id> <inode> <mtime_ns>"
    <dataDir>/.cni-rdma/<network>/tmp.<pid> staging for atomic writes
A call reads and rewrites one bucket (~1/256 of the owners); a rebuild writes at most 256 files.
The index is trusted only while the network directory's mtime equals the token's value. After each change
we set that mtime to a synthetic value (the real one minus 1 ns) and record it; any later create or unlink,
by Go or by hand, stamps the directory with the current time and so invalidates the index, which is then
rebuilt from the reservation files under the lock. The token is removed before our first change and
rewritten after the last, so a process killed in between leaves an index that is rebuilt, never trusted.

Reservation files are written complete and then hard-linked into place (link() fails if the name exists,
the same exclusive-create Go relies on), so a kill leaves either no file or a whole one. Nothing in the
network directory is followed if it is a symlink: every access is relative to a directory fd, O_NOFOLLOW.
"""
from __future__ import annotations

import posix

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Optional

from cni_rdma import errnos, faults, paths, safefile
from cni_rdma.errors import IO_FAILURE, CniError
from cni_rdma.ipaddr import AF_INET, ip_address
from cni_rdma.native import LOCK_EX, crc32, flock, inet_pton

LOCK_NAME = "lock"
LAST_PREFIX = "last_reserved_ip."
SIDECAR = ".cni-rdma"
TOKEN = "token"
_O_DIR = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:@+")
_BOOT_ID: Optional[str] = None


def _boot_id() -> str:
    global _BOOT_ID
    if _BOOT_ID is None:
        try:  # posix, not open(): a buffered file object costs five syscalls more
            fd = posix.open("/proc/sys/kernel/random/boot_id", posix.O_RDONLY | posix.O_CLOEXEC)
            try:
                _BOOT_ID = posix.read(fd, 64).decode().strip() or "-"
            finally:
                posix.close(fd)
        except OSError:
            _BOOT_ID = "-"
    return _BOOT_ID


def _io_error(what: str, e: OSError) -> CniError:
    return CniError(IO_FAILURE, what, e.strerror or str(e))


def _escape(s: str) -> str:
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in s)


def bucket_of(cid: str, ifname: str) -> tuple[str, str]:
    """(bucket file name, the owner's escaped key as it starts its line)."""
    key = f"{_escape(cid)}\t{_escape(ifname)}\t"
    return f"b.{crc32(key.encode()) & 0xFF:02x}", key


def parse_owner(data: bytes) -> tuple[str, str]:
    """A reservation file's (containerID, ifname); ifname is "" for the pre-0.7 one-line format."""
    text = data.decode(errors="replace").strip()
    cid, _, ifname = text.partition("\r\n")
    return cid, ifname


def ip_key(name: str) -> Optional[tuple[int, int]]:
    """(version, value) if a directory entry names a reservation (Go's net.IP.String form), else None."""
    if not name or not (name[0].isdigit() or name[0] in "abcdefABCDEF:"):
        return None
    try:
        packed = inet_pton(AF_INET, name)  # C-level parsing: a rebuild parses every name of the network
    except ValueError:  # a NUL or a lone surrogate
        return None
    if packed is not None:
        return (4, int.from_bytes(packed, "big")) if "%d.%d.%d.%d" % tuple(packed) == name else None
    try:
        a = ip_address(name)
    except ValueError:
        return None
    return (6, a.value) if a.version == 6 else None


class ReservationStore:
    """Use as a context manager: opens (creating) the directories, takes the lock, validates the index."""

    def __init__(self, data_dir: str, network: str, log=None):
        self.data_dir = data_dir
        self.network = network
        self.path = paths.join(data_dir, network)
        self.log = log
        self._fds: list[int] = []
        self._dirty = False
        self._broken = False
        self._buckets: dict[str, list[str]] = {}  # index buckets read or written by this call (under the lock)
        self._tmp_gone = False  # our staging file is known not to exist (renamed or unlinked by this call)

    # ---- opening and locking -------------------------------------------------------------------
    def _open_dir(self, parent: int, name: str, mode: int) -> int:
        try:  # it exists on every call but a network's first: open it right away
            fd = posix.open(name, _O_DIR, dir_fd=parent)
        except OSError:
            return self._make_dir(parent, name, mode)  # create it, or fail as the first attempt would have
        self._fds.append(fd)
        return fd

    def _make_dir(self, parent: int, name: str, mode: int) -> int:
        try:
            posix.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError as e:
            raise _io_error(f"cannot create directory {name!r} under {self.data_dir}", e) from None
        try:
            fd = posix.open(name, _O_DIR, dir_fd=parent)
        except OSError as e:
            if e.errno in (errnos.ELOOP, errnos.ENOTDIR):
                raise CniError(IO_FAILURE, f"{paths.join(self.data_dir, name)} is a symlink or not a directory; "
                               "refusing to follow it") from None
            raise _io_error(f"cannot open directory {name!r} under {self.data_dir}", e) from None
        self._fds.append(fd)
        return fd

    def open(self, lock: bool = True) -> "ReservationStore":
        flags = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC
        try:
            data_fd = posix.open(self.data_dir, flags)  # exists on every call but the first
        except OSError:
            try:
                paths.makedirs(self.data_dir, 0o755, exist_ok=True)
                data_fd = posix.open(self.data_dir, flags)
            except OSError as e:
                self.close()
                raise _io_error(f"cannot open dataDir {self.data_dir}", e) from None
        self._fds.append(data_fd)
        try:
            self.net = self._open_dir(data_fd, self.network, 0o755)
            self.side = self._open_dir(self._open_dir(data_fd, SIDECAR, 0o700), self.network, 0o700)
            if lock:
                self._lock()
                if not self._index_valid():
                    self.rebuild()
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self) -> None:
        try:  # Go's go-filemutex: O_RDONLY|O_CREAT, 0750; never a symlink, FIFO (would block) or device
            fd = safefile.open_regular(LOCK_NAME, posix.O_RDONLY | posix.O_CREAT, dir_fd=self.net, mode=0o750)
        except OSError as e:
            raise _io_error(f"cannot open lock file {paths.join(self.path, LOCK_NAME)}", e) from None
        self._fds.append(fd)
        flock(fd, LOCK_EX)
        faults.point("locked")

    def close(self) -> None:
        for fd in reversed(self._fds):
            try:
                posix.close(fd)
            except OSError:
                pass
        self._fds = []

    def __enter__(self) -> "ReservationStore":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            # A CniError raised after a clean rollback leaves the store consistent; anything else
            # (or an I/O failure mid-change) leaves the token removed, so the next call rebuilds.
            if self._dirty and not self._broken and (exc_type is None or issubclass(exc_type, CniError)):
                self._commit()
        finally:
            self.close()

    # ---- the index token -----------------------------------------------------------------------
    def _index_valid(self) -> bool:
        data = self._read(self.side, TOKEN)
        if data is None:
            return False
        st = posix.fstat(self.net)
        return data.decode(errors="replace") == f"{_boot_id()} {st.st_ino} {st.st_mtime_ns}"

    def _touch(self) -> None:
        """Called before every change: drop the token so a crash from here on forces a rebuild."""
        if not self._dirty:
            self._dirty = True
            try:
                posix.unlink(TOKEN, dir_fd=self.side)
            except FileNotFoundError:
                pass
            except OSError as e:
                self._broken = True
                raise _io_error("cannot invalidate the index token", e) from None

    def _commit(self) -> None:
        st = posix.fstat(self.net)
        stamp = st.st_mtime_ns - 1
        self._write_side(TOKEN, f"{_boot_id()} {st.st_ino} {stamp}".encode(), replaces=False)  # _touch removed it
        try:
            posix.utime(self.net, ns=(st.st_atime_ns, stamp))
            if posix.fstat(self.net).st_mtime_ns == stamp:
                return
        except OSError:
            pass
        # The filesystem cannot hold this mtime (granularity, permissions): keep the index untrusted.
        try:
            posix.unlink(TOKEN, dir_fd=self.side)
        except OSError:
            pass

    # ---- small file helpers --------------------------------------------------------------------
    @staticmethod
    def _read(dir_fd: int, name: str, limit: int = 1 << 20) -> Optional[bytes]:
        """A regular file's bytes, or None when absent, a symlink, a directory or unreadable."""
        try:
            return safefile.read(name, limit, dir_fd=dir_fd)
        except OSError:
            return None

    def _stage(self, data: bytes) -> str:
        tmp = f"tmp.{posix.getpid()}"
        try:
            if not self._tmp_gone:  # one a killed process with our PID left
                try:
                    posix.unlink(tmp, dir_fd=self.side)
                except FileNotFoundError:
                    pass
            self._tmp_gone = False
            flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
            fd = posix.open(tmp, flags, 0o644, dir_fd=self.side)
            try:
                posix.write(fd, data)
            finally:
                posix.close(fd)
        except OSError as e:
            self._broken = True
            raise _io_error("cannot write a staging file in the index directory", e) from None
        return tmp

    @staticmethod
    def _clear(name: str, dir_fd: int) -> None:
        """Unlink name before a staged file is renamed onto it. ext4 (auto_da_alloc, the default) writes a file
        that is renamed over an existing one back to disk within the rename, ~0.3 ms per call, where a rename
        to a free name costs ~15 us. The moment without the file is never seen: every reader holds the lock,
        a crash there leaves the index without its token (rebuilt) or no last_reserved_ip (the walk starts at
        the range start, as for a new network). Any other failure is left to the rename to report."""
        try:
            posix.unlink(name, dir_fd=dir_fd)
        except OSError:
            pass

    def _write_side(self, name: str, data: bytes, replaces: bool = True) -> None:
        """name := data, atomically; replaces=False: name is known to be absent (nothing to _clear)."""
        tmp = self._stage(data)
        if replaces:
            self._clear(name, self.side)
        try:
            posix.rename(tmp, name, src_dir_fd=self.side, dst_dir_fd=self.side)
            self._tmp_gone = True
        except OSError as e:
            self._broken = True
            raise _io_error(f"cannot write index file {name}", e) from None

    # ---- reservations --------------------------------------------------------------------------
    def reserve(self, ip: str, cid: str, ifname: str) -> bool:
        """Exclusive create of <ip> holding "<cid>\\r\\n<ifname>"; False if the address is taken."""
        self._touch()
        data = f"{cid.strip()}\r\n{ifname}".encode()
        tmp = self._stage(data)
        try:
            posix.link(tmp, ip, src_dir_fd=self.side, dst_dir_fd=self.net, follow_symlinks=False)
            faults.point("reserved")
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno != errnos.EXDEV:
                self._broken = True
                raise _io_error(f"cannot reserve {ip} in {self.path}", e) from None
            return self._reserve_in_place(ip, data)
        finally:
            try:
                posix.unlink(tmp, dir_fd=self.side)
                self._tmp_gone = True
            except OSError:
                pass

    def _reserve_in_place(self, ip: str, data: bytes) -> bool:
        # Only when the network directory is its own mount: Go's O_EXCL create, then write.
        try:
            flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC
            fd = posix.open(ip, flags, 0o644, dir_fd=self.net)
        except FileExistsError:
            return False
        except OSError as e:
            self._broken = True
            raise _io_error(f"cannot reserve {ip} in {self.path}", e) from None
        try:
            posix.write(fd, data)
        except OSError as e:
            posix.unlink(ip, dir_fd=self.net)
            raise _io_error(f"cannot reserve {ip} in {self.path}", e) from None
        finally:
            posix.close(fd)
        return True

    def holder(self, ip: str) -> Optional[tuple[str, str]]:
        data = self._read(self.net, ip)
        return None if data is None else parse_owner(data)

    def release(self, ip: str, cid: Optional[str] = None, ifname: str = "") -> bool:
        """Remove <ip>; when cid is given, only if that owner still holds it. A symlink is removed, not followed."""
        if cid is not None and self.holder(ip) != (cid.strip(), ifname):
            return False
        self._touch()
        try:
            posix.unlink(ip, dir_fd=self.net)
            faults.point("released")
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            self._broken = True
            raise _io_error(f"cannot release {ip} in {self.path}", e) from None

    def last_reserved(self, idx: int) -> Optional[tuple[int, int]]:
        data = self._read(self.net, f"{LAST_PREFIX}{idx}", 256)
        return ip_key(data.decode(errors="replace").strip()) if data else None

    def set_last_reserved(self, idx: int, ip: str) -> None:
        self._touch()
        tmp = self._stage(ip.encode())
        self._clear(f"{LAST_PREFIX}{idx}", self.net)
        try:
            posix.rename(tmp, f"{LAST_PREFIX}{idx}", src_dir_fd=self.side, dst_dir_fd=self.net)
            self._tmp_gone = True
            faults.point("last")
        except OSError as e:
            posix.unlink(tmp, dir_fd=self.side)
            self._tmp_gone = True
            if e.errno != errnos.EXDEV:
                self._broken = True
                raise _io_error(f"cannot record the last reserved address in {self.path}", e) from None
            try:  # a planted FIFO must not block the write (safefile: O_NONBLOCK, regular-file check)
                fd = safefile.open_regular(f"{LAST_PREFIX}{idx}", posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC,
                                           dir_fd=self.net, mode=0o644)
            except OSError as e2:
                self._broken = True
                raise _io_error(f"cannot record the last reserved address in {self.path}", e2) from None
            try:
                posix.write(fd, ip.encode())
            finally:
                posix.close(fd)

    # ---- the owner index -----------------------------------------------------------------------
    def _bucket(self, name: str, retry: bool = True) -> list[str]:
        if name in self._buckets:  # ADD and DEL read a bucket, then rewrite it
            return self._buckets[name]
        lines = self._read_bucket(name, retry)
        self._buckets[name] = lines
        return lines

    def _read_bucket(self, name: str, retry: bool = True) -> list[str]:
        try:
            fd = safefile.open_regular(name, dir_fd=self.side)
        except FileNotFoundError:
            return []
        except OSError as e:
            # Not a regular file (a planted symlink): the index cannot be trusted; rebuild it from the truth.
            if not retry:
                self._broken = True
                raise _io_error(f"index file {name} is not a regular file", e) from None
            self.rebuild()
            return self._bucket(name, retry=False)
        try:
            chunks = []
            while chunk := posix.read(fd, 1 << 16):
                chunks.append(chunk)
        finally:
            posix.close(fd)
        return b"".join(chunks).decode(errors="replace").splitlines()

    def owned(self, cid: str, ifname: str) -> list[str]:
        """The addresses the index lists for (cid, ifname); ifname "" looks up legacy one-line files."""
        name, key = bucket_of(cid.strip(), ifname)
        for line in self._bucket(name):
            if line.startswith(key):
                return line[len(key):].split()
        return []

    def set_owned(self, cid: str, ifname: str, ips: list[str]) -> None:
        self._touch()
        name, key = bucket_of(cid.strip(), ifname)
        lines = [line for line in self._bucket(name) if not line.startswith(key)]
        if ips:
            lines.append(key + " ".join(ips))
        if lines:
            self._write_side(name, ("\n".join(lines) + "\n").encode())
            self._buckets[name] = lines
            faults.point("indexed")
            return
        try:
            posix.unlink(name, dir_fd=self.side)
        except FileNotFoundError:
            pass
        self._buckets[name] = []

    # ---- full scans: rebuild, GC, STATUS ------------------------------------------------------
    def names(self) -> list[str]:
        try:
            return posix.listdir(self.net)
        except OSError as e:
            raise _io_error(f"cannot list {self.path}", e) from None

    def scan(self) -> dict[str, Optional[tuple[str, str]]]:
        """Every reservation file: ip -> (cid, ifname), or None when unreadable (a symlink, a directory)."""
        out: dict[str, Optional[tuple[str, str]]] = {}
        for name in self.names():
            if ip_key(name) is not None:
                out[name] = self.holder(name)
        return out

    def rebuild(self, found: Optional[dict[str, Optional[tuple[str, str]]]] = None) -> None:
        """Rewrite the owner index from the reservation files (the truth); sweep staging files."""
        self._touch()
        self._buckets.clear()
        found = self.scan() if found is None else found
        buckets: dict[str, list[str]] = {}
        groups: dict[tuple[str, str], list[str]] = {}
        for ip, owner in found.items():
            if owner is not None and owner[0]:
                groups.setdefault(owner, []).append(ip)
        for (cid, ifname), ips in sorted(groups.items()):
            name, key = bucket_of(cid, ifname)
            buckets.setdefault(name, []).append(key + " ".join(sorted(ips)))
        want = {name: ("\n".join(lines) + "\n").encode() for name, lines in buckets.items()}
        try:
            existing = posix.listdir(self.side)
        except OSError as e:
            self._broken = True
            raise _io_error("cannot list the index directory", e) from None
        for name in existing:
            if name == TOKEN:
                continue
            if name not in want:
                try:
                    posix.unlink(name, dir_fd=self.side)
                except OSError:
                    pass
            elif self._read(self.side, name) == want[name]:
                del want[name]
        for name, data in want.items():
            self._write_side(name, data)
        if self.log is not None:
            self.log.info(f"host-local index for {self.path} rebuilt: {len(found)} reservations")
