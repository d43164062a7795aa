"""Security Association payload (RFC 7296 §3.3)."""

from __future__ import annotations

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType, ProtocolId
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId, TransformAttr, TransformType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.sa import (
    Proposal,
    SecurityAssociation,
    Transform,
    TransformAttribute,
    spi_sizes_for,
    typed_transform_id,
)

# RFC 7296 §3.3.1/§3.3.2/§3.3.5, built by hand:
#   Transform: Last(1) RESERVED(1) Length(2) | Type(1) RESERVED(1) ID(2) | attributes
ENCR_AES_CBC_256 = bytes.fromhex("03 00 000c 01 00 000c 800e 0100")  # Key Length TV, 256 bits
PRF_SHA256 = bytes.fromhex("03 00 0008 02 00 0005")
INTEG_SHA256 = bytes.fromhex("03 00 0008 03 00 000c")
KE_ECP256_LAST = bytes.fromhex("00 00 0008 04 00 0013")
IKE_TRANSFORMS = ENCR_AES_CBC_256 + PRF_SHA256 + INTEG_SHA256 + KE_ECP256_LAST
#   Proposal: Last(1) RESERVED(1) Length(2) | Num(1) Protocol(1) SPI Size(1) #Transforms(1) | SPI
IKE_PROPOSAL = bytes.fromhex("00 00 002c 01 01 00 04") + IKE_TRANSFORMS
IKE_SA_BODY = IKE_PROPOSAL

IKE_MODEL = SecurityAssociation(
    (
        Proposal(
            1,
            ProtocolId.IKE,
            transforms=(
                Transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, key_length=256),
                Transform(TransformType.PRF, PrfId.PRF_HMAC_SHA2_256),
                Transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA2_256_128),
                Transform(TransformType.KE, KeId.ECP_256),
            ),
        ),
    )
)

# Two ESP proposals with 4-byte SPIs: AES-GCM-16-128 + no ESN, then AES-CBC-128/SHA1 + ESN.
ESP_P1 = bytes.fromhex("02 00 0020 01 03 04 02 c42fce4903 00 000c 01 00 0014 800e 008000 00 0008 05 00 0000")
ESP_P2 = bytes.fromhex(
    "00 00 0028 02 03 04 03 0102030403 00 000c 01 00 000c 800e 008003 00 0008 03 00 000200 00 0008 05 00 0001"
)
ESP_MODEL = SecurityAssociation(
    (
        Proposal(
            1,
            ProtocolId.ESP,
            spi=bytes.fromhex("c42fce49"),
            transforms=(
                Transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, key_length=128),
                Transform(TransformType.ESN, EsnId.NO_EXTENDED_SEQUENCE_NUMBERS),
            ),
        ),
        Proposal(
            2,
            ProtocolId.ESP,
            spi=bytes.fromhex("01020304"),
            transforms=(
                Transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, key_length=128),
                Transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA1_96),
                Transform(TransformType.ESN, EsnId.EXTENDED_SEQUENCE_NUMBERS),
            ),
        ),
    )
)


def decode(body: bytes) -> SecurityAssociation:
    return SecurityAssociation.decode_body(PayloadType.SA, Reader(body))


def test_payload_type() -> None:
    assert IKE_MODEL.payload_type is PayloadType.SA


def test_ike_proposal_decodes() -> None:
    sa = decode(IKE_SA_BODY)
    assert sa == IKE_MODEL
    t = sa.proposals[0].transforms
    assert t[0].transform_id is EncrId.ENCR_AES_CBC and t[0].key_length == 256
    assert t[1].transform_id is PrfId.PRF_HMAC_SHA2_256
    assert t[2].transform_id is IntegId.AUTH_HMAC_SHA2_256_128
    assert t[3].transform_id is KeId.ECP_256 and t[3].key_length is None


def test_ike_proposal_encodes() -> None:
    assert IKE_MODEL.encode_body() == IKE_SA_BODY


def test_esp_proposals_with_spis() -> None:
    assert decode(ESP_P1 + ESP_P2) == ESP_MODEL
    assert ESP_MODEL.encode_body() == ESP_P1 + ESP_P2


def test_transforms_of() -> None:
    p = ESP_MODEL.proposals[1]
    assert p.transforms_of(TransformType.INTEG) == (Transform(TransformType.INTEG, 2),)
    assert p.transforms_of(TransformType.KE) == ()


