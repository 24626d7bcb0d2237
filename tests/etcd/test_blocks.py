"""Block geometry without etcd (hypothesis): the blocks a node walks cover every address of a range set exactly
once, each address's block is the one whose candidates hold it, and gateway/network/broadcast/exclude never
appear."""
from __future__ import annotations

import ipaddress

from hypothesis import given, settings, strategies as st

from ipam.cluster_ipam.blocks import Pool, ip_text
from ipam.cluster_ipam.config import load


@st.composite
def configs(draw):
    prefix = draw(st.integers(22, 29))
    net = ipaddress.ip_network(f"10.{draw(st.integers(0, 255))}.0.0/{prefix}", strict=False)
    size = net.num_addresses
    a, b = sorted(draw(st.lists(st.integers(1, size - 2), min_size=2, max_size=2)))
    excl = draw(st.lists(st.integers(0, size - 1), max_size=3))
    ipam = {"type": "cluster-ipam", "nodeName": draw(st.sampled_from(["n1", "node-b", "x"])),
            "ranges": [[{"subnet": str(net), "rangeStart": str(net[a]), "rangeEnd": str(net[b])}]],
            "blockSize": draw(st.integers(max(prefix, 24), 30)),
            "exclude": [str(net[e]) for e in excl],
            "etcd": {"endpoints": ["http://127.0.0.1:1"]}}
    return {"cniVersion": "1.1.0", "name": "geo", "ipam": ipam}


@settings(max_examples=80, deadline=None)
@given(raw=configs())
def test_blocks_partition_the_usable_addresses(raw):
    conf = load(raw, {}, "1.1.0")
    pool = Pool(conf)
    (rs,) = conf.ranges
    (r,) = rs
    seen: dict[int, bytes] = {}
    nets = list(pool.block_nets(rs))
    assert len(nets) == len(set(nets))
    for version, net in nets:
        b = pool.new_block(version, net)
        for _, value in pool.candidates(rs, b):
            assert value not in seen
            seen[value] = b.key
            assert pool.block_key(4, pool.block_net(4, value)) == b.key
    usable = {v for v in range(r.start, r.end + 1) if r.usable(v) and not conf.excluded(4, v)}
    assert set(seen) == usable
    assert r.gateway not in seen
    # round-robin: the first free address from the cursor, wrapping
    for version, net in nets[:1]:
        b = pool.new_block(version, net)
        cands = [v for _, v in pool.candidates(rs, b)]
        if len(cands) >= 2:
            b.alloc[ip_text(4, cands[0])] = "x/eth0"
            b.next = cands[-1] + 1
            assert pool.free(rs, b)[1] == cands[1]


def test_borrow_shuffle_is_a_uniform_permutation_and_uniform_is_in_0_1():
    # cluster_ipam._shuffle / _uniform stand in for random.shuffle / random.uniform (random imports os & co.)
    import collections

    from ipam.cluster_ipam.cluster_ipam import _shuffle, _uniform

    counts: collections.Counter = collections.Counter()
    for _ in range(6000):
        items = ["a", "b", "c"]
        _shuffle(items)
        counts[tuple(items)] += 1
    assert len(counts) == 6 and all(800 < n < 1200 for n in counts.values()), counts  # 1000 each; > 6 sigma
    empty: list = []
    _shuffle(empty)
    assert empty == []
    xs = [_uniform() for _ in range(2000)]
    assert all(0 <= x < 1 for x in xs) and 0.4 < sum(xs) / len(xs) < 0.6
