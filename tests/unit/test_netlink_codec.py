"""Unit tier for the netlink layer: attribute/message codecs, round-trips, malformed input, recorded replies."""
from __future__ import annotations

import errno
import json
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from cni_rdma import ipaddr
from cni_rdma.errors import CniError
from cni_rdma.netlink import addresses, core, links, routes, rtmsg, rtnl, vfs
from cni_rdma.netlink import errors as nl_errors
from cni_rdma.netlink.errors import NetlinkDecodeError, NetlinkError
from cni_rdma.netlink.routes import Nexthop, NlRoute

DATA = json.loads((Path(__file__).parent / "data" / "netlink_replies.json").read_text())

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
kinds = st.integers(1, core.NLA_TYPE_MASK)
macs = st.binary(min_size=6, max_size=6).map(core.mac_str)
names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=15)


# ------------------------------------------------------------------ attributes
@given(kinds, u8)
def test_u8_roundtrip(k, v):
    assert core.parse_attrs(core.a_u8(k, v)) == [(k, struct.pack("=B", v))]
    assert core.d_u8(core.attr_map(core.a_u8(k, v))[k]) == v


@given(kinds, u16)
def test_u16_and_be16_roundtrip(k, v):
    assert core.d_u16(core.attr_map(core.a_u16(k, v))[k]) == v
    raw = core.a_be16(k, v)
    assert struct.unpack_from("=H", raw, 2)[0] & core.NLA_F_NET_BYTEORDER
    assert core.d_be16(core.attr_map(raw)[k]) == v


@given(kinds, u32, st.integers(-(2 ** 31), 2 ** 31 - 1))
def test_u32_s32_roundtrip(k, v, s):
    assert core.d_u32(core.attr_map(core.a_u32(k, v))[k]) == v
    assert core.d_s32(core.attr_map(core.a_s32(k, s))[k]) == s


@given(kinds, u64)
def test_u64_roundtrip(k, v):
    assert core.d_u64(core.attr_map(core.a_u64(k, v))[k]) == v


@given(kinds, names)
def test_string_roundtrip(k, s):
    raw = core.a_str(k, s)
    assert len(raw) % 4 == 0
    assert core.d_str(core.attr_map(raw)[k]) == s


@given(kinds, st.binary(max_size=300))
def test_binary_roundtrip_and_padding(k, b):
    raw = core.attr(k, b)
    assert len(raw) % 4 == 0
    assert core.parse_attrs(raw) == [(k, b)]


@given(st.lists(st.tuples(kinds, st.binary(max_size=40)), max_size=8), kinds)
def test_nested_roundtrip(children, outer):
    raw = core.a_nest(outer, *(core.attr(k, b) for k, b in children))
    ((t, payload),) = core.parse_attrs(raw)
    assert t == outer  # the NLA_F_NESTED flag is masked off
    assert core.parse_attrs(payload) == children


@given(macs)
def test_mac_roundtrip(m):
    assert core.mac_str(core.mac_bytes(m)) == m
    assert core.mac_str(core.mac_bytes(m.upper())) == m


@pytest.mark.parametrize("bad", ["", "zz:00:00:00:00:00", "0:1:2:3:4:5:", "001122334455", "1:2:3:4:5:666"])
def test_bad_mac_is_clean_error(bad):
    with pytest.raises(NetlinkError):
        core.mac_bytes(bad)


def test_attribute_too_large_is_clean_error():
    with pytest.raises(NetlinkError):
        core.attr(1, b"x" * 70000)


# ------------------------------------------------------------------ malformed input: clean errors only
@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_parse_attrs_never_crashes(b):
    try:
        core.parse_attrs(b)
    except NetlinkDecodeError:
        pass


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_split_messages_never_crashes(b):
    try:
        core.split_messages(b)
    except NetlinkDecodeError:
        pass


@pytest.mark.parametrize("decode", [links.decode_link, links.link_head, addresses.decode_addr, routes.decode_route,
                                    lambda b: vfs.decode_vfinfo_list(b)])
