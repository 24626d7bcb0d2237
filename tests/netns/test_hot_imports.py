"""What a plugin process imports on a real call, end to end: the start-up budget of every CNI call.

Each command runs as a real process (the dev launcher under `python -I -S -X importtime`, inside the node
netns, against a real pod netns), and every module it imports is read from the importtime trace. The hot
path may import our own modules and C-level stdlib modules; the pure-Python stdlib modules below cost
1-6 ms each in the frozen bundle (bench/results.md, /work/shared/notes/startup-floor.md) and none of them is
needed to answer ADD, CHECK or DEL. A cold path (an error, the operator CLI) may still import them lazily.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import topology
from tests.sriov_env import one_vf_node
from tests.topology import ROOT
from tests.unit.test_startup import ADD_ONLY, VF_ONLY

DEV_BIN = ROOT / "build" / "dev-bin"
# Never on the path of a successful ADD/CHECK/DEL.
NEVER = {
    "json", "re", "enum", "ipaddress", "collections", "contextlib", "functools", "operator", "threading",
    "ctypes", "typing", "dataclasses", "inspect", "importlib", "warnings", "socket", "selectors", "subprocess",
    "logging", "tempfile", "shutil", "random", "hashlib", "datetime", "traceback", "copy", "string",
    # os (~2 ms with what it pulls in): the hot path calls its C half, posix, and cni_rdma.paths
    "os", "_collections_abc", "posixpath", "genericpath", "stat",
    # extension modules (a dlopen each): flock and crc32 come from cni_rdma._native, and so do the netlink
    # socket and inet_pton (_socket: ~0.7 ms; cluster-ipam's etcd client still needs it for TCP)
    "fcntl", "zlib", "_socket",
    # ~130 constants and a reverse table (~0.2 ms): the numbers the plugins test for are in cni_rdma.errnos
    "errno",
}
# Still imported while the rewrite of issue 13 lands piece by piece (each one leaves this set as it goes).
PENDING: set[str] = set()


def traced(plugin: str, command: str, conf: dict, node: topology.Node, pod_path: str, env: dict | None = None,
           path: str = str(DEV_BIN)) -> tuple[set[str], str]:
    """Run one command; return the modules it imported and its stdout."""
    full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "hotimports",
                "CNI_NETNS": pod_path, "CNI_IFNAME": "net1", "CNI_PATH": path, **(env or {})}
    import os

    if os.environ.get("CNI_RDMA_STATE_ROOT"):
        full_env["CNI_RDMA_STATE_ROOT"] = os.environ["CNI_RDMA_STATE_ROOT"]
    p = subprocess.run(["nsenter", f"--net={node.path}", sys.executable, "-I", "-S", "-X", "importtime",
                        str(DEV_BIN / plugin)], input=json.dumps(conf).encode(), env=full_env, capture_output=True,
                       timeout=120)
    lines = p.stderr.decode(errors="replace").splitlines()
    names = {line.split("|")[2].strip() for line in lines if line.startswith("import time:") and "self [us]" not in line}
    assert p.returncode == 0, (p.stdout, [line for line in lines if not line.startswith("import time:")])
    return names, p.stdout.decode()


def _check(names: set[str], what: str, allowed: frozenset[str] = frozenset()) -> None:
    assert "cni_rdma.skel" in names, f"{what}: the trace shows no plugin call"
    bad = sorted(names & (NEVER - PENDING - allowed))
    assert not bad, f"{what} imports {bad}"


def test_macvlan_host_local_add_check_del(node, pod, tmp_path):
    conf = {"cniVersion": "1.1.0", "name": "hotimports", "type": "macvlan", "master": "eth0",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                     "ranges": [[{"subnet": "10.231.0.0/24"}], [{"subnet": "fd31::/64"}]],
                     "routes": [{"dst": "0.0.0.0/0"}]}}
    names, out = traced("macvlan", "ADD", conf, node, pod.path)
    _check(names, "macvlan ADD")
    assert names & VF_ONLY == set(), "macvlan ADD imports the VF requests"
    conf["prevResult"] = json.loads(out)
    _check(traced("macvlan", "CHECK", conf, node, pod.path)[0], "macvlan CHECK")
    names = traced("macvlan", "DEL", conf, node, pod.path)[0]
    _check(names, "macvlan DEL")
    assert names & (ADD_ONLY | VF_ONLY) == set(), "a DEL imports what only ADD and CHECK (or sriov) run"


@pytest.fixture
def fake_vf_node():
    with one_vf_node(0x3C, "hotvf0", driver="fake_pf") as host:
        yield host


def test_sriov_host_local_add_check_del(fake_vf_node, pod, tmp_path):
    node, pci, vf = fake_vf_node
    conf = {"cniVersion": "1.1.0", "name": "hotimports-sriov", "type": "sriov", "deviceID": vf,
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": "10.232.0.0/24"}]]}}
    names, out = traced("sriov", "ADD", conf, node, pod.path, env=pci.env)
    _check(names, "sriov ADD", frozenset({"_socket"}))  # the gratuitous ARP goes out on an AF_PACKET socket
    assert json.loads(out)["ips"][0]["address"].startswith("10.232.0.")
    conf["prevResult"] = json.loads(out)
    _check(traced("sriov", "CHECK", conf, node, pod.path, env=pci.env)[0], "sriov CHECK")
    _check(traced("sriov", "DEL", conf, node, pod.path, env=pci.env)[0], "sriov DEL")


def test_the_trace_sees_a_forbidden_import(node, pod, tmp_path):
    # the guard can fail: the operator CLI path imports click's world, json and re among it
    p = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", "import json, re, os, fcntl, zlib"],
                       capture_output=True, text=True)
    names = {line.split("|")[2].strip() for line in p.stderr.splitlines()
             if line.startswith("import time:") and "self [us]" not in line}
    assert {"json", "re", "enum", "os", "_collections_abc", "posixpath", "genericpath", "stat", "fcntl",
            "zlib"} <= names
