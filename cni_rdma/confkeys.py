"""The config contract every plugin builds its `load_conf(req)` on: typed reads of config keys.

A wrong type is a code-7 error naming the key. Go decodes these with encoding/json and answers a type
mismatch with a generic code-999 "failed to load netconf"; here the message names the key and the
expected type. One reader per kind of value, shared by every plugin:

    get_str/get_int/get_opt_int/get_bool/get_choice(raw, "a.b.key", ...)   dotted paths into the config
    as_int(value, key, lo, hi)       the one integer check (bool is not an integer; 5.0 is 5)
    parse_mac(value, key) / mac(req) one MAC parser; one precedence: "mac" < CNI_ARGS MAC < runtimeConfig.mac
    valid_attachments(raw)           GC's keep-list, ONE meaning for every plugin: absent -> None (release
                                     nothing), wrong type -> code 7, else {(containerID, ifname)}
"""
from __future__ import annotations

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any

from . import jsonc
from .errors import config_error

VALID_ATTACHMENTS = "cni.dev/valid-attachments"
MAC_KEYS = ("mac", "CNI_ARGS MAC", "runtimeConfig.mac")  # the labels errors use, in precedence order
_HEX = frozenset("0123456789abcdefABCDEF")


def q(value: Any) -> str:
    """A value quoted for a message the way Go's %q / JSON shows it: "eth0", 5, true."""
    try:
        return jsonc.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _get(raw: dict, key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _typed(raw: dict, key: str, default: Any, kind: type, expected: str) -> Any:
    v = _get(raw, key)
    if v is None:
        return default
    if not isinstance(v, kind):
        raise config_error(key, f"expected {expected}, got {q(v)}")
    return v


def get_str(raw: dict, key: str, default: str = "") -> str:
    return _typed(raw, key, default, str, "a string")


def as_int(v: Any, key: str, lo: int | None = None, hi: int | None = None) -> int:
    """The one integer check: bool is not an integer, an integral float (5.0) is; [lo, hi] inclusive."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise config_error(key, f"expected an integer, got {q(v)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise config_error(key, f"{v} is out of range [{lo if lo is not None else ''}, {hi if hi is not None else ''}]")
    return v


def get_int(raw: dict, key: str, default: int = 0, lo: int | None = None, hi: int | None = None) -> int:
    v = _get(raw, key)
    return default if v is None else as_int(v, key, lo, hi)


def get_opt_int(raw: dict, key: str, lo: int | None = None, hi: int | None = None) -> int | None:
    """Like get_int, but None when the key is absent (a setting the plugin must leave untouched)."""
    v = _get(raw, key)
    return None if v is None else as_int(v, key, lo, hi)


def get_bool(raw: dict, key: str, default: bool = False) -> bool:
    return _typed(raw, key, default, bool, "true or false")


def get_choice(raw: dict, key: str, choices: tuple[str, ...], default: str, what: str) -> str:
    """A string that must be one of choices ("" means the default); the error names the value."""
    v = get_str(raw, key) or default
    if v not in choices:
        raise config_error(key, f"unknown {what} {q(v)} (want one of {', '.join(choices)})")
    return v


def parse_mac(value: Any, key: str) -> str:
    """A unicast Ethernet MAC (xx:xx:xx:xx:xx:xx or xx-xx-..., any case) as lowercase with colons."""
    if not isinstance(value, str):
        raise config_error(key, f"expected a MAC address string, got {q(value)}")
    sep = value[2:3]
    parts = value.split(sep) if sep in (":", "-") else []
    if len(parts) != 6 or any(len(p) != 2 or not _HEX.issuperset(p) for p in parts):
        raise config_error(key, f"{q(value)} is not a MAC address (want xx:xx:xx:xx:xx:xx)")
    mac = ":".join(parts).lower()
    if int(mac[:2], 16) & 1:
        raise config_error(key, f"{q(value)} is a multicast address; an interface needs a unicast MAC")
    if mac == "00:00:00:00:00:00":
        raise config_error(key, "00:00:00:00:00:00 is not a usable MAC address")
    return mac


def mac(req: Any) -> str:
    """The MAC asked for, "" when none: config "mac" < CNI_ARGS MAC= < runtimeConfig.mac (Go and sriov-cni)."""
    out = ""
    for key, value in zip(MAC_KEYS, (req.raw.get("mac"), req.args({"MAC"}).get("MAC") if req.cni_args else None,
                                     req.conf.runtime_config.get("mac"))):
        if value not in (None, ""):
            out = parse_mac(value, key)
    return out


def valid_attachments(raw: dict) -> set[tuple[str, str]] | None:
    """GC's keep-list: None when the key is absent (release nothing), else {(containerID, ifname)}.

    The same meaning in every plugin: without the list a GC cannot tell a leak from a live attachment,
    so it releases nothing; a list of anything but {containerID, ifname} objects is code 7.
    """
    x = raw.get(VALID_ATTACHMENTS)
    if x is None:
        return None
    if not isinstance(x, list):
        raise config_error(VALID_ATTACHMENTS, "expected a list of {containerID, ifname} objects")
    out = set()
    for i, d in enumerate(x):
        if not isinstance(d, dict):
            raise config_error(f"{VALID_ATTACHMENTS}[{i}]", "expected an object")
        cid, ifname = d.get("containerID"), d.get("ifname")
        if not isinstance(cid, str) or not cid:
            raise config_error(f"{VALID_ATTACHMENTS}[{i}].containerID", "expected a non-empty string")
        if not isinstance(ifname, str) or not ifname:
            raise config_error(f"{VALID_ATTACHMENTS}[{i}].ifname", "expected a non-empty string")
        out.add((cid, ifname))
    return out


def gc_keep(req: Any) -> set[tuple[str, str]] | None:
    """GC's keep-list of this request, or None, said once in the log, when there is none: release nothing."""
    keep = valid_attachments(req.raw)
    if keep is None:
        req.log.info(f"GC: no {VALID_ATTACHMENTS} in the config; releasing nothing")
    return keep
