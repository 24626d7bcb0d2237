"""cluster-ipam against a real 3-member etcd: results, records, blocks, requested IPs, CHECK/STATUS/GC, errors."""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.etcd.conftest import allocations, code, ips, netconf, on_node, pool_keys, records, run, startup_seconds

# One block per family (a /26 and a /122): addresses are predictable. Bigger ranges start each node at a
# block derived from its name.
DUAL = {"ranges": [[{"subnet": "10.81.0.0/24", "rangeEnd": "10.81.0.60"}],
                   [{"subnet": "fd81::/64", "rangeEnd": "fd81::30"}]]}


def test_add_result_record_and_block(etcd_cluster):
    rs = [{"subnet": "10.81.0.0/24", "gateway": "10.81.0.254", "rangeEnd": "10.81.0.63"}]
    c = netconf(etcd_cluster, {"ranges": [rs], "routes": [{"dst": "0.0.0.0/0"}]})
    r = run("ADD", c, args="K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod-a")
    assert r.json == {"cniVersion": "1.1.0", "ips": [{"address": "10.81.0.1/24", "gateway": "10.81.0.254"}],
                      "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}
    rec = records(etcd_cluster, c)["ctr1/eth0"]
    assert rec["node"] == "node-a" and rec["network"] == "ci-net" and rec["podNamespace"] == "ns1"
    assert rec["podName"] == "pod-a" and rec["ips"] == [{"address": "10.81.0.1/24", "block": "10.81.0.0/26"}]
    assert time.time() - time.mktime(time.strptime(rec["time"], "%Y-%m-%dT%H:%M:%SZ")) < 3600 * 24
    assert allocations(etcd_cluster, c) == {"10.81.0.1": "ctr1/eth0"}
    blocks = pool_keys(etcd_cluster, c, "blocks/")
    assert json.loads(blocks[next(iter(blocks))])["node"] == "node-a"
    assert list(pool_keys(etcd_cluster, c, "affinity/")) == [
        f"{c['ipam']['etcd']['prefix']}/pools/ci-net/affinity/node-a/10.81.0.0-26"]


def test_retried_add_returns_the_same_addresses_and_del_is_idempotent(etcd_cluster):
    c = netconf(etcd_cluster, DUAL)
    first = ips(run("ADD", c))
    assert first == ["10.81.0.2/24", "fd81::2/64"]  # .1 is the default gateway
    assert ips(run("ADD", c)) == first
    assert ips(run("ADD", c, ifname="net2")) == ["10.81.0.3/24", "fd81::3/64"]
    assert code(run("DEL", c)) == 0
    assert code(run("DEL", c)) == 0
    assert code(run("DEL", c, cid="never-added")) == 0
    assert allocations(etcd_cluster, c) == {"10.81.0.3": "ctr1/net2", "fd81::3": "ctr1/net2"}
    assert list(records(etcd_cluster, c)) == ["ctr1/net2"]


def test_round_robin_in_the_block_then_exhausted_with_code_11_naming_the_pool(etcd_cluster):
    c = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.82.0.0/24", "rangeStart": "10.82.0.10",
                                            "rangeEnd": "10.82.0.13"}]], "exclude": ["10.82.0.12"]})
    got = [ips(run("ADD", c, cid=f"c{i}"))[0] for i in range(3)]
    assert got == ["10.82.0.10/24", "10.82.0.11/24", "10.82.0.13/24"]
    r = run("ADD", c, cid="c3")
    assert code(r) == 11 and "'ci-net'" in r.json["msg"] and "no free address" in r.json["msg"]
    assert code(run("DEL", c, cid="c0")) == 0
    assert ips(run("ADD", c, cid="c4")) == ["10.82.0.10/24"]


