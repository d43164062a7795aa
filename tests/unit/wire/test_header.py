"""IKE header codec (RFC 7296 §3.1)."""

from __future__ import annotations

import pytest

from pyipsec.errors import DecodeError, InvalidMajorVersion
from pyipsec.iana.ikev2 import ExchangeType, HeaderFlag, NotifyType, PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.header import IKE_HEADER_LEN, IkeHeader

SPI_I = bytes.fromhex("b9d633935c2ae7c4")
SPI_R = bytes.fromhex("d317437a796ab0b8")

# An IKE_AUTH request header: next payload SK (46), version 2.0, exchange 35, flags I,
# message ID 1, length 811 (strongSwan capture strongswan-cert-ecdsa.json, message 2).
AUTH_REQ = bytes.fromhex("b9d633935c2ae7c4d317437a796ab0b82e202308000000010000032b")


def make(**kw: object) -> IkeHeader:
    args: dict[str, object] = {
        "next_payload": PayloadType.SK,
        "exchange_type": ExchangeType.IKE_AUTH,
        "flags": HeaderFlag.INITIATOR,
        "message_id": 1,
        "length": 811,
    }
    args.update(kw)
    return IkeHeader(SPI_I, SPI_R, **args)  # type: ignore[arg-type]


def test_length_constant() -> None:
    assert IKE_HEADER_LEN == 28 == len(make().encode())


def test_encode_known_bytes() -> None:
    assert make().encode() == AUTH_REQ


def test_decode_known_bytes() -> None:
    h = IkeHeader.decode(Reader(AUTH_REQ))
    assert h == make()
    assert h.next_payload is PayloadType.SK
    assert h.exchange_type is ExchangeType.IKE_AUTH
    assert (h.major_version, h.minor_version) == (2, 0)
    assert h.is_initiator and not h.is_response


def test_response_flag() -> None:
    h = IkeHeader.decode(Reader(AUTH_REQ[:19] + b"\x20" + AUTH_REQ[20:]))
    assert h.is_response and not h.is_initiator


def test_unknown_flag_bits_and_minor_version_are_kept() -> None:
    raw = AUTH_REQ[:17] + b"\x27" + AUTH_REQ[18:19] + b"\xff" + AUTH_REQ[20:]
    h = IkeHeader.decode(Reader(raw))
    assert int(h.flags) == 0xFF and h.minor_version == 7
    assert h.is_initiator and h.is_response
    assert h.encode() == raw


def test_unknown_exchange_and_payload_types_are_kept() -> None:
    raw = AUTH_REQ[:16] + b"\x99\x20\xf0" + AUTH_REQ[19:]
    h = IkeHeader.decode(Reader(raw))
    assert int(h.next_payload) == 0x99 and int(h.exchange_type) == 0xF0
    assert not h.exchange_type.is_assigned
    assert h.encode() == raw


@pytest.mark.parametrize("version", [0x10, 0x30, 0x00, 0xF0])
def test_other_major_versions_raise_invalid_major_version(version: int) -> None:
    raw = AUTH_REQ[:17] + bytes([version]) + AUTH_REQ[18:]
    with pytest.raises(InvalidMajorVersion) as exc:
        IkeHeader.decode(Reader(raw))
    assert exc.value.major_version == version >> 4
    assert exc.value.offset == 17
    assert exc.value.notify is NotifyType.INVALID_MAJOR_VERSION
    assert isinstance(exc.value, DecodeError)


@pytest.mark.parametrize("n", range(IKE_HEADER_LEN))
def test_truncated_header(n: int) -> None:
    with pytest.raises(DecodeError):
        IkeHeader.decode(Reader(AUTH_REQ[:n]))


def test_decode_reads_exactly_28_bytes() -> None:
    r = Reader(AUTH_REQ + b"rest")
    IkeHeader.decode(r)
    assert r.offset == 28 and r.rest() == b"rest"


@pytest.mark.parametrize(
    "kw",
    [
        {"message_id": -1},
        {"message_id": 1 << 32},
        {"length": 1 << 32},
        {"major_version": 16},
        {"minor_version": -1},
        {"flags": 256},
        {"exchange_type": 300},
        {"next_payload": 256},
    ],
)
def test_invalid_field_values_are_rejected(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        make(**kw)


def test_spi_length_is_checked() -> None:
    with pytest.raises(ValueError):
        IkeHeader(b"short", SPI_R, next_payload=0, exchange_type=34, flags=0, message_id=0, length=28)  # type: ignore[arg-type]


def test_plain_ints_are_normalised_to_enums() -> None:
    h = IkeHeader(SPI_I, SPI_R, next_payload=33, exchange_type=34, flags=8, message_id=0, length=28)  # type: ignore[arg-type]
    assert h.next_payload is PayloadType.SA
    assert h.exchange_type is ExchangeType.IKE_SA_INIT
    assert isinstance(h.flags, HeaderFlag) and h.is_initiator
