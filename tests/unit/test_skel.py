"""The skeleton, tested rule by rule from CNI SPEC 1.1.0 (section names cited per test) and Go's pkg/skel."""
import io
import json
import types

import pytest

from cni_rdma import ipaddr, skel
from cni_rdma.errors import CniError
from cni_rdma.types import Interface, IPConfig, Result
from cni_rdma.version import SUPPORTED

GOOD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr-1", "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": "net1", "CNI_PATH": "/opt/cni/bin"}


def fake_plugin(result=None, raises=None, record=None):
    m = types.ModuleType("fakeplugin")
    m.ABOUT = "fake plugin about line"

    def handler(name):
        def fn(req):
            if record is not None:
                record.append((name, req))
            if raises is not None:
                raise raises
            return result if name == "add" else None
        return fn

    for name in ("add", "delete", "check", "status", "gc"):
        setattr(m, name, handler(name))
    return m


def run(env, stdin=b"", module=None):
    out, err = io.StringIO(), io.StringIO()
    rc = skel.run(module or fake_plugin(Result(ips=(IPConfig(ipaddr.ip_interface("10.0.0.2/24")),))),
                  env, io.BytesIO(stdin), out, err)
    return rc, out.getvalue(), err.getvalue()


def conf(version="1.1.0", **extra):
    d = {"cniVersion": version, "name": "net", "type": "fake"}
    d.update(extra)
    return json.dumps(d).encode()


def error_of(rc, out):
    assert rc == 1
    e = json.loads(out)
    assert set(e) <= {"cniVersion", "code", "msg", "details"}
    return e


