"""`cni-rdma doctor` in the VM: netdevsim (SR-IOV) and rxe (RDMA) on Debian's kernel, both RDMA netns modes.
A healthy node first (every check ok), then one deliberate break per check, each shown to fire with its fix.
doctor runs with its defaults (/opt/cni/bin, /etc/cni/net.d, /var/lib/cni) on the guest's throwaway overlay; the
host tier covers the failures of those dirs in depth."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cni_rdma.registry import PLUGINS
from tests.cli.helpers import cli_path
from tests.vm import guest


@pytest.fixture
def node_dirs(tmp_path):
    """The node's own CNI dirs, as an installed node has them: /opt/cni/bin links to the CLI's executable,
    Multus and an exclusive network in /etc/cni/net.d (the guest's / is a throwaway overlay; removed after)."""
    bin_dir, conf_dir = Path("/opt/cni/bin"), Path("/etc/cni/net.d")
    made = []
    for d in (bin_dir, conf_dir):
        if not d.exists():
            d.mkdir(parents=True)
            made.append(d)
    for t in PLUGINS:
        if (bin_dir / t).is_symlink() or (bin_dir / t).exists():
            (bin_dir / t).unlink()  # the overlay's copy only
        (bin_dir / t).symlink_to(cli_path())
        made.append(bin_dir / t)
    (conf_dir / "00-multus.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "multus-cni-network",
                                                         "type": "multus", "delegates": []}))
    (conf_dir / "10-rdma.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "rdma-excl", "plugins": [
        {"type": "sriov", "ipam": {"type": "host-local", "subnet": "10.56.0.0/24"}}, {"type": "rdma"}]}))
    made += [conf_dir / "00-multus.conf", conf_dir / "10-rdma.conflist"]
    yield tmp_path
    for p in reversed(made):
        if p.is_dir() and not p.is_symlink():
            p.rmdir()
        else:
            p.unlink()


def doctor(dirs: Path, *extra: str, text: bool = False):
    args = [cli_path(), "doctor", *extra]
    p = subprocess.run(args + ([] if text else ["--json"]), capture_output=True, text=True, timeout=300)
    assert p.returncode in (0, 1) and p.stderr == "", p
    if text:
        return p
    rep = json.loads(p.stdout)
    rep["by"] = {c["check"]: c for c in rep["checks"]}
    rep["code"] = p.returncode
    return rep


def _not_ok(rep) -> dict:
    return {c["check"]: c["status"] for c in rep["checks"] if c["status"] != "ok"}