@settings(max_examples=300)
@given(b=st.binary(max_size=300))
def test_decoders_never_crash_on_garbage(decode, b):
    try:
        decode(b)
    except NetlinkDecodeError:
        pass


@pytest.mark.parametrize("section,decode", [("links", links.decode_link), ("addrs", addresses.decode_addr),
                                            ("routes", routes.decode_route)])
def test_truncated_recorded_replies_raise_clean_errors(section, decode):
    for h in DATA[section]:
        full = bytes.fromhex(h)
        for cut in range(0, len(full), 3):
            try:
                decode(full[:cut])
            except NetlinkDecodeError:
                pass


@settings(max_examples=200)
@given(st.data())
def test_corrupted_recorded_link_never_crashes(data):
    full = bytearray(bytes.fromhex(data.draw(st.sampled_from(DATA["links"]))))
    for _ in range(data.draw(st.integers(1, 4))):
        full[data.draw(st.integers(0, len(full) - 1))] = data.draw(u8)
    try:
        links.decode_link(bytes(full))
    except NetlinkDecodeError:
        pass


def test_attribute_overrunning_its_container():
    raw = struct.pack("=HH", 40, 3) + b"abcd"
    with pytest.raises(NetlinkDecodeError):
        core.parse_attrs(raw)
    with pytest.raises(NetlinkDecodeError):
        core.parse_attrs(struct.pack("=HH", 2, 3))  # length below the header size


def test_message_length_lies():
    good = core.message(16, 0, 1, b"x" * 8)
    assert core.split_messages(good) == [(16, 0, 1, b"x" * 8)]
    bad = struct.pack("=IHHII", 100, 16, 0, 1, 0) + b"x" * 8
    with pytest.raises(NetlinkDecodeError):
        core.split_messages(bad)
    with pytest.raises(NetlinkDecodeError):
        core.split_messages(struct.pack("=IHHII", 4, 16, 0, 1, 0))
    with pytest.raises(NetlinkDecodeError):
        core.split_messages(b"\x01\x02\x03")


def test_short_fixed_width_values():
    with pytest.raises(NetlinkDecodeError):
        core.d_u32(b"\x01\x02")
    with pytest.raises(NetlinkDecodeError):
        core.d_u64(b"\x01" * 7)


# ------------------------------------------------------------------ NLMSG_ERROR and extended ack
def _error_msg(err: int, orig: bytes, ext: str | None, capped: bool) -> tuple[int, bytes]:
    flags = 0
    body = struct.pack("=i", -err)
    if capped:
        body += orig[:16]
        flags |= core.NLM_F_CAPPED
    else:
        body += orig
    if ext is not None:
        body += core.a_str(core.NLMSGERR_ATTR_MSG, ext)
        flags |= core.NLM_F_ACK_TLVS
    return flags, body


@given(st.integers(0, 200), st.binary(max_size=40), st.one_of(st.none(), names), st.booleans())
def test_parse_error_roundtrip(err, payload, ext, capped):
    orig = core.message(16, 5, 9, payload + b"\0" * (-len(payload) % 4))
    flags, body = _error_msg(err, orig, ext, capped)
    assert core.parse_error(flags, body) == (err, ext or "")


def test_parse_error_too_short():
    with pytest.raises(NetlinkDecodeError):
        core.parse_error(0, b"\x01")


def test_error_objects():
    e = nl_errors.error_for(errno.ENODEV, "get link", "eth9", "no such thing")
    assert isinstance(e, nl_errors.LinkNotFound) and isinstance(e, nl_errors.NotFound)
    assert not isinstance(e, CniError), "the netlink layer has its own root; skel maps it to a CNI code"
    assert e.errno == errno.ENODEV and (e.op, e.dev, e.ext_ack) == ("get link", "eth9", "no such thing")
    assert "get link 'eth9'" in str(e) and "ENODEV" in str(e) and "no such thing" in str(e)
    e = nl_errors.error_for(errno.EPERM, "set link", "net1")
    assert type(e) is NetlinkError and not isinstance(e, nl_errors.NotFound) and "EPERM" in str(e)
    assert isinstance(NetlinkDecodeError("short"), NetlinkError)


