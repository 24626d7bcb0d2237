"""`cni-rdma exec` against a real libcni client built from Debian's golang-github-appc-cni-dev (libcni 1.1.2,
GOPATH mode): the e2e tier's cnitool-shaped driver (tests/e2e/driver). Same conflist, same netns, same container
ID, our plugins behind both: the printed result and the libcni cache file are byte-identical, each side CHECKs
and DELs what the other ADDed through the shared cache layout, and errors read the same."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cni_rdma.cli.cniexec import container_id_for
from tests import topology
from tests.cli.helpers import cli_path
from tests.e2e.runtimes import Driver, build_driver

MAC = "02:c1:10:00:00:42"


@pytest.fixture(scope="module")
def driver_exe() -> Path:
    return build_driver()


def _conf(tmp: Path, version: str, **extra) -> str:
    name = f"cmp{version.replace('.', '')}"
    conf = {"cniVersion": version, "name": name, "plugins": [dict({
        "type": "macvlan", "master": "eth0", "mac": MAC,
        # one address: every ADD after a DEL gets the same one, so the two results can be compared byte for byte
        "ipam": {"type": "host-local", "dataDir": str(tmp / "hl"), "routes": [{"dst": "10.200.0.0/16"}],
                 "ranges": [[{"subnet": "10.97.0.0/24", "rangeStart": "10.97.0.5", "rangeEnd": "10.97.0.5"}]]}},
        **extra)]}
    (tmp / "net.d").mkdir(exist_ok=True)
    (tmp / "net.d" / f"10-{name}.conflist").write_text(json.dumps(conf, indent=1))
    return name


def ours(node, tmp: Path, cache: Path, command: str, network: str, netns: str, env: dict | None = None):
    e = {"PATH": os.environ["PATH"], "NETCONFPATH": str(tmp / "net.d"), "CNI_PATH": str(topology.bin_dir()),
         "CNI_CACHE_DIR": str(cache), "CNI_IFNAME": "eth0", **(env or {})}
    return subprocess.run(["nsenter", f"--net={node.path}", cli_path(), "exec", command, network, netns],
                          capture_output=True, text=True, env=e, timeout=120)


@pytest.mark.parametrize("version,extra,env", [
    ("1.0.0", {}, {}),
    ("0.4.0", {}, {}),
    ("1.0.0", {"capabilities": {"mac": True}}, {"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p1",
                                                "CAP_ARGS": json.dumps({"mac": MAC, "portMappings": []})}),
])
def test_same_output_same_cache_interchangeable(node, make_pod, tmp_path, driver_exe, version, extra, env):
    network = _conf(tmp_path, version, **extra)
    pod = make_pod()
    cid = container_id_for(pod.path)
    go_cache, our_cache = tmp_path / "go-cache", tmp_path / "our-cache"
    go = Driver(driver_exe, tmp_path / "net.d", topology.bin_dir(), go_cache)
    go_args = dict(container_id=cid, node_netns=node.path, cni_args=env.get("CNI_ARGS", ""),
                   cap_args=json.loads(env["CAP_ARGS"]) if "CAP_ARGS" in env else None)
    cache_name = f"results/{network}-{cid}-eth0"

    g = go("add", network, pod.path, **go_args)
    assert g.returncode == 0, g.stderr
    go_entry = (go_cache / cache_name).read_bytes()
    assert go("check", network, pod.path, **go_args).returncode == 0
    assert go("del", network, pod.path, **go_args).returncode == 0
    assert pod.link("eth0") is None

    o = ours(node, tmp_path, our_cache, "add", network, pod.path, env)
    assert o.returncode == 0, o.stderr
    assert o.stdout == g.stdout  # cnitool prints exactly this
    assert (our_cache / cache_name).read_bytes() == go_entry

    # libcni CHECKs and DELs what we ADDed (prevResult from our cache), and the other way round
    assert go("check", network, pod.path, **{**go_args, "env": {"CNI_CACHE_DIR": str(our_cache)}}).returncode == 0
    d = go("del", network, pod.path, **{**go_args, "env": {"CNI_CACHE_DIR": str(our_cache)}})
    assert d.returncode == 0, d.stderr
    assert not (our_cache / cache_name).exists() and pod.link("eth0") is None

    assert go("add", network, pod.path, **go_args).returncode == 0
    assert ours(node, tmp_path, go_cache, "check", network, pod.path, env).returncode == 0
    topology.sh("ip", "-n", pod.name, "addr", "flush", "dev", "eth0")
    gc_, oc = go("check", network, pod.path, **go_args), ours(node, tmp_path, go_cache, "check", network, pod.path,
                                                               env)
    assert gc_.returncode == 1 and oc.returncode == 1
    assert oc.stderr == f"cni-rdma: error: {gc_.stderr}", (oc.stderr, gc_.stderr)
    o = ours(node, tmp_path, go_cache, "del", network, pod.path, env)
    assert o.returncode == 0, o.stderr
    assert not (go_cache / cache_name).exists() and pod.link("eth0") is None


def test_same_errors(node, make_pod, tmp_path, driver_exe):
    network = _conf(tmp_path, "1.0.0", master="crn-absent0")
    pod = make_pod()
    go = Driver(driver_exe, tmp_path / "net.d", topology.bin_dir(), tmp_path / "go-cache")
    g = go("add", network, pod.path, container_id=container_id_for(pod.path), node_netns=node.path)
    o = ours(node, tmp_path, tmp_path / "our-cache", "add", network, pod.path)
    assert g.returncode == 1 and o.returncode == 1
    assert o.stderr == f"cni-rdma: error: {g.stderr}", (o.stderr, g.stderr)
    assert 'plugin type="macvlan" failed (add): ' in o.stderr
    # a plugin missing from CNI_PATH
    e = {"CNI_PATH": str(tmp_path)}
    g = go("add", network, pod.path, container_id=container_id_for(pod.path), node_netns=node.path, env=e)
    o = ours(node, tmp_path, tmp_path / "our-cache", "add", network, pod.path, e)
    assert o.stderr == f"cni-rdma: error: {g.stderr}", (o.stderr, g.stderr)
