"""rdma plugin on the real ib_core netns machinery (VM tier, exclusive mode from boot).

The RDMA device is an rxe (soft-RoCE) device built from the patched rdma_rxe (tools/vm: an empty
disassociate_ucontext op, without which ib_core refuses every netns move). The PCI side is a fake
sysfs tree (tests/fakepci.py) whose VF lists the rxe device under infiniband/, as a real VF lists
its mlx5_N. Everything else is real: RDMA netlink, netns moves, netns death, the plugin process;
state is read back with iproute2's `rdma` tool, never with the project's own netlink layer.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from tests import topology
from tests.fakepci import FakePci
from tests.topology import run_plugin
from tests.vm import guest

NET = "rdma-net"
MAC = "02:00:00:0a:0b:0c"


def prev_result(pod_path: str, version: str = "1.1.0", mac: str = MAC) -> dict:
    out = {"cniVersion": version,
           "interfaces": [{"name": "net1", "mac": mac, "sandbox": pod_path}],
           "ips": [{"interface": 0, "address": "10.56.217.5/24", "gateway": "10.56.217.1"}],
           "dns": {}}
    if version in ("0.3.0", "0.3.1", "0.4.0"):
        out["ips"][0]["version"] = "4"
    return out


def rdma_conf(tmp_path, pod_path: str, device_id: str | None, version: str = "1.1.0", prev=True) -> dict:
    c = {"cniVersion": version, "name": NET, "type": "rdma", "dataDir": str(tmp_path / "state")}
    if device_id:
        c["deviceID"] = device_id
    if prev:
        c["prevResult"] = prev_result(pod_path, version)
    return c


def vf_with_rdma(rdma_dev: str, pf_netdev: str | None = None, vf_id: int = 0) -> tuple[FakePci, str]:
    """A fake PF with one VF whose infiniband/ lists rdma_dev (what mlx5 shows for a VF)."""
    pci = FakePci()
    pf = pci.add_pf(pci.addr(0x3b, 0, 0), pf_netdev)
    vf = pci.add_vf(pf, vf_id, pci.addr(0x3b, 0, 2 + vf_id), None)
    (pci.dev_dir(vf) / "infiniband" / rdma_dev).mkdir(parents=True)
    return pci, vf


@pytest.fixture
def fake_vf(rxe_device):
    pci, vf = vf_with_rdma(rxe_device.name)
    yield pci, vf
    pci.cleanup()


def state_file(tmp_path, cid: str = "ctr1"):
    return tmp_path / "state" / "rdma" / f"{NET}-{cid}-net1"


def rdma_plugin(command, conf, pod_path, pci, **kw):
    return run_plugin("rdma", command, conf, netns=pod_path, extra_env=pci.env, **kw)


# ---------------------------------------------------------------- the netlink layer itself
def test_rdma_netlink_against_iproute2(rxe_device, pod):
    from tests.netlink_ops import RdmaForTests as Rdma
    from cni_rdma.netns import in_netns

    with Rdma() as nl:
        assert nl.netns_mode() == "exclusive"
        devs = {d.name: d for d in nl.devices()}
        ours = devs[rxe_device.name]
        assert nl.device(name=rxe_device.name) == ours == nl.device(index=ours.index)
        ports = nl.ports(ours.index)
        assert [p.netdev for p in ports] == [rxe_device.netdev]
    seen = {d["ifname"]: d["ifindex"] for d in guest.rdma_devs()}
    assert seen[rxe_device.name] == ours.index
    assert {p["ifname"]: p["netdev"] for p in guest.rdma_links()}[rxe_device.name] == rxe_device.netdev

    def names():
        with Rdma() as nl:
            return [d.name for d in nl.devices()]

    assert in_netns(pod.path, names) == []  # exclusive: a new netns sees no device


# ---------------------------------------------------------------- ADD, CHECK, DEL
@pytest.mark.parametrize("version", ["0.4.0", "1.1.0"])
def test_add_check_del(rxe_device, fake_vf, pod, tmp_path, version):
    pci, vf = fake_vf
    name = rxe_device.name
    conf = rdma_conf(tmp_path, pod.path, vf, version)

    r = rdma_plugin("ADD", conf, pod.path, pci)
    assert r.code == 0, r.stdout + r.stderr
    assert r.json == conf["prevResult"]
    assert guest.rdma_dev_names(pod.name) == [name]  # `rdma -j dev` inside the pod: exactly its device
    assert name not in guest.rdma_dev_names()
    links = guest.rdma_links(pod.name)
    assert [link["ifname"] for link in links] == [name]
    record = json.loads(state_file(tmp_path).read_text())
    assert record["containerRdmaDevName"] == name and record["deviceID"] == vf

    r = rdma_plugin("CHECK", conf, pod.path, pci)
    assert r.code == 0, r.stdout + r.stderr
    r = rdma_plugin("ADD", conf, pod.path, pci)  # a retried ADD: already in place, nothing to do
    assert r.code == 0, r.stdout + r.stderr
    assert guest.rdma_dev_names(pod.name) == [name]

    r = rdma_plugin("DEL", conf, pod.path, pci)
    assert r.code == 0, r.stdout + r.stderr
    assert name in guest.rdma_dev_names()
    assert guest.rdma_dev_names(pod.name) == []
    assert not state_file(tmp_path).exists()

    r = rdma_plugin("DEL", conf, pod.path, pci)  # repeated DEL: nothing left to do
    assert r.code == 0, r.stdout + r.stderr
    r = rdma_plugin("CHECK", conf, pod.path, pci)
    assert r.code == 1 and r.json["code"] == 3

    # and the device can be attached again afterwards
    r = rdma_plugin("ADD", conf, pod.path, pci)
    assert r.code == 0, r.stdout + r.stderr
    assert guest.rdma_dev_names(pod.name) == [name]
    assert rdma_plugin("DEL", conf, pod.path, pci).code == 0


def test_check_notices_the_device_left_the_pod(rxe_device, fake_vf, pod, tmp_path):
    pci, vf = fake_vf
    conf = rdma_conf(tmp_path, pod.path, vf)
    assert rdma_plugin("ADD", conf, pod.path, pci).code == 0
    _move_out_of_pod(pod.path, rxe_device.name)
    r = rdma_plugin("CHECK", conf, pod.path, pci)
    assert r.code == 1 and r.json["code"] == 102 and "not in the pod netns" in r.json["msg"]
    r = rdma_plugin("DEL", conf, pod.path, pci)  # already in the host: DEL just cleans up
    assert r.code == 0, r.stdout + r.stderr
    assert not state_file(tmp_path).exists()


def _move_out_of_pod(pod_path: str, name: str) -> None:
    """Someone else moved the device back behind the plugin's back (iproute2 needs a netns *name*)."""
    import os

    from tests.netlink_ops import RdmaForTests as Rdma
    from cni_rdma.netns import in_netns

    host_fd = os.open("/proc/self/ns/net", os.O_RDONLY)

    def move():
        with Rdma() as nl:
            nl.set_netns(nl.device(name=name).index, host_fd)

    try:
        in_netns(pod_path, move)
    finally:
        os.close(host_fd)
    assert name in guest.rdma_dev_names()