def test_skel_maps_a_netlink_error_to_code_5_once():
    import types

    from cni_rdma import skel

    def add(req):
        raise nl_errors.error_for(errno.EPERM, "set link", "net1", "nope")

    mod = types.ModuleType("fake")
    mod.add = add  # type: ignore[attr-defined]
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x", "CNI_IFNAME": "net1", "CNI_PATH": "/"}
    with pytest.raises(CniError) as info:
        skel.call(mod, env, b'{"cniVersion": "1.0.0", "name": "n", "type": "fake"}')
    assert info.value.code == 5 and info.value.msg == "netlink: set link 'net1' failed"
    assert info.value.details == "Operation not permitted (EPERM): nope"


# ------------------------------------------------------------------ the socket loop against a fake kernel
class FakeKernelSocket(core.NetlinkSocket):
    """A NetlinkSocket whose 'kernel' is the other end of a datagram socketpair (the same send/recv calls)."""

    def __init__(self, timeout=0.5):
        mine, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, int(timeout * 1_000_000)))
        self._fd = mine.detach()
        self._seq = 0

    def close(self):
        super().close()
        self.kernel.close()


def test_fake_socket_request_ack_and_stale_replies():
    s = FakeKernelSocket()
    # a stale reply (seq 77) is skipped; then a reply and the ack for seq 1
    s.kernel.send(core.message(16, 0, 77, b"stale!!!"))
    s.kernel.send(core.message(16, 0, 1, b"payload!") + core.message(core.NLMSG_ERROR, 0, 1,
                                                                      struct.pack("=i", 0) + b"\0" * 16))
    assert s.request(18, b"", op="get", dev="x") == [b"payload!"]
    s.close()


def test_fake_socket_error_with_ext_ack():
    s = FakeKernelSocket()
    flags, body = _error_msg(errno.EINVAL, core.message(16, 5, 1, b""), "bad thing", True)
    s.kernel.send(core.message(core.NLMSG_ERROR, flags, 1, body))
    with pytest.raises(NetlinkError) as ei:
        s.request(16, b"", op="create macvlan", dev="net1")
    assert ei.value.errno == errno.EINVAL and ei.value.ext_ack == "bad thing"
    assert "create macvlan 'net1'" in str(ei.value)
    s.close()


def test_fake_socket_multipart_dump_and_done_error():
    s = FakeKernelSocket()
    s.kernel.send(core.message(16, core.NLM_F_MULTI, 1, b"one!") + core.message(16, core.NLM_F_MULTI, 1, b"two!"))
    s.kernel.send(core.message(core.NLMSG_DONE, core.NLM_F_MULTI, 1, struct.pack("=i", 0)))
    assert s.dump(18, b"", op="dump") == [b"one!", b"two!"]
    s.kernel.send(core.message(core.NLMSG_DONE, core.NLM_F_MULTI | core.NLM_F_ACK_TLVS, 2,
                               struct.pack("=i", -errno.ENOENT) + core.a_str(core.NLMSGERR_ATTR_MSG, "no table")))
    with pytest.raises(NetlinkError) as ei:
        s.dump(26, b"", op="dump routes")
    assert ei.value.errno == errno.ENOENT and ei.value.ext_ack == "no table"
    s.close()


def test_fake_socket_interrupted_dump_is_retried():
    s = FakeKernelSocket()
    s.kernel.send(core.message(16, core.NLM_F_MULTI | core.NLM_F_DUMP_INTR, 1, b"old!"))
    s.kernel.send(core.message(core.NLMSG_DONE, core.NLM_F_MULTI, 1, struct.pack("=i", 0)))
    s.kernel.send(core.message(16, core.NLM_F_MULTI, 2, b"new!") +
                  core.message(core.NLMSG_DONE, core.NLM_F_MULTI, 2, struct.pack("=i", 0)))
    assert s.dump(18, b"", op="dump") == [b"new!"]
    s.close()


