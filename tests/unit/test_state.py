"""The state store: atomic, locked, private, never following symlinks, names from validated IDs only."""
import json
import multiprocessing
import os
import stat

import pytest

from cni_rdma.errors import CniError
from cni_rdma.state import Store


def test_write_read_delete(tmp_path):
    s = Store("sriov", str(tmp_path))
    s.write("net-ctr1-net1", {"a": 1})
    assert s.read("net-ctr1-net1") == {"a": 1}
    assert s.names() == ["net-ctr1-net1"]
    s.delete("net-ctr1-net1")
    s.delete("net-ctr1-net1")  # idempotent
    assert s.read("net-ctr1-net1") is None


def test_permissions(tmp_path):
    s = Store("rdma", str(tmp_path))
    s.write("x", {})
    assert stat.S_IMODE(os.stat(s.dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(s.path("x")).st_mode) == 0o600


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "a\x00b", "x" * 300, "..", "a..b"])
def test_bad_names_rejected(tmp_path, name):
    with pytest.raises(CniError) as e:
        Store("p", str(tmp_path)).write(name, {})
    assert e.value.code == 7


def test_symlinked_record_not_followed(tmp_path):
    s = Store("p", str(tmp_path))
    s.write("x", {})
    target = tmp_path / "elsewhere"
    target.write_text(json.dumps({"planted": True}))
    os.unlink(s.path("x"))
    os.symlink(target, s.path("x"))
    with pytest.raises(CniError):
        s.read("x")
    s.write("x", {"real": 1})  # rename replaces the link itself, never writes through it
    assert json.loads(target.read_text()) == {"planted": True}
    assert s.read("x") == {"real": 1}


def test_symlinked_state_dir_refused(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "p")
    with pytest.raises(CniError):
        Store("p", str(tmp_path)).write("x", {})


def test_temp_files_are_not_records(tmp_path):
    s = Store("p", str(tmp_path))
    s.write("x", {})
    open(s.path("x") + ".123.tmp", "w").write("{partial")
    assert s.names() == ["x"]


def _hold_lock(root, started, release):
    s = Store("p", root)
    with s.lock("vf"):
        started.set()
        release.wait(30)


def test_lock_is_exclusive_across_processes(tmp_path):
    """Handshakes, no clock: while another process holds the lock a non-blocking flock fails, and our
    lock() returns only after that process let go."""
    import fcntl
    import threading

    started, release = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), started, release))
    proc.start()
    try:
        assert started.wait(30)
        fd = os.open(os.path.join(str(tmp_path), "p", "vf.lock"), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        order: list[str] = []

        def take() -> None:
            with Store("p", str(tmp_path)).lock("vf"):
                order.append("ours")

        t = threading.Thread(target=take)
        t.start()
        order.append("released")  # before the holder may let go: "ours" can only come after it
        release.set()
        t.join(30)
        assert order == ["released", "ours"]
    finally:
        release.set()
        proc.join(30)


def test_flock_and_crc32_come_from_native_with_fcntl_zlib_semantics():
    # The hot path locks and hashes through cni_rdma._native (no fcntl/zlib dlopen); its constants are fcntl's.
    import fcntl
    import zlib

    from cni_rdma import _native, native, state

    assert (state.flock, native.flock, native.crc32) == (_native.flock, _native.flock, _native.crc32)
    assert (native.LOCK_EX, native.LOCK_NB) == (fcntl.LOCK_EX, fcntl.LOCK_NB)
    assert native.crc32(b"net1\tctr\t") == zlib.crc32(b"net1\tctr\t")


def test_without_native_the_store_falls_back_to_fcntl_and_zlib(tmp_path):
    # A plain wheel install never built _native: the same locks and names through fcntl and zlib.
    import subprocess
    import sys

    from tests.topology import ROOT

    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
class NoNative:
    def find_spec(self, name, path=None, target=None):
        if name == "cni_rdma._native":
            raise ImportError("not built")
sys.meta_path.insert(0, NoNative())
import fcntl, zlib
from cni_rdma import native, state
assert "cni_rdma._native" not in sys.modules
assert (state.flock, native.crc32) == (fcntl.flock, zlib.crc32)
with state.Store("x", {str(tmp_path)!r}).lock():
    print("locked")
"""
    p = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert (p.returncode, p.stdout, p.stderr) == (0, "locked\n", "")
