"""Compile cni_rdma/_native.c (setns, flock, crc32) as an extension module for the running interpreter.

`make dev` builds it in place (cni_rdma/_native<EXT_SUFFIX>, git-ignored) so the dev launchers and the tests
use it; the bundle does not ship it as a module: tools/launcher.c compiles the same file into the executable
as a built-in module (tools/build_bundle.launcher_command). Needs cc and the interpreter's Python.h; callers
fall back to ctypes/fcntl/zlib where the module was never built.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "cni_rdma" / "_native.c"


class ExtBuildError(Exception):
    """The extension cannot be compiled here: the message names the missing tool or header."""


def toolchain(source: str) -> tuple[str, Path]:
    """cc and the running interpreter's include dir (Python.h), to compile `source` (named in the error)."""
    cc = shutil.which("cc")
    if cc is None:
        raise ExtBuildError(f"no C compiler for {source} (make deps installs gcc)")
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").exists():
        raise ExtBuildError(f"no Python.h in {include} for {source} (the build Python's headers)")
    return cc, include


def build_native(out_dir: Path) -> Path:
    """Compile into out_dir/_native<EXT_SUFFIX> (atomically replaced) and return that path."""
    cc, include = toolchain("cni_rdma/_native.c")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}"
    tmp = out.with_name(f".{out.name}.tmp")
    p = subprocess.run([cc, "-O2", "-s", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-I", str(include),
                        "-o", str(tmp), str(SOURCE)], capture_output=True, text=True)
    if p.returncode != 0:
        raise ExtBuildError(f"compiling cni_rdma/_native.c failed: {p.stderr.strip()[-2000:]}")
    tmp.replace(out)
    return out


if __name__ == "__main__":
    try:
        print(build_native(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "cni_rdma"))
    except ExtBuildError as e:
        sys.exit(f"build_ext: {e}")
