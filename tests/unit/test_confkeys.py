"""The config contract (cni_rdma.confkeys): one MAC parser and precedence, one integer reader, one meaning of
cni.dev/valid-attachments, and every plugin exposing the same load_conf(req)."""
from __future__ import annotations

import importlib
import json

import pytest

from cni_rdma import confkeys, registry
from cni_rdma.errors import CniError
from cni_rdma.skel import Request
from cni_rdma.types import NetConf


def req(raw: dict, cni_args: str = "") -> Request:
    raw = {"cniVersion": "1.0.0", "name": "n", "type": "macvlan", **raw}
    stdin = json.dumps(raw).encode()
    return Request(command="ADD", container_id="c1", netns="/x", ifname="net1", cni_args=cni_args, path=(),
                   stdin=stdin, conf=NetConf.from_json(raw))


@pytest.mark.parametrize("value, want", [("02:AA:00:00:00:01", "02:aa:00:00:00:01"),
                                          ("02-aa-00-00-00-01", "02:aa:00:00:00:01")])
def test_parse_mac_normalises(value, want):
    assert confkeys.parse_mac(value, "mac") == want


@pytest.mark.parametrize("value, words", [
    ("02:aa-00:00:00:01", "is not a MAC address"), ("2:aa:00:00:00:01", "is not a MAC address"),
    (" 02:aa:00:00:00:01", "is not a MAC address"), ("02:aa:00:00:00:01:02", "is not a MAC address"),
    ("03:00:00:00:00:01", "multicast"), ("00:00:00:00:00:00", "not a usable"), (5, "expected a MAC address string"),
])
def test_parse_mac_refuses_with_code_7_naming_the_key(value, words):
    with pytest.raises(CniError) as e:
        confkeys.parse_mac(value, "runtimeConfig.mac")
    assert e.value.code == 7 and '"runtimeConfig.mac"' in e.value.msg and words in e.value.msg


def test_mac_precedence_config_then_cni_args_then_runtime_config():
    m1, m2, m3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
    assert confkeys.mac(req({})) == ""
    assert confkeys.mac(req({"mac": m1})) == m1
    assert confkeys.mac(req({"mac": m1}, f"MAC={m2}")) == m2
    assert confkeys.mac(req({"mac": m1, "runtimeConfig": {"mac": m3}}, f"MAC={m2}")) == m3
    with pytest.raises(CniError, match='"CNI_ARGS MAC"'):
        confkeys.mac(req({"mac": m1}, "MAC=zz"))


@pytest.mark.parametrize("value, want", [(5, 5), (5.0, 5), (None, None)])
def test_one_integer_reader(value, want):
    raw = {} if value is None else {"k": value}
    assert confkeys.get_opt_int(raw, "k", 0, 9) == want
    assert confkeys.get_int(raw, "k", 7, 0, 9) == (7 if want is None else want)


@pytest.mark.parametrize("value", [True, "5", 5.5, 10, -1])
def test_integer_reader_refuses(value):
    with pytest.raises(CniError) as e:
        confkeys.get_opt_int({"k": value}, "k", 0, 9)
    assert e.value.code == 7 and '"k"' in e.value.msg


def test_valid_attachments_has_one_meaning():
    key = confkeys.VALID_ATTACHMENTS
    assert confkeys.valid_attachments({}) is None  # absent: release nothing
    assert confkeys.valid_attachments({key: []}) == set()  # present and empty: nothing is valid
    assert confkeys.valid_attachments({key: [{"containerID": "c", "ifname": "e"}]}) == {("c", "e")}
    for bad, where in (({"containerID": "c"}, key), (["x"], f"{key}[0]"), ([{"containerID": "c"}], f"{key}[0].ifname")):
        with pytest.raises(CniError) as e:
            confkeys.valid_attachments({key: bad})
        assert e.value.code == 7 and f'"{where}' in e.value.msg


@pytest.mark.parametrize("plugin", sorted(registry.PLUGINS))
def test_every_plugin_exposes_load_conf(plugin):
    mod = importlib.import_module(registry.PLUGINS[plugin])
    assert callable(getattr(mod, "load_conf", None)), f"{plugin} has no load_conf(req)"
