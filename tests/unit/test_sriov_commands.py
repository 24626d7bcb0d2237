"""sriov commands over a fake VF manager: every ADD rollback path, the durable-intent rule (the record
holds what a kernel change is about to do before it is made), DEL/GC ownership and the record format.

The fake keeps a tiny model of one VF (where its netdev is, its name/MAC/MTU/up, the PF-side
settings) so "restored" is checked as state, not as a call count. The kernel work behind the real
manager is tested against real links in tests/netns/test_sriov*.py and tests/vm/test_sriov.py.
"""
from __future__ import annotations

import errno
import json

import pytest

from cni_rdma import faults, ipaddr
from cni_rdma.errors import CniError
from cni_rdma.netlink.errors import NetlinkError
from cni_rdma.skel import Request
from cni_rdma.state import Store
from cni_rdma.types import IPConfig, NetConf, Result
from plugins.sriov import sriov, vfmanager
from plugins.sriov.vfmanager import PodLink, VfManager, set_mac_with_retry
from plugins.sriov.vfstate import OrigVfState, VfState
from tests.fakepci import FakePci


# What a failed kernel step escapes a command as (skel maps a NetlinkError to code 5 at the edge).
KERNEL_FAILURE = (CniError, NetlinkError)
HOST_NS = "/proc/self/ns/net"  # a live netns path the unit tier can open
ORIG = {"where": "host", "name": "ens1f0v0", "mac": "02:5a:00:00:00:10", "mtu": 1500, "up": True,
        "pf": {"mac": "00:00:00:00:00:00", "vlan": 7, "qos": 1, "vlan_proto": "802.1Q", "spoofchk": True,
               "trust": True, "link_state": "auto", "min_tx_rate": 0, "max_tx_rate": 0}}


class FakeVf(VfManager):
    """One VF: state mutated only by the manager calls the commands make; `fail` names a call to fail."""

    def __init__(self, store: Store):
        self.vf = json.loads(json.dumps(ORIG))
        self.calls: list[str] = []
        self.fail: set[str] = set()
        self.store = store
        self.seen_records: dict[str, dict | None] = {}  # call -> the record on disk when it was made

    def _enter(self, call: str, st: VfState | None = None) -> None:
        self.calls.append(call)
        if st is not None:
            self.seen_records[call] = self.store.read(sriov.record_name(st.device_id))
        if call in self.fail:
            raise NetlinkError(errno.EBUSY, call, "fake")

    def snapshot(self, vf, applied, host_ifname=""):
        self._enter("snapshot")
        pf = self.vf["pf"]
        return OrigVfState(host_ifname=self.vf["name"], host_index=7, effective_mac=self.vf["mac"],
                           mtu=self.vf["mtu"], up=self.vf["up"], pf_reported=True, admin_mac=pf["mac"],
                           **{k: v for k, v in pf.items() if k != "mac"})

    def apply(self, st):
        self._enter("apply", st)
        self.vf["pf"].update(st.applied)

    def move_in(self, st, pod_fd):
        self._enter("move_in", st)
        self.vf.update(where="pod", name=st.tmp_name, up=False)

    def setup_in_pod(self, st, pod_fd, up):
        self._enter("setup_in_pod", st)
        assert self.vf["where"] == "pod" and self.vf["name"] == st.tmp_name
        self.vf.update(name=st.ifname, mac=st.want_mac or self.vf["mac"], mtu=st.want_mtu or self.vf["mtu"], up=up)
        return PodLink(42, self.vf["mac"], self.vf["mtu"], up)

    def restore(self, st, pod_netns):
        self._enter("restore")
        self.vf["pf"].update(st.restore_pf())
        o = st.orig
        self.vf.update(where="host", name=o.host_ifname, mac=o.effective_mac, mtu=o.mtu, up=o.up)
        return "pod"

    def configure_pod(self, st, result, dad, mac):
        self._enter("addresses")
        self.calls.append("announce")

    def pf_view(self, st):
        return dict(self.vf["pf"])

    def pod_link(self, st):
        return PodLink(42, self.vf["mac"], self.vf["mtu"], self.vf["up"]) if self.vf["where"] == "pod" else None


