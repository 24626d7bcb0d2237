"""Helpers shared by the unit tests."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_source_as(name: str, path: Path) -> ModuleType:
    """Run the module at `path` under the name `name` (e.g. as the launcher freezes our stand-ins for standard
    modules: cni_rdma/light_io.py as `io`), without putting it in sys.modules."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
