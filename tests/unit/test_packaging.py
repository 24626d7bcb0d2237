"""pyproject.toml: a build system, package discovery that ships every plugin subpackage, one source of pins."""
from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_build_system_is_declared():
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"


def test_every_package_is_discovered():
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [".".join(p.parent.relative_to(ROOT).parts) for d in ("cni_rdma", "plugins", "ipam")
                for p in (ROOT / d).rglob("__init__.py")]
    assert "plugins.sriov" in packages and "ipam.host_local" in packages
    missed = [p for p in packages if not any(fnmatch.fnmatchcase(p, pat) for pat in include)]
    assert not missed, f"pyproject's package discovery misses {missed}"


def test_one_source_of_pins():
    """The dev extra is read from requirements-dev.txt (what `make dev` installs): nothing to keep in sync."""
    assert "optional-dependencies" in PYPROJECT["project"]["dynamic"]
    assert "optional-dependencies" not in PYPROJECT["project"]
    dev = PYPROJECT["tool"]["setuptools"]["dynamic"]["optional-dependencies"]["dev"]
    assert dev == {"file": ["requirements-dev.txt"]}
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements-dev.txt").read_text().splitlines()]
    assert all("==" in p for p in pins if p), "every dev dependency is pinned"
    assert any(p.startswith("ruff==") for p in pins) and any(p.startswith("mypy==") for p in pins)