@pytest.mark.parametrize("cni_netns", ["path", "empty"])
def test_pod_netns_deleted_while_device_inside(rxe_device, fake_vf, make_pod, tmp_path, cni_netns):
    pci, vf = fake_vf
    pod = make_pod()
    conf = rdma_conf(tmp_path, pod.path, vf)
    assert rdma_plugin("ADD", conf, pod.path, pci).code == 0
    assert guest.rdma_dev_names(pod.name) == [rxe_device.name]

    topology.netns_del(pod.name)  # the runtime tore the sandbox down before DEL
    # DEL right away: the kernel hands the device back asynchronously; the plugin waits for it
    r = rdma_plugin("DEL", conf, pod.path if cni_netns == "path" else "", pci)
    assert r.code == 0, r.stdout + r.stderr
    assert not state_file(tmp_path).exists()
    guest.wait_for(lambda: rxe_device.name in guest.rdma_dev_names(), "the device back in the initial netns")
    assert rdma_plugin("DEL", conf, pod.path, pci).code == 0


# ---------------------------------------------------------------- refusals
def test_stock_rxe_refuses_and_nothing_is_left(rdma_exclusive, make_rxe, pod, tmp_path):
    dev = make_rxe(variant="stock")
    pci, vf = vf_with_rdma(dev.name)
    try:
        conf = rdma_conf(tmp_path, pod.path, vf)
        r = rdma_plugin("ADD", conf, pod.path, pci)
        assert r.code == 1, r.stdout
        assert r.json["code"] == 103
        assert dev.name in r.json["msg"]
        assert "Operation not supported" in r.json["details"] and "disassociate_ucontext" in r.json["details"]
        assert dev.name in guest.rdma_dev_names()
        assert guest.rdma_dev_names(pod.name) == []
        assert not state_file(tmp_path).exists()
    finally:
        pci.cleanup()


