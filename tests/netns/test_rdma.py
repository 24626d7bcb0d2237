"""rdma plugin as a real process on this host's kernel, which has no RDMA subsystem at all.

What a node without ib_core gets: ADD refuses with code 100 (RDMA netlink unavailable), STATUS
answers 50, DEL still succeeds and drops its state, the chained-only check comes before any kernel
access. The real kernel flows (exclusive mode, moves, netns death) run in the VM tier.
"""
import json
import os
import socket

import pytest

from tests.topology import run_plugin

NET = "rdma-net"


def _kernel_has_rdma() -> bool:
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 20).close()
        return True
    except OSError:
        return False


needs_no_rdma = pytest.mark.skipif(_kernel_has_rdma(), reason="this kernel has RDMA netlink")


def conf(tmp_path, version="1.0.0", prev=True, **extra):
    c = {"cniVersion": version, "name": NET, "type": "rdma", "deviceID": "0000:3b:02.1",
         "dataDir": str(tmp_path / "state")}
    if prev:
        c["prevResult"] = {"cniVersion": version, "interfaces": [{"name": "net1", "sandbox": "/x"}],
                           "ips": [{"address": "10.1.0.5/24", "interface": 0}], "dns": {}}
    c.update(extra)
    return c


def test_about_and_version():
    r = run_plugin("rdma", "", {}, extra_env={"CNI_COMMAND": ""})
    assert r.code == 0 and "rdma" in r.stderr
    r = run_plugin("rdma", "VERSION", {})
    assert r.code == 0 and "1.1.0" in r.json["supportedVersions"]


def test_add_not_chained(tmp_path, pod):
    r = run_plugin("rdma", "ADD", conf(tmp_path, prev=False), netns=pod.path)
    assert r.code == 1
    assert r.json["code"] == 7
    assert "must be chained" in r.json["msg"] and "after sriov" in r.json["details"]


@needs_no_rdma
def test_add_without_rdma_netlink(tmp_path, pod):
    r = run_plugin("rdma", "ADD", conf(tmp_path), netns=pod.path)
    assert r.code == 1
    assert r.json["code"] == 100
    assert "RDMA netlink is unavailable" in r.json["msg"]
    assert "Protocol not supported" in r.json["details"] and "ib_core" in r.json["details"]
    assert not (tmp_path / "state").exists()


@needs_no_rdma
def test_status_without_rdma_netlink(tmp_path):
    r = run_plugin("rdma", "STATUS", conf(tmp_path, version="1.1.0", prev=False))
    assert r.code == 1 and r.json["code"] == 50
    assert "RDMA netlink is unavailable" in r.json["msg"]


@needs_no_rdma
def test_check_without_rdma_netlink(tmp_path, pod):
    r = run_plugin("rdma", "CHECK", conf(tmp_path), netns=pod.path)
    assert r.code == 1 and r.json["code"] == 100


def test_del_without_state(tmp_path, pod):
    for netns in (pod.path, "", "/var/run/netns/crn-gone"):
        r = run_plugin("rdma", "DEL", conf(tmp_path), netns=netns)
        assert r.code == 0, r.stdout
        assert r.stdout == ""


@needs_no_rdma
def test_del_with_state_without_rdma_drops_it(tmp_path, pod):
    d = tmp_path / "state" / "rdma"
    d.mkdir(parents=True)
    key = d / f"{NET}-ctr1-net1"
    key.write_text(json.dumps({"version": "1.0", "deviceID": "0000:3b:02.1", "sandboxRdmaDevName": "mlx5_3",
                               "containerRdmaDevName": "mlx5_3"}))
    r = run_plugin("rdma", "DEL", conf(tmp_path), netns=pod.path)
    assert r.code == 0, r.stdout
    assert not key.exists()


def test_gc(tmp_path):
    d = tmp_path / "state" / "rdma"
    d.mkdir(parents=True)
    for cid in ("keep", "drop"):
        (d / f"{NET}-{cid}-net1").write_text(json.dumps({"network": NET, "containerID": cid, "ifname": "net1",
                                                         "containerRdmaDevName": "mlx5_3"}))
    c = conf(tmp_path, version="1.1.0", prev=False)
    c["cni.dev/valid-attachments"] = [{"containerID": "keep", "ifname": "net1"}]
    r = run_plugin("rdma", "GC", c)
    assert r.code == 0, r.stdout
    assert sorted(n for n in os.listdir(d) if not n.endswith(".lock")) == [f"{NET}-keep-net1"]


@pytest.mark.parametrize("bad", [{"deviceID": 5}, {"runtimeConfig": {"deviceID": ["x"]}}, {"dataDir": "rel/dir"}])
def test_bad_config(tmp_path, pod, bad):
    r = run_plugin("rdma", "ADD", conf(tmp_path, **bad), netns=pod.path)
    assert r.code == 1 and r.json["code"] == 7
