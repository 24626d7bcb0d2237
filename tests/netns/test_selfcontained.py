"""The frozen bundle needs nothing from the node but a Linux kernel (issue 19).

The bundle is installed by its own installer (`cni-rdma install --destdir ROOT`, exactly as the DaemonSet's
init container does) into an otherwise empty directory, and every plugin is run chrooted into it, in a
private mount namespace holding only /proc and /run/netns (bind-mounted) and a fresh sysfs of the node netns:
VERSION of every type, then a macvlan + host-local ADD, CHECK and DEL against a real pod netns. Once more
with that root laid over a debootstrap'd Debian bullseye userland (glibc 2.31, older than the build
machine's): its /etc/ld.so.cache and libc are there to be picked up by mistake, and the loader's own trace
(LD_DEBUG) shows every object it maps comes from the bundle. Frozen pass only (`make test-frozen`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cni_rdma.installer import bundled_loader, interp_segment
from cni_rdma.version import SUPPORTED
from tests import topology
from tests.bundle_root import BIN, LIB, TYPES, add_check_del, bundle_arch, bundle_exe, cni_env, frozen_only
from tests.bundle_root import install_root
from tests.bundle_root import is_frozen  # noqa: F401  (frozen_only's condition)
from tests.bundle_root import run_in_root

pytestmark = frozen_only


@pytest.fixture(scope="module")
def bullseye() -> Path:
    from tools import rootfs

    return rootfs.ensure("bullseye", bundle_arch()[0])  # arm64 (tools/arm64.py): debootstrap under qemu-user


def _roots(kind: str, tmp_path: Path, request) -> tuple[Path, Path | None]:
    root = install_root(tmp_path / "root")
    return root, (request.getfixturevalue("bullseye") if kind == "bullseye" else None)


def test_the_root_holds_nothing_but_the_bundle(tmp_path):
    root = install_root(tmp_path / "root")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())
    assert files and all(f.startswith(LIB.lstrip("/") + "/") or f.startswith(BIN.lstrip("/") + "/")
                         for f in files), files
    assert sorted(os.listdir(root / BIN.lstrip("/"))) == TYPES
    # The installed executable asks for the bundled loader at its installed path (the build's own copy asks
    # for the one in build/): the installer rewrote PT_INTERP in the copy.
    loader = bundled_loader(str(bundle_exe().parent))
    assert loader == {"amd64": "ld-linux-x86-64.so.2", "arm64": "ld-linux-aarch64.so.1"}[bundle_arch()[0]]
    assert interp_segment(str(root / LIB.lstrip("/") / "cni-rdma"))[2] == f"{LIB}/_internal/lib/{loader}"
    assert interp_segment(str(bundle_exe()))[2] == f"{bundle_exe().parent}/_internal/lib/{loader}"


def test_a_host_program_does_not_start_in_the_empty_root(node, tmp_path):
    # The premise: the root offers no loader and no libc of its own. A dynamically linked host program copied
    # in fails to exec; the bundle (next tests) does not.
    root = install_root(tmp_path / "root")
    shutil.copy2("/bin/true", root / "true")
    p = run_in_root(root, node, ["/true"], {})
    assert p.returncode != 0 and b"No such file or directory" in p.stderr, p


@pytest.mark.parametrize("kind", ["empty", "bullseye"])
def test_every_type_answers_version_in_the_root(kind, node, tmp_path, request):
    root, lower = _roots(kind, tmp_path, request)
    for t in TYPES:
        p = run_in_root(root, node, [f"{BIN}/{t}"], cni_env("VERSION"), lower=lower, tmp=tmp_path)
        assert p.returncode == 0, (t, p)
        assert json.loads(p.stdout)["supportedVersions"] == list(SUPPORTED)
        assert p.stderr == b""
    p = run_in_root(root, node, [f"{BIN}/host-local", "--version"], {}, lower=lower, tmp=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith(b"host-local (cni-rdma) version"), p


def test_the_loader_maps_only_bundled_objects_over_bullseye(node, tmp_path, bullseye):
    # bullseye's own glibc 2.31 and its /etc/ld.so.cache are in this root: the loader's trace shows which
    # files it maps. Every one is in the bundle: the launcher (libpython linked in) and the extension modules.
    assert (bullseye / "usr/lib" / bundle_arch()[1] / "libc-2.31.so").exists()
    root = install_root(tmp_path / "root")
    # bullseye's env sets LD_DEBUG for our program only (not for the host tools that set up the root).
    p = run_in_root(root, node, ["/usr/bin/env", "LD_DEBUG=libs", f"{BIN}/macvlan"], cni_env("VERSION"),
                     lower=bullseye, tmp=tmp_path)
    assert p.returncode == 0, p
    inits = [line.split("calling init:", 1)[1].strip() for line in p.stderr.decode().splitlines()
             if "calling init:" in line]
    assert any(i.endswith("/libc.so.6") for i in inits), inits
    assert all(i.startswith(f"{LIB}/") for i in inits), inits


@pytest.mark.parametrize("kind", ["empty", "bullseye"])
def test_macvlan_host_local_add_check_del_in_the_root(kind, node, pod, tmp_path, request):
    root, lower = _roots(kind, tmp_path, request)

    def call(command: str, config: dict) -> subprocess.CompletedProcess:
        return run_in_root(root, node, [f"{BIN}/macvlan"], cni_env(command, pod), json.dumps(config).encode(),
                           lower=lower, tmp=tmp_path)

    add_check_del(call, root, pod, "10.219.0", "selfcontained")


def test_a_foreign_ipam_gets_the_callers_env_unchanged(node, pod, tmp_path):
    # PyInstaller's bootloader re-exec'd itself with LD_LIBRARY_PATH at the bundle and _PYI_* markers; our
    # launcher (tools/launcher.c) sets no variable at all, so a delegated IPAM (here a shell script, dynamically
    # linked against this machine's glibc) sees the caller's environment, the node's LD_LIBRARY_PATH included.
    ipam_dir = tmp_path / "ipam"
    ipam_dir.mkdir()
    dump = tmp_path / "env.json"
    script = ipam_dir / "envdump"
    script.write_text("#!/bin/sh\n"
                      f"env -0 > {dump}\n"
                      'echo \'{"cniVersion":"1.0.0","ips":[{"address":"10.218.0.5/24"}]}\'\n')
    script.chmod(0o755)
    conf = {"cniVersion": "1.0.0", "name": "envdump", "type": "macvlan", "master": "eth0",
            "ipam": {"type": "envdump"}}
    r = topology.run_plugin("macvlan", "ADD", conf, netns=pod.path, node=node, path=str(ipam_dir),
                            container_id="selfcontained-env", extra_env={"LD_LIBRARY_PATH": "/node/own"})
    assert r.code == 0, r.stdout + r.stderr
    env = dict(kv.split("=", 1) for kv in dump.read_text().split("\0") if kv)
    assert not [k for k in env if k.startswith("_PYI_")], env
    assert env.get("LD_LIBRARY_PATH") == "/node/own" and "LD_LIBRARY_PATH_ORIG" not in env
    r = topology.run_plugin("macvlan", "DEL", conf, netns=pod.path, node=node, path=str(ipam_dir),
                            container_id="selfcontained-env")
    assert r.code == 0, r.stdout + r.stderr


def _abi_tag(path: Path) -> tuple[int, int, int]:
    """The kernel version in an ELF's NT_GNU_ABI_TAG note: the oldest Linux this glibc was built to run on."""
    import struct

    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "64-bit little-endian ELF expected"
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        pos, end = p_offset, p_offset + p_filesz
        while p_type == 4 and pos + 12 <= end:  # PT_NOTE
            namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
            name = data[pos + 12:pos + 12 + namesz]
            desc = pos + 12 + (namesz + 3) // 4 * 4
            if name == b"GNU\0" and ntype == 1:  # NT_GNU_ABI_TAG: os, major, minor, patch
                os_id, major, minor, patch = struct.unpack_from("<IIII", data, desc)
                assert os_id == 0  # ELF_NOTE_OS_LINUX
                return major, minor, patch
            pos = desc + (descsz + 3) // 4 * 4
    raise AssertionError(f"{path}: no NT_GNU_ABI_TAG note")


