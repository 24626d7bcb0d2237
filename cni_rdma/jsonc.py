"""json.loads / json.dumps for the hot path, over _json (the C half of json) alone.

`import json` costs ~5.9 ms of a frozen plugin's start (it pulls re, enum, collections, functools...) while `_json`
costs ~0.2 ms, and every CNI call parses stdin and prints a result. The output is byte for byte json.dumps' with
the same arguments (the non-indented form is json's own C encoder; the indented one a small writer of what
json.encoder's Python writer emits, cni_rdma/jsonc_indent.py), and loads returns what json.loads returns. Input
json.loads refuses, or that needs its encoding detection (a BOM, UTF-16/32), goes to json itself, imported there
(a cold path): its error is json's own, message and position included. tests/unit/test_jsonc.py checks all of it
against json.
"""
import _json

TYPE_CHECKING = False  # annotations only: importing typing costs ~2 ms on every plugin call
if TYPE_CHECKING:
    from typing import Any, Optional, Union

_SPACE = " \t\n\r"  # json.decoder.WHITESPACE: what json.loads skips around the value


class _ScanContext:
    """The attributes _json.make_scanner reads: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


# typeshed wants a JSONDecoder; the C scanner reads only the attributes _ScanContext has
_scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
_NOT_JSON = object()


def _needs_detection(data: "Union[bytes, bytearray]") -> bool:
    """json.detect_encoding would pick something other than UTF-8: a BOM, or a NUL in the first two bytes
    (UTF-16/32). Conservative: a NUL there in a 3-byte input (json reads it as UTF-8) also goes to json."""
    return b"\x00" in data[:2] or data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:3] == b"\xef\xbb\xbf"


def try_loads(data: "Union[str, bytes, bytearray]", default: "Any" = None) -> "Any":
    """json.loads(data), or `default` when json.loads would raise. Imports json only for a BOM or UTF-16/32."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            return default  # json.loads refuses a str with a BOM
        s = data
    elif isinstance(data, (bytes, bytearray)):
        if _needs_detection(data):
            import json  # deferred: a BOM or UTF-16/32 input is rare; json decodes it as json.loads does

            try:
                return json.loads(data)
            except (ValueError, RecursionError):
                return default
        try:
            s = data.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
        except UnicodeDecodeError:
            return default
    else:
        return default
    try:
        obj, end = _scan(s, len(s) - len(s.lstrip(_SPACE)))
    except Exception:
        # StopIteration: no value at all. A syntax error: the C scanner builds json.decoder.JSONDecodeError only
        # when json.decoder is already imported (3.11 looks it up in sys.modules), else a SystemError. Either
        # way json itself tells the error (loads).
        return default
    if s[end:].strip(_SPACE):
        return default  # "Extra data"
    return obj


def loads(data: "Union[str, bytes, bytearray]") -> "Any":
    """json.loads(data): the same value, or the same exception (json.JSONDecodeError is a ValueError)."""
    obj = try_loads(data, _NOT_JSON)
    if obj is _NOT_JSON:
        import json  # deferred: only input json refuses gets here; json raises its own error for it

        return json.loads(data)
    return obj


quote = _json.encode_basestring_ascii  # json.dumps of a str (ensure_ascii, json's default)


def _default(o: "Any") -> "Any":
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")  # json's message


def dumps(obj: "Any", *, sort_keys: bool = False, separators: "Optional[tuple[str, str]]" = None,
          indent: "Union[int, str, None]" = None) -> str:
    """json.dumps(obj, sort_keys=..., separators=..., indent=...), byte for byte (ensure_ascii, allow_nan)."""
    if isinstance(obj, str):
        return quote(obj)
    if indent is not None:
        # The indented writer is its own module: no plugin call asks for an indent, and each would otherwise
        # create its class for nothing (~0.07M instructions).
        from .jsonc_indent import Indented

        item_sep, key_sep = separators or (",", ": ")
        out: list[str] = []
        Indented(indent, item_sep, key_sep, sort_keys).write(obj, 0, out)
        return "".join(out)
    item_sep, key_sep = separators or (", ", ": ")
    # json.encoder's own arguments: markers (circular check), default, string encoder, indent, key and item
    # separators, sort_keys, skipkeys, allow_nan
    encode = _json.make_encoder({}, _default, quote, None, key_sep, item_sep, sort_keys, False, True)
    return "".join(encode(obj, 0))