def test_nodes_claim_their_own_blocks_and_borrow_when_none_is_free(etcd_cluster):
    c = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.83.0.0/24", "rangeStart": "10.83.0.1",
                                            "rangeEnd": "10.83.0.127"}]], "blockSize": 27})
    seen = {}
    for node in ("n1", "n2", "n3", "n4"):
        seen[node] = ips(run("ADD", on_node(c, node), cid=f"c-{node}"))[0]
    blocks = {json.loads(v)["cidr"]: json.loads(v)["node"] for v in pool_keys(etcd_cluster, c, "blocks/").values()}
    assert sorted(blocks.values()) == ["n1", "n2", "n3", "n4"] and len(blocks) == 4
    for node, ip in seen.items():
        block = next(b for b, n in blocks.items() if n == node)
        assert ip.split("/")[0].rsplit(".", 1)[1] and _in(ip, block)
    # a fifth node finds no free block: it borrows (default) ...
    assert code(run("ADD", on_node(c, "n5"), cid="c-n5")) == 0
    # ... or, with strictAffinity, is refused
    strict = on_node(c, "n6")
    strict["ipam"]["strictAffinity"] = True
    r = run("ADD", strict, cid="c-n6")
    assert code(r) == 11 and "strictAffinity" in r.json["msg"]
    assert "strictAffinity" in run("STATUS", strict).json["msg"]
    assert code(run("STATUS", on_node(c, "n6"))) == 0


def _in(ip: str, cidr: str) -> bool:
    import ipaddress

    return ipaddress.ip_interface(ip).ip in ipaddress.ip_network(cidr)


def test_requested_ips(etcd_cluster):
    c = netconf(etcd_cluster, DUAL)
    c["runtimeConfig"] = {"ips": ["10.81.0.37/24", "fd81::27"]}
    assert ips(run("ADD", c)) == ["10.81.0.37/24", "fd81::27/64"]
    other = on_node(c, "node-b")
    r = run("ADD", other, cid="ctr2")
    assert code(r) == 11 and "10.81.0.37" in r.json["msg"] and "ctr1/eth0" in r.json["msg"]
    r = run("ADD", netconf(etcd_cluster, DUAL), cid="ctr3", args="IP=10.81.0.1")
    assert code(r) == 7 and "gateway" in r.json["msg"]
    r = run("ADD", netconf(etcd_cluster, DUAL), cid="ctr3", args="IP=10.99.0.5")
    assert code(r) == 7 and "CNI_ARGS IP" in r.json["msg"]
    excl = netconf(etcd_cluster, {**DUAL, "exclude": ["10.81.0.40/29"]})
    r = run("ADD", excl, cid="ctr3", args="IP=10.81.0.44")
    assert code(r) == 7 and "exclude" in r.json["msg"]


def test_check(etcd_cluster):
    c = netconf(etcd_cluster, version="1.0.0")
    r = run("CHECK", c)
    assert code(r) == 101 and "no record" in r.json["msg"]
    added = run("ADD", c).json
    assert code(run("CHECK", {**c, "prevResult": added})) == 0
    wrong = json.loads(json.dumps(added))
    wrong["ips"][0]["address"] = "10.80.0.50/24"
    r = run("CHECK", {**c, "prevResult": wrong})
    assert code(r) == 101 and "10.80.0.50" in r.json["msg"]


def test_gc_releases_only_this_nodes_records_of_this_network(etcd_cluster):
    a = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.84.0.0/24"}]], "pool": "shared"})
    b = on_node(a, "node-b")
    other_net = json.loads(json.dumps(a))
    other_net["name"] = "other-net"
    for cid in ("k1", "k2", "k3"):
        assert code(run("ADD", a, cid=cid)) == 0
    assert code(run("ADD", b, cid="b1")) == 0
    assert code(run("ADD", other_net, cid="o1")) == 0
    assert code(run("GC", a)) == 0  # no cni.dev/valid-attachments: release nothing
    assert len(records(etcd_cluster, a)) == 5
    gc = {**a, "cni.dev/valid-attachments": [{"containerID": "k2", "ifname": "eth0"}]}
    assert code(run("GC", gc)) == 0
    assert sorted(records(etcd_cluster, a)) == ["b1/eth0", "k2/eth0", "o1/eth0"]
    assert sorted(allocations(etcd_cluster, a).values()) == ["b1/eth0", "k2/eth0", "o1/eth0"]


