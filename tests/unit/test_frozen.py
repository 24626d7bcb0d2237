"""cni_rdma.frozen.Frozen keeps what the frozen dataclasses it replaced gave the hot path's records."""
import pytest

from cni_rdma import ipaddr
from cni_rdma.types import DNS, IPConfig, NetConf, Result


def test_immutable_equal_hashable_and_replace():
    a = IPConfig(ipaddr.ip_interface("10.0.0.2/24"))
    with pytest.raises(AttributeError):
        a.interface = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.gateway  # type: ignore[misc]
    b = a.replace(interface=0)
    assert (a.interface, b.interface, b.address) == (None, 0, a.address)
    assert a != b and a == b.replace(interface=None) and hash(a) == hash(b.replace(interface=None))
    assert a != ("10.0.0.2/24", None, None)
    assert repr(b) == "IPConfig(address=ip_interface('10.0.0.2/24'), gateway=None, interface=0)"
    with pytest.raises(TypeError):
        a.replace(nope=1)


def test_mutable_defaults_are_fresh_per_record():
    c1, c2 = NetConf("1.1.0", "n", "t", {}), NetConf("1.1.0", "n", "t", {})
    assert c1.ipam is not c2.ipam and c1.dns == DNS() and Result().dns == DNS()
    with pytest.raises(TypeError):
        hash(c1)  # dict fields: unhashable, as the frozen dataclass was
