from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from pyipsec.errors import (
    DecodeError,
    IkeError,
    InvalidKePayload,
    InvalidSyntax,
    NoProposalChosen,
    UnsupportedCriticalPayload,
)
from pyipsec.iana.ikev2 import HashAlgorithm, NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import decoder_for
from pyipsec.wire.payloads.notify import (
    GatewayRedirect,
    IpcompSupported,
    NoNatsAllowed,
    Notify,
)
from tests.unit.wire.payload_vectors_b import body, capture_messages, cases, inner_payloads, outer_payloads


def decode(data: bytes) -> Notify:
    return Notify.decode_body(PayloadType.N, Reader(data, base=100))


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("case", cases("N"), ids=lambda c: c["id"])
def test_vector_decodes_and_encodes(case: dict[str, Any]) -> None:
    f = case["fields"]
    expected = Notify(
        ProtocolId(f["protocol"]),
        bytes.fromhex(f["spi"]),
        NotifyType(f["notify_type"]),
        bytes.fromhex(f["data"]),
    )
    assert decode(body(case)) == expected
    assert expected.encode_body() == body(case)


def test_registered_for_notify_payload_type() -> None:
    decoder = decoder_for(PayloadType.N)
    assert decoder is not None
    assert decoder(PayloadType.N, Reader(bytes.fromhex("00004000"))) == Notify.of(NotifyType.INITIAL_CONTACT)
    assert Notify.payload_type == PayloadType.N
    assert Notify.of(NotifyType.INITIAL_CONTACT).payload_type == PayloadType.N


# ------------------------------------------------------------ decode errors


@pytest.mark.parametrize("data", ["", "00", "0000", "000040"], ids=["empty", "1", "2", "3"])
def test_truncated_header_raises(data: str) -> None:
    with pytest.raises(DecodeError):
        decode(bytes.fromhex(data))


def test_spi_size_past_body_raises_with_offset() -> None:
    with pytest.raises(DecodeError) as exc:
        decode(bytes.fromhex("0308 4009 11223344"))  # SPI Size 8, 4 octets left
    assert exc.value.offset == 104


def test_unknown_type_and_protocol_survive_round_trip() -> None:
    raw = bytes.fromhex("07 02 9999 abcd 0102")
    n = decode(raw)
    assert n.notify_type == 0x9999 and not n.notify_type.is_assigned
    assert n.protocol == 7 and n.spi == b"\xab\xcd" and n.data == b"\x01\x02"
    assert n.encode_body() == raw
    assert not n.is_error


def test_error_range() -> None:
    assert Notify.of(NotifyType.NO_PROPOSAL_CHOSEN).is_error
    assert Notify.of(NotifyType(16383)).is_error
    assert not Notify.of(NotifyType.INITIAL_CONTACT).is_error


def test_protocol_id_with_empty_spi_is_kept_not_rejected() -> None:
    # RFC 7296 §3.10: Protocol ID MUST be ignored on receipt when there is no SPI.
    n = decode(bytes.fromhex("01 00 4000"))
    assert n.protocol == ProtocolId.IKE and n.spi == b""


def test_constructor_range_checks() -> None:
    with pytest.raises(ValueError):
        Notify(ProtocolId.ESP, bytes(256), NotifyType.REKEY_SA)
    with pytest.raises(ValueError):
        Notify(ProtocolId(256), b"", NotifyType.REKEY_SA)
    with pytest.raises(ValueError):
        Notify(ProtocolId.NONE, b"", NotifyType(0x10000))


# ------------------------------------------------------------ no-data types


@pytest.mark.parametrize(
    "ntype",
    [
        NotifyType.INITIAL_CONTACT,
        NotifyType.USE_TRANSPORT_MODE,
        NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED,
        NotifyType.EAP_ONLY_AUTHENTICATION,
        NotifyType.CHILDLESS_IKEV2_SUPPORTED,
        NotifyType.IKEV2_FRAGMENTATION_SUPPORTED,
    ],
)
def test_no_data_types_reject_data(ntype: NotifyType) -> None:
    Notify.of(ntype).check_no_data()
    with pytest.raises(DecodeError):
        Notify(ProtocolId.NONE, b"", ntype, b"\x00").check_no_data()
    with pytest.raises(ValueError):
        Notify.of(ntype, b"\x00")


@pytest.mark.parametrize(
    "ntype", [NotifyType.MOBIKE_SUPPORTED, NotifyType.NO_ADDITIONAL_ADDRESSES, NotifyType.UPDATE_SA_ADDRESSES]
)
def test_mobike_flags_ignore_received_data(ntype: NotifyType) -> None:
    # RFC 4555 §4.2.1/§4.2.3/§4.2.4: data MUST be ignored on receipt.
    Notify(ProtocolId.NONE, b"", ntype, b"junk").check_no_data()
    assert Notify.of(ntype).encode_body() == int(ntype).to_bytes(4, "big")
    with pytest.raises(ValueError):
        Notify.of(ntype, b"junk")  # but never sent


# ------------------------------------------------------------ typed helpers