def test_ike_rekey_spi_of_8_bytes() -> None:
    # RFC 7296 §3.3.1: an IKE SA rekey (CREATE_CHILD_SA) carries the new 8-byte SPI.
    body = bytes.fromhex("00 00 0018 01 01 08 01 1122334455667788 00 00 0008 04 00 001f")
    sa = decode(body)
    assert sa.proposals[0].spi == bytes.fromhex("1122334455667788")
    assert sa.proposals[0].transforms[0].transform_id is KeId.CURVE25519
    assert sa.encode_body() == body


def test_transform_ids_are_typed_by_transform_type() -> None:
    assert typed_transform_id(TransformType.ADDKE3, 36) is KeId.ML_KEM_768
    assert typed_transform_id(TransformType.ESN, 1) is EsnId.EXTENDED_SEQUENCE_NUMBERS
    unknown = typed_transform_id(200, 7)
    assert unknown == 7 and type(unknown) is int
    assert Transform(TransformType.ENCR, 12).transform_id is EncrId.ENCR_AES_CBC
    assert Transform(TransformType.ENCR, 999).transform_id == 999  # pseudo-member
    assert not EncrId(999).is_assigned


def test_unknown_transform_type_and_attributes_are_kept() -> None:
    # Transform type 99, ID 7, a TV attribute (type 1) and a TLV attribute (type 2, 3 bytes).
    body = bytes.fromhex("00 00 001f 01 03 04 01 aabbccdd00 00 0013 63 00 0007 8001 abcd 0002 0003 010203")
    sa = decode(body)
    t = sa.proposals[0].transforms[0]
    assert int(t.transform_type) == 99 and t.transform_id == 7 and t.key_length is None
    assert t.extra_attributes == (
        TransformAttribute(TransformAttr(1), b"\xab\xcd", tv=True),
        TransformAttribute(TransformAttr(2), b"\x01\x02\x03"),
    )
    assert sa.encode_body() == body


def test_key_length_is_encoded_first() -> None:
    t = Transform(
        TransformType.ENCR, 12, key_length=192, extra_attributes=(TransformAttribute(TransformAttr(5), b""),)
    )
    body = SecurityAssociation((Proposal(1, ProtocolId.IKE, transforms=(t,)),)).encode_body()
    assert body.endswith(bytes.fromhex("800e 00c0 0005 0000"))
    assert decode(body).proposals[0].transforms[0] == t


def test_proposal_without_transforms() -> None:
    body = bytes.fromhex("00 00 0008 01 01 00 00")
    assert decode(body) == SecurityAssociation((Proposal(1, ProtocolId.IKE),))
    assert decode(body).encode_body() == body


def test_unknown_protocol_accepts_any_spi_size() -> None:
    body = bytes.fromhex("00 00 000b 01 09 03 00 aabbcc")
    sa = decode(body)
    assert sa.proposals[0].spi == bytes.fromhex("aabbcc")
    assert spi_sizes_for(ProtocolId(9)) is None
    assert sa.encode_body() == body


# -- error paths -----------------------------------------------------------------------------


