"""The CLI from CNI_TEST_BIN_DIR: the dev launcher in `make test-fast`, the frozen bundle in `make test-frozen`
(so a click or pyudev module missing from the bundle fails here)."""
from __future__ import annotations

from tests.cli.helpers import cli, cli_path


def _frozen() -> bool:
    with open(cli_path(), "rb") as f:
        return f.read(4) == b"\x7fELF"


def test_version():
    r = cli("--version")
    assert r.code == 0 and r.stderr == "", r
    first = r.stdout.splitlines()[0]
    assert first.startswith("cni-rdma (cni-rdma) version ")
    if _frozen():
        assert not first.endswith("commit source"), first


def test_doctor_json_with_both_backends():
    for backend in ("udev", "sysfs"):
        r = cli("doctor", "--json", "--backend", backend)
        assert r.code in (0, 1) and r.stderr == "", r
        rep = r.json
        assert rep["backend"] == backend
        assert [c["check"] for c in rep["checks"]] == [
            "modules", "netns-mode", "netns-mode-boot", "rdma-devices", "sriov", "dev-infiniband", "cni-bin",
            "cni-conf", "ipam-dirs", "cluster-ipam"]
        assert all(c["status"] in ("ok", "warn", "fail") for c in rep["checks"])
        assert rep["inventory"]["pci"] and all(f["vendor"] for f in rep["inventory"]["pci"])


def test_bad_input_is_one_line_in_the_bundle_too():
    r = cli("nad", "shared", "--name", "x", "--subnet", "nope")
    assert r.code == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r
