"""host-local under contention and crashes, with real processes: concurrent ADDs, kill -9 mid-ADD/DEL, GC after."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests import topology
from tests.ipam.conftest import code, conf, ours, reservations

OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\r\n[^\s/:]{1,15}$")


def _env(command: str, cid: str, ifname: str = "eth0") -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
            "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": ifname, "CNI_PATH": str(topology.bin_dir())}


def _spawn(command: str, config: dict, cid: str, fault: str = "") -> subprocess.Popen:
    env = _env(command, cid)
    if fault:
        env["CNI_RDMA_TEST_FAULT"] = fault
    p = subprocess.Popen([str(topology.bin_dir() / "host-local")], env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(json.dumps(config).encode())
    p.stdin.close()
    return p


def _finish(p: subprocess.Popen) -> topology.PluginRun:
    out, err = p.stdout.read(), p.stderr.read()
    p.wait(timeout=120)
    return topology.PluginRun(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


# The store's fault points inside the network lock (ipam/host_local/store.py), per command.
INSIDE = {"ADD": ("locked", "reserved", "last", "indexed"), "DEL": ("locked", "released", "indexed")}


def _kill_when_stopped(p: subprocess.Popen) -> None:
    """Handshake, no clock: the plugin stops itself (SIGSTOP, CNI_RDMA_TEST_FAULT=<step>!stop) at a point
    inside the lock and is killed right there; a call that never reaches that step just ends."""
    _, status = os.waitpid(p.pid, os.WUNTRACED)
    if os.WIFSTOPPED(status):
        p.send_signal(signal.SIGKILL)
    else:
        p.returncode = os.waitstatus_to_exitcode(status)


def assert_store_sound(data_dir: Path, name: str = "net1") -> dict[str, str]:
    """Only Go's file kinds in the network dir, each whole: no partial, empty or temporary file."""
    net = data_dir / name
    files = {}
    for p in net.iterdir():
        assert p.is_file() and not p.is_symlink(), p
        data = p.read_bytes().decode()
        if p.name == "lock":
            continue
        if p.name.startswith("last_reserved_ip."):
            assert re.fullmatch(r"[0-9a-f.:]+", data), (p.name, data)
            continue
        assert re.fullmatch(r"[0-9a-f.:]+", p.name), p.name
        assert OWNER_RE.match(data), (p.name, data)
        files[p.name] = data
    return files


