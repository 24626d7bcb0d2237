"""The manifests under deploy/ as tests see them: YAML documents, NetworkAttachmentDefinitions, and the
per-plugin stdin a runtime builds from a NAD's config (libcni for conflists, plus what Multus injects).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RESOURCE_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
# Plugins that take the device Multus looked up for the NAD's resourceName as top-level "deviceID".
DEVICE_ID_TYPES = {"sriov", "rdma"}


def manifests() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml"))


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def nads() -> list[tuple[Path, dict]]:
    return [(p, d) for p in manifests() for d in documents(p) if d.get("kind") == "NetworkAttachmentDefinition"]


def nad_id(item: tuple[Path, dict]) -> str:
    return f"{item[0].name}:{item[1]['metadata']['name']}"


def nad_config(nad: dict) -> dict:
    return json.loads(nad["spec"]["config"])


def plugin_confs(nad: dict, device_id: str | None = None) -> list[dict]:
    """Each plugin's stdin, in chain order: a conflist's plugins get the list's name and cniVersion (libcni);
    with a resourceName annotation, Multus adds the allocated device as "deviceID" to the plugins that use it."""
    conf = nad_config(nad)
    if "plugins" in conf:
        confs = [{"cniVersion": conf.get("cniVersion", ""), "name": conf["name"], **copy.deepcopy(p)}
                 for p in conf["plugins"]]
    else:
        confs = [copy.deepcopy(conf)]
    if device_id and RESOURCE_ANNOTATION in nad["metadata"].get("annotations", {}):
        for c in confs:
            if c["type"] in DEVICE_ID_TYPES:
                c["deviceID"] = device_id
    return confs
