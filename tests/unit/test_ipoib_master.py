"""macvlan on an IPoIB master: a clear code 7 pointing at ipvlan / an IB VF, decided from the kernel's own
link answer (ifi_type ARPHRD_INFINIBAND). No IB device exists here or in the VM, so the RTM_NEWLINK answer
is built the way ib_ipoib reports a port: ifi_type 32, a 20-byte hardware address (RFC 4391)."""
from __future__ import annotations

import pytest

from cni_rdma.errors import CniError
from cni_rdma.netlink import core, links, rtmsg
from plugins.macvlan import macvlan


def newlink(link_type: int, name: str, hwaddr: bytes, flags: int = rtmsg.IFF_UP) -> bytes:
    return (rtmsg.IFINFOMSG.pack(0, link_type, 7, flags, 0) + core.a_str(links.IFLA_IFNAME, name)
            + core.attr(links.IFLA_ADDRESS, hwaddr) + core.a_u32(links.IFLA_MTU, 2044))


IPOIB_ADDR = bytes.fromhex("00000a4dfe800000000000000002c90300a1b2c3")  # QPN + port GID


def test_ipoib_master_is_code_7_naming_master_and_ipvlan():
    link = links.decode_link(newlink(rtmsg.ARPHRD_INFINIBAND, "ib0", IPOIB_ADDR))
    assert link.link_type == 32 and link.name == "ib0" and len(link.mac.split(":")) == 20
    with pytest.raises(CniError) as e:
        macvlan.require_ethernet(link)
    assert e.value.code == 7
    assert '"master"' in e.value.msg and '"ib0"' in e.value.msg and "IPoIB" in e.value.msg
    assert "ipvlan" in e.value.msg and "sriov" in e.value.msg


def test_ethernet_master_passes_and_loopback_does_not():
    macvlan.require_ethernet(links.decode_link(newlink(rtmsg.ARPHRD_ETHER, "ens1f0", bytes(range(1, 7)))))
    with pytest.raises(CniError) as e:
        macvlan.require_ethernet(links.decode_link(newlink(rtmsg.ARPHRD_LOOPBACK, "lo", bytes(6),
                                                          rtmsg.IFF_UP | rtmsg.IFF_LOOPBACK)))
    assert e.value.code == 7 and "not an Ethernet interface" in e.value.msg