def test_invalid_ke_round_trip() -> None:
    n = Notify.invalid_ke(KeId.CURVE25519)
    assert n.encode_body() == bytes.fromhex("00000011001f")
    assert decode(n.encode_body()).wanted_group() is KeId.CURVE25519
    assert Notify.invalid_ke(999).wanted_group() == 999


@pytest.mark.parametrize("data", ["", "13", "001300"])
def test_invalid_ke_bad_length(data: str) -> None:
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.INVALID_KE_PAYLOAD, bytes.fromhex(data)).wanted_group()


def test_nat_detection_round_trip_and_length() -> None:
    digest = bytes(range(20))
    src = Notify.nat_detection_source_ip(digest)
    dst = Notify.nat_detection_destination_ip(digest)
    assert src.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP
    assert dst.notify_type == NotifyType.NAT_DETECTION_DESTINATION_IP
    assert decode(src.encode_body()).nat_hash() == digest
    assert decode(dst.encode_body()).nat_hash() == digest
    with pytest.raises(ValueError):
        Notify.nat_detection_source_ip(bytes(19))
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.NAT_DETECTION_DESTINATION_IP, bytes(21)).nat_hash()


def test_cookie_bounds() -> None:
    for n in (1, 64):
        assert decode(Notify.cookie(bytes(n)).encode_body()).cookie_data() == bytes(n)
    for n in (0, 65):
        with pytest.raises(ValueError):
            Notify.cookie(bytes(n))
        with pytest.raises(DecodeError):
            Notify.of(NotifyType.COOKIE, bytes(n)).cookie_data()


def test_cookie2_bounds() -> None:
    for n in (8, 64):
        n2 = decode(Notify.cookie2(bytes(n)).encode_body())
        assert n2.notify_type == NotifyType.COOKIE2 and n2.cookie_data() == bytes(n)
    for n in (7, 65):
        with pytest.raises(ValueError):
            Notify.cookie2(bytes(n))
        with pytest.raises(DecodeError):
            Notify.of(NotifyType.COOKIE2, bytes(n)).cookie_data()


def test_rekey_sa() -> None:
    n = Notify.rekey_sa(ProtocolId.ESP, bytes.fromhex("c0ffee01"))
    assert n.encode_body() == bytes.fromhex("03044009c0ffee01")
    assert decode(n.encode_body()).rekey_spi() == bytes.fromhex("c0ffee01")
    with pytest.raises(ValueError):
        Notify.rekey_sa(ProtocolId.IKE, bytes(4))
    with pytest.raises(ValueError):
        Notify.rekey_sa(ProtocolId.ESP, bytes(8))
    with pytest.raises(DecodeError):
        Notify(ProtocolId.IKE, bytes(4), NotifyType.REKEY_SA).rekey_spi()
    with pytest.raises(DecodeError):
        Notify(ProtocolId.AH, bytes(3), NotifyType.REKEY_SA).rekey_spi()


def test_u32_helpers() -> None:
    assert decode(Notify.set_window_size(10).encode_body()).window_size() == 10
    assert decode(Notify.auth_lifetime(3600).encode_body()).lifetime_seconds() == 3600
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.SET_WINDOW_SIZE, bytes(3)).window_size()
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.AUTH_LIFETIME, bytes(5)).lifetime_seconds()


def test_ipcomp_supported() -> None:
    n = Notify.ipcomp_supported(0x1234, 2)
    assert n.data == bytes.fromhex("123402")
    assert decode(n.encode_body()).ipcomp() == IpcompSupported(0x1234, 2)
    # RFC 7296 §3.10.1: transform-defined attributes may follow.
    assert Notify.ipcomp_supported(1, 3, b"\xaa").ipcomp() == IpcompSupported(1, 3, b"\xaa")
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.IPCOMP_SUPPORTED, bytes(2)).ipcomp()


def test_signature_hash_algorithms() -> None:
    algs = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512)
    n = Notify.signature_hash_algorithms(algs)
    assert decode(n.encode_body()).hash_algorithms() == algs
    assert Notify.signature_hash_algorithms([]).hash_algorithms() == ()
    unknown = Notify.of(NotifyType.SIGNATURE_HASH_ALGORITHMS, bytes.fromhex("00020777")).hash_algorithms()
    assert unknown[1] == 0x777 and not unknown[1].is_assigned
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.SIGNATURE_HASH_ALGORITHMS, bytes.fromhex("000200")).hash_algorithms()


