"""The DaemonSet image (deploy/Dockerfile, FROM scratch, built with buildah: nothing pulled) holds nothing but
the bundle, and its entrypoint installs it the way deploy/daemonset.yaml's init container runs it: under podman,
read-only root, all capabilities dropped but CHOWN/DAC_OVERRIDE/FOWNER, the node's /opt/cni mounted at
/host/opt/cni -- here a temporary "host" directory. FORCE unset refuses to replace a Go plugin, FORCE=1 replaces
it; then the installed plugins, chrooted into that host directory (nothing else in it), answer VERSION and
serve a macvlan + host-local ADD/CHECK/DEL through the installed links. Frozen pass only.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests import deploy_examples as dx
from tests import topology
from tests.bundle_root import BIN, LIB, TYPES, add_check_del, add_mountpoints, cni_env, frozen_only
from tests.bundle_root import is_frozen  # noqa: F401  (frozen_only's condition)
from tests.bundle_root import run_in_root
from tools import build_image

pytestmark = frozen_only
TAG = "localhost/cni-rdma-test:selfcontained"


class Podman:
    """podman on the image's private storage (tools/build_image.py --storage), cgroupfs, file events."""

    def __init__(self, storage: Path):
        self.env = build_image.storage_env(storage)
        conf = storage / "containers.conf"
        conf.write_text('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                        f'events_logfile_path = "{storage}/events.log"\n')
        self.env["CONTAINERS_CONF"] = str(conf)
        # podman asks the runtime for nofile/nproc limits above this machine's hard limits: lower them.
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096)
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
        self.ulimits = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]

    def __call__(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        if args[0] in ("run", "create"):
            args = (args[0], *self.ulimits, *args[1:])
        return subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def install(self, host: Path, force: str | None) -> subprocess.CompletedProcess:
        """deploy/daemonset.yaml's init container, translated to podman: its command, securityContext and
        mount (the node's /opt/cni is `host`/opt/cni here); FORCE as given (None: unset)."""
        (ds,) = [d for d in dx.documents(dx.DEPLOY / "daemonset.yaml") if d["kind"] == "DaemonSet"]
        spec = ds["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        sc = init["securityContext"]
        volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
        mounts = [f"{host / volumes[m['name']].lstrip('/')}:{m['mountPath']}" for m in init["volumeMounts"]]
        args = ["--rm", "--network", "none", "--user", str(sc["runAsUser"]), "--entrypoint", init["command"][0]]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        args += ["--cap-drop", ",".join(sc["capabilities"]["drop"]), "--cap-add", ",".join(sc["capabilities"]["add"])]
        for m in mounts:
            args += ["-v", m]
        if force is not None:
            args += ["-e", f"FORCE={force}"]
        return self("run", *args, TAG, *init["command"][1:])


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    storage = tmp_path_factory.mktemp("image-storage")
    build_image.build(TAG, storage=storage, context=storage / "context")
    p = Podman(storage)
    yield p
    p("rmi", "-f", TAG)


def test_the_image_is_the_bundle_alone(podman, tmp_path):
    cid = podman("create", TAG).stdout.strip()
    try:
        tar = tmp_path / "image.tar"
        p = podman("export", "-o", str(tar), cid)
        assert p.returncode == 0, p.stderr
    finally:
        podman("rm", cid)
    with tarfile.open(tar) as t:
        files = [m.name.lstrip("./") for m in t.getmembers() if not m.isdir()]
    assert files and all(f.startswith(LIB.lstrip("/") + "/") for f in files), sorted(files)[:20]
    assert f"{LIB.lstrip('/')}/_internal/lib/libc.so.6" in files
    inspect = json.loads(podman("image", "inspect", TAG).stdout)[0]
    assert inspect["Config"]["Entrypoint"] == [f"{LIB}/cni-rdma", "install"]
    assert len(inspect["RootFS"]["Layers"]) == 1  # FROM scratch: one layer, no base image


def test_install_under_podman_refuses_then_forces_and_the_plugins_serve(podman, node, pod, tmp_path):
    host = tmp_path / "host"
    bin_dir = host / BIN.lstrip("/")
    bin_dir.mkdir(parents=True)
    go = bin_dir / "macvlan"
    go.write_bytes(b"\x7fELF pretend Go plugin")
    go.chmod(0o755)

    for force in (None, "0"):  # FORCE unset, and FORCE "0" as the DaemonSet ships it
        refused = podman.install(host, force)
        assert refused.returncode == 1, refused
        assert "not a symlink" in refused.stderr and "FORCE=1" in refused.stderr
        assert os.listdir(bin_dir) == ["macvlan"] and go.read_bytes().startswith(b"\x7fELF pretend")
        assert not (host / LIB.lstrip("/")).exists()  # nothing changed

    done = podman.install(host, "1")
    assert done.returncode == 0, done
    assert "replacing /host/opt/cni/bin/macvlan (was a regular file) -- FORCE" in done.stdout
    for t in TYPES:
        assert os.readlink(bin_dir / t) == f"{LIB}/cni-rdma"
    again = podman.install(host, None)  # a rolling update: our own links are replaced without FORCE
    assert again.returncode == 0, again

    # The host directory now holds the installed bundle and nothing else (plus mount points): run it there.
    add_mountpoints(host)
    for t in TYPES:
        v = run_in_root(host, node, [f"{BIN}/{t}"], cni_env("VERSION"))
        assert v.returncode == 0 and "supportedVersions" in json.loads(v.stdout), (t, v)

    def call(command: str, config: dict) -> subprocess.CompletedProcess:
        return run_in_root(host, node, [f"{BIN}/macvlan"], cni_env(command, pod), json.dumps(config).encode())

    add_check_del(call, host, pod, "10.217.0", "image-installed")


def test_image_build_needs_no_registry():
    # FROM scratch is the only base: nothing to pull (no machine here can reach a container registry).
    froms = [line.split()[1] for line in (topology.ROOT / "deploy" / "Dockerfile").read_text().splitlines()
             if line.upper().startswith("FROM ")]
    assert froms == ["scratch"]
