"""The `encodings` package as the bundle's interpreter starts it: the codec search function, without the alias table.

The interpreter imports `encodings` at start-up to look up UTF-8 (file names, stdin, stdout), and the standard
library's package imports `encodings.aliases` for that: ~350 names unmarshalled and interned, ~1.1M instructions
(~0.4 ms) of every plugin call, VERSION included, for a name that is not an alias. tools/launcher.c freezes this
module as `encodings` in place of the package's `__init__` (tools/build_bundle.py, FROZEN_AT_START); the codec
modules themselves (`encodings.utf_8`, ...) and `encodings.aliases` still come from the bundle's directory.

The search is the standard library's, step for step (tests/unit/test_codec_search.py holds it to the real one over
every alias and codec name): a name is normalized, looked up in the alias table, and the codec module imported.
Only the table is loaded on first need: for the names in `NOT_ALIASES` (none is a key of the table, the test
checks) the lookup cannot find anything, so it is skipped. The package's other names (`normalize_encoding`,
`CodecRegistryError`, `search_function`, `aliases`, `_aliases`, `_cache`) are here as there; the exception class,
raised only for a broken codec module, is made on first use (~0.1M instructions of every call). It imports
`_codecs`, not `codecs` (see cni_rdma/utf8_codec.py).
"""
import _codecs
import sys

# Normalized codec names the interpreter and the plugins ask for that are no key of encodings.aliases.aliases:
# their lookup there finds nothing, so it is not made (the table stays unloaded).
NOT_ALIASES = frozenset({"utf_8", "ascii", "latin_1", "utf_8_sig"})

_cache: dict = {}
_unknown = "--unknown--"
_import_tail = ["*"]


def normalize_encoding(encoding):
    """As the standard library's: runs of non-alphanumerics (but '.') become one '_', non-ASCII is dropped."""
    if isinstance(encoding, bytes):
        encoding = str(encoding, "ascii")
    chars: list[str] = []
    punct = False
    for c in encoding:
        if c.isalnum() or c == ".":
            if punct and chars:
                chars.append("_")
            if c.isascii():
                chars.append(c)
            punct = False
        else:
            punct = True
    return "".join(chars)


def _registry_error() -> type:
    """`CodecRegistryError`, made on first use; one class however many threads ask at once."""
    made = globals().get("CodecRegistryError")
    if made is None:
        class CodecRegistryError(LookupError, SystemError):
            __qualname__ = "CodecRegistryError"  # named as at the standard package's top level

        made = globals().setdefault("CodecRegistryError", CodecRegistryError)
    return made


def __getattr__(name):
    if name == "CodecRegistryError":
        return _registry_error()
    # `encodings._aliases` and `encodings.aliases`: the table, loaded on first use
    if name in ("_aliases", "aliases"):
        table = _alias_table()
        return table if name == "_aliases" else sys.modules["encodings.aliases"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _alias_table() -> dict:
    import encodings.aliases

    return encodings.aliases.aliases


def search_function(encoding):
    entry = _cache.get(encoding, _unknown)
    if entry is not _unknown:
        return entry

    norm_encoding = normalize_encoding(encoding)
    aliased_encoding = None
    if norm_encoding not in NOT_ALIASES:
        table = _alias_table()
        aliased_encoding = table.get(norm_encoding) or table.get(norm_encoding.replace(".", "_"))
    modnames = [aliased_encoding, norm_encoding] if aliased_encoding is not None else [norm_encoding]
    mod = None
    for modname in modnames:
        if not modname or "." in modname:
            continue
        try:
            # ImportError: no such codec module, or one that imports a name this platform lacks (mbcs, oem)
            mod = __import__("encodings." + modname, fromlist=_import_tail, level=0)
        except ImportError:
            pass
        else:
            break

    getregentry = getattr(mod, "getregentry", None)
    if mod is None or getregentry is None:  # no module, or not a codec module
        _cache[encoding] = None
        return None

    entry = getregentry()
    # a CodecInfo (or the bundle's UTF-8 entry, cni_rdma/utf8_codec.py, which has its attributes without the codecs
    # module); a bare tuple, the old API, is made one as the standard library does
    if not hasattr(entry, "incrementaldecoder"):
        import codecs

        if not 4 <= len(entry) <= 7:
            raise _registry_error()(f'module "{mod.__name__}" ({mod.__file__}) failed to register')
        if (not callable(entry[0]) or not callable(entry[1]) or
                (entry[2] is not None and not callable(entry[2])) or
                (entry[3] is not None and not callable(entry[3])) or
                (len(entry) > 4 and entry[4] is not None and not callable(entry[4])) or
                (len(entry) > 5 and entry[5] is not None and not callable(entry[5]))):
            raise _registry_error()(f'incompatible codecs in module "{mod.__name__}" ({mod.__file__})')
        if len(entry) < 7 or entry[6] is None:
            entry = (*entry, *(None,) * (6 - len(entry)), mod.__name__.split(".", 1)[1])
        entry = codecs.CodecInfo(*entry)

    _cache[encoding] = entry

    # the codec's own aliases, without overwriting any already known
    codecaliases = getattr(mod, "getaliases", None)
    if codecaliases is not None:
        table = _alias_table()
        for alias in codecaliases():
            if alias not in table:
                table[alias] = modname
    return entry


_codecs.register(search_function)