@pytest.fixture
def env(tmp_path, monkeypatch):
    pci = FakePci(tmp_path / "sys")
    pf = pci.add_pf(pci.addr(0x3b, 0, 0), "pf0")
    vf = pci.add_vf(pf, 0, pci.addr(0x3b, 0, 2), "ens1f0v0")
    store = Store("sriov", root=str(tmp_path / "state"))
    fake = FakeVf(store)
    ipam_calls: list[str] = []
    monkeypatch.setattr(sriov, "store_of", lambda req: store)
    monkeypatch.setattr(sriov, "vf_manager", lambda sysfs, log: fake)

    def ipam_add(req):
        fake._enter("ipam-add")
        return Result(cni_version=req.conf.cni_version, ips=(IPConfig(ipaddr.ip_interface("10.1.0.5/24")),))

    monkeypatch.setattr(sriov.ipam, "add", ipam_add)
    monkeypatch.setattr(sriov.ipam, "delete", lambda req: fake.calls.append("ipam-del"))
    monkeypatch.setattr(sriov.ipam, "gc", lambda req: fake.calls.append("ipam-gc"))

    class Env:
        pass

    e = Env()
    e.pci, e.vf, e.store, e.fake, e.ipam_calls = pci, vf, store, fake, ipam_calls
    e.name = sriov.record_name(vf)
    return e


def req(env, command="ADD", *, container_id="c1", ifname="net1", netns=HOST_NS, ipam=True, **keys) -> Request:
    raw = {"cniVersion": "1.1.0", "name": "n", "type": "sriov", "deviceID": env.vf, **keys}
    if ipam:
        raw["ipam"] = {"type": "fake-ipam"}
    return Request(command=command, container_id=container_id, netns=netns, ifname=ifname, cni_args="", path=(),
                   stdin=json.dumps(raw).encode(), conf=NetConf.from_json(raw), env=env.pci.env)


def test_add_then_del_round_trip(env):
    res = sriov.add(req(env, vlan=100, mac="02:aa:00:00:00:01", mtu=9000))
    assert res.interfaces[0].mac == "02:aa:00:00:00:01" and res.interfaces[0].mtu == 9000
    assert env.fake.calls == ["snapshot", "apply", "move_in", "setup_in_pod", "ipam-add", "addresses", "announce"]
    rec = env.store.read(env.name)
    assert rec["phase"] == "ready" and rec["pod_index"] == 42 and rec["version"] == 2
    assert env.fake.vf["where"] == "pod" and env.fake.vf["pf"]["vlan"] == 100
    sriov.delete(req(env, "DEL"))
    assert env.fake.vf == ORIG
    assert env.store.read(env.name) is None
    assert env.fake.calls[-2:] == ["ipam-del", "restore"]


def test_every_kernel_change_is_recorded_before_it_is_made(env):
    sriov.add(req(env, vlan=100, mac="02:aa:00:00:00:01", mtu=9000))
    for call in ("apply", "move_in", "setup_in_pod"):
        rec = env.fake.seen_records[call]
        assert rec is not None, call
        st = VfState.from_json(rec)
        assert st.applied == {"vlan": 100, "qos": 0, "vlan_proto": "802.1Q", "mac": "02:aa:00:00:00:01"}
        assert (st.ifname, st.want_mac, st.want_mtu, st.tmp_name) == ("net1", "02:aa:00:00:00:01", 9000, "vftmp7")
        assert st.orig.host_ifname == "ens1f0v0" and st.orig.vlan == 7 and st.orig.trust is True


@pytest.mark.parametrize("fail", ["apply", "move_in", "setup_in_pod", "ipam-add", "addresses"])
def test_failure_at_each_kernel_step_restores_everything(env, fail):
    env.fake.fail = {fail}
    with pytest.raises(KERNEL_FAILURE):
        sriov.add(req(env, vlan=100, trust="off", mac="02:aa:00:00:00:01", mtu=9000))
    assert env.fake.vf == ORIG
    assert env.store.read(env.name) is None
    assert env.fake.calls.count("restore") == 1
    assert ("ipam-del" in env.fake.calls) == (fail == "addresses")  # released iff IPAM had answered


