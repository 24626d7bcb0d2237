"""InfiniBand VFs in the sriov commands (ib-sriov-cni's keys), over the fake VF manager of
test_sriov_commands.py: the GUID goes to the PF as node and port GUID and comes back on DEL,
rdmaIsolation moves the VF's RDMA device after the netdev (intent recorded first) and back first.
The kernel side cannot be exercised here or in the VM: no InfiniBand device exists (see the notes)."""
from __future__ import annotations

import os
import posix

import pytest

from cni_rdma.errors import CniError
from cni_rdma.netlink.errors import NetlinkError
from plugins.sriov import infiniband, sriov, vfmanager
from plugins.sriov.vfstate import OrigVfState
from tests.unit.test_sriov_commands import FakeVf, env, req  # noqa: F401  (env is a fixture)

GUID = "02:00:00:00:00:00:00:07"


class IbFake(FakeVf):
    def isolate_rdma(self, st, pod_fd):
        self._enter("isolate_rdma", st)
        self.vf["rdma"] = "pod"

    def restore(self, st, pod_netns):
        if st.rdma_dev:
            self.vf["rdma"] = "host"
        return super().restore(st, pod_netns)


@pytest.fixture
def ib(env):  # noqa: F811
    env.fake.__class__ = IbFake  # the same fake (its IPAM stubs log to it), with the rdmaIsolation calls
    (env.pci.dev_dir(env.vf) / "infiniband" / "mlx5_7").mkdir(parents=True)
    return env


def test_guid_is_set_as_node_and_port_guid_and_given_back(ib):
    sriov.add(req(ib, runtimeConfig={"infinibandGUID": GUID}, pkey="0x8001"))
    rec = ib.store.read(ib.name)
    assert rec["applied"] == {"node_guid": 0x0200000000000007, "port_guid": 0x0200000000000007}
    assert ib.fake.vf["pf"]["node_guid"] == ib.fake.vf["pf"]["port_guid"] == 0x0200000000000007
    sriov.delete(req(ib, "DEL"))
    assert ib.fake.calls[-1] == "restore"


def test_rdma_isolation_after_the_netdev_with_the_intent_recorded_first(ib):
    sriov.add(req(ib, rdmaIsolation=True))
    calls = ib.fake.calls
    assert calls.index("setup_in_pod") < calls.index("isolate_rdma") < calls.index("ipam-add")
    assert ib.fake.seen_records["isolate_rdma"]["rdma_dev"] == "mlx5_7"
    assert ib.fake.vf["rdma"] == "pod"
    sriov.delete(req(ib, "DEL"))
    assert ib.fake.vf["rdma"] == "host" and ib.store.read(ib.name) is None


def test_rdma_isolation_failure_rolls_back(ib):
    ib.fake.fail = {"isolate_rdma"}
    with pytest.raises((CniError, NetlinkError)):  # the fake fails the way a netlink call does
        sriov.add(req(ib, rdmaIsolation=True))
    assert ib.fake.calls[-1] == "restore" and ib.store.read(ib.name) is None
    assert ib.fake.vf["where"] == "host"


@pytest.mark.parametrize("keys, field", [
    ({"runtimeConfig": {"infinibandGUID": "00:00:00:00:00:00:00:00"}}, "runtimeConfig.infinibandGUID"),
    ({"args": {"cni": {"guid": "zz:00:00:00:00:00:00:01"}}}, "args.cni.guid"),
    ({"ibKubernetesEnabled": True}, "runtimeConfig.infinibandGUID"),
    ({"pkey": "0x0"}, "pkey"),
    ({"rdmaIsolation": "yes"}, "rdmaIsolation"),
])
def test_bad_ib_keys_fail_before_anything_changes(ib, keys, field):
    with pytest.raises(CniError) as e:
        sriov.add(req(ib, **keys))
    assert e.value.code == 7 and f'"{field}"' in e.value.msg
    assert ib.fake.calls == []


def test_original_guids_reported_else_from_the_ipoib_address_else_all_ones():
    applied = {"node_guid": 1, "port_guid": 1}
    reported = OrigVfState(node_guid=5, port_guid=6)
    vfmanager._original_guids(reported, None, applied)
    assert (reported.node_guid, reported.port_guid) == (5, 6)
    ipoib = "00:00:0a:4d:fe:80:00:00:00:00:00:00:00:02:c9:03:00:a1:b2:c3"
    seen = OrigVfState(node_guid=0)
    vfmanager._original_guids(seen, ipoib, applied)
    assert seen.node_guid == seen.port_guid == 0x0002C90300A1B2C3
    unknown = OrigVfState()
    vfmanager._original_guids(unknown, "02:00:00:00:00:01", applied)
    assert unknown.node_guid == unknown.port_guid == infiniband.ALL_ONES
    untouched = OrigVfState()
    vfmanager._original_guids(untouched, ipoib, {"vlan": 1})
    assert untouched.node_guid is None


def test_rebind_writes_the_vf_address_to_unbind_then_bind(ib, monkeypatch):
    """ib-sriov-cni's RebindVf (sriovnet UnbindVf/BindVf), over the fake PCI tree's driver directory."""
    from cni_rdma.sysfs import Sysfs

    drv = ib.pci.root / "bus" / "pci" / "drivers" / Sysfs(str(ib.pci.root)).driver(ib.vf)
    seen = []
    for op in ("unbind", "bind"):
        (drv / op).write_text("")
    real_open = posix.open  # the plugin path calls posix (os's C half) directly

    def spy(path, flags, *a, **kw):
        if str(path).startswith(str(drv)):
            seen.append(os.path.basename(path))
        return real_open(path, flags, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(posix, "open", spy)
        vfmanager.rebind_vf(Sysfs(str(ib.pci.root)), ib.vf)
    assert seen == ["unbind", "bind"]
    assert (drv / "unbind").read_text() == ib.vf and (drv / "bind").read_text() == ib.vf
