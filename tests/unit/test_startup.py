"""Start-up budget guards: what a plugin process imports is its latency on every CNI call.

Each plugin type is imported in a fresh interpreter, as its process would, and no heavy module creeps in.
What a real ADD/CHECK/DEL imports end to end is guarded by tests/netns/test_hot_imports.py.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cni_rdma.registry import PLUGINS
from tests.topology import ROOT

NEVER = ("inspect", "ast", "dis", "tokenize", "pyroute2", "asyncio", "multiprocessing", "subprocess", "logging",
         "json", "re", "enum", "ipaddress", "collections", "contextlib", "functools", "threading", "ctypes",
         "dataclasses", "socket", "importlib",
         # os and what it pulls (~2 ms): posix and cni_rdma.paths; fcntl and zlib (a dlopen each): cni_rdma._native
         "os", "_collections_abc", "posixpath", "genericpath", "stat", "fcntl", "zlib",
         # struct.py, one module more than its C half _struct, which the netlink layer uses
         "struct")

PROBE = """
import sys
sys.path.insert(0, {root!r})
import cni_rdma.main, {module}
print(" ".join(sorted(m for m in {never!r} if m in sys.modules)))
"""


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_plugin_import_leaves_heavy_modules_out(plugin):
    code = PROBE.format(root=str(ROOT), module=PLUGINS[plugin], never=NEVER)
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    loaded = p.stdout.split()
    assert loaded == [], f"{PLUGINS[plugin]} imports {loaded} at start-up"


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_core_and_plugins_never_import_typing(plugin):
    # typing is ~2 ms of every call: the core and the plugins import it only under TYPE_CHECKING.
    code = ("import sys; sys.path.insert(0, %r); import cni_rdma.main, cni_rdma.ipam, cni_rdma.childlink, %s\n"
            "print(sorted(m for m in ('typing',) if m in sys.modules))" % (str(ROOT), PLUGINS[plugin]))
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


CLI_ONLY = ("click", "pyudev")
CLI_PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from cni_rdma import main
{action}
print(json.dumps(sorted(m for m in {only!r} if m in sys.modules)), file=sys.stderr)
"""


def _cli_modules_loaded(action: str) -> list[str]:
    # With site-packages on the path (unlike the -S probes above), so click and pyudev *could* be imported.
    code = CLI_PROBE.format(root=str(ROOT), action=action, only=CLI_ONLY)
    p = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_no_plugin_imports_the_cli_libraries(plugin):
    # The operator CLI's click and pyudev (cni_rdma/cli) load only when the bundle runs as `cni-rdma CMD`.
    action = (f"import {PLUGINS[plugin]}\n"
              f"try:\n    main.main([{plugin!r}, '--version'])\nexcept SystemExit:\n    pass")
    assert _cli_modules_loaded(action) == []


def test_the_cli_probe_sees_click_when_the_cli_runs():
    # the guard above can fail: running the CLI itself does load them
    loaded = _cli_modules_loaded("main.main(['cni-rdma', 'devices', '--json', '--backend', 'udev'])")
    assert loaded == ["click", "pyudev"]


# What a plugin process may import before it answers the about line, VERSION or a CNI_* env error
# (cni_rdma/early.py), beyond what the bare interpreter (-I -S) imports on its own: our five small modules,
# and the C half of json for an error's JSON. Not even os (with stat, posixpath, _collections_abc: ~2 ms);
# json, re, enum, dataclasses, typing: never.
EARLY_ALLOWED = {"cni_rdma", "gc",
                 "cni_rdma.main", "cni_rdma.registry", "cni_rdma.early", "cni_rdma.errors", "cni_rdma.version",
                 "cni_rdma.jsonc", "_json"}


def _imported(env: dict[str, str], launcher: str | None, stdin: bytes = b"") -> tuple[set[str], str]:
    """Module names a dev launcher's process imports (-X importtime, on stderr), and its stdout."""
    argv = [sys.executable, "-I", "-S", "-X", "importtime"] + ([launcher] if launcher else ["-c", "pass"])
    p = subprocess.run(argv, env=dict(env, PATH="/usr/sbin:/usr/bin:/sbin:/bin"), input=stdin,
                       capture_output=True, timeout=60)
    names = {line.split("|")[2].strip() for line in p.stderr.decode().splitlines()
             if line.startswith("import time:") and "self [us]" not in line}
    return names, p.stdout.decode()


@pytest.fixture(scope="module")
def dev_bin(tmp_path_factory):
    # the launcher tools/make_dev_bin.py writes, run by this interpreter over this tree
    d = tmp_path_factory.mktemp("devbin")
    for plugin in PLUGINS:
        (d / plugin).write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom cni_rdma.main import main\n"
                                "sys.exit(main())\n")
    return d


EARLY_CALLS = {
    "about": ({}, b""),
    "VERSION": ({"CNI_COMMAND": "VERSION"}, b""),
    "missing env": ({"CNI_COMMAND": "ADD"}, b'{"cniVersion": "0.4.0", "name": "n", "type": "macvlan"}'),
    "bad containerID": ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "a b", "CNI_IFNAME": "net1", "CNI_PATH": "/x"},
                        b'{"cniVersion": "1.0.0"}'),
}


