"""RDMA traffic between pods (VM tier): the deployment documents' acceptance test, with soft RDMA devices.

The pods' interfaces come from our plugins as real processes; the RDMA side is what a soft device can do on
Debian's 6.1 kernel (measured in /work/shared/notes/rdma-traffic-netns.md, re-checked here):

shared mode (`rdma system set netns shared`; every netns sees every device)
- macvlan children (our macvlan), one siw per pod created on the pod's own child: rping 3/3 and
  `ib_write_bw -R` between the pods. siw connects and listens with sock_create() in the caller's netns
  (siw_cm.c), so its TCP runs in the pod.
- ipvlan L2 children (our ipvlan), ONE siw on the parent shared by both pods: rping 3/3 (ipvlan children share
  the parent's MAC, which is siw's iWARP GID). A siw on a macvlan *parent* fails instead (rdma_cm
  ADDR_ERROR -19: the child's MAC is not the device's), as the note records.

exclusive mode (boot default, ib_core.netns_mode=0): sriov -> rdma, each pod its own device
- The VF netdevs are a veth pair (fake PCI tree, tests/fakepci.py), the VF's RDMA function an rxe device
  (tools/vm's patched rdma_rxe: an empty disassociate_ucontext, without which ib_core refuses every move).
  A soft device dies with its netdev's move (NETDEV_UNREGISTER), so the fixture creates it inside the pod on
  net1 after `sriov` moved the netdev and before `rdma` moves the device: the order a real VF does not need.
- Proven: each pod sees exactly its own device, its GID table carries the pod's address (::ffff:a.b.c.d),
  `ibv_devinfo` in the pod shows it PORT_ACTIVE; DEL moves it back.
- Not possible with this kernel's rxe: traffic. rxe's data path is pinned to the initial netns (route
  lookup in init_net, the only UDP 4791 sockets in init_net: rxe_net.c); the test asserts what stops it:
  ibv_rc_pingpong completes with an error and no UDP 4791 socket exists in the pod.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from tests import topology
from tests.fakepci import FakePci
from tests.netns.macvlan_helpers import host_local
from tests.topology import run_plugin
from tests.vm import guest

TIMEOUT = 240  # one plugin process is ~1 s in the TCG guest, a verbs tool start several
RPING_PORT = 7174  # rping's default
PERFTEST_PORT = 18515  # perftest's default


def _set_mode(mode: str, timeout: float = 120) -> None:
    """`rdma system set netns <mode>` is refused (EBUSY) while any non-initial netns exists, and netns
    destruction is asynchronous: retry until the kernel has reaped them."""
    deadline = time.monotonic() + timeout
    while True:
        p = subprocess.run(["rdma", "system", "set", "netns", mode], capture_output=True, text=True)
        if p.returncode == 0 and guest.rdma_netns_mode() == mode:
            return
        if time.monotonic() > deadline:
            left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            raise RuntimeError(f"rdma netns mode stays {guest.rdma_netns_mode()!r}: {p.stderr.strip()}; "
                               f"named netns: {left!r}")
        time.sleep(1)


@pytest.fixture
def rdma_shared():
    guest.modprobe("ib_core", "ib_uverbs", "rdma_ucm", "siw")
    _set_mode("shared")
    yield
    _set_mode("exclusive")


def _siw(name: str, netdev: str, netns: str) -> str:
    guest.rdma("link", "add", name, "type", "siw", "netdev", netdev, netns=netns)
    return name


def _siw_del(name: str) -> None:
    subprocess.run(["rdma", "link", "delete", name], capture_output=True)


def _in(netns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *cmd]


def _server_client(server: list[str], client: list[str], netns: str, port: int) -> tuple[str, str, int]:
    """Start a server, wait until it listens (siw's listening sockets are kernel TCP sockets in the pod, so
    `ss` shows them; a client connecting earlier is rejected), then run the client (up to 3 times while the
    server lives). The verbs tools' out-of-band TCP exchange listens the same way."""
    srv = subprocess.Popen(server, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if port:
            guest.wait_for(lambda: f":{port} " in topology.sh("ss", "-Htln", netns=netns) or srv.poll() is not None,
                           f"a listener on port {port}", timeout=TIMEOUT, interval=0.5)
        out, rc = "", -1
        for _ in range(3):  # and a grace period: perftest's rdma_cm server listens before it is ready
            time.sleep(5)
            p = subprocess.run(client, capture_output=True, text=True, timeout=TIMEOUT)
            out, rc = out + p.stdout + p.stderr, p.returncode
            if rc == 0 or srv.poll() is not None:
                break
        if rc != 0 and srv.poll() is None:
            srv.kill()
        return out, srv.communicate(timeout=TIMEOUT)[0], rc
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def _add(plugin: str, conf: dict, node: topology.Node, pod: topology.Pod, cid: str, **kw) -> dict:
    r = run_plugin(plugin, "ADD", conf, netns=pod.path, node=node, container_id=cid, timeout=TIMEOUT, **kw)
    assert r.code == 0, r.stdout + r.stderr
    return r.json


def _del(plugin: str, conf: dict, node: topology.Node, pod: topology.Pod, cid: str, **kw) -> None:
    r = run_plugin(plugin, "DEL", conf, netns=pod.path, node=node, container_id=cid, timeout=TIMEOUT, **kw)
    assert r.code == 0, r.stdout + r.stderr


def _addr(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


def _shared_pods(make_pod, dummy_master, tmp_path, plugin: str, keys: dict):
    conf = {"cniVersion": "1.0.0", "name": f"traffic-{plugin}", "type": plugin, "master": "dummy0", **keys,
            "ipam": host_local(tmp_path, routes=[])}
    pods = [make_pod(), make_pod()]
    # Each pod's net1 gets the same ifindex otherwise (the first free one in a fresh netns). siw's wildcard
    # listen (rdma_cm INADDR_ANY, what perftest's server does) binds 0.0.0.0%<ifindex> in the listener's
    # netns for every siw device: two devices whose netdevs share an ifindex collide (rdma_listen fails).
    guest.dummy_add("pad0", netns=pods[1].name)
    results = [_add(plugin, conf, dummy_master, p, f"traffic-{i}", ifname="net1") for i, p in enumerate(pods)]
    return conf, pods, results


def test_shared_macvlan_pods_siw_rping_and_ib_write_bw(rdma_shared, make_pod, dummy_master, tmp_path):
    guest.modprobe("macvlan")
    conf, pods, results = _shared_pods(make_pod, dummy_master, tmp_path, "macvlan", {"mode": "bridge"})
    a, b = _addr(results[0]), _addr(results[1])
    assert guest.link("net1", pods[0].name)["ifindex"] != guest.link("net1", pods[1].name)["ifindex"]
    devs = [topology.unique("siw")[:12], topology.unique("siw")[:12]]
    try:
        for dev, pod in zip(devs, pods):
            _siw(dev, "net1", pod.name)
        # shared mode: every pod sees every device; each pod's device sits on its own macvlan child
        assert set(devs) <= set(guest.rdma_dev_names(pods[0].name))
        links = {link["ifname"]: link for link in guest.rdma_links(pods[1].name)}
        assert links[devs[1]]["netdev"] == "net1" and links[devs[1]]["state"] == "ACTIVE"
        info = subprocess.run(_in(pods[0].name, "ibv_devinfo", "-d", devs[0]), capture_output=True, text=True)
        assert "iWARP" in info.stdout and "PORT_ACTIVE" in info.stdout, info.stdout + info.stderr

        out, srv, rc = _server_client(_in(pods[0].name, "rping", "-s", "-a", a, "-C", "3", "-v"),
                                      _in(pods[1].name, "rping", "-c", "-a", a, "-C", "3", "-v"),
                                      pods[0].name, RPING_PORT)
        assert rc == 0 and out.count("ping data: rdma-ping-") == 3, out
        assert srv.count("server ping data: rdma-ping-") == 3, srv

        out, srv, rc = _server_client(_in(pods[0].name, "ib_write_bw", "-R", "-d", devs[0], "-n", "50"),
                                      _in(pods[1].name, "ib_write_bw", "-R", "-d", devs[1], "-n", "50", a),
                                      pods[0].name, PERFTEST_PORT)
        assert rc == 0, out + "\nserver:\n" + srv
        row = re.search(r"^\s*65536\s+50\s+(\S+)\s+(\S+)", out, re.M)  # bytes, iterations, peak, average
        assert row and float(row.group(2)) > 0, out
        print(f"ib_write_bw -R macvlan+siw, pod {b} -> pod {a}: {row.group(2)} MB/sec average")
    finally:
        for dev in devs:
            _siw_del(dev)
    for i, pod in enumerate(pods):
        _del("macvlan", conf, dummy_master, pod, f"traffic-{i}", ifname="net1")


def test_shared_ipvlan_pods_one_siw_on_the_parent(rdma_shared, make_pod, dummy_master, tmp_path):
    guest.modprobe("ipvlan")
    dev = _siw(topology.unique("siw")[:12], "dummy0", dummy_master.name)
    try:
        conf, pods, results = _shared_pods(make_pod, dummy_master, tmp_path, "ipvlan", {"mode": "l2"})
        a = _addr(results[0])
        assert all(dev in guest.rdma_dev_names(p.name) for p in pods)
        out, srv, rc = _server_client(_in(pods[0].name, "rping", "-s", "-a", a, "-C", "3", "-v"),
                                      _in(pods[1].name, "rping", "-c", "-a", a, "-C", "3", "-v"),
                                      pods[0].name, RPING_PORT)
        assert rc == 0 and out.count("ping data: rdma-ping-") == 3, out
        for i, pod in enumerate(pods):
            _del("ipvlan", conf, dummy_master, pod, f"traffic-{i}", ifname="net1")
    finally:
        _siw_del(dev)


@pytest.fixture
def exclusive_node(rdma_exclusive):
    """A node whose two "VFs" are the ends of one veth pair (so the pods share a wire), in a fake PCI tree
    whose VFs list the RDMA devices the test will create (infiniband/<name>, as a VF lists its mlx5_N)."""
    guest.modprobe("ib_uverbs", "veth")
    guest.load_rxe("patched")
    node = topology.make_node(default_route=False)
    pci = FakePci()
    try:
        topology.sh("ip", "-n", node.name, "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
        topology.sh("ip", "-n", node.name, "link", "add", "ens1f0v0", "type", "veth", "peer", "name", "ens1f0v1")
        pf = pci.add_pf(pci.addr(0x3b, 0, 0), "pf0")
        vfs, devs = [], []
        for i in (0, 1):
            vf = pci.add_vf(pf, i, pci.addr(0x3b, 0, 2 + i), f"ens1f0v{i}")
            dev = topology.unique("rxe")[:12]
            (pci.dev_dir(vf) / "infiniband" / dev).mkdir(parents=True)
            vfs.append(vf)
            devs.append(dev)
        yield node, pci, vfs, devs
    finally:
        for dev in devs:
            for ns in (None, *[line.split()[0] for line in topology.sh("ip", "netns", "list").splitlines()]):
                if subprocess.run((_in(ns, "rdma") if ns else ["rdma"]) + ["link", "delete", dev],
                                  capture_output=True).returncode == 0:
                    break
        pci.cleanup()
        topology.netns_del(node.name)


def _gids(pod: str, dev: str) -> list[str]:
    out = topology.sh("sh", "-c", f"cat /sys/class/infiniband/{dev}/ports/1/gids/* 2>/dev/null", netns=pod)
    return [g for g in out.split() if g != "0000:0000:0000:0000:0000:0000:0000:0000"]


def _v4_gid(addr: str) -> str:
    o = [int(x) for x in addr.split(".")]
    return f"0000:0000:0000:0000:0000:ffff:{o[0]:02x}{o[1]:02x}:{o[2]:02x}{o[3]:02x}"


def test_exclusive_sriov_rdma_pods_own_devices(exclusive_node, make_pod, tmp_path):
    node, pci, vfs, devs = exclusive_node
    pods = [make_pod(), make_pod()]
    ipam = {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": "10.9.7.0/24"}]]}
    state = str(tmp_path / "state")
    results, rdma_confs = [], []
    for i, pod in enumerate(pods):
        # Multus injects the allocated VF as deviceID into every plugin of the chain
        sriov = {"cniVersion": "1.0.0", "name": "traffic-excl", "type": "sriov", "deviceID": vfs[i], "ipam": ipam}
        res = _add("sriov", sriov, node, pod, f"excl-{i}", ifname="net1", extra_env=pci.env)
        # fixture step (see module doc): the soft device is born on the pod's net1, registered in init_net,
        # and handed to the node netns, which plays the host whose VF function it is
        guest.rdma("link", "add", devs[i], "type", "rxe", "netdev", "net1", netns=pod.name)
        guest.rdma("dev", "set", devs[i], "netns", node.name)
        rdma = {"cniVersion": "1.0.0", "name": "traffic-excl", "type": "rdma", "deviceID": vfs[i],
                "dataDir": state, "prevResult": res}
        results.append(_add("rdma", rdma, node, pod, f"excl-{i}", ifname="net1", extra_env=pci.env))
        rdma_confs.append((sriov, rdma))
    addrs = [_addr(r) for r in results]
    for i, pod in enumerate(pods):
        assert guest.rdma_dev_names(pod.name) == [devs[i]]  # exactly its own device
        assert _v4_gid(addrs[i]) in _gids(pod.name, devs[i])  # GID table follows the pod's address
        info = subprocess.run(_in(pod.name, "ibv_devinfo"), capture_output=True, text=True, timeout=TIMEOUT)
        assert f"hca_id:\t{devs[i]}" in info.stdout and "PORT_ACTIVE" in info.stdout, info.stdout + info.stderr
        assert info.stdout.count("hca_id:") == 1
    assert not set(devs) & set(guest.rdma_dev_names(node.name))  # and the node sees neither

    # What stops traffic: rxe's UDP 4791 receive sockets exist only in the initial netns.
    assert ":4791" in topology.sh("ss", "-Huln")
    assert all(":4791" not in topology.sh("ss", "-Huln", netns=p.name) for p in pods)
    gid_index = str(_gids(pods[0].name, devs[0]).index(_v4_gid(addrs[0])))
    out, _, rc = _server_client(_in(pods[0].name, "ibv_rc_pingpong", "-d", devs[0], "-g", gid_index, "-n", "5"),
                                _in(pods[1].name, "ibv_rc_pingpong", "-d", devs[1], "-g", gid_index, "-n", "5",
                                    addrs[0]), pods[0].name, PERFTEST_PORT)  # its TCP exchange port
    # the TCP exchange works (it is the pod's own stack), the RDMA part does not: a completion error
    assert rc != 0 and "remote address:" in out and "Failed status" in out, out
    print("exclusive rxe pods, ibv_rc_pingpong:", [line for line in out.splitlines() if "address" in line or
                                                   "Failed" in line][:3])

    for i, pod in enumerate(pods):  # DEL in reverse chain order, as libcni does
        sriov, rdma = rdma_confs[i]
        _del("rdma", rdma, node, pod, f"excl-{i}", ifname="net1", extra_env=pci.env)
        assert guest.rdma_dev_names(pod.name) == [] and devs[i] in guest.rdma_dev_names(node.name)  # home
        _del("sriov", dict(sriov, prevResult=results[i]), node, pod, f"excl-{i}", ifname="net1", extra_env=pci.env)
        assert guest.link(f"ens1f0v{i}", node.name) is not None  # the VF netdev is home
    assert not [p for p in Path(state).rglob("*") if p.is_file() and not p.name.endswith("lock")]