def test_additional_addresses() -> None:
    v4 = Notify.additional_address("192.0.2.1")
    v6 = Notify.additional_address(IPv6Address("2001:db8::1"))
    assert v4.notify_type == NotifyType.ADDITIONAL_IP4_ADDRESS
    assert v6.notify_type == NotifyType.ADDITIONAL_IP6_ADDRESS
    assert decode(v4.encode_body()).address() == IPv4Address("192.0.2.1")
    assert decode(v6.encode_body()).address() == IPv6Address("2001:db8::1")
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.ADDITIONAL_IP4_ADDRESS, bytes(16)).address()
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.ADDITIONAL_IP6_ADDRESS, bytes(4)).address()


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        ("192.0.2.7", IPv4Address("192.0.2.7")),
        (IPv6Address("2001:db8::7"), IPv6Address("2001:db8::7")),
        ("vpn2.example.com", "vpn2.example.com"),
    ],
)
def test_redirect_round_trip(gateway: Any, expected: Any) -> None:
    n = decode(Notify.redirect(gateway, nonce=b"\x01" * 16).encode_body())
    assert n.redirect_data() == GatewayRedirect(expected, b"\x01" * 16)
    assert Notify.redirect(gateway).redirect_data() == GatewayRedirect(expected)
    rf = decode(Notify.redirected_from(gateway).encode_body())
    assert rf.notify_type == NotifyType.REDIRECTED_FROM
    assert rf.redirect_data() == GatewayRedirect(expected)


@pytest.mark.parametrize(
    "data",
    [
        "",  # no GW Ident Type
        "01",  # no length
        "0104c00002",  # identity truncated
        "0103c00002",  # IPv4 of 3 octets
        "0204c0000201",  # IPv6 of 4 octets
        "0300",  # empty FQDN
        "0301ff",  # non-ASCII FQDN
        "0904c0000201",  # unknown identity type
    ],
)
def test_redirect_bad_data(data: str) -> None:
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.REDIRECT, bytes.fromhex(data)).redirect_data()


def test_redirected_from_has_no_nonce() -> None:
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.REDIRECTED_FROM, bytes.fromhex("0104c0000201aa")).redirect_data()


def test_no_nats_allowed() -> None:
    n = Notify.no_nats_allowed("192.0.2.1", "198.51.100.2", 500, 4500)
    assert decode(n.encode_body()).no_nats() == NoNatsAllowed(
        IPv4Address("192.0.2.1"), IPv4Address("198.51.100.2"), 500, 4500
    )
    n6 = Notify.no_nats_allowed("2001:db8::1", "2001:db8::2", 4500, 4500)
    assert len(n6.data) == 36
    assert n6.no_nats().dst_addr == IPv6Address("2001:db8::2")
    with pytest.raises(ValueError):
        Notify.no_nats_allowed("192.0.2.1", "2001:db8::2", 500, 500)
    with pytest.raises(DecodeError):
        Notify.of(NotifyType.NO_NATS_ALLOWED, bytes(13)).no_nats()


def test_accessor_on_wrong_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        Notify.cookie(b"x").wanted_group()
    with pytest.raises(ValueError):
        Notify.invalid_ke(19).redirect_data()


# ------------------------------------------------------------ errors → Notify


@pytest.mark.parametrize(
    ("err", "ntype", "data"),
    [
        (InvalidKePayload(19), NotifyType.INVALID_KE_PAYLOAD, b"\x00\x13"),
        (NoProposalChosen("none"), NotifyType.NO_PROPOSAL_CHOSEN, b""),
        (InvalidSyntax("bad"), NotifyType.INVALID_SYNTAX, b""),
        (DecodeError("short", offset=3), NotifyType.INVALID_SYNTAX, b""),
        (UnsupportedCriticalPayload(99), NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, b"\x63"),
    ],
)
def test_from_error(err: IkeError, ntype: NotifyType, data: bytes) -> None:
    n = Notify.from_error(err)
    assert (n.protocol, n.spi, n.notify_type, n.data) == (ProtocolId.NONE, b"", ntype, data)
    assert n.is_error


def test_from_error_with_spi() -> None:
    n = Notify.from_error(InvalidSyntax("x"), protocol=ProtocolId.ESP, spi=bytes(4))
    assert n.protocol == ProtocolId.ESP and n.spi == bytes(4)


# ------------------------------------------------------------ strongSwan captures


def _capture_notifies() -> list[Notify]:
    out = []
    for _stem, msg in capture_messages():
        raws = outer_payloads(msg) + (inner_payloads(msg) if "sk" in msg else [])
        out += [decode(p.body) for p in raws if p.ptype == PayloadType.N]
    return out


def test_strongswan_notifies_decode_and_round_trip() -> None:
    notifies = _capture_notifies()
    seen = {n.notify_type for n in notifies}
    assert {
        NotifyType.NAT_DETECTION_SOURCE_IP,
        NotifyType.SIGNATURE_HASH_ALGORITHMS,
        NotifyType.IKEV2_FRAGMENTATION_SUPPORTED,
        NotifyType.INITIAL_CONTACT,
    } <= seen
    for n in notifies:
        assert decode(n.encode_body()) == n
        if n.notify_type in (NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP):
            assert len(n.nat_hash()) == 20
        elif n.notify_type == NotifyType.SIGNATURE_HASH_ALGORITHMS:
            # strongSwan 5.9.8 announces SHA2-256/384/512 and Identity (RFC 8420).
            assert n.hash_algorithms() == (
                HashAlgorithm.SHA2_256,
                HashAlgorithm.SHA2_384,
                HashAlgorithm.SHA2_512,
                HashAlgorithm.IDENTITY,
            )
        else:
            n.check_no_data()
