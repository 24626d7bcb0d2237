"""The e2e tier's machinery: the installed bundle, a private mount namespace ("jail") the runtimes run in, a
busybox rootfs, and containerd / podman started on private dirs and stopped by PID.

Why a jail: `ctr run --cni` loads its network with go-cni's `WithDefaultConf`, i.e. the fixed /etc/cni/net.d and
/opt/cni/bin (containerd 1.6 cmd/ctr/commands/run/run.go). So every runtime command runs in a mount namespace of
its own, held by one sleeping process, in which /etc/cni/net.d, /opt/cni/bin, /var/lib/cni (libcni's result
cache, our plugins' state, host-local's default dataDir) and /run/netns are bind mounts of the test's temp dirs.
The machine's real directories are never written; everything a runtime leaves behind is visible in the temp dirs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

from tests import topology

ROOT = topology.ROOT
STATE_ROOT_ENV = "CNI_RDMA_STATE_ROOT"  # cni_rdma.state: the tests' per-test state root
GO_PLUGIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static
APPLETS = ("sh", "ping", "ip", "sleep", "cat", "ls", "touch", "echo", "grep", "sed", "ifconfig", "true", "hostname")


def run(cmd: list[str], *, timeout: float = 120, check: bool = True, env: dict | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def stop_pid(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL, one process we started (never by name)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def wait_file(path: Path, proc: subprocess.Popen, timeout: float = 90.0) -> str:
    """The text a container writes to a bind-mounted file (written then renamed: complete when it exists)."""
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"container exited early ({proc.returncode}): {proc.communicate()}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.1)
    return path.read_text()


def install_bundle(prefix: Path) -> Path:
    """`make install PREFIX=<prefix>`: the frozen bundle as an operator installs it; returns the bin dir.

    Debian's Go plugins that our conflists chain (tuning, bandwidth, loopback, ...) are linked in next to ours:
    the Go host-local, macvlan and ipvlan are *not*, so a type resolves to our plugin only."""
    run(["make", "-s", "-C", str(ROOT), "install", f"PREFIX={prefix}"], timeout=900)
    bin_dir = prefix / "bin"
    link_go_plugins(bin_dir)
    return bin_dir


def link_go_plugins(bin_dir: Path) -> None:
    """Debian's Go plugins next to ours in a CNI bin dir (loopback for go-cni, the metas a conflist chains),
    each only where we have no plugin of that name."""
    ours = {p.name for p in bin_dir.iterdir()}
    for go in sorted(GO_PLUGIN_DIR.iterdir()):
        if go.name not in ours:
            (bin_dir / go.name).symlink_to(go)


def make_rootfs(path: Path) -> Path:
    """A container rootfs without any image pull: Debian's static busybox and a few applet links."""
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "shared", "run"):
        (path / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in APPLETS:
        (path / "bin" / applet).symlink_to("busybox")
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\n")
    return path


class Jail:
    """A private mount namespace held by `sleep`, in which the CNI dirs are the test's own (see module doc)."""

    def __init__(self, base: Path, bin_dir: Path):
        self.base = base
        self.bin_dir = bin_dir
        self.conf_dir = base / "net.d"
        self.var_dir = base / "var-lib-cni"
        self.netns_dir = base / "run-netns"
        for d in (self.conf_dir, self.var_dir, self.netns_dir):
            d.mkdir(parents=True, exist_ok=True)
        # Mount points must exist; /var/lib/cni and /run/netns are what every tier and `ip netns` create anyway.
        os.makedirs("/var/lib/cni", exist_ok=True)
        os.makedirs("/run/netns", exist_ok=True)
        opt = "/opt/cni" if os.path.isdir("/opt/cni") else "/opt"
        script = " && ".join([
            "mount --make-rprivate /",
            "mount -t tmpfs e2e-etc-cni /etc/cni" if os.path.isdir("/etc/cni") else "mkdir -p /etc/cni",
            "mkdir -p /etc/cni/net.d",
            f"mount --bind {self.conf_dir} /etc/cni/net.d",
            f"mount -t tmpfs e2e-opt {opt}",
            "mkdir -p /opt/cni/bin",
            f"mount --bind {bin_dir} /opt/cni/bin",
            f"mount --bind {self.var_dir} /var/lib/cni",
            f"mount --bind {self.netns_dir} /run/netns",
            "echo ready",
            "exec sleep infinity",
        ])
        if not os.path.isdir("/etc/cni"):
            raise RuntimeError("/etc/cni is missing: the jail would have to create it on the real machine")
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            stop_pid(self.holder)
            raise RuntimeError(f"jail setup failed: {self.holder.stderr.read()}")

    def cmd(self, *args: str, net: str | None = None) -> list[str]:
        """A command line in the jail; `net` (a netns path) also enters that netns (a node's)."""
        # Without CNI_RDMA_STATE_ROOT (tests/conftest.py sets one per test): in the jail our plugins keep their
        # state where a node's do, /var/lib/cni, which here is the jail's own directory.
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", *([f"--net={net}"] if net else []), "--",
                "env", "-u", STATE_ROOT_ENV, *args]

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run(self.cmd(*args), **kw)

    def write_conf(self, name: str, conf: dict) -> Path:
        path = self.conf_dir / name
        path.write_text(json.dumps(conf, indent=1))
        return path

    def leftovers(self, network: str) -> dict[str, list[str]]:
        """Every per-container record the plugins and libcni keep: host-local leases, the result cache, our
        plugins' state. Empty lists once every container has been DELeted."""
        found: dict[str, list[str]] = {}
        pool = self.var_dir / "networks" / network
        found["leases"] = sorted(p.name for p in pool.iterdir() if p.name != "lock"
                                 and not p.name.startswith("last_reserved_ip")) if pool.is_dir() else []
        results = self.var_dir / "results"
        found["results"] = sorted(p.name for p in results.iterdir()) if results.is_dir() else []
        for plugin in ("macvlan", "ipvlan", "sriov", "rdma"):
            d = self.var_dir / plugin
            if d.is_dir():
                found[plugin] = sorted(str(p.relative_to(d)) for p in d.rglob("*")
                                       if p.is_file() and p.name != "lock" and not p.name.endswith(".lock"))
        return found

    def leases(self, network: str) -> dict[str, str]:
        """host-local's pool as a map ip -> container ID (first line of the lease file)."""
        pool = self.var_dir / "networks" / network
        out = {}
        for p in pool.iterdir():
            if p.name != "lock" and not p.name.startswith("last_reserved_ip"):
                out[p.name] = p.read_text().splitlines()[0].strip()
        return out

    def close(self) -> None:
        stop_pid(self.holder)


