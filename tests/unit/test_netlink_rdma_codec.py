"""Unit tier for RDMA netlink (nldev): message types, decode round-trips, malformed replies."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from cni_rdma.netlink import core, rdma
from cni_rdma.netlink.errors import NetlinkDecodeError

names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
u32 = st.integers(0, 0xFFFFFFFF)


def test_message_types_follow_rdma_nl_get_type():
    # RDMA_NL_GET_TYPE(client, op) = (client << 10) + op, RDMA_NL_NLDEV = 5
    assert rdma.nl_type(rdma.RDMA_NLDEV_CMD_GET) == 5121
    assert rdma.nl_type(rdma.RDMA_NLDEV_CMD_SET) == 5122
    assert rdma.nl_type(rdma.RDMA_NLDEV_CMD_PORT_GET) == 5125
    assert rdma.nl_type(rdma.RDMA_NLDEV_CMD_SYS_GET) == 5126
    assert rdma.nl_type(rdma.RDMA_NLDEV_CMD_SYS_SET) == 5127
    assert rdma.RDMA_NLDEV_SYS_ATTR_NETNS_MODE == 66 and rdma.RDMA_NLDEV_NET_NS_FD == 68


@given(u32, names, st.integers(0, 255), st.one_of(st.none(), st.integers(0, 2 ** 64 - 1)),
       st.sampled_from(sorted(rdma.NODE_TYPES)), st.one_of(st.none(), st.sampled_from(["ib", "roce", "iw"])),
       st.one_of(st.none(), names), st.one_of(st.none(), st.sampled_from(["rxe", "siw"])))
def test_device_roundtrip(index, name, ports, guid, node_type, proto, fw, driver):
    body = [core.a_u32(rdma.RDMA_NLDEV_ATTR_DEV_INDEX, index), core.a_str(rdma.RDMA_NLDEV_ATTR_DEV_NAME, name),
            core.a_u32(rdma.RDMA_NLDEV_ATTR_PORT_INDEX, ports), core.a_u8(rdma.RDMA_NLDEV_ATTR_DEV_NODE_TYPE, node_type)]
    if guid is not None:
        body.append(core.a_u64(rdma.RDMA_NLDEV_ATTR_NODE_GUID, guid))
    if proto is not None:
        body.append(core.a_str(rdma.RDMA_NLDEV_ATTR_DEV_PROTOCOL, proto))
    if fw is not None:
        body.append(core.a_str(rdma.RDMA_NLDEV_ATTR_FW_VERSION, fw))
    if driver is not None:
        body.append(core.a_str(rdma.RDMA_NLDEV_ATTR_LINK_TYPE, driver))
    d = rdma.decode_device(b"".join(body))
    assert (d.index, d.name, d.ports, d.node_guid, d.protocol, d.fw_version, d.driver) == \
        (index, name, ports, guid, proto, fw, driver)
    assert d.node_type == rdma.NODE_TYPES[node_type]


@given(u32, names, st.integers(1, 255), st.integers(0, 5), st.integers(1, 7),
       st.one_of(st.none(), st.tuples(u32, names)))
def test_port_roundtrip(index, name, port, state, phys, ndev):
    body = [core.a_u32(rdma.RDMA_NLDEV_ATTR_DEV_INDEX, index), core.a_str(rdma.RDMA_NLDEV_ATTR_DEV_NAME, name),
            core.a_u32(rdma.RDMA_NLDEV_ATTR_PORT_INDEX, port), core.a_u8(rdma.RDMA_NLDEV_ATTR_PORT_STATE, state),
            core.a_u8(rdma.RDMA_NLDEV_ATTR_PORT_PHYS_STATE, phys)]
    if ndev:
        body += [core.a_u32(rdma.RDMA_NLDEV_ATTR_NDEV_INDEX, ndev[0]), core.a_str(rdma.RDMA_NLDEV_ATTR_NDEV_NAME, ndev[1])]
    p = rdma.decode_port(b"".join(body))
    assert (p.dev_index, p.dev_name, p.port, p.phys_state) == (index, name, port, phys)
    assert p.state == rdma.PORT_STATES[state]
    assert (p.netdev_index, p.netdev) == (ndev if ndev else (None, None))


@pytest.mark.parametrize("mode,value", [("exclusive", 0), ("shared", 1)])
def test_netns_mode_decode(mode, value):
    assert rdma.decode_netns_mode(core.a_u8(rdma.RDMA_NLDEV_SYS_ATTR_NETNS_MODE, value) +
                                  core.a_u8(93, 1)) == mode  # 93: COPY_ON_FORK rides along
    with pytest.raises(NetlinkDecodeError):
        rdma.decode_netns_mode(core.a_u8(93, 1))


@pytest.mark.parametrize("decode", [rdma.decode_device, rdma.decode_port, rdma.decode_netns_mode])
@settings(max_examples=300)
@given(b=st.binary(max_size=200))
def test_decoders_never_crash_on_garbage(decode, b):
    try:
        decode(b)
    except NetlinkDecodeError:
        pass


def test_guid_text_form_matches_rdma_tool():
    # `rdma -j dev` prints node_guid as four 16-bit groups
    d = rdma.decode_device(core.a_u32(1, 3) + core.a_str(2, "rxe0") + core.a_u64(6, 0x5054_00FF_FE12_3456))
    assert ":".join(f"{(d.node_guid >> s) & 0xFFFF:04x}" for s in (48, 32, 16, 0)) == "5054:00ff:fe12:3456"
