"""`cni-rdma doctor` and `devices` on this machine's real kernel (no RDMA here: those checks must fail), with
the node paths it inspects pointed at test directories so each check is seen to pass and to fire.
SR-IOV topology comes from tests.fakepci (no SR-IOV hardware here); the VM tier covers RDMA, netdevsim, rxe."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from cni_rdma.registry import PLUGINS
from tests.cli.helpers import cli, cli_path
from tests.fakepci import FakePci


@pytest.fixture
def node(tmp_path):
    """Node dirs for doctor: a bin dir with our plugins linked in, a conf dir with Multus, IPAM dirs."""
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    for t in PLUGINS:
        (bin_dir / t).symlink_to(os.path.realpath(cli_path()))
    (conf_dir / "00-multus.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "multus-cni-network",
                                                         "type": "multus", "delegates": []}))
    return tmp_path


def doctor(node: Path, *extra: str, env=None):
    r = cli("doctor", "--json", "--cni-bin-dir", str(node / "bin"), "--cni-conf-dir", str(node / "net.d"),
            "--ipam-dir", str(node / "ipam"), "--state-dir", str(node / "state"), *extra, env=env)
    assert r.stderr == "" and r.code in (0, 1, 3), r
    report = r.json
    report["by"] = {c["check"]: c for c in report["checks"]}
    report["code"] = r.code
    return report


def test_no_rdma_on_this_kernel_fails_with_fixes(node):
    rep = doctor(node)
    assert rep["code"] == 1 and rep["summary"]["fail"] >= 3
    by = rep["by"]
    assert by["modules"]["status"] == "fail" and "modprobe -a ib_core" in by["modules"]["fix"]
    assert by["netns-mode"]["status"] == "fail" and by["netns-mode"]["fix"] == "modprobe ib_core"
    assert by["rdma-devices"]["status"] == "fail"
    assert by["dev-infiniband"]["status"] == "warn"  # no RDMA device, so not yet a failure
    for name in ("cni-bin", "cni-conf", "ipam-dirs", "cluster-ipam"):
        assert by[name]["status"] == "ok", by[name]
    assert rep["inventory"]["rdma"]["error"]


def test_text_output_and_exit_code(node):
    r = cli("doctor", "--cni-bin-dir", str(node / "bin"), "--cni-conf-dir", str(node / "net.d"))
    assert r.code == 1, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("FAIL  modules ") and lines[1].strip().startswith("fix: modprobe")
    assert any(line.startswith("ok    cni-bin ") for line in lines)
    assert lines[-1].endswith("(mode: not decided)")


def test_cni_bin_shadowed_and_missing(node):
    (node / "bin" / "macvlan").unlink()
    (node / "bin" / "macvlan").write_bytes(b"\x7fELF go plugin")
    c = doctor(node)["by"]["cni-bin"]
    assert c["status"] == "warn" and "macvlan" in c["summary"] and c["fix"].endswith("--force")
    (node / "bin" / "rdma").unlink()
    c = doctor(node)["by"]["cni-bin"]
    assert c["status"] == "fail" and "rdma" in c["summary"] and c["fix"].endswith("--force")
    c = doctor(node, "--cni-bin-dir", str(node / "nowhere"))["by"]["cni-bin"]
    assert c["status"] == "fail" and "does not exist" in c["summary"]


def test_cni_conf_multus_bad_files_and_symlinks(node, tmp_path):
    (node / "net.d" / "00-multus.conf").unlink()
    (node / "net.d" / "10-roce.conf").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "roce", "type": "macvlan", "master": "eth0",
         "ipam": {"type": "host-local", "subnet": "10.1.0.0/24", "dataDir": str(node / "hl")}}))
    rep = doctor(node)
    c = rep["by"]["cni-conf"]
    assert c["status"] == "warn" and "no Multus" in c["summary"] and "roce (macvlan)" in c["summary"]
    assert rep["mode"] == "shared"  # decided from the macvlan network
    assert str(node / "hl") in rep["by"]["ipam-dirs"]["summary"]
    (node / "net.d" / "20-broken.conflist").write_text("{nope")
    secret = tmp_path / "elsewhere.conf"
    secret.write_text("{}")
    (node / "net.d" / "30-link.conf").symlink_to(secret)
    c = doctor(node)["by"]["cni-conf"]
    assert c["status"] == "warn"
    assert "20-broken.conflist: invalid JSON" in c["summary"] and "30-link.conf" in c["summary"]
    c = doctor(node, "--cni-conf-dir", str(node / "missing"))["by"]["cni-conf"]
    assert c["status"] == "fail"


def test_ipam_dir_not_writable(node):
    (node / "file").write_text("")
    c = doctor(node, "--ipam-dir", str(node / "file" / "networks"))["by"]["ipam-dirs"]
    assert c["status"] == "fail" and "mkdir -p" in c["fix"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def etcd(tmp_path):
    client, peer = _free_port(), _free_port()
    url = f"http://127.0.0.1:{client}"
    p = subprocess.Popen(["etcd", "--data-dir", str(tmp_path / "etcd"), "--listen-client-urls", url,
                          "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                          "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                          "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", client), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        p.terminate()
        p.wait(timeout=30)


def _cluster_net(node: Path, endpoints: list[str], via_file: bool = False) -> None:
    etcd = {"endpoints": endpoints}
    if via_file:  # cluster-ipam's node-local etcd config file
        (node / "etcd.json").write_text(json.dumps(etcd))
        etcd = {"configFile": str(node / "etcd.json")}
    (node / "net.d" / "20-excl.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "excl", "plugins": [
            {"type": "sriov", "ipam": {"type": "cluster-ipam", "ranges": [[{"subnet": "10.7.0.0/16"}]],
                                       "etcd": etcd}}, {"type": "rdma"}]}))


def test_cluster_ipam_etcd_reachable_and_not(node, etcd):
    _cluster_net(node, [etcd])
    deadline = time.monotonic() + 30
    while True:  # etcd answers /health once it has elected itself
        rep = doctor(node)
        if rep["by"]["cluster-ipam"]["status"] == "ok" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert rep["by"]["cluster-ipam"]["status"] == "ok", rep["by"]["cluster-ipam"]
    assert rep["mode"] == "exclusive"
    _cluster_net(node, [etcd], via_file=True)
    assert doctor(node)["by"]["cluster-ipam"]["status"] == "ok"
    (node / "etcd.json").unlink()
    c = doctor(node)["by"]["cluster-ipam"]
    assert c["status"] == "fail" and "etcd.json" in c["summary"]
    _cluster_net(node, [f"http://127.0.0.1:{_free_port()}"])
    c = doctor(node)["by"]["cluster-ipam"]
    assert c["status"] == "fail" and "Connection refused" in c["summary"] and "etcdctl" in c["fix"]


@pytest.fixture
def fakepci():
    pci = FakePci()
    yield pci
    pci.cleanup()


def test_sriov_inventory_and_its_failures(node, fakepci):
    pf = fakepci.add_pf(fakepci.addr(0x3b, 0, 0), "ens1f0", driver="mlx5_core", totalvfs=4)
    empty = fakepci.add_pf(fakepci.addr(0x3b, 0, 1), "ens1f1", driver="mlx5_core", totalvfs=4)
    vf0 = fakepci.add_vf(pf, 0, fakepci.addr(0x3b, 0, 2), "ens1f0v0", driver="mlx5_core")
    vf1 = fakepci.add_vf(pf, 1, fakepci.addr(0x3b, 0, 3), None, driver="vfio-pci")
    vf2 = fakepci.add_vf(pf, 2, fakepci.addr(0x3b, 0, 4), None, driver=None)
    (fakepci.dev_dir(vf0) / "infiniband" / "mlx5_2").mkdir(parents=True)
    root = ["--sysfs-root", str(fakepci.root)]
    rep = doctor(node, *root, "--mode", "shared")
    assert rep["backend"] == "sysfs"  # libudev reads only the real /sys
    pfs = {p["device"]: p for p in rep["inventory"]["sriov"]}
    assert set(pfs) == {pf, empty}
    assert (pfs[pf]["numvfs"], pfs[pf]["totalvfs"], pfs[pf]["netdevs"]) == (3, 4, ["ens1f0"])
    vfs = {v["vf"]: v for v in pfs[pf]["vfs"]}
    assert (vfs[0]["mode"], vfs[0]["netdevs"], vfs[0]["rdma"]) == ("netdev", ["ens1f0v0"], ["mlx5_2"])
    assert (vfs[1]["mode"], vfs[1]["driver"]) == ("dpdk", "vfio-pci")
    assert vfs[2]["mode"] == "unbound" and vfs[2]["pci"] == vf2
    c = rep["by"]["sriov"]
    assert c["status"] == "warn"  # shared mode: SR-IOV problems are not fatal
    assert "ens1f1 has no VFs" in c["summary"] and f"VF 2 ({vf2})" in c["summary"]
    assert "echo 4 > /sys/class/net/ens1f1/device/sriov_numvfs" in c["fix"]
    assert f"echo {vf2} > /sys/bus/pci/drivers_probe" in c["fix"]
    # exclusive: the same problems fail, and a VF netdev without RDMA device is one more
    (fakepci.dev_dir(vf0) / "infiniband" / "mlx5_2").rmdir()
    c = doctor(node, *root, "--mode", "exclusive")["by"]["sriov"]
    assert c["status"] == "fail" and f"VF 0 ({vf0}) of ens1f0 has no RDMA device" in c["summary"]
    assert "modprobe mlx5_ib" in c["fix"]
    assert vf1  # DPDK VFs are fine in both modes
    assert "VF 1" not in c["summary"]


def test_backends_agree_on_this_machine():
    udev, sysfs = cli("devices", "--json", "--backend", "udev"), cli("devices", "--json", "--backend", "sysfs")
    assert udev.code == 0 and sysfs.code == 0, (udev, sysfs)
    u, s = udev.json, sysfs.json
    assert (u["backend"], s["backend"]) == ("udev", "sysfs")
    strip = ("vendor", "model")
    assert [{k: v for k, v in f.items() if k not in strip} for f in u["pci"]] == \
           [{k: v for k, v in f.items() if k not in strip} for f in s["pci"]]
    assert u["pci"], "this machine has a network PCI function (the VM's uplink)"
    for f in u["pci"] + s["pci"]:  # udev names from hwdb.bin, sysfs names from pci.ids
        assert f["vendor"] and f["model"], f


def _without_libudev(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI where libudev cannot load (a container without udev): /dev/null over the library."""
    lib = os.path.realpath("/usr/lib/x86_64-linux-gnu/libudev.so.1")
    script = 'mount --bind /dev/null "$0" && exec "$@"'
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, lib, cli_path(), *args],
                          capture_output=True, text=True, timeout=120)