@pytest.mark.parametrize("call", sorted(EARLY_CALLS))
@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_early_answers_import_almost_nothing(dev_bin, plugin, call):
    env, stdin = EARLY_CALLS[call]
    bare, _ = _imported({}, None)
    loaded, out = _imported(env, str(dev_bin / plugin), stdin)
    assert "cni_rdma.early" in loaded  # the probe sees our modules
    assert loaded - bare - EARLY_ALLOWED == set(), f"{plugin} {call} imports more than sys/posix"


def test_the_early_probe_sees_a_plugin_call(dev_bin):
    # the guard above can fail: a call that reaches the plugin loads the skeleton and what the plugin imports
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/nonexistent", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/x"}
    loaded, out = _imported(env, str(dev_bin / "macvlan"), b"{}")
    assert {"cni_rdma.skel", "cni_rdma.childlink"} <= loaded  # the plugin's own imports
    assert '"code": 7' in out  # missing network name: answered by the skeleton after the early checks


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_registry_about_line_is_the_plugins(plugin):
    import importlib

    from cni_rdma.registry import ABOUT

    assert ABOUT[plugin] == importlib.import_module(PLUGINS[plugin]).ABOUT


# dataclasses costs 13-15 ms of a frozen plugin's start (it imports inspect, and each class ~0.5 ms): the hot
# path's records are cni_rdma.frozen.Frozen classes.
STILL_DATACLASSES: set[str] = set()


def _imports_dataclasses(modules: str) -> bool:
    code = ("import sys; sys.path.insert(0, %r); import cni_rdma.main, cni_rdma.skel, %s\n"
            "print('dataclasses' in sys.modules)" % (str(ROOT), modules))
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip() == "True"


@pytest.mark.parametrize("plugin", sorted(set(PLUGINS) - STILL_DATACLASSES))
def test_plugin_creates_no_dataclass(plugin):
    assert not _imports_dataclasses(PLUGINS[plugin]), f"{PLUGINS[plugin]} imports dataclasses: use cni_rdma.frozen"


def test_the_dataclass_probe_sees_one():
    # the guard above can fail
    assert _imports_dataclasses("dataclasses")


def test_a_plugin_process_runs_without_the_cyclic_gc():
    # cni_rdma/main.py turns the collector off for the one call a plugin process serves (2-4 ms of collections
    # during the imports, nothing freed); the operator CLI turns it back on.
    code = ("import gc, sys; sys.path.insert(0, %r); assert gc.isenabled(); import cni_rdma.main\n"
            "print(gc.isenabled())" % str(ROOT))
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"


EXIT_PROBE = """
import atexit, os, sys
sys.path.insert(0, {root!r})
atexit.register(lambda: os.write(2, b"teardown\\n"))
sys.argv = [{argv0!r}, *{args!r}]
from cni_rdma.main import run
run()
"""


@pytest.mark.parametrize("argv0, args, env, code, out, teardown", [
    ("macvlan", [], {"CNI_COMMAND": "VERSION"}, 0, '"supportedVersions"', False),
    ("macvlan", [], {"CNI_COMMAND": "ADD"}, 1, '"code": 4', False),
    ("cni-rdma", ["--help"], {}, 0, "Usage: cni-rdma", True),
])
def test_a_plugin_call_ends_without_the_interpreters_teardown(argv0, args, env, code, out, teardown):
    # main.run(): a plugin's answer is flushed, then _exit (no module teardown, no final GC pass: 3-7 ms a
    # call); the operator CLI exits the normal way (atexit handlers run)
    p = subprocess.run([sys.executable, "-I", "-c", EXIT_PROBE.format(root=str(ROOT), argv0=argv0, args=args)],
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == code, p.stderr
    assert out in p.stdout
    assert ("teardown" in p.stderr) == teardown


# Code a call does not run costs its unmarshal and module body all the same (~15 us per kB of bytecode): the
# state stores (cni_rdma/state.py, 17 kB) serve ipvlan, sriov and rdma, not macvlan or host-local.
@pytest.mark.parametrize("plugin", ["macvlan", "host-local"])
def test_macvlan_and_host_local_leave_the_state_stores_out(plugin):
    code = PROBE.format(root=str(ROOT), module=PLUGINS[plugin], never=("cni_rdma.state", "cni_rdma.paths"))
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["cni_rdma.paths"]  # the probe sees a module of ours; state stays out


# A child link's DEL (macvlan, ipvlan) runs no address, route, sysctl or VF code, and every module it imports runs
# before its RTM_DELLINK (the one wait of a DEL): ADD_ONLY loads only for ADD and CHECK (the plugins' COMMAND_IMPORTS;
# cni_rdma.childlink works on a links-only socket), ~53 kB of bytecode, ~1-2 ms of a frozen DEL (issue 13). Nor
# does their ADD load the VF requests (VF_ONLY): cni_rdma.ipconfig's socket is Rtnl without them, and the default
# route of an unset "master" is read on a RouteOps socket.
ADD_ONLY = {"cni_rdma.ipconfig", "cni_rdma.sysctl", "cni_rdma.netlink.routes", "cni_rdma.netlink.addresses"}
VF_ONLY = {"cni_rdma.netlink.rtnl", "cni_rdma.netlink.vfs"}
# What no plugin call runs (each class created for nothing is ~0.05 ms): jsonc's indented writer.
NO_PLUGIN_CALL = {"cni_rdma.jsonc_indent"}


@pytest.fixture(scope="module")
def linked_bin(tmp_path_factory):
    # as tools/make_dev_bin.py: one launcher, a symlink per type (host-local resolves to the plugin's own
    # entry, so it runs in-process as in a real call)
    d = tmp_path_factory.mktemp("linkedbin")
    (d / "cni-rdma").write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom cni_rdma.main import run\n"
                                "run()\n")
    (d / "cni-rdma").chmod(0o755)  # CNI_PATH lookups want an executable
    for plugin in PLUGINS:
        (d / plugin).symlink_to("cni-rdma")
    return d


