"""`cni-rdma nad shared|exclusive`: NetworkAttachmentDefinition YAML our plugins accept.

shared     a macvlan or ipvlan child of the RoCE netdev (RDMA devices stay shared by every netns)
exclusive  sriov moves a VF into the pod, the chained rdma plugin moves that VF's RDMA device after it;
           the SR-IOV device plugin allocates the VF through the resourceName annotation
IPAM is host-local (one range per node) or cluster-ipam (one pool for every node, kept in etcd: host-local's
`ranges` format plus an `etcd` block).

The YAML is written by hand (no YAML library in the bundle): the NAD's shape is fixed and every string in
it is emitted as a JSON string, which is valid YAML; spec.config is a literal block of indented JSON.
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Optional

from .common import EXIT_FAILED, CliError
from .devplugin import Resource, Vf

RESOURCE_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_RESOURCE = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_ENDPOINT = re.compile(r"^https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}/?$")
_IFNAME = re.compile(r"^[^\s/:]{1,15}$")
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
IPVLAN_MODES = ("l2", "l3", "l3s")


def _name(value: str, what: str) -> str:
    if not _DNS1123.fullmatch(value) or len(value) > 63:
        raise CliError(f"{what} {value!r}: must be a DNS-1123 label (lower case letters, digits, '-'; 63 at most)")
    return value


def ipam_block(kind: str, subnet: str, range_start: Optional[str], range_end: Optional[str],
               gateway: Optional[str], routes: tuple[str, ...], etcd: tuple[str, ...],
               data_dir: Optional[str] = None, pool: Optional[str] = None) -> dict[str, Any]:
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise CliError(f"--subnet {subnet!r}: not a CIDR such as 192.168.10.0/24") from None
    rng: dict[str, Any] = {"subnet": str(net)}
    for flag, value, key in (("--range-start", range_start, "rangeStart"), ("--range-end", range_end, "rangeEnd"),
                             ("--gateway", gateway, "gateway")):
        if value:
            try:
                ip = ipaddress.ip_address(value)
            except ValueError:
                raise CliError(f"{flag} {value!r}: not an IP address") from None
            if ip not in net:
                raise CliError(f"{flag} {value} is outside --subnet {net}")
            rng[key] = str(ip)
    block: dict[str, Any] = {"type": kind, "ranges": [[rng]]}
    if routes:
        out = []
        for r in routes:
            dst, _, gw = r.partition(",")
            try:
                entry = {"dst": str(ipaddress.ip_network(dst, strict=False))}
                if gw:
                    entry["gw"] = str(ipaddress.ip_address(gw))
            except ValueError:
                raise CliError(f"--route {r!r}: expected DST_CIDR[,GATEWAY]") from None
            out.append(entry)
        block["routes"] = out
    if kind == "cluster-ipam":
        if pool:
            block["pool"] = _name(pool, "--pool")
        # without endpoints the plugin reads the node-local etcd config file: no credentials in the NAD
        for e in etcd:
            if not _ENDPOINT.fullmatch(e):
                raise CliError(f"--etcd-endpoint {e!r}: expected http(s)://host:port")
        if len({e.split(":", 1)[0] for e in etcd}) > 1:
            raise CliError("--etcd-endpoint: do not mix http and https endpoints")
        if etcd:
            block["etcd"] = {"endpoints": list(etcd)}
    elif etcd or pool:
        raise CliError("--etcd-endpoint and --pool are only for --ipam cluster-ipam")
    if data_dir and kind == "host-local":
        block["dataDir"] = data_dir
    return block


def shared_config(name: str, cni_version: str, plugin: str, master: Optional[str], mode: Optional[str],
                  mtu: Optional[int], ipam: dict[str, Any]) -> dict[str, Any]:
    modes = MACVLAN_MODES if plugin == "macvlan" else IPVLAN_MODES
    if mode and mode not in modes:
        raise CliError(f"--mode {mode!r}: {plugin} modes are {', '.join(modes)}")
    conf: dict[str, Any] = {"cniVersion": cni_version, "name": name, "type": plugin}
    if master:
        if not _IFNAME.fullmatch(master):
            raise CliError(f"--master {master!r}: not an interface name")
        conf["master"] = master
    conf["mode"] = mode or modes[0]
    if mtu:
        conf["mtu"] = mtu
    conf["ipam"] = ipam
    return conf


def exclusive_config(name: str, cni_version: str, vlan: Optional[int], mtu: Optional[int], trust: Optional[bool],
                     spoofchk: Optional[bool], ipam: dict[str, Any]) -> dict[str, Any]:
    sriov: dict[str, Any] = {"type": "sriov"}
    if vlan is not None:
        sriov["vlan"] = vlan
    if mtu:
        sriov["mtu"] = mtu
    if trust is not None:
        sriov["trust"] = "on" if trust else "off"
    if spoofchk is not None:
        sriov["spoofchk"] = "on" if spoofchk else "off"
    sriov["ipam"] = ipam
    return {"cniVersion": cni_version, "name": name, "plugins": [sriov, {"type": "rdma"}]}


def render(name: str, namespace: str, config: dict[str, Any], resource: Optional[str] = None) -> str:
    _name(name, "--name")
    _name(namespace, "--namespace")
    lines = ["apiVersion: k8s.cni.cncf.io/v1", "kind: NetworkAttachmentDefinition", "metadata:",
             f"  name: {json.dumps(name)}", f"  namespace: {json.dumps(namespace)}"]
    if resource:
        if not _RESOURCE.fullmatch(resource):
            raise CliError(f"--resource-name {resource!r}: expected a device plugin resource (vendor.com/name)")
        lines += ["  annotations:", f"    {json.dumps(RESOURCE_ANNOTATION)}: {json.dumps(resource)}"]
    lines += ["spec:", "  config: |"]
    lines += [f"    {line}" for line in json.dumps(config, indent=2).splitlines()]
    return "\n".join(lines) + "\n"


def from_node(inv: dict[str, Any]) -> Optional[str]:
    """The netdev of the first active RDMA port (the RoCE uplink a shared-mode child hangs off)."""
    for dev in inv["rdma"]["devices"]:
        for port in dev["ports"]:
            if port["state"] == "active" and port["netdev"]:
                return port["netdev"]
    return None


class ExclusivePlan:
    """What `nad exclusive --from-node` read off the node: the resource, the MTU, what to tell the operator."""

    def __init__(self, resource: str, mtu: Optional[int], info: list[str], warnings: list[str]):
        self.resource, self.mtu, self.info, self.warnings = resource, mtu, info, warnings


def exclusive_from_node(inv: dict[str, Any], vfs: list[Vf], pf_mtu: dict[str, Optional[int]],
                        resources: Optional[list[Resource]], resource_name: Optional[str],
                        config: str) -> ExclusivePlan:
    """Pick the device plugin resource pooling this node's RDMA-capable VFs, the
    MTU of the PFs behind them, and check the RDMA netns mode; `resource_name` overrides the pick."""
    info: list[str] = []
    warnings: list[str] = []
    rdma_vfs = [v for v in vfs if v.rdma]
    if not rdma_vfs:
        raise CliError("--from-node: no RDMA-capable VF on this node (" + _why_no_rdma_vf(inv, vfs) +
                       "; see `cni-rdma doctor --mode exclusive`)", EXIT_FAILED)
    for pf in inv["sriov"]:
        mine = [v for v in rdma_vfs if v.pf_pci == pf["device"]]
        if mine:
            drivers = ", ".join(sorted({v.driver or "none" for v in mine}))
            name = "/".join(pf["netdevs"]) or pf["device"]
            mtu = pf_mtu.get(pf["device"]) or "?"
            info.append(f"PF {name} ({pf['device']}, {pf['driver'] or 'no driver'}, MTU {mtu}): {len(mine)} of "
                        f"{pf['numvfs']} VFs have an RDMA device (VF driver {drivers})")
    mode, err = inv["rdma"]["netns_mode"], inv["rdma"]["error"]
    if mode == "exclusive":
        info.append("RDMA netns mode exclusive")
    elif mode == "shared":
        warnings.append("RDMA netns mode is shared; exclusive mode needs `rdma system set netns exclusive` before "
                        "pods start (`cni-rdma doctor --mode exclusive` checks the boot setting too)")
    else:
        warnings.append(f"RDMA netns mode unknown ({err or 'no answer'}); exclusive mode needs it exclusive")
    pooled = rdma_vfs
    if resource_name:
        chosen = next((r for r in resources or [] if r.name == resource_name), None)
        if chosen is not None:
            pooled = [v for v, _ in chosen.matching(rdma_vfs)] or rdma_vfs
        elif resources is not None:
            warnings.append(f"--resource-name {resource_name} is not a netDevice resource of {config}")
    else:
        resource_name, pooled = _pick_resource(rdma_vfs, resources or [], config, warnings)
        info.append(f"resource {resource_name} (from {config}): " + ", ".join(v.pci for v in pooled))
    mtus = {m for v in pooled if (m := pf_mtu.get(v.pf_pci)) is not None}
    if len(mtus) > 1:
        warnings.append(f"the PFs behind {resource_name} differ in MTU ({', '.join(map(str, sorted(mtus)))}): "
                        "the NAD takes the smallest")
    return ExclusivePlan(resource_name, min(mtus) if mtus else None, info, warnings)


def _pick_resource(rdma_vfs: list[Vf], resources: list[Resource], config: str,
                   warnings: list[str]) -> tuple[str, list[Vf]]:
    rdma_ready: list[tuple[Resource, list[Vf]]] = []
    without_rdma: list[str] = []
    for r in resources:
        taken = r.matching(rdma_vfs)
        if any(sel["isRdma"] for _, sel in taken):
            rdma_ready.append((r, [v for v, sel in taken if sel["isRdma"]]))
        elif taken:
            without_rdma.append(r.name)
    if len(rdma_ready) > 1:
        listed = "; ".join(f"{r.name} ({', '.join(v.pci for v in vs)})" for r, vs in rdma_ready)
        raise CliError(f"--from-node: {len(rdma_ready)} device plugin resources pool RDMA VFs here: {listed}; "
                       "choose one with --resource-name")
    if not rdma_ready:
        if without_rdma:
            raise CliError(f"--from-node: {', '.join(without_rdma)} in {config} pools RDMA-capable VFs without "
                           "\"isRdma\": true (the pod would get no /dev/infiniband device): set it, or pass "
                           "--resource-name")
        looked = "; ".join(v.describe() for v in rdma_vfs)
        raise CliError(f"--from-node: no netDevice resource in {config} with \"isRdma\": true selects an "
                       f"RDMA-capable VF of this node (looked for: {looked}); add one, or pass --resource-name")
    r, pooled = rdma_ready[0]
    if r.unchecked:
        warnings.append(f"{r.name}: selectors {', '.join(r.unchecked)} were not checked against this node")
    return r.name, pooled


def _why_no_rdma_vf(inv: dict[str, Any], vfs: list[Vf]) -> str:
    pci_pfs = [pf for pf in inv["sriov"] if pf["bus"] == "pci"]
    if not pci_pfs:
        return "no SR-IOV PCI PF"
    if not vfs:
        return "sriov_numvfs is 0 on " + ", ".join('/'.join(pf["netdevs"]) or pf["device"] for pf in pci_pfs)
    drivers = ", ".join(sorted({v.driver or "none" for v in vfs}))
    return f"{len(vfs)} VFs, none with an RDMA device (VF drivers: {drivers}; mlx5 VFs need mlx5_ib loaded)"
