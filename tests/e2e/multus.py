"""A Multus-shaped delegator for the e2e tier: a pod's secondary networks reach our plugins the way Multus
(thick or thin, k8snetworkplumbingwg/multus-cni) delegates them, through real libcni (the e2e driver).

What it does, and where Multus does it (paths in multus-cni, read at 95a0932; no code copied):
- the `k8s.v1.cni.cncf.io/networks` annotation: a JSON list of NetworkSelectionElements when it contains any of
  `[{"`, else a comma list of `[namespace/]name[@ifname]`; a missing namespace is the pod's
  (pkg/k8sclient/k8sclient.go parsePodNetworkAnnotation, parsePodNetworkObjectName).
- a NAD whose `k8s.v1.cni.cncf.io/resourceName` annotation names a device-plugin resource gets the device the
  device plugin allocated to the pod: "deviceID" **and** "pciBusID" are set on the config when it is a single
  plugin, on **every** plugin of the list when it is a conflist (pkg/types/conf.go LoadDelegateNetConf,
  delegateAddDeviceID, addDeviceIDInConfList). An element's "cni-args" land in each plugin's `args.cni`
  (injectCNIArgs).
- the interface name is the element's "interface", else `net<idx>` with idx counting from 1 (index 0 is the
  cluster network; pkg/multus/multus.go getIfname).
- RuntimeConf (pkg/types/conf.go newCNIRuntimeConf, createRuntimeConf): ContainerID = the sandbox ID, Args in
  this order `IgnoreUnknown=true;K8S_POD_NAMESPACE;K8S_POD_NAME;K8S_POD_INFRA_CONTAINER_ID;K8S_POD_UID`
  (Multus writes "true"; kubelet's own CNI_ARGS add nothing new), CapabilityArgs from the element
  (mergeCNIRuntimeConfig): ips, mac, infinibandGUID ("infiniband-guid"), deviceID, and when there is a deviceID
  a CNIDeviceInfoFile `/var/run/k8s.cni.cncf.io/devinfo/cni/<ns>-<nad>-<containerID>_<ifname>.json`
  (delegateRuntimeConfig). libcni hands each only to plugins declaring the capability.
- libcni with Multus's cache dir (CNIDir, default /var/lib/cni/multus): AddNetworkList for a conflist,
  AddNetwork for a single plugin (confAdd / conflistAdd); DEL likewise (confDel / conflistDel).
- ADD walks the delegates in order; when one fails, DEL runs for it and every earlier one, last first, errors
  ignored (CmdAdd -> delPlugins(..., idx)); DEL of a pod walks all delegates last first (CmdDel).
Not modelled: the cluster default network (delegate 0), network-status annotations, gateway juggling,
device-info file copies from the device plugin (the file path is passed, nothing writes it).
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

from tests.e2e.runtimes import Driver

NETWORKS = "k8s.v1.cni.cncf.io/networks"
RESOURCE = "k8s.v1.cni.cncf.io/resourceName"
DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo/cni"
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class Pod:
    __slots__ = ("namespace", "name", "uid", "sandbox", "netns", "annotations")

    def __init__(self, namespace: str, name: str, uid: str, sandbox: str, netns: str, annotations: dict):
        self.namespace, self.name, self.uid, self.sandbox = namespace, name, uid, sandbox
        self.netns, self.annotations = netns, annotations


def selections(pod: Pod) -> list[dict]:
    value = pod.annotations[NETWORKS]
    if any(c in value for c in '[{"'):
        elements = json.loads(value)
    else:
        elements = []
        for item in value.split(","):
            item = item.strip()
            ns, _, rest = item.rpartition("/") if "/" in item else ("", "", item)
            name, _, ifname = rest.partition("@")
            for part in (ns.strip(), name.strip()):
                if part and not _DNS1123.fullmatch(part):
                    raise ValueError(f"invalid network object {item!r}")
            elements.append({"name": name.strip(), "namespace": ns.strip(), "interface": ifname.strip()})
    for e in elements:
        e["namespace"] = e.get("namespace") or pod.namespace
    return elements


class Delegate:
    __slots__ = ("nad", "conf", "single", "ifname", "device_id", "caps")

    def __init__(self, nad: dict, conf: dict, single: bool, ifname: str, device_id: str, caps: dict):
        self.nad, self.conf, self.single, self.ifname, self.device_id, self.caps = (
            nad, conf, single, ifname, device_id, caps)

    @property
    def network(self) -> str:
        return self.conf["name"]


def delegates(pod: Pod, nads: dict[tuple[str, str], dict], allocated: dict[str, str]) -> list[Delegate]:
    """The pod's delegates as Multus builds them (see the module doc). `allocated`: resourceName -> device."""
    out = []
    for idx, sel in enumerate(selections(pod), start=1):
        nad = nads[(sel["namespace"], sel["name"])]
        conf = json.loads(nad["spec"]["config"])
        single = "plugins" not in conf
        resource = nad["metadata"].get("annotations", {}).get(RESOURCE, "")
        device_id = allocated.get(resource, "") if resource else ""
        if device_id:
            for plugin in ([conf] if single else conf["plugins"]):
                plugin["deviceID"] = device_id
                plugin["pciBusID"] = device_id
        if sel.get("cni-args") is not None:
            for plugin in ([conf] if single else conf["plugins"]):
                plugin.setdefault("args", {}).setdefault("cni", {}).update(copy.deepcopy(sel["cni-args"]))
        ifname = sel.get("interface") or f"net{idx}"
        caps: dict = {}
        if sel.get("ips"):
            caps["ips"] = sel["ips"]
        if sel.get("mac"):
            caps["mac"] = sel["mac"]
        if sel.get("infiniband-guid"):
            caps["infinibandGUID"] = sel["infiniband-guid"]
        device_id = device_id or sel.get("deviceID", "")
        if device_id:
            caps["deviceID"] = device_id
            caps["CNIDeviceInfoFile"] = (f"{DEVINFO_DIR}/{sel['namespace']}-{sel['name']}-{pod.sandbox}_{ifname}"
                                         ".json")
        out.append(Delegate(nad, conf, single, ifname, device_id, caps))
    return out


