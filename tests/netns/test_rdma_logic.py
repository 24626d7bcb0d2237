"""rdma plugin logic against real namespaces and a netns-aware fake of the RDMA kernel interface.

This host's kernel has no RDMA at all, so here `cni_rdma.netlink.rdma.Rdma` is replaced by a fake
that keeps exclusive-mode semantics honestly: a socket belongs to the netns of the thread that
opened it (read from /proc/thread-self/ns/net), a dump shows only that netns' devices, and a move
resolves the device in the socket's netns and the target from the fd's netns inode. Namespaces,
`in_netns`, sysfs (a fake tree), the state store and the skeleton are all real; the plugin runs
in-process through `skel.run`. The VM tier (tests/vm/test_rdma_vm.py) proves the same flows on the
real ib_core machinery with rxe.
"""
from __future__ import annotations

import errno
import io
import json
import os

import pytest

from cni_rdma import skel
from cni_rdma.netlink import rdma as rdma_nl
from cni_rdma.netlink.errors import NetlinkError
from cni_rdma.netlink.rdma import RdmaDevice
from cni_rdma.netlink.links import Link
from cni_rdma.netlink.vfs import VfConfig
from plugins.rdma import rdma as plugin
from tests import topology

VF = "0000:3b:02.1"
PF = "0000:3b:00.0"
NET = "rdma-net"


def _ns_inode(path: str = "/proc/thread-self/ns/net") -> int:
    return os.stat(path).st_ino


class FakeKernel:
    def __init__(self):
        self.available = True
        self.mode = "exclusive"
        self.host = _ns_inode()
        self.devs: dict[str, list] = {}  # name -> [index, netns inode]
        self.refuse: dict[str, int] = {}  # name -> errno for moves
        self.moves: list[tuple[str, int]] = []
        self.threads: list[str] = []  # thread names that issued moves

    def add(self, name: str) -> None:
        self.devs[name] = [len(self.devs) + 1, self.host]

    def where(self, name: str) -> int:
        return self.devs[name][1]

    def netns_died(self, inode: int) -> None:
        """What ib_core does when a netns is destroyed: its devices go back to the initial netns."""
        for d in self.devs.values():
            if d[1] == inode:
                d[1] = self.host


class FakeRdma:
    def __init__(self, k: FakeKernel, timeout=None):
        if not k.available:
            raise rdma_nl.RdmaUnavailable(errno.EPROTONOSUPPORT)
        self.k = k
        self.ns = _ns_inode()  # bound to the opening thread's netns, like a real socket

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def netns_mode(self) -> str:
        return self.k.mode

    def devices(self):
        return [RdmaDevice(index=i, name=n) for n, (i, ns) in self.k.devs.items() if ns == self.ns]

    device = rdma_nl.Rdma.device  # the real lookup by name, over the fake devices()

    def set_netns(self, index: int, fd: int) -> None:
        for name, d in self.k.devs.items():
            if d[0] == index and d[1] == self.ns:
                break
        else:
            raise NetlinkError(errno.EINVAL, "move RDMA device to netns", f"index {index}")
        if self.k.mode != "exclusive":
            raise NetlinkError(errno.EOPNOTSUPP, "move RDMA device to netns", f"index {index}")
        if name in self.k.refuse:
            raise NetlinkError(self.k.refuse[name], "move RDMA device to netns", f"index {index}")
        d[1] = os.fstat(fd).st_ino
        self.k.moves.append((name, d[1]))
        self.k.threads.append(os.stat("/proc/thread-self/ns/net").st_ino)  # the caller thread's netns


@pytest.fixture
def kernel(monkeypatch):
    k = FakeKernel()
    monkeypatch.setattr(rdma_nl, "Rdma", lambda timeout=None: FakeRdma(k))
    monkeypatch.setattr(plugin, "RETURN_WAIT", 0.3)
    return k


