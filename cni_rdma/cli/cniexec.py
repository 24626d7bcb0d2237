"""`cni-rdma exec add|check|del|status|gc NETWORK NETNS`: cnitool's job, with libcni's semantics.

As cnitool (containernetworking/cni, libcni 1.1): the network list comes from NETCONFPATH (default
/etc/cni/net.d; *.conflist first, then *.conf/*.json up-converted), plugins from CNI_PATH, the interface
from CNI_IFNAME (default eth0), capability args from CAP_ARGS (JSON), CNI_ARGS as "K=V;K2=V2", the container
ID is "cnitool-" + the first 10 bytes of sha512(netns path) in hex. ADD prints the final result as Go prints
it (4-space indent, the result's own version); errors read as libcni words them.

The result cache is libcni's, byte for byte (<cache dir>/results/<network>-<containerID>-<ifname>, kind
cniCacheV1), so CHECK and DEL get the cached prevResult, and cnitool, podman or containerd can take over an
attachment made here (and the other way round). The cache dir is /var/lib/cni unless --cache-dir/CNI_CACHE_DIR.

status and gc follow libcni 1.2 (spec 1.1): STATUS runs every plugin of a 1.1.0 list; gc DELetes cached
attachments that are no longer valid and then sends GC with cni.dev/valid-attachments. A cached attachment is
valid while its sandbox netns (the result's interface sandbox) still exists; `--all` treats none as valid,
which is what cnitool does.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from typing import Any, Optional

from .common import EXIT_FAILED, CliError, list_dir, netns_alive, one_line, read_file

CACHE_KIND = "cniCacheV1"
VALID_ATTACHMENTS = "cni.dev/valid-attachments"


class ExecError(CliError):
    """A failure while running the chain: libcni's wording, exit 1."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_FAILED)


def _go_json(value: Any) -> str:
    """Go's json.Marshal of a map: sorted keys, compact, <>& escaped."""
    s = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in (v or "0.1.0").split("."))
    except ValueError:
        raise CliError(f"invalid cniVersion {v!r}") from None


# ------------------------------------------------------------------------------------- conf loading
class NetworkList:
    __slots__ = ("name", "cni_version", "disable_check", "plugins", "bytes", "file")

    def __init__(self, name: str, cni_version: str, disable_check: bool, plugins: list[dict], data: bytes,
                 file: str):
        self.name, self.cni_version, self.disable_check = name, cni_version, disable_check
        self.plugins, self.bytes, self.file = plugins, data, file


def _parse_plugin(raw: Any, where: str) -> dict:
    if not isinstance(raw, dict):
        raise CliError(f"{where}: error parsing configuration: expected a JSON object")
    if not raw.get("type") or not isinstance(raw.get("type"), str):
        raise CliError(f"{where}: error parsing configuration: missing 'type'")
    return raw


