"""cni_rdma.ipaddr against the standard library's ipaddress as the oracle: same text accepted, same text
printed, same error messages (result parsing quotes them in CNI errors), same integers and containment."""
import ipaddress
import subprocess
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cni_rdma import ipaddr
from cni_rdma.registry import PLUGINS
from tests.topology import ROOT

v4 = st.integers(0, 2**32 - 1)
v6 = st.integers(0, 2**128 - 1)
zones = st.text("abcdeth0123%/ .:", min_size=1, max_size=6)


@st.composite
def v6_texts(draw):
    """IPv6 text in the forms people write: expanded, compressed, upper case, leading zeros, dotted tail, zone."""
    value = draw(st.one_of(v6, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1).map(lambda x: x | 0xFFFF << 32),
                           st.sampled_from([0, 1, 2, 0xFFFF << 32])))
    words = [f"{value >> s & 0xFFFF:0{draw(st.integers(1, 4))}x}" for s in range(112, -16, -16)]
    if draw(st.booleans()):  # dotted IPv4 tail
        words[6:] = [".".join(str(value >> s & 255) for s in (24, 16, 8, 0))]
    if draw(st.booleans()):  # "::" over some run (zero or not: the oracle decides what is valid)
        i = draw(st.integers(0, len(words)))
        j = draw(st.integers(i, len(words)))
        words = words[:i] + [""] + words[j:]
        text = ":".join(words)
        text = (":" + text if text.startswith(":") or not text else text)
        text = text + ":" if text.endswith(":") and not text.endswith("::") else text
    else:
        text = ":".join(words)
    if draw(st.booleans()):
        text = text.upper()
    if draw(st.integers(0, 4)) == 0:
        text += "%" + draw(zones)
    return text


v4_texts = st.one_of(v4.map(lambda x: str(ipaddress.IPv4Address(x))),
                     st.lists(st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "255", "256", "999", "0x1",
                                               "", " 1", "+1", "١"]), min_size=3, max_size=5).map(".".join))
noise = st.text("0123456789abcdefABCDEF:.%/x ", max_size=24)
addr_texts = st.one_of(v4_texts, v6_texts(), noise)
prefixes = st.one_of(st.integers(0, 130).map(str), st.sampled_from(["024", "0032", "", "+8", " 8", "8 ", "٣", "-1",
                                                                    "255.255.0.0", "0.0.255.255", "255.0.255.0",
                                                                    "0.0.0.0", "255.255.255.255", "ffff::"]))
prefixed_texts = st.one_of(st.tuples(addr_texts, prefixes).map("/".join), noise)


def _outcome(fn, *args):
    """str() of the result, or the ValueError's message (ipaddress's subclasses print the same way)."""
    try:
        return "ok", str(fn(*args))
    except ValueError as e:
        return "error", str(e)


@settings(max_examples=1500, deadline=None)
@given(addr_texts)
@example("::ffff:1.2.3.4")
@example("::1.2.3.4")
@example("::0.0.0.2")
@example("1:2:3:4:5:6:7::")
@example("::2:3:4:5:6:7:8")
@example("fe80::1%eth0")
@example("fe80::1%")
@example("fe80::1%a%b")
@example("1.2.3.4%eth0")
@example("1.2.3.04")
@example("1.2.3.4\0")
@example("1.2.3.\udc80")
@example("")
def test_address_text_as_ipaddress(text):
    ours = _outcome(ipaddr.ip_address, text)
    assert ours == _outcome(ipaddress.ip_address, text)
    if ours[0] == "ok":
        a, b = ipaddr.ip_address(text), ipaddress.ip_address(text)
        assert (a.version, int(a), a.packed, a.max_prefixlen) == (b.version, int(b), b.packed, b.max_prefixlen)
        assert a.scope_id == getattr(b, "scope_id", None)
        assert str(a.ipv4_mapped) == str(getattr(b, "ipv4_mapped", None))
        assert ipaddr.ip_address(str(a)) == a  # the printed form reads back


@settings(max_examples=1500, deadline=None)
@given(prefixed_texts)
@example("10.0.0.0/255.255.0.0")
@example("10.0.0.0/0.0.255.255")
@example("10.0.0.1/024")
@example("fe80::1%eth0/64")
@example("fe80::%eth0/64")
@example("10.0.0.1/24/")
@example("::/0")
@example("10.0.0.0/" + "1" * 5000)  # past int()'s digit limit: still "does not appear to be"
@example("::/" + "0" * 4099 + "8")
def test_interface_and_network_text_as_ipaddress(text):
    assert _outcome(ipaddr.ip_interface, text) == _outcome(ipaddress.ip_interface, text)
    for strict in (True, False):
        assert _outcome(ipaddr.ip_network, text, strict) == _outcome(ipaddress.ip_network, text, strict)
    if _outcome(ipaddress.ip_interface, text)[0] == "ok":
        a, b = ipaddr.ip_interface(text), ipaddress.ip_interface(text)
        assert (a.version, str(a.ip), a.prefixlen, str(a.network)) == (b.version, str(b.ip), b.network.prefixlen,
                                                                       str(b.network))
        n, m = a.network, b.network
        assert (str(n.network_address), str(n.broadcast_address), str(n.netmask), n.num_addresses, n.max_prefixlen) \
            == (str(m.network_address), str(m.broadcast_address), str(m.netmask), m.num_addresses, m.max_prefixlen)
        assert ipaddr.ip_interface(str(a)) == a and ipaddr.ip_network(str(n)) == n


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.tuples(st.just(4), v4), st.tuples(st.just(6), v6),
                 st.tuples(st.just(6), st.integers(0, 2**48 - 1))))  # small v6: the "::" and mapped forms
