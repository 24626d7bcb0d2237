"""cni_rdma/codec_search.py (frozen as the bundle's `encodings`) searches codecs as the standard library's does."""
from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import random
import sys

import pytest

from tests.topology import ROOT
from tests.unit import load_source_as

NAMES = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())) + [
    "UTF-8", "utf8", "utf-8", "U8", "Latin-1", "latin1", "ISO-8859-15", "iso_8859_15", "cp1252", "US-ASCII",
    "ascii", "ANSI_X3.4-1968", "utf-8-sig", "UTF8-SIG", "mbcs", "oem", "unknown", "", "x.y", "utf..8",
    "  utf 8  ", "latin_1", "idna", "punycode", "rot13", "hex", "base64", "zlib", "undefined", "euc-jp", "tis-620",
    "koi8_r", "mac-roman", "utf-32-le", "unicode_escape", "raw-unicode-escape", "√utf8", "utf\u20118",
]


@pytest.fixture
def ours():
    # registers its search function (after the standard library's)
    module = load_source_as("codec_search_under_test", ROOT / "cni_rdma" / "codec_search.py")
    yield module
    codecs.unregister(module.search_function)


def test_no_fast_path_name_is_an_alias():
    # the lookup it skips would have found nothing
    from cni_rdma import codec_search

    assert not codec_search.NOT_ALIASES & set(encodings.aliases.aliases)
    for name in codec_search.NOT_ALIASES:
        assert name.replace(".", "_") not in encodings.aliases.aliases


@pytest.mark.parametrize("name", NAMES)
def test_the_search_finds_what_the_standard_librarys_finds(ours, name):
    theirs = encodings.search_function(name)
    found = ours.search_function(name)
    if theirs is None:
        assert found is None
        return
    assert found is not None
    fields = ("encode", "decode", "incrementalencoder", "incrementaldecoder", "streamreader", "streamwriter")
    # getregentry makes new Codec instances each call: the same function of the same codec class, not the same
    # bound method
    assert found.name == theirs.name
    for field in fields:
        mine, real = getattr(found, field), getattr(theirs, field)
        assert getattr(mine, "__func__", mine) is getattr(real, "__func__", real), field
    assert ours.search_function(name) is found  # cached


def test_normalize_encoding_is_the_standard_librarys(ours):
    rng = random.Random(7)
    alphabet = "aZ09._- \t√é\u2011-/"
    texts = NAMES + ["".join(rng.choice(alphabet) for _ in range(rng.randrange(12))) for _ in range(2000)]
    for text in texts:
        assert ours.normalize_encoding(text) == encodings.normalize_encoding(text), text
    assert ours.normalize_encoding(b"UTF-8") == encodings.normalize_encoding(b"UTF-8")


def test_the_alias_table_loads_only_when_a_name_needs_it(ours):
    # a fresh interpreter without the standard library's encodings package: ours alone, as frozen
    code = (f"import sys, importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('encodings_probe', {str(ROOT / 'cni_rdma' / 'codec_search.py')!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "del sys.modules['encodings.aliases']\n"
            "m.search_function('utf-8'); m.search_function('ascii')\n"
            "print('encodings.aliases' in sys.modules)\n"
            "m.search_function('latin1')\n"
            "print('encodings.aliases' in sys.modules, m._aliases is sys.modules['encodings.aliases'].aliases)\n")
    import subprocess

    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]


@pytest.mark.parametrize("entry", [("not", "callable", None, None), (len, len, None), (len, len, 1, None)])
def test_a_broken_codec_module_raises_codecregistryerror_as_the_standard_one(ours, monkeypatch, tmp_path, entry):
    # the exception class is made on first use (it is raised only here): the same class, name and message
    assert "CodecRegistryError" not in vars(ours)
    module = type(sys)("encodings.noos_broken")
    module.__file__ = str(tmp_path / "noos_broken.py")
    module.getregentry = lambda: entry
    monkeypatch.setitem(sys.modules, "encodings.noos_broken", module)
    outcomes = []
    for search, error in ((encodings.search_function, encodings.CodecRegistryError), (ours.search_function, None)):
        with pytest.raises(LookupError) as raised:
            search("noos-broken")
        outcomes.append((type(raised.value).__name__, str(raised.value)))
        assert isinstance(raised.value, error or ours.CodecRegistryError)
    assert outcomes[0] == outcomes[1]
    mine = ours.CodecRegistryError
    assert vars(ours)["CodecRegistryError"] is mine
    assert mine.__mro__[1:] == encodings.CodecRegistryError.__mro__[1:]
    assert (mine.__name__, mine.__qualname__, mine.__module__) == ("CodecRegistryError", "CodecRegistryError",
                                                                  ours.__name__)
