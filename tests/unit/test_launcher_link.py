"""tools/build_bundle.py: how the launcher links libpython (CPython's deep-frozen modules as marshalled code)."""
from __future__ import annotations

import _imp
import marshal
import sys
import sysconfig
from pathlib import Path

import pytest

from tools.build_bundle import deepfrozen_modules, marshalled_deepfrozen

# the two modules the interpreter imports under another name than their file's
IMPORTED_AS = {"importlib._bootstrap": "_frozen_importlib",
               "importlib._bootstrap_external": "_frozen_importlib_external"}
ARCHIVE = Path(sysconfig.get_config_var("LIBPL") or "/nonexistent") / (sysconfig.get_config_var("LIBRARY") or "-")


@pytest.mark.skipif(sys.version_info[:2] != (3, 11) or not ARCHIVE.is_file(),
                    reason="the bundle links a static libpython 3.11: make build needs it, test-frozen runs it")
def test_each_deep_frozen_module_is_marshalled_as_the_interpreter_froze_it():
    modules = deepfrozen_modules(ARCHIVE)
    assert {"importlib__bootstrap", "importlib__bootstrap_external", "os", "posixpath"} <= set(modules)
    code = marshalled_deepfrozen(modules)
    assert code is not None
    assert set(code) == set(modules) - {"frozen_only"}  # __hello_only__: no original name, left out
    for symbol, data in code.items():
        loaded = marshal.loads(data)
        # the module it is, from its own file name ("<frozen importlib._bootstrap>"), not from the build's mapping
        origin = loaded.co_filename.removeprefix("<frozen ").removesuffix(">")
        assert origin.replace(".", "_") == symbol
        assert loaded == _imp.get_frozen_object(IMPORTED_AS.get(origin, origin)), symbol


def test_without_importlibs_code_nothing_is_unlinked():
    assert marshalled_deepfrozen([]) is None
    assert marshalled_deepfrozen(["os", "posixpath"]) is None