class TestParameters:
    """SPEC.md section 2 "Parameters": required variables per operation."""

    @pytest.mark.parametrize("cmd,missing", [
        ("ADD", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
        ("CHECK", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
        ("DEL", "CNI_CONTAINERID,CNI_IFNAME,CNI_PATH"),  # CNI_NETNS is optional for DEL
        ("GC", "CNI_PATH"),
        ("STATUS", "CNI_PATH"),
    ])
    def test_required_env_per_command(self, cmd, missing):
        e = error_of(*run({"CNI_COMMAND": cmd}, conf())[:2])
        assert e["code"] == 4
        assert e["msg"] == f"required env variables [{missing}] missing"

    def test_del_without_netns_is_fine(self):
        env = dict(GOOD_ENV, CNI_COMMAND="DEL", CNI_NETNS="")
        rc, out, _ = run(env, conf())
        assert (rc, out) == (0, "")

    @pytest.mark.parametrize("cid", ["-abc", "a b", "a/b", "ä", ".x", "a;b"])
    def test_invalid_container_id(self, cid):
        e = error_of(*run(dict(GOOD_ENV, CNI_CONTAINERID=cid), conf())[:2])
        assert (e["code"], e["msg"], e["details"]) == (4, "invalid characters in containerID", cid)

    @pytest.mark.parametrize("cid", ["a", "0", "abc-DEF_1.2", "x" * 200])
    def test_valid_container_id(self, cid):
        assert run(dict(GOOD_ENV, CNI_CONTAINERID=cid), conf())[0] == 0

    @pytest.mark.parametrize("ifname,msg", [
        ("a" * 16, "interface name is too long"),
        (".", "interface name is . or .."),
        ("..", "interface name is . or .."),
        ("a/b", "interface name contains / or : or whitespace characters"),
        ("a:b", "interface name contains / or : or whitespace characters"),
        ("a b", "interface name contains / or : or whitespace characters"),
        ("a\tb", "interface name contains / or : or whitespace characters"),
    ])
    def test_invalid_ifname(self, ifname, msg):
        e = error_of(*run(dict(GOOD_ENV, CNI_IFNAME=ifname), conf())[:2])
        assert (e["code"], e["msg"]) == (4, msg)

    def test_ifname_of_15_chars_is_valid(self):
        assert run(dict(GOOD_ENV, CNI_IFNAME="a" * 15), conf())[0] == 0

    def test_unknown_command(self):
        e = error_of(*run(dict(GOOD_ENV, CNI_COMMAND="FROB"), conf())[:2])
        assert (e["code"], e["msg"]) == (4, "unknown CNI_COMMAND: FROB")

    def test_no_command_prints_about_to_stderr_and_exits_0(self):
        rc, out, err = run({}, b"")
        assert rc == 0 and out == ""
        assert err.splitlines()[0] == "fake plugin about line"
        assert err.splitlines()[1] == "CNI protocol versions supported: " + ", ".join(SUPPORTED)


class TestNetworkConfiguration:
    """SPEC.md section 1 "Network configuration format": name rules and decoding."""

    @pytest.mark.parametrize("stdin", [b"", b"{", b"not json", b"\xff\xfe", b"[]", b"42", b'"x"'])
    def test_undecodable_config_is_code_6(self, stdin):
        assert error_of(*run(GOOD_ENV, stdin)[:2])["code"] == 6

    def test_missing_name(self):
        e = error_of(*run(GOOD_ENV, b'{"cniVersion":"1.0.0"}')[:2])
        assert (e["code"], e["msg"]) == (7, "missing network name")

    @pytest.mark.parametrize("name", ["-net", "a b", "a/b", "../x"])
    def test_invalid_network_name(self, name):
        e = error_of(*run(GOOD_ENV, json.dumps({"cniVersion": "1.0.0", "name": name}).encode())[:2])
        assert (e["code"], e["msg"], e["details"]) == (7, "invalid characters found in network name", name)

    def test_deeply_nested_config_is_a_decode_error_not_a_crash(self):
        assert error_of(*run(GOOD_ENV, b"[" * 100000)[:2])["code"] == 6


class TestVersions:
    """SPEC.md section 2 "CNI operations" (VERSION) and section 1 "Version considerations"."""

    def test_version_output(self):
        rc, out, _ = run({"CNI_COMMAND": "VERSION"}, b"garbage is ignored")
        assert rc == 0
        assert json.loads(out) == {"cniVersion": "1.1.0", "supportedVersions": list(SUPPORTED)}

    @pytest.mark.parametrize("v", ["9.9.9", "1.1", "0.5.0", "banana"])
    def test_unsupported_version_is_code_1_with_list(self, v):
        e = error_of(*run(GOOD_ENV, conf(v))[:2])
        assert e["code"] == 1 and e["msg"] == "incompatible CNI versions"
        assert e["details"] == f'config is "{v}", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]'

    def test_missing_cni_version_means_0_1_0(self):
        rc, out, _ = run(GOOD_ENV, b'{"name":"net"}')
        assert rc == 0 and json.loads(out)["cniVersion"] == "0.1.0"

    @pytest.mark.parametrize("v", ["0.1.0", "0.2.0", "0.3.0", "0.3.1"])
    def test_check_needs_0_4_0(self, v):
        e = error_of(*run(dict(GOOD_ENV, CNI_COMMAND="CHECK"), conf(v))[:2])
        assert (e["code"], e["msg"]) == (1, "config version does not allow CHECK")

    def test_check_with_a_future_version(self):
        e = error_of(*run(dict(GOOD_ENV, CNI_COMMAND="CHECK"), conf("2.0.0"))[:2])
        assert (e["code"], e["msg"]) == (1, "plugin version does not allow CHECK")

    @pytest.mark.parametrize("cmd", ["GC", "STATUS"])
    @pytest.mark.parametrize("v", ["0.4.0", "1.0.0"])
    def test_gc_and_status_need_1_1_0(self, cmd, v):
        e = error_of(*run({"CNI_COMMAND": cmd, "CNI_PATH": "/x"}, conf(v))[:2])
        assert (e["code"], e["msg"]) == (1, f"config version does not allow {cmd}")

    @pytest.mark.parametrize("cmd", ["GC", "STATUS"])
    def test_gc_and_status_run_at_1_1_0(self, cmd):
        record = []
        rc, out, _ = run({"CNI_COMMAND": cmd, "CNI_PATH": "/x"}, conf("1.1.0"), fake_plugin(record=record))
        assert (rc, out) == (0, "") and record[0][0] == cmd.lower()

    @pytest.mark.parametrize("v", SUPPORTED)
    def test_result_printed_in_requested_version(self, v):
        rc, out, _ = run(GOOD_ENV, conf(v))
        assert rc == 0 and json.loads(out)["cniVersion"] == v

    @pytest.mark.parametrize("v", ["0.1.0", "0.2.0"])
    def test_l2_only_result_cannot_be_printed_as_legacy(self, v):
        m = fake_plugin(Result(interfaces=(Interface("net1", "aa:bb:cc:dd:ee:ff"),)))
        e = error_of(*run(GOOD_ENV, conf(v), m)[:2])
        assert (e["code"], e["msg"]) == (999, "cannot convert: no valid IP addresses")


class TestErrors:
    """SPEC.md section 2 "Errors": JSON on stdout, exit 1, well-known codes; never a traceback."""

    @pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 999])
    def test_cni_error_is_printed_with_its_code(self, code):
        m = fake_plugin(raises=CniError(code, "boom", "detail"))
        rc, out, err = run(GOOD_ENV, conf("1.0.0"), m)
        assert error_of(rc, out) == {"cniVersion": "1.0.0", "code": code, "msg": "boom", "details": "detail"}
        assert err == ""

    def test_unexpected_exception_is_999_one_line_no_traceback(self, tmp_path):
        log = tmp_path / "plugin.log"
        m = fake_plugin(raises=KeyError("surprise"))
        rc, out, err = run(GOOD_ENV, conf("1.0.0", logFile=str(log), logLevel="debug"), m)
        e = error_of(rc, out)
        assert e["code"] == 999 and "\n" not in e["msg"] and "KeyError" in e["msg"]
        assert "Traceback" not in out + err
        assert "Traceback" in log.read_text()  # the traceback goes to the log file when logging is on

    def test_error_version_falls_back_to_current_for_bad_config(self):
        assert error_of(*run(GOOD_ENV, b"{")[:2])["cniVersion"] == "1.1.0"


