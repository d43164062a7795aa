"""Certificates issued by pyipsec.pki.ca: exactly the extensions the built-in clients need,
chains that pyipsec's own TrustStore accepts for the right purpose only, and PKCS#12 bundles."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from pyipsec.crypto.rand import SeededRandom
from pyipsec.crypto.x509 import (
    BadCertificateSignature,
    CertificateExpired,
    CertificateUsageError,
    TrustStore,
    identity_matches_certificate,
)
from pyipsec.iana.ikev2 import IdType
from pyipsec.pki.ca import (
    BACKDATE,
    EKU_IKE_INTERMEDIATE,
    Issued,
    check_ca,
    create_ca,
    issue_client,
    issue_gateway,
    pkcs12_bundle,
)
from pyipsec.pki.errors import PkiError
from pyipsec.pki.keys import DEFAULT_KEY, KeySpec
from tests.support.pki import make_key

EC256 = KeySpec("ecdsa", 256)


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_ca_certificate(ec_ca: Issued, now: datetime) -> None:
    cert = ec_ca.certificate
    assert cert.subject == cert.issuer
    assert _cn(cert) == "Test CA"
    assert {e.oid for e in cert.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    }
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=0)
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
    assert cert.not_valid_before_utc == now - BACKDATE
    assert cert.not_valid_after_utc == now + timedelta(days=3650)
    cert.verify_directly_issued_by(cert)
    check_ca(ec_ca, now)


def test_gateway_certificate_extensions(ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org", "203.0.113.5", "2001:db8::5"], now=now, key_spec=EC256)
    cert = gw.certificate
    assert _cn(cert) == "vpn.example.org"
    assert cert.issuer == ec_ca.certificate.subject
    assert {e.oid for e in cert.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
    san = _ext(cert, x509.SubjectAlternativeName).value
    # every name as dNSName (Windows), addresses also as iPAddress (RFC 4945 §5.1.3.6)
    assert san.get_values_for_type(x509.DNSName) == ["vpn.example.org", "203.0.113.5", "2001:db8::5"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("203.0.113.5"),
        ipaddress.ip_address("2001:db8::5"),
    ]
    eku = _ext(cert, x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, EKU_IKE_INTERMEDIATE]
    assert EKU_IKE_INTERMEDIATE.dotted_string == "1.3.6.1.5.5.8.2.2"
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value == x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    assert _ext(cert, x509.BasicConstraints).value.ca is False
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    ski = _ext(ec_ca.certificate, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
    assert isinstance(gw.key, ec.EllipticCurvePrivateKey) and gw.key.curve.name == "secp256r1"


def test_gateway_certificate_validates_against_its_ca(ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org", "203.0.113.5"], now=now, key_spec=EC256)
    store = TrustStore([ec_ca.certificate])
    chain = store.verify_chain(gw.certificate, [], now + timedelta(days=30), purpose="server")
    assert chain.end_entity == gw.certificate and chain.anchor == ec_ca.certificate
    other = create_ca("Test CA", now=now, key_spec=EC256)  # same name, other key
    with pytest.raises(BadCertificateSignature):
        TrustStore([other.certificate]).verify_chain(gw.certificate, [], now, purpose="server")
    with pytest.raises(CertificateExpired):
        store.verify_chain(gw.certificate, [], now + timedelta(days=826), purpose="server")
    # the IKE identities a gateway would send are bound to the certificate (RFC 4945 §3.1)
    assert identity_matches_certificate(IdType.ID_FQDN, b"vpn.example.org", gw.certificate)
    assert identity_matches_certificate(
        IdType.ID_IPV4_ADDR, ipaddress.ip_address("203.0.113.5").packed, gw.certificate
    )
    assert not identity_matches_certificate(IdType.ID_FQDN, b"other.example.org", gw.certificate)


def test_client_certificate(ec_ca: Issued, now: datetime) -> None:
    alice = issue_client(ec_ca, "alice@example.org", now=now, key_spec=EC256).certificate
    assert _cn(alice) == "alice@example.org"
    assert _ext(alice, x509.SubjectAlternativeName).value == x509.SubjectAlternativeName(
        [x509.RFC822Name("alice@example.org")]
    )
    assert list(_ext(alice, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _ext(alice, x509.KeyUsage).value.digital_signature
    store = TrustStore([ec_ca.certificate])
    store.verify_chain(alice, [], now, purpose="client")
    with pytest.raises(CertificateUsageError):
        store.verify_chain(alice, [], now, purpose="server")
    assert identity_matches_certificate(IdType.ID_RFC822_ADDR, b"alice@example.org", alice)
    laptop = issue_client(ec_ca, "laptop.example.org", now=now, key_spec=EC256).certificate
    assert _ext(laptop, x509.SubjectAlternativeName).value == x509.SubjectAlternativeName(
        [x509.DNSName("laptop.example.org")]
    )


def test_default_key_is_rsa_3072(now: datetime) -> None:
    assert KeySpec("rsa", 3072) == DEFAULT_KEY
    ca = create_ca("RSA CA", now=now, key=make_key("rsa3072"))
    gw = issue_gateway(ca, ["vpn.example.org"], now=now)  # generates a fresh RSA 3072 key
    assert isinstance(gw.key, rsa.RSAPrivateKey) and gw.key.key_size == 3072
    assert gw.certificate.signature_hash_algorithm is not None
    assert gw.certificate.signature_hash_algorithm.name == "sha256"
    TrustStore([ca.certificate]).verify_chain(gw.certificate, [], now, purpose="server")


def test_ecdsa_p384_gateway_under_rsa_ca(now: datetime) -> None:
    ca = create_ca("RSA CA", now=now, key=make_key("rsa2048"))
    gw = issue_gateway(ca, ["vpn.example.org"], now=now, key_spec=KeySpec("ecdsa", 384))
    assert isinstance(gw.key, ec.EllipticCurvePrivateKey) and gw.key.curve.key_size == 384
    TrustStore([ca.certificate]).verify_chain(gw.certificate, [], now, purpose="server")


def test_serials_are_positive_random_and_seedable(now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    a = create_ca("CA", now=now, key=key, rng=SeededRandom(7)).certificate.serial_number
    b = create_ca("CA", now=now, key=key, rng=SeededRandom(7)).certificate.serial_number
    c = create_ca("CA", now=now, key=key, rng=SeededRandom(8)).certificate.serial_number
    assert a == b != c
    assert 0 < a < 2**159 and 0 < c < 2**159


def test_leaf_validity_never_outlasts_the_ca(now: datetime) -> None:
    ca = create_ca("Short CA", now=now, days=30, key_spec=EC256)
    gw = issue_gateway(ca, ["vpn.example.org"], now=now + timedelta(days=1), key_spec=EC256).certificate
    assert gw.not_valid_after_utc == ca.certificate.not_valid_after_utc
    assert gw.not_valid_before_utc == now + timedelta(days=1) - BACKDATE
    early = issue_gateway(ca, ["vpn.example.org"], now=now, days=10, key_spec=EC256).certificate
    assert early.not_valid_before_utc == ca.certificate.not_valid_before_utc
    assert early.not_valid_after_utc == now + timedelta(days=10)


def test_naive_now_is_utc(ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org"], now=now.replace(tzinfo=None), key_spec=EC256)
    assert gw.certificate.not_valid_before_utc == now - BACKDATE


def test_issuing_refuses_bad_input(ec_ca: Issued, now: datetime) -> None:
    with pytest.raises(PkiError, match="at least one name"):
        issue_gateway(ec_ca, [], now=now, key_spec=EC256)
    with pytest.raises(PkiError, match="not a DNS name"):
        issue_gateway(ec_ca, ["vpn..example.org"], now=now, key_spec=EC256)
    with pytest.raises(PkiError, match="at most 64"):
        issue_gateway(ec_ca, ["a" * 60 + ".example.org"], now=now, key_spec=EC256)
    with pytest.raises(PkiError, match="at least one day"):
        issue_client(ec_ca, "alice@example.org", now=now, days=0, key_spec=EC256)
    with pytest.raises(PkiError, match="non-empty common name"):
        create_ca("  ", now=now, key_spec=EC256)
    with pytest.raises(PkiError, match="expired on"):
        issue_client(ec_ca, "alice@example.org", now=now + timedelta(days=4000), key_spec=EC256)


def test_check_ca_refuses_leaf_and_foreign_key(ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org"], now=now, key_spec=EC256)
    with pytest.raises(PkiError, match="not a CA certificate"):
        issue_client(gw, "alice@example.org", now=now, key_spec=EC256)
    stranger = Issued(ec_ca.certificate, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(PkiError, match="does not belong"):
        check_ca(stranger, now)
    with pytest.raises(PkiError, match="not valid before"):
        check_ca(ec_ca, now - timedelta(days=1))


def test_key_spec_parsing() -> None:
    assert KeySpec.parse("rsa") == KeySpec("rsa", 3072)
    assert KeySpec.parse("RSA4096") == KeySpec("rsa", 4096)
    assert KeySpec.parse("ecdsa") == KeySpec("ecdsa", 256)
    assert KeySpec.parse("ecdsa384") == KeySpec("ecdsa", 384)
    assert str(KeySpec("ecdsa", 384)) == "ECDSA P-384" and str(DEFAULT_KEY) == "RSA 3072"
    for bad in ("rsa1024", "ecdsa521", "ed25519", ""):
        with pytest.raises(PkiError):
            KeySpec.parse(bad)


# --- PKCS#12 --------------------------------------------------------------------------------


def _der_oid(dotted: str) -> bytes:
    """DER of an OBJECT IDENTIFIER (X.690 §8.19), to look for algorithms inside a PKCS#12 file."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return bytes([0x06, len(body)]) + bytes(body)


