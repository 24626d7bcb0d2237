"""sriov config parsing: the keys sriov-cni takes, their precedence, and what goes through the PF."""
from __future__ import annotations

import json

import pytest

from cni_rdma.errors import CniError
from cni_rdma.skel import Request
from cni_rdma.sysfs import Sysfs, normalize_pci
from cni_rdma.types import NetConf
from plugins.sriov import config


def req(raw: dict, cni_args: str = "", env: dict | None = None) -> Request:
    raw = {"cniVersion": "1.1.0", "name": "n", "type": "sriov", **raw}
    return Request(command="ADD", container_id="c", netns="/x", ifname="net1", cni_args=cni_args, path=(),
                   stdin=json.dumps(raw).encode(), conf=NetConf.from_json(raw), env=env or {})


def test_minimal_config_touches_nothing_on_the_pf():
    conf = config.load_conf(req({"deviceID": "0000:AF:00.2"}))
    assert conf.device_id == "0000:af:00.2"
    assert conf.pf_settings() == {}
    assert conf.sysfs == Sysfs("/sys")


def test_every_key():
    conf = config.load_conf(req({"deviceID": "af:00.2", "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1AD",
                           "mac": "02:AA:BB:CC:DD:01", "spoofchk": "off", "trust": "on", "link_state": "enable",
                           "min_tx_rate": 10, "max_tx_rate": 20, "mtu": 9000},
                          env={"CNI_RDMA_SYSFS_ROOT": "/tmp/fake"}))
    assert conf.pf_settings() == {"vlan": 100, "qos": 3, "vlan_proto": "802.1ad", "mac": "02:aa:bb:cc:dd:01",
                                  "spoofchk": False, "trust": True, "link_state": "enable", "min_tx_rate": 10,
                                  "max_tx_rate": 20}
    assert conf.mtu == 9000 and conf.sysfs.root == "/tmp/fake"


def test_vlan_alone_sets_qos_0_and_802_1q():
    assert config.load_conf(req({"deviceID": "af:00.2", "vlan": 0})).pf_settings() == {
        "vlan": 0, "qos": 0, "vlan_proto": "802.1Q"}


def test_booleans_are_accepted_for_on_off():
    conf = config.load_conf(req({"deviceID": "af:00.2", "spoofchk": True, "trust": False}))
    assert (conf.spoofchk, conf.trust) == (True, False)


def test_mac_precedence_config_args_runtime_config():
    base = {"deviceID": "af:00.2", "mac": "02:00:00:00:00:01"}
    assert config.load_conf(req(base)).mac == "02:00:00:00:00:01"
    assert config.load_conf(req(base, "IgnoreUnknown=1;MAC=02:00:00:00:00:02")).mac == "02:00:00:00:00:02"
    rc = dict(base, runtimeConfig={"mac": "02:00:00:00:00:03"})
    assert config.load_conf(req(rc, "MAC=02:00:00:00:00:02")).mac == "02:00:00:00:00:03"
    with pytest.raises(CniError) as e:
        config.load_conf(req(base, "MAC=nope"))
    assert e.value.code == 7 and "MAC" in e.value.msg


def test_device_id_precedence_and_errors():
    assert config.load_conf(req({"deviceID": "af:00.2", "runtimeConfig": {"deviceID": "af:00.3"}})).device_id == \
        "0000:af:00.2"
    assert config.load_conf(req({"runtimeConfig": {"deviceID": "af:00.3"}})).device_id == "0000:af:00.3"
    with pytest.raises(CniError) as e:
        config.load_conf(req({"runtimeConfig": {"deviceID": "bogus"}}))
    assert e.value.code == 7 and "runtimeConfig.deviceID" in e.value.msg
    with pytest.raises(CniError) as e:
        config.load_conf(req({}))
    assert e.value.code == 7 and "Multus" in e.value.details


@pytest.mark.parametrize("text,want", [
    ("0000:af:00.2", "0000:af:00.2"), ("AF:00.7", "0000:af:00.7"), ("10000:01:1f.0", "10000:01:1f.0"),
    ("0000:af:00.8", None), ("0000:af:20.0", None), ("af:00", None), ("", None), ("0000:af:00.2\n", "0000:af:00.2"),
])
def test_normalize_pci(text, want):
    assert normalize_pci(text) == want
