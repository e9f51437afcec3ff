"""CBOR (RFC 8949) in pure Python: what a step's input and output travel as.

Encodes ``None``, ``bool``, ``int`` (64-bit range), ``float`` (as 64-bit),
``str``, ``bytes``, ``list``/``tuple`` and ``dict`` (string or integer
keys); decodes the same, plus half and single floats, indefinite lengths and
tags (whose content is returned as it is). Anything else is a ``CborError``
naming what and where, never a crash of the component.

It is bundled into every Python worker (no native extension can be), so it
is small and has no dependencies.
"""

import math
import struct

__all__ = ["CborError", "dumps", "loads"]

# Nesting deeper than this is refused (the host refuses deeper output too).
MAX_DEPTH = 256


class CborError(ValueError):
    """Bytes that are not one well-formed CBOR item, or a value CBOR cannot hold."""


def dumps(value) -> bytes:
    """``value`` as CBOR bytes."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def loads(data: bytes):
    """The one CBOR item in ``data`` (trailing bytes are an error)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CborError(f"expected bytes, got {type(data).__name__}")
    reader = _Reader(bytes(data))
    value = reader.item(0)
    if reader.pos != len(reader.data):
        raise CborError(f"{len(reader.data) - reader.pos} bytes after the first CBOR item")
    return value


def _head(major: int, n: int, out: bytearray) -> None:
    if n < 24:
        out.append(major << 5 | n)
    elif n < 1 << 8:
        out += bytes((major << 5 | 24, n))
    elif n < 1 << 16:
        out.append(major << 5 | 25)
        out += struct.pack(">H", n)
    elif n < 1 << 32:
        out.append(major << 5 | 26)
        out += struct.pack(">I", n)
    else:
        out.append(major << 5 | 27)
        out += struct.pack(">Q", n)


def _encode(v, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CborError(f"nested deeper than {MAX_DEPTH} levels")
    if v is None:
        out.append(0xF6)
    elif v is True:
        out.append(0xF5)
    elif v is False:
        out.append(0xF4)
    elif isinstance(v, int):
        if v >= 0:
            if v >= 1 << 64:
                raise CborError(f"integer {v} does not fit in 64 bits")
            _head(0, v, out)
        else:
            if -v - 1 >= 1 << 64:
                raise CborError(f"integer {v} does not fit in 64 bits")
            _head(1, -v - 1, out)
    elif isinstance(v, float):
        out.append(0xFB)
        out += struct.pack(">d", v)
    elif isinstance(v, str):
        try:
            raw = v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise CborError(f"text is not valid Unicode: {e}") from None
        _head(3, len(raw), out)
        out += raw
    elif isinstance(v, (bytes, bytearray, memoryview)):
        raw = bytes(v)
        _head(2, len(raw), out)
        out += raw
    elif isinstance(v, (list, tuple)):
        _head(4, len(v), out)
        for item in v:
            _encode(item, out, depth + 1)
    elif isinstance(v, dict):
        _head(5, len(v), out)
        for key, item in v.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise CborError(f"map key {key!r}: only str and int keys are supported")
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise CborError(f"cannot encode a {type(v).__name__} as CBOR")


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise CborError(f"truncated: {n} bytes wanted at offset {self.pos}, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def argument(self, info: int) -> int:
        if info < 24:
            return info
        if info == 24:
            return self.take(1)[0]
        if info == 25:
            return struct.unpack(">H", self.take(2))[0]
        if info == 26:
            return struct.unpack(">I", self.take(4))[0]
        if info == 27:
            return struct.unpack(">Q", self.take(8))[0]
        raise CborError(f"reserved additional information {info} at offset {self.pos - 1}")

    def item(self, depth: int):
        if depth > MAX_DEPTH:
            raise CborError(f"nested deeper than {MAX_DEPTH} levels")
        start = self.pos
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self.simple(info, start)
        if info == 31:
            return self.indefinite(major, depth, start)
        n = self.argument(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return self.take(n)
        if major == 3:
            return self.text(n, start)
        if major == 4:
            return [self.item(depth + 1) for _ in range(n)]
        if major == 5:
            out = {}
            for _ in range(n):
                key = self.item(depth + 1)
                out[self.hashable(key, start)] = self.item(depth + 1)
            return out
        # major 6: a tag; its content stands for it.
        return self.item(depth + 1)

    def text(self, n: int, start: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CborError(f"text at offset {start} is not UTF-8: {e}") from None

    def simple(self, info: int, start: int):
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return _half(struct.unpack(">H", self.take(2))[0])
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31:
            raise CborError(f"unexpected break at offset {start}")
        raise CborError(f"unsupported simple value {info} at offset {start}")

    def indefinite(self, major: int, depth: int, start: int):
        if major in (2, 3):
            parts = []
            while self.peek_break() is False:
                part = self.item(depth + 1)
                if not isinstance(part, bytes if major == 2 else str):
                    raise CborError(f"indefinite string at offset {start} has a chunk of another type")
                parts.append(part)
            return (b"" if major == 2 else "").join(parts)
        if major == 4:
            out = []
            while self.peek_break() is False:
                out.append(self.item(depth + 1))
            return out
        if major == 5:
            out = {}
            while self.peek_break() is False:
                key = self.item(depth + 1)
                out[self.hashable(key, start)] = self.item(depth + 1)
            return out
        raise CborError(f"indefinite length for major type {major} at offset {start}")

    def peek_break(self) -> bool:
        if self.pos >= len(self.data):
            raise CborError("truncated: an indefinite item has no break")
        if self.data[self.pos] == 0xFF:
            self.pos += 1
            return True
        return False

    @staticmethod
    def hashable(key, start: int):
        """A map key as Python can hold it: arrays become tuples (all the
        way down); a map as a key is refused."""
        if isinstance(key, list):
            return tuple(_Reader.hashable(k, start) for k in key)
        if isinstance(key, dict):
            raise CborError(f"a map key at offset {start} is a map")
        return key


def _half(bits: int) -> float:
    sign = -1.0 if bits & 0x8000 else 1.0
    exponent = (bits >> 10) & 0x1F
    fraction = bits & 0x3FF
    if exponent == 0:
        return sign * fraction * 2.0**-24
    if exponent == 31:
        return sign * math.inf if fraction == 0 else math.nan
    return sign * (1 + fraction / 1024) * 2.0 ** (exponent - 15)
