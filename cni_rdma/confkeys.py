"""Typed reads of plugin-specific config keys: a wrong type is a code-7 error naming the key.

Go decodes these with encoding/json and answers a type mismatch with a generic code-999 "failed to
load netconf"; here the message names the key and the expected type.
"""
from __future__ import annotations

import json

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any

from .errors import config_error


def q(value: Any) -> str:
    """A value quoted for a message the way Go's %q / JSON shows it: "eth0", 5, true."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _get(raw: dict, key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def get_str(raw: dict, key: str, default: str = "") -> str:
    v = _get(raw, key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise config_error(key, f"expected a string, got {q(v)}")
    return v


def get_int(raw: dict, key: str, default: int = 0, lo: int | None = None, hi: int | None = None) -> int:
    v = _get(raw, key)
    if v is None:
        return default
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise config_error(key, f"expected an integer, got {q(v)}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise config_error(key, f"{v} is out of range [{lo if lo is not None else ''}, {hi if hi is not None else ''}]")
    return v


def get_bool(raw: dict, key: str, default: bool = False) -> bool:
    v = _get(raw, key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise config_error(key, f"expected true or false, got {q(v)}")
    return v


def get_choice(raw: dict, key: str, choices: tuple[str, ...], default: str, what: str) -> str:
    """A string that must be one of choices ("" means the default); the error names the value."""
    v = get_str(raw, key) or default
    if v not in choices:
        raise config_error(key, f"unknown {what} {q(v)} (want one of {', '.join(choices)})")
    return v
