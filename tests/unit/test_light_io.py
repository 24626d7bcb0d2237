"""cni_rdma/light_io.py (frozen as the bundle's `io`) is the standard library's `io`, its ABCs made on first use."""
from __future__ import annotations

import _io
import abc
import io
import pickle
import subprocess
import sys
import threading
import warnings

import pytest

from tests.topology import ROOT
from tests.unit import load_source_as

SOURCE = ROOT / "cni_rdma" / "light_io.py"
ABCS = ("IOBase", "RawIOBase", "BufferedIOBase", "TextIOBase")
# every concrete class io exports, and _io's bases of the ABCs
CLASSES = (io.FileIO, io.BytesIO, io.StringIO, io.BufferedReader, io.BufferedWriter, io.BufferedRandom,
           io.BufferedRWPair, io.TextIOWrapper, io.IncrementalNewlineDecoder, _io._IOBase, _io._RawIOBase,
           _io._BufferedIOBase, _io._TextIOBase, object, int)


def _load():
    return load_source_as("io", SOURCE)  # the name it is frozen as: its classes say module "io"


@pytest.fixture
def ours():
    return _load()


def _public(module) -> set[str]:
    return {name for name in dir(module) if not name.startswith("_")} - {"OpenWrapper"}


def test_it_has_every_name_of_the_standard_io_and_no_other(ours):
    # a Python that adds a name to io fails here: the light io must learn it
    assert _public(ours) == _public(io)
    assert ours.__all__ == io.__all__ and ours.__author__ == io.__author__
    for name in _public(io) - set(ABCS):
        assert getattr(ours, name) is getattr(io, name), name
    assert ours.UnsupportedOperation.__module__ == "io"
    assert (ours.SEEK_SET, ours.SEEK_CUR, ours.SEEK_END) == (0, 1, 2)


def test_the_abcs_are_made_only_when_asked_for(ours, monkeypatch):
    assert not set(ABCS) & set(vars(ours)) and "abc" not in vars(ours)
    text_io = ours.TextIOBase
    assert set(ABCS) <= set(vars(ours)) and ours.abc is abc
    assert ours.TextIOBase is text_io and vars(ours)["IOBase"] is ours.IOBase
    fresh = _load()
    monkeypatch.setitem(sys.modules, "io", fresh)
    names: dict = {}
    exec("from io import *", names)  # noqa: S102  # through __all__: makes them too
    assert names["IOBase"] is fresh.IOBase and names["open"] is io.open
    assert set(names) - {"__builtins__"} == set(io.__all__)


def test_without_abc_imported_it_imports_no_abc(tmp_path):
    # a fresh interpreter that forgets the abc its own start imported: loading the light io imports none
    code = (f"import sys, importlib.util\nfor m in ('abc', '_abc'): sys.modules.pop(m, None)\n"
            f"spec = importlib.util.spec_from_file_location('io', {str(SOURCE)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print('abc' in sys.modules, '_abc' in sys.modules, isinstance(sys.stdout, m.TextIOBase),"
            " 'abc' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "False", "True", "True"]


def test_the_abcs_are_made_as_the_standard_ones(ours):
    for name in ABCS:
        mine, real = getattr(ours, name), getattr(io, name)
        assert type(mine) is type(real) is abc.ABCMeta
        assert (mine.__name__, mine.__qualname__, mine.__module__, mine.__doc__) == \
               (real.__name__, real.__qualname__, real.__module__, real.__doc__)
        assert tuple(b.__name__ for b in mine.__mro__) == tuple(b.__name__ for b in real.__mro__)
        assert mine.__abstractmethods__ == real.__abstractmethods__
    assert ours.RawIOBase.__bases__ == (_io._RawIOBase, ours.IOBase)
    assert ours.TextIOBase.__bases__ == (_io._TextIOBase, ours.IOBase)


def test_isinstance_and_issubclass_answer_as_with_the_standard_io(ours, tmp_path):
    class Plain:
        pass

    for cls in (*CLASSES, Plain):
        for name in ABCS:
            assert issubclass(cls, getattr(ours, name)) == issubclass(cls, getattr(io, name)), (cls, name)
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with open(path, "rb", buffering=0) as raw, open(path, "rb") as buffered, open(path) as text, \
            open(path, "r+b") as rw:
        for obj in (raw, buffered, text, rw, io.BytesIO(), io.StringIO(), sys.__stdout__, sys.__stdin__, 1):
            for name in ABCS:
                assert isinstance(obj, getattr(ours, name)) == isinstance(obj, getattr(io, name)), (obj, name)
    assert isinstance(sys.__stdout__, ours.TextIOBase) and issubclass(io.FileIO, ours.RawIOBase)


def test_register_and_subclasses_work(ours):
    class Registered:
        pass

    ours.IOBase.register(Registered)
    assert issubclass(Registered, ours.IOBase) and not issubclass(Registered, ours.RawIOBase)
    assert not issubclass(Registered, io.IOBase)  # its own classes, not the standard module's

    class Bytes(ours.RawIOBase):
        def __init__(self, data):
            self.data = data

        def readable(self):
            return True

        def readinto(self, b):
            n = len(self.data[:len(b)])
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    stream = Bytes(b"abc")
    assert isinstance(stream, ours.IOBase) and stream.read() == b"abc" and stream.read() == b""
    assert ours.BufferedReader(Bytes(b"line\nrest")).readline() == b"line\n"

    def abstract_instance(base):  # _io's classes make instances of abstract subclasses too, as there
        class Abstract(base):
            @abc.abstractmethod
            def must(self): ...

        return sorted(Abstract.__abstractmethods__), type(Abstract()).__name__

    assert abstract_instance(ours.IOBase) == abstract_instance(io.IOBase) == (["must"], "Abstract")


def test_open_open_code_and_text_encoding_are_the_c_ones(ours, tmp_path):
    path = tmp_path / "t.txt"
    with ours.open(path, "w", encoding="utf-8") as f:
        f.write("bücher\n")
    with ours.open_code(str(path)) as f:
        assert f.read() == "bücher\n".encode()
    assert ours.text_encoding(None) == io.text_encoding(None) and ours.text_encoding("latin-1") == "latin-1"


def test_openwrapper_warns_as_in_3_11_and_unknown_names_fail_alike(ours):
    # the standard module's deprecated alias (3.11: a DeprecationWarning at the caller's line, then `open`)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapper = ours.OpenWrapper
    assert wrapper is io.open
    assert [(w.category, str(w.message), w.filename) for w in caught] == \
           [(DeprecationWarning, "OpenWrapper is deprecated, use open instead", __file__)]
    with pytest.raises(AttributeError, match="^module 'io' has no attribute 'nope'$"):
        ours.nope  # noqa: B018
    with pytest.raises(AttributeError, match="^module 'io' has no attribute 'nope'$"):
        io.nope  # noqa: B018


def test_threads_asking_at_once_get_the_same_classes():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch inside the making of the classes
    try:
        for _ in range(20):
            _ask_at_once(_load())
    finally:
        sys.setswitchinterval(interval)


def _ask_at_once(ours):
    start, got = threading.Barrier(8), []

    def ask():
        start.wait()
        got.append(ours.BufferedIOBase)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(cls is ours.BufferedIOBase for cls in got)
    assert issubclass(io.BytesIO, ours.BufferedIOBase)


def test_pickle_finds_the_abcs_by_their_names(ours, monkeypatch):
    # a class pickles as module + qualified name: with the light io as `io`, they lead back to its own classes
    monkeypatch.setitem(sys.modules, "io", ours)
    assert pickle.loads(pickle.dumps(ours.TextIOBase)) is ours.TextIOBase
