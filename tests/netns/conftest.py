"""Host tier: real namespaces and links on this machine's kernel. Needs root (CI is root)."""
import os

import pytest

from tests import topology

if os.geteuid() != 0:
    pytest.skip("host tier needs root to create network namespaces", allow_module_level=True)


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