@pytest.mark.parametrize("step", [s for s in sriov.ADD_STEPS if s not in ("addresses", "routes")])  # ipconfig's
def test_fault_point_at_each_step_restores_everything(env, monkeypatch, step):
    monkeypatch.setattr(faults, "_STEP", step)
    with pytest.raises(CniError, match=step):
        sriov.add(req(env, vlan=100, mtu=9000))
    assert env.fake.vf == ORIG and env.store.read(env.name) is None


def test_failed_rollback_keeps_the_record_for_del(env):
    env.fake.fail = {"setup_in_pod", "restore"}
    with pytest.raises(KERNEL_FAILURE, match="setup_in_pod"):  # the original failure, not the rollback's
        sriov.add(req(env, vlan=100))
    assert env.store.read(env.name)["phase"] == "adding"
    env.fake.fail = set()
    sriov.delete(req(env, "DEL"))
    assert env.fake.vf == ORIG and env.store.read(env.name) is None


def test_interrupted_add_then_del_restores(env, monkeypatch):
    """A killed ADD leaves the record of its intent; DEL (even without deviceID) restores from it."""
    env.fake.fail = {"setup_in_pod", "restore"}
    with pytest.raises(KERNEL_FAILURE):
        sriov.add(req(env))
    env.fake.fail = set()
    r = req(env, "DEL")
    raw = dict(r.raw)
    del raw["deviceID"]
    sriov.delete(Request(**{**{k: getattr(r, k) for k in ("command", "container_id", "netns", "ifname",
                                                             "cni_args", "path", "env")},
                            "stdin": json.dumps(raw).encode(), "conf": NetConf.from_json(raw)}))
    assert env.fake.vf == ORIG and env.store.read(env.name) is None


def test_retried_add_of_the_same_attachment_takes_over_its_half_done_record(env):
    env.fake.fail = {"setup_in_pod", "restore"}
    with pytest.raises(KERNEL_FAILURE):
        sriov.add(req(env))
    env.fake.fail = set()
    sriov.add(req(env))  # the netns is alive, but the record is this attachment's own "adding" one
    assert env.store.read(env.name)["phase"] == "ready"


def test_vf_of_a_live_netns_is_refused_and_untouched(env):
    sriov.add(req(env, container_id="a"))
    env.fake.calls.clear()
    with pytest.raises(CniError) as e:
        sriov.add(req(env, container_id="b"))
    assert e.value.code == 11 and "already allocated" in e.value.msg
    assert env.fake.calls == [] and env.store.read(env.name)["container_id"] == "a"


def test_stale_record_of_a_dead_netns_is_restored_then_reused(env, tmp_path):
    sriov.add(req(env, container_id="a"))
    rec = env.store.read(env.name)
    rec["netns"] = str(tmp_path / "no-such-netns")
    env.store.write(env.name, rec)
    sriov.add(req(env, container_id="b", mtu=4000))
    assert env.fake.calls.count("restore") == 1
    assert env.store.read(env.name)["container_id"] == "b" and env.fake.vf["mtu"] == 4000


def test_del_of_another_owner_leaves_the_vf_alone(env):
    sriov.add(req(env, container_id="b"))
    sriov.delete(req(env, "DEL", container_id="a"))
    assert "restore" not in env.fake.calls and env.store.read(env.name)["container_id"] == "b"
    sriov.delete(req(env, "DEL", container_id="b"))
    sriov.delete(req(env, "DEL", container_id="b"))  # idempotent
    assert env.fake.vf == ORIG


