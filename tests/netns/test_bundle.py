"""Every plugin type answers from CNI_TEST_BIN_DIR (dev launchers or the frozen bundle), and the frozen bundle is
complete and installable. Runs in both passes of `make test`; the bundle-only checks skip on dev launchers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cni_rdma.registry import PLUGINS
from cni_rdma.version import SUPPORTED
from tests import topology

ROOT = topology.ROOT
TYPES = sorted(PLUGINS)


def _exe() -> Path:
    return Path(os.path.realpath(topology.bin_dir() / TYPES[0]))


def _frozen() -> bool:
    with open(_exe(), "rb") as f:
        return f.read(4) == b"\x7fELF"


frozen_only = pytest.mark.skipif("not _frozen()", reason="CNI_TEST_BIN_DIR holds dev launchers, not the bundle")


@pytest.mark.parametrize("plugin", TYPES)
def test_every_type_loads_and_answers_version(plugin):
    # main.py imports the plugin module before VERSION is answered: a module missing from the bundle fails here.
    r = topology.run_plugin(plugin, "VERSION", b"")
    assert r.code == 0, r.stdout + r.stderr
    assert r.json["supportedVersions"] == list(SUPPORTED)
    assert r.stderr == ""


@pytest.mark.parametrize("plugin", TYPES)
def test_every_type_answers_dash_dash_version(plugin):
    p = subprocess.run([str(topology.bin_dir() / plugin), "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    first, second = p.stdout.splitlines()[:2]
    assert first.startswith(f"{plugin} (cni-rdma) version ")
    commit = first.rsplit("commit ", 1)[1]
    if _frozen():
        assert commit not in ("", "source", "unknown"), first  # the bundle carries the real commit
    assert second == f"CNI protocol versions supported: {', '.join(SUPPORTED)}"


def _source_modules() -> set[str]:
    mods = set()
    for pkg in ("cni_rdma", "plugins", "ipam"):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            mods.add(".".join(parts))
    return mods


@frozen_only
def test_bundle_holds_every_source_module():
    from PyInstaller.archive.readers import pkg_archive_contents

    contents = set(pkg_archive_contents(str(_exe())))
    missing = sorted(_source_modules() - contents)
    assert not missing, f"the frozen bundle misses modules (rebuild: make build): {missing}"
    assert "cni_rdma._build" in contents
    assert not (ROOT / "cni_rdma" / "_build.py").exists(), "build info belongs in the bundle, not the source tree"


@frozen_only
def test_bundle_leaves_out_what_costs_startup():
    from PyInstaller.archive.readers import pkg_archive_contents

    contents = set(pkg_archive_contents(str(_exe())))
    for hook in ("pyi_rth_inspect", "pyi_rth_pkgutil", "pyi_rth_multiprocessing"):
        assert hook not in contents
    assert not {"pyroute2", "multiprocessing", "asyncio", "unittest"} & contents


@frozen_only
def test_install_links_refuses_go_plugin_and_uninstalls(tmp_path):
    bundle = _exe().parent
    lib, bin_dir = tmp_path / "lib" / "cni-rdma", tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "macvlan"
    go.write_bytes(b"\x7fELF pretend Go plugin")
    go.chmod(0o755)
    (bin_dir / "bridge").write_bytes(b"foreign")
    cmd = [sys.executable, str(ROOT / "tools" / "install.py"), "--bundle", str(bundle),
           "--lib-dir", str(lib), "--bin-dir", str(bin_dir)]

    refused = subprocess.run([*cmd[:2], "install", *cmd[2:]], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "Go reference plugin" in refused.stderr and "FORCE=1" in refused.stderr
    assert not lib.exists() and go.read_bytes().startswith(b"\x7fELF pretend")  # nothing changed

    done = subprocess.run([*cmd[:2], "install", *cmd[2:], "--force"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for t in TYPES:
        assert os.readlink(bin_dir / t) == str(lib / "cni-rdma")
        r = topology.run_plugin(t, "VERSION", b"")  # the dev/frozen bin dir: sanity
        assert r.code == 0
    p = subprocess.run([str(bin_dir / "host-local"), "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("host-local (cni-rdma)")
    v = subprocess.run([str(bin_dir / "macvlan")], env={"CNI_COMMAND": "VERSION"}, capture_output=True, text=True)
    assert json.loads(v.stdout)["supportedVersions"] == list(SUPPORTED)

    again = subprocess.run([*cmd[:2], "install", *cmd[2:]], capture_output=True, text=True)  # upgrade in place
    assert again.returncode == 0, again.stderr

    gone = subprocess.run([*cmd[:2], "uninstall", *cmd[2:]], capture_output=True, text=True)
    assert gone.returncode == 0, gone.stderr
    assert sorted(os.listdir(bin_dir)) == ["bridge"] and not lib.exists()
