"""sriov kill -9 sweep (issue 17 item 4): real ADDs killed at random points, then DEL must give the VF
back whole every time, and the next ADD on that VF must work. Some DELs are killed too, and the DEL
after them must finish the job.

Host tier: the fake PCI tree over real links (veth ends stand in for VF netdevs, as in
test_sriov.py), in-process host-local IPAM. Each VF starts with a non-default MTU-less state worth
checking: its own MAC, admin state, and an altname. Three workers (one VF, one pod, one CNI_IFNAME
each) run in parallel; each iteration spawns an ADD and kills it either inside the per-VF lock
(after a random part of the measured locked time) or anywhere in the call (a random part of one
measured call), then sometimes lets the pod netns die the way a physical VF sees it (the VF goes
back to the host under whatever name it had in the pod), then runs DEL and checks: VF back under its
name with its MAC, MTU, admin state and altnames, nothing left in the pod, no record, no lease.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests import topology
from tests.fakepci import FakePci
from tests.sriov_env import SriovHost

KILLS_WANTED = 100
WORKERS = 3
IFNAMES = {0: "net0", 1: "net1", 2: "net2"}


@pytest.fixture
def sweep_host(tmp_path):
    node = topology.make_node(default_route=False)
    n = node.name
    topology.sh("ip", "-n", n, "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
    pci = FakePci()
    pf_addr = pci.add_pf(pci.addr(0x3c, 0, 0), "pf0")
    h = SriovHost(node=node, pci=pci, pf="pf0", pf_addr=pf_addr)
    for vf in range(WORKERS):
        name = f"ens2f0v{vf}"
        topology.sh("ip", "-n", n, "link", "add", name, "address", f"02:5b:00:00:00:1{vf}", "mtu", "1500",
                    "type", "veth", "peer", "name", f"vfpeer{vf}")
        topology.sh("ip", "-n", n, "link", "property", "add", "dev", name, "altname", f"enp60s0f0v{vf}")
        if vf != 1:
            topology.sh("ip", "-n", n, "link", "set", name, "up")
        h.vf_netdev[vf] = name
        h.vfs[vf] = pci.add_vf(pf_addr, vf, pci.addr(0x3c, 0, 2 + vf), name)
    yield h
    from cni_rdma.state import Store

    store = Store("sriov")
    for vf in h.vfs.values():  # whatever a failed assertion left behind
        store.delete("vf-" + vf)
    h.cleanup()


def _link(h: SriovHost, name: str, netns: str | None = None) -> dict | None:
    for link in topology.ip_json("-d", "link", "show", netns=netns or h.node.name):
        if link["ifname"] == name:
            return link
    return None


def _vf_state(link: dict | None) -> dict | None:
    if link is None:
        return None
    return {"ifname": link["ifname"], "address": link["address"], "mtu": link["mtu"],
            "up": "UP" in link.get("flags", []), "altnames": sorted(link.get("altnames", []))}


def _holds_lock(pid: int) -> bool:
    with open("/proc/locks") as f:
        return any(" -> " not in line and line.split()[4] == str(pid) for line in f if "FLOCK" in line)


def _spawn(h: SriovHost, conf: dict, pod_path: str, ifname: str, cid: str, command: str = "ADD") -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
           "CNI_CONTAINERID": h.cid(cid), "CNI_NETNS": pod_path, "CNI_IFNAME": ifname,
           "CNI_PATH": h.path(), **h.pci.env}
    if os.environ.get("CNI_RDMA_STATE_ROOT"):  # the test's own state root (tests/conftest.py)
        env["CNI_RDMA_STATE_ROOT"] = os.environ["CNI_RDMA_STATE_ROOT"]
    p = subprocess.Popen(["nsenter", f"--net={h.node.path}", str(topology.bin_dir() / "sriov")], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(json.dumps(conf).encode())
    p.stdin.close()
    return p


def _die(h: SriovHost, pod) -> str | None:
    """The pod netns goes away; a physical VF comes back to the host under its pod-side name (a veth
    stand-in would be destroyed, so the test moves it first). Answers that name."""
    back = None
    for link in topology.ip_json("link", "show", netns=pod.name):
        if link["ifname"] != "lo":
            topology.sh("ip", "-n", pod.name, "link", "set", link["ifname"], "netns", h.node.name)
            back = link["ifname"]
    topology.netns_del(pod.name)
    return back


def _leases(data_dir: Path) -> list[str]:
    net = data_dir / "sriov-net"
    return [p.name for p in net.iterdir() if p.name[0].isdigit()] if net.exists() else []


def test_kill_9_during_add_then_del_restores_the_vf(sweep_host, tmp_path):
    h = sweep_host
    from cni_rdma.state import Store

    store = Store("sriov")
    confs, before = {}, {}
    for vf in range(WORKERS):
        data = tmp_path / f"ipam{vf}"
        confs[vf] = h.config(vf, mtu=9000 - vf, ipam={"type": "host-local", "dataDir": str(data),
                                                      "ranges": [[{"subnet": f"10.9{vf}.0.0/24"}]]})
        before[vf] = _vf_state(_link(h, h.vf_netdev[vf]))
        assert before[vf]["altnames"] == [f"enp60s0f0v{vf}"]

    # One timed call: spawn -> lock held, spawn -> exit.
    pod = topology.make_pod()
    t0 = time.monotonic()
    p = _spawn(h, confs[0], pod.path, IFNAMES[0], "timed")
    t_lock = None
    while p.poll() is None:
        if t_lock is None and _holds_lock(p.pid):
            t_lock = time.monotonic() - t0
        time.sleep(0.0005)
    t_call = time.monotonic() - t0
    assert p.returncode == 0, p.stdout.read()
    assert h.run("DEL", confs[0], netns=pod.path, ifname=IFNAMES[0], container_id="timed").code == 0
    topology.netns_del(pod.name)
    t_lock = t_lock or t_call / 2
    t_locked = max(t_call - t_lock, 0.01)

    lock = threading.Lock()
    stats = {"killed": 0, "killed-in-lock": 0, "completed": 0, "netns-died": 0, "full-adds": 0, "dels-killed": 0}
    phases: dict[str, int] = {}
    places: dict[str, int] = {}
    failures: list[str] = []
    rng = random.Random(20261130)

    def check_back(vf: int, it: str, pod_alive) -> None:
        got = _vf_state(_link(h, h.vf_netdev[vf]))
        if got != before[vf]:
            failures.append(f"{it}: VF {vf} is {got}, was {before[vf]}")
        if pod_alive is not None:
            links = topology.ip_json("link", "show", netns=pod_alive.name)
            left = [lk["ifname"] for lk in links if lk["ifname"] != "lo"]
            if left:
                failures.append(f"{it}: left in the pod: {left}")
        if store.read("vf-" + h.vfs[vf]) is not None:
            failures.append(f"{it}: record left")
        if _leases(tmp_path / f"ipam{vf}"):
            failures.append(f"{it}: leases left {_leases(tmp_path / f'ipam{vf}')}")

    def where_is(vf: int, pod) -> str:
        names = [lk["ifname"] for lk in topology.ip_json("link", "show", netns=pod.name)]
        if any(n.startswith("vftmp") for n in names):
            return "pod:temp-name"
        if IFNAMES[vf] in names:
            return "pod:ifname"
        return "host" if _link(h, h.vf_netdev[vf]) else "host:other-name"

    def kills() -> int:
        return stats["killed"] + stats["killed-in-lock"]

    def worker(vf: int, cap: int) -> None:
        ifname = IFNAMES[vf]
        pod = topology.make_pod()
        for k in range(cap):
            if kills() >= KILLS_WANTED or failures:  # one lost VF makes every later check fail too
                break
            it = f"vf{vf}#{k}"
            cid = f"k{vf}-{k}"
            with lock:
                inside = rng.random() < 0.7
                delay = rng.uniform(0, t_locked) if inside else rng.uniform(0, t_call)
                die = rng.random() < 0.25
                kill_del = rng.uniform(0, t_call) if rng.random() < 0.15 else None
                full = k % 10 == 9
            if full:  # the next ADD on this VF works, all the way
                r = h.run("ADD", confs[vf], netns=pod.path, ifname=ifname, container_id=cid)
                ok = r.code == 0 and json.loads(r.stdout)["interfaces"][0]["mtu"] == 9000 - vf
                if not ok:
                    failures.append(f"{it}: full ADD failed: {r.stdout}")
                r = h.run("DEL", confs[vf], netns=pod.path, ifname=ifname, container_id=cid)
                if r.code != 0:
                    failures.append(f"{it}: DEL after full ADD failed: {r.stdout}")
                check_back(vf, it, pod)
                with lock:
                    stats["full-adds"] += 1
                continue
            p = _spawn(h, confs[vf], pod.path, ifname, cid)
            if inside:
                while p.poll() is None and not _holds_lock(p.pid):
                    time.sleep(0.0005)
            time.sleep(delay)
            killed = p.poll() is None
            if killed:
                p.send_signal(signal.SIGKILL)
            p.wait()
            p.stdout.close()
            p.stderr.close()
            rec = store.read("vf-" + h.vfs[vf])
            phase = rec["phase"] if rec else "none"
            place = where_is(vf, pod)
            if die:
                _die(h, pod)
            if kill_del is not None:  # DEL killed too: the next DEL still finds everything
                p = _spawn(h, confs[vf], pod.path, ifname, cid, "DEL")
                time.sleep(kill_del)
                p.send_signal(signal.SIGKILL)
                p.wait()
                p.stdout.close()
                p.stderr.close()
                with lock:
                    stats["dels-killed"] += 1
            r = h.run("DEL", confs[vf], netns=pod.path, ifname=ifname, container_id=cid)
            if r.code != 0:
                failures.append(f"{it}: DEL failed: {r.stdout}")
            check_back(vf, it, None if die else pod)
            if die:
                pod = topology.make_pod()
            with lock:
                key = ("killed-in-lock" if inside else "killed") if killed else "completed"
                stats[key] += 1
                stats["netns-died"] += die
                if killed:
                    phases[phase] = phases.get(phase, 0) + 1
                    places[place] = places.get(place, 0) + 1
        topology.netns_del(pod.name)

    cap = KILLS_WANTED  # per worker: a bound, never reached unless kills keep missing
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(vf, cap)) for vf in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert not failures, failures[:10]
    assert kills() >= KILLS_WANTED, (stats, phases)
    print(f"\nsriov kill -9: {kills()} kills ({stats['killed-in-lock']} inside the VF lock, "
          f"{stats['killed']} anywhere), {stats['completed']} ADDs finished first, {stats['full-adds']} full "
          f"ADD+DEL, {stats['netns-died']} pod netns died before DEL, {stats['dels-killed']} DELs killed too "
          f"(then DEL again), in {elapsed:.1f}s (one ADD {t_call * 1000:.0f} ms, lock after "
          f"{t_lock * 1000:.0f} ms); record phase at the kill {phases}; VF at the kill {places}; "
          f"VF restored every time")
