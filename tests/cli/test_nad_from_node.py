"""`cni-rdma nad exclusive --from-node`: the node's RDMA-capable VFs (a fake sysfs PCI tree: no SR-IOV hardware
here), matched against an sriov-network-device-plugin config in a temp file, give the resourceName annotation and
the PF MTU; the NAD is fed to our own plugins' config loaders as `nad` always is."""
from __future__ import annotations

import json
import os
import threading

import pytest
import yaml

from cni_rdma.cli import devplugin, nad
from cni_rdma.cli.inventory import rdma_links
from tests.cli.helpers import assert_one_line_error, cli
from tests.cli.test_nad import _load_all
from tests.fakepci import FakePci

MLX, INTEL = 0x15B3, 0x8086


@pytest.fixture
def node(tmp_path):
    """ens1f0: mlx5 PF (MTU 9000) with 2 RDMA VFs; ens1f1: mlx5 PF without VFs; ens2f0: Intel PF with an iavf VF
    (no RDMA) and a vfio-pci VF."""
    pci = FakePci()
    pf = pci.add_pf(pci.addr(0x3B, 0, 0), "ens1f0", driver="mlx5_core", totalvfs=4)
    pci.set_ids(pf, MLX, 0x1017)
    pci.add_pf(pci.addr(0x3B, 0, 1), "ens1f1", driver="mlx5_core", totalvfs=4)
    for i in range(2):
        vf = pci.add_vf(pf, i, pci.addr(0x3B, 0, 2 + i), f"ens1f0v{i}", driver="mlx5_core")
        pci.set_ids(vf, MLX, 0x1018)
        (pci.dev_dir(vf) / "infiniband" / f"mlx5_{2 + i}").mkdir(parents=True)
        (pci.dev_dir(vf) / "net" / f"ens1f0v{i}" / "type").write_text("1\n")
    (pci.dev_dir(pf) / "net" / "ens1f0" / "mtu").write_text("9000\n")
    ipf = pci.add_pf(pci.addr(0x5E, 0, 0), "ens2f0", driver="i40e", totalvfs=4)
    pci.set_ids(ipf, INTEL, 0x1572)
    (pci.dev_dir(ipf) / "net" / "ens2f0" / "mtu").write_text("1500\n")
    pci.set_ids(pci.add_vf(ipf, 0, pci.addr(0x5E, 2, 0), "ens2f0v0", driver="iavf"), INTEL, 0x154C)
    pci.set_ids(pci.add_vf(ipf, 1, pci.addr(0x5E, 2, 1), None, driver="vfio-pci"), INTEL, 0x154C)
    pci.config = tmp_path / "config.json"  # type: ignore[attr-defined]
    yield pci
    pci.cleanup()


INTEL_NETDEV = {"resourceName": "intel_sriov_netdevice", "selectors": {"vendors": ["8086"], "drivers": ["iavf"]}}
INTEL_DPDK = {"resourceName": "intel_sriov_dpdk", "selectors": [{"vendors": ["8086"], "drivers": ["vfio-pci"]}]}
MLX_RDMA = {"resourceName": "rdma_a", "resourcePrefix": "nvidia.com",
            "selectors": [{"vendors": ["15b3"], "devices": ["1018"], "drivers": ["mlx5_core"], "isRdma": True}]}


def _write(node, *resources: dict) -> str:
    node.config.write_text(json.dumps({"resourceList": list(resources)}))
    return str(node.config)


def from_node(node, *extra: str):
    return cli("nad", "exclusive", "--name", "rdma-a", "--subnet", "10.56.0.0/16", "--from-node",
               "--sysfs-root", str(node.root), "--device-plugin-config", str(node.config), *extra)


def _doc(r) -> dict:
    assert r.code == 0, r
    doc = yaml.safe_load(r.stdout)
    doc["config"] = json.loads(doc["spec"]["config"])
    return doc


