"""CNI_ARGS: "K=V;K=V" (SPEC.md "Parameters"), with Go's LoadArgs semantics for IgnoreUnknown."""
from __future__ import annotations

from .errors import INVALID_ENV, CniError

# Keys every caller may send: kubelet/Multus always pass the pod identity.
COMMON_KEYS = frozenset({"IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID",
                         "K8S_POD_UID"})


def _bool(value: str) -> bool:
    low = value.lower()
    if low in ("1", "true"):
        return True
    if low in ("0", "false"):
        return False
    raise CniError(INVALID_ENV, f'CNI_ARGS: invalid boolean "IgnoreUnknown={value}" (use 1, true, 0 or false)')


def parse(raw: str, known: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """Parse CNI_ARGS; unknown keys are an error unless IgnoreUnknown is true (as in Go)."""
    if not raw:
        return {}
    out: dict[str, str] = {}
    unknown: list[str] = []
    allowed = COMMON_KEYS | set(known)
    for pair in raw.split(";"):
        kv = pair.split("=")
        if len(kv) != 2 or not kv[0]:
            raise CniError(INVALID_ENV, f"CNI_ARGS: invalid pair {pair!r} (want KEY=VALUE separated by ';')")
        key, value = kv
        if key not in allowed:
            unknown.append(pair)
            continue
        out[key] = value
    if unknown and not _bool(out.get("IgnoreUnknown", "false")):
        raise CniError(INVALID_ENV, f"CNI_ARGS: unknown args {unknown!r} (set IgnoreUnknown=1 to ignore them)")
    return out
