"""`io` as the bundle's interpreter starts it: the standard module's names, its ABCs made when first asked for.

At start-up the interpreter imports `io` for the three standard streams (`io.open`) and `builtins.open`, and the
standard library's `io` imports `abc` and makes four classes with ABCMeta (IOBase, RawIOBase, BufferedIOBase,
TextIOBase) and registers the `_io` classes with them: ~0.9M instructions (~0.5 ms) of every plugin call, VERSION
included, for classes no plugin uses (the streams themselves are `_io`'s). tools/launcher.c freezes this module as
`io` (tools/build_bundle.py, FROZEN_FROM_SOURCE).

It keeps the standard module's contract (tests/unit/test_light_io.py holds it to the real one): every name the
standard module has is here, the `_io` objects themselves at once; the ABCs (and `abc`) on first use through the
module's __getattr__, made as the standard module makes them (same bases, metaclass, names, docs, registrations),
so isinstance/issubclass answer as they do there. OpenWrapper keeps its 3.11 deprecation warning.
"""
import _io
import _thread
from _io import (
    DEFAULT_BUFFER_SIZE,
    BlockingIOError,
    BufferedRandom,
    BufferedReader,
    BufferedRWPair,
    BufferedWriter,
    BytesIO,
    FileIO,
    IncrementalNewlineDecoder,
    StringIO,
    TextIOWrapper,
    UnsupportedOperation,
    open,
    open_code,
    text_encoding,
)

__author__ = ("Guido van Rossum <guido@python.org>, "
              "Mike Verdone <mike.verdone@gmail.com>, "
              "Mark Russell <mark.russell@zen.co.uk>, "
              "Antoine Pitrou <solipsis@pitrou.net>, "
              "Amaury Forgeot d'Arc <amauryfa@gmail.com>, "
              "Benjamin Peterson <benjamin@python.org>")

# the standard module's, in its order (the four ABCs come from __getattr__)
__all__ = ["BlockingIOError", "open", "open_code", "IOBase", "RawIOBase",  # noqa: F822
           "FileIO", "BytesIO", "StringIO", "BufferedIOBase",  # noqa: F822
           "BufferedReader", "BufferedWriter", "BufferedRWPair",
           "BufferedRandom", "TextIOBase", "TextIOWrapper",  # noqa: F822
           "UnsupportedOperation", "SEEK_SET", "SEEK_CUR", "SEEK_END",
           "DEFAULT_BUFFER_SIZE", "text_encoding", "IncrementalNewlineDecoder"]

# as the standard module: the exception pretends it was made here
UnsupportedOperation.__module__ = "io"

SEEK_SET = 0
SEEK_CUR = 1
SEEK_END = 2

# made on first use (`_make_abcs`), with `abc`, which the standard module has as an attribute too
_LAZY = ("IOBase", "RawIOBase", "BufferedIOBase", "TextIOBase", "abc")
_making = _thread.allocate_lock()  # two threads asking at once get the same classes


def _make_abcs() -> None:
    """The standard module's ABCs and registrations, step for step, published once."""
    with _making:
        if "IOBase" in globals():
            return
        import abc

        class IOBase(_io._IOBase, metaclass=abc.ABCMeta):
            __doc__ = _io._IOBase.__doc__
            __qualname__ = "IOBase"  # made in a function: named as at the standard module's top level

        class RawIOBase(_io._RawIOBase, IOBase):
            __doc__ = _io._RawIOBase.__doc__
            __qualname__ = "RawIOBase"

        class BufferedIOBase(_io._BufferedIOBase, IOBase):
            __doc__ = _io._BufferedIOBase.__doc__
            __qualname__ = "BufferedIOBase"

        class TextIOBase(_io._TextIOBase, IOBase):
            __doc__ = _io._TextIOBase.__doc__
            __qualname__ = "TextIOBase"

        RawIOBase.register(FileIO)
        for buffered in (BytesIO, BufferedReader, BufferedWriter, BufferedRandom, BufferedRWPair):
            BufferedIOBase.register(buffered)
        for text in (StringIO, TextIOWrapper):
            TextIOBase.register(text)
        # (the standard module registers _io._WindowsConsoleIO too: Windows only)
        globals().update(IOBase=IOBase, RawIOBase=RawIOBase, BufferedIOBase=BufferedIOBase, TextIOBase=TextIOBase,
                         abc=abc)


def __getattr__(name):
    if name in _LAZY:
        _make_abcs()
        return globals()[name]
    if name == "OpenWrapper":  # as the standard module (3.11): deprecated, warns, then is `open`
        import warnings

        warnings.warn("OpenWrapper is deprecated, use open instead", DeprecationWarning, stacklevel=2)
        globals()["OpenWrapper"] = open  # warns once, as the standard module's `global OpenWrapper`
        return open
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    # the lazy names are listed as the standard module lists them, made or not
    return sorted(set(globals()) | set(_LAZY))