def test_picks_the_rdma_resource_and_the_pf_mtu(node):
    _write(node, INTEL_NETDEV, INTEL_DPDK, MLX_RDMA)
    r = from_node(node)
    doc = _doc(r)
    assert doc["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/resourceName": "nvidia.com/rdma_a"}
    conf = doc["config"]
    assert [p["type"] for p in conf["plugins"]] == ["sriov", "rdma"] and conf["plugins"][0]["mtu"] == 9000
    sriov_conf = _load_all(conf)[0]  # our own loaders accept it, as Multus would delegate it
    assert sriov_conf.mtu == 9000
    lines = r.stderr.splitlines()
    pf = node.addr(0x3B, 0, 0)
    assert f"cni-rdma: node: PF ens1f0 ({pf}, mlx5_core, MTU 9000): 2 of 2 VFs have an RDMA device " \
           "(VF driver mlx5_core)" in lines, r
    assert not any("ens1f1" in line or "ens2f0" in line for line in lines), r  # no RDMA VFs there
    vfs = ", ".join(node.addr(0x3B, 0, 2 + i) for i in range(2))
    assert f"cni-rdma: node: resource nvidia.com/rdma_a (from {node.config}): {vfs}" in lines, r
    mode, err, _ = rdma_links()  # this kernel's answer (no ib_core on the host tier: unknown)
    expected = {"exclusive": "cni-rdma: node: RDMA netns mode exclusive",
                "shared": "cni-rdma: warning: RDMA netns mode is shared"}.get(mode or "", "cni-rdma: warning: "
                                                                                  "RDMA netns mode unknown")
    assert any(line.startswith(expected) for line in lines), (mode, err, r)
    # --mtu still wins over the PF's
    assert _doc(from_node(node, "--mtu", "4200"))["config"]["plugins"][0]["mtu"] == 4200


def test_default_prefix_is_the_device_plugins(node):
    legacy = {"resourceName": "mlnx_rdma", "isRdma": True,  # an older release: isRdma on the entry, one object
              "selectors": {"vendors": ["15b3"], "linkTypes": ["ether"], "pfNames": ["ens1f0"]}}
    _write(node, INTEL_NETDEV, legacy)
    annotation = "k8s.v1.cni.cncf.io/resourceName"
    assert _doc(from_node(node))["metadata"]["annotations"][annotation] == "intel.com/mlnx_rdma"
    doc = _doc(from_node(node, "--resource-prefix", "example.com"))
    assert doc["metadata"]["annotations"][annotation] == "example.com/mlnx_rdma"


def test_several_resources_need_resource_name(node):
    pf = node.addr(0x3B, 0, 0)
    _write(node, {"resourceName": "rail0", "resourcePrefix": "nvidia.com",
                  "selectors": [{"pfNames": ["ens1f0#0"], "isRdma": True}]},
           {"resourceName": "rail1", "resourcePrefix": "nvidia.com",
            "selectors": [{"rootDevices": [f"{pf}#1-3"], "isRdma": True}]})
    r = from_node(node)
    assert_one_line_error(r, 2, "2 device plugin resources pool RDMA VFs here",
                          f"nvidia.com/rail0 ({node.addr(0x3B, 0, 2)})", f"nvidia.com/rail1 ({node.addr(0x3B, 0, 3)})",
                          "--resource-name")
    doc = _doc(from_node(node, "--resource-name", "nvidia.com/rail1"))
    assert doc["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"] == "nvidia.com/rail1"
    assert doc["config"]["plugins"][0]["mtu"] == 9000
    r = from_node(node, "--resource-name", "nvidia.com/other")  # the override stands, with a warning
    assert _doc(r)["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"] == "nvidia.com/other"
    assert f"cni-rdma: warning: --resource-name nvidia.com/other is not a netDevice resource of {node.config}" \
        in r.stderr.splitlines(), r


def test_no_matching_resource_says_what_was_looked_for(node):
    _write(node, INTEL_NETDEV, INTEL_DPDK, {"resourceName": "ib", "selectors": [{"linkTypes": ["infiniband"],
                                                                                 "isRdma": True}]})
    assert_one_line_error(from_node(node), 2, f"no netDevice resource in {node.config} with \"isRdma\": true",
                          f"VF 0 {node.addr(0x3B, 0, 2)} of ens1f0 (15b3:1018, driver mlx5_core, RDMA mlx5_2)",
                          "--resource-name")
    no_rdma = dict(MLX_RDMA, selectors=[{"vendors": ["15b3"]}])
    _write(node, no_rdma)
    assert_one_line_error(from_node(node), 2, "nvidia.com/rdma_a", "without \"isRdma\": true", "/dev/infiniband")


