"""tests/cli: unit tests of the operator CLI plus its host tier (real namespaces, root, as CI is)."""
import pytest

from tests import topology
from tests.netns.conftest import node  # noqa: F401  (the host tier's node netns: eth0 is the macvlan master)


@pytest.fixture
def make_pod():
    made = []

    def make() -> topology.Pod:
        p = topology.make_pod()
        made.append(p)
        return p
    yield make
    for p in made:
        topology.netns_del(p.name)
