"""Suite-wide settings (no hypothesis deadlines: CI machines are shared and slow; speed lives in bench/) and the
throwaway `node` / `pod` namespaces every root tier uses (tests/topology.py builds them)."""
import pytest
from hypothesis import HealthCheck, settings

from tests import topology

settings.register_profile("cni-rdma", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cni-rdma")


@pytest.fixture
def node():
    n = topology.make_node()
    yield n
    topology.netns_del(n.name)


@pytest.fixture
def pod():
    p = topology.make_pod()
    yield p
    topology.netns_del(p.name)


@pytest.fixture(autouse=True)
def state_root(tmp_path_factory, monkeypatch):
    """Every test gets its own state root (cni_rdma.state: CNI_RDMA_STATE_ROOT), which plugin processes
    started by tests.topology.run_plugin inherit: no test reads or writes the node's /var/lib/cni."""
    root = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("CNI_RDMA_STATE_ROOT", str(root))
    return root
