"""Diagnostics: one escaped line per event, to stderr by default (as sriov-cni) or to the config's `logFile`.

stdout carries only the CNI result; runtimes keep a plugin's stderr (containerd and CRI-O log it), so stderr
is the default sink. `logLevel` (panic|error|warning|info|debug, default info) filters; rdma-cni's
`"args": {"cni": {"debug": true}}` raises it to debug.

`logFile` names a path a NAD author chooses while we run as root, so it is opened defensively (DEVELOPERS.md
"Threat model"); anything refused is code 7 naming `logFile` (on DEL: a warning on stderr, DEL goes on):
- an absolute path without NUL, without `..`, at most PATH_MAX bytes;
- its directory owned by root (or by us) and not world-writable unless sticky (a /tmp-like directory is
  fine: the sticky bit keeps others from swapping our file, and the ownership check below refuses theirs);
- opened O_NOFOLLOW|O_NONBLOCK|O_APPEND|O_CREAT|O_CLOEXEC|O_NOCTTY, mode 0600, relative to that directory;
  then fstat: a regular file with one link, owned by us, not under /proc, /sys or /dev;
- an existing non-empty file must already be a log (its first line starts with an ISO-8601 timestamp, as ours
  and sriov-cni's do): we never append to a shell profile, a crontab or a passwd file.
Every line is escaped: control characters, DEL, C1, line separators, lone surrogates and the shell's active
characters ($ ` ; & | < >) become \\xNN / \\uNNNN, a backslash doubles. A log line is one line, always, and a
shell that sources one runs nothing.
"""
from __future__ import annotations

import _stat  # the C half of stat (os and stat cost ~2 ms: cni_rdma/paths.py)
import posix
import sys

LEVELS = {"panic": 0, "error": 1, "warning": 2, "info": 3, "debug": 4}
PATH_MAX = 4096
_PSEUDO_FS = ("/proc/", "/sys/", "/dev/")
_OPEN_FLAGS = (posix.O_RDWR | posix.O_APPEND | posix.O_CREAT | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC
               | posix.O_NOCTTY)
# Characters written as \xNN (C0 controls, DEL, C1 controls, and what a shell acts on inside one line), and a
# backslash doubled: the table is made by the first escape(), building it costs ~0.2M instructions (~0.1 ms) and
# most calls log nothing.
_escapes: dict[int, str] = {}


class LogFileError(ValueError):
    """A logFile we refuse to open; the skeleton turns it into code 7 naming `logFile`."""


def escape(text: str) -> str:
    """One printable line (module doc). Non-printable code points, lone surrogates among them (JSON "\\udcff",
    undecodable env bytes), become \\uXXXX: the encode can never fail."""
    if not _escapes:
        # built whole, then published by one update(): another thread never sees a table without the backslash
        table = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), *map(ord, "$`;&|<>"))}
        table[ord("\\")] = "\\\\"
        _escapes.update(table)
    out = text.translate(_escapes)
    if not out.isascii():  # format characters, unassigned code points, lone surrogates, U+2028/9
        out = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
                      for c in out)
    return out


def _looks_like_log(head: bytes) -> bool:
    """An ISO-8601 date first (YYYY-MM-DD): ours and sriov-cni's lines both start so."""
    return (len(head) >= 10 and head[:4].isdigit() and head[4:5] == b"-" and head[5:7].isdigit()
            and head[7:8] == b"-" and head[8:10].isdigit())


