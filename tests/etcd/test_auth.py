"""etcd user authentication: username + passwordFile (one line, regular file) from the node-local etcd configFile
get a token from /v3/auth/authenticate; a wrong password is code 7 naming the key; a multi-line file is refused;
credentials named inline in a network config are refused (a NAD must not pick a file whose content we send)."""
from __future__ import annotations

import json

from tests.etcd.conftest import code, ips, netconf, run


def _with_credentials(cluster, tmp_path, password_file, name: str) -> dict:
    """A config whose etcd block is a node-local configFile holding the endpoints and the credentials."""
    c = netconf(cluster)
    node_conf = tmp_path / f"{name}.json"
    node_conf.write_text(json.dumps({**c["ipam"]["etcd"], "username": "root", "passwordFile": str(password_file)}))
    node_conf.chmod(0o600)
    c["ipam"]["etcd"] = {"configFile": str(node_conf)}
    return c


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
    inline = netconf(cluster, etcd={"username": "root", "passwordFile": str(good)})
    r = run("ADD", inline, cid="inline")
    assert code(r) == 7 and '"ipam.etcd.passwordFile"' in r.json["msg"] and "configFile" in r.json["msg"], r.stdout
    c = _with_credentials(cluster, tmp_path, good, "good")
    assert ips(run("ADD", c)) == ["10.80.0.2/24"]
    without = netconf(cluster)
    without["ipam"]["etcd"]["prefix"] = json.loads((tmp_path / "good.json").read_text())["prefix"]
    r = run("ADD", without, cid="anon")
    assert code(r) == 7 and '"ipam.etcd.username"' in r.json["msg"], r.stdout  # auth on, no credentials
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    r = run("ADD", _with_credentials(cluster, tmp_path, bad, "bad"), cid="bad")
    assert code(r) == 7 and ".username" in r.json["msg"] and "authentication failed" in r.json["msg"], r.stdout
    multi = tmp_path / "multi"
    multi.write_text("root:x:0:0\nsecond line\n")
    r = run("ADD", _with_credentials(cluster, tmp_path, multi, "multi"), cid="m")
    assert code(r) == 7 and ".passwordFile" in r.json["msg"], r.stdout
    assert code(run("DEL", c)) == 0
    # the test's own reads need the token too: only check through the plugin
    assert code(run("CHECK", c)) == 101