def _bad(body: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(body)


def test_empty_sa_payload() -> None:
    _bad(b"", "without proposals")


@pytest.mark.parametrize("flag", [1, 3, 0xFF])
def test_bad_proposal_last_substruc(flag: int) -> None:
    _bad(bytes([flag]) + IKE_PROPOSAL[1:], "neither 0 nor 2")


def test_more_proposals_flag_on_the_last_proposal() -> None:
    _bad(b"\x02" + IKE_PROPOSAL[1:], "truncated")


def test_last_flag_before_more_proposals() -> None:
    _bad(b"\x00" + ESP_P1[1:] + ESP_P2, "trailing")


@pytest.mark.parametrize("flag", [0, 2])
def test_bad_transform_flag_in_the_middle(flag: int) -> None:
    body = bytearray(IKE_PROPOSAL)
    body[8] = flag  # first transform's Last Substruc
    _bad(bytes(body), "last-substruc")


def test_more_transforms_flag_on_the_last_transform() -> None:
    body = bytearray(IKE_PROPOSAL)
    body[-8] = 3
    _bad(bytes(body), "last-substruc")


@pytest.mark.parametrize("length", [0, 4, 7])
def test_proposal_length_too_small(length: int) -> None:
    _bad(IKE_PROPOSAL[:2] + length.to_bytes(2, "big") + IKE_PROPOSAL[4:], "below 8")


def test_proposal_length_past_the_payload() -> None:
    _bad(IKE_PROPOSAL[:2] + (len(IKE_PROPOSAL) + 1).to_bytes(2, "big") + IKE_PROPOSAL[4:], "truncated")


def test_proposal_length_shorter_than_its_transforms() -> None:
    _bad(IKE_PROPOSAL[:2] + (len(IKE_PROPOSAL) - 8).to_bytes(2, "big") + IKE_PROPOSAL[4:], "truncated")


@pytest.mark.parametrize("length", [0, 7])
def test_transform_length_too_small(length: int) -> None:
    body = bytearray(IKE_PROPOSAL)
    body[10:12] = length.to_bytes(2, "big")
    _bad(bytes(body), "transform length")


def test_transform_length_past_the_proposal() -> None:
    body = bytearray(IKE_PROPOSAL)
    body[-6:-4] = (9).to_bytes(2, "big")  # last transform claims 9 bytes, 8 remain
    _bad(bytes(body), "truncated")


def test_more_transforms_than_announced() -> None:
    body = bytearray(IKE_PROPOSAL)
    body[7] = 3  # announces 3 transforms, the third has the "more" flag
    _bad(bytes(body), "last-substruc")


def test_fewer_transforms_than_announced() -> None:
    body = bytearray(IKE_PROPOSAL)
    body[7] = 5
    _bad(bytes(body), "last-substruc|truncated")


def test_bytes_after_the_last_transform() -> None:
    body = bytearray(IKE_PROPOSAL + b"\x00\x00")
    body[2:4] = len(body).to_bytes(2, "big")
    _bad(bytes(body), "trailing")


def test_bytes_after_the_last_proposal() -> None:
    _bad(IKE_PROPOSAL + b"\x00", "trailing")


@pytest.mark.parametrize(("protocol", "size"), [(1, 4), (1, 1), (3, 0), (3, 8), (2, 2)])
def test_spi_size_invalid_for_protocol(protocol: int, size: int) -> None:
    body = bytes([0, 0, 0, 8 + size, 1, protocol, size, 0]) + bytes(size)
    _bad(body, "SPI size")


def test_spi_longer_than_proposal() -> None:
    _bad(bytes.fromhex("00 00 0009 01 03 04 00 aa"), "truncated")


def test_key_length_in_tlv_format() -> None:
    _bad(bytes.fromhex("00 00 0014 01 01 00 01 00 00 000c 01 00 000c 000e 0000"), "TV format")


def test_duplicate_key_length() -> None:
    _bad(bytes.fromhex("00 00 0018 01 01 00 01 00 00 0010 01 00 000c 800e 0080 800e 0100"), "duplicate")


def test_truncated_tv_attribute() -> None:
    _bad(bytes.fromhex("00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e"), "truncated")


def test_truncated_tlv_attribute() -> None:
    _bad(bytes.fromhex("00 00 0014 01 01 00 01 00 00 000c 01 00 000c 0005 0004"), "truncated")


@pytest.mark.parametrize("n", range(1, len(ESP_P1 + ESP_P2)))
def test_every_truncation_fails(n: int) -> None:
    with pytest.raises(DecodeError):
        decode((ESP_P1 + ESP_P2)[:n])


# -- model invariants --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: SecurityAssociation(()),
        lambda: Proposal(1, ProtocolId.ESP, spi=b""),
        lambda: Proposal(1, ProtocolId.IKE, spi=b"1234"),
        lambda: Proposal(256, ProtocolId.IKE),
        lambda: Proposal(1, ProtocolId.IKE, transforms=(Transform(TransformType.ENCR, 12),) * 256),
        lambda: Transform(TransformType(256), 1),
        lambda: Transform(TransformType.ENCR, 0x10000),
        lambda: Transform(TransformType.ENCR, 12, key_length=-1),
        lambda: Transform(
            TransformType.ENCR,
            12,
            extra_attributes=(TransformAttribute(TransformAttr.KEY_LENGTH, b"\x00\x80", tv=True),),
        ),
        lambda: TransformAttribute(TransformAttr(1), b"\x00", tv=True),
        lambda: TransformAttribute(TransformAttr(0x8000), b""),
    ],
)
def test_model_rejects_unencodable_values(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]
