"""Key Exchange payload (RFC 7296 §3.4)."""

from __future__ import annotations

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType
from pyipsec.iana.transforms import KeId
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.ke import KeyExchange

# Group 31 (Curve25519), RESERVED 0, 32 bytes of public value.
PUB = bytes(range(32))
BODY = bytes.fromhex("001f 0000") + PUB


def decode(body: bytes) -> KeyExchange:
    return KeyExchange.decode_body(PayloadType.KE, Reader(body))


def test_decode() -> None:
    ke = decode(BODY)
    assert ke == KeyExchange(KeId.CURVE25519, PUB)
    assert ke.group is KeId.CURVE25519
    assert ke.payload_type is PayloadType.KE


def test_encode() -> None:
    assert KeyExchange(KeId.CURVE25519, PUB).encode_body() == BODY


def test_reserved_ignored_on_receipt_and_sent_as_zero() -> None:
    ke = decode(bytes.fromhex("001f ffff") + PUB)
    assert ke.encode_body() == BODY


def test_unknown_group_is_kept() -> None:
    ke = decode(bytes.fromhex("abcd 0000 01"))
    assert int(ke.group) == 0xABCD and not ke.group.is_assigned
    assert ke.encode_body() == bytes.fromhex("abcd 0000 01")


def test_plain_int_group_is_normalised() -> None:
    assert KeyExchange(19, b"").group is KeId.ECP_256  # type: ignore[arg-type]


def test_empty_data_decodes() -> None:
    assert decode(bytes(4)).data == b""


@pytest.mark.parametrize("n", range(4))
def test_truncated(n: int) -> None:
    with pytest.raises(DecodeError):
        decode(BODY[:n])


def test_group_out_of_range() -> None:
    with pytest.raises(ValueError):
        KeyExchange(0x10000, b"")  # type: ignore[arg-type]
