"""cni_rdma.sysfs PCI/SR-IOV lookups over a fake tree shaped like /sys (tests/fakepci.py)."""
from __future__ import annotations

import pytest

from cni_rdma.sysfs import Sysfs, USERSPACE_DRIVERS
from tests.fakepci import FakePci


@pytest.fixture
def tree():
    pci = FakePci(domain=0x0000)
    yield pci
    pci.cleanup()


def test_vf_topology(tree):
    pf = tree.add_pf(tree.addr(0xaf, 0, 0), "ens1f0", driver="mlx5_core")
    vf0 = tree.add_vf(pf, 0, tree.addr(0xaf, 0, 2), "ens1f0v0", driver="mlx5_core")
    vf1 = tree.add_vf(pf, 1, tree.addr(0xaf, 0, 3), None, driver="vfio-pci")
    fs = Sysfs(str(tree.root))
    assert fs.physfn(vf0) == pf and fs.physfn(pf) is None
    assert fs.virtfns(pf) == {0: vf0, 1: vf1}
    assert fs.vf_id(pf, vf1) == 1 and fs.vf_id(pf, pf) is None
    assert fs.netdevs(vf0) == ("ens1f0v0",) and fs.netdevs(vf1) == ()
    assert fs.driver(vf0) == "mlx5_core" and fs.driver(vf1) == "vfio-pci"
    assert fs.numvfs(pf) == 2 and fs.totalvfs(pf) == 8
    assert fs.pci_of_netdev("ens1f0v0") == vf0 and fs.pci_of_netdev("nope") is None
    info = fs.vf(vf0)
    assert (info.pf_pci, info.vf_id, info.pf_netdevs, info.userspace) == (pf, 0, ("ens1f0",), False)
    assert fs.vf(vf1).userspace and "vfio-pci" in USERSPACE_DRIVERS
    assert fs.vf(pf) is None


def test_vf_index_from_offset_and_stride_without_scanning_the_pf(tree, monkeypatch):
    """With sriov_offset/sriov_stride the VF index is computed (one readlink confirms it): the PF's
    virtfn links are not listed, whatever its VF count. Wrong attributes fall back to the scan."""
    pf = tree.add_pf(tree.addr(0xaf, 0, 0), "ens1f0", offset=2, stride=2, totalvfs=64)
    vfs = {n: tree.add_vf(pf, n, tree.addr(0xaf, (2 + 2 * n) >> 3, (2 + 2 * n) & 7), None) for n in range(40)}
    bad = tree.add_pf(tree.addr(0xb0, 0, 0), "ens2f0", offset=1, stride=1)
    bad_vf = tree.add_vf(bad, 0, tree.addr(0xb0, 0, 4), None)  # not where offset/stride put VF 0
    fs = Sysfs(str(tree.root))
    assert fs.vf_id(bad, bad_vf) == 0 and fs.vf(bad_vf).vf_id == 0

    def no_scan(self, pf):
        raise AssertionError("virtfns scanned")

    monkeypatch.setattr(Sysfs, "virtfns", no_scan)
    assert [fs.vf_id(pf, vfs[n]) for n in (0, 1, 17, 39)] == [0, 1, 17, 39]
    assert fs.vf(vfs[39]).vf_id == 39
    with pytest.raises(AssertionError):  # the confirming readlink disagrees: only then the scan
        fs.vf_id(bad, bad_vf)


def test_sysfs_read_is_bounded_and_stripped(tree, tmp_path):
    fs = Sysfs(str(tree.root))
    (tmp_path / "attr").write_text(" 0x10\n")
    (tmp_path / "big").write_bytes(b"7" * (1 << 17))
    assert fs.read(str(tmp_path / "attr")) == "0x10" and fs.read_int(str(tmp_path / "attr")) == 16
    assert len(fs.read(str(tmp_path / "big"))) == 1 << 16
    assert fs.read(str(tmp_path / "missing")) is None and fs.read("bad\0path") is None


def test_missing_things_are_none_or_empty(tree):
    fs = Sysfs(str(tree.root))
    assert not fs.pci_exists("0000:01:00.0")
    assert fs.driver("0000:01:00.0") == "" and fs.netdevs("0000:01:00.0") == ()
    assert fs.virtfns("0000:01:00.0") == {} and fs.numvfs("0000:01:00.0") is None
    plain = tree.add_plain(tree.addr(1, 0, 0), "eno1", driver=None)
    assert fs.pci_exists(plain) and fs.driver(plain) == "" and fs.vf(plain) is None


def test_netdev_follows_the_device(tree):
    pf = tree.add_pf(tree.addr(0x3b, 0, 0), "pf0")
    vf = tree.add_vf(pf, 0, tree.addr(0x3b, 0, 2), "vf0")
    fs = Sysfs(str(tree.root))
    tree.set_netdev(vf, None)  # moved into a pod netns: gone from the host's view
    assert fs.netdevs(vf) == () and fs.pci_of_netdev("vf0") is None
    tree.set_netdev(vf, "dev5")  # back after the pod netns died, under a kernel-chosen name
    assert fs.netdevs(vf) == ("dev5",) and fs.pci_of_netdev("dev5") == vf


def test_root_from_env():
    assert Sysfs.from_env({}).root == "/sys"
    assert Sysfs.from_env({"CNI_RDMA_SYSFS_ROOT": "/tmp/x"}).root == "/tmp/x"
