from __future__ import annotations

from typing import Any

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import EapCode, EapType, PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import decoder_for
from pyipsec.wire.payloads.eap import EapMessage, EapPayload
from tests.unit.wire.payload_vectors_b import body, cases


def decode(data: bytes) -> EapPayload:
    return EapPayload.decode_body(PayloadType.EAP, Reader(data, base=400))


@pytest.mark.parametrize("case", cases("EAP"), ids=lambda c: c["id"])
def test_vector_decodes_and_encodes(case: dict[str, Any]) -> None:
    f = case["fields"]
    eap_type = None if f["eap_type"] is None else EapType(f["eap_type"])
    msg = EapMessage(EapCode(f["code"]), f["identifier"], eap_type, bytes.fromhex(f["type_data"]))
    payload = decode(body(case))
    assert payload == EapPayload(body(case)) == EapPayload.of(msg)
    assert payload.eap_message() == msg
    assert msg.encode() == body(case) == payload.encode_body()
    assert len(msg) == len(body(case))


def test_registered() -> None:
    decoder = decoder_for(PayloadType.EAP)
    assert decoder is not None
    p = decoder(PayloadType.EAP, Reader(bytes.fromhex("03010004")))
    assert p == EapPayload(bytes.fromhex("03010004")) and p.payload_type == PayloadType.EAP


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        pytest.param("", 400, id="empty"),
        pytest.param("010100", 400, id="short header"),
        pytest.param("01010006 01", 402, id="length above body"),
        pytest.param("01010004 01", 402, id="length below body"),
        pytest.param("0101ffff 01", 402, id="length huge"),
    ],
)
def test_payload_length_must_match(data: str, offset: int) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(bytes.fromhex(data.replace(" ", "")))
    assert exc.value.offset == offset


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("03010005 00", id="success with a type"),
        pytest.param("04010006 0000", id="failure with data"),
        pytest.param("01010004", id="request without type"),
        pytest.param("02010004", id="response without type"),
    ],
)
def test_message_layout_errors(data: str) -> None:
    raw = bytes.fromhex(data.replace(" ", ""))
    payload = decode(raw)  # the payload only checks the length field
    with pytest.raises(DecodeError):
        payload.eap_message()


def test_message_decode_length_mismatch() -> None:
    with pytest.raises(DecodeError) as exc:
        EapMessage.decode(bytes.fromhex("0101000601"), base=50)
    assert exc.value.offset == 52


def test_unknown_code_with_and_without_type() -> None:
    # RFC 6696 Initiate/Finish (5/6) carry a Type; codes unknown here are kept as sent.
    m = EapMessage.decode(bytes.fromhex("0509000601aa"))
    assert m == EapMessage(EapCode(5), 9, EapType.IDENTITY, b"\xaa") and not m.code.is_assigned
    bare = EapMessage.decode(bytes.fromhex("06090004"))
    assert bare.eap_type is None and bare.encode() == bytes.fromhex("06090004")


def test_expanded_and_unknown_types_keep_type_data() -> None:
    raw = bytes.fromhex("0102000e fe 000137 00000001 abcd".replace(" ", ""))
    m = EapMessage.decode(raw)
    assert m.eap_type == EapType.EXPANDED and m.type_data == bytes.fromhex("00013700000001abcd")
    assert m.encode() == raw
    unk = EapMessage.decode(bytes.fromhex("02020006c8ff"))
    assert unk.eap_type == 200 and not unk.eap_type.is_assigned


def test_mschapv2_challenge_round_trip() -> None:
    # RFC 7296 §3.16 carries any method: an EAP-MSCHAPv2 (26) Challenge, opaque here.
    type_data = bytes.fromhex("01 05 0015 10".replace(" ", "")) + bytes(16)
    m = EapMessage(EapCode.REQUEST, 5, EapType.MSCHAPV2, type_data)
    assert EapPayload.decode_body(PayloadType.EAP, Reader(EapPayload.of(m).encode_body())).eap_message() == m


def test_message_constructor_checks() -> None:
    with pytest.raises(ValueError):
        EapMessage(EapCode.SUCCESS, 1, EapType.IDENTITY)
    with pytest.raises(ValueError):
        EapMessage(EapCode.REQUEST, 1)
    with pytest.raises(ValueError):
        EapMessage(EapCode.FAILURE, 1, None, b"x")
    with pytest.raises(ValueError):
        EapMessage(EapCode.REQUEST, 256, EapType.IDENTITY)
    with pytest.raises(ValueError):
        EapMessage(EapCode.REQUEST, 1, EapType.IDENTITY, bytes(0xFFFF))


def test_payload_constructor_checks() -> None:
    with pytest.raises(ValueError):
        EapPayload(b"\x01\x01\x00")
    with pytest.raises(ValueError):
        EapPayload(bytes.fromhex("0101000501ff"))
