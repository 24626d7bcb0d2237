"""Path tricks against host-local: hostile names are CNI errors, planted symlinks are never followed."""
from __future__ import annotations

import os

import pytest

from tests.ipam.conftest import addr, code, conf, ours, reservations


def _nothing_escaped(tmp_path, data_dir):
    """No file anywhere under tmp_path except inside data_dir (and the test's own victims)."""
    for root, _dirs, files in os.walk(tmp_path):
        for f in files:
            path = os.path.join(root, f)
            assert path.startswith(str(data_dir)) or f.startswith("victim"), path


@pytest.mark.parametrize("name", ["..", "../escape", "a/../../b", "a/b", "/abs", "a\u0000b", "x" * 300, ".hidden", ""])
def test_hostile_network_names(tmp_path, data_dir, name):
    r = ours("ADD", conf(data_dir, name=name))
    assert code(r) == 7, r.stdout
    _nothing_escaped(tmp_path, data_dir)
    assert not (data_dir.exists() and [p for p in data_dir.iterdir() if p.name not in (".cni-rdma",)])


@pytest.mark.parametrize("cid, want", [("..", 4), ("../x", 4), ("a/b", 4), ("/etc", 4), ("-x", 4), ("x" * 300, 4)])
def test_hostile_container_ids(tmp_path, data_dir, cid, want):
    for command in ("ADD", "DEL", "CHECK"):
        r = ours(command, conf(data_dir, version="1.0.0"), cid=cid)
        assert code(r) == want, (command, r.stdout)
    assert reservations(data_dir) == {}
    _nothing_escaped(tmp_path, data_dir)


@pytest.mark.parametrize("ifname", ["..", ".", "a/b", "../../x", "x" * 16, "a b", "a:b"])
def test_hostile_ifnames(tmp_path, data_dir, ifname):
    for command in ("ADD", "DEL", "CHECK"):
        r = ours(command, conf(data_dir), ifname=ifname)
        assert code(r) == 4, (command, r.stdout)
    assert reservations(data_dir) == {}


def test_ifname_with_odd_but_legal_characters_is_escaped_in_the_index(data_dir):
    odd = ("a..b", "e%th", "eth=0", "ü0", "a\\tb")
    for ifname in odd:
        assert ours("ADD", conf(data_dir), ifname=ifname).code == 0
    lines = sorted(line for p in (data_dir / ".cni-rdma" / "net1").glob("b.*") for line in p.read_text().splitlines())
    assert [line.split("\t")[1] for line in lines] == sorted(["a..b", "e%25th", "eth%3D0", "%C3%BC0", "a%5Ctb"])
    for ifname in odd:
        assert ours("DEL", conf(data_dir), ifname=ifname).code == 0
    assert reservations(data_dir) == {}
    assert not list((data_dir / ".cni-rdma" / "net1").glob("b.*"))


def test_nul_and_non_string_data_dir(data_dir):
    assert code(ours("ADD", conf(data_dir, {"subnet": "10.77.0.0/24", "dataDir": f"{data_dir}\u0000x"}))) == 7
    assert code(ours("ADD", conf(data_dir, {"subnet": "10.77.0.0/24", "dataDir": ["x"]}))) == 7


def test_nul_in_gc_valid_attachments_is_just_a_non_matching_value(data_dir):
    c = conf(data_dir, version="1.1.0")
    assert ours("ADD", c).code == 0
    gc = dict(c, **{"cni.dev/valid-attachments": [{"containerID": "ctr1\u0000/../x", "ifname": "eth0"}]})
    assert ours("GC", gc).code == 0
    assert reservations(data_dir) == {}


def test_symlinked_network_dir_is_refused(tmp_path, data_dir):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data_dir.mkdir()
    (data_dir / "net1").symlink_to(elsewhere)
    for command in ("ADD", "DEL", "CHECK"):
        r = ours(command, conf(data_dir))
        assert code(r) == 5 and "refusing to follow" in r.json["msg"], r.stdout
    assert list(elsewhere.iterdir()) == []


def test_symlinked_index_dir_is_refused(tmp_path, data_dir):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data_dir.mkdir()
    (data_dir / ".cni-rdma").symlink_to(elsewhere)
    r = ours("ADD", conf(data_dir))
    assert code(r) == 5 and "refusing to follow" in r.json["msg"]
    assert list(elsewhere.iterdir()) == []


def test_planted_symlinks_in_the_store_are_not_followed(tmp_path, data_dir):
    c = conf(data_dir, version="1.1.0")
    net = data_dir / "net1"
    net.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (net / "10.77.0.2").symlink_to(victim)                 # a reservation file
    (net / "last_reserved_ip.0").symlink_to(tmp_path / "victim-last")
    (tmp_path / "victim-last").write_bytes(b"10.77.0.100")
    assert addr(ours("ADD", c)) == ["10.77.0.3/24"]     # .2 is taken (by something), the cursor file not trusted
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "victim-last").read_bytes() == b"10.77.0.100"
    assert not (net / "last_reserved_ip.0").is_symlink()  # replaced, not written through
    # DEL, CHECK and GC neither read nor remove through it; GC leaves what is not a reservation alone.
    (tmp_path / "victim").write_bytes(b"ctr2\r\neth0")
    assert code(ours("CHECK", c, cid="ctr2")) == 101
    assert ours("DEL", c, cid="ctr2").code == 0
    assert ours("GC", dict(c, **{"cni.dev/valid-attachments": []})).code == 0
    assert (net / "10.77.0.2").is_symlink() and victim.read_bytes() == b"ctr2\r\neth0"
    assert not (net / "10.77.0.3").exists()


def test_planted_symlink_lock_and_index_files(tmp_path, data_dir):
    c = conf(data_dir)
    assert ours("ADD", c).code == 0
    from ipam.host_local.store import bucket_of

    name, key = bucket_of("ctr9", "eth0")
    idx = data_dir / ".cni-rdma" / "net1" / name
    fake = tmp_path / "victim-index"
    fake.write_text(key + "10.77.0.2\n")                      # claims ctr1's address for ctr9
    if idx.exists():
        idx.unlink()
    idx.symlink_to(fake)
    assert ours("DEL", c, cid="ctr9").code == 0
    assert reservations(data_dir) == {"10.77.0.2": "ctr1\r\neth0"}
    assert fake.read_text() == key + "10.77.0.2\n" and not idx.is_symlink()  # replaced by a rebuild
    assert ours("DEL", c).code == 0 and reservations(data_dir) == {}
    lock = data_dir / "net1" / "lock"
    lock.unlink()
    lock.symlink_to(tmp_path / "victim-lock")
    r = ours("ADD", c, cid="ctr3")
    assert code(r) == 5 and not (tmp_path / "victim-lock").exists()
