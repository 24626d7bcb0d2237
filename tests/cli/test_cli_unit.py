"""The CLI's entry point, flags, exit codes and formatting (real processes through the launcher)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from cni_rdma.cli import common, doctor
from tests import topology
from tests.cli.helpers import assert_one_line_error, cli


def test_help_lists_every_command():
    r = cli("--help")
    assert r.code == 0, r
    for cmd in ("doctor", "devices", "nad", "exec", "state", "ipam", "install", "uninstall", "completion"):
        assert f"  {cmd}" in r.stdout


def test_version_without_importing_click():
    r = cli("--version")
    assert r.code == 0, r
    assert r.stdout.startswith("cni-rdma (cni-rdma) version ")
    # main.py answers --version before the CLI: the bundle's start-up stays lean for it too
    code = ("import sys; sys.path.insert(0, %r); from cni_rdma.main import main; main(['cni-rdma', '--version']);"
            "print('click' in sys.modules, file=sys.stderr)" % str(topology.ROOT))
    p = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert p.stderr.strip() == "False"


def test_unknown_command_and_option_are_one_line_usage_errors():
    assert_one_line_error(cli("frobnicate"), 2, "No such command")
    assert_one_line_error(cli("doctor", "--mode", "weird"), 2, "--mode")
    assert_one_line_error(cli("nad", "shared", "--subnet", "10.0.0.0/24"), 2, "--name")


def test_plugin_names_never_reach_the_cli():
    # a runtime calling a plugin name gets CNI's error JSON, not click's usage
    r = topology.run_plugin("macvlan", "ADD", b"{not json")
    assert r.code == 1 and json.loads(r.stdout)["code"] in (4, 6), r


def test_cni_rdma_called_by_a_runtime_without_args_answers_in_cni_terms():
    r = cli(env={"CNI_COMMAND": "ADD"})
    assert r.code == 1 and "install it under one of" in r.stderr, r


@pytest.mark.parametrize("shell,needle", [("bash", "complete -o nosort -F"), ("zsh", "compdef"),
                                          ("fish", "complete --no-files --command cni-rdma")])
def test_completion_scripts(shell, needle):
    r = cli("completion", shell)
    assert r.code == 0, r
    assert needle in r.stdout and "_CNI_RDMA_COMPLETE" in r.stdout


def test_completion_protocol_completes_subcommands():
    r = cli(env={"_CNI_RDMA_COMPLETE": "bash_complete", "COMP_WORDS": "cni-rdma nad ", "COMP_CWORD": "2"})
    assert r.code == 0, r
    assert "plain,shared" in r.stdout and "plain,exclusive" in r.stdout


def test_table_aligns_and_escapes():
    out = common.table([["a", None, ["x", "y"]], ["long\nname", 3, []]], ["one", "two", "three"])
    lines = out.splitlines()
    assert lines[0].split() == ["ONE", "TWO", "THREE"]
    assert lines[1].split() == ["a", "-", "x,", "y"]
    assert "long\\nname" in lines[2] and lines[2].rstrip().endswith("-")


def test_doctor_render_shows_fix_only_for_problems():
    report = {"mode": "exclusive", "summary": {"ok": 1, "warn": 1, "fail": 1},
              "inventory": {"backend": "sysfs", "pci": []},
              "checks": [doctor.check("a", "ok", "fine", "never shown"),
                         doctor.check("bb", "warn", "meh", "do this"),
                         doctor.check("c", "fail", "bad\x1b[31m", "do that")]}
    text = doctor.render(report).splitlines()
    assert text[0].startswith("ok    a ") and "never shown" not in "\n".join(text)
    assert text[1].startswith("WARN  bb  meh") and text[2].strip() == "fix: do this"
    assert "\x1b" not in text[3] and "\\x1b" in text[3]
    assert text[-1] == "1 ok, 1 warn, 1 fail (mode: exclusive)"


@pytest.mark.parametrize("endpoint,want", [
    ("http://10.0.0.1:2379", ("http", "10.0.0.1", 2379)), ("127.0.0.1", ("http", "127.0.0.1", 2379)),
    ("https://[::1]:4001/", ("https", "::1", 4001)), ("ftp://x", None), ("http://h:notaport", None),
    ("http://:2379", None)])
def test_etcd_endpoint_parsing(endpoint, want):
    assert doctor.split_endpoint(endpoint) == want


def test_wanted_mode_from_conf_types():
    nets = [{"name": "a", "types": ["macvlan"]}, {"name": "b", "types": ["sriov", "rdma"]}]
    assert doctor.wanted_mode(nets[:1])[0] == "shared"
    assert doctor.wanted_mode(nets[1:])[0] == "exclusive"
    assert doctor.wanted_mode(nets)[0] is None
    assert doctor.wanted_mode([])[0] is None


def test_completion_of_network_names_and_netns(tmp_path):
    (tmp_path / "a.conflist").write_text('{"cniVersion": "1.0.0", "name": "roce-a", "plugins": [{"type": "macvlan"}]}')
    (tmp_path / "b.conf").write_text('{"cniVersion": "1.0.0", "name": "roce-b", "type": "ipvlan"}')
    (tmp_path / "c.conf").write_text('{"cniVersion": "1.0.0", "name": "other", "type": "ipvlan"}')
    env = {"_CNI_RDMA_COMPLETE": "bash_complete", "NETCONFPATH": str(tmp_path)}
    r = cli(env={**env, "COMP_WORDS": "cni-rdma exec add roce", "COMP_CWORD": "3"})
    assert r.stdout.split() == ["plain,roce-a", "plain,roce-b"], r
    r = cli(env={**env, "NETCONFPATH": "/nonexistent", "COMP_WORDS": f"cni-rdma exec del --conf-dir {tmp_path} o",
                 "COMP_CWORD": "5"})
    assert r.stdout.split() == ["plain,other"], r
    r = cli(env={**env, "COMP_WORDS": f"cni-rdma exec check roce-a {tmp_path}/a.c", "COMP_CWORD": "4"})
    assert r.stdout.split() == [f"plain,{tmp_path}/a.conflist"], r


def test_pci_ids_opened_safely(tmp_path, monkeypatch):
    """The sysfs backend's names: pci.ids through safefile (no symlink, no FIFO, bounded), else IDs only."""
    from cni_rdma.cli import inventory

    ids = tmp_path / "pci.ids"
    ids.write_text("# comment\n15b3  Mellanox Technologies\n\t1018  MT27800 Family [ConnectX-5 Virtual Function]\n"
                   "\t\t15b3 0001  a subsystem line\nC 02  Network controller\n")
    assert inventory.PciIds.load(str(ids)).lookup("0x15b3", "0x1018") == \
        ("Mellanox Technologies", "MT27800 Family [ConnectX-5 Virtual Function]")
    link = tmp_path / "link.ids"
    link.symlink_to(ids)
    assert inventory.PciIds.load(str(link)).vendors == {}
    fifo = tmp_path / "fifo.ids"
    os.mkfifo(fifo)
    unblock = threading.Timer(30, lambda: open(fifo, "w").close())  # ends a blocking open, if there were one
    unblock.start()
    try:
        t0 = time.monotonic()
        assert inventory.PciIds.load(str(fifo)).vendors == {}
        assert time.monotonic() - t0 < 5
    finally:
        unblock.cancel()
    monkeypatch.setattr(inventory, "PCI_IDS_MAX", 64)
    assert inventory.PciIds.load(str(ids)).vendors == {}  # larger than the bound: no names, no error
    # the default list: a refused first path falls through to the next one
    monkeypatch.setattr(inventory, "PCI_IDS", (str(link), str(ids)))
    monkeypatch.setattr(inventory, "PCI_IDS_MAX", 1 << 20)
    assert inventory.PciIds.load().lookup("0x15b3", "0x1018")[0] == "Mellanox Technologies"
