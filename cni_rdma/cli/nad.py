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

from .common import CliError

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
