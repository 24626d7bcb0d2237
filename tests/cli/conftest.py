"""tests/cli: unit tests of the operator CLI plus its host tier (real namespaces, root, as CI is).
`node` (eth0 is the macvlan master) and `pod` come from tests/conftest.py; several pods per test from here."""
import pytest

from tests import topology


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
