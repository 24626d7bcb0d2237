"""cni_rdma/utf8_codec.py (frozen as the bundle's `encodings.utf_8`) is the standard library's UTF-8 codec."""
from __future__ import annotations

import codecs
import encodings.utf_8 as theirs
import io
import subprocess
import sys

import pytest

from tests.topology import ROOT
from tests.unit import load_source_as

SOURCE = ROOT / "cni_rdma" / "utf8_codec.py"
TEXTS = ["", "plain ascii", "bücher — ünïcödé", "日本語テキスト", "emoji 🦄🚀", "\udc80lone surrogate", "nul\0byte"]
BLOBS = [b"", b"ascii", "bücher 🦄".encode(), b"\xff\xfe bad", b"split \xe2\x82", b"\xed\xa0\x80 surrogate", b"\xc3"]
ERRORS = ["strict", "replace", "ignore", "surrogateescape", "backslashreplace", "surrogatepass"]


def _load():
    return load_source_as("utf8_codec_under_test", SOURCE)


@pytest.fixture
def ours():
    return _load()


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as e:  # the same exception type and words
        return (type(e).__name__, str(e))


@pytest.mark.parametrize("errors", ERRORS)
def test_encode_and_decode_are_the_standard_ones(ours, errors):
    for text in TEXTS:
        assert _outcome(ours.encode, text, errors) == _outcome(theirs.encode, text, errors)
    for blob in BLOBS:
        assert _outcome(ours.decode, blob, errors) == _outcome(theirs.decode, blob, errors)


@pytest.mark.parametrize("errors", ERRORS)
def test_incremental_decoding_byte_by_byte_matches(ours, errors):
    data = "bücher — 日本 🦄 end".encode() + b"\xff\xc3"
    for step in (1, 2, 3, 5):
        mine, real = ours.IncrementalDecoder(errors), theirs.IncrementalDecoder(errors)
        assert mine.errors == real.errors and mine.buffer == real.buffer
        for i in range(0, len(data), step):
            chunk = data[i:i + step]
            assert _outcome(mine.decode, chunk) == _outcome(real.decode, chunk)
            assert mine.getstate() == real.getstate()
        assert _outcome(mine.decode, b"", True) == _outcome(real.decode, b"", True)
        state = (b"\xe2\x82", 0)
        mine.setstate(state)
        real.setstate(state)
        assert _outcome(mine.decode, b"\xac", True) == _outcome(real.decode, b"\xac", True)
        mine.reset()
        real.reset()
        assert mine.getstate() == real.getstate() == (b"", 0)


@pytest.mark.parametrize("errors", ERRORS)
def test_incremental_encoding_matches(ours, errors):
    mine, real = ours.IncrementalEncoder(errors), theirs.IncrementalEncoder(errors)
    assert (mine.errors, mine.buffer, mine.getstate()) == (real.errors, real.buffer, real.getstate())
    for text in TEXTS:
        assert _outcome(mine.encode, text) == _outcome(real.encode, text)
        assert _outcome(mine.encode, text, True) == _outcome(real.encode, text, True)
    mine.reset()
    mine.setstate(0)


def test_the_entry_has_codecinfos_shape_and_streams_on_demand(ours):
    entry = ours.CodecInfo()
    real = theirs.getregentry()
    assert isinstance(entry, tuple) and len(entry) == 4 and entry[0] is real[0] is entry.encode  # _codecs' own
    assert entry[1] is entry.decode and entry.decode("bü".encode()) == real.decode("bü".encode())
    assert (entry.name, entry._is_text_encoding) == (real.name, real._is_text_encoding)
    assert entry.incrementaldecoder is ours.IncrementalDecoder and entry.incrementalencoder is ours.IncrementalEncoder
    reader, writer = entry.streamreader, entry.streamwriter
    assert issubclass(reader, codecs.StreamReader) and issubclass(writer, codecs.StreamWriter)
    assert reader is ours.StreamReader and writer is ours.StreamWriter
    stream = io.BytesIO("bücher 🦄\n".encode())
    assert reader(stream).read() == theirs.StreamReader(io.BytesIO(stream.getvalue())).read()
    out = io.BytesIO()
    writer(out).write("日本 🦄")
    assert out.getvalue() == "日本 🦄".encode()
    with pytest.raises(AttributeError):
        ours.NoSuchThing  # noqa: B018
    # with codecs imported (as here), the entry is the standard CodecInfo
    assert isinstance(ours.getregentry(), codecs.CodecInfo) and ours.getregentry().name == "utf-8"


def _search(ours):
    def search(name):
        return ours.CodecInfo() if name == "cni_rdma_utf8_test" else None
    return search


def test_a_text_stream_over_the_entry_reads_writes_and_seeks_as_utf8(ours):
    search = _search(ours)
    codecs.register(search)
    try:
        for newline in (None, "", "\n"):
            raw = "line one bücher\nzwei 🦄\r\ndrei 日本\n".encode()
            mine = io.TextIOWrapper(io.BytesIO(raw), encoding="cni_rdma_utf8_test", newline=newline)
            real = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", newline=newline)
            assert mine.readline() == real.readline()
            pos_mine, pos_real = mine.tell(), real.tell()
            assert mine.read(5) == real.read(5)
            mine.seek(pos_mine)
            real.seek(pos_real)
            assert mine.read() == real.read()
        out = io.BytesIO()
        w = io.TextIOWrapper(out, encoding="cni_rdma_utf8_test", errors="surrogateescape")
        w.write("bücher \udcff 🦄\n")
        w.flush()
        assert out.getvalue() == "bücher \udcff 🦄\n".encode("utf-8", "surrogateescape")
    finally:
        codecs.unregister(search)


def test_alone_it_imports_no_codecs():
    # as frozen: the interpreter's start-up imports no codecs module at all
    code = (f"import importlib.util, sys\nsys.modules.pop('codecs', None)\n"
            f"spec = importlib.util.spec_from_file_location('u', {str(SOURCE)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "e = m.getregentry(); d = e.incrementaldecoder('strict'); d.decode(b'\\xc3'); d.decode(b'\\xbc')\n"
            "print(type(e).__name__, 'codecs' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["CodecInfo", "False"]
