"""VM tier: what ipvlan and rdma import on a real ADD/CHECK/DEL (this host's kernel has neither ipvlan nor rxe).

The same budget as tests/netns/test_hot_imports.py (its NEVER list, its trace) for the two plugins the host
tier cannot run: each command a real process under `python -I -S -X importtime`, on Debian's kernel.
"""
from __future__ import annotations

import json
import types

import pytest

from tests.netns.macvlan_helpers import host_local
from tests.netns.test_hot_imports import _check, traced
from tests.unit.test_startup import ADD_ONLY, VF_ONLY
from tests.vm import guest
from tests.vm.test_rdma_vm import rdma_conf, vf_with_rdma

HOST = types.SimpleNamespace(path="/proc/1/ns/net")  # rdma runs in the host netns, as kubelet runs it


def test_ipvlan_host_local_add_check_del(dummy_master, pod, tmp_path):
    guest.modprobe("ipvlan")
    conf = {"cniVersion": "1.1.0", "name": "hotimports-iv", "type": "ipvlan", "master": "dummy0", "mode": "l2",
            "ipam": host_local(tmp_path, routes=[])}
    names, out = traced("ipvlan", "ADD", conf, dummy_master, pod.path)
    _check(names, "ipvlan ADD")
    assert names & VF_ONLY == set(), "ipvlan ADD imports the VF requests"
    conf["prevResult"] = json.loads(out)
    _check(traced("ipvlan", "CHECK", conf, dummy_master, pod.path)[0], "ipvlan CHECK")
    names = traced("ipvlan", "DEL", conf, dummy_master, pod.path)[0]
    _check(names, "ipvlan DEL")
    assert names & (ADD_ONLY | VF_ONLY) == set(), "a DEL imports what only ADD and CHECK (or sriov) run"
    assert guest.link("net1", pod.name) is None


@pytest.fixture
def fake_vf(rxe_device):
    pci, vf = vf_with_rdma(rxe_device.name)
    yield pci, vf
    pci.cleanup()


def test_rdma_add_check_del(rxe_device, fake_vf, pod, tmp_path):
    pci, vf = fake_vf
    conf = rdma_conf(tmp_path, pod.path, vf)
    names, out = traced("rdma", "ADD", conf, HOST, pod.path, env=pci.env)
    _check(names, "rdma ADD")
    assert guest.rdma_dev_names(pod.name) == [rxe_device.name]
    _check(traced("rdma", "CHECK", conf, HOST, pod.path, env=pci.env)[0], "rdma CHECK")
    _check(traced("rdma", "DEL", conf, HOST, pod.path, env=pci.env)[0], "rdma DEL")
    assert guest.rdma_dev_names(pod.name) == []
