"""Test-only fault injection: fail an ADD right after a named step, to prove the rollback.

`CNI_RDMA_TEST_FAULT=<step>` in a plugin's environment makes `point(<step>)` raise; it is read once
at import and each point costs one string comparison. Steps: "created" (link in the pod),
"ipam" (IPAM ADD done), "addresses", "routes" (ipconfig), "result" (just before the result).
Real failures (name clash, bad route, DAD, exhausted range) are tested too; this covers the steps
that the kernel cannot be made to fail on demand.
"""
import os

from .errors import CniError, INTERNAL

_STEP = os.environ.get("CNI_RDMA_TEST_FAULT", "")


def point(step: str) -> None:
    if _STEP and _STEP == step:
        raise CniError(INTERNAL, f"injected test fault after step {step!r}")
