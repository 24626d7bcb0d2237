"""Findings 5 and 6: IDs are matched whole (fullmatch) and CNI_IFNAME is checked in bytes, as Go does."""
from __future__ import annotations

import os

import pytest

from tests.security.conftest import cni_error, host_local, host_local_conf, link_names, macvlan


@pytest.mark.parametrize("cid", ["abc\n", "abc\r\n", "abc\nnet1", "\nabc"])
def test_container_id_with_a_newline_is_code_4_and_reserves_nothing(tmp_path, cid):
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data"), cid=cid))
    assert (err["code"], err["msg"]) == (4, "invalid characters in containerID")
    net = tmp_path / "data" / "net1"
    assert not net.exists() or [p.name for p in net.iterdir()] in ([], ["lock"])


@pytest.mark.parametrize("name", ["net1\n", "net1\r\n", "net1\nx"])
def test_network_name_with_a_newline_is_refused(tmp_path, name):
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data", name=name)))
    assert (err["code"], err["msg"]) == (7, "invalid characters found in network name")
    assert not (tmp_path / "data").exists()


def test_ifname_length_counts_bytes_like_go(tmp_path):
    # 8 × "é" is 8 characters but 16 bytes: Go's len() and the kernel's IFNAMSIZ count bytes.
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data"), ifname="é" * 8))
    assert (err["code"], err["msg"]) == (4, "interface name is too long")
    assert host_local("ADD", host_local_conf(tmp_path / "data"), ifname="é" * 7).code == 0


def test_non_utf8_ifname_add_leaves_nothing_and_del_finishes(node, pod):
    bad = os.fsdecode(b"\xff")  # how Python holds the environment's undecodable bytes
    before = link_names(pod.name)
    err = cni_error(macvlan("ADD", node, pod.path, ifname=bad, timeout=30))
    assert err["code"] == 4 and "UTF-8" in err["msg"]
    assert link_names(pod.name) == before  # no temp-named link left behind
    for _ in range(2):
        r = macvlan("DEL", node, pod.path, ifname=bad, timeout=30)
        assert r.code == 0 or cni_error(r)["code"] == 4  # a proper answer, every time, never 999
