"""DEVELOPERS.md's Layout table cannot drift from the tree: every product module, every tests/ entry and every
top-level directory is named in it, and everything it names exists.

A row's first column lists paths in backticks; a later bare name in the same cell (`sysfs.py`) is relative
to the first path's directory; a path ending in "/" covers everything under it.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _layout_paths() -> list[str]:
    text = (ROOT / "DEVELOPERS.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names = re.findall(r"`([^`]+)`", line.split("|")[1])
        base = names[0].rsplit("/", 1)[0] + "/" if "/" in names[0].rstrip("/") else ""
        out.append(names[0])
        out += [n if "/" in n else base + n for n in names[1:]]
    return out


def _covered(path: str, named: list[str]) -> bool:
    """Named exactly, under a named directory, or by a pattern (`plugins/<type>/<type>.py`)."""
    for n in named:
        if n.endswith("/") and path.startswith(n):
            return True
        if "<type>" in n:
            m = re.fullmatch(re.escape(n).replace(re.escape("<type>"), "([a-z_]+)"), path)
            if m and len(set(m.groups())) == 1:
                return True
        elif path == n:
            return True
    return False


def test_everything_named_exists():
    for p in _layout_paths():
        assert (ROOT / p.replace("<type>", "macvlan")).exists(), f"DEVELOPERS.md Layout names {p}, which is gone"


def test_every_module_and_test_entry_is_named():
    named = _layout_paths()
    modules = [p.relative_to(ROOT).as_posix() for d in ("cni_rdma", "plugins", "ipam") for p in (ROOT / d).rglob("*.py")
               if p.name != "__init__.py" and "__pycache__" not in p.parts]
    tests = [p.relative_to(ROOT).as_posix() + ("/" if p.is_dir() else "") for p in (ROOT / "tests").iterdir()
             if p.name not in ("__init__.py", "__pycache__", "conftest.py")]
    tops = [p.name + "/" for p in ROOT.iterdir() if p.is_dir() and p.name in ("tools", "bench", "deploy")]
    missing = [m for m in modules + tests + tops if not _covered(m, named)]
    assert not missing, f"DEVELOPERS.md Layout does not name: {missing}"