def test_status_reports_exhaustion_and_unreachable_etcd(etcd_cluster):
    c = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.85.0.0/30"}]]})
    assert code(run("STATUS", c)) == 0
    assert code(run("ADD", c)) == 0
    r = run("STATUS", c)
    assert code(r) == 50 and "exhausted" in r.json["msg"] and "10.85.0.1-10.85.0.2" in r.json["msg"]
    down = netconf(etcd_cluster, etcd={"endpoints": ["http://127.0.0.1:9"], "timeout": 1})
    r = run("STATUS", down)
    assert code(r) == 50 and "unreachable" in r.json["msg"] and "http://127.0.0.1:9" in r.json["msg"]


def test_unreachable_etcd_is_code_11_naming_every_endpoint_within_the_bound(etcd_cluster):
    eps = ["http://127.0.0.1:9", "http://127.0.0.1:7"]
    c = netconf(etcd_cluster, etcd={"endpoints": eps, "timeout": 2})
    start = startup_seconds()
    t = time.monotonic()
    r = run("ADD", c)
    took = time.monotonic() - t
    assert code(r) == 11 and all(e in r.json["msg"] for e in eps) and "refused" in r.json["msg"]
    assert took < 2 + 3 + 2 * start, (took, start)  # etcd.timeout + one request, plus process start-up


def test_pool_shared_by_two_networks_and_block_size_fixed_by_the_first(etcd_cluster):
    a = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.86.0.0/24", "rangeEnd": "10.86.0.9"}]], "pool": "p"},
                name="net-a")
    b = json.loads(json.dumps(a))
    b["name"] = "net-b"
    assert ips(run("ADD", a, cid="x")) == ["10.86.0.2/24"]
    assert ips(run("ADD", b, cid="y")) == ["10.86.0.3/24"]
    bad = json.loads(json.dumps(a))
    bad["ipam"]["blockSize"] = 28
    r = run("ADD", bad, cid="z")
    assert code(r) == 7 and "ipam.blockSize" in r.json["msg"]


R = {"ranges": [[{"subnet": "10.0.0.0/24"}]]}
EP = {"endpoints": ["http://a:1"]}


@pytest.mark.parametrize("ipam,field", [
    ({**R, "pool": "bad/pool"}, "ipam.pool"),
    ({**R, "blockSize": 40}, "ipam.blockSize"),
    ({**R, "blockSizeV6": "x"}, "ipam.blockSizeV6"),
    ({**R, "strictAffinity": "yes"}, "ipam.strictAffinity"),
    ({**R, "exclude": ["10.0.0.x"]}, "ipam.exclude[0]"),
    ({**R, "nodeName": ""}, None),
    ({"ranges": [[{"subnet": "10.0.0.0/33"}]]}, "ipam.ranges[0][0].subnet"),
    ({**R, "etcd": {"endpoints": []}}, "ipam.etcd.endpoints"),
    ({**R, "etcd": {"endpoints": ["ftp://x:1"]}}, "ipam.etcd.endpoints[0]"),
    ({**R, "etcd": {**EP, "endpiont": 1}}, "ipam.etcd.endpiont"),
    ({**R, "etcd": {**EP, "caFile": "/x"}}, "ipam.etcd.endpoints"),
    ({**R, "etcd": {"endpoints": ["https://a:1"], "certFile": "/x"}}, "ipam.etcd.keyFile"),
    ({**R, "etcd": {**EP, "timeout": 0}}, "ipam.etcd.timeout"),
    ({**R, "etcd": {**EP, "prefix": "no slash"}}, "ipam.etcd.prefix"),
    ({**R, "etcd": {**EP, "username": "u"}}, "ipam.etcd.username"),
    ({**R, "etcd": {**EP, "username": "u", "passwordFile": "/etc/hostname"}}, "ipam.etcd.passwordFile"),
    ({**R, "etcd": {"configFile": "/nonexistent/x.json"}}, "ipam.etcd.configFile"),
    ({**R, "etcd": {"configFile": "/etc/hostname", "endpoints": []}}, "ipam.etcd.endpoints"),
    ({**R, "etcd": "http://a:1"}, "ipam.etcd"),
])
def test_bad_config_is_code_7_naming_the_key(etcd_cluster, ipam, field):
    c = netconf(etcd_cluster, ipam)
    if "etcd" in ipam:
        c["ipam"]["etcd"] = ipam["etcd"]
    for cmd in ("ADD", "DEL"):
        r = run(cmd, c)
        if field is None:  # an empty nodeName is the default (uname -n)
            assert code(r) == 0
            continue
        assert code(r) == 7, r.stdout
        assert f'"{field}"' in r.json["msg"], r.json["msg"]


