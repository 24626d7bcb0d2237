"""Faults a runtime brings, end to end through real runtimes and libcni: nothing may leak.

- containerd's client (ctr) SIGKILLed after go-cni's ADD: no Remove ever comes; the container dies, its netns
  with it; a later DEL from another libcni client, with the cached result gone (no prevResult) and the netns
  path dead, releases everything — twice.
- libcni's own bookkeeping failing after the chain succeeded (the result cache cannot be written): the runtime
  sees ADD fail and DELs without prevResult.
- the pod netns already gone at DEL.
- our plugin second in a conflist, after a Go plugin: after Go `loopback` (our macvlan gets the Go prevResult;
  same result shape as Go's macvlan in that spot), and `rdma` after Go `macvlan` on this RDMA-less kernel
  (the chain fails at ours; libcni does not undo the chain, the runtime's DEL does).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests import topology
from tests.e2e import runtimes
from tests.e2e.test_containerd import NET as CTD_NET
from tests.e2e.test_containerd import conflist as ctd_conflist

NET = "e2e-faults"
SUBNET = "10.65.0.0/24"


def macvlan(tmp_path, **extra) -> dict:
    return {"type": "macvlan", "master": "eth0", "mode": "bridge",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": SUBNET}]]},
            **extra}


def _write(driver, plugins: list[dict]) -> None:
    (driver.conf_dir / f"{NET}.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": NET, "plugins": plugins}))


def _leases(tmp_path) -> list[str]:
    pool = tmp_path / "ipam" / NET
    return sorted(p.name for p in pool.iterdir()
                  if p.name != "lock" and not p.name.startswith("last_reserved")) if pool.is_dir() else []


def test_ctr_killed_after_add_then_del_without_prev_result_on_dead_netns(containerd, jail, master, rootfs,
                                                                           driver_exe, tmp_path):
    jail.write_conf("10-e2e.conflist", ctd_conflist(master))
    shared = tmp_path / "shared"
    shared.mkdir()
    script = "ip -o -4 addr show eth0 > /shared/a.tmp && mv /shared/a.tmp /shared/a.addr; sleep 600"
    ctr = subprocess.Popen(containerd.ctr_cmd("run", "--rm", "--cni", "--mount",
                                              f"type=bind,src={shared},dst=/shared,options=rbind:rw",
                                              "--rootfs", str(rootfs), "ctr-k", "/bin/sh", "-c", script),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while not (shared / "a.addr").exists():
        assert ctr.poll() is None and time.time() < deadline, "container did not come up"
        time.sleep(0.1)
    ctr.send_signal(signal.SIGKILL)  # the runtime dies after ADD: go-cni's Remove never runs
    ctr.wait()
    task = containerd.ctr("task", "ls").stdout.splitlines()[1].split()
    netns = f"/proc/{task[1]}/ns/net"
    cid = f"{containerd.namespace}-ctr-k"
    assert list(jail.leases(CTD_NET).values()) == [cid]
    containerd.ctr("task", "kill", "-s", "SIGKILL", "ctr-k")
    deadline = time.time() + 30
    while os.path.exists(netns):  # the container's only process is gone: so is its netns
        assert time.time() < deadline
        time.sleep(0.1)
    # The node's cleanup, from another libcni client in the same mount namespace: the cached result is lost
    # too (the runtime's bookkeeping went with it), so DEL has no prevResult; the netns path is dead.
    for f in (jail.var_dir / "results").iterdir():
        f.unlink()
    env = {"PATH": os.environ["PATH"], "NETCONFPATH": "/etc/cni/net.d", "CNI_PATH": "/opt/cni/bin",
           "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0"}
    for attempt in (1, 2):
        d = runtimes.run(jail.cmd(str(driver_exe), "del", CTD_NET, netns), env=env, check=False)
        assert d.returncode == 0, (attempt, d.stderr)
        left = jail.leftovers(CTD_NET)
        assert all(v == [] for v in left.values()), left


def test_libcni_cache_write_fails_after_add(driver, node, pod, tmp_path):
    _write(driver, [macvlan(tmp_path)])
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    broken = runtimes.Driver(driver.exe, driver.conf_dir, driver.bin_dir, blocker / "cache")
    r = broken("add", NET, pod.path, container_id="e2e-f1", node_netns=node.path)
    assert r.returncode != 0 and "cached result" in r.stderr, r.stderr
    assert pod.link("eth0") is not None and len(_leases(tmp_path)) == 1  # the plugins did their part
    d = driver("del", NET, pod.path, container_id="e2e-f1", node_netns=node.path)  # no cache: no prevResult
    assert d.returncode == 0, d.stderr
    assert pod.link("eth0") is None and _leases(tmp_path) == []


def test_netns_gone_at_del(driver, node, tmp_path):
    _write(driver, [macvlan(tmp_path)])
    p = topology.make_pod()
    r = driver("add", NET, p.path, container_id="e2e-f2", node_netns=node.path)
    assert r.returncode == 0, r.stderr
    topology.netns_del(p.name)
    for attempt in (1, 2):
        d = driver("del", NET, p.path, container_id="e2e-f2", node_netns=node.path)
        assert d.returncode == 0, (attempt, d.stderr)
        assert _leases(tmp_path) == [] and not (driver.cache_dir / "results" / f"{NET}-e2e-f2-eth0").exists()
    assert sorted(link["ifname"] for link in node.links()) == ["eth0", "lo", "peer0"]


@pytest.fixture
def mixed_bin(cni_bin, tmp_path):
    """Debian's Go plugins with some of ours: each test names which type comes from where."""
    d = tmp_path / "mixed-bin"
    d.mkdir()

    def make(ours: tuple[str, ...]):
        for p in d.iterdir():
            p.unlink()
        for go in runtimes.GO_PLUGIN_DIR.iterdir():
            (d / go.name).symlink_to(go)
        for name in ours:
            (d / name).unlink(missing_ok=True)
            (d / name).symlink_to(os.path.realpath(cni_bin / name))
        return d

    return make


