"""Host tier: real namespaces and links on this machine's kernel. Needs root (CI is root)."""
import os

import pytest

if os.geteuid() != 0:
    pytest.skip("host tier needs root to create network namespaces", allow_module_level=True)

# `node` and `pod` come from tests/conftest.py.
