"""cni_rdma/paths.py against os / os.path themselves (the oracle): same strings, same answers, same errors."""
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cni_rdma import paths
from tests.topology import ROOT

# Path strings built from the characters the helpers act on: separators, dots, names.
path_text = st.text(alphabet="/.ab", max_size=12)


@settings(max_examples=500, deadline=None)
@given(path_text, st.lists(path_text, max_size=4))
def test_string_helpers_match_os_path(first, rest):
    assert paths.join(first, *rest) == os.path.join(first, *rest)
    assert paths.split(first) == os.path.split(first)
    assert paths.basename(first) == os.path.basename(first)
    assert paths.dirname(first) == os.path.dirname(first)
    assert paths.isabs(first) == os.path.isabs(first)


def test_separators_are_os():
    assert (paths.SEP, paths.PATHSEP) == (os.sep, os.pathsep)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "to-file").symlink_to("file")
    (tmp_path / "to-dir").symlink_to("dir")
    (tmp_path / "dangling").symlink_to("missing")
    (tmp_path / "loop").symlink_to("loop")
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


NAMES = ["file", "dir", "to-file", "to-dir", "dangling", "loop", "fifo", "missing", "file/below", "dir/", "to-dir/."]


@pytest.mark.parametrize("name", NAMES)
def test_predicates_match_os_path(tree, name):
    p = str(tree / name) if not name.endswith(("/", ".")) else f"{tree}/{name}"
    for fn in ("exists", "isfile", "isdir", "islink"):
        assert getattr(paths, fn)(p) == getattr(os.path, fn)(p), (fn, name)


@pytest.mark.parametrize("bad", ["", "a\0b", "\udcff/x"])
def test_predicates_on_unusable_paths_are_false_as_os_path(bad):
    for fn in ("exists", "isfile", "isdir", "islink"):
        assert getattr(paths, fn)(bad) == getattr(os.path, fn)(bad), (fn, bad)


def _outcome(fn, *args, **kw):
    try:
        return "ok", fn(*args, **kw)
    except OSError as e:
        return type(e).__name__, e.errno


@pytest.mark.parametrize("rel,exist_ok", [("a/b/c", False), ("a/b/c", True), ("x/", True), ("x//y/./", True),
                                          ("file/z", True), ("dir", False), ("dir", True), ("to-dir/n", False),
                                          ("file", True), ("dangling/d", True)])
def test_makedirs_matches_os(tree, tmp_path_factory, rel, exist_ok):
    twin = tmp_path_factory.mktemp("twin")
    subprocess.run(["cp", "-a", f"{tree}/.", str(twin)], check=True)
    ours = _outcome(paths.makedirs, f"{tree}/{rel}", 0o700, exist_ok=exist_ok)
    theirs = _outcome(os.makedirs, f"{twin}/{rel}", 0o700, exist_ok=exist_ok)
    assert ours == theirs
    listing = subprocess.run(["find", ".", "-printf", "%p %y %m\n"], cwd=tree, capture_output=True, text=True)
    twin_listing = subprocess.run(["find", ".", "-printf", "%p %y %m\n"], cwd=twin, capture_output=True, text=True)
    assert sorted(listing.stdout.splitlines()) == sorted(twin_listing.stdout.splitlines())


def test_resolved_is_realpath_for_existing_paths(tree, monkeypatch):
    (tree / "chain").symlink_to("to-file")
    (tree / "dir" / "up").symlink_to("../to-dir")
    monkeypatch.chdir(tree)
    for name in ["file", "to-file", "chain", "dir", "to-dir", "dir/up", "dir/up/../file", "fifo", ".", "to-dir/.."]:
        assert paths.resolved(name) == os.path.realpath(name), name
        assert paths.resolved(str(tree / name)) == os.path.realpath(tree / name), name
    for name in ["missing", "dangling", "loop", "", "a\0b"]:
        assert paths.resolved(name) == "", name


def test_environ_is_os_environ_once_os_is_loaded(monkeypatch):
    monkeypatch.setenv("CNI_RDMA_PATHS_PROBE", "set in-process")
    assert paths.environ() is os.environ
    assert paths.getenv("CNI_RDMA_PATHS_PROBE") == "set in-process"
    assert paths.getenv("CNI_RDMA_PATHS_NOT_SET") == ""
    assert paths.getenv("CNI_RDMA_PATHS_NOT_SET", "dflt") == "dflt"


def test_environ_without_os_decodes_as_os_does():
    # A plugin process never imports os: the environment comes from posix.environ, decoded as os decodes it
    # (non-UTF-8 bytes as lone surrogates). Compared with what os.environ holds once os is imported after.
    code = ("import sys; from cni_rdma import paths; assert 'os' not in sys.modules, 'os was imported';"
            "env = dict(paths.environ()); import os; assert env == dict(os.environ), (env, os.environ);"
            "print(ascii(paths.getenv('ODD')))")
    env = {b"ODD": b"caf\xc3\xa9 \xff", b"\xfeKEY": b"v", b"PATH": b"/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}"],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ascii("caf\xe9 \udcff")
