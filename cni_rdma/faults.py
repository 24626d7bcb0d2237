"""Test-only fault injection: fail an ADD right after a named step, to prove the rollback.

`CNI_RDMA_TEST_FAULT=<step>` in a plugin's environment makes `point(<step>)` raise; it is read once
at import and each point costs one string comparison. The steps, in ADD order:
  macvlan, ipvlan: "made" (child link in the pod under its temp name, not yet renamed), "created"
                   (renamed, cni_rdma.childlink), "ipam" (IPAM ADD done),
                   "addresses", "routes" (cni_rdma.ipconfig), "result" (just before the result)
  sriov:           plugins.sriov.sriov.ADD_STEPS: "recorded", "pf", "moved", "created", "ipam",
                   "addresses", "routes", "result"
(`grep -rn "faults.point" cni_rdma plugins` lists them; tests/unit/test_sriov_commands.py walks sriov's.)
Real failures (name clash, bad route, DAD, exhausted range) are tested too; this covers the steps
that the kernel cannot be made to fail on demand.

`CNI_RDMA_TEST_FAULT=<step>*N` is a transient fault instead: the first N `transient(<step>)` calls
of the process answer True (the caller then acts as if the kernel said EBUSY), the later ones False;
it proves a retry loop. `CNI_RDMA_TEST_FAULT=<step>!kill` makes `point(<step>)` SIGKILL its own process
(a kubelet timeout at exactly that step): proves that DEL finds what a killed call left.
`<step>!stop` stops it there (SIGSTOP) instead: a test waits for the stop, a handshake, and kills it then.
host-local's store has points inside its lock: "locked", "reserved", "last", "indexed", "released".
"""
import posix

from . import paths
from .errors import INTERNAL, CniError

_STEP = paths.getenv("CNI_RDMA_TEST_FAULT", "")
_TRANSIENT = _STEP.rpartition("*")
_left = {_TRANSIENT[0]: int(_TRANSIENT[2])} if _TRANSIENT[1] and _TRANSIENT[2].isdigit() else {}


def point(step: str) -> None:
    if _STEP and _STEP.startswith(step):
        if _STEP == step:
            raise CniError(INTERNAL, f"injected test fault after step {step!r}")
        if _STEP in (step + "!kill", step + "!stop"):
            import signal

            posix.kill(posix.getpid(), signal.SIGKILL if _STEP.endswith("!kill") else signal.SIGSTOP)


def transient(step: str) -> bool:
    """Whether this attempt at `step` should fail as a transient error (see the module docstring)."""
    if _left.get(step, 0) <= 0:
        return False
    _left[step] -= 1
    return True