def test_text_of_an_integer_and_the_round_trip(vv):
    version, value = vv
    theirs = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
    ours = ipaddr.IPAddress(version, value)
    assert str(ours) == ipaddr.ip_text(version, value) == str(theirs)
    assert int(ipaddr.ip_address(str(theirs))) == value
    assert ipaddr.from_packed(theirs.packed) == ours and ours.packed == theirs.packed


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.tuples(st.just(4), v4, v4, st.integers(0, 32)), st.tuples(st.just(6), v6, v6, st.integers(0, 128))),
       st.integers(-3, 3))
def test_containment_order_and_neighbours(case, step):
    version, a, n, plen = case
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    net_theirs = ipaddress.ip_network((cls(n), plen), strict=False)
    net = ipaddr.ip_network(f"{cls(n)}/{plen}", strict=False)
    assert str(net) == str(net_theirs)
    for addr in (a, int(net_theirs.network_address), int(net_theirs.broadcast_address), n):
        assert (ipaddr.IPAddress(version, addr) in net) == (cls(addr) in net_theirs)
    other = ipaddr.IPAddress(6 if version == 4 else 4, 0)
    assert other not in net
    x, y = ipaddr.IPAddress(version, a), ipaddr.IPAddress(version, n)
    assert (x < y, x <= y, x > y, x >= y, x == y) == (cls(a) < cls(n), cls(a) <= cls(n), cls(a) > cls(n),
                                                      cls(a) >= cls(n), a == n)
    try:
        theirs = str(cls(a) + step)
    except ValueError:
        with pytest.raises(ValueError):
            x + step
    else:
        assert str(x + step) == theirs and str(x - -step) == theirs


def test_equality_and_hash_are_by_value_and_zone():
    a = ipaddr.ip_address("2001:db8::1")
    assert a == ipaddr.ip_address("2001:DB8:0::1") and hash(a) == hash(ipaddr.ip_address("2001:db8::0:1"))
    assert a != ipaddr.ip_address("2001:db8::1%eth0")  # as ipaddress: the zone is part of the address
    assert ipaddr.ip_interface("10.0.0.1/24") != ipaddr.ip_interface("10.0.0.1/25")
    assert ipaddr.ip_interface("10.0.0.1/24") != ipaddr.ip_address("10.0.0.1")
    assert {ipaddr.ip_network("10.0.0.0/8"): 1}[ipaddr.ip_network("10.0.0.0/8")] == 1
    assert sorted([ipaddr.ip_address("::1"), ipaddr.ip_address("10.0.0.2"), ipaddr.ip_address("10.0.0.1")]) == [
        ipaddr.ip_address("10.0.0.1"), ipaddr.ip_address("10.0.0.2"), ipaddr.ip_address("::1")]
    with pytest.raises(AttributeError):
        a.value = 3  # type: ignore[misc]


def test_constructors_refuse_what_cannot_be():
    for bad in (lambda: ipaddr.IPAddress(4, 2**32), lambda: ipaddr.IPAddress(6, -1),
                lambda: ipaddr.IPInterface(ipaddr.IPAddress(4, 1), 33),
                lambda: ipaddr.IPNetwork(ipaddr.IPAddress(4, 1), 24), lambda: ipaddr.from_packed(b"\0" * 5)):
        with pytest.raises(ValueError):
            bad()
    assert repr(ipaddr.ip_interface("10.0.0.1/24")) == "ip_interface('10.0.0.1/24')"


def test_inet_ntop_differs_where_ipaddress_is_followed():
    # Why the IPv6 text is ours and not inet_ntop's: glibc prints these in dotted form.
    import socket

    for text, want in (("::ffff:1.2.3.4", "::ffff:102:304"), ("::2", "::2"), ("::1.2.3.4", "::102:304")):
        packed = socket.inet_pton(socket.AF_INET6, text)
        assert str(ipaddr.from_packed(packed)) == want == str(ipaddress.IPv6Address(packed))
    assert "." in socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "::ffff:1.2.3.4"))


PROBE = """
import sys
sys.path.insert(0, {root!r})
import {module}
heavy = ("ipaddress", "re", "enum", "functools", "collections", "typing")
print(" ".join(m for m in heavy if m in sys.modules))
"""


def test_ipaddr_itself_imports_nothing_heavy():
    p = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE.format(root=str(ROOT), module="cni_rdma.ipaddr")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == []


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_no_plugin_imports_ipaddress(plugin):
    code = PROBE.format(root=str(ROOT), module=f"cni_rdma.main, {PLUGINS[plugin]}")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "ipaddress" not in p.stdout.split()