class Containerd:
    """containerd on its own root/state/socket, inside the jail; CRI disabled (ctr drives it directly)."""

    def __init__(self, jail: Jail, base: Path):
        self.jail = jail
        base.mkdir(parents=True, exist_ok=True)
        self.sock = base / "containerd.sock"
        self.namespace = "e2e"
        config = base / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{base}/root"\nstate = "{base}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.sock}"\n[ttrpc]\n  address = "{self.sock}.ttrpc"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n')
        self.log = open(base / "containerd.log", "w")
        self.proc = subprocess.Popen(jail.cmd("containerd", "-c", str(config)), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while self.ctr("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"containerd did not start: {(base / 'containerd.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def ctr_cmd(self, *args: str, net: str | None = None) -> list[str]:
        return self.jail.cmd("ctr", "-a", str(self.sock), "-n", self.namespace, *args, net=net)

    def ctr(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run(self.ctr_cmd(*args), **kw)

    def version(self) -> str:
        return self.ctr("version").stdout

    def close(self) -> None:
        tasks = self.ctr("task", "ls", "-q", check=False).stdout.split()
        for t in tasks:
            self.ctr("task", "kill", "-s", "SIGKILL", t, check=False)
        for t in tasks:
            self.ctr("task", "delete", "-f", t, check=False)
        for c in self.ctr("container", "ls", "-q", check=False).stdout.split():
            self.ctr("container", "delete", c, check=False)
        stop_pid(self.proc)
        self.log.close()


def ctr_run_pair(containerd: Containerd, rootfs: Path, shared: Path, network: str, *, ping: str = "-c 3 -W 2",
                 timeout: float = 120, on_a_up: Callable[[str], None] | None = None) -> tuple[str, str]:
    """Two `ctr run --rm --cni` containers on the jail's conflist `network`: A publishes its eth0 address through
    the bind-mounted `shared` dir and waits, `on_a_up(a_ip)` inspects the node meanwhile, B pings A and lets it
    end. go-cni ADDs before each task starts and DELs after it exits (only in the foreground), so afterwards no
    task, lease, cached result or plugin record is left. Returns (A's address, B's output: its eth0 line first)."""
    mount = f"type=bind,src={shared},dst=/shared,options=rbind:rw"
    script_a = ("ip -o -4 addr show eth0 > /shared/a.tmp && mv /shared/a.tmp /shared/a.addr; "
                "while [ ! -e /shared/done ]; do sleep 0.1; done")
    a = subprocess.Popen(containerd.ctr_cmd("run", "--rm", "--cni", "--mount", mount, "--rootfs", str(rootfs),
                                            "ctr-a", "/bin/sh", "-c", script_a),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        a_ip = wait_file(shared / "a.addr", a, timeout=timeout).split()[3].split("/")[0]
        if on_a_up is not None:
            on_a_up(a_ip)
        script_b = f"ip -o -4 addr show eth0; ping {ping} {a_ip}; echo rc=$? ; touch /shared/done"
        b = subprocess.run(containerd.ctr_cmd("run", "--rm", "--cni", "--mount", mount, "--rootfs", str(rootfs),
                                              "ctr-b", "/bin/sh", "-c", script_b),
                           capture_output=True, text=True, timeout=2 * timeout)
        assert b.returncode == 0 and "rc=0" in b.stdout, b.stdout + b.stderr
        _, err = a.communicate(timeout=timeout)
        assert a.returncode == 0, err
    finally:
        (shared / "done").touch()
        if a.poll() is None:
            stop_pid(a)
    left = containerd.jail.leftovers(network)
    assert all(v == [] for v in left.values()), left
    assert containerd.ctr("task", "ls", "-q").stdout.strip() == ""
    return a_ip, b.stdout


class Podman:
    """podman with the CNI backend and every dir private: containers.conf + storage.conf via the environment."""

    def __init__(self, jail: Jail, base: Path):
        self.jail = jail
        for d in ("root", "runroot", "tmp"):
            (base / d).mkdir(parents=True, exist_ok=True)
        import resource

        # lowered below this process's hard limits (raising needs CAP_SYS_RESOURCE, which this sandbox lacks)
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
        # podman asks runc for nofile/nproc 1048576 when root; this machine's hard limits are lower.
        # (containers.conf default_ulimits does not override it in 4.3: `--ulimit` on every run/create does.)
        self.ulimits = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
        (base / "containers.conf").write_text(
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{base}/events.log"\ntmp_dir = "{base}/tmp"\n'
            "[network]\n"
            'network_backend = "cni"\n'
            f'cni_plugin_dirs = ["{jail.bin_dir}"]\nnetwork_config_dir = "{jail.conf_dir}"\n')
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/root"\nrunroot = "{base}/runroot"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(base / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(base / "storage.conf")}
        self.args = ["podman", "--network-backend", "cni", "--cni-config-dir", str(jail.conf_dir),
                     "--root", str(base / "root"), "--runroot", str(base / "runroot"), "--tmpdir", str(base / "tmp")]

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 net: str | None = None) -> subprocess.CompletedProcess:
        if args[0] in ("run", "create"):
            args = (args[0], *self.ulimits, *args[1:])
        return run(self.jail.cmd(*self.args, *args, net=net), env=self.env, check=check, timeout=timeout)

    def version(self) -> str:
        return self("version", "--format", "{{.Client.Version}}").stdout.strip()

    def close(self) -> None:
        self("rm", "-a", "-f", "-t", "0", check=False)


def veth_master() -> tuple[str, str]:
    """A veth pair in the initial netns, both ends up: the macvlan master of runtime-created containers."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"e2e{tag}a", f"e2e{tag}b"
    topology.sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    topology.sh("ip", "link", "set", a, "up")
    topology.sh("ip", "link", "set", b, "up")
    return a, b


class Fabric:
    """One L2 segment: a "switch" netns holding a bridge; each node netns gets `eth0` patched into a port."""

    def __init__(self):
        self.switch = topology.unique("e2e-sw")
        topology.netns_add(self.switch)
        topology.sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        topology.sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        self.nodes: list[topology.Node] = []
        self.host_ports: list[str] = []

    def add_node(self, addr: str) -> topology.Node:
        name = topology.unique("e2e-node")
        path = topology.netns_add(name)
        port = f"port{len(self.nodes)}"
        topology.sh("ip", "link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", port,
                    "netns", self.switch)
        topology.sh("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        topology.sh("ip", "-n", name, "addr", "add", addr, "dev", "eth0")
        topology.sh("ip", "-n", name, "link", "set", "eth0", "up")
        node = topology.Node(name=name, path=path, addrs=[addr])
        self.nodes.append(node)
        return node

    def add_host_port(self, addr: str) -> str:
        """A port of the switch in the initial netns (unique name), for services the test runs there."""
        name = f"e2e{uuid.uuid4().hex[:8]}"
        topology.sh("ip", "link", "add", name, "type", "veth", "peer", "name", "hostport", "netns", self.switch)
        topology.sh("ip", "-n", self.switch, "link", "set", "hostport", "master", "br0", "up")
        topology.sh("ip", "addr", "add", addr, "dev", name)
        topology.sh("ip", "link", "set", name, "up")
        self.host_ports.append(name)
        return name

    def close(self) -> None:
        for name in self.host_ports:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        for n in self.nodes:
            topology.netns_del(n.name)
        topology.netns_del(self.switch)


def versions() -> dict[str, str]:
    def first(cmd: list[str]) -> str:
        try:
            return run(cmd, check=False, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "absent"

    pkgs = ("containerd", "podman", "runc", "golang-go", "golang-github-appc-cni-dev", "containernetworking-plugins",
            "etcd-server",
            "busybox-static", "rdma-core", "ibverbs-utils", "perftest")
    out = {p: first(["dpkg-query", "-W", "-f=${Version}", p]) for p in pkgs}
    return out


DRIVER_SRC = Path(__file__).resolve().parent / "driver" / "main.go"
GOPATH = "/usr/share/gocode"  # Debian's golang-github-appc-cni-dev installs libcni here (GOPATH layout)


def build_driver() -> Path:
    """The libcni driver, built in GOPATH mode against Debian's libcni; cached by source + toolchain + libcni."""
    import hashlib

    key = hashlib.sha256(DRIVER_SRC.read_bytes())
    key.update(run(["go", "version"]).stdout.encode())
    key.update(run(["dpkg-query", "-W", "-f=${Version}", "golang-github-appc-cni-dev"]).stdout.encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cni-rdma-e2e"
    exe = cache / f"cni-e2e-driver-{key.hexdigest()[:16]}"
    if not exe.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_suffix(f".tmp{os.getpid()}")
        env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off", "GOCACHE": str(cache / "gocache"),
               "CGO_ENABLED": "0"}
        run(["go", "build", "-o", str(tmp), str(DRIVER_SRC)], env=env, timeout=600)
        os.replace(tmp, exe)
    return exe


class Driver:
    """Runs the libcni driver as cnitool would be run: NETCONFPATH, CNI_PATH, CNI_ARGS, CAP_ARGS, a cache dir."""

    def __init__(self, exe: Path, conf_dir: Path, bin_dir: Path, cache_dir: Path):
        self.exe, self.conf_dir, self.bin_dir, self.cache_dir = exe, conf_dir, bin_dir, cache_dir

    def __call__(self, command: str, network: str, netns: str, *, container_id: str = "", ifname: str = "eth0",
                 cni_args: str = "", cap_args: dict | None = None, node_netns: str | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        e = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "NETCONFPATH": str(self.conf_dir),
             "CNI_PATH": str(self.bin_dir), "CNI_IFNAME": ifname, "CNI_CACHE_DIR": str(self.cache_dir)}
        if os.environ.get(STATE_ROOT_ENV):  # libcni passes its environment on to the plugins
            e[STATE_ROOT_ENV] = os.environ[STATE_ROOT_ENV]
        if container_id:
            e["CNI_CONTAINERID"] = container_id
        if cni_args:
            e["CNI_ARGS"] = cni_args
        if cap_args is not None:
            e["CAP_ARGS"] = json.dumps(cap_args)
        e.update(env or {})
        cmd = [str(self.exe), command, network, netns]
        if node_netns:
            cmd = ["nsenter", f"--net={node_netns}", *cmd]
        return run(cmd, env=e, check=False, timeout=120)