def test_our_macvlan_after_go_loopback_as_go_macvlan(driver, node, pod, tmp_path, mixed_bin):
    results = {}
    for who, ours in (("ours", ("macvlan", "host-local")), ("go", ())):
        d = runtimes.Driver(driver.exe, driver.conf_dir, mixed_bin(ours), driver.cache_dir)
        _write(d, [{"type": "loopback"}, macvlan(tmp_path)])
        r = d("add", NET, pod.path, container_id=f"e2e-f3-{who}", node_netns=node.path)
        assert r.returncode == 0, (who, r.stderr)
        results[who] = json.loads(r.stdout)
        assert pod.link("eth0")["linkinfo"]["info_kind"] == "macvlan"
        assert d("check", NET, pod.path, container_id=f"e2e-f3-{who}", node_netns=node.path).returncode == 0
        assert d("del", NET, pod.path, container_id=f"e2e-f3-{who}", node_netns=node.path).returncode == 0
        assert pod.link("eth0") is None and _leases(tmp_path) == []

    def shape(res: dict) -> dict:
        return {"interfaces": [{k: v for k, v in i.items() if k != "mac"} for i in res["interfaces"]],
                "ips": [{k: v for k, v in ip.items() if k != "address"} for ip in res["ips"]],
                "keys": sorted(res)}

    assert shape(results["ours"]) == shape(results["go"]), results


def test_our_rdma_after_go_macvlan_fails_and_del_cleans(driver, node, pod, tmp_path, mixed_bin):
    d = runtimes.Driver(driver.exe, driver.conf_dir, mixed_bin(("rdma",)), driver.cache_dir)
    _write(d, [macvlan(tmp_path), {"type": "rdma", "deviceID": "0000:3b:02.1", "dataDir": str(tmp_path / "rdma")}])
    r = d("add", NET, pod.path, container_id="e2e-f4", node_netns=node.path)
    assert r.returncode != 0 and 'type="rdma"' in r.stderr and "RDMA" in r.stderr, r.stderr
    assert pod.link("eth0") is not None  # libcni leaves the chain's first half in place...
    dl = d("del", NET, pod.path, container_id="e2e-f4", node_netns=node.path)  # ...the runtime's DEL removes it
    assert dl.returncode == 0, dl.stderr
    assert pod.link("eth0") is None and _leases(tmp_path) == []
    records = [p for p in (tmp_path / "rdma").rglob("*") if p.is_file() and not p.name.endswith("lock")]
    assert records == []
