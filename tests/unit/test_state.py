"""The state store: atomic, locked, private, never following symlinks, names from validated IDs only."""
import json
import multiprocessing
import os
import stat
import time

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


def _hold_lock(root, started, hold):
    s = Store("p", root)
    with s.lock("vf"):
        started.set()
        time.sleep(hold)


def test_lock_is_exclusive_across_processes(tmp_path):
    started = multiprocessing.Event()
    proc = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), started, 0.5))
    proc.start()
    started.wait(10)
    t0 = time.monotonic()
    with Store("p", str(tmp_path)).lock("vf"):
        waited = time.monotonic() - t0
    proc.join()
    assert waited >= 0.3
