"""`encodings.utf_8` as the bundle's interpreter starts it: the UTF-8 codec without the `codecs` module.

At start-up the interpreter looks up UTF-8 for file names and the three standard streams, and the standard
library's `encodings.utf_8` imports `codecs` for its base classes and CodecInfo: two module bodies and ~20
classes, ~1.5M instructions (~0.7 ms) of every plugin call, VERSION included, where no plugin uses `codecs` at
all. tools/launcher.c freezes this module as `encodings.utf_8` (tools/build_bundle.py, FROZEN_FROM_SOURCE).

It keeps the standard module's contract (tests/unit/test_utf8_codec.py holds it to the real one): the same
`encode`/`decode` (the C functions of `_codecs`), incremental coders with the methods and state of
codecs.IncrementalEncoder and codecs.BufferedIncrementalDecoder, and a registry entry that is a 4-tuple with
CodecInfo's attributes. The stream classes, which need `codecs`, are made on first use (`StreamReader`,
`StreamWriter`, and the entry's `streamreader`/`streamwriter`); where `codecs` is already imported, `getregentry`
returns the standard CodecInfo itself.
"""
import _codecs
import sys

encode = _codecs.utf_8_encode


def decode(input, errors="strict"):
    return _codecs.utf_8_decode(input, errors, True)


class IncrementalEncoder:
    """codecs.IncrementalEncoder's contract; UTF-8 keeps no state."""

    def __init__(self, errors="strict"):
        self.errors = errors
        self.buffer = ""

    def encode(self, input, final=False):
        return _codecs.utf_8_encode(input, self.errors)[0]

    def reset(self):
        pass

    def getstate(self):
        return 0

    def setstate(self, state):
        pass


class IncrementalDecoder:
    """codecs.BufferedIncrementalDecoder's contract: the bytes of a sequence split across calls wait in `buffer`."""

    def __init__(self, errors="strict"):
        self.errors = errors
        self.buffer = b""

    def decode(self, input, final=False):
        data = self.buffer + input
        result, consumed = _codecs.utf_8_decode(data, self.errors, final)
        self.buffer = data[consumed:]
        return result

    def reset(self):
        self.buffer = b""

    def getstate(self):
        return (self.buffer, 0)

    def setstate(self, state):
        self.buffer = state[0]


def _stream_class(name: str):
    made = globals().get(name)
    if made is None:
        import codecs

        class StreamWriter(codecs.StreamWriter):
            encode = _codecs.utf_8_encode  # type: ignore[assignment]  # as the standard module has it

        class StreamReader(codecs.StreamReader):
            decode = _codecs.utf_8_decode  # type: ignore[assignment]

        globals().update(StreamWriter=StreamWriter, StreamReader=StreamReader)
        made = globals()[name]
    return made


def __getattr__(name):
    # the stream classes, made (with codecs) when first asked for
    if name in ("StreamReader", "StreamWriter"):
        return _stream_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class CodecInfo(tuple):
    """The registry entry without codecs.CodecInfo: (encode, decode, streamreader, streamwriter) as a tuple, which
    the interpreter's codec registry takes, and CodecInfo's attributes. The stream items are None in the tuple
    (only C extensions read them there) and made on first use as attributes."""

    name = "utf-8"
    _is_text_encoding = True
    encode = staticmethod(encode)
    decode = staticmethod(decode)
    incrementalencoder = IncrementalEncoder
    incrementaldecoder = IncrementalDecoder

    def __new__(cls):
        return tuple.__new__(cls, (encode, decode, None, None))

    @property
    def streamreader(self):
        return _stream_class("StreamReader")

    @property
    def streamwriter(self):
        return _stream_class("StreamWriter")

    def __repr__(self):
        return f"<codecs.CodecInfo object for encoding {self.name} at {id(self):#x}>"


def getregentry():
    codecs = sys.modules.get("codecs")
    if codecs is None:
        return CodecInfo()
    return codecs.CodecInfo(name="utf-8", encode=encode, decode=decode, incrementalencoder=IncrementalEncoder,
                            incrementaldecoder=IncrementalDecoder, streamreader=_stream_class("StreamReader"),
                            streamwriter=_stream_class("StreamWriter"))
