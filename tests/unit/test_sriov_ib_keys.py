"""ib-sriov-cni's keys in the sriov plugin (plugins/sriov/infiniband.py): the same sources, precedence and
validity rules (ib-sriov-cni: cmd/ib-sriov-cni/main.go getGUIDFromConf, pkg/utils/utils.go IsValidGUID)."""
from __future__ import annotations

import pytest

from cni_rdma.errors import CniError
from plugins.sriov import infiniband as ib


def test_guid_sources_and_precedence():
    assert ib.load({}).guid is None and not ib.load({}).wanted
    c = ib.load({"args": {"cni": {"guid": "00:11:22:33:44:55:66:77"}}})
    assert (c.guid, c.guid_key) == (0x0011223344556677, "args.cni.guid") and c.wanted
    c = ib.load({"args": {"cni": {"guid": "00:11:22:33:44:55:66:77"}},
                 "runtimeConfig": {"infinibandGUID": "FE:DC:BA:98:76:54:32:10"}})
    assert (c.guid, c.guid_key) == (0xFEDCBA9876543210, "runtimeConfig.infinibandGUID")
    assert ib.guid_str(c.guid) == "fe:dc:ba:98:76:54:32:10"


@pytest.mark.parametrize("raw, field", [
    ({"runtimeConfig": {"infinibandGUID": "00:00:00:00:00:00:00:00"}}, "runtimeConfig.infinibandGUID"),
    ({"runtimeConfig": {"infinibandGUID": "00:11:22:33:44:55"}}, "runtimeConfig.infinibandGUID"),
    ({"args": {"cni": {"guid": "0011.2233.4455.6677"}}}, "args.cni.guid"),
    ({"args": {"cni": {"guid": 5}}}, "args.cni.guid"),
    ({"pkey": 32769}, "pkey"),
    ({"pkey": "0x8000"}, "pkey"),
    ({"pkey": "0x10000"}, "pkey"),
    ({"pkey": "banana"}, "pkey"),
    ({"rdmaIsolation": "true"}, "rdmaIsolation"),
    ({"ibKubernetesEnabled": True}, "runtimeConfig.infinibandGUID"),
])
def test_bad_values_are_code_7_naming_the_key(raw, field):
    with pytest.raises(CniError) as e:
        ib.load(raw)
    assert e.value.code == 7 and f'"{field}"' in e.value.msg, e.value.msg


def test_pkey_rdma_isolation_ib_kubernetes():
    c = ib.load({"pkey": "0x8001", "rdmaIsolation": True, "ibKubernetesEnabled": True,
                 "runtimeConfig": {"infinibandGUID": "02:00:00:00:00:00:00:01"}})
    assert (c.pkey, c.rdma_isolation, c.ib_kubernetes) == (0x8001, True, True)
    assert ib.load({"pkey": "5"}).pkey == 5 and ib.load({"pkey": ""}).pkey is None


def test_guid_from_an_ipoib_hardware_address():
    addr = "00:00:0a:4d:fe:80:00:00:00:00:00:00:00:02:c9:03:00:a1:b2:c3"
    assert ib.guid_of_ipoib_addr(addr) == 0x0002C90300A1B2C3
    assert ib.guid_of_ipoib_addr("02:00:00:00:00:01") is None and ib.guid_of_ipoib_addr(None) is None
