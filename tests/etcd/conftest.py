"""cluster-ipam tier: a real 3-member etcd cluster (tests/etcd/cluster.py) and our plugin as real processes.

One cluster serves the whole tier (`etcd_cluster`); every test works on its own key prefix, so tests never see
each other's pools. Tests that kill members get their own cluster (`private_cluster`).
"""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

from tests import topology

from .cluster import ETCD, EtcdCluster

if not shutil.which(ETCD):
    pytest.fail("etcd not installed: run tools/install-deps.sh (Debian etcd-server)", pytrace=False)


@pytest.fixture(scope="session")
def etcd_cluster():
    c = EtcdCluster().up()
    yield c
    c.destroy()


@pytest.fixture
def private_cluster():
    made: list[EtcdCluster] = []

    def make(**kw) -> EtcdCluster:
        c = EtcdCluster(**kw).up()
        made.append(c)
        return c

    yield make
    for c in made:
        c.destroy()


@pytest.fixture
def pod():
    p = topology.make_pod()
    yield p
    topology.netns_del(p.name)


def netconf(cluster: EtcdCluster, ipam: dict | None = None, name: str = "ci-net", version: str = "1.1.0",
            etcd: dict | None = None, **top) -> dict:
    """A network config with cluster-ipam on `cluster`, under a prefix unique to this call."""
    ipam = dict(ipam if ipam is not None else {"ranges": [[{"subnet": "10.80.0.0/24", "rangeEnd": "10.80.0.63"}]]})
    ipam.setdefault("nodeName", "node-a")
    if "etcd" not in ipam:
        ipam["etcd"] = cluster.etcd_conf(prefix=f"/t-{uuid.uuid4().hex[:10]}", **(etcd or {}))
    c = {"cniVersion": version, "name": name, "type": "macvlan", "ipam": {"type": "cluster-ipam", **ipam}}
    c.update(top)
    return c


def on_node(conf: dict, node: str) -> dict:
    c = json.loads(json.dumps(conf))
    c["ipam"]["nodeName"] = node
    return c


def run(command: str, conf, cid: str = "ctr1", ifname: str = "eth0", args: str | None = None, **kw):
    return topology.run_plugin("cluster-ipam", command, conf, netns="/var/run/netns/none", container_id=cid,
                               ifname=ifname, cni_args=args, **kw)


def code(r) -> int:
    """The CNI error code a run printed (0 on success); a failure must exit 1 with an error JSON."""
    if r.code == 0:
        return 0
    assert r.code == 1 and r.json is not None, (r.code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    return r.json["code"]


def ips(r) -> list[str]:
    assert r.code == 0, r.stdout + r.stderr
    return [ip["address"] for ip in r.json["ips"]]


def pool_keys(cluster: EtcdCluster, conf: dict, what: str = "") -> dict[str, bytes]:
    pool = conf["ipam"].get("pool") or conf["name"]
    return cluster.range_prefix(f"{conf['ipam']['etcd']['prefix']}/pools/{pool}/{what}")


def allocations(cluster: EtcdCluster, conf: dict) -> dict[str, str]:
    """ip -> owner over every block of the pool, asserting no address sits in two blocks."""
    out: dict[str, str] = {}
    for value in pool_keys(cluster, conf, "blocks/").values():
        for ip, owner in json.loads(value)["alloc"].items():
            assert ip not in out, f"{ip} in two blocks"
            out[ip] = owner
    return out


def records(cluster: EtcdCluster, conf: dict) -> dict[str, dict]:
    return {k.split("/records/", 1)[1]: json.loads(v) for k, v in pool_keys(cluster, conf, "records/").items()}


def startup_seconds() -> float:
    """How long a plugin process takes to start and answer VERSION here and now (a loaded machine's share
    of any timing bound)."""
    import time

    t = time.monotonic()
    topology.run_plugin("cluster-ipam", "VERSION", {})
    return time.monotonic() - t
