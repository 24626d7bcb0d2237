"""jsonc.dumps with an indent: json.encoder's Python writer, byte for byte (tests/unit/test_jsonc.py).

Apart from cni_rdma/jsonc.py, which imports it only when asked for an indent: no plugin call indents its output.
"""
TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Union

from .jsonc import _default, quote

_INF = float("inf")


def _float(f: float) -> str:
    """json's floatstr (allow_nan): repr, or JavaScript's names for the non-finite values."""
    if f != f:
        return "NaN"
    if f == _INF:
        return "Infinity"
    if f == -_INF:
        return "-Infinity"
    return float.__repr__(f)  # a float subclass is written as its float


class Indented:
    """json.encoder._make_iterencode with an indent (the C encoder has none in 3.11): same order of type checks,
    same separators and newlines, same errors (circular reference, key types, unserializable objects)."""

    def __init__(self, indent: "Union[int, str]", item_sep: str, key_sep: str, sort_keys: bool) -> None:
        self.indent = indent if isinstance(indent, str) else " " * indent
        self.item_sep, self.key_sep, self.sort_keys = item_sep, key_sep, sort_keys
        self.markers: dict[int, object] = {}

    def _mark(self, o: object) -> None:
        if id(o) in self.markers:
            raise ValueError("Circular reference detected")
        self.markers[id(o)] = o

    def write(self, o: "Any", level: int, out: list[str]) -> None:
        if isinstance(o, str):
            out.append(quote(o))
        elif o is None:
            out.append("null")
        elif o is True:
            out.append("true")
        elif o is False:
            out.append("false")
        elif isinstance(o, int):
            out.append(int.__repr__(o))  # an int subclass (IntEnum) is written as its int
        elif isinstance(o, float):
            out.append(_float(o))
        elif isinstance(o, (list, tuple)):
            self._list(o, level, out)
        elif isinstance(o, dict):
            self._dict(o, level, out)
        else:
            self._mark(o)
            self.write(_default(o), level, out)
            del self.markers[id(o)]

    def _list(self, lst: "list | tuple", level: int, out: list[str]) -> None:
        if not lst:
            out.append("[]")
            return
        self._mark(lst)
        inner = "\n" + self.indent * (level + 1)
        out.append("[" + inner)
        for i, value in enumerate(lst):
            if i:
                out.append(self.item_sep + inner)
            self.write(value, level + 1, out)
        out.append("\n" + self.indent * level + "]")
        del self.markers[id(lst)]

    def _dict(self, dct: dict, level: int, out: list[str]) -> None:
        if not dct:
            out.append("{}")
            return
        self._mark(dct)
        inner = "\n" + self.indent * (level + 1)
        out.append("{" + inner)
        for i, (key, value) in enumerate(sorted(dct.items()) if self.sort_keys else dct.items()):
            if i:
                out.append(self.item_sep + inner)
            out.append(quote(_key(key)) + self.key_sep)
            self.write(value, level + 1, out)
        out.append("\n" + self.indent * level + "}")
        del self.markers[id(dct)]


def _key(key: "Any") -> str:
    """A dict key as json writes it (skipkeys off): str, float, bool, None and int keys become strings."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _float(key)
    if key is True or key is False or key is None:
        return "true" if key is True else "false" if key is False else "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")
