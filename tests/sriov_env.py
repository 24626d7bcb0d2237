"""Shared pieces of the sriov tests (host and VM tier): a fake PCI tree over real links, a stub IPAM
that logs its calls, configs, and readers of a VF netdev's state.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests import topology
from tests.fakepci import FakePci

# An IPAM plugin of any name (the seed NAD's "calico-ipam" included): a fixed address, its calls
# appended to ipam.log ("ADD <cid>", "DEL <cid>"...), and "fail": "ADD" in its config makes it fail.
STUB_IPAM = r'''#!{python} -S
import json, os, sys
cmd = os.environ.get("CNI_COMMAND", "")
conf = json.load(sys.stdin)
ipam = conf.get("ipam") or {{}}
with open(ipam.get("log") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "ipam.log"), "a") as f:
    f.write(f"{{cmd}} {{os.environ.get('CNI_CONTAINERID', '')}}\n")
v = conf.get("cniVersion", "1.1.0")
if ipam.get("fail") == cmd:
    print(json.dumps({{"cniVersion": v, "code": 11, "msg": "stub ipam: no addresses left"}}))
    sys.exit(1)
if cmd == "ADD":
    ips = [{{"address": ipam.get("address", "10.56.217.5/24"), "gateway": ipam.get("gateway", "10.56.217.1")}}]
    if v in ("0.3.0", "0.3.1", "0.4.0"):
        ips[0]["version"] = "4"
    print(json.dumps({{"cniVersion": v, "ips": ips, "routes": [{{"dst": "0.0.0.0/0"}}],
                      "dns": {{"nameservers": ["10.56.217.1"]}}}}))
'''


def stub_ipam_dir(names=("stub-ipam", "calico-ipam")) -> Path:
    d = Path(tempfile.mkdtemp(prefix="crn-ipam-"))
    for name in names:
        p = d / name
        p.write_text(STUB_IPAM.format(python=sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return d


@dataclass
class SriovHost:
    """A node netns holding the PF netdev and the VF netdevs, plus the PCI tree that names them."""

    node: topology.Node
    pci: FakePci
    pf: str
    pf_addr: str
    vfs: dict[int, str] = field(default_factory=dict)  # vf id -> PCI address
    vf_netdev: dict[int, str] = field(default_factory=dict)  # vf id -> host netdev name
    ipam_dir: Path = field(default_factory=stub_ipam_dir)
    # Container IDs get this suffix: the state store (/var/lib/cni/sriov) is shared by every test run on
    # the machine, and a DEL without deviceID finds its VF by container ID.
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def cid(self, container_id: str) -> str:
        return f"{container_id}.{self.tag}"

    @property
    def ipam_log(self) -> Path:
        return self.ipam_dir / "ipam.log"

    def ipam_calls(self) -> list[str]:
        calls = self.ipam_log.read_text().splitlines() if self.ipam_log.exists() else []
        return [c.replace(f".{self.tag}", "") for c in calls]

    def path(self) -> str:
        return f"{self.ipam_dir}{os.pathsep}{topology.bin_dir()}"

    def config(self, vf: int = 0, *, version: str = "1.1.0", ipam: dict | None | bool = True, **keys) -> dict:
        conf = {"cniVersion": version, "name": "sriov-net", "type": "sriov", "deviceID": self.vfs[vf]}
        if ipam is True:
            conf["ipam"] = {"type": "stub-ipam", "log": str(self.ipam_log)}
        elif ipam:
            conf["ipam"] = {"log": str(self.ipam_log), **ipam}
        conf.update(keys)
        return conf

    def run(self, command: str, conf: dict, *, netns: str = "", ifname: str = "net1", container_id: str = "ctr1",
            fault: str | None = None, env: dict | None = None, cni_args: str | None = None) -> topology.PluginRun:
        extra = dict(self.pci.env)
        if fault:
            extra["CNI_RDMA_TEST_FAULT"] = fault
        extra.update(env or {})
        return topology.run_plugin("sriov", command, conf, netns=netns, ifname=ifname, container_id=self.cid(container_id),
                                   node=self.node, path=self.path(), extra_env=extra, cni_args=cni_args)

    def link(self, name: str) -> dict | None:
        for link in topology.ip_json("-d", "link", "show", netns=self.node.name):
            if link["ifname"] == name:
                return link
        return None

    def pf_vf(self, vf: int) -> dict:
        """The PF's view of VF `vf` (`ip -j link show <pf>`: vfinfo_list)."""
        link = topology.ip_json("-d", "link", "show", "dev", self.pf, netns=self.node.name)[0]
        return next(v for v in link.get("vfinfo_list", []) if v.get("vf") == vf)

    def cleanup(self) -> None:
        topology.netns_del(self.node.name)
        self.pci.cleanup()
        import shutil

        shutil.rmtree(self.ipam_dir, ignore_errors=True)


def link_state(link: dict | None) -> dict | None:
    """What ADD/DEL must preserve about a VF netdev."""
    if link is None:
        return None
    return {"ifname": link["ifname"], "address": link["address"], "mtu": link["mtu"],
            "up": "UP" in link.get("flags", [])}


def result_json(run: topology.PluginRun) -> dict:
    assert run.code == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


@contextlib.contextmanager
def one_vf_node(bus: int, vf_netdev: str, **pf_keys):
    """A node netns with a veth "PF" pf0 and one veth "VF" netdev, named by a fake PCI tree (PF at bus:0.0,
    VF 0 at bus:0.2): yields (node, pci, the VF's PCI address); removes both afterwards."""
    node = topology.make_node(default_route=False)
    pci = FakePci()
    try:
        topology.sh("ip", "-n", node.name, "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
        topology.sh("ip", "-n", node.name, "link", "add", vf_netdev, "type", "veth", "peer", "name",
                    f"{vf_netdev[:11]}p")
        pf = pci.add_pf(pci.addr(bus, 0, 0), "pf0", **pf_keys)
        yield node, pci, pci.add_vf(pf, 0, pci.addr(bus, 0, 2), vf_netdev)
    finally:
        topology.netns_del(node.name)
        pci.cleanup()
