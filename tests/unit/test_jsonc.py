"""cni_rdma/jsonc.py against json itself (the oracle): same values, same bytes out, same errors."""
import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni_rdma import jsonc
from tests.topology import ROOT

# Every JSON value json can write, plus what it writes but does not read back as itself (tuples, int and float
# keys, None/bool keys, NaN and infinities, lone surrogates, non-ASCII).
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text())
keys = st.text() | st.integers() | st.floats() | st.booleans() | st.none()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
                      | st.dictionaries(keys, inner, max_size=5), max_leaves=30)
json_text = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                         | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)
separators = st.sampled_from([None, (",", ":"), (", ", ": "), (" ,", " : ")])
indents = st.none() | st.integers(-1, 4) | st.sampled_from(["", "\t", "--"])


def _same(a, b) -> bool:
    """Equal values, NaN equal to NaN (json.loads gives a fresh nan each time)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and type(a) is type(b)


def _outcome(fn, *args, **kw):
    try:
        return "ok", fn(*args, **kw)
    except Exception as e:  # the exception's type and text are the contract
        return type(e).__name__, str(e)


@settings(max_examples=400, deadline=None)
@given(values, st.booleans(), separators, indents)
def test_dumps_is_json_dumps_byte_for_byte(obj, sort_keys, seps, indent):
    want = _outcome(json.dumps, obj, sort_keys=sort_keys, separators=seps, indent=indent)
    assert _outcome(jsonc.dumps, obj, sort_keys=sort_keys, separators=seps, indent=indent) == want


@settings(max_examples=400, deadline=None)
@given(json_text, st.sampled_from(["", " ", "\n\t\r "]))
def test_round_trip_and_loads_is_json_loads(obj, space):
    text = space + jsonc.dumps(obj) + space
    assert text == space + json.dumps(obj) + space
    for data in (text, text.encode("utf-8", "surrogatepass")):
        assert _same(jsonc.loads(data), json.loads(data))
        assert _same(jsonc.try_loads(data), json.loads(data))


BROKEN = ["", " ", "x", "{", "[1,", '{"a" 1}', '{"a": 1} x', "[1] [2]", "1 2", "nul", "tru", '"\\x"',
          '"a\nb"', '"\\ud800"', "{'a': 1}", '{"a": 1,}', "[1,]", "01", "-", "1.", "1e", "\ufeff{}",
          '{"a": NaN}', "Infinity", "-Infinity", "[-Infinity, NaN]", '{"a": 1}\x00', "\x0c{}", "[" * 100000,
          '{"a": "\\u12"}', '"\\uDFFF"', "[\x00]", "1.5e400", "-0", "0.0e-999"]
BROKEN_BYTES = [b"\xff", b'"\xff"', b'{"a": "\xc3"}', b"\xef\xbb\xbf{}", b"\xef\xbb\xbf{", '{"a": 1}'.encode("utf-16"),
                '[1]'.encode("utf-16-le"), '[1]'.encode("utf-16-be"), '{"a": 1}'.encode("utf-32"),
                '[1]'.encode("utf-32-le"), b"\x00", b"\x001", b"1\x00", b"1\x00 ", b"\xff\xfe", b"\xfe\xff1\x00",
                b"\xed\xa0\x80", b'"\xed\xa0\x80"', b"[1] ]"]


@pytest.mark.parametrize("data", BROKEN + [s.encode("utf-8", "surrogatepass") for s in BROKEN] + BROKEN_BYTES
                         + [bytearray(b"[1]"), bytearray(b"[1"), 1, None, ["[]"]])
def test_loads_refuses_as_json_does(data):
    want = _outcome(json.loads, data)
    got = _outcome(jsonc.loads, data)
    if want[0] == "ok":
        assert got[0] == "ok" and _same(got[1], want[1])
        assert _same(jsonc.try_loads(data, "default"), want[1])
    else:
        assert got == want  # same exception type and message (line, column, char)
        assert jsonc.try_loads(data, "default") == "default"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=30) | st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_loads_of_any_bytes_is_json_loads(data):
    want = _outcome(json.loads, data)
    got = _outcome(jsonc.loads, data)
    assert got[0] == want[0]
    assert _same(got[1], want[1]) if want[0] == "ok" else got == want


def test_dumps_errors_are_jsons():
    loop: list = []
    loop.append(loop)
    for obj, kw in [(loop, {}), (loop, {"indent": 2}), ({1: object()}, {}), ({1: object()}, {"indent": 1}),
                    ({(1,): 2}, {}), ({(1,): 2}, {"indent": 1}), ({"b": 1, 2: 1}, {"sort_keys": True}),
                    ({"b": 1, 2: 1}, {"sort_keys": True, "indent": 0}), (set(), {}), ([b"x"], {"indent": 2})]:
        assert _outcome(jsonc.dumps, obj, **kw) == _outcome(json.dumps, obj, **kw)


def test_dumps_of_special_floats_and_ints():
    class Big(int):
        def __repr__(self) -> str:
            return "nope"

    class F(float):
        def __repr__(self) -> str:
            return "nope"

    obj = [math.nan, math.inf, -math.inf, -0.0, 1e300, 5e-324, Big(3), F(1.5), {Big(2): F(2.5), 1.5: None}]
    for kw in ({}, {"indent": 1}, {"sort_keys": False, "separators": (",", ":")}):
        assert jsonc.dumps(obj, **kw) == json.dumps(obj, **kw)


def test_jsonc_imports_neither_json_nor_re():
    # the point of the module: a plugin's success path loads and dumps without json, re or enum
    code = ("import sys; sys.path.insert(0, %r)\nfrom cni_rdma import jsonc\n"
            "v = jsonc.loads(b'{\"a\": [1, 2.5, null, true, \"\\\\u00e9\"]}')\n"
            "jsonc.loads('[1]'); jsonc.try_loads(b'{'); jsonc.try_loads(b'[1] x'); jsonc.try_loads(b'')\n"
            "jsonc.dumps(v); jsonc.dumps(v, sort_keys=True, separators=(',', ':')); jsonc.dumps(v, indent=2)\n"
            "print(sorted(m for m in ('json', 're', 'enum', 'collections', 'functools') if m in sys.modules))"
            % str(ROOT))
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_the_import_probe_sees_json_on_an_error():
    # the probe above can fail: an error message comes from json itself
    code = ("import sys; sys.path.insert(0, %r)\nfrom cni_rdma import jsonc\n"
            "try:\n    jsonc.loads(b'{')\nexcept ValueError:\n    pass\nprint('json' in sys.modules)" % str(ROOT))
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "True", p.stderr
