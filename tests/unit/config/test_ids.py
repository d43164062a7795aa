"""Identity strings in strongSwan's syntax → (ID Type, data) (RFC 7296 §3.5)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pyipsec.config.ids import IDENTITY_ANY, Identity, parse_identity
from pyipsec.errors import ConfigError
from pyipsec.iana.ikev2 import IdType

# "C=CH, O=strongSwan, CN=moon" as DER (X.690): SEQUENCE of three single-attribute SETs,
# each value a PrintableString (tag 0x13), in the order written.
MOON_DN = bytes.fromhex(
    "3031"
    "310b3009060355040613024348"  # C=CH          (2.5.4.6)
    "3113301106035504"
    "0a130a7374726f6e675377616e"  # O=strongSwan (2.5.4.10)
    "310d300b06035504"
    "0313046d6f6f6e"  # CN=moon       (2.5.4.3)
)


@pytest.mark.parametrize(
    ("text", "id_type", "data"),
    [
        ("192.0.2.1", IdType.ID_IPV4_ADDR, bytes([192, 0, 2, 1])),
        ("2001:db8::1", IdType.ID_IPV6_ADDR, bytes.fromhex("20010db8000000000000000000000001")),
        ("gw.example.org", IdType.ID_FQDN, b"gw.example.org"),
        ("@gw.example.org", IdType.ID_FQDN, b"gw.example.org"),
        ("@192.0.2.1", IdType.ID_FQDN, b"192.0.2.1"),  # the @ keeps it a name
        ("carol@example.org", IdType.ID_RFC822_ADDR, b"carol@example.org"),
        ("@@carol@example.org", IdType.ID_RFC822_ADDR, b"carol@example.org"),
        ("@#0a0BfF", IdType.ID_KEY_ID, bytes([0x0A, 0x0B, 0xFF])),
        ("C=CH, O=strongSwan, CN=moon", IdType.ID_DER_ASN1_DN, MOON_DN),
        ("/C=CH/O=strongSwan/CN=moon", IdType.ID_DER_ASN1_DN, MOON_DN),
        ("c = CH,o=strongSwan ,  cn=moon", IdType.ID_DER_ASN1_DN, MOON_DN),
        ("ipv4:10.0.0.1", IdType.ID_IPV4_ADDR, bytes([10, 0, 0, 1])),
        ("ipv6:::1", IdType.ID_IPV6_ADDR, bytes(15) + b"\x01"),
        ("fqdn:carol@example.org", IdType.ID_FQDN, b"carol@example.org"),
        ("dns:moon", IdType.ID_FQDN, b"moon"),
        ("email:carol", IdType.ID_RFC822_ADDR, b"carol"),
        ("rfc822:carol", IdType.ID_RFC822_ADDR, b"carol"),
        ("userfqdn:carol@x", IdType.ID_RFC822_ADDR, b"carol@x"),
        ("keyid:secret-id", IdType.ID_KEY_ID, b"secret-id"),
        ("keyid:#00ff", IdType.ID_KEY_ID, b"\x00\xff"),
        ("fqdn:#414243", IdType.ID_FQDN, b"ABC"),
        ("asn1dn:C=CH, O=strongSwan, CN=moon", IdType.ID_DER_ASN1_DN, MOON_DN),
        ("asn1dn:#" + MOON_DN.hex(), IdType.ID_DER_ASN1_DN, MOON_DN),
        ("{11}:#cafe", IdType.ID_KEY_ID, b"\xca\xfe"),
        ("{2}:moon", IdType.ID_FQDN, b"moon"),
        ("fe80:zz", IdType.ID_KEY_ID, b"fe80:zz"),  # strongSwan: a colon but not IPv6 → KEY_ID
    ],
)
def test_parse_identity(text: str, id_type: IdType, data: bytes) -> None:
    identity = parse_identity(text)
    assert (identity.id_type, identity.data) == (id_type, data)
    assert identity.text == text
    assert str(identity) == text


@pytest.mark.parametrize("text", ["%any", "%any6", "", "*", "0.0.0.0", "::", "0::0"])
def test_wildcards(text: str) -> None:
    identity = parse_identity(text)
    assert identity.is_any
    assert identity == IDENTITY_ANY
    assert identity.has_wildcards


def test_dn_string_types() -> None:
    # Non-printable characters fall back to UTF8String (0x0c), e-mail is an IA5String (0x16),
    # as strongSwan's atodn() does.
    der = parse_identity("CN=Zürich").data
    assert der == bytes.fromhex("30123110300e06035504030c07") + "Zürich".encode()
    email = parse_identity("E=carol@example.org").data
    assert email[17] == 0x16  # 30 22 31 20 30 1e, OID 1.2.840.113549.1.9.1 (11 octets), then the value
    assert email.endswith(b"carol@example.org")


def test_dn_matches_certificate_subject_encoding() -> None:
    # cryptography encodes O/CN as UTF8String and DC as IA5String where we write
    # PrintableString: the bytes differ, the names are the same.
    text = "C=CH, ST=Zug, L=Baar, O=Example AG, OU=IT, CN=gw, E=a@b.c, DC=org, UID=x7"
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Zug"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Baar"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example AG"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IT"),
            x509.NameAttribute(NameOID.COMMON_NAME, "gw"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"),
            x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "org"),
            x509.NameAttribute(NameOID.USER_ID, "x7"),
        ]
    ).public_bytes()
    parsed = parse_identity(text)
    assert parsed.data != subject
    assert parsed.matches(Identity(IdType.ID_DER_ASN1_DN, subject))
    assert not parse_identity(text.replace("CN=gw", "CN=gx")).matches(
        Identity(IdType.ID_DER_ASN1_DN, subject)
    )
    assert str(Identity(IdType.ID_DER_ASN1_DN, subject)) == text


def test_dotted_oid_attribute() -> None:
    assert parse_identity("2.5.4.3=moon").data == parse_identity("CN=moon").data


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("CX=foo, CN=bar", "unknown attribute 'CX'"),
        ("CN=", "has no value"),
        ("CN=a, garbage", "is not ATTRIBUTE=value"),
        ("C=CHE", "C='CHE'"),
        ("@#abc", "not an even number of hex digits"),
        ("@#", "has no hex digits"),
        ("keyid:#zz", "not an even number of hex digits"),
        ("10.0.0.300", "not a valid IPv4 address"),
        ("ipv4:2001:db8::1", "not a valid IPv4 address"),
        ("ipv6:10.0.0.1", "not a valid IPv6 address"),
        ("{0}:x", "out of range"),
        ("@", "empty"),
        ("fqdn:", "empty"),
    ],
)
def test_parse_identity_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_identity(text)
    assert fragment in str(info.value)


def test_matches_exact_and_case() -> None:
    assert parse_identity("gw.example.org").matches(parse_identity("GW.Example.ORG"))
    assert not parse_identity("gw.example.org").matches(parse_identity("gw.example.com"))
    assert not parse_identity("gw.example.org").matches(parse_identity("carol@gw.example.org"))
    assert parse_identity("192.0.2.1").matches(parse_identity("ipv4:#c0000201"))
    assert not parse_identity("192.0.2.1").matches(parse_identity("192.0.2.2"))
    assert parse_identity("@#01").matches(parse_identity("keyid:#01"))


def test_matches_wildcards() -> None:
    any_id = parse_identity("%any")
    assert any_id.matches(parse_identity("C=CH, CN=x"))
    assert not parse_identity("moon").matches(any_id)
    star = parse_identity("*@example.org")
    assert star.has_wildcards
    assert star.matches(parse_identity("Carol@EXAMPLE.org"))
    assert not star.matches(parse_identity("carol@example.com"))
    dn = parse_identity("C=CH, O=strongSwan, CN=*")
    assert dn.has_wildcards
    assert dn.matches(parse_identity("C=ch, O=strongswan, CN=moon"))  # PrintableString: caseless
    assert not dn.matches(parse_identity("C=CH, O=strongSwan, OU=x, CN=moon"))
    assert not dn.matches(parse_identity("O=strongSwan, C=CH, CN=moon"))
    assert not parse_identity("C=CH, CN=moon").has_wildcards


def test_str_without_text() -> None:
    assert str(Identity(IdType.ID_IPV6_ADDR, bytes(16))) == "::"
    assert str(Identity(IdType.ID_KEY_ID, b"\x01\x02")) == "@#0102"
    assert str(Identity(IdType.ID_FQDN, b"moon")) == "moon"
    assert str(IDENTITY_ANY) == "%any"
