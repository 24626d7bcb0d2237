"""cni_rdma.netns against real namespaces: setns happens in a helper thread only; nothing is created."""
import os
import threading

import pytest

from cni_rdma.errors import CniError
from cni_rdma.netns import NetnsNotFound, in_netns


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
    with pytest.raises(ZeroDivisionError):
        in_netns(pod.path, lambda: 1 / 0)
    assert not any(t.name == "netns" for t in threading.enumerate())


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