class Multus:
    """Runs a pod's delegates through libcni (the e2e driver) with Multus's RuntimeConf and order."""

    def __init__(self, driver: Driver, workdir: Path, node_netns: str | None = None, env: dict | None = None):
        self.driver, self.workdir, self.node_netns, self.env = driver, workdir, node_netns, env or {}
        self.cache_dir = workdir / "multus-cache"  # Multus's CNIDir (/var/lib/cni/multus)
        self.calls: list[tuple[str, str, str]] = []  # (command, network, ifname), for assertions on order

    @staticmethod
    def cni_args(pod: Pod) -> str:
        return (f"IgnoreUnknown=true;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
                f"K8S_POD_INFRA_CONTAINER_ID={pod.sandbox};K8S_POD_UID={pod.uid}")

    def _invoke(self, command: str, pod: Pod, d: Delegate) -> subprocess.CompletedProcess:
        confdir = self.workdir / f"delegate-{pod.sandbox}-{d.ifname}"
        confdir.mkdir(parents=True, exist_ok=True)
        (confdir / ("net.conf" if d.single else "net.conflist")).write_text(json.dumps(d.conf))
        drv = Driver(self.driver.exe, confdir, self.driver.bin_dir, self.cache_dir)
        self.calls.append((command, d.network, d.ifname))
        env = {**self.env, **({"CNI_SINGLE_CONF": "1"} if d.single else {})}
        return drv(command.lower(), d.network, pod.netns, container_id=pod.sandbox, ifname=d.ifname,
                   cni_args=self.cni_args(pod), cap_args=d.caps or None, node_netns=self.node_netns, env=env)

    def add(self, pod: Pod, ds: list[Delegate]) -> list[dict]:
        results = []
        for idx, d in enumerate(ds):
            r = self._invoke("ADD", pod, d)
            if r.returncode != 0:
                for back in reversed(ds[: idx + 1]):  # delPlugins(..., idx): the failed one too, errors ignored
                    self._invoke("DEL", pod, back)
                raise MultusError(d.network, r.stderr.strip())
            results.append(json.loads(r.stdout))
        return results

    def check(self, pod: Pod, ds: list[Delegate]) -> list[subprocess.CompletedProcess]:
        return [self._invoke("CHECK", pod, d) for d in ds]

    def delete(self, pod: Pod, ds: list[Delegate]) -> list[str]:
        errors = []
        for d in reversed(ds):
            r = self._invoke("DEL", pod, d)
            if r.returncode != 0:
                errors.append(r.stderr.strip())
        return errors


class MultusError(Exception):
    def __init__(self, network: str, message: str):
        super().__init__(f"error adding container to network {network!r}: {message}")
        self.network, self.message = network, message
