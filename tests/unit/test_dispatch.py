"""One executable, many names: behaviour depends only on basename(argv[0]), through any symlink chain."""
import json
import os
import subprocess

import pytest

from cni_rdma.registry import PLUGINS
from tests.topology import bin_dir

ENV = {"PATH": "/usr/bin:/bin", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/nonexistent/ns", "CNI_IFNAME": "net1",
       "CNI_PATH": "/nonexistent"}


def call(exe, command, stdin=b""):
    p = subprocess.run([str(exe)], input=stdin, env=dict(ENV, CNI_COMMAND=command), capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_symlink_with_a_plugin_name_behaves_identically(tmp_path, name):
    direct = bin_dir() / name
    (tmp_path / "hop").symlink_to(direct)           # a link with another name in the chain...
    (tmp_path / name).symlink_to(tmp_path / "hop")  # ...the invoked name decides
    for cmd, stdin in (("VERSION", b""), ("ADD", b'{"cniVersion":"1.0.0","name":"bad name"}'),
                       ("DEL", b"{"), ("CHECK", b'{"cniVersion":"0.3.1","name":"n"}')):
        assert call(tmp_path / name, cmd, stdin) == call(direct, cmd, stdin)
    rc, out, _ = call(tmp_path / name, "VERSION")
    assert rc == 0 and json.loads(out)["cniVersion"] == "1.1.0"


def test_unknown_name_is_refused(tmp_path):
    (tmp_path / "frobnicate").symlink_to(bin_dir() / "cni-rdma")
    rc, out, err = call(tmp_path / "frobnicate", "VERSION")
    assert rc == 1 and out == b"" and b"install it under one of" in err


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_version_flag(name):
    p = subprocess.run([str(bin_dir() / name), "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith(f"{name} (cni-rdma) version ")
    assert "1.1.0" in p.stdout