@pytest.mark.parametrize("reply", [b"\x10\x00", struct.pack("=IHHII", 64, 16, 0, 1, 0) + b"x" * 4])
def test_fake_socket_malformed_reply_is_clean_error(reply):
    s = FakeKernelSocket()
    s.kernel.send(reply)
    with pytest.raises(NetlinkDecodeError):
        s.request(18, b"", op="get")
    s.close()


def test_fake_socket_silence_times_out_instead_of_hanging():
    s = FakeKernelSocket(timeout=0.2)
    with pytest.raises(NetlinkError) as ei:
        s.request(18, b"", op="get link", dev="eth0")
    assert ei.value.errno == errno.ETIMEDOUT
    s.close()


# ------------------------------------------------------------------ typed records: encode → decode
def _link_payload(index, flags, name, mac, mtu, txqlen, link, netnsid, kind, data, altnames):
    body = [rtmsg.IFINFOMSG.pack(0, 1, index, flags, 0), core.a_str(links.IFLA_IFNAME, name),
            core.attr(links.IFLA_ADDRESS, core.mac_bytes(mac)), core.a_u32(links.IFLA_MTU, mtu),
            core.a_u32(links.IFLA_TXQLEN, txqlen), core.a_u8(links.IFLA_OPERSTATE, 6)]
    if link is not None:
        body.append(core.a_u32(links.IFLA_LINK, link))
    if netnsid is not None:
        body.append(core.a_s32(links.IFLA_LINK_NETNSID, netnsid))
    if altnames:
        body.append(core.a_nest(links.IFLA_PROP_LIST, *(core.a_str(links.IFLA_ALT_IFNAME, a) for a in altnames)))
    if kind:
        info = [core.a_str(links.IFLA_INFO_KIND, kind)]
        if data:
            info.append(core.a_nest(links.IFLA_INFO_DATA, data))
        body.append(core.a_nest(links.IFLA_LINKINFO, *info))
    return b"".join(body)


kind_data = st.one_of(
    st.tuples(st.just("macvlan"), st.sampled_from(sorted(links.MACVLAN_MODES))).map(
        lambda t: (t[0], core.a_u32(links.IFLA_MACVLAN_MODE, links.MACVLAN_MODES[t[1]]), {"mode": t[1]})),
    st.tuples(st.just("ipvlan"), st.sampled_from(sorted(links.IPVLAN_MODES)), st.sampled_from(sorted(links.IPVLAN_FLAGS))).map(
        lambda t: (t[0], core.a_u16(links.IFLA_IPVLAN_MODE, links.IPVLAN_MODES[t[1]]) +
                   core.a_u16(links.IFLA_IPVLAN_FLAGS, links.IPVLAN_FLAGS[t[2]]), {"mode": t[1], "flag": t[2]})),
    st.tuples(st.just("vlan"), st.integers(0, 4095), st.sampled_from(sorted(links.VLAN_PROTOS))).map(
        lambda t: (t[0], core.a_u16(links.IFLA_VLAN_ID, t[1]) + core.a_be16(links.IFLA_VLAN_PROTOCOL, links.VLAN_PROTOS[t[2]]),
                   {"vlan_id": t[1], "vlan_proto": t[2]})),
    st.sampled_from([("veth", b"", {}), ("dummy", b"", {}), (None, b"", {})]),
)


@given(st.integers(1, 2 ** 31 - 1), u32, names, macs, st.integers(68, 65535), u32, st.one_of(st.none(), u32),
       st.one_of(st.none(), st.integers(-1, 2 ** 31 - 1)), kind_data, st.lists(names, max_size=3))