def _try_mode(mode: str) -> bool:
    return subprocess.run(["rdma", "system", "set", "netns", mode], capture_output=True).returncode == 0


def test_shared_mode_is_refused_with_the_fix(tmp_path):
    guest.modprobe("ib_core")
    # The mode can change only while no netns but the initial one exists (dead ones go asynchronously).
    guest.wait_for(lambda: _try_mode("shared"), "RDMA netns mode shared (no other netns left)", timeout=60)
    pod = None
    try:
        assert guest.rdma_netns_mode() == "shared"
        pod = topology.make_pod()
        pci, vf = vf_with_rdma("rxe_unused")
        r = rdma_plugin("ADD", rdma_conf(tmp_path, pod.path, vf), pod.path, pci)
        assert r.code == 1 and r.json["code"] == 101
        assert "'shared'" in r.json["msg"]
        assert "rdma system set netns exclusive" in r.json["details"]
        assert "options ib_core netns_mode=0" in r.json["details"]
        r = rdma_plugin("STATUS", rdma_conf(tmp_path, pod.path, None, prev=False), "", pci)
        assert r.code == 1 and r.json["code"] == 50
        pci.cleanup()
    finally:
        if pod is not None:
            topology.netns_del(pod.name)
        guest.wait_for(lambda: _try_mode("exclusive"), "RDMA netns mode back to exclusive", timeout=60)
    r = run_plugin("rdma", "STATUS", rdma_conf(tmp_path, "", None, prev=False))
    assert r.code == 0, r.stdout


# ---------------------------------------------------------------- no deviceID: PF admin MAC
def test_mac_fallback_on_a_netdevsim_pf(rxe_device, netdevsim_pf, pod, tmp_path):
    pf = netdevsim_pf(numvfs=2)
    pf.set_vf(1, "mac", MAC)
    pf.set_vf(0, "mac", "02:00:00:00:00:99")
    pci, vf = vf_with_rdma(rxe_device.name, pf_netdev=pf.ifname, vf_id=1)
    try:
        conf = rdma_conf(tmp_path, pod.path, None, version="1.0.0")
        r = rdma_plugin("ADD", conf, pod.path, pci)
        assert r.code == 0, r.stdout + r.stderr
        assert guest.rdma_dev_names(pod.name) == [rxe_device.name]
        assert json.loads(state_file(tmp_path).read_text())["deviceID"] == vf
        assert rdma_plugin("DEL", conf, pod.path, pci).code == 0
        assert rxe_device.name in guest.rdma_dev_names()

        pf.set_vf(0, "mac", MAC)  # two VFs with the MAC: refuse, name both
        r = rdma_plugin("ADD", conf, pod.path, pci)
        assert r.code == 1 and r.json["code"] == 102 and "2 VFs" in r.json["msg"]
        assert rxe_device.name in guest.rdma_dev_names()
    finally:
        pci.cleanup()


