"""libcni 1.1.2 (Debian's golang-github-appc-cni-dev) driving the installed bundle with cnitool's semantics,
through the project's own driver (tests/e2e/driver/main.go): NETCONFPATH, CAP_ARGS `mac`/`ips` (runtimeConfig
for plugins declaring the capability), CNI_ARGS, libcni's result cache (written by ADD, the prevResult of CHECK
and DEL, removed by DEL), CHECK catching a drifted pod, DEL twice.

The plugins run in a node netns (topology.make_node: master `eth0`), the attachment in a throwaway pod netns.
"""
from __future__ import annotations

import json

import pytest

from tests import topology
from tests.e2e import runtimes

NET = "e2e-libcni"
SUBNET = "10.63.0.0/24"


def conflist(tmp_path, capabilities: dict | None = None) -> dict:
    mac = {"type": "macvlan", "master": "eth0", "mode": "bridge",
           "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": [[{"subnet": SUBNET}]]}}
    if capabilities:
        mac["capabilities"] = capabilities
    return {"cniVersion": "1.0.0", "name": NET, "plugins": [mac]}


def _write(driver, conf: dict, name: str = NET) -> None:
    (driver.conf_dir / f"{name}.conflist").write_text(json.dumps(conf))


def _leases(tmp_path) -> list[str]:
    pool = tmp_path / "ipam" / NET
    if not pool.is_dir():
        return []
    return sorted(p.name for p in pool.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved"))


def _cache_file(driver, cid: str, ifname: str = "eth0"):
    return driver.cache_dir / "results" / f"{NET}-{cid}-{ifname}"


def test_cnitool_add_check_del_twice_with_capability_args(driver, node, pod, tmp_path):
    _write(driver, conflist(tmp_path, {"mac": True, "ips": True}))
    cid = "e2e-libcni-1"
    caps = {"mac": "02:11:22:33:44:55", "ips": ["10.63.0.42/24"]}
    r = driver("add", NET, pod.path, container_id=cid, cap_args=caps, node_netns=node.path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["cniVersion"] == "1.0.0"
    assert result["ips"][0]["address"] == "10.63.0.42/24"
    assert result["interfaces"][0]["mac"] == "02:11:22:33:44:55"
    link = pod.link("eth0")
    assert link["address"] == "02:11:22:33:44:55" and link["linkinfo"]["info_kind"] == "macvlan"
    assert [a["local"] for a in pod.addrs("eth0") if a["family"] == "inet"] == ["10.63.0.42"]
    assert _leases(tmp_path) == ["10.63.0.42"]

    # libcni cached what the chain returned, with the config and runtime args it ran with.
    cached = driver("cached", NET, pod.path, container_id=cid)
    assert cached.returncode == 0 and json.loads(cached.stdout) == result
    entry = json.loads(_cache_file(driver, cid).read_text())
    assert entry["kind"] == "cniCacheV1" and entry["capabilityArgs"] == caps and entry["ifName"] == "eth0"

    # CHECK: the cached result is the prevResult; passes, then fails once the pod drifts from it.
    chk = driver("check", NET, pod.path, container_id=cid, node_netns=node.path)
    assert chk.returncode == 0, chk.stderr
    topology.sh("ip", "-n", pod.name, "addr", "del", "10.63.0.42/24", "dev", "eth0")
    chk = driver("check", NET, pod.path, container_id=cid, node_netns=node.path)
    assert chk.returncode != 0 and "10.63.0.42" in chk.stderr, chk.stderr

    for attempt in (1, 2):  # DEL twice: the second finds nothing (no cache, no link, no lease) and succeeds
        d = driver("del", NET, pod.path, container_id=cid, node_netns=node.path)
        assert d.returncode == 0, (attempt, d.stderr)
        assert pod.link("eth0") is None and _leases(tmp_path) == []
        assert not _cache_file(driver, cid).exists()
    assert json.loads(driver("cached", NET, pod.path, container_id=cid).stdout) is None


def test_capability_args_need_the_capability(driver, node, pod, tmp_path):
    """libcni passes CAP_ARGS only to plugins declaring the capability: without it the plugin allocates."""
    _write(driver, conflist(tmp_path))
    r = driver("add", NET, pod.path, container_id="e2e-libcni-2", node_netns=node.path,
               cap_args={"mac": "02:11:22:33:44:66", "ips": ["10.63.0.43/24"]})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["ips"][0]["address"] != "10.63.0.43/24" and result["interfaces"][0]["mac"] != "02:11:22:33:44:66"
    assert driver("del", NET, pod.path, container_id="e2e-libcni-2", node_netns=node.path).returncode == 0


@pytest.mark.parametrize("cni_args", [
    "IgnoreUnknown=1;IP=10.63.0.77;MAC=02:00:00:00:77:77",
    "IgnoreUnknown=1;K8S_POD_NAME=p;FOO=bar;IP=10.63.0.77",
    "IP=10.63.0.77",  # macvlan itself knows only MAC: Go's LoadArgs refuses the rest without IgnoreUnknown
    "FOO=bar",
])
def test_cni_args_as_the_go_reference(driver, node, pod, tmp_path, cni_args):
    """Same CNI_ARGS through libcni to ours and to Debian's Go macvlan + host-local: same outcome."""
    outcomes = []
    for bin_dir in (driver.bin_dir, runtimes.GO_PLUGIN_DIR):
        d = runtimes.Driver(driver.exe, driver.conf_dir, bin_dir, driver.cache_dir)
        _write(d, conflist(tmp_path))
        cid = "e2e-libcni-3"
        r = d("add", NET, pod.path, container_id=cid, cni_args=cni_args, node_netns=node.path)
        if r.returncode != 0:
            assert pod.link("eth0") is None and _leases(tmp_path) == [], r.stderr
            outcomes.append(("error", "unknown args" in r.stderr.lower()))
            continue
        addr = json.loads(r.stdout)["ips"][0]["address"]
        outcomes.append(("ok", addr, pod.link("eth0")["address"] if "MAC=" in cni_args else None))
        assert d("del", NET, pod.path, container_id=cid, cni_args=cni_args, node_netns=node.path).returncode == 0
        assert _leases(tmp_path) == [] and pod.link("eth0") is None
    ours, go = outcomes
    assert ours == go
    if cni_args.startswith("IgnoreUnknown"):
        assert ours[:2] == ("ok", "10.63.0.77/24")
    else:
        assert ours == ("error", True)


def test_single_conf_file_and_cnitool_container_id(driver, node, pod, tmp_path):
    """A plain .conf is wrapped into a list (LoadConfList); without CNI_CONTAINERID the ID is cnitool's."""
    conf = conflist(tmp_path)["plugins"][0] | {"cniVersion": "0.4.0", "name": NET}
    (driver.conf_dir / "10-e2e.conf").write_text(json.dumps(conf))
    r = driver("add", NET, pod.path, node_netns=node.path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cniVersion"] == "0.4.0"
    owner = (tmp_path / "ipam" / NET / _leases(tmp_path)[0]).read_text().splitlines()[0]
    assert owner.startswith("cnitool-") and len(owner) == 20
    assert driver("check", NET, pod.path, node_netns=node.path).returncode == 0
    assert driver("del", NET, pod.path, node_netns=node.path).returncode == 0
    assert _leases(tmp_path) == [] and pod.link("eth0") is None
