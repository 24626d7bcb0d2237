"""What a plugin process answers before it imports its plugin: the about line, VERSION and the CNI_* env errors.

Every caller probes plugins with VERSION, and a bad environment is refused before any config is read, so these
answers come from here, with nothing imported beyond sys, posix and the C half of json (_json, through
cni_rdma.jsonc): not even os, and no json, re or enum (tests/unit/test_startup.py keeps the import set). The
output is byte for byte what cni_rdma.skel prints, which uses the same checks (read_env) for the calls that go
on to the plugin.
"""
import posix  # the os module's C half: the answers here never import os (~2 ms with stat, posixpath, ...)
import sys

from .errors import INVALID_ENV, IO_FAILURE, UNKNOWN_CONTAINER, CniError
from .version import CURRENT, SUPPORTED, version_json

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import BinaryIO, Mapping, TextIO

MAX_IFNAME = 15  # bytes: IFNAMSIZ - 1, as Go's len() counts

# Which env vars each command requires (Go pkg/skel getCmdArgsFromEnv).
ENV_VARS: tuple[tuple[str, set[str]], ...] = (
    ("CNI_COMMAND", {"ADD", "CHECK", "DEL", "GC", "STATUS"}),
    ("CNI_CONTAINERID", {"ADD", "CHECK", "DEL"}),
    ("CNI_NETNS", {"ADD", "CHECK"}),
    ("CNI_IFNAME", {"ADD", "CHECK", "DEL"}),
    ("CNI_ARGS", set()),
    ("CNI_PATH", {"ADD", "CHECK", "DEL", "GC", "STATUS"}),
)

# Go's container ID / network name rule [a-zA-Z0-9][a-zA-Z0-9_.\-]* as sets (ASCII only, as the regexp is):
# checked without re, which costs ~5 ms to import.
_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_REST = _ID_FIRST | frozenset("_.-")


def is_valid_id(s: str) -> bool:
    return bool(s) and s[0] in _ID_FIRST and all(c in _ID_REST for c in s[1:])


def validate_container_id(cid: str) -> None:
    if not cid:
        raise CniError(UNKNOWN_CONTAINER, "missing containerID")
    if not is_valid_id(cid):
        raise CniError(INVALID_ENV, "invalid characters in containerID", cid)


def validate_ifname(name: str) -> None:
    """Go's ValidateInterfaceName, over the bytes the kernel sees (the environment arrives as bytes; Python
    keeps undecodable ones as lone surrogates). Non-UTF-8 is refused here: the netlink layer speaks UTF-8."""
    if not name:
        raise CniError(INVALID_ENV, "interface name is empty")
    raw = name.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())  # os.fsencode
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CniError(INVALID_ENV, "interface name is not valid UTF-8", repr(raw)) from None
    if len(raw) > MAX_IFNAME:
        raise CniError(INVALID_ENV, "interface name is too long",
                       f"interface name should be less than {MAX_IFNAME + 1} characters")
    if name in (".", ".."):
        raise CniError(INVALID_ENV, "interface name is . or ..")
    if any(c in "/:" or c.isspace() for c in name):
        raise CniError(INVALID_ENV, "interface name contains / or : or whitespace characters")


_VALIDATORS = {"CNI_CONTAINERID": validate_container_id, "CNI_IFNAME": validate_ifname}


def read_env(env: "Mapping[str, str]") -> "dict[str, str]":
    """The CNI_* values by name; CniError (code 4, or 3 for a missing container ID) as Go's skel refuses them."""
    cmd = env.get("CNI_COMMAND", "")
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, required_for in ENV_VARS:
        val = env.get(name, "")
        values[name] = val
        if not val:
            if cmd in required_for or name == "CNI_COMMAND":
                missing.append(name)
        elif cmd in required_for and name in _VALIDATORS:
            _VALIDATORS[name](val)
    if missing:
        raise CniError(INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
    return values


def error_json(err: CniError, cni_version: str) -> str:
    """json.dumps(err.to_json(cni_version)), byte for byte, through _json's C string encoder."""
    from .jsonc import quote  # _json's encode_basestring_ascii: what json.dumps uses (ensure_ascii)

    fields = [f'"cniVersion": {quote(cni_version)}', f'"code": {int(err.code)!r}', f'"msg": {quote(err.msg)}']
    if err.details:
        fields.append(f'"details": {quote(err.details)}')
    return "{" + ", ".join(fields) + "}"


def error_version(data: bytes) -> str:
    """The cniVersion an error is printed in: stdin's when it is JSON naming one we speak, else CURRENT (skel's
    errors use it too)."""
    if not data:
        return CURRENT
    from .jsonc import try_loads  # the C half of json (imports json only for a BOM / UTF-16/32 stdin)

    obj = try_loads(data)
    v = obj.get("cniVersion") if isinstance(obj, dict) else None
    return v if isinstance(v, str) and v in SUPPORTED else CURRENT


def answer(about: str, env: "Mapping[str, str]", stdin: "BinaryIO", stdout: "TextIO", stderr: "TextIO") -> "int | None":
    """The about line, VERSION or an env error: the exit code. None when the call is for the plugin."""
    cmd = env.get("CNI_COMMAND", "")
    if not cmd:
        # No command: an interactive look at the binary, as Go prints its "about" line.
        stderr.write(f"{about}\nCNI protocol versions supported: {', '.join(SUPPORTED)}\n")
        return 0
    try:
        read_env(env)
    except CniError as e:
        err = e
    else:
        if cmd == "VERSION":
            stdout.write(version_json() + "\n")
            return 0
        return None
    # skel reads stdin before it checks the environment: the same order gives the same error and cniVersion
    try:
        data = stdin.read()
    except OSError as e:
        err, data = CniError(IO_FAILURE, f"error reading from stdin: {e}"), b""
    stdout.write(error_json(err, error_version(data)) + "\n")
    return 1


def environ() -> "dict[str, str]":
    """os.environ's contents, decoded as os decodes them (the filesystem encoding, surrogateescape)."""
    enc, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
    return {k.decode(enc, errors): v.decode(enc, errors) for k, v in posix.environ.items()}


def main(about: str) -> "int | None":
    return answer(about, environ(), sys.stdin.buffer, sys.stdout, sys.stderr)
