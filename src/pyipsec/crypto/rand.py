"""Randomness as an injected dependency.

Theory of operation: nothing in the protocol core draws randomness on its own. SPIs,
nonces, IVs, padding and key-exchange private values all come from a :class:`RandomSource`
handed in by the caller. Production code uses :data:`OS_RANDOM` (the ``secrets`` module,
i.e. the kernel CSPRNG); tests use :class:`SeededRandom`, whose output is a pure function of
its seed, so a whole IKE exchange can be replayed byte for byte.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Protocol, runtime_checkable

__all__ = ["OS_RANDOM", "OsRandom", "RandomSource", "SeededRandom"]


@runtime_checkable
class RandomSource(Protocol):
    """Where random bytes come from."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` random bytes (``n`` >= 0)."""
        ...


class OsRandom:
    """Cryptographically secure randomness from the operating system (``secrets.token_bytes``)."""

    __slots__ = ()

    def random_bytes(self, n: int) -> bytes:
        if n < 0:
            raise ValueError(f"cannot draw {n} random bytes")
        return secrets.token_bytes(n)

    def __repr__(self) -> str:
        return "OsRandom()"


OS_RANDOM: RandomSource = OsRandom()


class SeededRandom:
    """Deterministic byte stream for tests; NOT secure.

    The stream is ``SHA-256(seed || counter)`` for counter = 0, 1, 2, ... (counter as an
    8-byte big-endian integer), concatenated; calls consume it in order, so two sources with
    the same seed return the same bytes for the same sequence of requests. An ``int`` seed is
    encoded as its decimal ASCII form prefixed with ``b"int:"`` (so ``SeededRandom(1)`` and
    ``SeededRandom(b"1")`` differ).
    """

    __slots__ = ("_buffer", "_counter", "_seed")

    def __init__(self, seed: int | bytes) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int | bytes):
            raise TypeError("seed must be int or bytes")
        self._seed = b"int:" + str(seed).encode("ascii") if isinstance(seed, int) else bytes(seed)
        self._counter = 0
        self._buffer = b""

    def random_bytes(self, n: int) -> bytes:
        if n < 0:
            raise ValueError(f"cannot draw {n} random bytes")
        while len(self._buffer) < n:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            self._buffer += block
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def __repr__(self) -> str:
        return f"SeededRandom(<{len(self._seed)}-byte seed>, counter={self._counter})"