def test_link_encode_decode_roundtrip(index, flags, name, mac, mtu, txqlen, link, netnsid, kd, altnames):
    kind, data, expect = kd
    payload = _link_payload(index, flags, name, mac, mtu, txqlen, link, netnsid, kind, data, altnames)
    got = links.decode_link(payload)
    assert links.link_head(payload) == (got.index, got.name, got.kind)  # what a DEL reads of it, the same
    assert (got.index, got.flags, got.name, got.mac, got.mtu, got.txqlen, got.link, got.link_netnsid) == \
        (index, flags, name, mac, mtu, txqlen, link, netnsid)
    assert got.up == bool(flags & 1) and got.operstate == "up" and got.kind == kind
    assert got.altnames == tuple(altnames)
    for k, v in expect.items():
        assert getattr(got, k) == v


v4 = st.builds(lambda x: ipaddr.IPAddress(4, x), st.integers(0, 2 ** 32 - 1))
v6 = st.builds(lambda x: ipaddr.IPAddress(6, x), st.integers(0, 2 ** 128 - 1))


@given(st.one_of(st.tuples(v4, st.integers(0, 32)), st.tuples(v6, st.integers(0, 128))), st.integers(1, 2 ** 31 - 1),
       st.booleans(), st.booleans())
def test_address_encode_decode_roundtrip(ip_len, index, nodad, noprefixroute):
    ip, plen = ip_len
    iface = ipaddr.IPInterface(ip, plen)
    flags = (addresses.IFA_F_NODAD if nodad else 0) | (addresses.IFA_F_NOPREFIXROUTE if noprefixroute else 0)
    msg = addresses.addr_msg(index, iface, flags, True)
    got = addresses.decode_addr(msg)
    assert got.address == iface and got.index == index
    assert got.flags & 0xFF == flags & 0xFF
    if flags > 0xFF:
        assert got.flags == flags
    assert got.family == (rtmsg.AF_INET if ip.version == 4 else rtmsg.AF_INET6)


@st.composite
def route_records(draw):
    fam = draw(st.sampled_from([4, 6]))
    addr = v4 if fam == 4 else v6
    plen = draw(st.integers(0, 32 if fam == 4 else 128))
    dst = ipaddr.IPInterface(draw(addr), plen).network
    multipath = ()
    gateway = None
    if draw(st.booleans()):
        multipath = tuple(Nexthop(gateway=draw(st.one_of(st.none(), addr)), oif=draw(st.integers(1, 1000)),
                                  weight=draw(st.integers(1, 256)), onlink=draw(st.booleans()))
                          for _ in range(draw(st.integers(1, 4))))
    else:
        gateway = draw(st.one_of(st.none(), addr))
    opt = lambda s: draw(st.one_of(st.none(), s))  # noqa: E731
    return NlRoute(dst=dst, gateway=gateway, oif=opt(st.integers(1, 2 ** 31 - 1)), table=draw(st.integers(1, 2 ** 32 - 1)),
                 priority=opt(u32), scope=opt(u8), proto=opt(u8), type=draw(st.integers(1, 11)), src=opt(addr),
                 mtu=opt(u32), advmss=opt(u32), onlink=draw(st.booleans()), multipath=multipath)


@given(route_records(), st.booleans())
def test_route_encode_decode_roundtrip(r, delete):
    got = routes.decode_route(routes.encode_route(r, delete=delete))
    for f in ("dst", "gateway", "oif", "table", "priority", "src", "mtu", "advmss", "onlink", "type"):
        assert getattr(got, f) == getattr(r, f), f
    assert [(h.gateway, h.oif, h.weight, h.onlink) for h in got.multipath] == \
        [(h.gateway, h.oif, h.weight, h.onlink) for h in r.multipath]
    if r.scope is not None:
        assert got.scope == r.scope
    if r.proto is not None:
        assert got.proto == r.proto


