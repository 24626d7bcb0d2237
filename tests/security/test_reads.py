"""Findings 2 and 3: config-, env- and state-named paths are never read unbounded and never block (a FIFO)."""
from __future__ import annotations

import json
import os

import pytest

from tests import topology
from tests.security.conftest import cni_error, host_local, host_local_conf, macvlan

HANG = 20  # seconds: every call here answers in well under one; a FIFO read would block forever


def _resolv(tmp_path, path) -> topology.PluginRun:
    conf = host_local_conf(tmp_path / "data")
    conf["ipam"]["resolvConf"] = str(path)
    return host_local("ADD", conf, timeout=HANG)


def test_resolv_conf_dev_zero_is_refused_not_read_forever(tmp_path):
    err = cni_error(_resolv(tmp_path, "/dev/zero"))
    assert err["code"] == 7 and "ipam.resolvConf" in err["msg"] and "character device" in err["msg"]


def test_resolv_conf_larger_than_the_limit_is_refused(tmp_path):
    big = tmp_path / "resolv.conf"
    big.write_bytes(b"nameserver 10.0.0.1\n" + b"#" * (1 << 20))
    err = cni_error(_resolv(tmp_path, big))
    assert err["code"] == 7 and "ipam.resolvConf" in err["msg"] and "larger than" in err["msg"]


def test_resolv_conf_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    err = cni_error(_resolv(tmp_path, tmp_path / "fifo"))
    assert err["code"] == 7 and "FIFO" in err["msg"]


def test_resolv_conf_symlink_to_a_regular_file_still_works(tmp_path):
    # /etc/resolv.conf is a symlink under systemd-resolved; Go follows it and so do we (read-only, bounded).
    (tmp_path / "real").write_text("nameserver 10.1.1.1\nsearch example.org\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    r = _resolv(tmp_path, tmp_path / "link")
    assert r.code == 0, r.stdout + r.stderr
    assert r.json["dns"] == {"nameservers": ["10.1.1.1"], "search": ["example.org"]}


def test_host_local_lock_fifo_does_not_hang(tmp_path):
    net = tmp_path / "data" / "net1"
    net.mkdir(parents=True)
    os.mkfifo(net / "lock")
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data"), timeout=HANG))
    assert err["code"] == 5 and "lock" in err["msg"]
    r = host_local("DEL", host_local_conf(tmp_path / "data"), timeout=HANG)
    assert r.code in (0, 1) and "Traceback" not in r.stdout + r.stderr  # finishes either way


def test_host_local_symlinked_lock_is_still_refused(tmp_path):
    # What held must keep holding: a symlinked lock is never followed.
    net = tmp_path / "data" / "net1"
    net.mkdir(parents=True)
    (tmp_path / "elsewhere").write_text("")
    (net / "lock").symlink_to(tmp_path / "elsewhere")
    err = cni_error(host_local("ADD", host_local_conf(tmp_path / "data"), timeout=HANG))
    assert err["code"] == 5 and "lock" in err["msg"]
    assert (tmp_path / "elsewhere").read_text() == "" and (net / "lock").is_symlink()


def _rdma_conf(tmp_path) -> dict:
    return {"cniVersion": "1.0.0", "name": "rdmanet", "type": "rdma", "dataDir": str(tmp_path)}


@pytest.mark.parametrize("kind", ["fifo", "garbage", "dir"])
def test_rdma_del_with_an_unreadable_record_finishes(tmp_path, kind):
    # rdma DEL blocked forever on a FIFO record; a record it cannot read is dropped (DEL must finish).
    rec = tmp_path / "rdma" / "rdmanet-ctr1-net1"
    rec.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(rec)
    elif kind == "dir":
        rec.mkdir()
    else:
        rec.write_bytes(b"\xff" * 100)
    r = topology.run_plugin("rdma", "DEL", _rdma_conf(tmp_path), netns="/var/run/netns/none", ifname="net1",
                            container_id="ctr1", timeout=HANG)
    assert r.code == 0, r.stdout + r.stderr
    assert not os.path.lexists(rec)
    assert "dropping it" in r.stderr


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_cni_netns_fifo_does_not_hang(node, tmp_path, command):
    os.mkfifo(tmp_path / "ns")
    r = macvlan(command, node, str(tmp_path / "ns"), timeout=HANG)
    err = cni_error(r)
    assert err["code"] == 5 and "not a network namespace" in err["msg"]


@pytest.mark.parametrize("what", ["file", "dir", "mnt-ns"])
def test_netns_paths_that_are_not_network_namespaces(node, tmp_path, what):
    # What held must keep holding: files, directories and other namespace types are refused, code 5.
    path = {"file": tmp_path / "f", "dir": tmp_path, "mnt-ns": "/proc/self/ns/mnt"}[what]
    if what == "file":
        path.write_text("")
    assert cni_error(macvlan("ADD", node, str(path), timeout=HANG))["code"] == 5


def test_stdin_100_mb_deep_nesting_and_nan(tmp_path):
    # What held must keep holding: huge, deeply nested or non-finite input is a decode/config error.
    huge = b'{"cniVersion": "1.0.0", "name": "n", "type": "host-local", "pad": "' + b"x" * (100 << 20) + b'"}'
    deep = b'{"cniVersion": "1.0.0", "name": "n", "x": ' + b"[" * 200000 + b"]" * 200000 + b"}"
    nan = json.dumps(host_local_conf(tmp_path / "d", subnet="10.99.0.0/24")).replace('"10.99', '"10.99').encode()
    nan = nan[:-1] + b', "mtu": NaN, "x": 1e999}'
    for stdin in (huge, deep, nan):
        r = host_local("ADD", stdin, timeout=120)
        assert r.code in (0, 1) and "Traceback" not in r.stdout + r.stderr
        if r.code:
            cni_error(r)
    host_local("DEL", nan)


def test_rdma_gc_skips_an_unreadable_record(tmp_path):
    rec = tmp_path / "rdma" / "rdmanet-ctr1-net1"
    rec.parent.mkdir(parents=True)
    os.mkfifo(rec)
    conf = dict(_rdma_conf(tmp_path), cniVersion="1.1.0", **{"cni.dev/valid-attachments": []})
    r = topology.run_plugin("rdma", "GC", conf, netns="", ifname="", container_id="", timeout=HANG)
    assert r.code == 0, r.stdout + r.stderr
    assert "skipping it" in r.stderr and os.path.lexists(rec)
