"""The hot path's string checks that replaced regular expressions (re costs ~5 ms of a plugin's start), against
those very expressions with fullmatch semantics: a trailing newline, non-ASCII digits and letters included."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni_rdma import state
from cni_rdma.errors import CniError
from cni_rdma.sysfs import normalize_pci
from plugins.sriov import infiniband, sriovcni

# Text near the shapes the checks accept: their alphabets, separators, a newline, non-ASCII look-alikes.
NEAR = st.text(alphabet=st.sampled_from("0123456789abcdefABCDEFgxzZ:.-_ \n\t/\u0663\uff10\u00e9\u212a"),
               max_size=26)
ANY = NEAR | st.text(max_size=26)


def _state_name_ok(name: str) -> bool:
    try:
        state.check_name(name)
        return True
    except CniError:
        return False


@settings(max_examples=1500, deadline=None)
@given(ANY)
def test_state_record_names_are_the_regexp(name):
    want = bool(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.:\-]*", name)) and ".." not in name and len(name) <= 250
    assert _state_name_ok(name) == want


def _normalize_pci_re(addr: str):
    m = re.fullmatch(r"(?:([0-9a-fA-F]{4,8}):)?([0-9a-fA-F]{2}):([0-1][0-9a-fA-F])\.([0-7])", addr.strip())
    if not m:
        return None
    domain, bus, dev, fn = m.groups()
    return f"{(domain or '0000').lower()}:{bus.lower()}:{dev.lower()}.{fn}"


PCI_LIKE = st.builds(lambda d, b, dev, f, pre, post: f"{pre}{d}{b}:{dev}.{f}{post}",
                     st.sampled_from(["", "0000:", "00000:", "deadbeef:", "dead:", "000:", "123456789:", ":"]),
                     st.sampled_from(["af", "AF", "0", "000", "g0", "\u0663\u0663"]),
                     st.sampled_from(["00", "1f", "2f", "0", "1F", "0x"]),
                     st.sampled_from(["0", "7", "8", "", "01", "\u0663"]),
                     st.sampled_from(["", " ", "\n", "\t "]), st.sampled_from(["", " ", "\n", ".", ":"]))


@settings(max_examples=1500, deadline=None)
@given(ANY | PCI_LIKE)
def test_normalize_pci_is_the_regexp(addr):
    assert normalize_pci(addr) == _normalize_pci_re(addr)


@pytest.mark.parametrize("addr", ["0000:af:00.2", "af:00.2", "0000:AF:1f.7\n", " af:00.0 ", "0000:af:20.0",
                                  "0000:af:00.8", "0000:af:00.2\n\n", "0000:af:00.", "deadbeef0:af:00.1"])
def test_normalize_pci_examples(addr):
    assert normalize_pci(addr) == _normalize_pci_re(addr)


GUID_LIKE = st.lists(st.sampled_from(["00", "ff", "Ab", "0", "000", "g0", "\u0663\u0663", "0\n"]), min_size=6,
                     max_size=9).map(":".join)


@settings(max_examples=1500, deadline=None)
@given(ANY | GUID_LIKE | GUID_LIKE.map(lambda s: s + "\n"))
def test_ib_guid_is_the_regexp(s):
    assert infiniband._is_guid(s) == bool(re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){7}", s))


SRIOV_PCI_LIKE = st.builds(lambda a, b, c, f, post: f"{a}:{b}:{c}.{f}{post}",
                           st.sampled_from(["0000", "000", "00000", "AAAA", "abcd"]),
                           st.sampled_from(["af", "AF", "a"]), st.sampled_from(["00", "1f", "0g"]),
                           st.sampled_from(["0", "7", "8", "\u0663"]), st.sampled_from(["", "\n", " "]))


@settings(max_examples=1500, deadline=None)
@given(ANY | SRIOV_PCI_LIKE)
def test_sriovcni_pci_is_the_regexp(addr):
    assert sriovcni._is_pci(addr) == bool(re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]", addr))


def test_trailing_newline_is_refused_everywhere():
    assert not _state_name_ok("vf-0000:af:00.2\n")
    assert normalize_pci("0000:af:00.2\n") == "0000:af:00.2"  # strip() first, as before (whitespace around)
    assert not infiniband._is_guid("00:11:22:33:44:55:66:77\n")
    assert not sriovcni._is_pci("0000:af:00.2\n")


def _endpoint_re(text: str):
    m = re.fullmatch(r"(https?)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):([0-9]{1,5})/?", text)
    if m is None or not 0 < int(m.group(3)) < 65536:
        return None
    return (text.rstrip("/"), m.group(1) == "https", m.group(2).strip("[]"), int(m.group(3)))


ENDPOINT_LIKE = st.builds(lambda s, h, p, t: f"{s}{h}{p}{t}",
                          st.sampled_from(["http://", "https://", "htps://", "http:/", "", "HTTP://", "xhttp://"]),
                          st.sampled_from(["127.0.0.1", "[::1]", "[fe80::1%lo]", "etcd-0.svc", "a_b", "", "[]", "[:",
                                           "h\u00e9", "x://y", "[::1", "::1]", "[[::1]]"]),
                          st.sampled_from([":2379", ":0", ":65535", ":65536", ":123456", ":", "", ":\u0663", ":1:2",
                                           ":02379"]),
                          st.sampled_from(["", "/", "//", "\n", "/\n", "/x"]))


@settings(max_examples=1500, deadline=None)
@given(ANY | ENDPOINT_LIKE)
def test_etcd_endpoint_is_the_regexp(text):
    from ipam.cluster_ipam.etcd import parse_endpoint

    ep = parse_endpoint(text)
    assert (None if ep is None else (ep.url, ep.tls, ep.host, ep.port)) == _endpoint_re(text)


@settings(max_examples=1500, deadline=None)
@given(ANY | st.text(alphabet=st.sampled_from("aZ9_.-/\n\u0663 "), max_size=12)
       | st.integers(250, 256).map(lambda n: "a" * n))
def test_cluster_ipam_names_and_prefixes_are_the_regexps(s):
    from ipam.cluster_ipam.config import is_name, is_prefix

    assert is_name(s) == bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,252}", s))
    assert is_prefix(s) == bool(re.fullmatch(r"(/[A-Za-z0-9_.\-]+)+", s))