@pytest.fixture
def sysfs(tmp_path):
    """A fake /sys: PF 0000:3b:00.0 with VF 0000:3b:02.1 (RDMA device rxe0), PF netdev pf0."""
    root = tmp_path / "sys"
    pci = root / "bus/pci/devices"
    (pci / PF).mkdir(parents=True)
    (pci / VF / "infiniband/rxe0").mkdir(parents=True)
    os.symlink(f"../{VF}", pci / PF / "virtfn1")
    os.symlink(f"../{PF}", pci / VF / "physfn")
    (root / "class/net/pf0").mkdir(parents=True)
    os.symlink(pci / PF, root / "class/net/pf0/device")
    return root


@pytest.fixture
def pod():
    p = topology.make_pod()
    yield p
    topology.netns_del(p.name)


def prev_result(version: str, mac: str = "02:00:00:00:00:11", sandbox: str = "/var/run/netns/x") -> dict:
    if version in ("0.1.0", "0.2.0"):
        return {"cniVersion": version, "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1"}, "dns": {}}
    out = {"cniVersion": version,
           "interfaces": [{"name": "net1", "mac": mac, "sandbox": sandbox}],
           "ips": [{"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}],
           "routes": [{"dst": "10.2.0.0/16", "gw": "10.1.0.1"}],
           "dns": {"nameservers": ["10.1.0.53"]}}
    if version in ("0.3.0", "0.3.1", "0.4.0"):
        out["ips"][0]["version"] = "4"
    return out


def conf(version: str = "1.0.0", prev: dict | None | str = "default", **extra) -> dict:
    c = {"cniVersion": version, "name": NET, "type": "rdma", "deviceID": VF}
    if prev == "default":
        prev = prev_result(version)
    if prev is not None:
        c["prevResult"] = prev
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


class Run:
    """Exit status 0 -> code 0; otherwise `code` is the CNI error code printed on stdout."""

    def __init__(self, status: int, out: str):
        self.json = json.loads(out) if out.strip() else None
        self.code = self.json["code"] if status else 0


def call(command: str, config: dict, *, netns: str = "", sysroot=None, data_dir=None, cid: str = "ctr1",
         ifname: str = "net1") -> Run:
    if data_dir is not None:
        config = {**config, "dataDir": str(data_dir)}
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_PATH": "/nonexistent"}
    if sysroot is not None:
        env["CNI_RDMA_SYSFS_ROOT"] = str(sysroot)
    out = io.StringIO()
    code = skel.run(plugin, env=env, stdin=io.BytesIO(json.dumps(config).encode()), stdout=out,
                    stderr=io.StringIO())
    return Run(code, out.getvalue())


def state_dir(tmp_path):
    return tmp_path / "state" / "rdma"


# ---------------------------------------------------------------- ADD
@pytest.mark.parametrize("version", ["0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_moves_device_and_prints_prev_result_unchanged(kernel, sysfs, pod, tmp_path, version):
    kernel.add("rxe0")
    prev = prev_result(version)
    r = call("ADD", conf(version, prev), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 0, r.json
    assert r.json == prev
    assert kernel.where("rxe0") == _ns_inode(pod.path)
    record = json.loads((state_dir(tmp_path) / f"{NET}-ctr1-net1").read_text())
    # rdma-cni's RdmaNetState fields, so either plugin can DEL the other's attachments
    assert record["version"] == "1.0"
    assert record["deviceID"] == VF
    assert record["sandboxRdmaDevName"] == record["containerRdmaDevName"] == "rxe0"
    assert (record["network"], record["containerID"], record["ifname"]) == (NET, "ctr1", "net1")


def test_add_without_prev_result_says_chain_it(kernel, sysfs, pod, tmp_path):
    kernel.available = False  # the config error comes first, before any kernel access
    kernel.add("rxe0")
    r = call("ADD", conf(prev=None), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 7
    assert "chained" in r.json["msg"] and "sriov" in r.json["details"]
    assert kernel.moves == []


def test_add_refuses_shared_mode_and_says_how_to_fix(kernel, sysfs, pod, tmp_path):
    kernel.add("rxe0")
    kernel.mode = "shared"
    r = call("ADD", conf(), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_NOT_EXCLUSIVE >= 100
    assert "'shared'" in r.json["msg"] and "exclusive" in r.json["msg"]
    assert "rdma system set netns exclusive" in r.json["details"]
    assert "options ib_core netns_mode=0" in r.json["details"]
    assert kernel.moves == [] and not state_dir(tmp_path).exists()


def test_add_without_rdma_netlink(kernel, sysfs, pod, tmp_path):
    kernel.available = False
    r = call("ADD", conf(), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_RDMA_UNAVAILABLE
    assert "RDMA netlink is unavailable" in r.json["msg"] and "ib_core" in r.json["details"]


def test_add_pci_device_without_rdma_device(kernel, sysfs, pod, tmp_path):
    os.rmdir(sysfs / f"bus/pci/devices/{VF}/infiniband/rxe0")
    r = call("ADD", conf(), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE
    assert f"no RDMA device for {VF}" in r.json["msg"]
    assert "infiniband" in r.json["details"]


def test_add_unknown_pci_device(kernel, sysfs, pod, tmp_path):
    r = call("ADD", conf(deviceID="0000:99:00.7"), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE and "does not exist" in r.json["msg"]


def test_add_two_rdma_devices_lists_them(kernel, sysfs, pod, tmp_path):
    (sysfs / f"bus/pci/devices/{VF}/infiniband/rxe1").mkdir()
    kernel.add("rxe0")
    kernel.add("rxe1")
    r = call("ADD", conf(), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE
    assert "2 RDMA devices" in r.json["msg"] and "rxe0, rxe1" in r.json["msg"]
    assert kernel.moves == []


def test_add_auxiliary_device(kernel, sysfs, pod, tmp_path):
    (sysfs / "bus/auxiliary/devices/mlx5_core.sf.4/infiniband/mlx5_4").mkdir(parents=True)
    kernel.add("mlx5_4")
    r = call("ADD", conf(deviceID="mlx5_core.sf.4"), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 0, r.json
    assert kernel.where("mlx5_4") == _ns_inode(pod.path)
    record = json.loads((state_dir(tmp_path) / f"{NET}-ctr1-net1").read_text())
    assert record["deviceID"] == "mlx5_core.sf.4" and record["containerRdmaDevName"] == "mlx5_4"


def test_add_device_id_neither_pci_nor_auxiliary(kernel, sysfs, pod, tmp_path):
    r = call("ADD", conf(deviceID="mlx5_core.sf.9"), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE and "neither a PCI address nor an auxiliary device" in r.json["msg"]


def test_runtime_config_device_id(kernel, sysfs, pod, tmp_path):
    kernel.add("rxe0")
    c = conf(deviceID=None, runtimeConfig={"deviceID": "3b:02.1"})
    r = call("ADD", c, netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 0, r.json
    assert kernel.where("rxe0") == _ns_inode(pod.path)


def test_conflicting_device_ids(kernel, sysfs, pod, tmp_path):
    c = conf(runtimeConfig={"deviceID": "0000:3b:02.2"})
    r = call("ADD", c, netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 7 and "deviceID" in r.json["msg"]


def test_pci_id_from_prev_result(kernel, sysfs, pod, tmp_path):
    kernel.add("rxe0")
    prev = prev_result("1.1.0")
    prev["interfaces"][0]["pciID"] = VF
    r = call("ADD", conf("1.1.0", prev, deviceID=None), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 0, r.json
    assert r.json == prev
    assert kernel.where("rxe0") == _ns_inode(pod.path)


# ---- MAC fallback: the VF whose PF-side admin MAC equals the interface MAC in prevResult
class FakeRtnl:
    vfs_by_pf: dict[str, list] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def links(self):
        out = [Link(index=1, name="lo")]
        for i, (name, vfs) in enumerate(sorted(self.vfs_by_pf.items()), start=2):
            out.append(Link(index=i, name=name, num_vf=len(vfs)))
        return out

    def vfs(self, index):
        return sorted(self.vfs_by_pf.items())[index - 2][1]

    def pfs(self):
        return [(link, self.vfs(link.index)) for link in self.links() if link.num_vf]


@pytest.fixture
def rtnl(monkeypatch):
    from cni_rdma.netlink import rtnl as rtnl_mod

    FakeRtnl.vfs_by_pf = {}
    monkeypatch.setattr(rtnl_mod, "Rtnl", FakeRtnl)
    return FakeRtnl


def test_mac_fallback_finds_the_vf(kernel, sysfs, pod, tmp_path, rtnl):
    kernel.add("rxe0")
    rtnl.vfs_by_pf = {"pf0": [VfConfig(vf=0, mac="02:00:00:00:00:99"), VfConfig(vf=1, mac="02:00:00:00:00:11")]}
    r = call("ADD", conf(deviceID=None), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 0, r.json
    assert kernel.where("rxe0") == _ns_inode(pod.path)
    record = json.loads((state_dir(tmp_path) / f"{NET}-ctr1-net1").read_text())
    assert record["deviceID"] == VF


def test_mac_fallback_no_match(kernel, sysfs, pod, tmp_path, rtnl):
    rtnl.vfs_by_pf = {"pf0": [VfConfig(vf=0, mac="02:00:00:00:00:99")]}
    r = call("ADD", conf(deviceID=None), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE
    assert r.json["msg"].startswith("no VF with admin MAC 02:00:00:00:00:11")


def test_mac_fallback_two_matches(kernel, sysfs, pod, tmp_path, rtnl):
    rtnl.vfs_by_pf = {"pf0": [VfConfig(vf=1, mac="02:00:00:00:00:11")],
                      "pf1": [VfConfig(vf=0, mac="02:00:00:00:00:11")]}
    r = call("ADD", conf(deviceID=None), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE
    assert "2 VFs" in r.json["msg"] and VF in r.json["msg"]


def test_mac_fallback_needs_one_mac(kernel, sysfs, pod, tmp_path, rtnl):
    prev = prev_result("1.0.0")
    prev["interfaces"][0].pop("mac")
    r = call("ADD", conf("1.0.0", prev, deviceID=None), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE and "deviceID" in r.json["msg"]


# ---- failures leave nothing behind
def test_move_refused_leaves_nothing(kernel, sysfs, pod, tmp_path):
    kernel.add("rxe0")
    kernel.refuse["rxe0"] = errno.EOPNOTSUPP
    r = call("ADD", conf(), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_MOVE
    assert "rxe0" in r.json["msg"] and "disassociate_ucontext" in r.json["details"]
    assert kernel.where("rxe0") == kernel.host
    assert not (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()


def test_state_write_failure_moves_device_back(kernel, sysfs, pod, tmp_path, monkeypatch):
    kernel.add("rxe0")
    # The store writes a uniquely named temp file first (O_EXCL, retried): make every creation fail.
    from cni_rdma import state

    def refuse(final, name):
        raise state.CniError(5, f"cannot write state {name!r}", "injected")
    monkeypatch.setattr(state.Store, "_create_tmp", staticmethod(refuse))
    r = call("ADD", conf(), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 5 and "cannot write state" in r.json["msg"]
    assert [inode for _, inode in kernel.moves] == [_ns_inode(pod.path), kernel.host]
    assert kernel.where("rxe0") == kernel.host
    assert kernel.threads[-1] == _ns_inode(pod.path)  # the way back was requested from inside the pod netns


def test_add_missing_netns(kernel, sysfs, tmp_path):
    kernel.add("rxe0")
    r = call("ADD", conf(), netns="/var/run/netns/crn-does-not-exist", sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 5 and kernel.moves == []


# ---------------------------------------------------------------- DEL
@pytest.fixture
def attached(kernel, sysfs, pod, tmp_path):
    kernel.add("rxe0")
    r = call("ADD", conf(), netns=pod.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 0, r.json
    return pod


def _del(pod_path, tmp_path, **kw):
    return call("DEL", conf(), netns=pod_path, data_dir=tmp_path / "state", **kw)


def test_del_moves_back_from_inside_the_pod(kernel, attached, tmp_path):
    r = _del(attached.path, tmp_path)
    assert r.code == 0, r.json
    assert kernel.where("rxe0") == kernel.host
    assert kernel.threads[-1] == _ns_inode(attached.path)
    assert not (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()
    # repeated DEL: no state, nothing to do
    assert _del(attached.path, tmp_path).code == 0
    assert len(kernel.moves) == 2


def test_del_without_state(kernel, pod, tmp_path):
    assert _del(pod.path, tmp_path).code == 0
    assert _del("", tmp_path).code == 0
    assert kernel.moves == []


def test_del_empty_netns_after_kernel_returned_the_device(kernel, attached, tmp_path):
    kernel.netns_died(_ns_inode(attached.path))
    r = _del("", tmp_path)
    assert r.code == 0, r.json
    assert not (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()


def test_del_netns_path_gone(kernel, attached, tmp_path):
    inode = _ns_inode(attached.path)
    topology.netns_del(attached.name)
    kernel.netns_died(inode)
    r = _del(attached.path, tmp_path)
    assert r.code == 0, r.json
    assert kernel.where("rxe0") == kernel.host
    assert not (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()


def test_del_device_not_back_yet_still_drops_state(kernel, attached, tmp_path):
    # A netns kept alive by some process keeps the device; DEL waits briefly, warns, drops the state.
    r = _del("", tmp_path)
    assert r.code == 0, r.json
    assert not (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()


def test_del_device_already_in_host(kernel, attached, tmp_path):
    kernel.netns_died(_ns_inode(attached.path))  # back in the host while the pod netns still exists
    r = _del(attached.path, tmp_path)
    assert r.code == 0, r.json
    assert len(kernel.moves) == 1  # nothing to move
    assert not (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()


def test_del_refused_keeps_state_for_a_retry(kernel, attached, tmp_path):
    kernel.refuse["rxe0"] = errno.EBUSY
    r = _del(attached.path, tmp_path)
    assert r.code == plugin.ERR_MOVE and "already exists in the target netns" in r.json["details"]
    assert (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()
    del kernel.refuse["rxe0"]
    assert _del(attached.path, tmp_path).code == 0
    assert kernel.where("rxe0") == kernel.host


def test_del_without_rdma_subsystem_drops_state(kernel, attached, tmp_path):
    kernel.available = False
    r = _del(attached.path, tmp_path)
    assert r.code == 0, r.json
    assert not (state_dir(tmp_path) / f"{NET}-ctr1-net1").exists()


def test_del_reads_rdma_cni_records(kernel, pod, tmp_path):
    """A record written by k8snetworkplumbingwg/rdma-cni (same dir, same key) is honoured."""
    kernel.add("mlx5_3")
    with_fd = os.open(pod.path, os.O_RDONLY)
    kernel.devs["mlx5_3"][1] = os.fstat(with_fd).st_ino
    os.close(with_fd)
    d = state_dir(tmp_path)
    d.mkdir(parents=True)
    (d / f"{NET}-ctr1-net1").write_text(json.dumps(
        {"version": "1.0", "deviceID": VF, "sandboxRdmaDevName": "mlx5_3", "containerRdmaDevName": "mlx5_3"}))
    assert _del(pod.path, tmp_path).code == 0
    assert kernel.where("mlx5_3") == kernel.host


# ---------------------------------------------------------------- CHECK, STATUS, GC
def test_check(kernel, attached, tmp_path):
    c = conf()
    assert call("CHECK", c, netns=attached.path, data_dir=tmp_path / "state").code == 0
    kernel.netns_died(_ns_inode(attached.path))  # device back in the host
    r = call("CHECK", c, netns=attached.path, data_dir=tmp_path / "state")
    assert r.code == plugin.ERR_DEVICE and "not in the pod netns" in r.json["msg"]


def test_check_without_state(kernel, pod, tmp_path):
    r = call("CHECK", conf(), netns=pod.path, data_dir=tmp_path / "state")
    assert r.code == 3


@pytest.mark.parametrize("mode,available,code", [("exclusive", True, 0), ("shared", True, 50),
                                                 ("exclusive", False, 50)])
def test_status(kernel, tmp_path, mode, available, code):
    kernel.mode, kernel.available = mode, available
    r = call("STATUS", conf("1.1.0", prev=None))
    assert r.code == code
    if code:
        assert r.json["code"] == 50


def test_gc_drops_only_stale_attachments_of_this_network(kernel, sysfs, tmp_path):
    pods = [topology.make_pod() for _ in range(2)]
    try:
        for i, p in enumerate(pods):
            kernel.add(f"rxe{i}")
            (sysfs / f"bus/pci/devices/{VF}/infiniband").mkdir(parents=True, exist_ok=True)
            for e in os.listdir(sysfs / f"bus/pci/devices/{VF}/infiniband"):
                os.rmdir(sysfs / f"bus/pci/devices/{VF}/infiniband" / e)
            (sysfs / f"bus/pci/devices/{VF}/infiniband/rxe{i}").mkdir()
            assert call("ADD", conf(), netns=p.path, sysroot=sysfs, data_dir=tmp_path / "state",
                        cid=f"c{i}").code == 0
        other_key = state_dir(tmp_path) / f"{NET}-x-c9-net1"
        # a network whose name starts with ours ("rdma-net-x"): its records are not ours to drop
        other_key.write_text(json.dumps({"network": f"{NET}-x", "containerID": "c9", "ifname": "net1"}))
        gc = conf("1.1.0", prev=None)
        gc["cni.dev/valid-attachments"] = [{"containerID": "c0", "ifname": "net1"}]
        assert call("GC", gc, data_dir=tmp_path / "state").code == 0
        left = sorted(n for n in os.listdir(state_dir(tmp_path)) if not n.endswith(".lock"))
        assert left == [f"{NET}-c0-net1", f"{NET}-x-c9-net1"]
    finally:
        for p in pods:
            topology.netns_del(p.name)


def test_gc_without_valid_attachments_releases_nothing(kernel, attached, sysfs, tmp_path):
    """Issue 17 item 11: without the list a GC cannot tell a leak from a live pod, so it keeps every record
    (as host-local); a later CHECK still finds the attachment and DEL still has something to move back."""
    before = sorted(os.listdir(state_dir(tmp_path)))
    assert call("GC", conf("1.1.0", prev=None), data_dir=tmp_path / "state").code == 0
    assert sorted(os.listdir(state_dir(tmp_path))) == before
    bad = dict(conf("1.1.0", prev=None), **{"cni.dev/valid-attachments": {"containerID": "c0"}})
    r = call("GC", bad, data_dir=tmp_path / "state")
    assert r.code == 7 and "cni.dev/valid-attachments" in r.json["msg"]
    assert sorted(os.listdir(state_dir(tmp_path))) == before


def test_repeated_add_is_a_no_op(kernel, attached, sysfs, tmp_path):
    r = call("ADD", conf(), netns=attached.path, sysroot=sysfs, data_dir=tmp_path / "state")
    assert r.code == 0, r.json
    assert r.json == prev_result("1.0.0")
    assert len(kernel.moves) == 1
    assert kernel.where("rxe0") == _ns_inode(attached.path)
