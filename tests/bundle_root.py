"""The frozen bundle installed into a root of its own and run chrooted there (tests/netns/test_selfcontained.py,
tests/netns/test_image.py): a private mount namespace in the node's netns, holding /proc and /run/netns
(bind-mounted) and a fresh sysfs of that netns; optionally the root laid over a cached Debian userland.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from cni_rdma.registry import PLUGINS
from tests import topology

TYPES = sorted(PLUGINS)
LIB, BIN = "/opt/cni/lib/cni-rdma", "/opt/cni/bin"
MOUNTPOINTS = ("proc", "sys", "run/netns")


def bundle_exe() -> Path:
    return Path(os.path.realpath(topology.bin_dir() / TYPES[0]))


def is_frozen() -> bool:
    with open(bundle_exe(), "rb") as f:
        return f.read(4) == b"\x7fELF"


# String condition: evaluated when the tests run, in the test module (which imports is_frozen).
frozen_only = pytest.mark.skipif("not is_frozen()", reason="CNI_TEST_BIN_DIR holds dev launchers, not the bundle")


def bundle_arch() -> tuple[str, str]:
    """(Debian arch, multiarch triplet) of the bundle under test, from its ELF e_machine (amd64 or arm64)."""
    with open(bundle_exe(), "rb") as f:
        machine = int.from_bytes(f.read(20)[18:20], "little")
    return {0x3E: ("amd64", "x86_64-linux-gnu"), 0xB7: ("arm64", "aarch64-linux-gnu")}[machine]


def add_mountpoints(root: Path) -> None:
    for d in MOUNTPOINTS:
        (root / d).mkdir(parents=True, exist_ok=True)


def install_root(root: Path) -> Path:
    """ROOT with nothing but the installed bundle (and empty mount points); installed by the bundle itself."""
    add_mountpoints(root)
    p = subprocess.run([str(bundle_exe().parent / "cni-rdma"), "install", f"--destdir={root}", f"--lib-dir={LIB}",
                        f"--bin-dir={BIN}"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stdout + p.stderr
    return root


def run_in_root(root: Path, node: topology.Node, argv: list[str], env: dict, stdin: bytes = b"",
                 lower: Path | None = None, tmp: Path | None = None) -> subprocess.CompletedProcess:
    """argv chrooted into root, in node's netns and a private mount namespace. With `lower`, root is laid over
    it (overlayfs: lower read-only, root takes the writes), so the cached userland is never modified."""
    steps = ["set -e"]
    target = root
    if lower is not None:
        assert tmp is not None
        target, work = tmp / "merged", tmp / "overlay-work"
        target.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        steps.append(f"mount -t overlay overlay -o lowerdir={lower},upperdir={root},workdir={work} {target}")
    r = shlex.quote(str(target))
    steps += [f"mount --rbind /proc {r}/proc", f"mount -t sysfs sysfs {r}/sys",
              f"mount --rbind /run/netns {r}/run/netns", f'exec chroot {r} "$@"']
    cmd = ["nsenter", f"--net={node.path}", "unshare", "--mount", "--propagation", "private",
           "sh", "-c", "; ".join(steps), "sh", *argv]
    return subprocess.run(cmd, input=stdin, env=env, capture_output=True, timeout=120)


def cni_env(command: str, pod: topology.Pod | None = None, **extra: str) -> dict:
    env = {"CNI_COMMAND": command, "CNI_PATH": BIN, "CNI_IFNAME": "net1", "CNI_CONTAINERID": "selfcontained1"}
    if pod is not None:
        env["CNI_NETNS"] = f"/run/netns/{pod.name}"
    env.update(extra)
    return env


def add_check_del(run, root: Path, pod: topology.Pod, subnet_prefix: str, name: str) -> None:
    """macvlan (master eth0 of the node) + host-local ADD, CHECK, DEL through `run(command, config)`, the
    plugin running chrooted in `root`: the pod gets the first address, host-local's reservation lands in the
    root, DEL takes both away."""
    conf = {"cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": "eth0",
            "ipam": {"type": "host-local", "subnet": f"{subnet_prefix}.0/24", "dataDir": "/var/lib/cni/networks"}}
    reservation = root / "var/lib/cni/networks" / name / f"{subnet_prefix}.2"

    add = run("ADD", conf)
    assert add.returncode == 0, add
    result = json.loads(add.stdout)
    assert result["ips"][0]["address"] == f"{subnet_prefix}.2/24"
    assert [a["local"] for a in pod.addrs("net1") if a["family"] == "inet"] == [f"{subnet_prefix}.2"]
    assert reservation.exists()  # host-local ran in-process inside the root, not on this machine

    check = run("CHECK", {**conf, "prevResult": result})
    assert check.returncode == 0, check
    assert check.stdout == b""

    delete = run("DEL", {**conf, "prevResult": result})
    assert delete.returncode == 0, delete
    assert "net1" not in [link["ifname"] for link in pod.links()]
    assert not reservation.exists()