def test_config_file_holds_the_etcd_keys(etcd_cluster, tmp_path):
    f = tmp_path / "etcd.json"
    f.write_text(json.dumps(etcd_cluster.etcd_conf(prefix="/cfgfile")))
    f.chmod(0o600)
    c = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.87.0.0/24", "rangeEnd": "10.87.0.9"}]],
                               "etcd": {"configFile": str(f)}})
    assert ips(run("ADD", c)) == ["10.87.0.2/24"]
    assert "/cfgfile/pools/ci-net/records/ctr1/eth0" in etcd_cluster.range_prefix("/cfgfile/")
    link = tmp_path / "link.json"
    link.symlink_to(f)
    c["ipam"]["etcd"]["configFile"] = str(link)
    r = run("ADD", c, cid="c2")
    assert code(r) == 7 and "ipam.etcd.configFile" in r.json["msg"]
    f.write_text('{"endpoints": ["http://127.0.0.1:1"], "tls": 1}')
    c["ipam"]["etcd"]["configFile"] = str(f)
    r = run("ADD", c, cid="c2")
    assert code(r) == 7 and f"{f}:.tls" in r.json["msg"]


def test_in_process_from_macvlan_path_lookup(etcd_cluster):
    """Our plugins delegate to cluster-ipam in-process (registry): the same answer as the standalone binary."""
    from cni_rdma.registry import PLUGINS

    assert PLUGINS["cluster-ipam"] == "ipam.cluster_ipam.cluster_ipam"


def test_readme_nads_allocate_from_their_pools(etcd_cluster):
    """The README's cluster-ipam NADs (one per seed scenario) work as written, etcd aside."""
    import yaml

    from tests.topology import ROOT

    text = (ROOT / "README.md").read_text()
    section = text.split("## Cluster-wide IPAM", 1)[1].split("\n## ", 1)[0]
    nads = [yaml.safe_load(block.split("```", 1)[0]) for block in section.split("```yaml\n")[1:]]
    assert len(nads) == 2
    got = []
    for nad in nads:
        conf = json.loads(nad["spec"]["config"])
        plugin = conf["plugins"][0] if "plugins" in conf else conf
        c = netconf(etcd_cluster, plugin["ipam"], name=conf["name"], version=conf["cniVersion"])
        got.append(ips(run("ADD", c))[0])
    assert got[0].startswith("172.81.0.1") and got[0].endswith("/16")
    assert got[1].startswith("222.") and got[1].endswith("/8")


def test_the_bench_stats_file_is_never_a_fifo_or_a_symlink(etcd_cluster, tmp_path):
    # CNI_RDMA_ETCD_STATS (bench/cluster_ipam.py) names a file from the environment: a FIFO there must not hang
    # the call (no reader), a symlink must not be followed; a regular file gets one line per call.
    c = netconf(etcd_cluster, {"ranges": [[{"subnet": "10.83.0.0/24"}]]})
    fifo, link, target, stats = tmp_path / "fifo", tmp_path / "link", tmp_path / "target", tmp_path / "stats"
    os.mkfifo(fifo)
    link.symlink_to(target)
    for path in (fifo, link, stats):
        r = run("ADD", c, cid=f"c-{path.name}", extra_env={"CNI_RDMA_ETCD_STATS": str(path)}, timeout=30)
        assert r.code == 0, r.stdout
    assert not target.exists()
    assert stats.read_text().startswith("ADD reads=")