class TestRequest:
    def test_request_fields(self):
        record = []
        env = dict(GOOD_ENV, CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=p", CNI_PATH="/a:/b")
        run(env, conf("1.0.0", ipam={"type": "host-local"}), fake_plugin(record=record))
        req = record[0][1]
        assert (req.command, req.container_id, req.netns, req.ifname) == ("ADD", "ctr-1", "/var/run/netns/x", "net1")
        assert req.path == ("/a", "/b")
        assert req.conf.ipam_type == "host-local" and req.conf.name == "net"
        assert req.args() == {"IgnoreUnknown": "1", "K8S_POD_NAME": "p"}

    def test_prev_result_without_version_takes_the_configs(self):
        record = []
        prev = {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.1.1.2/24", "interface": 0}]}
        run(GOOD_ENV, conf("1.0.0", prevResult=prev), fake_plugin(record=record))
        pr = record[0][1].conf.prev_result
        assert pr.cni_version == "1.0.0" and pr.interfaces[0].name == "eth0"

    def test_bad_prev_result_is_a_decode_error(self):
        e = error_of(*run(GOOD_ENV, conf("1.0.0", prevResult={"ips": [{"address": "nope"}]}))[:2])
        assert e["code"] == 6 and "prevResult" in e["msg"]

    @pytest.mark.parametrize("key", ["ipam", "args", "runtimeConfig"])
    def test_non_object_sections_name_the_field(self, key):
        e = error_of(*run(GOOD_ENV, conf("1.0.0", **{key: [1]}))[:2])
        assert e["code"] == 7 and key in e["msg"]
