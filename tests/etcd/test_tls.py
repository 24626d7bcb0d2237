"""cluster-ipam over TLS for real: a 3-member etcd serving https with client certificates required, a CA and
certificates made with openssl; a wrong CA is refused with code 11 naming the endpoint and the TLS error; TLS
files missing or unusable are code 7 naming the key and the file."""
from __future__ import annotations

import os

import pytest

from tests.etcd.cluster import EtcdCluster, TlsFiles
from tests.etcd.conftest import code, ips, netconf, records, run


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    c = EtcdCluster(tls=TlsFiles(d / "good")).up()
    c.other_ca = TlsFiles(d / "other", name="other-ca")
    yield c
    c.destroy()


def test_add_del_over_tls_with_client_certificates(tls_cluster):
    c = netconf(tls_cluster)
    assert all(e.startswith("https://") for e in c["ipam"]["etcd"]["endpoints"])
    assert ips(run("ADD", c)) == ["10.80.0.2/24"]
    assert list(records(tls_cluster, c)) == ["ctr1/eth0"]
    assert code(run("CHECK", {**c, "cniVersion": "1.1.0"})) == 0
    assert code(run("STATUS", c)) == 0
    assert code(run("DEL", c)) == 0
    assert records(tls_cluster, c) == {}


def test_wrong_ca_is_refused_naming_endpoint_and_tls_error(tls_cluster):
    c = netconf(tls_cluster, etcd={"caFile": str(tls_cluster.other_ca.ca), "timeout": 1})
    r = run("ADD", c)
    assert code(r) == 11
    msg = r.json["msg"]
    assert all(e in msg for e in tls_cluster.endpoints), msg
    assert "TLS" in msg and "certificate verify failed" in msg, msg


def test_no_client_certificate_is_refused(tls_cluster):
    c = netconf(tls_cluster, etcd={"timeout": 1})
    del c["ipam"]["etcd"]["certFile"], c["ipam"]["etcd"]["keyFile"]
    r = run("ADD", c)
    assert code(r) == 11 and "TLS: SSLV3_ALERT_BAD_CERTIFICATE" in r.json["msg"], r.stdout


@pytest.mark.parametrize("key", ["caFile", "certFile", "keyFile"])
def test_tls_file_missing_or_not_regular_is_code_7_naming_key_and_file(tls_cluster, tmp_path, key):
    missing = str(tmp_path / "missing.pem")
    r = run("ADD", netconf(tls_cluster, etcd={key: missing}))
    assert code(r) == 7 and f'"ipam.etcd.{key}"' in r.json["msg"] and missing in r.json["msg"], r.stdout
    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    r = run("ADD", netconf(tls_cluster, etcd={key: str(fifo)}), timeout=20)  # must not block on the FIFO
    assert code(r) == 7 and f'"ipam.etcd.{key}"' in r.json["msg"] and "not a regular file" in r.json["msg"]
    link = tmp_path / "link.pem"
    link.symlink_to(getattr(tls_cluster.tls, {"caFile": "ca", "certFile": "client", "keyFile": "client_key"}[key]))
    r = run("ADD", netconf(tls_cluster, etcd={key: str(link)}))
    assert code(r) == 7 and f'"ipam.etcd.{key}"' in r.json["msg"], r.stdout
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    r = run("ADD", netconf(tls_cluster, etcd={key: str(garbage)}))
    assert code(r) == 7 and str(garbage) in r.json["msg"], r.stdout


def test_unreadable_file_is_code_7(tls_cluster, tmp_path):
    if os.geteuid() == 0:
        # root reads any mode: an unreadable file is a directory in its place
        d = tmp_path / "dir.pem"
        d.mkdir()
        r = run("ADD", netconf(tls_cluster, etcd={"caFile": str(d)}))
        assert code(r) == 7 and '"ipam.etcd.caFile"' in r.json["msg"] and str(d) in r.json["msg"]