def test_readme_states_the_kernel_floor_of_the_bundled_glibc():
    # The node requirement README promises is the figure the bundled libc carries (`file` says the same:
    # "for GNU/Linux 3.2.0"): that libc refuses to start on anything older.
    major, minor, _ = _abi_tag(bundle_exe().parent / "_internal" / "lib" / "libc.so.6")
    readme = (topology.ROOT / "README.md").read_text()
    assert f"Linux ≥ {major}.{minor}, nothing else" in readme


def test_licences_name_every_bundled_binary():
    bundle = bundle_exe().parent
    listed = {line.split(":", 1)[0]: line for line in (bundle / "LICENSES").read_text().splitlines() if ": " in line}
    binaries = ["cni-rdma", *(p.name for p in (bundle / "_internal").iterdir() if ".so" in p.name),
                *(p.name for p in (bundle / "_internal" / "lib").iterdir())]
    for name in binaries:
        assert name in listed, f"LICENSES misses {name}"
        if "see licenses/" in listed[name]:  # no SPDX name in tools/build_bundle.py: its copyright file
            assert (bundle / listed[name].split("see ", 1)[1].split(";", 1)[0]).is_file(), listed[name]
    assert (bundle / "licenses" / "libc6.copyright").is_file()


def test_install_refuses_a_lib_dir_too_long_for_the_loader_path(tmp_path):
    lib = "/opt/" + "x" * 600
    p = subprocess.run([str(bundle_exe().parent / "cni-rdma"), "install", f"--destdir={tmp_path}", f"--lib-dir={lib}",
                        f"--bin-dir={BIN}"], capture_output=True, text=True)
    assert p.returncode == 1
    assert "does not fit" in p.stderr and "shorter --lib-dir" in p.stderr, p.stderr
    assert os.listdir(tmp_path) == []  # refused before anything changed
