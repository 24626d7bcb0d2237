"""cni_rdma/bundled.py (the frozen bundle's modules from one file) over a file tools/build_bundle.pack_modules
writes: imports keep their meaning (packages, relative and lazy imports, __file__, __path__, errors)."""
from __future__ import annotations

import json
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from tools.build_bundle import pack_modules, preload_order, preload_orders

ROOT = Path(__file__).resolve().parents[2]

SOURCES = {
    "top.py": "VALUE = 'top'\n",
    "pkg/__init__.py": "from .mod import twice\nDOC = __doc__\n",
    "pkg/mod.py": '"""mod doc"""\nfrom . import sub\n\ndef twice(x):\n    return 2 * x\n',
    "pkg/sub/__init__.py": "",
    "pkg/sub/lazy.py": "import top\nLAZY = top.VALUE + '-lazy'\n",
    "pkg/broken.py": "raise RuntimeError('broken at import')\n",
    # a registry module whose add() imports a module inside the function (as plugins/macvlan/macvlan.py does)
    "plug.py": "import pkg\nCOMMAND_IMPORTS = {'ADD': ('pkg.sub.lazy',), 'CHECK': ('pkg.sub.lazy',)}\n\n"
               "def add():\n    from pkg.sub import lazy\n    return lazy.LAZY\n",
}

# Runs in a fresh interpreter "frozen" on the tree as tools/launcher.c starts one (sys.path = the bundle,
# sys.frozen, sys._MEIPASS).
PROBE = """
import json, sys
sys.path[:] = [{internal!r}]
sys.frozen, sys._MEIPASS = True, {internal!r}
sys.path_importer_cache.clear()
sys.path.insert(0, {root!r})
from cni_rdma import bundled
sys.path.pop(0)
out = {{"installed": bundled.install(), "again": bundled.install()}}
import pkg
out["twice"] = pkg.twice(21)
out["lazy_before"] = "pkg.sub.lazy" in sys.modules
from pkg.sub import lazy
out["lazy"] = lazy.LAZY
out["file"] = pkg.mod.__file__
out["path"] = pkg.__path__
out["mod_doc"] = pkg.mod.__doc__
out["loader"] = type(pkg.__spec__.loader).__name__
out["finders"] = sum(isinstance(f, bundled.BundledModules) for f in sys.meta_path)
try:
    import pkg.nothing
except ModuleNotFoundError as e:
    out["missing"] = e.name
try:
    import pkg.broken
except RuntimeError as e:
    out["broken"] = [str(e), "pkg.broken" in sys.modules]
print(json.dumps(out))
"""


def _tree(tmp_path: Path) -> Path:
    internal = tmp_path / "_internal"
    for rel, text in SOURCES.items():
        src = tmp_path / "src" / rel
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(text)
        py_compile.compile(str(src), cfile=str(internal / Path(rel).with_suffix(".pyc")), doraise=True)
    return internal


def _probe(internal: Path) -> dict:
    p = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE.format(internal=str(internal), root=str(ROOT))],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_imports_from_the_modules_file_only(tmp_path):
    internal = _tree(tmp_path)
    assert pack_modules(internal, {}) == len(SOURCES)
    for pyc in internal.rglob("*.pyc"):
        pyc.unlink()  # only the modules file is left
    out = _probe(internal)
    assert out["installed"] is True and out["again"] is True and out["finders"] == 1
    assert out["twice"] == 42
    assert out["lazy_before"] is False and out["lazy"] == "top-lazy"  # lazy stays lazy
    assert out["file"] == f"{internal}/pkg/mod.pyc"  # what the loose .pyc gave
    assert out["path"] == [f"{internal}/pkg"]
    assert out["mod_doc"] == "mod doc"
    assert out["loader"] == "BundledModules"
    assert out["missing"] == "pkg.nothing"
    assert out["broken"] == ["broken at import", False]  # a failed import leaves nothing in sys.modules


