"""Identification payloads (RFC 7296 §3.5)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import IdType, PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.ident import Identification, dn_text

# ID_FQDN "left.ih.test" as strongSwan sends it (capture strongswan-cert-ecdsa.json, IDi body).
FQDN_BODY = bytes.fromhex("02 000000") + b"left.ih.test"


def decode(body: bytes, ptype: PayloadType = PayloadType.IDi) -> Identification:
    return Identification.decode_body(ptype, Reader(body))


def test_fqdn() -> None:
    i = decode(FQDN_BODY)
    assert i == Identification.from_fqdn("left.ih.test")
    assert i.payload_type is PayloadType.IDi and i.id_type is IdType.ID_FQDN
    assert i.encode_body() == FQDN_BODY
    assert str(i) == "left.ih.test"


def test_idr_keeps_its_payload_type() -> None:
    i = decode(FQDN_BODY, PayloadType.IDr)
    assert i.payload_type is PayloadType.IDr
    assert i != decode(FQDN_BODY)
    assert i.with_payload_type(PayloadType.IDi) == decode(FQDN_BODY)


def test_reserved_is_ignored() -> None:
    assert decode(bytes.fromhex("02 ffffff") + b"x").encode_body() == bytes.fromhex("02 000000") + b"x"


def test_ipv4() -> None:
    body = bytes.fromhex("01 000000 0ae70101")
    i = decode(body)
    assert i == Identification.from_ip("10.231.1.1")
    assert i.ip_address == ipaddress.IPv4Address("10.231.1.1")
    assert str(i) == "10.231.1.1"
    assert i.encode_body() == body


def test_ipv6() -> None:
    addr = ipaddress.IPv6Address("2001:db8::1")
    body = bytes.fromhex("05 000000") + addr.packed
    i = decode(body, PayloadType.IDr)
    assert i == Identification.from_ip(addr, PayloadType.IDr)
    assert i.ip_address == addr and str(i) == "2001:db8::1"


def test_any_addresses_display_like_strongswan() -> None:
    assert str(Identification.from_ip("0.0.0.0")) == "%any"
    assert str(Identification.from_ip("::")) == "%any6"


@pytest.mark.parametrize(("id_type", "n"), [(1, 0), (1, 3), (1, 5), (1, 16), (5, 4), (5, 15), (5, 17)])
def test_fixed_length_addresses_are_checked(id_type: int, n: int) -> None:
    with pytest.raises(DecodeError, match="expected"):
        decode(bytes([id_type, 0, 0, 0]) + bytes(n))
    with pytest.raises(ValueError):
        Identification(PayloadType.IDi, IdType(id_type), data=bytes(n))


@pytest.mark.parametrize("n", range(4))
def test_truncated(n: int) -> None:
    with pytest.raises(DecodeError):
        decode(FQDN_BODY[:n])


def test_rfc822() -> None:
    i = Identification.from_rfc822("carol@strongswan.org")
    assert i.id_type is IdType.ID_RFC822_ADDR and str(i) == "carol@strongswan.org"
    assert decode(i.encode_body()) == i


def test_non_printable_characters_are_masked() -> None:
    assert str(Identification(PayloadType.IDi, IdType.ID_FQDN, data=b"evil\nhost\x00")) == "evil?host?"


def test_fqdn_must_be_ascii() -> None:
    with pytest.raises(ValueError):
        Identification.from_fqdn("bücher.example")


def test_key_id_display() -> None:
    assert str(Identification.from_key_id(b"office")) == "office"
    assert str(Identification.from_key_id(b"\x01\xab")) == "01:ab"
    # strongSwan shows a 20-byte key ID (a SHA-1) in hex even when printable.
    assert str(Identification.from_key_id(b"a" * 20)) == ":".join(["61"] * 20)


def test_other_types_display() -> None:
    assert (
        str(Identification(PayloadType.IDi, IdType.ID_DER_ASN1_GN, data=b"\x30\x00"))
        == "(ASN.1 general name)"
    )
    assert str(Identification(PayloadType.IDi, IdType.ID_NULL, data=b"")) == "%null"
    assert str(Identification(PayloadType.IDi, IdType(77), data=b"")) == "(unknown ID type: 77)"


def test_dn_from_certificate_subject(captures_dir: Path) -> None:
    cert = x509.load_pem_x509_certificate((captures_dir / "pki" / "left-ecdsa-cert.pem").read_bytes())
    i = Identification.from_dn(cert.subject.public_bytes())
    assert i.id_type is IdType.ID_DER_ASN1_DN
    assert str(i) == "C=XX, O=ikeharness, CN=left.ih.test"
    assert decode(i.encode_body()) == i


def test_dn_text_names_and_unknown_oids() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "org"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "VPN"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"),
            x509.NameAttribute(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), "x"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Zoë"),
        ]
    )
    assert dn_text(name.public_bytes()) == "DC=org, OU=VPN, E=a@b.c, 1.3.6.1.4.1.99999.1=x, CN=Zo?"


@pytest.mark.parametrize(
    "der", [b"", b"\x30", b"\x31\x00", b"\x30\x03\x31\x01\x00", b"\x30\x00\x00", b"\x30\x85" + bytes(5)]
)
def test_invalid_dn(der: bytes) -> None:
    with pytest.raises(DecodeError):
        dn_text(der)
    assert str(Identification.from_dn(der)) == "(invalid ID_DER_ASN1_DN)"


def test_payload_type_must_be_idi_or_idr() -> None:
    with pytest.raises(ValueError):
        Identification(PayloadType.SA, IdType.ID_FQDN, data=b"x")


def test_all_constructors_default_to_idi_and_accept_idr() -> None:
    der = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]).public_bytes()
    makers: list[Callable[[PayloadType], Identification]] = [
        lambda pt: Identification.from_ip("10.0.0.1", pt),
        lambda pt: Identification.from_fqdn("a.b", pt),
        lambda pt: Identification.from_rfc822("a@b", pt),
        lambda pt: Identification.from_dn(der, pt),
        lambda pt: Identification.from_key_id(b"k", pt),
    ]
    for make in makers:
        assert make(PayloadType.IDi).payload_type is PayloadType.IDi
        assert make(PayloadType.IDr).payload_type is PayloadType.IDr
