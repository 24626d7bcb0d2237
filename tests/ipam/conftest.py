"""host-local tier: IPAM needs no netns, so every test here runs the plugin as a real process on a tmp dataDir."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import topology

GO_HOST_LOCAL = Path(os.environ.get("CNI_GO_HOST_LOCAL", "/usr/lib/cni/host-local"))
needs_go = pytest.mark.skipif(not GO_HOST_LOCAL.exists(), reason="Go host-local (containernetworking-plugins) missing")


def conf(data_dir, ipam: dict | None = None, version: str = "1.0.0", name: str = "net1", **top) -> dict:
    c = {"cniVersion": version, "name": name, "type": "macvlan",
         "ipam": {"type": "host-local", "dataDir": str(data_dir), **(ipam if ipam is not None else {"subnet": "10.77.0.0/24"})}}
    c.update(top)
    return c


def ours(command: str, config, cid: str = "ctr1", ifname: str = "eth0", args: str | None = None, **kw):
    return topology.run_plugin("host-local", command, config, netns="/var/run/netns/none", container_id=cid,
                               ifname=ifname, cni_args=args, **kw)


def go(command: str, config, cid: str = "ctr1", ifname: str = "eth0", args: str | None = None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": ifname, "CNI_PATH": str(GO_HOST_LOCAL.parent)}
    if args is not None:
        env["CNI_ARGS"] = args
    p = subprocess.run([str(GO_HOST_LOCAL)], input=json.dumps(config).encode(), env=env, capture_output=True,
                       timeout=60)
    return topology.PluginRun(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def reservations(data_dir, name: str = "net1") -> dict[str, str]:
    """ip -> raw file content, for every reservation file of the network (Go's layout)."""
    d = Path(data_dir) / name
    out = {}
    if not d.is_dir():
        return out
    for p in d.iterdir():
        if p.name == "lock" or p.name.startswith("last_reserved_ip."):
            continue
        out[p.name] = p.read_bytes().decode(errors="replace") if p.is_file() and not p.is_symlink() else None
    return out


def addr(run) -> list[str]:
    assert run.code == 0, run.stdout + run.stderr
    return [ip["address"] for ip in run.json["ips"]]


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "networks"


def code(run) -> int:
    """The CNI error code a failed run printed (0 when it succeeded); a failure must exit 1 with JSON."""
    if run.code == 0:
        return 0
    assert run.code == 1 and run.json is not None, (run.code, run.stdout, run.stderr)
    return run.json["code"]
