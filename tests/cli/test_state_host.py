"""`cni-rdma state` and `cni-rdma ipam` on real namespaces: attachments made through `cni-rdma exec` (so the
libcni cache names each pod's netns), host-local reservations on disk, rdma/sriov records written through the
plugins' own state store in their own record format (no RDMA or SR-IOV on this kernel to make real ones)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cni_rdma.state import Store
from plugins.rdma import rdma
from tests import topology
from tests.cli.helpers import assert_one_line_error, cli
from tests.cli.test_exec_host import run as exec_run

NET = "stnet"


def _setup(tmp: Path) -> None:
    (tmp / "net.d").mkdir()
    (tmp / "net.d" / f"10-{NET}.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": NET, "plugins": [
        {"type": "macvlan", "master": "eth0",
         "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                  "ranges": [[{"subnet": "10.95.0.0/24", "rangeStart": "10.95.0.10", "rangeEnd": "10.95.0.19"}]]}}]}))


def _args(tmp: Path) -> list[str]:
    return ["--state-dir", str(tmp / "state"), "--ipam-dir", str(tmp / "ipam"), "--cache-dir", str(tmp / "cache")]


def _rdma_record(tmp: Path, network: str, cid: str, netns: str) -> str:
    store = Store(rdma.STATE_PLUGIN, str(tmp / "state"))
    key = rdma.state_name(network, cid, "net1")
    store.write(key, {"version": rdma.STATE_VERSION, "deviceID": "0000:3b:00.2", "sandboxRdmaDevName": "mlx5_4",
                      "containerRdmaDevName": "mlx5_4", "network": network, "containerID": cid, "ifname": "net1",
                      "netns": netns})
    return key


def _sriov_record(tmp: Path, cid: str, netns: str) -> None:
    Store("sriov", str(tmp / "state")).write("vf-0000:3b:00.3", {
        "version": 1, "phase": "added", "container_id": cid, "ifname": "net1", "netns": netns,
        "device_id": "0000:3b:00.3", "pf_pci": "0000:3b:00.0", "pf": "ens1f0", "vf_id": 1, "dpdk": False})


@pytest.fixture
def world(node, make_pod, tmp_path):
    _setup(tmp_path)
    alive, doomed = make_pod(), make_pod()
    for pod in (alive, doomed):
        r = exec_run(node, tmp_path, "add", NET, pod.path)
        assert r.code == 0, r
    # a reservation nobody can account for: host-local called directly (no cache entry, no record)
    conf = json.loads((tmp_path / "net.d" / f"10-{NET}.conflist").read_text())
    orphan = topology.run_plugin("host-local", "ADD", dict(conf["plugins"][0], name=NET, cniVersion="1.0.0"),
                                 container_id="orphan-ctr", ifname="eth0", netns=alive.path)
    assert orphan.code == 0, orphan
    _rdma_record(tmp_path, "rdmanet", "ctr-alive", alive.path)
    _rdma_record(tmp_path, "rdmanet", "ctr-doomed", doomed.path)
    _sriov_record(tmp_path, "ctr-doomed", doomed.path)
    return alive, doomed


def test_state_lists_records_and_reservations_with_liveness(world, tmp_path):
    alive, doomed = world
    r = cli("state", "--json", *_args(tmp_path))
    assert r.code == 0, r
    got = r.json
    recs = {(x["plugin"], x["container"]): x for x in got["records"]}
    assert recs[("rdma", "ctr-alive")]["state"] == "alive"
    assert recs[("rdma", "ctr-alive")]["detail"] == "RDMA device mlx5_4"
    assert recs[("sriov", "ctr-doomed")]["detail"] == "PF ens1f0 VF 1"
    res = {x["container"]: x for x in got["reservations"][NET]}
    assert len(res) == 3 and {x["state"] for x in res.values()} == {"alive", "unknown"}
    assert res["orphan-ctr"]["state"] == "unknown" and res["orphan-ctr"]["netns"] == ""
    text = cli("state", *_args(tmp_path))
    assert text.code == 0 and "rdmanet-ctr-alive-net1" not in text.stdout and "rdmanet" in text.stdout

    topology.netns_del(doomed.name)
    got = cli("state", "--json", *_args(tmp_path)).json
    assert {(x["plugin"], x["container"]): x["state"] for x in got["records"]} == {
        ("rdma", "ctr-alive"): "alive", ("rdma", "ctr-doomed"): "gone", ("sriov", "ctr-doomed"): "gone"}
    states = sorted(x["state"] for x in got["reservations"][NET])
    assert states == ["alive", "gone", "unknown"]

    dry = cli("state", "gc", "--dry-run", *_args(tmp_path))
    assert dry.code == 0, dry
    lines = dry.stdout.splitlines()
    assert any(line.startswith("would release rdma record rdmanet-ctr-doomed-net1") for line in lines)
    assert any(line.startswith("leave sriov record vf-0000:3b:00.3") for line in lines)
    assert any(line.startswith(f"would release {NET} 10.95.0.") and doomed.path in line for line in lines)
    assert len(lines) == 3
    assert cli("state", "--json", *_args(tmp_path)).json == got  # a dry run changes nothing

    done = cli("state", "gc", *_args(tmp_path))
    assert done.code == 0, done
    after = cli("state", "--json", *_args(tmp_path)).json
    assert {(x["plugin"], x["container"]) for x in after["records"]} == {("rdma", "ctr-alive"),
                                                                         ("sriov", "ctr-doomed")}
    assert sorted(x["state"] for x in after["reservations"][NET]) == ["alive", "unknown"]
    assert cli("state", "gc", "--dry-run", *_args(tmp_path)).stdout.splitlines() == [
        x for x in lines if x.startswith("leave")]


def test_ipam_ls_and_release(world, tmp_path):
    alive, _ = world
    conf = ["--conf-dir", str(tmp_path / "net.d")]
    r = cli("ipam", "ls", NET, "--json", *conf, *_args(tmp_path))
    assert r.code == 0, r
    (n,) = r.json
    assert n["ranges"] == [{"range": "10.95.0.10-10.95.0.19", "capacity": 10}]
    assert (n["used"], n["free"]) == (3, 7)
    assert [x["container"] for x in n["leaked"]] == ["orphan-ctr"]
    text = cli("ipam", "ls", *conf, *_args(tmp_path))
    assert text.stdout.startswith(f"{NET}: 10.95.0.10-10.95.0.19 (10); used 3, free 7, leaked 1"), text

    live_ip = next(x["ip"] for x in n["reservations"] if x["state"] == "alive" and x["netns"] == alive.path)
    assert_one_line_error(cli("ipam", "release", NET, "--ip", live_ip, *_args(tmp_path)), 1, "live netns")
    assert_one_line_error(cli("ipam", "release", "nonet", "--leaked", *_args(tmp_path)), 2, "'nonet'")
    assert_one_line_error(cli("ipam", "release", NET, "--ip", "10.95.0.99", *_args(tmp_path)), 2, "not reserved")
    assert_one_line_error(cli("ipam", "release", NET, *_args(tmp_path)), 2, "--container")
    r = cli("ipam", "release", NET, "--container", "orphan-ctr", *_args(tmp_path))
    assert r.code == 0 and r.stdout.startswith(f"released {NET} 10.95.0."), r
    r = cli("ipam", "release", NET, "--ip", live_ip, "--force", *_args(tmp_path))
    assert r.stdout == f"released {NET} {live_ip}\n", r
    (n,) = cli("ipam", "ls", NET, "--json", *conf, *_args(tmp_path)).json
    assert (n["used"], n["free"], n["leaked"]) == (1, 9, [])
    # host-local hands the released address out again: its index was kept in step
    again = topology.run_plugin("host-local", "ADD", {"cniVersion": "1.0.0", "name": NET, "ipam": json.loads(
        (tmp_path / "net.d" / f"10-{NET}.conflist").read_text())["plugins"][0]["ipam"]},
        container_id="again", ifname="eth0", netns=alive.path)
    assert again.code == 0, again
