"""The skeleton: environment, stdin, version reconciliation and dispatch (SPEC.md "CNI Operations").

Mirrors Go's pkg/skel so callers see the same codes and messages; a plugin module only implements
add/delete/check/status/gc over a parsed Request and raises CniError for anything a user can cause.
"""
from __future__ import annotations

import sys

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from types import ModuleType
    from typing import BinaryIO, Mapping, Optional, TextIO

from . import cniargs, jsonc, paths
from .bundled import preload
from .early import error_version, is_valid_id, read_env
from .errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INTERNAL,
    INVALID_CONFIG,
    INVALID_ENV,
    IO_FAILURE,
    CniError,
    config_error,
)
from .frozen import Frozen
from .log import LogFileError, Logger
from .netlink.errors import NetlinkError
from .types import NetConf, Result
from .version import SUPPORTED, at_least, version_json

# Minimum config version per command (SPEC.md: CHECK since 0.4.0, GC and STATUS since 1.1.0).
_MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
_FUNCS = {"ADD": "add", "DEL": "delete", "CHECK": "check", "GC": "gc", "STATUS": "status"}
# The CNI_* env checks (read_env) are cni_rdma/early.py's: a real process answers them before importing the plugin.


def validate_network_name(name: str) -> None:
    if not name:
        raise CniError(INVALID_CONFIG, "missing network name")
    if not is_valid_id(name):
        raise CniError(INVALID_CONFIG, "invalid characters found in network name", name)


