"""Nonce payload (RFC 7296 §3.9)."""

from __future__ import annotations

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.nonce import NONCE_MAX_LEN, NONCE_MIN_LEN, Nonce


def decode(body: bytes) -> Nonce:
    return Nonce.decode_body(PayloadType.NONCE, Reader(body))


@pytest.mark.parametrize("n", [16, 32, 255, 256])
def test_valid_lengths(n: int) -> None:
    data = bytes(range(n % 256)) + bytes(n - n % 256)
    nonce = decode(data)
    assert nonce == Nonce(data)
    assert nonce.encode_body() == data
    assert nonce.payload_type is PayloadType.NONCE


@pytest.mark.parametrize("n", [0, 1, 15, 257, 1000])
def test_invalid_lengths_fail_decoding(n: int) -> None:
    with pytest.raises(DecodeError, match=r"16\.\.256"):
        decode(bytes(n))


@pytest.mark.parametrize("n", [15, 257])
def test_invalid_lengths_fail_construction(n: int) -> None:
    with pytest.raises(ValueError):
        Nonce(bytes(n))


def test_bounds() -> None:
    assert (NONCE_MIN_LEN, NONCE_MAX_LEN) == (16, 256)