def test_udev_backend_without_libudev():
    p = _without_libudev("devices", "--json", "--backend", "udev")
    assert p.returncode == 2 and p.stderr.startswith("cni-rdma: error: udev backend unavailable"), p
    assert len(p.stderr.splitlines()) == 1
    p = _without_libudev("devices", "--json")  # auto falls back to sysfs
    assert p.returncode == 0 and json.loads(p.stdout)["backend"] == "sysfs", p


def test_boot_netns_mode_from_modprobe_d_and_the_kernel_command_line(node, tmp_path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    (root / "etc" / "modprobe.d").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text("console=ttyS0 quiet\n")
    args = ("--host-root", str(root), "--mode", "exclusive")
    c = doctor(node, *args)["by"]["netns-mode-boot"]
    assert c["status"] == "warn" and "boots in shared mode (kernel default)" in c["summary"]
    assert c["fix"].startswith("echo 'options ib_core netns_mode=0' > /etc/modprobe.d/")
    (root / "etc" / "modprobe.d" / "rdma.conf").write_text("# RDMA\noptions ib_core netns_mode=0  # exclusive\n")
    c = doctor(node, *args)["by"]["netns-mode-boot"]
    assert c["status"] == "ok" and c["details"]["source"] == "etc/modprobe.d/rdma.conf", c
    (root / "proc" / "cmdline").write_text("quiet ib_core.netns_mode=1\n")  # the command line wins
    c = doctor(node, *args)["by"]["netns-mode-boot"]
    assert c["status"] == "warn" and "kernel command line" in c["summary"] and "drop ib_core.netns_mode" in c["fix"]
