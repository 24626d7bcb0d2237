"""Every plugin type answers from CNI_TEST_BIN_DIR (dev launchers or the frozen bundle), and the frozen bundle is
complete and installable. Runs in both passes of `make test`; the bundle-only checks skip on dev launchers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cni_rdma.registry import PLUGINS
from cni_rdma.version import SUPPORTED
from tests import topology

ROOT = topology.ROOT
TYPES = sorted(PLUGINS)


def _exe() -> Path:
    return Path(os.path.realpath(topology.bin_dir() / TYPES[0]))


def _frozen() -> bool:
    with open(_exe(), "rb") as f:
        return f.read(4) == b"\x7fELF"


frozen_only = pytest.mark.skipif("not _frozen()", reason="CNI_TEST_BIN_DIR holds dev launchers, not the bundle")


@pytest.mark.parametrize("plugin", TYPES)
def test_every_type_loads_and_answers_version(plugin):
    # main.py imports the plugin module before VERSION is answered: a module missing from the bundle fails here.
    r = topology.run_plugin(plugin, "VERSION", b"")
    assert r.code == 0, r.stdout + r.stderr
    assert r.json["supportedVersions"] == list(SUPPORTED)
    assert r.stderr == ""


@pytest.mark.parametrize("plugin", TYPES)
def test_every_type_answers_dash_dash_version(plugin):
    p = subprocess.run([str(topology.bin_dir() / plugin), "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.splitlines()[:2]
    assert first.startswith(f"{plugin} (cni-rdma) version ")
    commit = first.rsplit("commit ", 1)[1]
    if _frozen():
        assert commit not in ("", "source", "unknown"), first  # the bundle carries the real commit
    assert second == f"CNI protocol versions supported: {', '.join(SUPPORTED)}"


def _source_modules() -> set[str]:
    mods = set()
    for pkg in ("cni_rdma", "plugins", "ipam"):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods.add(".".join(parts))
    return mods


def _bundle_contents() -> set[str]:
    """The loose .pyc modules: all the launcher (tools/launcher.c) can import. The executable carries no
    archive (PyInstaller's bootloader and its scripts and runtime hooks are not in the bundle at all)."""
    names = set()
    internal = _exe().parent / "_internal"
    for pyc in internal.rglob("*.pyc"):
        parts = pyc.relative_to(internal).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@frozen_only
def test_bundle_holds_every_source_module():
    contents = _bundle_contents()
    missing = sorted(_source_modules() - contents)
    assert not missing, f"the frozen bundle misses modules (rebuild: make build): {missing}"
    assert "cni_rdma._build" in contents
    assert not (ROOT / "cni_rdma" / "_build.py").exists(), "build info belongs in the bundle, not the source tree"


@frozen_only
def test_bundle_leaves_out_what_costs_startup():
    contents = _bundle_contents()
    for hook in ("pyi_rth_inspect", "pyi_rth_pkgutil", "pyi_rth_multiprocessing"):
        assert hook not in contents
    assert not {"pyroute2", "multiprocessing", "asyncio", "unittest"} & contents
    assert "json" in contents and "cni_rdma.main" in contents  # the listing itself works
    # the executable is our launcher: no PyInstaller bootloader archive (its cookie) appended to it
    assert b"MEI\x0c\x0b\x0a\x0b\x0e" not in _exe().read_bytes()


def _modules_file_names(internal: Path) -> set[str]:
    """The module names in the bundle's modules file (format: cni_rdma/bundled.py)."""
    from tools.build_bundle import read_index

    index, preloads, _ = read_index(internal)
    assert {key for key in preloads if isinstance(key, str)} == set(PLUGINS.values())
    return set(index)


@frozen_only
def test_modules_file_holds_every_module_and_native_is_built_in():
    internal = _exe().parent / "_internal"
    assert _source_modules() <= _modules_file_names(internal)
    assert _bundle_contents() == _modules_file_names(internal)  # every loose .pyc is packed too
    # cni_rdma/_native.c is compiled into the executable (a built-in module): no extension file to dlopen
    assert not list((internal / "cni_rdma").glob("_native*.so"))


# Without the modules file: the modules a plugin process imports from loose files before main.py's install()
# (its "failed to load" answer needs jsonc too).
EARLY_FILES = {"__init__", "main", "registry", "early", "errors", "version", "bundled", "jsonc"}


@frozen_only
@pytest.mark.parametrize("modules_file", [True, False])
def test_plugin_modules_come_from_the_modules_file(tmp_path, modules_file):
    # A copy of the bundle without the loose .pyc of our packages: a plugin call still answers (code 7 from the
    # skeleton, after the plugin module loaded): the launcher installs the modules file's finder (cni_rdma.bundled,
    # frozen into the executable) before cni_rdma.main. Without the modules file (the control: the loose files
    # really are gone) it cannot load the plugin.
    bundle = tmp_path / "bundle"
    import shutil

    shutil.copytree(_exe().parent, bundle, symlinks=True)
    internal = bundle / "_internal"
    for pkg in ("cni_rdma", "plugins", "ipam"):
        for pyc in (internal / pkg).rglob("*.pyc"):
            if modules_file or not (pyc.parent == internal / "cni_rdma" and pyc.stem in EARLY_FILES):
                pyc.unlink()
    if not modules_file:
        (internal / "cni_rdma.modules").unlink()
    (tmp_path / "macvlan").symlink_to(bundle / "cni-rdma")
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/nonexistent", "CNI_IFNAME": "net1",
           "CNI_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([str(tmp_path / "macvlan")], input=b"{}", env=env, capture_output=True, timeout=60)
    answer = json.loads(p.stdout)
    if modules_file:
        assert answer["code"] == 7 and answer["msg"] == "missing network name", answer
    else:
        assert answer["code"] == 999 and "failed to load" in answer["msg"], answer


def _probe_launcher(tmp_path: Path) -> Path:
    """A probe build of the bundle's launcher at tmp_path/probe, beside a link to the bundle's _internal:
    CNI_RDMA_PROBE (tests only, never shipped) runs the Python source in $CNI_RDMA_PROBE_CODE in the bundle's
    interpreter, started as a plugin call starts it."""
    from tools.build_bundle import launcher_command

    internal = (_exe().parent / "_internal").resolve()
    (tmp_path / "_internal").symlink_to(internal)
    cmd = launcher_command(tmp_path / "probe", internal, ("CNI_RDMA_PROBE",), rpath=f"{internal}/lib:{internal}")
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return tmp_path / "probe"


PROBE_CODE = """
import sys
aliases_at_start = ("encodings.aliases" in sys.modules or "codecs" in sys.modules
                    or "CodecRegistryError" in vars(sys.modules["encodings"]))
utf8_entry = type(sys.stdout.buffer and __import__("encodings.utf_8").utf_8.getregentry()).__module__
import codecs, encodings
import cni_rdma.bundled
cni_rdma.bundled.install()
import cni_rdma.main
print(repr([aliases_at_start, utf8_entry, codecs.lookup("utf-8").name, codecs.getreader("utf-8").__name__,
            encodings.NOT_ALIASES and encodings.__spec__.origin, encodings.__path__,
            sys.modules["encodings.utf_8"].__spec__.origin, codecs.lookup("cp1252").name,
            "bücher.de".encode("idna"), codecs.lookup("latin1").name, sys.modules["encodings.aliases"].__spec__.origin,
            sys.getfilesystemencoding(), cni_rdma.bundled.__spec__.origin, cni_rdma.__path__,
            type(cni_rdma.main.__loader__).__name__, encodings.CodecRegistryError.__mro__[1:3]]))
"""


@frozen_only
def test_the_codec_registry_is_frozen_into_the_executable_and_finds_every_codec(tmp_path):
    # tools/launcher.c freezes encodings (our codec search, cni_rdma/codec_search.py: the alias table only when a
    # name needs it, from the modules file) and encodings.utf_8 (cni_rdma/utf8_codec.py: no codecs module at
    # start; codecs.lookup and the stream classes still work once it is imported), and cni_rdma.bundled with its
    # package; the packages' __path__ still leads to the bundle's files.
    p = subprocess.run([str(_probe_launcher(tmp_path))], env={"CNI_RDMA_PROBE_CODE": PROBE_CODE}, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == repr([False, "encodings.utf_8", "utf-8", "StreamReader", "frozen",
                                     [f"{tmp_path}/_internal/encodings"], "frozen", "cp1252",
                                     b"xn--bcher-kva.de", "iso8859-1", f"{tmp_path}/_internal/encodings/aliases.pyc",
                                     "utf-8", "frozen",
                                     [f"{tmp_path}/_internal/cni_rdma"], "BundledModules", (LookupError, SystemError)])


IO_PROBE = """
import sys
at_start = sorted(m for m in ("abc", "_abc", "codecs") if m in sys.modules)
import cni_rdma.bundled
cni_rdma.bundled.install()
import cni_rdma.main, io
code = cni_rdma.main.main([sys.argv[1]])  # a DEL, in-process host-local: every module it imports
after_del = sorted(m for m in ("abc", "_abc") if m in sys.modules), "IOBase" in vars(io)
import builtins, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    wrapper = io.OpenWrapper
print(repr([at_start, code, after_del, io.__spec__.origin, builtins.open is io.open is wrapper,
            [w.category.__name__ for w in caught], isinstance(sys.stdout, io.TextIOBase),
            isinstance(sys.stdin.buffer, io.BufferedIOBase), isinstance(sys.stderr.buffer.raw, io.RawIOBase),
            issubclass(io.FileIO, io.RawIOBase), issubclass(io.StringIO, io.IOBase), type(io.IOBase).__name__,
            getattr(sys.modules[io.TextIOBase.__module__], io.TextIOBase.__qualname__) is io.TextIOBase,
            io.abc is sys.modules["abc"], sorted({n for n in dir(io) if n[0] != "_"} - set(io.__all__))]))
"""


@frozen_only
def test_io_is_frozen_without_abc_and_makes_its_abcs_when_asked(tmp_path):
    # tools/launcher.c freezes cni_rdma/light_io.py as `io`: the interpreter's start and a whole plugin DEL import no
    # abc; io's ABCs, asked for, answer isinstance/issubclass as the standard module's.
    probe = _probe_launcher(tmp_path)
    (tmp_path / "macvlan").symlink_to(probe)
    (tmp_path / "host-local").symlink_to(probe)  # our own IPAM: released in-process
    conf = {"cniVersion": "1.1.0", "name": "io-probe", "type": "macvlan", "master": "eth0",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": "10.9.0.0/24"}]]}}
    env = {"CNI_RDMA_PROBE_CODE": IO_PROBE, "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "ioprobe", "CNI_NETNS": "",
           "CNI_IFNAME": "net1", "CNI_PATH": str(tmp_path), "CNI_RDMA_STATE_ROOT": str(tmp_path / "state"),
           "PATH": "/usr/bin:/bin"}
    p = subprocess.run([str(probe), str(tmp_path / "macvlan")], input=json.dumps(conf), env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == repr([[], 0, ([], False), "frozen", True, ["DeprecationWarning"], True, True, True,
                                     True, True, "ABCMeta", True, True, ["OpenWrapper", "abc"]]), p.stderr


@frozen_only
def test_install_links_refuses_go_plugin_and_uninstalls(tmp_path):
    bundle = _exe().parent
    lib, bin_dir = tmp_path / "lib" / "cni-rdma", tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "macvlan"
    go.write_bytes(b"\x7fELF pretend Go plugin")
    go.chmod(0o755)
    (bin_dir / "bridge").write_bytes(b"foreign")
    cmd = [sys.executable, str(ROOT / "tools" / "install.py"), "--bundle", str(bundle),
           "--lib-dir", str(lib), "--bin-dir", str(bin_dir)]

    refused = subprocess.run([*cmd[:2], "install", *cmd[2:]], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "Go reference plugin" in refused.stderr and "FORCE=1" in refused.stderr
    assert not lib.exists() and go.read_bytes().startswith(b"\x7fELF pretend")  # nothing changed

    done = subprocess.run([*cmd[:2], "install", *cmd[2:], "--force"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for t in TYPES:
        assert os.readlink(bin_dir / t) == str(lib / "cni-rdma")
        r = topology.run_plugin(t, "VERSION", b"")  # the dev/frozen bin dir: sanity
        assert r.code == 0
    p = subprocess.run([str(bin_dir / "host-local"), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("host-local (cni-rdma)")
    v = subprocess.run([str(bin_dir / "macvlan")], env={"CNI_COMMAND": "VERSION"}, capture_output=True, text=True)
    assert json.loads(v.stdout)["supportedVersions"] == list(SUPPORTED)

    again = subprocess.run([*cmd[:2], "install", *cmd[2:]], capture_output=True, text=True)  # upgrade in place
    assert again.returncode == 0, again.stderr

    gone = subprocess.run([*cmd[:2], "uninstall", *cmd[2:]], capture_output=True, text=True)
    assert gone.returncode == 0, gone.stderr
    assert sorted(os.listdir(bin_dir)) == ["bridge"] and not lib.exists()


def _ipam_execs(plugin_dir: Path, cni_path: str, node, pod, tmp_path) -> list[str]:
    """ADD+DEL a macvlan with host-local IPAM under strace; the programs exec'd after the plugin itself."""
    import shutil

    if not shutil.which("strace"):
        pytest.skip("strace not installed")
    conf = json.dumps({"cniVersion": "1.0.0", "name": "ipam-probe", "type": "macvlan", "master": node.master,
                       "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "subnet": "10.9.0.0/24"}})
    execs = []
    for cmd in ("ADD", "DEL"):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": cmd, "CNI_CONTAINERID": "c1",
               "CNI_NETNS": pod.path, "CNI_IFNAME": "net1", "CNI_PATH": cni_path}
        trace = tmp_path / f"strace-{cmd}"
        p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "nsenter",
                            f"--net={node.path}", str(plugin_dir / "macvlan")], input=conf.encode(), env=env,
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        execs += [line.split('"')[1] for line in trace.read_text().splitlines()
                  if "execve(" in line and "= -1" not in line]
    return [e for e in execs if os.path.basename(e) not in ("nsenter", "macvlan")]


def test_own_ipam_runs_in_process(node, pod, tmp_path):
    # CNI_PATH's host-local resolves to the very executable running macvlan: no second process.
    execs = _ipam_execs(topology.bin_dir(), str(topology.bin_dir()), node, pod, tmp_path)
    assert execs == [], execs  # not even a self re-exec: the launcher (tools/launcher.c) starts Python in place


@frozen_only
def test_own_ipam_runs_in_process_through_installed_symlinks(node, pod, tmp_path):
    lib, bin_dir = tmp_path / "opt" / "lib" / "cni-rdma", tmp_path / "opt" / "bin"
    subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), "install", "--bundle", str(_exe().parent),
                    "--lib-dir", str(lib), "--bin-dir", str(bin_dir)], check=True, capture_output=True)
    execs = _ipam_execs(bin_dir, str(bin_dir), node, pod, tmp_path)
    assert all(e == str(lib / "cni-rdma") for e in execs), execs
    # A foreign host-local earlier in CNI_PATH is exec'd, not ours in-process (Go's: /usr/lib/cni).
    go = Path("/usr/lib/cni/host-local")
    if go.exists():
        execs = _ipam_execs(bin_dir, f"{go.parent}:{bin_dir}", node, pod, tmp_path)
        assert str(go) in execs, execs


@frozen_only
def test_install_with_destdir_as_the_daemonset_does(tmp_path):
    # The init container mounts the node's /opt/cni at /host/opt/cni and installs with --destdir=/host:
    # files land under DESTDIR, links point at the node's own path.
    host = tmp_path / "host"
    (host / "opt" / "cni").mkdir(parents=True)
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), "install", f"--bundle={_exe().parent}",
                        f"--destdir={host}", "--lib-dir=/opt/cni/lib/cni-rdma", "--bin-dir=/opt/cni/bin"],
                       capture_output=True, text=True, env={**os.environ, "FORCE": "0"})
    assert p.returncode == 0, p.stderr
    assert (host / "opt/cni/lib/cni-rdma/cni-rdma").is_file()
    assert (host / "opt/cni/lib/cni-rdma/TYPES").read_text().split() == TYPES
    for t in TYPES:
        assert os.readlink(host / "opt/cni/bin" / t) == "/opt/cni/lib/cni-rdma/cni-rdma"


# A plugin call in the bundle's interpreter setting, as tools/launcher.c starts it (the bundle's _internal as the
# whole path, frozen, cni_rdma._native built in: here the tree's build of it, loaded first), that records every
# module of the modules file that an import had to find through the import machinery after the plugin loaded.
COMMAND_PROBE = """
import importlib.machinery, importlib.util, json, posix, sys
native = importlib.util.spec_from_file_location("cni_rdma._native", {native!r})
sys.path[:] = [{dynload!r}, {internal!r}]
sys.frozen, sys._MEIPASS = True, {internal!r}
sys.path_importer_cache.clear()
from cni_rdma import bundled
bundled.install()
sys.modules["cni_rdma._native"] = module = importlib.util.module_from_spec(native)
native.loader.exec_module(module)
from cni_rdma import early, errors, jsonc, main, registry, version  # imported before install() in the bundle
finder = sys.meta_path[0]
machinery = []
find_spec = finder.find_spec
finder.find_spec = lambda name, *a: (name in finder.index and machinery.append(name)) or find_spec(name, *a)
preload = finder.preload
finder.preload = lambda name, command=None: preload(name, command) or machinery.clear()  # after registry.load
code = main.main([{argv0!r}])
sys.stdout.flush()
posix.write(posix.open({report!r}, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC), json.dumps({{"code": code, "machinery": machinery, "modules": sorted(sys.modules), "rest_read": finder.rest is None}}).encode())
"""


def _probe_call(tmp_path: Path, node, command: str, env: dict, stdin: bytes) -> tuple[dict, str]:
    internal = _exe().parent / "_internal"
    dynload = next(internal.glob("python3*/lib-dynload"))
    native = next((ROOT / "cni_rdma").glob("_native*.so"))
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for name in ("macvlan", "host-local"):  # frozen, our own entry is sys.executable: host-local in-process
            (bin_dir / name).symlink_to(os.path.realpath(sys.executable))
    report = tmp_path / f"{command}.json"
    code = COMMAND_PROBE.format(native=str(native), dynload=str(dynload), internal=str(internal),
                                argv0=str(bin_dir / "macvlan"), report=str(report))
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_PATH": str(bin_dir), **env}
    p = subprocess.run(["nsenter", f"--net={node.path}", sys.executable, "-I", "-S", "-c", code], input=stdin,
                       env=full_env, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(report.read_text()), p.stdout.decode()


@frozen_only
def test_frozen_add_and_check_run_their_lazy_imports_without_the_machinery_and_del_skips_them(node, pod, tmp_path):
    # macvlan imports cni_rdma.ipconfig inside add() and check() (its COMMAND_IMPORTS, off a DEL's path): the
    # build records what that import runs and skel replays it before the command, so an ADD or a CHECK finds no
    # module of the bundle through the import machinery (~25 us each); a DEL never loads them.
    from tests.unit.test_startup import ADD_ONLY, VF_ONLY

    conf = {"cniVersion": "1.1.0", "name": "frozen-lazy", "type": "macvlan", "master": "eth0",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": "10.234.0.0/24"}]],
                     "routes": [{"dst": "0.0.0.0/0"}]}}
    env = {"CNI_CONTAINERID": "frozenlazy", "CNI_NETNS": pod.path, "CNI_IFNAME": "net1"}
    add, out = _probe_call(tmp_path, node, "ADD", env, json.dumps(conf).encode())
    assert add["code"] == 0 and json.loads(out)["ips"], out
    assert ADD_ONLY <= set(add["modules"]) and "ipam.host_local.host_local" in add["modules"]
    assert VF_ONLY & set(add["modules"]) == set()
    assert add["machinery"] == []
    conf["prevResult"] = json.loads(out)
    check, out = _probe_call(tmp_path, node, "CHECK", env, json.dumps(conf).encode())
    assert check["code"] == 0 and check["machinery"] == [], out
    delete, out = _probe_call(tmp_path, node, "DEL", env, json.dumps(conf).encode())
    assert delete["code"] == 0, out
    assert (ADD_ONLY | VF_ONLY) & set(delete["modules"]) == set()
    # every module the three import is in the index's first part: none read the rest (cni_rdma/bundled.py)
    assert [add["rest_read"], check["rest_read"], delete["rest_read"]] == [False, False, False]


MODULE_TYPE_PROBE = """
import sys, types
import cni_rdma.bundled
cni_rdma.bundled.install()
from cni_rdma.errnos import ENOENT  # a module of the modules file: the import's __path__ probe raises nothing
import cni_rdma.errnos as errnos
out = [type(errnos).__name__, type(errnos) is types.ModuleType, isinstance(errnos, types.ModuleType), ENOENT,
       hasattr(errnos, "nothing_here")]
try:
    errnos.nothing_here
except AttributeError as e:
    out.append(type(e).__name__)
import cni_rdma.light_io as light_io  # defines a module __getattr__ (PEP 562): given the standard type back
out += [type(light_io) is types.ModuleType, light_io.IOBase.__name__, type(sys.modules["io"]) is types.ModuleType]
print(out)
"""


@frozen_only
def test_the_bundles_modules_are_of_a_module_type_whose_failed_lookups_raise_nothing(tmp_path):
    # cni_rdma/_native.c Module: `from x import y` probes x for __path__; the standard module type words two
    # AttributeErrors for that (~9k instructions, ~100 times a call). A module defining __getattr__ keeps the
    # standard type; frozen-table modules (io) are the interpreter's own.
    p = subprocess.run([str(_probe_launcher(tmp_path))], env={"CNI_RDMA_PROBE_CODE": MODULE_TYPE_PROBE},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == repr(["module", False, True, 2, False, "AttributeError", True, "IOBase", True])


UNFROZEN_PROBE = """
import _imp, sys
deep = sys.getrefcount(sys.modules["_frozen_importlib"]._find_and_load.__code__) > 100000  # static: ~10**9
import posixpath, stat
try:
    import __hello_only__
    hello = "imported"
except ImportError as e:
    hello = str(e)
print(repr([deep, posixpath.__spec__.origin, posixpath.commonpath(["/a/b", "/a/c"]), stat.S_ISDIR(0o40755),
            type(_imp.get_frozen_object("os")).__name__, hello]))
"""


@frozen_only
def test_cpythons_frozen_stdlib_modules_are_unmarshalled_when_imported_not_linked_as_data(tmp_path):
    # tools/build_bundle.py (DEEPFREEZE_OBJECT): libpython links without deepfreeze.o (~880 kB of relocated,
    # copied-on-write code objects at every start); each _Py_get_<module>_toplevel unmarshals the module's code.
    # The frozen stdlib modules still import (from the frozen table), and the test-only one without an original
    # name fails as an ImportError, not a crash.
    p = subprocess.run([str(_probe_launcher(tmp_path))], env={"CNI_RDMA_PROBE_CODE": UNFROZEN_PROBE},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == repr([False, "frozen", "/a", True, "code", "frozen_only: not in this bundle"])


ARENA_PROBE = """
hg = {}
start = None
for line in open("/proc/self/smaps"):
    head = line.split()
    if "-" in head[0] and ":" not in head[0]:
        lo, hi = (int(x, 16) for x in head[0].split("-"))
        start = lo if hi - lo == 4 << 20 and len(head) == 5 else None
    elif head[0] == "VmFlags:" and start is not None:
        hg[start] = "hg" in head[1:]
objects = [object() for _ in range(1000)]  # small objects: obmalloc's, from an arena
inside = [s for s in hg if all(s <= id(o) < s + (4 << 20) for o in objects)]
print(repr([len(inside), inside and hg[inside[0]], inside and inside[0] % (2 << 20)]))
"""


@frozen_only
def test_obmallocs_arenas_come_from_one_region_advised_for_huge_pages(tmp_path):
    # tools/launcher.c (arena_alloc): the first arenas are slots of one 4 MiB, 2 MiB-aligned region with
    # MADV_HUGEPAGE ("hg" in its VmFlags whatever the THP setting, on a kernel built with THP): two faults where
    # THP is on, not ~200 per arena.
    p = subprocess.run([str(_probe_launcher(tmp_path))], env={"CNI_RDMA_PROBE_CODE": ARENA_PROBE},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == repr([1, Path("/sys/kernel/mm/transparent_hugepage").is_dir(), 0])


@frozen_only
def test_the_launcher_turns_the_cyclic_gc_off_before_the_import_system_starts_and_skips_zipimport(tmp_path):
    # tools/launcher.c starts the interpreter in two phases and disables the GC between them: the collections the
    # interpreter's own start would run (import system, encodings, io) never come. A probe build of the launcher
    # (CNI_RDMA_PROBE, never shipped) reports the GC's state before any line of ours ran.
    probe = _probe_launcher(tmp_path)
    # ... and skips the zip path hook (no zip on sys.path): zipimport is not imported at start, yet importable
    code = ("import gc, sys\nhooks = [h.__name__ for h in sys.path_hooks]\nstarted = 'zipimport' in sys.modules\n"
            "import zipimport\nprint(gc.isenabled(), 'io' in sys.modules, 'encodings' in sys.modules, started, hooks, "
            "zipimport.zipimporter.__name__)\n")
    p = subprocess.run([str(probe)], env={"CNI_RDMA_PROBE_CODE": code}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False True True False ['path_hook_for_FileFinder'] zipimporter"
