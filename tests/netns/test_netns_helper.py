"""cni_rdma.netns against real namespaces: setns happens in a helper thread only; nothing is created."""
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from cni_rdma.errors import CniError
from cni_rdma.netns import NetnsNotFound, in_netns
from tests.topology import ROOT


def own_netns():
    return os.readlink(f"/proc/self/task/{threading.get_native_id()}/ns/net")


def test_runs_inside_and_main_thread_untouched(pod):
    before = own_netns()
    inside = in_netns(pod.path, own_netns)
    assert inside == f"net:[{os.stat(pod.path).st_ino}]" != before
    assert own_netns() == before
    # The link list inside is the pod's: only lo.
    assert in_netns(pod.path, socket_if_names) == ["lo"]


def socket_if_names():
    import socket
    return sorted(n for _, n in socket.if_nameindex())


def test_exception_propagates_and_thread_is_gone(pod):
    before = set(os.listdir("/proc/self/task"))
    with pytest.raises(ZeroDivisionError):
        in_netns(pod.path, lambda: 1 / 0)
    # The helper thread released its caller as its last act; give the OS thread a moment to be reaped.
    deadline = time.monotonic() + 10
    while set(os.listdir("/proc/self/task")) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(os.listdir("/proc/self/task")) - before


ENTER_PROBE = """
import json, os, sys
sys.path.insert(0, {root!r})
from cni_rdma.netns import in_netns
inside = in_netns({path!r}, lambda: os.readlink("/proc/thread-self/ns/net"))
print(json.dumps([inside, sorted(m for m in ("cni_rdma._native", "ctypes", "threading") if m in sys.modules)]))
"""


def test_setns_goes_through_our_c_module_not_ctypes_or_threading(pod):
    # cni_rdma/_native.c (built by `make dev` / `make build`): ctypes and threading cost ~5 ms of start-up
    code = ENTER_PROBE.format(root=str(ROOT), path=pod.path)
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    inside, loaded = json.loads(p.stdout)
    assert inside == f"net:[{os.stat(pod.path).st_ino}]"
    assert loaded == ["cni_rdma._native"]


def test_missing_netns_is_distinct_and_not_created(tmp_path):
    path = str(tmp_path / "no-such-ns")
    with pytest.raises(NetnsNotFound):
        in_netns(path, lambda: None)
    assert not os.path.exists(path)
    with pytest.raises(NetnsNotFound):
        in_netns("", lambda: None)


def test_plain_file_is_not_a_netns(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(CniError) as e:
        in_netns(str(f), lambda: None)
    assert "not a network namespace" in e.value.msg


def test_proc_pid_path_works():
    assert in_netns(f"/proc/{os.getpid()}/ns/net", own_netns) == own_netns()
