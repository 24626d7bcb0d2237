"""`cni-rdma exec` against real namespaces: our plugins run as cnitool would run them, inside a node netns
whose eth0 is the macvlan master. The libcni result cache is a test directory (--cache-dir)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

from cni_rdma.cli.cniexec import container_id_for
from tests import topology
from tests.cli.helpers import Run, assert_one_line_error, cli_path

MAC = "02:c1:10:00:00:07"


def conflist(tmp: Path, name: str = "tnet", version: str = "1.0.0", **macvlan) -> dict:
    conf = {"cniVersion": version, "name": name, "plugins": [dict({
        "type": "macvlan", "master": "eth0", "mode": "bridge",
        "ipam": {"type": "host-local", "dataDir": str(tmp / "hl"),
                 "ranges": [[{"subnet": "10.99.0.0/24", "rangeStart": "10.99.0.7", "rangeEnd": "10.99.0.9"}]]}},
        **macvlan)]}
    (tmp / "net.d").mkdir(exist_ok=True)
    (tmp / "net.d" / f"10-{name}.conflist").write_text(json.dumps(conf))
    return conf


def run(node: topology.Node, tmp: Path, *args: str, env: dict | None = None) -> Run:
    """`cni-rdma exec ...` inside the node netns, NETCONFPATH/CNI_PATH as cnitool users set them."""
    full = {"PATH": os.environ["PATH"], "NETCONFPATH": str(tmp / "net.d"), "CNI_PATH": str(topology.bin_dir()),
            "CNI_CACHE_DIR": str(tmp / "cache")}
    full.update(env or {})
    p = subprocess.run(["nsenter", f"--net={node.path}", cli_path(), "exec", *args], capture_output=True,
                       text=True, env=full, timeout=120)
    return Run(p)


def test_add_check_del_with_the_libcni_cache(node, make_pod, tmp_path):
    conf = conflist(tmp_path, mac=MAC)
    pod = make_pod()
    r = run(node, tmp_path, "add", "tnet", pod.path)
    assert r.code == 0, r
    result = json.loads(r.stdout)
    assert not r.stdout.endswith("\n") and r.stdout.startswith('{\n    "cniVersion": "1.0.0",')  # Go's Print
    assert result["interfaces"] == [{"name": "eth0", "mac": MAC, "sandbox": pod.path}]
    assert result["ips"] == [{"interface": 0, "address": "10.99.0.7/24", "gateway": "10.99.0.1"}]
    assert pod.link("eth0")["address"] == MAC
    assert [a["local"] for a in pod.addrs("eth0") if a["family"] == "inet"] == ["10.99.0.7"]

    cid = container_id_for(pod.path)
    cache = tmp_path / "cache" / "results" / f"tnet-{cid}-eth0"
    entry = json.loads(cache.read_text())
    assert list(entry) == ["kind", "containerId", "config", "ifName", "networkName", "result"]
    assert (entry["kind"], entry["containerId"], entry["ifName"], entry["networkName"]) == \
        ("cniCacheV1", cid, "eth0", "tnet")
    assert json.loads(base64.b64decode(entry["config"])) == conf
    assert entry["result"] == result and oct(cache.stat().st_mode & 0o777) == "0o600"

    assert run(node, tmp_path, "check", "tnet", pod.path).code == 0
    topology.sh("ip", "-n", pod.name, "addr", "flush", "dev", "eth0")
    r = run(node, tmp_path, "check", "tnet", pod.path)
    assert_one_line_error(r, 1, "10.99.0.7")

    r = run(node, tmp_path, "del", "tnet", pod.path)
    assert r.code == 0 and r.stdout == "", r
    assert pod.link("eth0") is None and not cache.exists()
    assert not (tmp_path / "hl" / "tnet" / "10.99.0.7").exists()
    assert run(node, tmp_path, "del", "tnet", pod.path).code == 0  # DEL is idempotent


def test_cni_args_cap_args_and_ifname(node, make_pod, tmp_path):
    conflist(tmp_path, capabilities={"mac": True, "ips": False})
    pod = make_pod()
    env = {"CNI_ARGS": "IgnoreUnknown=1;IP=10.99.0.9", "CAP_ARGS": json.dumps({"mac": MAC, "ips": ["x"]}),
           "CNI_IFNAME": "net5"}
    r = run(node, tmp_path, "add", "tnet", pod.path, env=env)
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert res["interfaces"][0]["name"] == "net5" and res["interfaces"][0]["mac"] == MAC
    assert res["ips"][0]["address"] == "10.99.0.9/24"
    entry = json.loads((tmp_path / "cache" / "results" / f"tnet-{container_id_for(pod.path)}-net5").read_text())
    assert entry["cniArgs"] == [["IgnoreUnknown", "1"], ["IP", "10.99.0.9"]]
    assert entry["capabilityArgs"] == {"ips": ["x"], "mac": MAC}
    assert run(node, tmp_path, "del", "tnet", pod.path, env=env).code == 0
    assert pod.link("net5") is None


def test_bad_input_is_one_line(node, make_pod, tmp_path):
    conflist(tmp_path)
    pod = make_pod()
    assert_one_line_error(run(node, tmp_path, "add", "nonet", pod.path), 2, 'no net configuration with name "nonet"')
    assert_one_line_error(run(node, tmp_path, "add", "tnet", "/var/run/netns/crn-missing-x"), 2, "does not exist")
    assert_one_line_error(run(node, tmp_path, "add", "tnet", pod.path, env={"CNI_ARGS": "a=b;c"}), 2,
                          'invalid CNI_ARGS pair "c"')
    assert_one_line_error(run(node, tmp_path, "add", "tnet", pod.path, env={"CAP_ARGS": "[1]"}), 2, "CAP_ARGS")
    assert_one_line_error(run(node, tmp_path, "add", "tnet", pod.path, env={"NETCONFPATH": "/nonexistent"}), 2,
                          "no net configurations found in /nonexistent")
    (tmp_path / "net.d" / "05-broken.conflist").write_text("{oops")
    assert_one_line_error(run(node, tmp_path, "add", "tnet", pod.path), 2, "05-broken.conflist",
                          "error parsing configuration list")
    (tmp_path / "net.d" / "05-broken.conflist").unlink()
    (tmp_path / "net.d" / "05-fifo.conflist").unlink(missing_ok=True)
    os.mkfifo(tmp_path / "net.d" / "05-fifo.conflist")  # never blocks on a FIFO
    assert_one_line_error(run(node, tmp_path, "add", "tnet", pod.path), 2, "not a regular file")
    (tmp_path / "net.d" / "05-fifo.conflist").unlink()
    conflist(tmp_path, master="crn-nomaster")
    r = run(node, tmp_path, "add", "tnet", pod.path)
    assert_one_line_error(r, 1, 'plugin type="macvlan" failed (add):', "crn-nomaster")
    assert r.stdout == ""


def test_single_conf_is_upconverted(node, make_pod, tmp_path):
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "20-single.conf").write_text(json.dumps(
        {"cniVersion": "0.4.0", "name": "single", "type": "macvlan", "master": "eth0",
         "ipam": {"type": "host-local", "subnet": "10.98.0.0/24", "dataDir": str(tmp_path / "hl")}}))
    pod = make_pod()
    r = run(node, tmp_path, "add", "single", pod.path)
    assert r.code == 0, r
    res = json.loads(r.stdout)
    assert res["cniVersion"] == "0.4.0" and res["ips"][0]["version"] == "4"
    assert run(node, tmp_path, "check", "single", pod.path).code == 0
    assert run(node, tmp_path, "del", "single", pod.path).code == 0


def test_status_and_gc(node, make_pod, tmp_path):
    conflist(tmp_path, version="1.1.0")
    alive, doomed = make_pod(), make_pod()
    for pod in (alive, doomed):
        assert run(node, tmp_path, "add", "tnet", pod.path).code == 0
    assert run(node, tmp_path, "status", "tnet").code == 0
    topology.netns_del(doomed.name)
    r = run(node, tmp_path, "gc", "tnet", "--dry-run")
    assert r.code == 0, r
    lines = r.stdout.splitlines()
    assert lines == [f"would DEL {container_id_for(doomed.path)} eth0 (netns {doomed.path} gone)",
                     "would GC tnet keeping 1 attachment(s)"]
    results = tmp_path / "cache" / "results"
    assert len(os.listdir(results)) == 2
    r = run(node, tmp_path, "gc", "tnet")
    assert r.code == 0, r
    assert os.listdir(results) == [f"tnet-{container_id_for(alive.path)}-eth0"]
    held = sorted(os.listdir(tmp_path / "hl" / "tnet"))
    assert [h for h in held if h.startswith("10.")] == ["10.99.0.7"]  # the live pod's address only
    assert alive.link("eth0") is not None
    assert run(node, tmp_path, "del", "tnet", alive.path).code == 0


def test_status_of_an_old_version_says_so(node, tmp_path):
    conflist(tmp_path, version="0.4.0")
    r = run(node, tmp_path, "status", "tnet")
    assert r.code == 0 and "STATUS needs 1.1.0" in r.stderr, r
