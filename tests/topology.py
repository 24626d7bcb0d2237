"""Throwaway real-kernel topologies for the host and VM tiers, and a real-process plugin runner.

Everything is created with iproute2 (`ip`) and read back with `ip -j`, an independent path from the
project's own netlink layer. Names are unique per test run; cleanup runs on fixture teardown and at
interpreter exit, so a failed or interrupted test leaves no namespace behind.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_created: list[str] = []  # netns names still to delete at exit (test-process bookkeeping only)


def bin_dir() -> Path:
    return Path(os.environ.get("CNI_TEST_BIN_DIR", ROOT / "build" / "dev-bin")).resolve()


def sh(*args: str, check: bool = True, netns: str | None = None) -> str:
    cmd = list(args)
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def ip_json(*args: str, netns: str | None = None):
    out = sh("ip", "-j", *(["-n", netns] if netns else []), *args)
    return json.loads(out) if out.strip() else []


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def netns_add(name: str) -> str:
    """Create a netns the way runtimes do: a bind mount under /var/run/netns."""
    sh("ip", "netns", "add", name)
    _created.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return f"/var/run/netns/{name}"


def netns_del(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    if name in _created:
        _created.remove(name)


@atexit.register
def _cleanup_all() -> None:
    for name in list(_created):
        netns_del(name)


@dataclass
class Node:
    """A "node" netns whose uplink `eth0` (one end of a veth pair) serves as macvlan/ipvlan master.

    The peer end `peer0` stays in the same netns so nothing touches the machine's own links.
    """

    name: str
    path: str
    master: str = "eth0"
    master_mtu: int = 1500
    addrs: list[str] = field(default_factory=list)

    def links(self):
        return ip_json("link", "show", netns=self.name)

    def link(self, ifname: str):
        return ip_json("-d", "link", "show", "dev", ifname, netns=self.name)[0]


def make_node(default_route: bool = True, mtu: int = 1500) -> Node:
    name = unique("crn-node")
    path = netns_add(name)
    sh("ip", "-n", name, "link", "add", "eth0", "mtu", str(mtu), "type", "veth", "peer", "name", "peer0", "mtu", str(mtu))
    sh("ip", "-n", name, "link", "set", "eth0", "up")
    sh("ip", "-n", name, "link", "set", "peer0", "up")
    node = Node(name=name, path=path, master_mtu=mtu)
    if default_route:
        sh("ip", "-n", name, "addr", "add", "192.0.2.1/24", "dev", "eth0")
        sh("ip", "-n", name, "route", "add", "default", "via", "192.0.2.254", "dev", "eth0", "onlink")
        node.addrs.append("192.0.2.1/24")
    return node


@dataclass
class Pod:
    name: str
    path: str

    def links(self):
        return ip_json("link", "show", netns=self.name)

    def link(self, ifname: str):
        found = ip_json("-d", "link", "show", netns=self.name)
        for link in found:
            if link["ifname"] == ifname:
                return link
        return None

    def addrs(self, ifname: str):
        return ip_json("addr", "show", "dev", ifname, netns=self.name)[0]["addr_info"]

    def routes(self, family: str = "-4"):
        return ip_json(family, "route", "show", netns=self.name)


def make_pod() -> Pod:
    name = unique("crn-pod")
    return Pod(name=name, path=netns_add(name))


@dataclass
class PluginRun:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None


def run_plugin(
    plugin: str,
    command: str,
    config: dict | str | bytes,
    *,
    netns: str = "",
    ifname: str = "net1",
    container_id: str = "ctr1",
    cni_args: str | None = None,
    node: Node | None = None,
    path: str | None = None,
    extra_env: dict | None = None,
    timeout: float = 60,
    cwd: str | None = None,
) -> PluginRun:
    """Run one plugin as a real process, as kubelet/libcni would; inside the node netns if given."""
    if isinstance(config, dict):
        stdin = json.dumps(config).encode()
    elif isinstance(config, str):
        stdin = config.encode()
    else:
        stdin = config
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": path if path is not None else str(bin_dir()),
    }
    if os.environ.get("CNI_RDMA_STATE_ROOT"):  # the test's own state root (tests/conftest.py)
        env["CNI_RDMA_STATE_ROOT"] = os.environ["CNI_RDMA_STATE_ROOT"]
    if cni_args is not None:
        env["CNI_ARGS"] = cni_args
    env.update(extra_env or {})
    cmd = [str(bin_dir() / plugin)]
    if node is not None:
        cmd = ["nsenter", f"--net={node.path}", *cmd]
    p = subprocess.run(cmd, input=stdin, env=env, capture_output=True, timeout=timeout, cwd=cwd)
    return PluginRun(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


_SNIFF_ARP = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
while True:
    print(s.recv(2048).hex(), flush=True)
"""


class ArpSniffer:
    """Capture the ARP frames seen on a link in a netns (raw AF_PACKET socket) until the test has seen
    what it waits for: a handshake on the frames themselves, not a fixed capture time."""

    def __init__(self, netns: str, ifname: str):
        import sys

        self.proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", _SNIFF_ARP, ifname],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self.seen: list[bytes] = []

    def __enter__(self) -> "ArpSniffer":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()  # also when the ADD under test failed before until()
        self.proc.wait()

    def until(self, done, limit: float = 60.0) -> list[bytes]:
        """Frames until done(frames) is true; `limit` only bounds a failing test (the kernel sends its
        gratuitous ARP as the link comes up, milliseconds after the ADD)."""
        import select
        import time

        deadline = time.monotonic() + limit
        try:
            while not done(self.seen) and time.monotonic() < deadline:
                ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
                line = self.proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
                if line.strip():
                    self.seen.append(bytes.fromhex(line.strip()))
        finally:
            self.proc.kill()
            self.proc.wait()
        return self.seen


def gratuitous_arps(frames: list[bytes], mac: str, ip: str) -> list[bytes]:
    """Broadcast ARP requests from mac announcing ip as both sender and target address."""
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = bytes(int(x) for x in ip.split("."))
    return [f for f in frames if f[:6] == b"\xff" * 6 and f[6:12] == hw and f[20:22] == b"\x00\x01"
            and f[28:32] == addr and f[38:42] == addr]