def test_route_scope_and_proto_defaults():
    net = ipaddr.ip_network
    enc = lambda r, d=False: routes.decode_route(routes.encode_route(r, delete=d))  # noqa: E731
    assert enc(NlRoute(dst=net("10.0.0.0/8"), oif=3)).scope == routes.RT_SCOPE_LINK
    assert enc(NlRoute(dst=net("0.0.0.0/0"), gateway=ipaddr.ip_address("10.0.0.1"))).scope == 0
    assert enc(NlRoute(dst=net("10.0.0.0/8"), oif=3)).proto == routes.RTPROT_BOOT
    d = enc(NlRoute(dst=net("10.0.0.0/8")), True)
    assert d.scope == routes.RT_SCOPE_NOWHERE and d.proto == 0
    with pytest.raises(NetlinkError):
        routes.encode_route(NlRoute(dst=net("10.0.0.0/8"), multipath=(Nexthop(oif=1, weight=0),)))


vf_settings = st.fixed_dictionaries({
    "mac": macs, "vlan": st.integers(0, 4095), "qos": st.integers(0, 7),
    "vlan_proto": st.sampled_from(["802.1Q", "802.1ad"]), "spoofchk": st.booleans(), "trust": st.booleans(),
    "link_state": st.sampled_from(sorted(vfs.VF_LINK_STATES)), "min_tx_rate": st.integers(0, 100000),
    "max_tx_rate": st.integers(0, 100000), "node_guid": u64, "port_guid": u64,
})


@given(st.lists(vf_settings, min_size=1, max_size=4))
def test_vf_settings_encode_decode_roundtrip(settings_list):
    raw = core.a_nest(links.IFLA_VFINFO_LIST, *(core.a_nest(vfs.IFLA_VF_INFO, vfs.encode_vf_settings(i, **s))
                                               for i, s in enumerate(settings_list)))
    ((_, payload),) = core.parse_attrs(raw)
    got = vfs.decode_vfinfo_list(payload)
    assert [g.vf for g in got] == list(range(len(settings_list)))
    for g, s in zip(got, settings_list):
        assert g.asdict() == {"vf": g.vf, "rss_query_en": None, **s}


def test_vf_vlan_info_is_16_bytes_with_big_endian_proto():
    raw = vfs.encode_vf_settings(3, vlan=100, qos=2, vlan_proto="802.1ad")
    ((t, lst),) = core.parse_attrs(raw)
    assert t == vfs.IFLA_VF_VLAN_LIST
    ((t2, info),) = core.parse_attrs(lst)
    assert t2 == vfs.IFLA_VF_VLAN_INFO and len(info) == 16
    assert info == struct.pack("=III", 3, 100, 2) + b"\x88\xa8\0\0"
    # plain 802.1Q uses IFLA_VF_VLAN (12 bytes)
    ((t, v),) = core.parse_attrs(vfs.encode_vf_settings(3, vlan=100))
    assert t == vfs.IFLA_VF_VLAN and v == struct.pack("=III", 3, 100, 0)


def test_vf_unreported_settings_are_none():
    sub = core.attr(vfs.IFLA_VF_MAC, vfs.VF_MAC.pack(0, b"\x02" * 6)) + \
        core.attr(vfs.IFLA_VF_SPOOFCHK, vfs.VF_SETTING.pack(0, 0xFFFFFFFF)) + \
        core.attr(vfs.IFLA_VF_TX_RATE, vfs.VF_SETTING.pack(0, 500))
    (vf,) = vfs.decode_vfinfo_list(core.a_nest(vfs.IFLA_VF_INFO, sub))
    assert vf.spoofchk is None and vf.trust is None and vf.max_tx_rate == 500 and vf.mac == "02:02:02:02:02:02"