@pytest.mark.parametrize("command, master", [("DEL", "startupnone0"), ("ADD", "startupnone0"), ("ADD", "")])
@pytest.mark.parametrize("plugin", ["macvlan", "ipvlan"])
def test_a_child_link_del_imports_no_address_route_or_vf_code(linked_bin, tmp_path, plugin, command, master):
    # A pod netns that is gone: the DEL finds no link and releases the addresses (in-process host-local), as
    # after a node reboot; the ADD (the control: the probe sees these modules) fails on the master, or without
    # one on the default route's interface or the gone netns, after its imports and before it creates anything.
    conf = {"cniVersion": "1.1.0", "name": "startup-del", "type": plugin, "master": master,
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                     "ranges": [[{"subnet": "10.233.0.0/24"}]]}}
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "startup-del", "CNI_NETNS": str(tmp_path / "gone"),
           "CNI_IFNAME": "net1", "CNI_PATH": str(linked_bin), "CNI_RDMA_STATE_ROOT": str(tmp_path / "state")}
    loaded, out = _imported(env, str(linked_bin / plugin), json.dumps(conf).encode())
    assert {"cni_rdma.childlink", "cni_rdma.netlink.links"} <= loaded, out
    assert loaded & VF_ONLY == set(), f"{plugin} {command} imports the VF requests"
    assert loaded & NO_PLUGIN_CALL == set(), f"{plugin} {command} imports {loaded & NO_PLUGIN_CALL}"
    if command == "DEL":
        assert out == "", out
        assert "ipam.host_local.host_local" in loaded  # the release ran
        assert loaded & ADD_ONLY == set(), f"{plugin} DEL imports ADD's modules"
    else:
        assert '"code": ' in out and (master in out or not master), out
        assert ADD_ONLY <= loaded


# What only an ADD (and STATUS) runs of host-local: the walk for a free address (COMMAND_IMPORTS). A DEL, CHECK or
# GC releases or reads what the store lists (issue 13: every class and table a call creates is ~0.05 ms).
HOST_LOCAL_ADD_ONLY = {"ipam.host_local.allocator"}


def test_host_local_del_leaves_the_address_walk_out(linked_bin, tmp_path):
    conf = {"cniVersion": "1.1.0", "name": "startup-hl", "type": "host-local", "dataDir": str(tmp_path / "ipam"),
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": "10.233.1.0/24"}]]}}
    env = {"CNI_CONTAINERID": "startup-hl", "CNI_NETNS": str(tmp_path / "gone"), "CNI_IFNAME": "net1",
           "CNI_PATH": str(linked_bin)}
    loaded = {}
    for command in ("ADD", "DEL"):
        loaded[command], out = _imported(dict(env, CNI_COMMAND=command), str(linked_bin / "host-local"),
                                         json.dumps(conf).encode())
        assert ('"10.233.1.2/24"' in out) if command == "ADD" else out == "", out
    assert HOST_LOCAL_ADD_ONLY <= loaded["ADD"]  # the control: the probe sees it where it runs
    assert loaded["DEL"] & HOST_LOCAL_ADD_ONLY == set(), "a host-local DEL imports the address walk"
    assert (loaded["ADD"] | loaded["DEL"]) & NO_PLUGIN_CALL == set()


# What a call that writes no log line never imports: time (its start sets up the local zone, reading /etc/localtime,
# ~0.1 ms); cni_rdma.log imports it for the first line's timestamp. Checked on the imports (the dev interpreter's
# zipimport imports time at start-up; the bundle's launcher installs no zip hook): ipvlan's state store uses it.
@pytest.mark.parametrize("plugin", ["macvlan", "host-local"])
def test_importing_macvlan_or_host_local_leaves_time_out(plugin):
    code = (f"import sys; sys.modules.pop('time', None); sys.path.insert(0, {str(ROOT)!r})\n"
            f"import cni_rdma.main, cni_rdma.skel, {PLUGINS[plugin]}\nprint('time' in sys.modules)")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False", f"importing {plugin} imports time"
