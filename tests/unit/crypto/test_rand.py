from __future__ import annotations

import hashlib

import pytest

from pyipsec.crypto.rand import OS_RANDOM, OsRandom, RandomSource, SeededRandom


def test_os_random_returns_requested_length_and_varies() -> None:
    assert isinstance(OS_RANDOM, OsRandom)
    assert isinstance(OS_RANDOM, RandomSource)
    assert OS_RANDOM.random_bytes(0) == b""
    a, b = OS_RANDOM.random_bytes(32), OS_RANDOM.random_bytes(32)
    assert len(a) == len(b) == 32
    assert a != b
    with pytest.raises(ValueError):
        OS_RANDOM.random_bytes(-1)


def test_seeded_random_is_reproducible_and_seed_dependent() -> None:
    assert SeededRandom(7).random_bytes(100) == SeededRandom(7).random_bytes(100)
    assert SeededRandom(7).random_bytes(32) != SeededRandom(8).random_bytes(32)
    assert SeededRandom(b"7").random_bytes(32) != SeededRandom(7).random_bytes(32)
    assert isinstance(SeededRandom(1), RandomSource)


def test_seeded_random_is_one_stream_however_it_is_read() -> None:
    whole = SeededRandom(b"seed").random_bytes(100)
    parts = SeededRandom(b"seed")
    assert (
        parts.random_bytes(1) + parts.random_bytes(40) + parts.random_bytes(0) + parts.random_bytes(59)
        == whole
    )


def test_seeded_random_stream_definition() -> None:
    # SHA-256(seed || counter) with an 8-byte big-endian counter, as documented.
    expected = b"".join(hashlib.sha256(b"k" + i.to_bytes(8, "big")).digest() for i in range(3))
    assert SeededRandom(b"k").random_bytes(96) == expected
    expected_int = hashlib.sha256(b"int:5" + bytes(8)).digest()
    assert SeededRandom(5).random_bytes(32) == expected_int


def test_seeded_random_rejects_bad_input() -> None:
    with pytest.raises(TypeError):
        SeededRandom("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SeededRandom(True)
    with pytest.raises(ValueError):
        SeededRandom(1).random_bytes(-1)
