"""VM tier fixtures: they run inside the QEMU guest booted by tools/vm (Debian's kernel: ipvlan, dummy,
8021q, netdevsim, siw, rdma_rxe). Outside the guest the whole directory is skipped, with the reason.

Everything a fixture creates has a unique name and is removed at teardown, even when the test fails.
Inside the guest nothing is skipped: a missing module or tool is an error.

    pod              a "pod" netns made like a runtime does (/var/run/netns/<name>): topology.Pod
    make_pod()       more of them
    dummy_master     a "node" netns whose master link is a dummy `dummy0` (up): a topology.Node, so
                     run_plugin(..., node=dummy_master) runs a plugin in it (ipvlan/macvlan master)
    netdevsim_pf(numvfs=4, ifname=None, netns=None)
                     factory: a simulated SR-IOV PF -> guest.NetdevsimPF (.ifname, .ifindex, .sysfs,
                     .numvfs, .vfs(), .vf(n), .set_vf(n, "mac", ..), .netns)
    rdma_exclusive   RDMA netns mode "exclusive" during the test (the VM boots in it), restored after
    make_rxe(netdev=None, name=None, variant="patched")
                     factory: an rxe device -> guest.RxeDevice (.name, .netdev); over a fresh dummy
                     when netdev is None; variant "stock" loads Debian's rdma_rxe (EOPNOTSUPP on a
                     netns move) instead of the patched one. Deleted wherever it moved to.
    rxe_device       one patched rxe device over a fresh dummy, exclusive mode on
    modprobe         guest.modprobe(*names)

Plain helpers (module loading, rdma/ip read-back) are in tests/vm/guest.py.
"""
from __future__ import annotations

import platform

import pytest

from tests import topology
from tests.vm import guest

if not guest.IN_GUEST:
    pytest.skip(guest.NOT_IN_GUEST, allow_module_level=True)


def pytest_report_header(config):
    return [f"VM guest: kernel {platform.release()}, RDMA netns mode from boot: ib_core.netns_mode=0 (exclusive)"]


@pytest.fixture
def modprobe():
    return guest.modprobe


@pytest.fixture
def make_pod():
    made: list[topology.Pod] = []

    def make() -> topology.Pod:
        p = topology.make_pod()
        made.append(p)
        return p

    yield make
    for p in reversed(made):
        topology.netns_del(p.name)


@pytest.fixture
def pod(make_pod):
    return make_pod()


@pytest.fixture
def dummy_master():
    name = topology.unique("crn-node")
    path = topology.netns_add(name)
    try:
        guest.dummy_add("dummy0", netns=name)
        yield topology.Node(name=name, path=path, master="dummy0")
    finally:
        topology.netns_del(name)


@pytest.fixture
def netdevsim_pf():
    made: list[guest.NetdevsimPF] = []

    def make(numvfs: int = 4, **kw) -> guest.NetdevsimPF:
        pf = guest.netdevsim_add(numvfs, **kw)
        made.append(pf)
        return pf

    yield make
    for pf in reversed(made):
        guest.netdevsim_del(pf)


@pytest.fixture
def rdma_exclusive():
    guest.modprobe("ib_core")
    before = guest.rdma_netns_mode()
    if before != "exclusive":
        guest.set_rdma_netns_mode("exclusive")
    yield
    if before != "exclusive":
        guest.set_rdma_netns_mode(before)


@pytest.fixture
def make_rxe():
    made: list[guest.RxeDevice] = []

    def make(netdev: str | None = None, *, name: str | None = None, variant: str = "patched") -> guest.RxeDevice:
        dev = guest.rxe_add(netdev, name=name, variant=variant)
        made.append(dev)
        return dev

    yield make
    for dev in reversed(made):
        guest.rxe_del(dev)


@pytest.fixture
def rxe_device(rdma_exclusive, make_rxe):
    return make_rxe()