def open_log_file(path: object) -> int:
    """Open (creating, 0600) a logFile for appending under the rules of the module doc; LogFileError if refused."""
    if not isinstance(path, str):
        raise LogFileError("must be a string")
    try:
        bpath = path.encode("utf-8", "strict")
    except UnicodeEncodeError:
        raise LogFileError("is not valid UTF-8") from None
    if b"\0" in bpath:
        raise LogFileError("contains a NUL byte")
    if not bpath.startswith(b"/"):
        raise LogFileError("must be an absolute path")
    if len(bpath) > PATH_MAX:
        raise LogFileError(f"is longer than {PATH_MAX} bytes")
    parent, _, base = bpath.rpartition(b"/")
    if base in (b"", b".", b"..") or b".." in parent.split(b"/"):
        raise LogFileError("must name a file, without '..'")
    try:
        dfd = posix.open(parent or b"/", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except OSError as e:
        raise LogFileError(f"directory cannot be opened: {e.strerror}") from None
    try:
        d = posix.fstat(dfd)
        if d.st_uid not in (0, posix.geteuid()):
            raise LogFileError(f"directory is owned by uid {d.st_uid}, not root")
        if d.st_mode & _stat.S_IWOTH and not d.st_mode & _stat.S_ISVTX:
            raise LogFileError("directory is world-writable without the sticky bit")
        try:
            fd = posix.open(base, _OPEN_FLAGS, 0o600, dir_fd=dfd)
        except OSError as e:
            why = "is a symlink" if e.errno == 40 else e.strerror  # ELOOP: O_NOFOLLOW met a symlink
            raise LogFileError(f"cannot be opened: {why}") from None
    finally:
        posix.close(dfd)
    try:
        _check_open_file(fd)
    except BaseException:
        posix.close(fd)
        raise
    return fd


def _check_open_file(fd: int) -> None:
    st = posix.fstat(fd)
    if not _stat.S_ISREG(st.st_mode):
        raise LogFileError("is not a regular file")
    if st.st_nlink != 1:
        raise LogFileError("has more than one hard link")
    if st.st_uid != posix.geteuid():
        raise LogFileError(f"is owned by uid {st.st_uid}, not by us")
    try:
        real = posix.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        real = ""
    if real.startswith(_PSEUDO_FS):
        raise LogFileError(f"is on a kernel pseudo filesystem ({real.split('/')[1]})")
    try:
        head = posix.pread(fd, 16, 0)
    except OSError as e:
        raise LogFileError(f"cannot be read back: {e.strerror}") from None
    if head and not _looks_like_log(head):
        raise LogFileError("exists and is not a log file (its first line has no timestamp); refusing to append")


class Logger:
    """Writes escaped lines at or above its level to a logFile descriptor, or to stderr (fd None)."""

    __slots__ = ("fd", "level", "prefix")

    def __init__(self, fd: int | None = None, level: int = LEVELS["info"], prefix: str = ""):
        self.fd = fd
        self.level = level
        self.prefix = prefix

    @classmethod
    def from_conf(cls, raw: object, prefix: str, command: str = "") -> "Logger":
        """The logger a config asks for. Raises LogFileError for a refused logFile, except on DEL (which must
        finish): there the refusal is one warning on stderr and the log goes to stderr."""
        conf = raw if isinstance(raw, dict) else {}
        level = LEVELS.get(str(conf.get("logLevel", "info")).lower(), LEVELS["info"])
        args = conf.get("args")
        cni = args.get("cni") if isinstance(args, dict) else None
        if isinstance(cni, dict) and cni.get("debug") is True:  # rdma-cni's debug switch
            level = LEVELS["debug"]
        path = conf.get("logFile")
        if path is None or path == "":
            return cls(None, level, prefix)
        try:
            return cls(open_log_file(path), level, prefix)
        except LogFileError as e:
            if command != "DEL":
                raise
            logger = cls(None, level, prefix)
            logger.warning(f"logFile {path!r} refused ({e}); logging to stderr")
            return logger

    def __del__(self) -> None:
        if self.fd is not None:
            try:
                posix.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def _write(self, level: str, msg: str) -> None:
        if LEVELS[level] > self.level:
            return
        # Imported by the first line written: the time module's start sets up the local zone (tzset, reading
        # /etc/localtime), ~0.2M instructions of a call that may log nothing.
        import time

        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        line = f"{stamp}Z {level.upper()} {escape(self.prefix)} {escape(str(msg))}\n"
        try:
            if self.fd is None:
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                posix.write(self.fd, line.encode())
        except (OSError, ValueError):
            pass  # logging must never turn a working call into a failure

    def error(self, msg: str) -> None:
        self._write("error", msg)

    def warning(self, msg: str) -> None:
        self._write("warning", msg)

    def info(self, msg: str) -> None:
        self._write("info", msg)

    def debug(self, msg: str) -> None:
        self._write("debug", msg)

    @property
    def to_file(self) -> bool:
        return self.fd is not None
