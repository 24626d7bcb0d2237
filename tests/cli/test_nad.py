"""`cni-rdma nad`: every generated NAD is valid YAML whose spec.config is CNI JSON our own plugins' config
loaders accept, delegated as Multus/libcni would (name and cniVersion injected, deviceID from the device plugin)."""
from __future__ import annotations

import json

import pytest
import yaml

from cni_rdma.skel import Request, _check_version
from cni_rdma.types import NetConf
from ipam.cluster_ipam import config as cluster_ipam_config
from ipam.host_local import config as host_local_config
from plugins.ipvlan import ipvlan
from plugins.macvlan import macvlan
from plugins.rdma import rdma
from plugins.sriov import sriov
from tests.cli.helpers import assert_one_line_error, cli

VF = "0000:af:00.2"


def _nad(*args: str) -> dict:
    r = cli("nad", *args)
    assert r.code == 0, r
    doc = yaml.safe_load(r.stdout)
    assert doc["apiVersion"] == "k8s.cni.cncf.io/v1" and doc["kind"] == "NetworkAttachmentDefinition"
    doc["config"] = json.loads(doc["spec"]["config"])
    return doc


def _delegates(conf: dict) -> list[dict]:
    """What Multus hands each plugin of the list: the plugin's keys plus the list's name and cniVersion."""
    plugins = conf["plugins"] if "plugins" in conf else [conf]
    out = []
    for p in plugins:
        d = dict(p, name=conf["name"], cniVersion=conf["cniVersion"])
        if d["type"] in ("sriov", "rdma"):
            d["deviceID"] = VF  # Multus injects the device plugin's allocation
        out.append(d)
    return out


def _request(raw: dict) -> Request:
    _check_version("ADD", raw["cniVersion"])
    stdin = json.dumps(raw).encode()
    return Request(command="ADD", container_id="nadtest", netns="/var/run/netns/x", ifname="net1", cni_args="",
                   path=(), stdin=stdin, conf=NetConf.from_json(raw))


def _config_loader(kind: str):
    """The plugin's own config loader: the house contract's `load_conf`, else the older names."""
    mod = {"macvlan": macvlan, "ipvlan": ipvlan, "sriov": sriov, "rdma": rdma}[kind]
    for fn in (getattr(mod, "load_conf", None), getattr(getattr(mod, "Config", None), "load", None),
               getattr(mod, "parse_conf", None)):
        if fn is not None:
            return fn
    raise AssertionError(f"{mod.__name__} has no config loader")


def _load_all(conf: dict) -> list:
    loaded = []
    for raw in _delegates(conf):
        req = _request(raw)
        loaded.append(_config_loader(raw["type"])(req))
        ipam = raw.get("ipam")
        if ipam and ipam["type"] == "host-local":
            loaded.append(host_local_config.load(raw, {}, raw["cniVersion"]))
        elif ipam:
            assert ipam["type"] == "cluster-ipam"
            loaded.append(cluster_ipam_config.load(raw, {}, raw["cniVersion"], "nadtest"))
    return loaded


COMMON = ["--subnet", "192.168.77.0/24", "--range-start", "192.168.77.10", "--range-end", "192.168.77.200",
          "--gateway", "192.168.77.1", "--route", "10.10.0.0/16,192.168.77.254", "--route", "0.0.0.0/0"]


@pytest.mark.parametrize("plugin,mode", [("macvlan", None), ("macvlan", "private"), ("ipvlan", None),
                                         ("ipvlan", "l3")])
@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_shared_nad_is_accepted_by_our_plugins(plugin, mode, version):
    args = ["shared", "--name", "roce-shared", "--type", plugin, "--master", "ens1f0", "--mtu", "9000",
            "--cni-version", version, *COMMON] + (["--mode", mode] if mode else [])
    doc = _nad(*args)
    conf = doc["config"]
    assert doc["metadata"] == {"name": "roce-shared", "namespace": "default"}
    assert conf["type"] == plugin and conf["master"] == "ens1f0" and conf["cniVersion"] == version
    plug, ipam = _load_all(conf)
    assert plug.master == "ens1f0" and plug.mtu == 9000
    assert plug.mode == (mode or ("bridge" if plugin == "macvlan" else "l2"))
    import ipaddress
    (rs,) = ipam.ranges
    (rng,) = rs
    assert (str(ipaddress.ip_address(rng.start)), str(ipaddress.ip_address(rng.end)), rng.prefix) == \
        ("192.168.77.10", "192.168.77.200", 24)
    assert len(ipam.routes) == 2
    assert [r["dst"] for r in conf["ipam"]["routes"]] == ["10.10.0.0/16", "0.0.0.0/0"]


