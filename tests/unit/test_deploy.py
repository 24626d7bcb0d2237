"""deploy/: every manifest parses; the DaemonSet installs the way cni_rdma/installer.py expects; every NAD example's
embedded CNI config passes our plugins' own config parsers (and its IPAM's), as Multus would hand it over.
"""
from __future__ import annotations

import json
import shlex

import pytest

from cni_rdma.registry import PLUGINS
from cni_rdma.skel import Request, validate_network_name
from cni_rdma.types import NetConf
from cni_rdma.version import SUPPORTED
from tests import deploy_examples as dx
from tools.build_image import DEFAULT_TAG, IMAGE_LIB_DIR

LIB_DIR = "/opt/cni/lib/cni-rdma"

VF = "0000:af:00.2"


def _parsers():
    from ipam.host_local import config as host_local
    from plugins.macvlan import macvlan
    from plugins.rdma import rdma
    from plugins.sriov import sriov

    return {
        "macvlan": macvlan.load_conf,
        "sriov": sriov.load_conf,
        "rdma": rdma.load_conf,
        "host-local": lambda req: host_local.load(req.raw, req.args(), req.conf.cni_version),
    }


def _request(conf: dict) -> Request:
    stdin = json.dumps(conf).encode()
    return Request(command="ADD", container_id="ctr1", netns="/var/run/netns/pod", ifname="net1", cni_args="",
                   path=("/opt/cni/bin",), stdin=stdin, conf=NetConf.from_json(json.loads(stdin)), env={})


def test_every_manifest_parses_and_is_a_kubernetes_object():
    assert dx.manifests(), "deploy/ holds no manifests"
    for path in dx.manifests():
        docs = dx.documents(path)
        assert docs, path
        for d in docs:
            assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), (path, d)


def test_examples_cover_both_seed_scenarios():
    types = {tuple(c["type"] for c in dx.plugin_confs(nad)) for _, nad in dx.nads()}
    assert ("macvlan",) in types
    assert ("sriov", "rdma") in types


@pytest.mark.parametrize("item", dx.nads(), ids=dx.nad_id)
def test_nad_config_passes_our_parsers(item):
    path, nad = item
    conf = dx.nad_config(nad)
    assert conf["name"] == nad["metadata"]["name"]
    validate_network_name(conf["name"])
    assert conf["cniVersion"] in SUPPORTED
    annotations = nad["metadata"].get("annotations", {})
    assert "/" in annotations.get(dx.RESOURCE_ANNOTATION, ""), "examples schedule on a device plugin resource"
    parsers = _parsers()
    for c in dx.plugin_confs(nad, device_id=VF):
        assert c["type"] in PLUGINS, f"{path.name}: {c['type']} is not one of our plugins"
        req = _request(c)
        parsers[c["type"]](req)  # raises CniError (code 7, naming the key) on a bad value
        if req.conf.ipam_type:
            assert req.conf.ipam_type in PLUGINS
            parsers[req.conf.ipam_type](req)
        if c["type"] in dx.DEVICE_ID_TYPES:
            assert c["deviceID"] == VF


def test_example_pods_use_their_nad_and_request_its_resource():
    nads = {f"{n['metadata']['namespace']}/{n['metadata']['name']}": n for _, n in dx.nads()}
    seen = set()
    for path in dx.manifests():
        for d in dx.documents(path):
            if d["kind"] not in ("DaemonSet", "Deployment", "Pod") or "examples" not in path.parts:
                continue
            tmpl = d["spec"]["template"] if d["kind"] != "Pod" else d
            net = tmpl["metadata"]["annotations"][dx.NETWORKS_ANNOTATION]
            assert net in nads, f"{path.name}: {net} is not defined in deploy/"
            resource = nads[net]["metadata"]["annotations"][dx.RESOURCE_ANNOTATION]
            limits = [c.get("resources", {}).get("limits", {}) for c in tmpl["spec"]["containers"]]
            assert any(resource in lim for lim in limits), f"{path.name}: no container requests {resource}"
            seen.add(net)
    assert seen == set(nads)


def _installer():
    (ds,) = [d for d in dx.documents(dx.DEPLOY / "daemonset.yaml") if d["kind"] == "DaemonSet"]
    return ds, ds["spec"]["template"]["spec"]


def test_daemonset_installs_into_host_opt_cni_with_our_installer():
    ds, spec = _installer()
    (init,) = spec["initContainers"]
    cmd = init["command"]
    # The image is the bundle alone: its executable, named cni-rdma, runs its own installer.
    assert cmd[:2] == [f"{LIB_DIR}/cni-rdma", "install"], shlex.join(cmd)
    parsed = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in cmd[2:] if "=" in a}
    assert set(parsed) == {"--destdir", "--lib-dir", "--bin-dir"}
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    (vol,) = [name for name, path in volumes.items() if path == "/opt/cni"]
    destdir = parsed["--destdir"]
    # Every path the installer writes (DESTDIR + dir) lies on the hostPath mount of the node's /opt/cni.
    for d in (parsed["--lib-dir"], parsed["--bin-dir"]):
        assert d.startswith("/opt/cni/")
        assert (destdir + d).startswith(mounts[vol] + "/")
    assert parsed["--bin-dir"] == "/opt/cni/bin"
    # The bundle's ELF interpreter is set for --lib-dir as the node sees it; the image keeps its bundle at the
    # same path, so the image's own executable (cmd[0]) starts too.
    assert parsed["--lib-dir"] == LIB_DIR
    assert {e["name"]: e["value"] for e in init.get("env", [])}.get("FORCE") == "0"  # never replace Go silently
    assert spec["tolerations"] == [{"operator": "Exists"}] and spec["hostNetwork"] is True
    assert init["image"] == DEFAULT_TAG  # what `make image` tags
    (main,) = spec["containers"]
    assert main["image"].startswith("registry.k8s.io/pause:")  # FROM scratch has no sleep: the sandbox image


def test_dockerfile_is_from_scratch_with_the_installer_as_entrypoint():
    text = (dx.DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert [line for line in lines if line.upper().startswith("FROM ")] == ["FROM scratch"]
    assert "COPY rootfs/ /" in lines
    assert f'ENTRYPOINT ["{LIB_DIR}/cni-rdma", "install"]' in lines
    assert IMAGE_LIB_DIR == LIB_DIR