def test_gc_meanings(env, tmp_path):
    sriov.add(req(env, container_id="a"))
    rec = env.store.read(env.name)
    rec["netns"] = str(tmp_path / "no-such-netns")
    env.store.write(env.name, rec)
    sriov.gc(req(env, "GC"))  # no list: release nothing
    assert env.store.read(env.name) is not None
    with pytest.raises(CniError) as e:
        sriov.gc(req(env, "GC", **{"cni.dev/valid-attachments": {"containerID": "a"}}))
    assert e.value.code == 7 and "cni.dev/valid-attachments" in e.value.msg
    sriov.gc(req(env, "GC", **{"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "net1"}]}))
    assert env.store.read(env.name) is not None  # listed: kept
    sriov.gc(req(env, "GC", **{"cni.dev/valid-attachments": []}))
    assert env.store.read(env.name) is None and env.fake.vf == ORIG


def test_check_compares_pf_and_pod_state(env):
    r = req(env, vlan=100, mtu=9000, ipam=False)
    raw = dict(r.raw, prevResult=sriov.add(r).to_json())
    chk = Request(command="CHECK", container_id="c1", netns=HOST_NS, ifname="net1", cni_args="", path=(),
                  stdin=json.dumps(raw).encode(), conf=NetConf.from_json(raw), env=env.pci.env)
    sriov.check(chk)
    env.fake.vf["pf"]["vlan"] = 5
    with pytest.raises(CniError, match="vlan is 5"):
        sriov.check(chk)
    env.fake.vf["pf"]["vlan"] = 100
    env.fake.vf["mtu"] = 1500
    with pytest.raises(CniError, match="MTU is 1500, expected 9000"):
        sriov.check(chk)
    env.fake.vf["where"] = "host"
    with pytest.raises(CniError, match="not found"):
        sriov.check(chk)


# ------------------------------------------------------------------------------------ records
def test_record_round_trip_and_version_1():
    orig = OrigVfState(host_ifname="ens1f0v0", host_index=7, effective_mac="02:00:00:00:00:01", mtu=1500, up=True,
                       altnames=("enp59s0f0v0",), pf_reported=True, admin_mac="00:00:00:00:00:00", vlan=7,
                       vlan_proto="0")
    assert orig.vlan_proto == "802.1Q"  # a never-configured VF reports protocol 0
    st = VfState(container_id="c", ifname="net1", netns="/x", device_id="0000:3b:00.2", pf="pf0",
                 pf_pci="0000:3b:00.0", vf_id=0, dpdk=False, orig=orig, applied={"vlan": 100, "trust": True})
    back = VfState.from_json(json.loads(json.dumps(st.to_json())))
    assert back.to_json() == st.to_json() and back.orig.altnames == ("enp59s0f0v0",)
    assert st.restore_pf() == {"vlan": 7, "trust": False}  # trust never reported: its default
    v1 = {"version": 1, "phase": "ready", "container_id": "c", "ifname": "net1", "netns": "/x",
          "device_id": "0000:3b:00.2", "pf_pci": "0000:3b:00.0", "pf": "pf0", "vf_id": 0, "dpdk": False,
          "applied": {"mac": "02:aa:00:00:00:01"}, "orig_vf": {"mac": "00:00:00:00:00:00", "vlan": 0, "trust": None},
          "orig": {"name": "ens1f0v0", "index": 7, "mac": "02:00:00:00:00:01", "mtu": 1500, "up": False},
          "pod_index": 12, "pod_mac": "02:aa:00:00:00:01", "pod_mtu": 1500}
    old = VfState.from_json(v1)
    assert (old.orig.host_ifname, old.orig.host_index, old.tmp_name, old.pod_index) == ("ens1f0v0", 7, "vftmp7", 12)
    assert old.restore_pf() == {"mac": "00:00:00:00:00:00"}
    assert old.known_macs() == {"02:00:00:00:00:01", "02:aa:00:00:00:01"}


# --------------------------------------------------------------------------------- MAC retry
class _Mac:
    def __init__(self, busy: int = 0, lag: int = 0, err: int = errno.EBUSY):
        self.busy, self.lag, self.err, self.mac, self.sets = busy, lag, err, "02:00:00:00:00:00", 0

    def set(self, mac: str):
        self.sets += 1
        if self.busy:
            self.busy -= 1
            raise NetlinkError(self.err, "set vf mac", "pf0 vf 0")
        self.pending = mac

    def read(self):
        if self.lag:
            self.lag -= 1
            return self.mac
        self.mac = getattr(self, "pending", self.mac)
        return self.mac


def _retry(m: _Mac, sleeps=(0.1,) * 19, slept=None):
    return set_mac_with_retry(lambda: m.set("02:aa:00:00:00:01"), m.read, "02:aa:00:00:00:01", "VF 0 of pf0 admin",
                              "test-mac", sleeps=sleeps, sleep=(slept.append if slept is not None else lambda s: None))


def test_mac_retry_schedule_is_sriov_cnis():
    assert len(vfmanager.MAC_RETRY_SLEEPS) + 1 == 20 and set(vfmanager.MAC_RETRY_SLEEPS) == {0.1}


def test_mac_retry_rides_out_busy_and_lagging_drivers():
    slept: list[float] = []
    assert _retry(_Mac(busy=3), slept=slept) == 4 and slept == [0.1] * 3
    assert _retry(_Mac(lag=2)) == 3  # applied asynchronously: the readback catches up
    assert _retry(_Mac(busy=1, err=errno.EAGAIN)) == 2


def test_mac_retry_is_bounded_and_says_so():
    m = _Mac(busy=100)
    with pytest.raises(CniError) as e:
        _retry(m)
    assert m.sets == 20 and "not applied after 20 attempts over 1.9s" in e.value.msg and "EBUSY" in e.value.details


def test_mac_retry_fails_at_once_on_a_real_refusal():
    m = _Mac(busy=1, err=errno.EINVAL)
    with pytest.raises(NetlinkError):
        _retry(m)
    assert m.sets == 1


def test_mac_retry_fault_point(monkeypatch):
    monkeypatch.setattr(faults, "_left", {"test-mac": 5})
    m = _Mac()
    assert _retry(m) == 6 and m.sets == 1  # five injected EBUSYs never reached the "kernel"


def test_ib_guids_are_restored_when_add_set_them():
    orig = OrigVfState(pf_reported=True, node_guid=0x1122334455667788, port_guid=None)
    st = VfState(container_id="c", ifname="net1", netns="/x", device_id="0000:3b:00.2", pf="ib0",
                 pf_pci="0000:3b:00.0", vf_id=0, dpdk=True, orig=orig,
                 applied={"node_guid": 0xAA, "port_guid": 0xBB})
    assert st.restore_pf() == {"node_guid": 0x1122334455667788}  # the port GUID was never reported


def test_netlink_manager_reads_the_vf_table_once_and_keeps_one_socket(monkeypatch):
    """Per call: one host rtnetlink socket; the PF's VF table (whose size grows with the PF's VF count)
    read once by the snapshot and once more only to read back an admin MAC; the PF index not looked up
    again, no link dump."""
    from cni_rdma.netlink import rtnl
    from cni_rdma.netlink.links import Link
    from cni_rdma.netlink.vfs import VfConfig
    from cni_rdma.sysfs import Sysfs, VfInfo

    opened: list = []
    calls: list[str] = []
    admin = {"mac": "00:00:00:00:00:00"}

    class Nl:
        def __init__(self):
            opened.append(self)

        def pf_get(self, name=None, index=None, vf=None):
            calls.append("pf_get")
            return Link(index=3, name="pf0"), [VfConfig(vf=vf, mac=admin["mac"], vlan=7)]

        def vf_get(self, pf_index, vf):
            calls.append("vf_get")
            return VfConfig(vf=vf, mac=admin["mac"])

        def link_get(self, name=None, index=None):
            calls.append("link_get")
            return Link(index=9, name="ens1f0v0", mac="02:5a:00:00:00:10", mtu=1500)

        def vf_set(self, pf_index, vf, **kw):
            assert pf_index == 3
            calls.append("vf_set")
            admin.update({k: v for k, v in kw.items() if k == "mac"})

        def links(self):
            raise AssertionError("no link dump")

    monkeypatch.setattr(rtnl, "Rtnl", Nl)
    mgr = vfmanager.NetlinkVfManager(Sysfs("/nonexistent"), None)
    vf = VfInfo("0000:3b:00.2", "0000:3b:00.0", 0, "fake_vf", ("ens1f0v0",), ("pf0",))
    applied = {"vlan": 100, "qos": 0, "vlan_proto": "802.1Q", "mac": "02:aa:00:00:00:01"}
    orig = mgr.snapshot(vf, applied)
    assert (orig.vlan, orig.host_index, orig.admin_mac) == (7, 9, "00:00:00:00:00:00")
    st = VfState(container_id="c", ifname="net1", netns=HOST_NS, device_id=vf.pci, pf="pf0", pf_pci=vf.pf_pci,
                 vf_id=0, dpdk=False, orig=orig, applied=applied)
    mgr.apply(st)
    assert calls == ["pf_get", "link_get", "vf_set", "vf_set", "vf_get"] and len(opened) == 1
    assert mgr.pf_view(st)["mac"] == "02:aa:00:00:00:01" and calls[-1] == "pf_get" and len(opened) == 1
