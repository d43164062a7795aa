"""Shared helpers for the crypto unit tests: vector loading and a scripted RandomSource."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def load_vectors(name: str) -> dict[str, Any]:
    """The parsed JSON vector file ``tests/vectors/<name>``."""
    with (VECTORS / name).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def h(text: str) -> bytes:
    """Hex to bytes, ignoring whitespace."""
    return bytes.fromhex("".join(text.split()))


class ScriptedRandom:
    """A RandomSource that returns pre-set byte strings, one per call, and checks the sizes.

    Used to inject known private values (RFC 5903, RFC 7748) into key generation.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = list(chunks)

    def random_bytes(self, n: int) -> bytes:
        assert self._chunks, "ScriptedRandom ran out of scripted values"
        chunk = self._chunks.pop(0)
        assert len(chunk) == n, f"scripted {len(chunk)} bytes but {n} were requested"
        return chunk

    @property
    def exhausted(self) -> bool:
        return not self._chunks