def _parse_list(data: bytes, where: str) -> NetworkList:
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise CliError(f"{where}: error parsing configuration list: {one_line(str(e))}") from None
    if not isinstance(raw, dict):
        raise CliError(f"{where}: error parsing configuration list: expected a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise CliError(f"{where}: error parsing configuration list: no name")
    plugins = raw.get("plugins")
    if plugins is None:
        raise CliError(f"{where}: error parsing configuration list: no 'plugins' key")
    if not isinstance(plugins, list) or not plugins:
        raise CliError(f"{where}: error parsing configuration list: no plugins in list")
    version = raw.get("cniVersion") or ""
    if not isinstance(version, str):
        raise CliError(f"{where}: error parsing configuration list: invalid cniVersion")
    return NetworkList(name, version, bool(raw.get("disableCheck")),
                       [_parse_plugin(p, where) for p in plugins], data, where)


def load_network(conf_dir: str, name: str) -> NetworkList:
    """libcni.LoadConfList: the first *.conflist (sorted) of that name, else an up-converted *.conf/*.json."""
    if not os.path.isdir(conf_dir):
        raise CliError(f"no net configurations found in {conf_dir} (not a directory; set NETCONFPATH)")
    files = list_dir(conf_dir)
    lists = [f for f in files if f.endswith(".conflist") and not os.path.isdir(os.path.join(conf_dir, f))]
    for f in lists:
        path = os.path.join(conf_dir, f)
        nl = _parse_list(read_file(path), path)
        if nl.name == name:
            return nl
    singles = [f for f in files if f.endswith((".conf", ".json")) and not os.path.isdir(os.path.join(conf_dir, f))]
    if not singles:
        if lists:
            raise CliError(f'no net configuration with name "{name}" in {conf_dir}')
        raise CliError(f"no net configurations found in {conf_dir}")
    for f in singles:
        path = os.path.join(conf_dir, f)
        try:
            raw = json.loads(read_file(path))
        except (ValueError, RecursionError) as e:
            raise CliError(f"{path}: error parsing configuration: {one_line(str(e))}") from None
        raw = _parse_plugin(raw, path)
        if raw.get("name") == name:
            listed = {"cniVersion": raw.get("cniVersion", ""), "name": name, "plugins": [raw]}
            return _parse_list(_go_json(listed).encode(), path)
    raise CliError(f'no net configuration with name "{name}" in {conf_dir}')


# ------------------------------------------------------------------------------------- runtime conf
def container_id_for(netns: str) -> str:
    return "cnitool-" + hashlib.sha512(netns.encode()).digest()[:10].hex()


def parse_cni_args(text: str) -> list[list[str]]:
    out = []
    for pair in text.split(";"):
        kv = pair.split("=")
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise CliError(f'invalid CNI_ARGS pair "{pair}"')
        out.append([kv[0], kv[1]])
    return out


def parse_cap_args(text: str) -> Optional[dict]:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise CliError(f"CAP_ARGS: invalid JSON: {one_line(str(e))}") from None
    if not isinstance(value, dict):
        raise CliError("CAP_ARGS: expected a JSON object of capability -> value")
    return value


class Runtime:
    __slots__ = ("container_id", "netns", "ifname", "args", "cap_args", "path", "cache_dir")

    def __init__(self, container_id: str, netns: str, ifname: str, args: list[list[str]], cap_args: Optional[dict],
                 path: list[str], cache_dir: str):
        self.container_id, self.netns, self.ifname = container_id, netns, ifname
        self.args, self.cap_args, self.path, self.cache_dir = args, cap_args, path, cache_dir

    def cache_file(self, network: str) -> str:
        return os.path.join(self.cache_dir, "results", f"{network}-{self.container_id}-{self.ifname}")


# ---------------------------------------------------------------------------------------- running
def _describe(plugin: dict) -> str:
    out = f'type="{plugin.get("type")}"'
    if plugin.get("name"):
        out += f' name="{plugin["name"]}"'
    return out


def _find(plugin_type: str, path: list[str]) -> str:
    for d in path:
        candidate = os.path.join(d, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ExecError(f'failed to find plugin "{plugin_type}" in path [{" ".join(path)}]')  # Go's %v of a []string


def _plugin_error(code: int, stdout: bytes, stderr: bytes) -> str:
    """libcni's invoke.pluginErr: the error JSON's msg + "; " + details, or what it has."""
    if not stdout.strip():
        if stderr.strip():
            return f"netplugin failed: {json.dumps(stderr.decode(errors='replace'))}"
        return f"exit status {code}"
    try:
        err = json.loads(stdout)
        msg, details = str(err.get("msg", "")), str(err.get("details", "") or "")
    except (ValueError, AttributeError):
        raw = json.dumps(stdout.decode(errors="replace"))
        return f"netplugin failed but error parsing its diagnostic message {raw}"
    return msg + (f"; {details}" if details else "")


def _exec(command: str, plugin_path: str, conf: bytes, rt: Optional[Runtime], cni_path: list[str]) -> bytes:
    env = dict(os.environ)
    env.update({"CNI_COMMAND": command, "CNI_PATH": os.pathsep.join(cni_path)})
    if rt is not None:
        env.update({"CNI_CONTAINERID": rt.container_id, "CNI_NETNS": rt.netns, "CNI_IFNAME": rt.ifname,
                    "CNI_ARGS": ";".join(f"{k}={v}" for k, v in rt.args)})
    else:
        for k in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"):
            env[k] = ""
    try:
        p = subprocess.run([plugin_path], input=conf, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ExecError(f"{plugin_path}: {one_line(e)}") from None
    if p.stderr:
        sys.stderr.write(p.stderr.decode(errors="replace"))
    if p.returncode != 0:
        raise ExecError(_plugin_error(p.returncode, p.stdout, p.stderr))
    return p.stdout


def _build(nl: NetworkList, plugin: dict, prev: Optional[dict], rt: Optional[Runtime]) -> bytes:
    conf = dict(plugin, name=nl.name, cniVersion=nl.cni_version)
    if prev is not None:
        conf["prevResult"] = prev
    if rt is not None and rt.cap_args:
        raw_caps = plugin.get("capabilities")
        caps: dict[str, Any] = raw_caps if isinstance(raw_caps, dict) else {}
        rc = {k: rt.cap_args[k] for k, on in caps.items() if on is True and k in rt.cap_args}
        if rc:
            conf["runtimeConfig"] = rc
    return _go_json(conf).encode()


def _result(stdout: bytes, conf_version: str) -> dict:
    """The plugin's result in its own version (cniVersion defaults to the config's), as Go's types hold it."""
    from cni_rdma.errors import CniError
    from cni_rdma.types import Result

    try:
        raw = json.loads(stdout)
    except ValueError as e:
        raise ExecError(f"failed to unmarshal raw result: {one_line(str(e))}") from None
    if raw is None:
        raw = {}
    try:
        return Result.from_json(raw, default_version=conf_version).to_json()
    except CniError as e:
        raise ExecError(e.msg) from None


def _convert(result: dict, version: str) -> dict:
    from cni_rdma.errors import CniError
    from cni_rdma.types import Result

    try:
        return Result.from_json(result).to_json(version)
    except CniError as e:
        raise ExecError(f'failed to convert cached result to config version "{version}": {e.msg}') from None


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def cache_add(nl: NetworkList, rt: Runtime, result: dict) -> None:
    entry: dict[str, Any] = {"kind": CACHE_KIND, "containerId": rt.container_id,
                             "config": base64.b64encode(nl.bytes).decode(), "ifName": rt.ifname,
                             "networkName": nl.name}
    if rt.args:
        entry["cniArgs"] = rt.args
    if rt.cap_args:
        entry["capabilityArgs"] = _sorted(rt.cap_args)
    entry["result"] = _sorted(result)
    data = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    path = rt.cache_file(nl.name)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        raise ExecError(f'failed to set network "{nl.name}" cached result: {e.strerror or e}') from None


def cache_read(path: str) -> Optional[dict]:
    try:
        return json.loads(read_file(path))
    except CliError as e:
        if "No such file" in e.message:
            return None
        raise
    except ValueError:
        return None


def cached_result(nl: NetworkList, rt: Runtime) -> Optional[dict]:
    entry = cache_read(rt.cache_file(nl.name))
    if entry is None:
        return None
    if entry.get("kind") == CACHE_KIND:
        raw = entry.get("result")
    else:  # libcni's legacy cache: the bare result
        raw = entry
    if not isinstance(raw, dict):
        return None
    return _convert(raw, nl.cni_version)


# ------------------------------------------------------------------------------------- the commands
def add(nl: NetworkList, rt: Runtime) -> dict:
    result: Optional[dict] = None
    for plugin in nl.plugins:
        try:
            out = _exec("ADD", _find(plugin["type"], rt.path), _build(nl, plugin, result, rt), rt, rt.path)
            result = _result(out, nl.cni_version)
        except ExecError as e:
            raise ExecError(f"plugin {_describe(plugin)} failed (add): {e.message}") from None
    assert result is not None
    cache_add(nl, rt, result)
    return result


def check(nl: NetworkList, rt: Runtime) -> None:
    if _version_tuple(nl.cni_version) < (0, 4, 0):
        raise ExecError(f'configuration version "{nl.cni_version}" does not support the CHECK command')
    if nl.disable_check:
        return
    prev = cached_result(nl, rt)
    for plugin in nl.plugins:
        _exec("CHECK", _find(plugin["type"], rt.path), _build(nl, plugin, prev, rt), rt, rt.path)


def delete(nl: NetworkList, rt: Runtime) -> None:
    prev = cached_result(nl, rt) if _version_tuple(nl.cni_version) >= (0, 4, 0) else None
    for plugin in reversed(nl.plugins):
        try:
            _exec("DEL", _find(plugin["type"], rt.path), _build(nl, plugin, prev, rt), rt, rt.path)
        except ExecError as e:
            raise ExecError(f"plugin {_describe(plugin)} failed (delete): {e.message}") from None
    try:
        os.unlink(rt.cache_file(nl.name))
    except OSError:
        pass


def status(nl: NetworkList, path: list[str]) -> Optional[str]:
    """None when every plugin is ready; a note when the list's version has no STATUS."""
    if _version_tuple(nl.cni_version) < (1, 1, 0):
        return f'network "{nl.name}" is cniVersion {nl.cni_version}: STATUS needs 1.1.0, nothing to ask'
    for plugin in nl.plugins:
        try:
            _exec("STATUS", _find(plugin["type"], path), _build(nl, plugin, None, None), None, path)
        except ExecError as e:
            raise ExecError(f"plugin {_describe(plugin)} failed (status): {e.message}") from None
    return None


def cached_attachments(cache_dir: str, network: str) -> list[dict]:
    """libcni's cache entries of one network: containerId, ifName, the sandbox netns of its result."""
    out = []
    results = os.path.join(cache_dir, "results")
    for fname in list_dir(results):
        if not fname.startswith(f"{network}-") or fname.endswith(".tmp"):
            continue
        try:
            entry = cache_read(os.path.join(results, fname))
        except CliError:
            continue
        if not entry or entry.get("kind") != CACHE_KIND or entry.get("networkName") != network:
            continue
        raw_result = entry.get("result")
        result: dict[str, Any] = raw_result if isinstance(raw_result, dict) else {}
        sandboxes = [i.get("sandbox") for i in result.get("interfaces") or [] if isinstance(i, dict)]
        netns = next((s for s in sandboxes if s), "")
        out.append({"containerID": entry.get("containerId", ""), "ifname": entry.get("ifName", ""),
                    "netns": netns, "alive": netns_alive(netns), "file": fname, "entry": entry})
    return out


def gc(nl: NetworkList, rt_base: Runtime, collect_all: bool, dry_run: bool) -> list[str]:
    """Returns what it did (or would do), one line each."""
    done: list[str] = []
    attachments = cached_attachments(rt_base.cache_dir, nl.name)
    valid = [] if collect_all else [a for a in attachments if a["alive"]]
    stale = [a for a in attachments if a not in valid]
    errors = []
    for a in stale:
        done.append(f"DEL {a['containerID']} {a['ifname']} (netns {a['netns'] or '?'} "
                    f"{'alive' if a['alive'] else 'gone'})")
        if dry_run:
            continue
        entry = a["entry"]
        rt = Runtime(a["containerID"], a["netns"], a["ifname"], entry.get("cniArgs") or [],
                     entry.get("capabilityArgs"), rt_base.path, rt_base.cache_dir)
        try:
            delete(nl, rt)
        except ExecError as e:
            errors.append(e.message)
    if _version_tuple(nl.cni_version) >= (1, 1, 0):
        keep = [{"containerID": a["containerID"], "ifname": a["ifname"]} for a in valid]
        done.append(f"GC {nl.name} keeping {len(keep)} attachment(s)")
        if not dry_run:
            for plugin in nl.plugins:
                conf = json.loads(_build(nl, plugin, None, None))
                conf[VALID_ATTACHMENTS] = keep
                try:
                    _exec("GC", _find(plugin["type"], rt_base.path), _go_json(conf).encode(), None, rt_base.path)
                except ExecError as e:
                    errors.append(f"plugin {_describe(plugin)} failed (gc): {e.message}")
    if errors:
        raise ExecError("; ".join(errors))
    return done


def print_result(result: dict) -> None:
    """As Go's result.Print(): MarshalIndent with four spaces, no trailing newline (one on a terminal)."""
    text = json.dumps(result, indent=4, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    sys.stdout.write(text + ("\n" if sys.stdout.isatty() else ""))
    sys.stdout.flush()