# ---------------------------------------------------------------- chained: sriov -> rdma
class Conflist:
    """What libcni does with a conflist: ADD in order feeding prevResult, DEL with the cached result."""

    def __init__(self, plugins: list[dict], *, node: topology.Node, env: dict, version: str = "1.1.0"):
        self.plugins, self.node, self.env, self.version = plugins, node, env, version
        self.result: dict | None = None

    def _conf(self, plugin: dict, prev: dict | None) -> dict:
        c = {"cniVersion": self.version, "name": NET, **plugin}
        if prev is not None:
            c["prevResult"] = prev
        return c

    def add(self, pod_path: str) -> dict:
        prev = None
        for plugin in self.plugins:
            r = run_plugin(plugin["type"], "ADD", self._conf(plugin, prev), netns=pod_path, node=self.node,
                           extra_env=self.env)
            assert r.code == 0, f"{plugin['type']} ADD: {r.stdout}{r.stderr}"
            prev = r.json
        self.result = prev
        return prev

    def delete(self, pod_path: str, order: str = "reverse") -> None:
        plugins = list(reversed(self.plugins)) if order == "reverse" else self.plugins
        for plugin in plugins:
            r = run_plugin(plugin["type"], "DEL", self._conf(plugin, self.result), netns=pod_path, node=self.node,
                           extra_env=self.env)
            assert r.code == 0, f"{plugin['type']} DEL: {r.stdout}{r.stderr}"


@pytest.fixture
def sriov_node(rxe_device, netdevsim_pf):
    """A node netns with a netdevsim PF, a dummy standing in for VF 0's netdev, and the rxe device
    (the VF's RDMA function) moved in; the fake PCI tree ties them together."""
    node = topology.make_node(default_route=False)
    pci = None
    try:
        pf = netdevsim_pf(numvfs=2, netns=node.name)
        guest.dummy_add("ens1f0v0", netns=node.name, up=False)
        pci = FakePci()
        pf_addr = pci.add_pf(pci.addr(0x3b, 0, 0), pf.ifname)
        vf = pci.add_vf(pf_addr, 0, pci.addr(0x3b, 0, 2), "ens1f0v0")
        (pci.dev_dir(vf) / "infiniband" / rxe_device.name).mkdir(parents=True)
        guest.rdma("dev", "set", rxe_device.name, "netns", node.name)
        assert guest.rdma_dev_names(node.name) == [rxe_device.name]
        yield node, pci, vf, rxe_device
    finally:
        if pci is not None:
            pci.cleanup()
        topology.netns_del(node.name)


@pytest.mark.parametrize("del_order", ["reverse", "forward"])
def test_chained_sriov_then_rdma(sriov_node, pod, tmp_path, del_order):
    node, pci, vf, rxe = sriov_node
    chain = Conflist([{"type": "sriov", "deviceID": vf},  # Multus injects deviceID into every plugin
                      {"type": "rdma", "deviceID": vf, "dataDir": str(tmp_path / "state")}],
                     node=node, env=pci.env)
    result = chain.add(pod.path)
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["net1"]
    assert topology.ip_json("link", "show", "dev", "net1", netns=pod.name)
    assert guest.rdma_dev_names(pod.name) == [rxe.name]
    assert guest.rdma_dev_names(node.name) == []

    chain.delete(pod.path, del_order)  # runtimes DEL in reverse order; forward must work as well
    assert guest.rdma_dev_names(node.name) == [rxe.name]
    assert guest.rdma_dev_names(pod.name) == []
    assert guest.link("ens1f0v0", node.name) is not None
    assert not state_file(tmp_path).exists()
    chain.delete(pod.path, del_order)  # and again: both plugins idempotent