# The bundle's modules file installed as tools/launcher.c has it, and every import that reaches the import
# machinery (the finder's find_spec) recorded in `calls`.
RECORDING = """
import json, sys
sys.path[:] = {path!r}  # the bundle's directory (tools/launcher.c puts lib-dynload first)
sys.frozen, sys._MEIPASS = True, {internal!r}
sys.path.insert(0, {root!r})
from cni_rdma import bundled
sys.path.pop(0)
bundled.install()
finder = sys.meta_path[0]
calls = []
find_spec = finder.find_spec
finder.find_spec = lambda name, *a: calls.append(name) or find_spec(name, *a)  # the import machinery's entry
"""
PRELOAD_PROBE = RECORDING + """
bundled.preload("pkg.sub.lazy")
preloaded = sorted(m for m in sys.modules if m == "top" or m.startswith("pkg"))
import pkg.sub.lazy
print(json.dumps({{"preloaded": preloaded, "machinery": calls, "lazy": pkg.sub.lazy.LAZY, "twice": pkg.twice(2),
                  "attrs": [pkg.__package__, pkg.__path__, pkg.sub.lazy.__package__, pkg.sub.lazy.__file__,
                            pkg.mod.__spec__.name, pkg.sub.lazy.__loader__ is finder],
                  "bound": pkg.sub.lazy is pkg.sub.__dict__["lazy"]}}))
"""


def _packed_probe(internal: Path, preloads: dict, probe: str, path: list[str] | None = None) -> dict:
    """Pack the tree with these preload entries, leave only the modules file, run the probe (sys.path = path, by
    default the tree alone); its JSON."""
    pack_modules(internal, preloads)
    for pyc in internal.rglob("*.pyc"):
        pyc.unlink()
    code = probe.format(internal=str(internal), root=str(ROOT), path=path or [str(internal)])
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_preload_runs_the_recorded_order_without_the_import_machinery(tmp_path):
    internal = _tree(tmp_path)
    order = preload_order(internal, "pkg.sub.lazy", first=())
    assert order == ("pkg.sub", "pkg.mod", "pkg", "top", "pkg.sub.lazy")  # dependencies first
    out = _packed_probe(internal, {"pkg.sub.lazy": order}, PRELOAD_PROBE)
    assert out["preloaded"] == ["pkg", "pkg.mod", "pkg.sub", "pkg.sub.lazy", "top"]
    # pkg.sub finished first, but a package runs before its modules: pkg (whose __init__ imports pkg.mod, which
    # imports pkg.sub) went through the import machinery; top and pkg.sub.lazy did not
    assert out["machinery"] == ["pkg", "pkg.mod", "pkg.sub"]
    assert out["lazy"] == "top-lazy" and out["twice"] == 4 and out["bound"] is True
    assert out["attrs"] == ["pkg", [f"{internal}/pkg"], "pkg.sub", f"{internal}/pkg/sub/lazy.pyc", "pkg.mod", True]


COMMAND_PROBE = RECORDING + """
bundled.preload("plug")  # registry.load
import plug
out = {{"eager": calls[:]}}
del calls[:]
bundled.preload("plug", "DEL")  # skel.call, before delete(): nothing recorded for it
out["del"] = ["pkg.sub.lazy" in sys.modules, "top" in sys.modules]
bundled.preload("plug", "ADD")  # skel.call, before add()
out["add"] = [plug.add(), calls]
print(json.dumps(out))
"""


def test_a_commands_lazy_imports_are_recorded_and_replayed_without_the_machinery(tmp_path):
    internal = _tree(tmp_path)
    entries = preload_orders(internal, "plug", first=())
    lazy = ("top", "pkg.sub.lazy")  # what importing COMMAND_IMPORTS runs after the module's own imports
    assert entries == {"plug": ("pkg.sub", "pkg.mod", "pkg", "plug"), ("plug", "ADD"): lazy, ("plug", "CHECK"): lazy}
    out = _packed_probe(internal, entries, COMMAND_PROBE)
    assert out["eager"] == ["pkg", "pkg.mod", "pkg.sub"]  # as in the test above: the package first
    assert out["del"] == [False, False]  # a command without an entry runs nothing more: lazy stays lazy
    assert out["add"] == ["top-lazy", []]  # add()'s import found its module run: no import machinery


