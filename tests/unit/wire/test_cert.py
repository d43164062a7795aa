"""Certificate and Certificate Request payloads (RFC 7296 §3.6, §3.7)."""

from __future__ import annotations

import hashlib

import pytest

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import CertEncoding, PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.cert import CA_KEY_HASH_LEN, Certificate, CertificateRequest

H1 = hashlib.sha1(b"ca one", usedforsecurity=False).digest()
H2 = hashlib.sha1(b"ca two", usedforsecurity=False).digest()


def test_cert_roundtrip() -> None:
    der = b"\x30\x03\x02\x01\x00"
    body = b"\x04" + der  # encoding 4: X.509 Certificate - Signature
    c = Certificate.decode_body(PayloadType.CERT, Reader(body))
    assert c == Certificate.x509(der) == Certificate(CertEncoding.X509_CERTIFICATE_SIGNATURE, der)
    assert c.encode_body() == body
    assert c.payload_type is PayloadType.CERT


def test_cert_other_encoding_is_opaque() -> None:
    c = Certificate.decode_body(PayloadType.CERT, Reader(b"\x0c" + H1 + b"http://x/c.der"))
    assert c.encoding is CertEncoding.HASH_AND_URL_OF_X509_CERTIFICATE


def test_cert_truncated() -> None:
    with pytest.raises(DecodeError):
        Certificate.decode_body(PayloadType.CERT, Reader(b""))


def test_certreq_hashes() -> None:
    body = b"\x04" + H1 + H2
    cr = CertificateRequest.decode_body(PayloadType.CERTREQ, Reader(body))
    assert cr.ca_key_hashes == (H1, H2)
    assert cr == CertificateRequest.x509([H1, H2])
    assert cr.encode_body() == body
    assert cr.payload_type is PayloadType.CERTREQ


def test_empty_certreq_means_any_ca() -> None:
    cr = CertificateRequest.decode_body(PayloadType.CERTREQ, Reader(b"\x04"))
    assert cr.ca_key_hashes == () and cr == CertificateRequest.x509()


@pytest.mark.parametrize("n", [1, 19, 21, 39])
def test_certreq_hash_list_length_checked(n: int) -> None:
    with pytest.raises(DecodeError, match="20-byte"):
        CertificateRequest.decode_body(PayloadType.CERTREQ, Reader(b"\x04" + bytes(n)))
    with pytest.raises(ValueError):
        CertificateRequest(CertEncoding.X509_CERTIFICATE_SIGNATURE, bytes(n))


def test_certreq_other_encoding_is_opaque() -> None:
    cr = CertificateRequest.decode_body(PayloadType.CERTREQ, Reader(b"\x02abc"))
    assert cr.encoding is CertEncoding.PGP_CERTIFICATE and cr.data == b"abc"
    assert cr.ca_key_hashes == ()


def test_certreq_truncated() -> None:
    with pytest.raises(DecodeError):
        CertificateRequest.decode_body(PayloadType.CERTREQ, Reader(b""))


def test_x509_rejects_bad_hash_lengths() -> None:
    with pytest.raises(ValueError):
        CertificateRequest.x509([H1[: CA_KEY_HASH_LEN - 1]])


def test_encoding_range() -> None:
    with pytest.raises(ValueError):
        Certificate(256, b"")  # type: ignore[arg-type]
