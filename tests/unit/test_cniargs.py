"""CNI_ARGS (SPEC.md section 2 "Parameters"), with Go's LoadArgs IgnoreUnknown semantics."""
import pytest

from cni_rdma import cniargs
from cni_rdma.errors import CniError


def test_empty():
    assert cniargs.parse("") == {}


def test_known_and_k8s_keys():
    raw = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u;MAC=aa:bb:cc:dd:ee:ff"
    assert cniargs.parse(raw, {"MAC"})["MAC"] == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize("flag", ["1", "true", "TRUE", "True"])
def test_ignore_unknown_true(flag):
    assert cniargs.parse(f"IgnoreUnknown={flag};FOO=bar") == {"IgnoreUnknown": flag}


@pytest.mark.parametrize("raw", ["FOO=bar", "IgnoreUnknown=0;FOO=bar", "IgnoreUnknown=false;FOO=bar"])
def test_unknown_rejected_without_ignore(raw):
    with pytest.raises(CniError) as e:
        cniargs.parse(raw)
    assert e.value.code == 4 and "FOO=bar" in e.value.msg


def test_bad_boolean():
    with pytest.raises(CniError) as e:
        cniargs.parse("IgnoreUnknown=yes;FOO=1")
    assert "IgnoreUnknown=yes" in e.value.msg


@pytest.mark.parametrize("pair", ["FOO", "A=b=c", "=x", ""])
def test_malformed_pair_is_named(pair):
    with pytest.raises(CniError) as e:
        cniargs.parse(f"IgnoreUnknown=1;{pair}")
    assert e.value.code == 4 and repr(pair) in e.value.msg