SECOND_PART_PROBE = RECORDING + """
import top  # named by a preload entry: in the index's first part
out = {{"after_first": finder.rest is not None}}
out["builtin_new"] = "_locale" not in sys.modules
import _locale  # a built-in module: never in the file, nothing more read
out["after_builtin"] = finder.rest is not None
import pkg.sub.lazy  # only in the second part: read now, once
out["after_rest"] = [finder.rest is None, pkg.sub.lazy.LAZY, pkg.sub.lazy.__loader__ is finder]
print(json.dumps(out))
"""


def test_the_index_second_part_is_read_only_for_a_module_not_in_the_first(tmp_path):
    out = _packed_probe(_tree(tmp_path), {"top": ("top",)}, SECOND_PART_PROBE)
    assert out == {"after_first": True, "builtin_new": True, "after_builtin": True,
                   "after_rest": [True, "top-lazy", True]}


EXTENSION_PROBE = RECORDING + """
import _bisect
spec = _bisect.__spec__
print(json.dumps({{"module": [_bisect.__file__, _bisect.bisect_left([1, 2, 3], 2)],
                  "spec": [spec.name, spec.origin, spec.has_location, spec.submodule_search_locations,
                           type(spec.loader).__name__, spec.loader.path],
                  "found": calls, "path_finder_looked": sorted(sys.path_importer_cache)}}))
"""


def test_an_extension_module_of_the_bundle_is_found_without_the_path_finder(tmp_path):
    # Its file is in the index (python3.X/lib-dynload): the spec is the path finder's, but no directory was listed.
    import importlib.util
    import shutil

    internal = _tree(tmp_path)
    dynload = internal / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "lib-dynload"
    dynload.mkdir(parents=True)
    real = Path(importlib.util.find_spec("_bisect").origin)  # this interpreter's own extension module
    name = real.name
    shutil.copy(real, dynload / name)
    out = _packed_probe(internal, {}, EXTENSION_PROBE, [str(dynload), str(internal)])
    assert out["module"] == [str(dynload / name), 1]
    assert out["spec"] == ["_bisect", str(dynload / name), True, None, "ExtensionFileLoader", str(dynload / name)]
    assert out["found"] == ["_bisect"]
    assert str(dynload) not in out["path_finder_looked"]


def test_a_bundle_without_the_file_uses_the_loose_files(tmp_path):
    internal = _tree(tmp_path)
    out = _probe(internal)
    assert out["installed"] is False and out["twice"] == 42 and out["loader"] == "SourcelessFileLoader"


def test_a_file_of_another_interpreter_is_refused(tmp_path):
    from cni_rdma.bundled import FILE_NAME, MAGIC

    internal = _tree(tmp_path)
    pack_modules(internal, {})
    raw = bytearray((internal / FILE_NAME).read_bytes())
    raw[len(MAGIC)] ^= 0xFF  # the .pyc magic of another Python
    (internal / FILE_NAME).write_bytes(bytes(raw))
    p = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE.format(internal=str(internal), root=str(ROOT))],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "is not a modules file of this interpreter" in p.stderr


def test_not_frozen_installs_nothing():
    from cni_rdma import bundled

    assert not getattr(sys, "frozen", False)
    assert bundled.install() is False
    assert not any(isinstance(f, bundled.BundledModules) for f in sys.meta_path)


@pytest.mark.parametrize("data,value", [(b"", 0), (b"hello", 0), (b"hello", 7), (bytes(range(256)) * 9, 0xFFFFFFFF)])
def test_native_crc32_is_zlibs(data, value):
    import zlib

    from cni_rdma import _native

    assert _native.crc32(data, value) == zlib.crc32(data, value)
    assert _native.crc32(bytearray(data)) == zlib.crc32(data)


