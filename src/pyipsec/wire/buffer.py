"""Bounds-checked readers and writers over bytes.

Theory of operation: every decoder reads through a :class:`Reader`, which raises
:class:`~pyipsec.errors.DecodeError` (with the absolute offset in the message) instead of
``IndexError`` or ``struct.error`` whenever input is short. ``Reader.sub(n)`` carves out a
nested, length-delimited region (a payload body, a proposal, a transform) whose own reader
cannot run past it; ``expect_end()`` rejects trailing bytes inside such a region.
"""

from __future__ import annotations

from pyipsec.errors import DecodeError

__all__ = ["Reader", "Writer"]


class Reader:
    """Sequential big-endian reader; ``offset`` is absolute within the outermost buffer."""

    __slots__ = ("_base", "_data", "_end", "_pos")

    def __init__(self, data: bytes, *, base: int = 0) -> None:
        self._data = data
        self._pos = 0
        self._end = len(data)
        self._base = base

    @property
    def offset(self) -> int:
        """Absolute offset of the next byte to read."""
        return self._base + self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def _take(self, n: int, what: str) -> bytes:
        if n < 0 or self._pos + n > self._end:
            raise DecodeError(f"truncated {what}: need {n} bytes, have {self.remaining}", offset=self.offset)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u8(self, what: str = "field") -> int:
        return self._take(1, what)[0]

    def u16(self, what: str = "field") -> int:
        return int.from_bytes(self._take(2, what), "big")

    def u32(self, what: str = "field") -> int:
        return int.from_bytes(self._take(4, what), "big")

    def u64(self, what: str = "field") -> int:
        return int.from_bytes(self._take(8, what), "big")

    def read(self, n: int, what: str = "field") -> bytes:
        return self._take(n, what)

    def rest(self) -> bytes:
        return self._take(self.remaining, "rest")

    def sub(self, n: int, what: str = "structure") -> Reader:
        """A reader over the next ``n`` bytes, consumed from this one."""
        start = self.offset
        return Reader(self._take(n, what), base=start)

    def expect_end(self, what: str = "structure") -> None:
        if not self.at_end():
            raise DecodeError(f"{self.remaining} unexpected trailing bytes in {what}", offset=self.offset)

    def fail(self, message: str) -> DecodeError:
        """A DecodeError at the current offset, for the caller to raise."""
        return DecodeError(message, offset=self.offset)


class Writer:
    """Append-only big-endian writer with in-place patching of length fields."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def u8(self, v: int) -> Writer:
        self._buf.append(v)
        return self

    def u16(self, v: int) -> Writer:
        self._buf += v.to_bytes(2, "big")
        return self

    def u32(self, v: int) -> Writer:
        self._buf += v.to_bytes(4, "big")
        return self

    def u64(self, v: int) -> Writer:
        self._buf += v.to_bytes(8, "big")
        return self

    def write(self, b: bytes) -> Writer:
        self._buf += b
        return self

    def patch_u16(self, pos: int, v: int) -> None:
        self._buf[pos : pos + 2] = v.to_bytes(2, "big")

    def patch_u32(self, pos: int, v: int) -> None:
        self._buf[pos : pos + 4] = v.to_bytes(4, "big")

    def getvalue(self) -> bytes:
        return bytes(self._buf)
