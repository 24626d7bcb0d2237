"""Findings 1 and 9: `logFile` is a NAD-chosen path written as root (DEVELOPERS.md "Threat model")."""
from __future__ import annotations

import os
import stat
import subprocess

import pytest

from cni_rdma.log import Logger, escape
from tests import topology
from tests.security.conftest import TIMESTAMP, cni_error, host_local, host_local_conf

PAYLOAD = "x\n/bin/sh -c 'touch /tmp/pwned'\r\n$(id)`id`; id | id & id > /tmp/pwned < /etc/passwd"


def test_symlinked_log_file_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "profile"
    target.write_text("export A=1\n")
    (tmp_path / "log").symlink_to(target)
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data", logFile=str(tmp_path / "log"))))
    assert err["code"] == 7 and "logFile" in err["msg"] and "symlink" in err["msg"]
    assert target.read_text() == "export A=1\n"
    assert not (tmp_path / "data").exists()  # refused before any work


@pytest.mark.parametrize("content", ["export A=1\n", "#!/bin/sh\n", "root:x:0:0::/root:/bin/sh\n"])
def test_existing_file_that_is_not_a_log_is_never_appended(tmp_path, content):
    f = tmp_path / "profile"
    f.write_text(content)
    f.chmod(0o600)
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data", logFile=str(f))))
    assert err["code"] == 7 and "logFile" in err["msg"]
    assert f.read_text() == content


def test_hard_link_and_foreign_owner_are_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("")
    os.link(victim, tmp_path / "alias")
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data", logFile=str(tmp_path / "alias"))))
    assert err["code"] == 7 and "hard link" in err["msg"]
    theirs = tmp_path / "theirs.log"
    theirs.write_text("")
    os.chown(theirs, 65534, 65534)
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data", logFile=str(theirs))))
    assert err["code"] == 7 and "owned by uid 65534" in err["msg"]
    assert victim.read_text() == "" and theirs.read_text() == ""


def test_world_writable_directory_without_sticky_bit_is_refused(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data", logFile=str(d / "x.log"))))
    assert err["code"] == 7 and "world-writable" in err["msg"]
    assert not (d / "x.log").exists()
    d.chmod(0o777 | stat.S_ISVTX)  # /tmp-like: allowed, the file we create is ours and 0600
    r = host_local("ADD", host_local_conf(tmp_path / "data", logFile=str(d / "x.log")))
    assert r.code == 0, r.stdout + r.stderr
    assert stat.S_IMODE(os.stat(d / "x.log").st_mode) == 0o600


@pytest.mark.parametrize("kind", ["fifo", "chardev", "dir"])
def test_log_file_that_is_not_a_regular_file_never_blocks(tmp_path, kind):
    path = tmp_path / "log"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    else:
        path = "/dev/null"
    r = host_local("ADD", host_local_conf(tmp_path / "data", logFile=str(path)), timeout=20)
    err = cni_error(r)
    assert err["code"] == 7 and "logFile" in err["msg"]


@pytest.mark.parametrize("bad", ["/tmp/a\u0000b", "relative.log", "/tmp/../etc/x.log", "/tmp/\udcff.log",
                                 "/" + "a" * 5000, 42], ids=["nul", "relative", "dotdot", "surrogate", "long", "int"])
def test_bad_log_file_path_is_code_7_json_not_a_traceback(tmp_path, bad):
    # Finding 9: a NUL gave a traceback and no JSON on stdout.
    raw = host_local_conf(tmp_path / "data")
    stdin = (topology.json.dumps(raw)[:-1] + ', "logFile": ' + topology.json.dumps(bad) + "}").encode()
    err = cni_error(host_local("ADD", stdin))
    assert err["code"] == 7 and "logFile" in err["msg"], err


def test_refused_log_file_does_not_fail_del(tmp_path):
    # DEL must always finish: a refused logFile is one warning on stderr there.
    r = host_local("DEL", host_local_conf(tmp_path / "data", logFile="/tmp/a\u0000b"))
    assert r.code == 0, r.stdout + r.stderr
    assert "logFile" in r.stderr and "refused" in r.stderr


def test_logged_values_cannot_inject_lines_or_shell(tmp_path):
    # Finding 1: ipam.dataDir with a newline reached the log raw; a shell sourcing the log ran the payload.
    log = tmp_path / "cni.log"
    data = tmp_path / f"d{PAYLOAD}"
    conf = host_local_conf(data, logFile=str(log), logLevel="debug")
    assert host_local("ADD", conf).code == 0
    (data / "net1" / "lock").unlink()  # makes the next call rebuild and log its index (the dataDir path)
    for cmd in ("ADD", "DEL", "GC"):
        host_local(cmd, conf, cid="ctr2")
    lines = log.read_text().splitlines()
    assert len(lines) >= 2
    for line in lines:
        assert TIMESTAMP.match(line), line
        assert not set(line) & set("$`;&|<>\r\x00"), line
    p = subprocess.run(["sh", "-c", f". {log}"], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert not os.path.exists("/tmp/pwned") and "uid=" not in p.stdout


def test_default_log_goes_to_stderr_escaped_and_logfile_is_optional(tmp_path):
    conf = host_local_conf(tmp_path / "d\nx", cniVersion="1.1.0")
    r = host_local("GC", conf)
    assert r.code == 0
    lines = r.stderr.splitlines()
    assert lines and all(TIMESTAMP.match(line) for line in lines), r.stderr
    assert "releasing nothing" in r.stderr


def test_rdma_cni_debug_switch_raises_the_level(tmp_path):
    assert Logger.from_conf({"args": {"cni": {"debug": "yes"}}}, "rdma").level == 3  # only a JSON true
    conf = {"cniVersion": "1.0.0", "name": "rdma-net", "type": "rdma", "dataDir": str(tmp_path),
            "args": {"cni": {"debug": True}}}
    r = topology.run_plugin("rdma", "DEL", conf, netns="/var/run/netns/none", container_id="ctr1", ifname="net1")
    assert r.code == 0, r.stdout + r.stderr
    assert any(TIMESTAMP.match(line) and " DEBUG rdma DEL " in line for line in r.stderr.splitlines()), r.stderr


@pytest.mark.parametrize("raw,want", [("a\nb", "a\\x0ab"), ("\udcff", "\\udcff"), ("\u2028", "\\u2028"),
                                      ("$(id)", "\\x24(id)"), ("a\\x0a", "a\\\\x0a"), ("\x1b[31m", "\\x1b[31m")])
def test_escape(raw, want):
    assert escape(raw) == want