def test_native_flock_locks_like_fcntl(tmp_path):
    import fcntl
    import os

    from cni_rdma import _native

    path = tmp_path / "lock"
    path.write_text("")
    a, b = os.open(path, os.O_RDWR), os.open(path, os.O_RDWR)
    try:
        _native.flock(a, fcntl.LOCK_EX)
        with pytest.raises(BlockingIOError):
            fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fcntl sees our lock: the same flock(2)
        _native.flock(a, fcntl.LOCK_UN)
        fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            _native.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(a)
        os.close(b)
    with pytest.raises(OSError):
        _native.flock(a, fcntl.LOCK_EX)  # closed: EBADF


INET_TEXTS = ["10.1.2.3", "0.0.0.0", "255.255.255.255", "1.2.3", "1.2.3.256", "01.2.3.4", "", "::", "::1",
              "fe80::1", "::ffff:1.2.3.4", "1::2::3", "12345::", "gg::", " 1.2.3.4", "1.2.3.4\n"]


def _fallback_native():
    """cni_rdma.native as a plain wheel install has it: _native never built (its stdlib fallbacks). Loaded under
    another name, so the real module and the package's attributes stay as they are."""
    import importlib.util

    import cni_rdma

    spec = importlib.util.spec_from_file_location("cni_rdma._native_fallback", Path(cni_rdma.__file__).parent /
                                                  "native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("cni_rdma._native")
    sys.modules["cni_rdma._native"] = None  # type: ignore[assignment]  # `from ._native import` fails
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["cni_rdma._native"]
        else:
            sys.modules["cni_rdma._native"] = saved
    return module


@pytest.mark.parametrize("text", INET_TEXTS)
def test_native_inet_pton_is_the_socket_modules(text):
    import _socket

    from cni_rdma import native

    fallback = _fallback_native()
    assert fallback.inet_pton is not native.inet_pton
    for af in (_socket.AF_INET, _socket.AF_INET6):
        try:
            expected = _socket.inet_pton(af, text)
        except OSError:
            expected = None
        assert native.inet_pton(af, text) == expected
        assert fallback.inet_pton(af, text) == expected


def test_native_inet_pton_refuses_what_the_socket_module_refuses():
    from cni_rdma import native

    for impl in (native, _fallback_native()):
        with pytest.raises(ValueError):
            impl.inet_pton(2, "1.2.3.4\0")  # embedded NUL
        with pytest.raises(UnicodeEncodeError):
            impl.inet_pton(10, "\udc80::1")  # lone surrogate


@pytest.mark.parametrize("which", ["native", "fallback"])
def test_netlink_socket_asks_the_kernel(which):
    """nl_socket/nl_send/nl_recv against the kernel: RTM_GETLINK of lo answers lo, then the ack; with nothing
    queued the receive timeout is an EAGAIN (BlockingIOError), not a hang."""
    import os
    import time

    from cni_rdma import native
    from cni_rdma.netlink import core, rtmsg

    impl = native if which == "native" else _fallback_native()
    assert isinstance(impl.nl_recv, type(len)) == (which == "native")  # C builtin, or the Python fallback
    fd = impl.nl_socket(core.NETLINK_ROUTE, 200_000)
    try:
        assert os.get_inheritable(fd) is False  # close-on-exec
        body = rtmsg.IFINFOMSG.pack(0, 0, 1, 0, 0)  # index 1: lo
        impl.nl_send(fd, core.message(rtmsg.RTM_GETLINK, core.NLM_F_REQUEST | core.NLM_F_ACK, 7, body))
        replies = core.split_messages(impl.nl_recv(fd))
        kinds = [k for k, _flags, seq, _p in replies if seq == 7]
        assert rtmsg.RTM_NEWLINK in kinds
        if core.NLMSG_ERROR not in kinds:
            kinds += [k for k, *_ in core.split_messages(impl.nl_recv(fd))]
        assert core.NLMSG_ERROR in kinds
        start = time.monotonic()
        with pytest.raises(BlockingIOError):
            impl.nl_recv(fd)
        assert 0.15 < time.monotonic() - start < 5
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        impl.nl_recv(fd)  # closed: EBADF
