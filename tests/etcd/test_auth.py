"""etcd user authentication: username + passwordFile (one line, regular file) get a token from
/v3/auth/authenticate; a wrong password is code 7 naming the key; a multi-line file is refused."""
from __future__ import annotations

from tests.etcd.conftest import code, ips, netconf, run


def _enable_auth(cluster, password: str) -> None:
    cluster.post("/v3/auth/role/add", {"name": "root"})
    cluster.post("/v3/auth/user/add", {"name": "root", "password": password})
    cluster.post("/v3/auth/user/grant", {"user": "root", "role": "root"})
    cluster.post("/v3/auth/enable", {})


def test_username_and_password_file(private_cluster, tmp_path):
    cluster = private_cluster()
    _enable_auth(cluster, "s3cret")
    good = tmp_path / "pw"
    good.write_text("s3cret\n")
    good.chmod(0o600)
    c = netconf(cluster, etcd={"username": "root", "passwordFile": str(good)})
    assert ips(run("ADD", c)) == ["10.80.0.2/24"]
    without = netconf(cluster)
    without["ipam"]["etcd"]["prefix"] = c["ipam"]["etcd"]["prefix"]
    r = run("ADD", without, cid="anon")
    assert code(r) == 7 and '"ipam.etcd.username"' in r.json["msg"], r.stdout  # auth on, no credentials
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    r = run("ADD", netconf(cluster, etcd={"username": "root", "passwordFile": str(bad)}), cid="bad")
    assert code(r) == 7 and '"ipam.etcd.username"' in r.json["msg"] and "authentication failed" in r.json["msg"]
    multi = tmp_path / "multi"
    multi.write_text("root:x:0:0\nsecond line\n")
    r = run("ADD", netconf(cluster, etcd={"username": "root", "passwordFile": str(multi)}), cid="m")
    assert code(r) == 7 and '"ipam.etcd.passwordFile"' in r.json["msg"]
    assert code(run("DEL", c)) == 0
    # the test's own reads need the token too: only check through the plugin
    assert code(run("CHECK", c)) == 101