def test_64_concurrent_adds_on_a_small_range(data_dir):
    # 10.77.0.10-10.77.0.49: 40 addresses for 64 simultaneous callers.
    c = conf(data_dir, {"ranges": [[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.10", "rangeEnd": "10.77.0.49"}]]})
    t0 = time.monotonic()
    procs = [(f"p{i}", _spawn("ADD", c, f"p{i}")) for i in range(64)]
    runs = {cid: _finish(p) for cid, p in procs}
    elapsed = time.monotonic() - t0
    ok = {cid: r.json["ips"][0]["address"].split("/")[0] for cid, r in runs.items() if r.code == 0}
    failed = {cid: r for cid, r in runs.items() if r.code != 0}
    assert len(ok) == 40 and len(set(ok.values())) == 40  # all distinct, none lost to a race
    for r in failed.values():
        assert code(r) == 11 and "no IP addresses available in range set: 10.77.0.10-10.77.0.49" in r.json["msg"]
    files = assert_store_sound(data_dir)
    assert files == {ip: f"{cid}\r\neth0" for cid, ip in ok.items()}  # every success has its file, nothing else
    print(f"\n64 concurrent ADDs: 40 reserved, 24 refused with code 11, {elapsed:.2f}s wall")

    # Then all 64 DEL at once, and the range is whole again.
    procs = [_spawn("DEL", c, cid) for cid in runs]
    assert all(_finish(p).code == 0 for p in procs)
    assert reservations(data_dir) == {}


def test_kill_9_during_add_and_del_then_gc(data_dir, tmp_path):
    log = tmp_path / "hl.log"
    c = conf(data_dir, {"ranges": [[{"subnet": "10.77.0.0/27"}], [{"subnet": "fd77::/123"}]]}, version="1.1.0",
             logFile=str(log), logLevel="info")
    t0 = time.monotonic()
    assert ours("ADD", c, cid="warm").code == 0 and ours("DEL", c, cid="warm").code == 0
    call = (time.monotonic() - t0) / 2  # one whole call here (dev launcher or frozen bundle, loaded or not)
    rng = random.Random(20261125)
    lock = threading.Lock()
    history: list[tuple[int, str, str, str]] = []  # (seq, op, cid, outcome)
    seq = iter(range(10 ** 6))
    stats = {"killed": 0, "killed-in-lock": 0, "completed": 0}

    def worker(w: int, n: int) -> None:
        mine: list[str] = []
        for k in range(n):
            with lock:
                op = "DEL" if mine and rng.random() < 0.45 else "ADD"
                cid = rng.choice(mine) if op == "DEL" else f"k{w}-{k}"
                inside = rng.random() < 0.7
                delay = rng.uniform(0, 1.2 * call)
                s = next(seq)
            if inside:  # in the critical section, at one of the store's steps
                p = _spawn(op, c, cid, f"{rng.choice(INSIDE[op])}!stop")
                _kill_when_stopped(p)
            else:       # anywhere: startup, config, waiting for the lock
                p = _spawn(op, c, cid)
                time.sleep(delay)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
            r = _finish(p)
            outcome = "ok" if r.code == 0 else ("killed" if r.code == -signal.SIGKILL else f"err{code(r)}")
            with lock:
                stats["completed" if outcome != "killed" else "killed-in-lock" if inside else "killed"] += 1
                history.append((s, op, cid, outcome))
            if op == "ADD":
                mine.append(cid)
            elif outcome == "ok":
                mine.remove(cid)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w, 55)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert len(history) >= 200
    assert stats["killed"] + stats["killed-in-lock"] >= 100, stats

    files = assert_store_sound(data_dir)
    owners: dict[str, list[str]] = {}
    for ip, data in files.items():
        owners.setdefault(data.split("\r\n")[0], []).append(ip)
    assert all(len(ips) <= 2 for ips in owners.values())  # one per range set at most, never a duplicate

    # What definitely happened must be on disk: the last completed op of each container decides.
    last: dict[str, tuple[str, str]] = {}
    for _, op, cid, outcome in sorted(history):
        last[cid] = (op, outcome)
    for cid, (op, outcome) in last.items():
        if outcome == "ok" and op == "ADD":
            assert len(owners.get(cid, [])) == 2, cid
        if outcome == "ok" and op == "DEL":
            assert cid not in owners, cid
        assert not outcome.startswith("err") or outcome == "err11", (cid, op, outcome)

    # GC keeps exactly the valid list and reclaims everything else, whatever the kills left behind.
    keep = sorted(owners)[: len(owners) // 2]
    gc = dict(c, **{"cni.dev/valid-attachments": [{"containerID": cid, "ifname": "eth0"} for cid in keep]})
    assert ours("GC", gc).code == 0
    after = assert_store_sound(data_dir)
    assert sorted({d.split("\r\n")[0] for d in after.values()}) == keep
    assert not [p.name for p in (data_dir / ".cni-rdma" / "net1").iterdir() if p.name.startswith("tmp.")]
    # The index agrees with the files: the kept are held (duplicate ADD refused), and the rest of the range is free.
    if keep:
        assert code(ours("ADD", c, cid=keep[0])) == 100
    # A kept owner killed between its two reservations holds one family only: fill what each family has left
    # (10.77.0.2-30: 29 addresses; fd77::2-1f: 30), then the next ADD finds one family exhausted.
    kept_v4 = sum(1 for ip in after if ":" not in ip)
    fill = [f"fill{i}" for i in range(min(29 - kept_v4, 30 - (len(after) - kept_v4)))]
    for i in range(0, len(fill), 8):
        procs = [_spawn("ADD", c, cid) for cid in fill[i:i + 8]]
        assert all(_finish(p).code == 0 for p in procs)
    assert code(ours("ADD", c, cid="one-too-many")) == 11
    for i in range(0, len(keep + fill), 8):
        procs = [_spawn("DEL", c, cid) for cid in (keep + fill)[i:i + 8]]
        assert all(_finish(p).code == 0 for p in procs)
    assert reservations(data_dir) == {}
    rebuilds = log.read_text().count("index for")
    print(f"\nkill -9: {len(history)} iterations ({stats['killed-in-lock']} killed holding the lock, "
          f"{stats['killed']} killed elsewhere, {stats['completed']} completed) in {elapsed:.1f}s; "
          f"{rebuilds} index rebuilds; store sound; GC kept {len(keep)} of {len(owners)} and reclaimed the rest")
