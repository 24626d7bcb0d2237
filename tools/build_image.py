#!/usr/bin/env python3
"""`make image`: the DaemonSet's image, FROM scratch, holding nothing but the self-contained bundle.

    python3 tools/build_image.py [--tag ghcr.io/cni-rdma/cni-rdma:<version>] [--storage DIR] [--oci-archive PATH]

1. stages build/image/rootfs/opt/cni/lib/cni-rdma: the bundle, its ELF interpreter pointed at that path
   (the installer's own copy step), so the bundle runs inside the image as it will on the node;
2. `buildah build -f deploy/Dockerfile build/image` (FROM scratch: nothing is pulled), with a fixed
   timestamp so the same bundle gives the same image;
3. `--oci-archive PATH` also writes the image as an OCI archive (`podman load -i PATH` elsewhere).
`--storage DIR` keeps the image in a private containers-storage (vfs) under DIR instead of the machine's
(the tests do; podman then needs the same CONTAINERS_STORAGE_CONF, see `storage_env`). Needs buildah.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cni_rdma.installer import copy_bundle, loader_path  # noqa: E402
from cni_rdma.version import BUILD_VERSION  # noqa: E402

IMAGE_LIB_DIR = "/opt/cni/lib/cni-rdma"  # the same path as on the node: one PT_INTERP for both
DEFAULT_TAG = f"ghcr.io/cni-rdma/cni-rdma:{BUILD_VERSION}"  # deploy/daemonset.yaml names it


def storage_env(storage: Path | None) -> dict:
    """The environment that points buildah/podman at a private vfs storage under `storage` (None: the machine's)."""
    if storage is None:
        return dict(os.environ)
    for d in ("root", "runroot", "tmp"):
        (storage / d).mkdir(parents=True, exist_ok=True)
    conf = storage / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{storage}/root"\nrunroot = "{storage}/runroot"\n')
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf), "TMPDIR": str(storage / "tmp")}


def stage(bundle: Path, context: Path) -> Path:
    rootfs = context / "rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    lib = rootfs / IMAGE_LIB_DIR.lstrip("/")
    copy_bundle(str(bundle), str(lib), loader_path(str(bundle), IMAGE_LIB_DIR))
    return rootfs


def build(tag: str = DEFAULT_TAG, storage: Path | None = None, oci_archive: Path | None = None,
          bundle: Path = ROOT / "build" / "cni-rdma", context: Path = ROOT / "build" / "image") -> str:
    if not (bundle / "cni-rdma").is_file():
        sys.exit(f"image: no bundle at {bundle} (make build)")
    if loader_path(str(bundle), IMAGE_LIB_DIR) is None:
        sys.exit(f"image: {bundle} uses the node's glibc (built with --host-glibc): FROM scratch needs its own")
    if not shutil.which("buildah"):
        sys.exit("image: buildah is not installed (make deps)")
    context.mkdir(parents=True, exist_ok=True)
    stage(bundle, context)
    env = storage_env(storage)
    cmd = ["buildah", "build", "--quiet", "--layers=false", "--timestamp", "0", "--pull=never",
           "-f", str(ROOT / "deploy" / "Dockerfile"), "-t", tag, str(context)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"image: {' '.join(cmd)} failed:\n{p.stdout}{p.stderr}")
    image_id = p.stdout.strip().splitlines()[-1]
    if oci_archive is not None:
        if oci_archive.exists():
            oci_archive.unlink()
        subprocess.run(["buildah", "push", "--quiet", tag, f"oci-archive:{oci_archive}:{tag}"], env=env,
                       check=True, capture_output=True)
    return image_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", default=DEFAULT_TAG)
    ap.add_argument("--storage", type=Path, help="a private containers-storage directory (vfs)")
    ap.add_argument("--oci-archive", type=Path, help="also write the image to this OCI archive")
    args = ap.parse_args(argv)
    image_id = build(args.tag, args.storage, args.oci_archive)
    size = sum(p.lstat().st_size for p in (ROOT / "build" / "image" / "rootfs").rglob("*") if not p.is_dir())
    print(f"image {args.tag} ({image_id[:12]}): FROM scratch, {size / 1e6:.1f} MB of bundle"
          + (f"; OCI archive {args.oci_archive}" if args.oci_archive else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