class Request(Frozen):
    """One validated CNI call as a plugin sees it: the CNI_* environment, stdin and its parsed NetConf."""

    __slots__ = ("command", "container_id", "netns", "ifname", "cni_args", "path", "stdin", "conf", "env", "log")
    command: str
    container_id: str
    netns: str
    ifname: str
    cni_args: str
    path: tuple[str, ...]
    stdin: bytes
    conf: NetConf
    env: Mapping[str, str]
    log: Logger

    def __init__(self, command: str, container_id: str, netns: str, ifname: str, cni_args: str,
                 path: tuple[str, ...], stdin: bytes, conf: NetConf, env: Optional[Mapping[str, str]] = None,
                 log: Optional[Logger] = None) -> None:
        env = {} if env is None else env
        log = Logger() if log is None else log
        self._init(locals())

    @property
    def raw(self) -> dict:
        return self.conf.raw

    def args(self, known: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
        return cniargs.parse(self.cni_args, known)

    def with_command(self, command: str) -> "Request":
        env = dict(self.env)
        env["CNI_COMMAND"] = command
        return self.replace(command=command, env=env)


def _decode_config(stdin: bytes) -> dict:
    try:
        raw = jsonc.loads(stdin)
    except (ValueError, RecursionError) as e:
        raise CniError(DECODE_FAILURE, f"error unmarshall network config: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(raw, dict):
        raise CniError(DECODE_FAILURE, "error unmarshall network config: expected a JSON object")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise CniError(DECODE_FAILURE, 'error unmarshall network config: "name" must be a string')
    validate_network_name(name)
    return raw


def _config_version(raw: dict) -> str:
    v = raw.get("cniVersion", "")
    if not isinstance(v, str):
        raise CniError(DECODE_FAILURE, 'decoding version from network config: "cniVersion" must be a string')
    return v or "0.1.0"


def _check_version(cmd: str, v: str) -> None:
    minimum = _MIN_VERSION.get(cmd)
    if minimum:
        if not at_least(v, minimum):
            raise CniError(INCOMPATIBLE_VERSION, f"config version does not allow {cmd}")
        if not any(at_least(p, v) for p in SUPPORTED):
            raise CniError(INCOMPATIBLE_VERSION, f"plugin version does not allow {cmd}")
    if v not in SUPPORTED:
        quoted = " ".join(f'"{s}"' for s in SUPPORTED)
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f'config is "{v}", plugin supports [{quoted}]')


def call(module: ModuleType, env: Mapping[str, str], stdin: bytes, outer: Optional[Request] = None) -> Optional[Result]:
    """Validate and run one command; return the ADD result. Raises CniError. Also the in-process IPAM path, where
    `outer` is the calling plugin's request: when it carries the same stdin and netns, its parsed config is reused
    and the own-netns check it passed is not repeated (the same input cannot fail them differently)."""
    values = read_env(env)
    cmd = values["CNI_COMMAND"]
    same = outer is not None and outer.stdin == stdin and outer.netns == values["CNI_NETNS"]
    raw = outer.raw if outer is not None and same else _decode_config(stdin)
    if cmd not in _FUNCS:
        raise CniError(INVALID_ENV, f"unknown CNI_COMMAND: {cmd}")
    _check_version(cmd, _config_version(raw))
    if not same:
        _check_not_own_netns(cmd, values["CNI_NETNS"], env)
    conf = outer.conf if outer is not None and same else NetConf.from_json(raw)
    try:
        log = Logger.from_conf(raw, f"{conf.type or module.__name__} {cmd} {values['CNI_CONTAINERID']} "
                                    f"{values['CNI_IFNAME']}", cmd)
    except LogFileError as e:
        raise config_error("logFile", str(e)) from None
    req = Request(
        command=cmd,
        container_id=values["CNI_CONTAINERID"],
        netns=values["CNI_NETNS"],
        ifname=values["CNI_IFNAME"],
        cni_args=values["CNI_ARGS"],
        path=tuple(p for p in values["CNI_PATH"].split(paths.PATHSEP) if p),
        stdin=stdin,
        conf=conf,
        env=env,
        log=log,
    )
    fn = getattr(module, _FUNCS[cmd], None)
    if fn is None:
        raise CniError(INVALID_ENV, f"{conf.type or 'this plugin'} does not implement {cmd}")
    req.log.debug(f"{cmd} netns={req.netns!r} args={req.cni_args!r}")
    preload(module.__name__, cmd)  # frozen: what this command imports inside the plugin (its COMMAND_IMPORTS)
    try:
        result = fn(req)
    except NetlinkError as e:  # the one place a netlink failure becomes a CNI error (code 5)
        raise CniError(IO_FAILURE, e.msg, e.details) from None
    return result if cmd == "ADD" else None


def _check_not_own_netns(cmd: str, path: str, env: Mapping[str, str]) -> None:
    """Go's skel: CNI_NETNS naming the plugin's own netns is code 8 unless CNI_NETNS_OVERRIDE is 1/true.
    Checked before the plugin acts (Go checks after ADD ran), and for CHECK and DEL too: a DEL there would
    remove a host link named like CNI_IFNAME."""
    if cmd not in ("ADD", "CHECK", "DEL") or not path:
        return
    override = env.get("CNI_NETNS_OVERRIDE", "")
    if override == "1" or override.upper() == "TRUE":
        return
    from .netns import INVALID_NETNS, OWN_NETNS_MSG, is_plugin_netns

    if is_plugin_netns(path):
        raise CniError(INVALID_NETNS, OWN_NETNS_MSG)


def run(module: ModuleType, env: Optional[Mapping[str, str]] = None, stdin: Optional[BinaryIO] = None,
        stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """The process-level entry: print a result or a CNI error JSON on stdout; exit 0 or 1."""
    env = paths.environ() if env is None else env
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    cmd = env.get("CNI_COMMAND", "")
    data = b""
    try:
        if not cmd:
            # No command: an interactive look at the binary, as Go prints its "about" line.
            about = getattr(module, "ABOUT", "cni-rdma")
            stderr.write(f"{about}\nCNI protocol versions supported: {', '.join(SUPPORTED)}\n")
            return 0
        if cmd == "VERSION":
            read_env(env)
            stdout.write(version_json() + "\n")
            return 0
        try:
            data = (stdin or sys.stdin.buffer).read()
        except OSError as e:
            raise CniError(IO_FAILURE, f"error reading from stdin: {e}") from None
        result = call(module, env, data)
        if result is not None:
            stdout.write(jsonc.dumps(result.to_json(_config_version(jsonc.loads(data)))) + "\n")
        return 0
    except CniError as e:
        err = e
    except Exception as e:  # never a traceback on stdout/stderr: one line, code 999
        import traceback

        err = CniError(INTERNAL, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unexpected error'}")
        try:  # the traceback (one escaped line) only into a logFile; stderr gets the one-line error
            log = Logger.from_conf(_safe_raw(data), f"{getattr(module, 'ABOUT', '')} {cmd}", "DEL")
            log.error(traceback.format_exc() if log.to_file else err.msg)
        except Exception:
            pass
    stdout.write(jsonc.dumps(err.to_json(error_version(data))) + "\n")
    return 1


def _safe_raw(data: bytes) -> dict:
    raw = jsonc.try_loads(data)
    return raw if isinstance(raw, dict) else {}
