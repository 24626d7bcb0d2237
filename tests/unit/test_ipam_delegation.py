"""IPAM delegation (SPEC.md section 4 "Plugin Delegation") with real child processes as delegates."""
import io
import json
import os
import sys
import textwrap

import pytest

from cni_rdma import ipam, skel
from cni_rdma.errors import CniError
from tests.topology import ROOT

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x", "CNI_IFNAME": "net1"}


def make_delegate(d, name, body):
    p = d / name
    p.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    p.chmod(0o755)
    return p


def request(tmp_path, version="1.0.0", command="ADD", ipam_type="fake-ipam"):
    conf = {"cniVersion": version, "name": "net", "type": "macvlan", "ipam": {"type": ipam_type}}
    env = dict(ENV, CNI_COMMAND=command, CNI_PATH=f"{tmp_path / 'empty'}:{tmp_path}")
    captured = {}

    def add(req):
        captured["req"] = req
    mod = type(sys)("m")
    mod.add = add
    mod.delete = add
    skel.call(mod, env, json.dumps(conf).encode())
    return captured["req"]


def test_result_of_older_version_is_converted(tmp_path):
    make_delegate(tmp_path, "fake-ipam", """\
        cat > /dev/null
        echo '{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.5/24","gateway":"10.0.0.1"}],"dns":{}}'
    """)
    r = ipam.add(request(tmp_path))
    assert str(r.ips[0].address) == "10.0.0.5/24" and str(r.ips[0].gateway) == "10.0.0.1"


def test_env_and_stdin_are_passed_with_only_command_overridden(tmp_path):
    out = tmp_path / "seen"
    make_delegate(tmp_path, "fake-ipam", f"""\
        cat > {out}.stdin
        env > {out}.env
        echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.0.0.5/24"}}]}}'
    """)
    req = request(tmp_path, command="DEL")
    ipam.delete(req)
    env = dict(line.split("=", 1) for line in open(f"{out}.env").read().splitlines() if "=" in line)
    assert env["CNI_COMMAND"] == "DEL" and env["CNI_CONTAINERID"] == "c1" and env["CNI_IFNAME"] == "net1"
    assert open(f"{out}.stdin", "rb").read() == req.stdin


def test_delegate_error_keeps_its_code(tmp_path):
    make_delegate(tmp_path, "fake-ipam", """\
        echo '{"cniVersion":"1.0.0","code":11,"msg":"no IP addresses available in range set","details":"x"}'
        exit 1
    """)
    with pytest.raises(CniError) as e:
        ipam.add(request(tmp_path))
    assert (e.value.code, e.value.msg, e.value.details) == (11, "no IP addresses available in range set", "x")


def test_delegate_stderr_only_failure(tmp_path, capfd):
    make_delegate(tmp_path, "fake-ipam", "echo 'it broke' >&2; exit 3\n")
    with pytest.raises(CniError) as e:
        ipam.add(request(tmp_path))
    assert e.value.msg == "netplugin failed: 'it broke'"
    assert "it broke" in capfd.readouterr().err  # the delegate's stderr is forwarded


def test_silent_failure(tmp_path):
    make_delegate(tmp_path, "fake-ipam", "exit 2\n")
    with pytest.raises(CniError) as e:
        ipam.add(request(tmp_path))
    assert "no error message" in e.value.msg


def test_not_found_and_path_separator(tmp_path):
    with pytest.raises(CniError) as e:
        ipam.add(request(tmp_path, ipam_type="missing"))
    assert e.value.code == 7 and "failed to find plugin 'missing'" in e.value.msg
    with pytest.raises(CniError) as e:
        ipam.find_in_path("../bin/host-local", (str(tmp_path),))
    assert "invalid plugin name" in e.value.msg


def test_first_path_entry_wins(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    make_delegate(tmp_path / "a", "x", "exit 0\n")
    make_delegate(tmp_path / "b", "x", "exit 0\n")
    assert ipam.find_in_path("x", (str(tmp_path / "a"), str(tmp_path / "b"))) == str(tmp_path / "a" / "x")


def test_allocated_releases_on_failure(tmp_path):
    log = tmp_path / "calls"
    make_delegate(tmp_path, "fake-ipam", f"""\
        echo "$CNI_COMMAND" >> {log}
        echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.0.0.5/24"}}]}}'
    """)
    req = request(tmp_path)
    with pytest.raises(RuntimeError):
        with ipam.allocated(req):
            raise RuntimeError("link setup failed")
    assert log.read_text().split() == ["ADD", "DEL"]


def test_in_process_only_for_our_own_bundle(monkeypatch):
    dev = ROOT / "build" / "dev-bin"
    monkeypatch.setattr(sys, "argv", [str(dev / "macvlan")])
    assert ipam._in_process_module("host-local", str(dev / "host-local")) == "ipam.host_local.host_local"
    if os.path.exists("/usr/lib/cni/host-local"):
        assert ipam._in_process_module("host-local", "/usr/lib/cni/host-local") is None
    monkeypatch.setenv("CNI_RDMA_NO_INPROCESS_IPAM", "1")
    assert ipam._in_process_module("host-local", str(dev / "host-local")) is None


# ipam.run_captured stands in for subprocess.run (which imports enum, threading, selectors, locale, re...):
# the same answers as subprocess for the shapes a delegate can take.
SHAPES = {
    "echo": "cat; echo done >&2",
    "big both ways": "cat; head -c 300000 /dev/zero | tr '\\0' e >&2",
    "ignores stdin": "echo early; exit 4",
    "closes stdin first": "exec 0<&-; head -c 200000 /dev/zero | tr '\\0' o",
    "killed": "kill -9 $$",
    "env": 'echo "$CNI_COMMAND/$ONLY_THIS"; env | grep -c . >&2',
    "grandchild keeps stdout": "(sleep 0.2; echo late) & echo now",
}


@pytest.mark.parametrize("stdin", [b"", b'{"x": 1}', b"z" * 1_000_000])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_run_captured_answers_as_subprocess_does(tmp_path, shape, stdin):
    import subprocess

    exe = tmp_path / "delegate"
    exe.write_text("#!/bin/sh\n" + SHAPES[shape] + "\n")
    exe.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "ADD", "ONLY_THIS": "yes"}
    want = subprocess.run([str(exe)], input=stdin, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert ipam.run_captured(str(exe), stdin, env) == (want.returncode, want.stdout, want.stderr)


def test_run_captured_exec_failure_is_subprocess_oserror(tmp_path):
    import subprocess

    exe = tmp_path / "noshebang"
    exe.write_text("echo hi\n")
    exe.chmod(0o755)
    with pytest.raises(OSError) as want:
        subprocess.run([str(exe)], input=b"", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with pytest.raises(OSError) as got:
        ipam.run_captured(str(exe), b"", {})
    assert (got.value.errno, str(got.value)) == (want.value.errno, str(want.value))


def test_run_captured_imports_no_subprocess(tmp_path):
    exe = tmp_path / "delegate"
    exe.write_text("#!/bin/sh\ncat\n")
    exe.chmod(0o755)
    code = ("import sys; sys.path.insert(0, %r)\nfrom cni_rdma import ipam\n"
            "assert ipam.run_captured(%r, b'hi', {}) == (0, b'hi', b'')\n"
            "print(sorted(m for m in ('subprocess', 'signal', 'enum', 'threading', 'selectors', 're', 'locale')"
            " if m in sys.modules))" % (str(ROOT), str(exe)))
    import subprocess

    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
