"""Delete payload (RFC 7296 §3.11)."""

from __future__ import annotations

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType, ProtocolId
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.delete import Delete, delete_spi_size

IKE_BODY = bytes.fromhex("01 00 0000")  # protocol IKE, SPI size 0, no SPIs
ESP_BODY = bytes.fromhex("03 04 0002 c42fce49 f049d88d")


def decode(body: bytes) -> Delete:
    return Delete.decode_body(PayloadType.D, Reader(body))


def test_ike_delete() -> None:
    d = decode(IKE_BODY)
    assert d == Delete(ProtocolId.IKE) == Delete.ike()
    assert d.spis == ()
    assert d.encode_body() == IKE_BODY
    assert d.payload_type is PayloadType.D


def test_esp_delete() -> None:
    d = decode(ESP_BODY)
    assert d == Delete(ProtocolId.ESP, (bytes.fromhex("c42fce49"), bytes.fromhex("f049d88d")))
    assert d.encode_body() == ESP_BODY


def test_ah_delete() -> None:
    assert decode(bytes.fromhex("02 04 0001 00000100")).spis == (bytes.fromhex("00000100"),)


def test_spi_sizes() -> None:
    assert delete_spi_size(ProtocolId.IKE) == 0
    assert delete_spi_size(ProtocolId.ESP) == delete_spi_size(ProtocolId.AH) == 4
    assert delete_spi_size(ProtocolId.NONE) is None


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("01 08 0000", "SPI size"),  # IKE with an SPI size
        ("03 00 0000", "SPI size"),  # ESP with SPI size 0
        ("03 08 0001 0000000000000001", "SPI size"),  # ESP with 8-byte SPIs
        ("01 00 0001", "no SPIs"),  # IKE with a SPI count
        ("00 00 0000", "unsupported protocol"),
        ("07 04 0000", "unsupported protocol"),
        ("03 04 0002 c42fce49", "do not fill"),  # fewer SPIs than announced
        ("03 04 0001 c42fce49 f0", "do not fill"),  # trailing bytes
        ("03 04 0000 c42fce49", "do not fill"),
        ("01 00 0000 00", "do not fill"),
        ("03 04 00", "truncated"),
        ("03", "truncated"),
        ("", "truncated"),
    ],
)
def test_malformed(body: str, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(bytes.fromhex(body))


@pytest.mark.parametrize(
    ("protocol", "spis"),
    [
        (ProtocolId.IKE, (b"\x00" * 8,)),
        (ProtocolId.ESP, (b"\x00" * 8,)),
        (ProtocolId.ESP, (b"",)),
        (ProtocolId.NONE, ()),
    ],
)
def test_model_rejects_invalid(protocol: ProtocolId, spis: tuple[bytes, ...]) -> None:
    with pytest.raises(ValueError):
        Delete(protocol, spis)
