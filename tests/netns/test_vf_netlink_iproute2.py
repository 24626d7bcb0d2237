"""Our VF netlink requests against iproute2's, byte for byte (IB GUIDs first).

Both run under `strace -e write=all` against the same veth in a throwaway netns: the kernel refuses every
VF setting on a veth (EOPNOTSUPP), but the request each program sent is on record. The RTM_NEWLINK
messages must be identical except for the sequence number and port id. That covers the encoding of
IFLA_VF_IB_NODE_GUID / IFLA_VF_IB_PORT_GUID (struct ifla_vf_guid: u32 vf, 4 bytes of padding, u64 guid in
host order, the GUID's first byte most significant), and the GUID text → u64 of the `guid` /
`infinibandGUID` keys (plugins/sriov/infiniband.parse_guid, as iproute2's get_guid). No InfiniBand
device exists here or in the VM (netdevsim PFs are Ethernet; the kernel takes GUIDs only for
ARPHRD_INFINIBAND PFs), so the kernel's acceptance of these bytes is not proven here.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests import topology
from tests.topology import ROOT

RTM_NEWLINK = 16

_OURS = r"""
import sys
sys.path.insert(0, sys.argv[1])
from cni_rdma.netlink.errors import NetlinkError
from cni_rdma.netlink.rtnl import Rtnl
from plugins.sriov.infiniband import parse_guid
dev, vf = sys.argv[2], int(sys.argv[3])
kw = {}
for item in sys.argv[4:]:
    k, v = item.split("=", 1)
    kw[k] = parse_guid(v, k) if k.endswith("guid") else int(v) if v.isdigit() else v
with Rtnl() as nl:
    try:
        nl.vf_set(nl.link_get(name=dev).index, vf, **kw)
    except NetlinkError as e:
        print(e.errno)
"""


def _newlinks(cmd: list[str], netns: str) -> list[bytes]:
    """The RTM_NEWLINK requests cmd sent, from strace's hex dumps of its sendmsg/sendto data."""
    p = subprocess.run(["ip", "netns", "exec", netns, "strace", "-qq", "-f", "-e", "trace=sendmsg,sendto",
                        "-e", "write=all", *cmd], capture_output=True, text=True, timeout=120)
    msgs: list[bytearray] = []
    for line in p.stderr.splitlines():
        if re.match(r"^(\[pid +\d+\] )?(sendmsg|sendto)\(", line):
            msgs.append(bytearray())
            continue
        m = re.match(r"^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})", line)
        if m and msgs:
            msgs[-1] += bytes.fromhex(m.group(1).replace(" ", ""))
    out = []
    for raw in msgs:
        # RTM_NEWLINK with attributes (iproute2 also sends an empty one: its strict-checking probe)
        if len(raw) > 32 and int.from_bytes(raw[4:6], "little") == RTM_NEWLINK:
            out.append(bytes(raw[:8]) + bytes(8) + bytes(raw[16:]))  # seq and pid differ by design
    return out


@pytest.fixture(scope="module")
def veth():
    ns = topology.unique("crn-vfnl")
    topology.netns_add(ns)
    topology.sh("ip", "-n", ns, "link", "add", "vfnl0", "type", "veth", "peer", "name", "vfnl1")
    yield ns
    topology.netns_del(ns)


CASES = {
    "node_guid": (["node_guid", "00:11:22:33:44:55:66:77"], ["node_guid=00:11:22:33:44:55:66:77"]),
    "port_guid": (["port_guid", "fe:dc:ba:98:76:54:32:10"], ["port_guid=fe:dc:ba:98:76:54:32:10"]),
    "both": (["node_guid", "02:00:00:00:00:00:00:01", "port_guid", "ff:ff:ff:ff:ff:ff:ff:ff"],
             ["node_guid=02:00:00:00:00:00:00:01", "port_guid=ff:ff:ff:ff:ff:ff:ff:ff"]),
    "vlan-802.1ad": (["vlan", "100", "qos", "3", "proto", "802.1ad"], ["vlan=100", "qos=3", "vlan_proto=802.1ad"]),
    "vlan-802.1Q": (["vlan", "4094", "qos", "7"], ["vlan=4094", "qos=7"]),
    "mac": (["mac", "02:aa:bb:cc:dd:ee"], ["mac=02:aa:bb:cc:dd:ee"]),
    "trust": (["trust", "on"], ["trust=1"]),
    "spoofchk": (["spoofchk", "off"], ["spoofchk=0"]),
    "state": (["state", "disable"], ["link_state=disable"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_vf_request_bytes_equal_iproute2(veth, case):
    ip_args, our_args = CASES[case]
    theirs = _newlinks(["ip", "link", "set", "dev", "vfnl0", "vf", "5", *ip_args], veth)
    ours = _newlinks([sys.executable, "-c", _OURS, str(ROOT), "vfnl0", "5", *our_args], veth)
    assert len(theirs) == 1 and len(ours) == 1, (theirs, ours)
    assert ours[0].hex(" ") == theirs[0].hex(" ")


def test_guid_text_is_most_significant_byte_first(veth):
    (msg,) = _newlinks(["ip", "link", "set", "dev", "vfnl0", "vf", "1", "node_guid", "01:02:03:04:05:06:07:08"], veth)
    # nlmsghdr 16 + ifinfomsg 16, then VFINFO_LIST(4) > VF_INFO(4) > NODE_GUID(4): vf u32, pad, u64 guid
    assert msg[44:48] == (1).to_bytes(4, "little") and msg[52:60] == (0x0102030405060708).to_bytes(8, "little")
