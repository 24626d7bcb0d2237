"""Findings 7 and 8: what a killed call leaves is swept — stale state temp files, temp-named child links."""
from __future__ import annotations

import os
import subprocess

from cni_rdma import state
from tests import topology
from tests.security.conftest import link_names, macvlan


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid  # reaped: nothing runs under it (reuse within this test is vanishingly unlikely)


def test_stale_state_tmp_files_are_swept_and_never_block_a_write(tmp_path):
    store = state.Store("sec", str(tmp_path))
    store.write("rec", {"a": 1})
    d = tmp_path / "sec"
    dead = _dead_pid()
    stale = [d / f"rec.{dead}.tmp", d / f"rec.{dead}.0badc0de.tmp"]
    reused = d / f"rec.{os.getpid()}.tmp"  # a PID-reused (or planted) name of the writer's own PID
    live = d / "rec.1.0badc0de.tmp"  # PID 1 is alive: a concurrent writer's file stays
    for p in (*stale, reused, live):
        p.write_text("{}")
    old = d / f"rec.{os.getpid()}.00000000.tmp"
    old.write_text("{}")
    os.utime(old, (1, 1))  # older than TMP_MAX_AGE: its PID was reused
    store.write("rec", {"a": 2})  # used to fail with "File exists"
    assert store.read("rec") == {"a": 2}
    left = sorted(p.name for p in d.iterdir())
    assert all(not p.exists() for p in (*stale, old)), left
    assert live.exists() and store.names() == ["rec"]


def _temp_link(node, pod, name: str, kind: str = "macvlan") -> None:
    # What an ADD killed between create and rename leaves: a child of the master, temp-named, in the pod.
    if kind == "macvlan":
        topology.sh("ip", "-n", node.name, "link", "add", name, "link", "eth0", "type", "macvlan")
        topology.sh("ip", "-n", node.name, "link", "set", name, "netns", pod.path)
    else:
        topology.sh("ip", "-n", pod.name, "link", "add", name, "type", "veth", "peer", "name", name + "p")


def test_del_sweeps_orphaned_temp_links_of_its_own_kind(node, pod):
    dead = _dead_pid()
    orphan_new = f"crn{dead:06x}beef"
    orphan_old = "crn0badc0de"  # the earlier naming: random only
    live = f"crn{1:06x}beef"  # creator alive (PID 1): an ADD in flight keeps its link
    other_kind = f"crn{dead:06x}cafe"  # a veth with our naming scheme: not ours to remove
    for name in (orphan_new, orphan_old, live):
        _temp_link(node, pod, name)
    _temp_link(node, pod, other_kind, kind="veth")
    r = macvlan("DEL", node, pod.path)  # no net1 at all: DEL is still the one that cleans up
    assert r.code == 0, r.stdout + r.stderr
    names = link_names(pod.name)
    assert orphan_new not in names and orphan_old not in names
    assert live in names and other_kind in names


def test_add_then_del_leaves_the_pod_as_it_was(node, pod):
    before = link_names(pod.name)
    assert macvlan("ADD", node, pod.path).code == 0
    assert not [n for n in link_names(pod.name) if n.startswith("crn")]
    assert macvlan("DEL", node, pod.path).code == 0
    assert link_names(pod.name) == before


def test_add_killed_between_create_and_rename_is_swept_by_del(node, pod):
    # A real kill -9 in the window (fault point "made"): the temp-named link stays in the pod, DEL removes it.
    before = link_names(pod.name)
    r = macvlan("ADD", node, pod.path, extra_env={"CNI_RDMA_TEST_FAULT": "made!kill"})
    assert r.code == -9
    left = [n for n in link_names(pod.name) if n not in before]
    assert len(left) == 1 and left[0].startswith("crn"), left
    assert macvlan("DEL", node, pod.path).code == 0
    assert link_names(pod.name) == before
    # A plain failure at the same point removes its own link at once.
    r = macvlan("ADD", node, pod.path, extra_env={"CNI_RDMA_TEST_FAULT": "made"})
    assert r.code == 1 and link_names(pod.name) == before
