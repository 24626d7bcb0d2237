"""`cni-rdma install|uninstall`: the CLI's face of cni_rdma.installer (the frozen tier runs it for real with the
bundle: tests/netns/test_selfcontained.py). Here a bundle directory holding the dev launcher as its executable:
refusal of a Go plugin in one line, --force and FORCE=1, uninstall touching only our links."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from cni_rdma.registry import PLUGINS
from tests import topology
from tests.cli.helpers import assert_one_line_error, cli


@pytest.fixture
def bundle(tmp_path):
    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copy(topology.ROOT / "build" / "dev-bin" / "cni-rdma", b / "cni-rdma")
    (b / "TYPES").write_text("\n".join(sorted(PLUGINS)) + "\n")
    return b


def test_install_refuses_go_plugins_then_forces_then_uninstalls(bundle, tmp_path):
    lib, bin_dir = tmp_path / "lib" / "cni-rdma", tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "macvlan").write_bytes(b"\x7fELF pretend Go plugin")
    (bin_dir / "ipvlan").write_bytes(b"\x7fELF pretend Go plugin")
    (bin_dir / "bridge").write_bytes(b"\x7fELF another plugin")
    args = ["--bundle", str(bundle), "--lib-dir", str(lib), "--bin-dir", str(bin_dir)]
    r = cli("install", *args)
    assert_one_line_error(r, 1, "install:", "macvlan exists and is not a symlink", "ipvlan", "FORCE=1")
    assert not lib.exists() and (bin_dir / "macvlan").read_bytes().startswith(b"\x7fELF pretend")

    r = cli("install", *args, env={"FORCE": "1"})
    assert r.code == 0, r
    assert "replacing" in r.stdout and "installed" in r.stdout
    for t in PLUGINS:
        assert os.readlink(bin_dir / t) == str(lib / "cni-rdma")
    p = subprocess.run([str(bin_dir / "host-local"), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("host-local (cni-rdma)")
    assert cli("install", *args, "--force").code == 0  # again: an upgrade in place

    r = cli("uninstall", "--lib-dir", str(lib), "--bin-dir", str(bin_dir))
    assert r.code == 0, r
    assert sorted(os.listdir(bin_dir)) == ["bridge"] and not lib.exists()


def test_bad_install_input_is_one_line(tmp_path):
    assert_one_line_error(cli("install", "--bundle", str(tmp_path), "--lib-dir", "/opt/x", "--bin-dir",
                              str(tmp_path / "bin"), "--destdir", str(tmp_path)), 1, "no bundle at")
    assert_one_line_error(cli("install", "--lib-dir", "relative/lib"), 2, "must be absolute")
    assert_one_line_error(cli("uninstall", "--bin-dir", "bin"), 2, "must be absolute")