@pytest.mark.parametrize("ipam", ["host-local", "cluster-ipam"])
def test_exclusive_nad_chains_sriov_then_rdma(ipam):
    extra = ["--etcd-endpoint", "http://10.0.0.5:2379", "--etcd-endpoint", "http://10.0.0.6:2379"] \
        if ipam == "cluster-ipam" else []
    if ipam == "cluster-ipam":
        extra.extend(["--pool", "rdma-pool"])
    doc = _nad("exclusive", "--name", "rdma-excl", "--namespace", "team-a", "--resource-name",
               "nvidia.com/sriov_rdma", "--vlan", "100", "--trust", "--no-spoofchk", "--ipam", ipam, *COMMON, *extra)
    assert doc["metadata"]["namespace"] == "team-a"
    assert doc["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/resourceName": "nvidia.com/sriov_rdma"}
    conf = doc["config"]
    assert [p["type"] for p in conf["plugins"]] == ["sriov", "rdma"]
    loaded = _load_all(conf)
    sriov_conf = loaded[0]
    assert sriov_conf.device_id == VF and sriov_conf.vlan == 100
    assert loaded[-1].device_id == VF and loaded[-1].network == "rdma-excl"
    if ipam == "cluster-ipam":
        assert conf["plugins"][0]["ipam"]["etcd"] == {"endpoints": ["http://10.0.0.5:2379", "http://10.0.0.6:2379"]}
        cluster = loaded[1]
        assert cluster.pool == "rdma-pool" and cluster.etcd.endpoints == ["http://10.0.0.5:2379", "http://10.0.0.6:2379"]


def test_cluster_ipam_without_endpoints_uses_the_node_file():
    doc = _nad("shared", "--name", "shared-pool", "--subnet", "10.8.0.0/16", "--ipam", "cluster-ipam")
    ipam = doc["config"]["ipam"]
    assert ipam == {"type": "cluster-ipam", "ranges": [[{"subnet": "10.8.0.0/16"}]]}  # etcd: the node's file


def test_output_file(tmp_path):
    out = tmp_path / "nad.yaml"
    r = cli("nad", "shared", "--name", "n1", "--subnet", "10.9.0.0/24", "--output", str(out))
    assert r.code == 0 and r.stdout == "", r
    assert yaml.safe_load(out.read_text())["metadata"]["name"] == "n1"


@pytest.mark.parametrize("args,needle", [
    (["shared", "--name", "Bad_Name", "--subnet", "10.0.0.0/24"], "--name"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/33"], "--subnet"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--gateway", "10.1.0.1"], "outside --subnet"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--range-start", "nope"], "--range-start"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--route", "x,y"], "--route"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--type", "ipvlan", "--mode", "bridge"], "--mode"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--master", "a b"], "--master"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--ipam", "cluster-ipam", "--etcd-endpoint", "x"],
     "--etcd-endpoint"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--ipam", "cluster-ipam", "--etcd-endpoint",
      "http://a:1", "--etcd-endpoint", "https://b:2"], "mix"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--pool", "p"], "cluster-ipam"),
    (["shared", "--name", "n", "--subnet", "10.0.0.0/24", "--etcd-endpoint", "http://x"], "cluster-ipam"),
    (["exclusive", "--name", "n", "--subnet", "10.0.0.0/24", "--resource-name", "a b"], "--resource-name"),
    (["exclusive", "--name", "n", "--subnet", "10.0.0.0/24"], "--resource-name"),
    (["exclusive", "--name", "n", "--subnet", "10.0.0.0/24", "--resource-name", "a/b", "--vlan", "5000"], "--vlan"),
])
def test_bad_flags_are_one_line_errors(args, needle):
    assert_one_line_error(cli("nad", *args), 2, needle)
