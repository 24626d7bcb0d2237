"""The VM tier itself: the guest kernel has what the plugins need, and the fixtures work.

Few and targeted (Python is ~17x slower in the guest): ipvlan and vlan on a dummy, VF config on a
netdevsim PF, rxe devices and their netns moves, and the repo's dev launchers.
"""
from __future__ import annotations

import errno
import os
import subprocess

import pytest

from tests import topology
from tests.vm import guest


def test_ipvlan_modes_on_dummy_master(dummy_master):
    """One child per mode, each on its own dummy master: the mode belongs to the master's ipvlan port,
    shared by all its children (the last child added sets it for all of them)."""
    ns = dummy_master.name
    guest.modprobe("ipvlan")
    for mode in ("l2", "l3", "l3s"):
        master = dummy_master.master if mode == "l2" else guest.dummy_add(f"dm{mode}", netns=ns)
        guest.ip("link", "add", f"iv{mode}", "link", master, "type", "ipvlan", "mode", mode, netns=ns)
    for mode in ("l2", "l3", "l3s"):
        info = guest.link(f"iv{mode}", ns)["linkinfo"]
        assert info["info_kind"] == "ipvlan"
        assert info["info_data"]["mode"] == mode


def test_ipvlan_mode_is_per_master(dummy_master):
    ns = dummy_master.name
    guest.modprobe("ipvlan")
    guest.ip("link", "add", "iva", "link", dummy_master.master, "type", "ipvlan", "mode", "l2", netns=ns)
    guest.ip("link", "add", "ivb", "link", dummy_master.master, "type", "ipvlan", "mode", "l3", netns=ns)
    assert guest.link("iva", ns)["linkinfo"]["info_data"]["mode"] == "l3"


def test_vlan_on_dummy_master(dummy_master):
    guest.modprobe("8021q")
    guest.ip("link", "add", "link", dummy_master.master, "name", "vl5", "type", "vlan", "id", "5",
             netns=dummy_master.name)
    info = guest.link("vl5", dummy_master.name)["linkinfo"]
    assert info["info_kind"] == "vlan"
    assert info["info_data"]["id"] == 5
    assert info["info_data"]["protocol"] == "802.1Q"


def test_netdevsim_vf_config(netdevsim_pf):
    pf = netdevsim_pf(numvfs=4)
    assert pf.numvfs == 4
    assert os.path.realpath(f"/sys/class/net/{pf.ifname}/device") == os.path.realpath(pf.sysfs)
    assert pf.ifindex == topology.ip_json("link", "show", "dev", pf.ifname)[0]["ifindex"]
    pf.set_vf(0, "mac", "02:00:00:00:00:01", "vlan", "10", "qos", "3")
    vfs = pf.vfs()
    assert [v["vf"] for v in vfs] == [0, 1, 2, 3]
    vf0 = pf.vf(0)
    assert vf0["address"] == "02:00:00:00:00:01"
    assert vf0["vlan_list"] == [{"vlan": 10, "qos": 3}]
    assert pf.vf(1)["address"] == "00:00:00:00:00:00"


def test_netdevsim_pf_in_a_node_netns(netdevsim_pf, make_pod):
    node = make_pod()  # any named netns will do
    pf = netdevsim_pf(numvfs=2, netns=node.name)
    assert guest.link(pf.ifname) is None
    pf.set_vf(1, "trust", "on")
    assert pf.vf(1)["trust"] is True


def test_rxe_device_on_dummy(rxe_device):
    assert guest.rxe_variant() == "patched"
    assert rxe_device.name in guest.rdma_dev_names()
    link = next(link for link in guest.rdma_links() if link["ifname"] == rxe_device.name)
    assert link["netdev"] == rxe_device.netdev
    assert guest.rdma_netns_mode() == "exclusive"
    assert guest.rdma_system()["copy-on-fork"] == "on"


def test_patched_rxe_moves_to_pod_netns(rxe_device, pod):
    guest.rdma("dev", "set", rxe_device.name, "netns", pod.name)
    assert rxe_device.name in guest.rdma_dev_names(pod.name)
    assert rxe_device.name not in guest.rdma_dev_names()  # exclusive: one netns at a time
    assert rxe_device.netns_of([None, pod.name]) == pod.name


def test_stock_rxe_refuses_netns_move(rdma_exclusive, make_rxe, pod):
    dev = make_rxe(variant="stock")
    assert guest.rxe_variant() == "stock"
    p = subprocess.run(["rdma", "dev", "set", dev.name, "netns", pod.name], capture_output=True, text=True)
    assert p.returncode != 0
    assert os.strerror(errno.EOPNOTSUPP) in p.stderr
    assert dev.name in guest.rdma_dev_names()


def test_dev_launcher_runs_in_guest():
    """build/dev-bin/* have the venv's interpreter as absolute shebang: it must run here too."""
    launcher = topology.bin_dir() / "cni-rdma"
    if not launcher.exists():
        pytest.fail(f"{launcher} missing: run `make dev` on the host first")
    r = topology.run_plugin("macvlan", "VERSION", {"cniVersion": "1.0.0"})
    assert r.code == 0, r.stderr
    assert "1.0.0" in r.json["supportedVersions"]


def test_siw_device_built_for_the_vm(rdma_exclusive):
    guest.modprobe("siw")
    netdev = guest.dummy_add()
    name = topology.unique("siw")[:12]
    try:
        guest.rdma("link", "add", name, "type", "siw", "netdev", netdev)
        assert name in guest.rdma_dev_names()
    finally:
        guest.link_del(netdev)  # unregisters the siw device too
    guest.wait_for(lambda: name not in guest.rdma_dev_names(), f"{name} to go away")
