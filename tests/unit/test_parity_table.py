"""docs/parity.md cannot drift: every key of every peer is in it, and the code still says what it says.

The key lists below were read from the peers' sources (the structs' json tags; Go's decoder also matches
keys case-insensitively, which changes no list here):
- macvlan: containernetworking/plugins plugins/main/macvlan/macvlan.go NetConf + MacEnvArgs (@3d27709f)
- ipvlan: plugins/main/ipvlan/ipvlan.go NetConf
- host-local: plugins/ipam/host-local/backend/allocator/config.go Net, IPAMConfig, Range, IPAMEnvArgs,
  IPAMArgs; the route attributes from containernetworking/cni pkg/types Route (spec 1.1.0)
- sriov-cni: k8snetworkplumbingwg/sriov-cni pkg/types/types.go SriovNetConf, pkg/cnicommands/cni.go envArgs
  (@1b7acc5b)
- ib-sriov-cni: k8snetworkplumbingwg/ib-sriov-cni pkg/types/types.go IbSriovNetConf + RuntimeConf,
  cmd/ib-sriov-cni/main.go getGUIDFromConf (@543060d)
- rdma-cni: k8snetworkplumbingwg/rdma-cni pkg/types/types.go RdmaNetConf, RdmaCNIArgs
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "parity.md"

PEERS = {
    "macvlan": ["master", "mode", "mtu", "mac", "linkInContainer", "bcqueuelen", "runtimeConfig.mac",
                "CNI_ARGS MAC", "ipam"],
    "ipvlan": ["master", "mode", "mtu", "linkInContainer", "ipam"],
    "host-local": ["ipam.ranges", "ipam.subnet", "ipam.rangeStart", "ipam.rangeEnd", "ipam.gateway", "ipam.routes",
                   "ipam.routes[].dst", "ipam.routes[].gw", "ipam.routes[].mtu", "ipam.routes[].advmss",
                   "ipam.routes[].priority", "ipam.routes[].table", "ipam.routes[].scope", "ipam.dataDir",
                   "ipam.resolvConf", "runtimeConfig.ipRanges", "runtimeConfig.ips", "args.cni.ips", "CNI_ARGS IP"],
    "sriov-cni": ["deviceID", "vlan", "vlanQoS", "vlanProto", "mac", "mtu", "min_tx_rate", "max_tx_rate", "spoofchk",
                  "trust", "link_state", "runtimeConfig.mac", "CNI_ARGS MAC", "logLevel", "logFile", "ipam"],
    "ib-sriov-cni": ["deviceID", "runtimeConfig.infinibandGUID", "args.cni.guid", "pkey", "link_state",
                     "rdmaIsolation", "ibKubernetesEnabled", "vfioPciMode", "ipam"],
    "rdma-cni": ["deviceID", "args.cni.debug"],
}
# Where our implementation of each peer lives: a "not" key must not be read anywhere in it.
OURS = {"macvlan": ["plugins/macvlan/"], "ipvlan": ["plugins/ipvlan/"], "host-local": ["ipam/host_local/"],
        "sriov-cni": ["plugins/sriov/"], "ib-sriov-cni": ["plugins/sriov/"], "rdma-cni": ["plugins/rdma/"]}
STATUSES = ("supported", "different", "not")


def tables() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    peer = None
    for line in DOC.read_text().splitlines():
        m = re.match(r"^## (\S+) — ", line)
        if m:
            peer = m.group(1)
            out[peer] = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if peer and line.startswith("|") and len(cells) == 4 and cells[0] not in ("key", "---"):
            out[peer].append(dict(zip(("key", "status", "where", "note"), cells)))
    return out


def sources(where: str) -> str:
    p = ROOT / where
    files = sorted(p.rglob("*.py")) if where.endswith("/") else [p]
    assert files and all(f.is_file() for f in files), f"{where} does not exist"
    return "\n".join(f.read_text() for f in files)


def reads(text: str, key: str) -> bool:
    """The key's own name (last component: "mtu" of ipam.routes[].mtu, "MAC" of CNI_ARGS MAC) quoted in code."""
    name = re.split(r"[. ]|\[\]\.", key)[-1]
    return re.search(rf"""["']{re.escape(name)}["']""", text) is not None


def test_every_peer_key_has_one_row_and_a_known_status():
    t = tables()
    assert sorted(t) == sorted(PEERS)
    for peer, keys in PEERS.items():
        rows = [r["key"] for r in t[peer]]
        assert sorted(rows) == sorted(keys), f"{peer}: table {sorted(rows)} vs source {sorted(keys)}"
        assert len(rows) == len(set(rows)), f"{peer}: duplicate rows"
        for r in t[peer]:
            assert r["status"] in STATUSES, r
            if r["status"] == "different":
                assert r["note"], f"{peer} {r['key']}: a difference needs a note"


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_the_code_reads_what_the_table_says(peer):
    for r in tables()[peer]:
        if r["status"] == "not" or r["where"] in ("—", "-", ""):
            text = "\n".join(sources(w) for w in OURS[peer])
            assert not reads(text, r["key"]), (f"{peer} {r['key']} is marked {r['status']!r} without a reader, "
                                               f"but {OURS[peer]} reads it: update docs/parity.md")
            continue
        for where in r["where"].split(","):
            assert reads(sources(where.strip()), r["key"]), f"{peer} {r['key']}: not read in {where}"