def test_doctor_exclusive_node_healthy_then_broken_one_check_at_a_time(node_dirs, rdma_exclusive, make_rxe,
                                                                       netdevsim_pf):
    guest.modprobe("ib_core", "ib_uverbs", "rdma_ucm", "ib_umad")
    # no RDMA device yet: exclusive NADs cannot work
    if not guest.rdma_dev_names():
        rep = doctor(node_dirs, "--mode", "exclusive")
        assert rep["by"]["rdma-devices"]["status"] == "fail" and "rdma link add" in rep["by"]["rdma-devices"]["fix"]
    # a PF without VFs
    pf = netdevsim_pf(numvfs=0)
    rxe = make_rxe()
    rep = doctor(node_dirs, "--mode", "exclusive")
    c = rep["by"]["sriov"]
    assert c["status"] == "fail" and f"{pf.ifname} has no VFs" in c["summary"]
    assert f"/sys/class/net/{pf.ifname}/device/sriov_numvfs" in c["fix"]

    (pf.sysfs / "sriov_numvfs").write_text("4")
    rep = doctor(node_dirs)  # mode decided by the conf dir's sriov/rdma network
    assert rep["mode"] == "exclusive"
    assert rep["code"] == 0 and _not_ok(rep) == {}, _not_ok(rep)
    dev = next(d for d in rep["inventory"]["rdma"]["devices"] if d["name"] == rxe.name)
    assert dev["ports"] == [{"port": 1, "state": "active", "netdev": rxe.netdev}]
    sim = next(p for p in rep["inventory"]["sriov"] if p["netdevs"] == [pf.ifname])
    assert (sim["bus"], sim["numvfs"], sim["eswitch"], len(sim["vfs"])) == ("netdevsim", 4, "legacy", 4)
    assert rep["by"]["netns-mode"]["details"]["mode"] == "exclusive"
    assert rep["by"]["netns-mode-boot"]["details"]["source"] == "kernel command line ib_core.netns_mode"
    # as `rdma link` and `rdma system` say
    assert any(link["ifname"] == rxe.name and link["netdev"] == rxe.netdev for link in guest.rdma_links())

    # the RoCE netdev goes down: the port is not active
    guest.ip("link", "set", rxe.netdev, "down")
    try:
        c = guest.wait_for(lambda: (lambda c: c if c["status"] == "warn" else None)(
            doctor(node_dirs)["by"]["rdma-devices"]), "rxe port down", timeout=120, interval=1)
        assert f"{rxe.name}/1 is down" in c["summary"] and c["fix"] == f"ip link set {rxe.netdev} up"
    finally:
        guest.ip("link", "set", rxe.netdev, "up")

    # /dev/infiniband missing while RDMA devices exist
    c = doctor(node_dirs, "--dev-dir", str(node_dirs / "no-dev"))["by"]["dev-infiniband"]
    assert c["status"] == "fail" and c["fix"] == "modprobe -a ib_uverbs rdma_ucm ib_umad"

    # a module unloaded: rdma_ucm (nothing uses it here)
    subprocess.run(["modprobe", "-r", "rdma_ucm"], check=True)
    try:
        rep = doctor(node_dirs)
        assert rep["by"]["modules"]["status"] == "fail" and "rdma_ucm" in rep["by"]["modules"]["summary"]
        c = rep["by"]["dev-infiniband"]
        assert c["status"] == "fail" and "rdma_cm" in c["summary"] and c["fix"] == "modprobe -a rdma_ucm"
    finally:
        guest.modprobe("rdma_ucm")

    # no ib_umad: the device plugins' 'RDMA device "issm" not found' (the seeds' failure), seen before they run
    subprocess.run(["modprobe", "-r", "ib_umad"], check=True)
    try:
        rep = doctor(node_dirs)
        assert rep["by"]["modules"]["status"] == "fail" and "ib_umad" in rep["by"]["modules"]["summary"]
        c = rep["by"]["dev-infiniband"]
        assert c["status"] == "fail" and f"issm of {rxe.name}" in c["summary"] and c["fix"] == "modprobe -a ib_umad"
    finally:
        guest.modprobe("ib_umad")

    # shared NADs on an exclusive node: runtime mode fails; the boot option (netns_mode=0) warns too
    rep = doctor(node_dirs, "--mode", "shared")
    assert rep["code"] == 1
    assert rep["by"]["netns-mode"]["status"] == "fail"
    assert rep["by"]["netns-mode"]["fix"].startswith("rdma system set netns shared")
    c = rep["by"]["netns-mode-boot"]
    assert c["status"] == "warn" and "options ib_core netns_mode=1" in c["fix"]

    # text output as an operator sees it (README "Operating it": CNI_RDMA_DOCTOR_SAMPLE=<dir> keeps it)
    p = doctor(node_dirs, text=True)
    assert p.returncode == 0 and p.stdout.splitlines()[-1].startswith("10 ok, 0 warn, 0 fail")
    bad = doctor(node_dirs, "--mode", "shared", text=True)
    assert bad.returncode == 1 and bad.stdout.splitlines()[-1].startswith("8 ok, 1 warn, 1 fail")
    out = os.environ.get("CNI_RDMA_DOCTOR_SAMPLE")
    if out:
        Path(out, "doctor-exclusive.txt").write_text(p.stdout)
        Path(out, "doctor-shared-wanted.txt").write_text(bad.stdout)


def test_doctor_shared_mode_and_both_backends(node_dirs, rdma_exclusive, make_rxe):
    guest.modprobe("ib_core", "ib_uverbs", "rdma_ucm", "ib_umad")
    rxe = make_rxe()
    guest.set_rdma_netns_mode("shared")  # works while no netns but the initial one exists
    rep = doctor(node_dirs, "--mode", "shared")
    assert rep["by"]["netns-mode"]["status"] == "ok" and rep["by"]["netns-mode"]["details"]["mode"] == "shared"
    c = rep["by"]["netns-mode-boot"]  # a reboot would bring exclusive back: the VM boots with netns_mode=0
    assert c["status"] == "warn" and c["details"]["source"] == "kernel command line ib_core.netns_mode", c
    # the conf dir's sriov/rdma network needs exclusive: without --mode that is the failure
    rep = doctor(node_dirs)
    assert rep["mode"] == "exclusive" and rep["by"]["netns-mode"]["status"] == "fail"
    assert "rdma-excl" in rep["by"]["netns-mode"]["summary"]
    guest.set_rdma_netns_mode("exclusive")
    for backend in ("udev", "sysfs"):
        p = subprocess.run([cli_path(), "devices", "--json", "--backend", backend], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr
        inv = json.loads(p.stdout)
        assert inv["backend"] == backend
        assert any(d["name"] == rxe.name for d in inv["rdma"]["devices"])
        assert inv["rdma"]["netns_mode"] == "exclusive"
