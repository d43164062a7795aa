"""A tiny consumer of fuzzer bytes (what atheris' FuzzedDataProvider does, in plain Python, so
that the targets replay without atheris). Reading past the end yields zeros / empty bytes."""

from __future__ import annotations

__all__ = ["FuzzInput", "frame"]


class FuzzInput:
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def u8(self) -> int:
        b = self.take(1)
        return b[0] if b else 0

    def u16(self) -> int:
        return int.from_bytes(self.take(2).rjust(2, b"\0"), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4).rjust(4, b"\0"), "big")

    def chunk(self) -> bytes:
        """A u16-length-prefixed piece."""
        return self.take(self.u16())

    def chunks(self, limit: int = 64) -> list[bytes]:
        """u16-length-prefixed pieces until the input ends (at most ``limit``)."""
        out: list[bytes] = []
        while self.remaining and len(out) < limit:
            out.append(self.chunk())
        return out

    def rest(self) -> bytes:
        return self.take(self.remaining)


def frame(*pieces: bytes) -> bytes:
    """The inverse of :meth:`FuzzInput.chunks`, for building seeds."""
    return b"".join(len(p).to_bytes(2, "big") + p for p in pieces)