PBE_SHA1_3DES = _der_oid("1.2.840.113549.1.12.1.3")  # pbeWithSHAAnd3-KeyTripleDES-CBC, RFC 7292 App. C
PBES2 = _der_oid("1.2.840.113549.1.5.13")  # RFC 8018 Appendix A.4
AES256_CBC = _der_oid("2.16.840.1.101.3.4.1.42")  # NIST CSOR aes256-CBC-PAD
SHA1 = _der_oid("1.3.14.3.2.26")  # id-sha1 (the legacy MAC digest)


def test_der_oid_encoding() -> None:
    assert _der_oid("1.3.14.3.2.26") == bytes.fromhex("06052b0e03021a")
    assert _der_oid("1.2.840.113549.1.5.13") == bytes.fromhex("06092a864886f70d01050d")


@pytest.mark.parametrize("encryption", ["legacy", "modern"])
def test_pkcs12_round_trip(ec_ca: Issued, now: datetime, encryption: str) -> None:
    alice = issue_client(ec_ca, "alice@example.org", now=now, key_spec=EC256)
    bundle = pkcs12_bundle(
        alice,
        ec_ca.certificate,
        "pässword".encode(),
        friendly_name="alice@example.org",
        encryption="legacy" if encryption == "legacy" else "modern",
    )
    loaded = pkcs12.load_pkcs12(bundle, "pässword".encode())
    assert loaded.cert is not None and loaded.cert.certificate == alice.certificate
    assert loaded.cert.friendly_name == b"alice@example.org"
    assert [c.certificate for c in loaded.additional_certs] == [ec_ca.certificate]
    assert loaded.key is not None
    der = serialization.Encoding.DER
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    assert loaded.key.private_bytes(der, pkcs8, none) == alice.key.private_bytes(der, pkcs8, none)
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(bundle, b"wrong")
    if encryption == "legacy":  # what Apple imports: 3DES with the PKCS#12 KDF, SHA-1 MAC
        assert PBE_SHA1_3DES in bundle and SHA1 in bundle and PBES2 not in bundle
    else:
        assert PBES2 in bundle and AES256_CBC in bundle and PBE_SHA1_3DES not in bundle


def test_pkcs12_needs_a_password(ec_ca: Issued, now: datetime) -> None:
    alice = issue_client(ec_ca, "alice@example.org", now=now, key_spec=EC256)
    with pytest.raises(PkiError, match="non-empty password"):
        pkcs12_bundle(alice, ec_ca.certificate, b"", friendly_name="alice")