def test_node_without_rdma_vfs(node):
    _write(node, MLX_RDMA)
    for i in range(2):
        (node.dev_dir(node.addr(0x3B, 0, 2 + i)) / "infiniband" / f"mlx5_{2 + i}").rmdir()
    assert_one_line_error(from_node(node), 1, "no RDMA-capable VF on this node", "4 VFs, none with an RDMA device",
                          "iavf, mlx5_core, vfio-pci", "mlx5_ib")
    empty = FakePci()
    try:
        empty.add_pf(empty.addr(1, 0, 0), "ens9f0", driver="mlx5_core")
        r = cli("nad", "exclusive", "--name", "x", "--subnet", "10.0.0.0/24", "--from-node",
                "--sysfs-root", str(empty.root), "--device-plugin-config", str(node.config))
        assert_one_line_error(r, 1, "sriov_numvfs is 0 on ens9f0")
    finally:
        empty.cleanup()


def test_device_plugin_config_is_opened_safely(node, tmp_path):
    target = tmp_path / "real.json"
    target.write_text(json.dumps({"resourceList": [MLX_RDMA]}))
    node.config.symlink_to(target)
    assert_one_line_error(from_node(node), 2, "symlink", "--device-plugin-config")
    node.config.unlink()
    os.mkfifo(node.config)
    opened = threading.Timer(30, lambda: open(node.config, "w").close())  # unblocks a blocking open, if any
    opened.start()
    try:
        assert_one_line_error(from_node(node), 2, "FIFO")
    finally:
        opened.cancel()
    node.config.unlink()
    node.config.write_text(" " * (devplugin.CONFIG_MAX + 1))
    assert_one_line_error(from_node(node), 2, "larger than")
    node.config.unlink()
    assert_one_line_error(from_node(node), 2, "No such file", "--device-plugin-config PATH")
    # an explicit --resource-name needs no config
    assert _doc(from_node(node, "--resource-name", "nvidia.com/rdma_a"))["config"]["plugins"][0]["mtu"] == 9000


@pytest.mark.parametrize("config,field", [
    ("[]", "resourceList"),
    ('{"resourceList": [{"selectors": {}}]}', "resourceList[0].resourceName"),
    ('{"resourceList": [{"resourceName": "a", "selectors": 3}]}', "resourceList[0].selectors"),
    ('{"resourceList": [{"resourceName": "a", "selectors": [{"vendors": "15b3"}]}]}',
     "resourceList[0].selectors[0].vendors"),
    ('{"resourceList": [{"resourceName": "a", "selectors": [{"pfNames": ["p#3-1"]}]}]}',
     "resourceList[0].selectors[0].pfNames"),
    ('{"resourceList": [{"resourceName": "a", "selectors": [{"isRdma": "yes"}]}]}',
     "resourceList[0].selectors[0].isRdma"),
    ("{nope", "invalid JSON"),
])
def test_bad_device_plugin_config_names_the_field(node, config, field):
    node.config.write_text(config)
    assert_one_line_error(from_node(node), 2, str(node.config), field)


@pytest.mark.parametrize("mode,expect", [("exclusive", "RDMA netns mode exclusive"), ("shared", "is shared"),
                                         (None, "unknown (no RDMA netlink)")])
def test_netns_mode_is_checked(mode, expect):
    """The mode comes from the kernel (not settable on the host tier), so this runs on a given inventory."""
    vf = devplugin.Vf(pci="0000:3b:00.2", index=0, pf_pci="0000:3b:00.0", pf_names=["ens1f0"], vendor="15b3",
                      device="1018", driver="mlx5_core", netdevs=["ens1f0v0"], link_type="ether", rdma=["mlx5_2"],
                      acpi_index=None)
    inv = {"sriov": [{"device": "0000:3b:00.0", "bus": "pci", "netdevs": ["ens1f0"], "driver": "mlx5_core",
                      "numvfs": 1, "vfs": []}],
           "rdma": {"netns_mode": mode, "error": None if mode else "no RDMA netlink"}}
    res = devplugin.Resource("nvidia.com/a", [devplugin.parse_selector({"isRdma": True}, None, "s")])
    plan = nad.exclusive_from_node(inv, [vf], {"0000:3b:00.0": 4200}, [res], None, "cfg")
    assert plan.resource == "nvidia.com/a" and plan.mtu == 4200
    assert any(expect in line for line in (plan.info if mode == "exclusive" else plan.warnings)), plan.__dict__
    assert (mode == "exclusive") == (not plan.warnings)
