"""cni_rdma/early.py answers without json: its output must be what json (and cni_rdma.skel) would print."""
import io
import json

import pytest

from cni_rdma import early, skel
from cni_rdma.errors import CniError
from cni_rdma.version import CURRENT, SUPPORTED, version_json

STDINS = [b"", b"garbage", b"{}", b"[]", b'{"cniVersion": "0.4.0"}', b' \n{"cniVersion": "1.0.0"}\r\n\t',
          b'{"cniVersion": "0.4.0"} x', b'{"cniVersion": "9.9.9"}', b'{"cniVersion": 1}', b'{"cniVersion": "0.3.1",',
          b'{"a": NaN, "cniVersion": "0.2.0"}', b'\xef\xbb\xbf{"cniVersion": "0.3.0"}',
          '{"cniVersion": "0.3.1"}'.encode("utf-16"), '{"cniVersion": "0.3.1"}'.encode("utf-16-le"),
          b'{"cniVersion": "1.0.0", "x": "\xff"}', b'{"cniVersion": "\\u0031.0.0"}', b"[" * 100000,
          b'{"cniVersion": "0.4.0", "cniVersion": "1.1.0"}', b'\x0c{"cniVersion": "0.4.0"}']


def _json_error_version(data: bytes) -> str:
    # the rule with json itself: stdin's cniVersion when json.loads reads it and we speak it, else CURRENT
    try:
        v = json.loads(data).get("cniVersion")
    except Exception:
        return CURRENT
    return v if isinstance(v, str) and v in SUPPORTED else CURRENT


@pytest.mark.parametrize("data", STDINS)
def test_error_version_is_jsons(data):
    assert early.error_version(data) == _json_error_version(data)


@pytest.mark.parametrize("err", [CniError(4, "required env variables [CNI_PATH] missing"),
                                 CniError(4, "invalid characters in containerID", 'a "b"\\\n\x00ä\udcff'),
                                 CniError(999, "x", "")])
def test_error_json_is_json_dumps(err):
    assert early.error_json(err, "0.4.0") == json.dumps(err.to_json("0.4.0"))


def test_version_json_is_json_dumps():
    assert version_json() == json.dumps({"cniVersion": CURRENT, "supportedVersions": list(SUPPORTED)})


@pytest.mark.parametrize("s", ["a", "A-b_c.9", "-a", "a b", "ä", ".x", "a;b", "abc\n", "", "٣"])
def test_is_valid_id_is_gos_regexp(s):
    import re
    assert early.is_valid_id(s) == bool(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*", s))


CASES = [{}, {"CNI_COMMAND": "VERSION"}, {"CNI_COMMAND": "ADD"}, {"CNI_COMMAND": "GC"},
         {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "-x", "CNI_IFNAME": "eth0", "CNI_PATH": "/p"},
         {"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "x", "CNI_NETNS": "/n", "CNI_IFNAME": "a/b", "CNI_PATH": "/p"}]


@pytest.mark.parametrize("env", CASES)
@pytest.mark.parametrize("data", [b"", b'{"cniVersion": "0.3.1", "name": "n"}'])
def test_answer_is_what_skel_prints(env, data):
    module = type(io)("fake")
    module.ABOUT = "fake about"  # type: ignore[attr-defined]
    want_out, want_err = io.StringIO(), io.StringIO()
    want_rc = skel.run(module, env, io.BytesIO(data), want_out, want_err)
    out, err = io.StringIO(), io.StringIO()
    rc = early.answer("fake about", env, io.BytesIO(data), out, err)
    assert (rc, out.getvalue(), err.getvalue()) == (want_rc, want_out.getvalue(), want_err.getvalue())