def test_record_is_immutable_and_comparable():
    a = NlRoute(dst=ipaddr.ip_network("10.0.0.0/8"))
    b = a.replace(priority=5)
    assert a != b and a == b.replace(priority=None) and hash(a) == hash(b.replace(priority=None))
    with pytest.raises(AttributeError):
        a.priority = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        NlRoute(dst=a.dst, bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        NlRoute()  # type: ignore[call-arg]
    assert "priority=None" in repr(a)


# ------------------------------------------------------------------ recorded kernel replies
def test_recorded_links_decode_like_ip():
    ours = {l.name: l for l in (links.decode_link(bytes.fromhex(h)) for h in DATA["links"])}
    heads = [links.link_head(bytes.fromhex(h)) for h in DATA["links"]]
    assert heads == [(o.index, o.name, o.kind) for o in ours.values()]
    for t in DATA["ip_links"]:
        o = ours[t["ifname"]]
        assert (o.index, o.mtu, o.mac, o.txqlen) == (t["ifindex"], t["mtu"], t["address"], t["txqlen"])
        assert o.up == ("UP" in t["flags"]) and o.operstate == t["operstate"].lower()
        assert o.kind == t.get("linkinfo", {}).get("info_kind")
        assert o.link == ({l["ifname"]: l["ifindex"] for l in DATA["ip_links"]}.get(t.get("link")))
        assert list(o.altnames) == t.get("altnames", [])
    assert ours["mv0"].mode == "private" and ours["mv0"].mac == "02:00:00:aa:bb:cc"
    assert ours["mvs"].mode == "source" and ours["mvs"].source_macs == ("02:00:00:00:00:01",)
    assert ours["eth0"].altnames == ("uplink-long-alternative",)


def test_recorded_addrs_decode_like_ip():
    ours = {(a.index, a.address) for a in (addresses.decode_addr(bytes.fromhex(h)) for h in DATA["addrs"])}
    theirs = {(l["ifindex"], ipaddr.ip_interface(f"{a['local']}/{a['prefixlen']}"))
              for l in DATA["ip_addrs"] for a in l["addr_info"]}
    assert ours == theirs
    labels = {str(a.address): a.label for a in (addresses.decode_addr(bytes.fromhex(h)) for h in DATA["addrs"])}
    assert labels["10.1.2.3/16"] == "eth0:v"


def test_recorded_routes_decode_like_ip():
    ours = [routes.decode_route(bytes.fromhex(h)) for h in DATA["routes"]]
    by_dst = {(str(r.dst), r.table): r for r in ours}
    r = by_dst[("0.0.0.0/0", 254)]
    assert (str(r.gateway), r.priority) == ("192.0.2.254", 10)
    r = by_dst[("10.60.0.0/16", 1000)]
    assert (str(r.gateway), r.mtu, r.advmss, r.proto) == ("192.0.2.9", 1350, 1300, routes.RTPROT_STATIC)
    r = by_dst[("10.50.0.0/16", 254)]
    assert [(str(h.gateway), h.weight) for h in r.multipath] == [("192.0.2.10", 1), ("192.0.2.11", 3)]
    r = by_dst[("2001:db8:99::/48", 254)]
    assert [(str(h.gateway), h.weight) for h in r.multipath] == [("2001:db8::10", 2), ("2001:db8:1::10", 1)]
    assert by_dst[("10.70.0.0/16", 254)].onlink
    theirs = {(t["dst"], t.get("table", "main")) for t in DATA["ip_routes"]}
    tables = {254: "main", 255: "local"}
    mine = set()
    for r in ours:
        dst = "default" if r.dst.prefixlen == 0 else (str(r.dst.network_address) if r.dst.prefixlen ==
                                                       r.dst.max_prefixlen else str(r.dst))
        mine.add((dst, tables.get(r.table, str(r.table))))
    assert mine == theirs


# ------------------------------------------------------------------ recorded in the VM (netdevsim PF)
VM = json.loads((Path(__file__).parent / "data" / "netlink_replies_vm.json").read_text())


def test_recorded_vfinfo_list_decodes_like_ip():
    payload = bytes.fromhex(VM["pf_link"])
    link = links.decode_link(payload)
    assert link.name == VM["ip_pf_link"]["ifname"] and link.num_vf == len(VM["ip_pf_link"]["vfinfo_list"])
    a = core.attr_map(payload, rtmsg.IFINFOMSG.size)
    ours = vfs.decode_vfinfo_list(a[links.IFLA_VFINFO_LIST])
    assert len(ours) == len(VM["ip_pf_link"]["vfinfo_list"])
    for o, t in zip(ours, VM["ip_pf_link"]["vfinfo_list"]):
        vl = t["vlan_list"][0]
        assert (o.vf, o.mac, o.vlan, o.qos, o.vlan_proto) == \
            (t["vf"], t["address"], vl.get("vlan", 0), vl.get("qos", 0), vl.get("protocol", "802.1Q"))
        assert (o.spoofchk, o.trust, o.link_state, o.rss_query_en) == \
            (t["spoofchk"], t["trust"], t["link_state"], t["query_rss_en"])
        assert (o.min_tx_rate, o.max_tx_rate) == (t["rate"]["min_tx"], t["rate"]["max_tx"])
    assert ours[1].vlan_proto == "802.1ad"


def test_only_pf_lookups_ask_for_the_vf_table():
    """RTEXT_FILTER_VF makes the kernel append the PF's whole VF table: asked by pf_get/vf_get/vfs only,
    never by a plain link_get (a PF looked up for its index) or a link dump."""
    payload = bytes.fromhex(VM["pf_link"])
    sent: list[int] = []

    class Recording(rtnl.Rtnl):
        def __init__(self):  # no socket: requests are recorded and answered with the recorded PF
            pass

        def request(self, kind, body, flags=0, **kw):
            sent.append(core.d_u32(core.attr_map(body, rtmsg.IFINFOMSG.size)[links.IFLA_EXT_MASK]))
            return [payload]

        def dump(self, kind, body, **kw):
            return self.request(kind, body)

    nl = Recording()
    nl.link_get(name="pf")
    nl.links()
    link, one = nl.pf_get(name="pf", vf=1)
    everything = vfs.vfs_of(payload)
    assert link.num_vf == len(everything) > 1 and one == [everything[1]]
    assert nl.vf_get(link.index, 1) == everything[1] and nl.vf_get(link.index, 4096) is None
    assert [p for p, _ in nl.pfs()][0].num_vf == len(everything)
    assert [bool(m & links.RTEXT_FILTER_VF) for m in sent] == [False, False, True, True, True, True]
    assert all(m & links.RTEXT_FILTER_SKIP_STATS for m in sent)


def test_recorded_vfinfo_list_truncations_are_clean():
    a = core.attr_map(bytes.fromhex(VM["pf_link"]), rtmsg.IFINFOMSG.size)
    full = a[links.IFLA_VFINFO_LIST]
    for cut in range(0, len(full), 5):
        try:
            vfs.decode_vfinfo_list(full[:cut])
        except NetlinkDecodeError:
            pass


def test_recorded_rdma_replies_decode_like_rdma_tool():
    from cni_rdma.netlink import rdma

    devs = [rdma.decode_device(bytes.fromhex(h)) for h in VM["rdma_devs"]]
    assert [(d.index, d.name, d.node_type) for d in devs] == \
        [(t["ifindex"], t["ifname"], t["node_type"]) for t in VM["rdma_j_dev"]]
    assert [":".join(f"{(d.node_guid >> s) & 0xFFFF:04x}" for s in (48, 32, 16, 0)) for d in devs] == \
        [t["node_guid"] for t in VM["rdma_j_dev"]]
    ports = [rdma.decode_port(bytes.fromhex(h)) for h in VM["rdma_ports"]]
    assert [(p.dev_index, p.dev_name, p.port, p.state, p.netdev, p.netdev_index) for p in ports] == \
        [(t["ifindex"], t["ifname"], t["port"], t["state"].lower(), t["netdev"], t["netdev_index"])
         for t in VM["rdma_j_link"]]
    assert rdma.decode_netns_mode(bytes.fromhex(VM["rdma_sys"])) == VM["rdma_system"]["netns"]
