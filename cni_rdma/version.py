"""CNI versions this project speaks (SPEC.md "Version considerations") and build identity.

Imported on every call, VERSION included (cni_rdma/early.py): no module imports here beyond sys.
"""
import sys

SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"
BUILD_VERSION = "0.1.0"


def parse(v: str) -> "tuple[int, int, int]":
    """'1.0.0' -> (1, 0, 0); a malformed version is a decode failure as in Go's version.ParseVersion."""
    from .errors import DECODE_FAILURE, CniError

    parts = v.split(".")
    if not 1 <= len(parts) <= 3:
        raise CniError(DECODE_FAILURE, f"invalid version {v!r}: the version is empty or has too many parts")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise CniError(DECODE_FAILURE, f"invalid version {v!r}: parts must be integers") from None
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


def at_least(v: str, minimum: str) -> bool:
    return parse(v) >= parse(minimum)


def print_build_version(name: str) -> int:
    # Like rdma-cni's --version: build version, commit and the CNI versions spoken.
    try:
        from . import _build  # type: ignore[attr-defined]  # written by the packaging step
        commit = _build.COMMIT
    except ImportError:
        commit = "source"
    sys.stdout.write(f"{name} (cni-rdma) version {BUILD_VERSION}, commit {commit}\n")
    sys.stdout.write(f"CNI protocol versions supported: {', '.join(SUPPORTED)}\n")
    return 0


def version_json() -> str:
    """json.dumps({"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED)}), without json's import cost."""
    versions = ", ".join(f'"{v}"' for v in SUPPORTED)
    return f'{{"cniVersion": "{CURRENT}", "supportedVersions": [{versions}]}}'
