"""e2e tier fixtures: the bundle installed with `make install PREFIX=<temp>`, the jail (private CNI dirs),
containerd and podman on private dirs. Needs root and the packages tools/install-deps.sh installs."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.e2e import runtimes

if os.geteuid() != 0:
    pytest.skip("the e2e tier needs root (runtimes, namespaces)", allow_module_level=True)


@pytest.fixture(scope="session")
def cni_bin(tmp_path_factory):
    return runtimes.install_bundle(tmp_path_factory.mktemp("prefix"))


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    return runtimes.make_rootfs(tmp_path_factory.mktemp("rootfs"))


@pytest.fixture
def jail(cni_bin, tmp_path):
    j = runtimes.Jail(tmp_path / "jail", cni_bin)
    yield j
    j.close()


@pytest.fixture
def master():
    a, b = runtimes.veth_master()
    yield a
    subprocess.run(["ip", "link", "del", a], capture_output=True)


@pytest.fixture
def containerd(jail, tmp_path):
    c = runtimes.Containerd(jail, tmp_path / "containerd")
    yield c
    c.close()


@pytest.fixture
def podman(jail):
    # podman refuses a runroot longer than 50 characters: pytest's tmp_path is too long.
    base = Path(tempfile.mkdtemp(prefix="e2e-podman-", dir="/tmp"))
    p = runtimes.Podman(jail, base)
    yield p
    p.close()
    shutil.rmtree(base, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    """The versions this run exercised, for the CI log (issue 16 asks to record them)."""
    vs = runtimes.versions()
    terminalreporter.write_line("e2e runtimes: " + ", ".join(f"{k} {v}" for k, v in vs.items()))


@pytest.fixture(scope="session")
def driver_exe():
    return runtimes.build_driver()


@pytest.fixture
def driver(driver_exe, cni_bin, tmp_path):
    (tmp_path / "netconf").mkdir()
    return runtimes.Driver(driver_exe, tmp_path / "netconf", cni_bin, tmp_path / "cache")


@pytest.fixture
def fabric():
    f = runtimes.Fabric()
    yield f
    f.close()
