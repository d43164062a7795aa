"""Certificate and Certificate Request payloads (RFC 7296 §3.6, §3.7).

::

    CERT:    | Cert Encoding (1) | Certificate Data ... |
    CERTREQ: | Cert Encoding (1) | Certification Authority ... |

For the X.509 Certificate - Signature encoding (4), a CERTREQ's Certification Authority
field is a concatenation of 20-byte SHA-1 hashes of trusted CAs' SubjectPublicKeyInfo
(RFC 7296 §3.7); its length must therefore be a multiple of 20, which the decoder checks
(an empty list, meaning "any CA", is accepted). The data of other encodings is opaque.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyipsec.iana.ikev2 import CertEncoding, PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import register

__all__ = ["CA_KEY_HASH_LEN", "Certificate", "CertificateRequest"]

CA_KEY_HASH_LEN = 20
"""SHA-1 of a CA's SubjectPublicKeyInfo (RFC 7296 §3.7)."""


def _check_encoding(encoding: int) -> CertEncoding:
    if not 0 <= encoding <= 255:
        raise ValueError("certificate encodings are 8-bit values")
    return CertEncoding(encoding)


@register(PayloadType.CERT)
@dataclass(frozen=True, slots=True)
class Certificate:
    """The CERT payload: a certificate (DER for X.509 Certificate - Signature) or related data."""

    encoding: CertEncoding
    data: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoding", _check_encoding(self.encoding))

    @classmethod
    def x509(cls, der: bytes) -> Certificate:
        """A DER X.509 certificate (encoding 4)."""
        return cls(CertEncoding.X509_CERTIFICATE_SIGNATURE, der)

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.CERT

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> Certificate:
        encoding = CertEncoding(r.u8("cert encoding"))
        return cls(encoding, r.rest())


@register(PayloadType.CERTREQ)
@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """The CERTREQ payload: which CAs the sender trusts, for one certificate encoding."""

    encoding: CertEncoding
    data: bytes = b""

    def __post_init__(self) -> None:
        encoding = _check_encoding(self.encoding)
        object.__setattr__(self, "encoding", encoding)
        if encoding == CertEncoding.X509_CERTIFICATE_SIGNATURE and len(self.data) % CA_KEY_HASH_LEN:
            raise ValueError("X.509 CERTREQ data is a list of 20-byte SHA-1 hashes")

    @classmethod
    def x509(cls, ca_key_hashes: Iterable[bytes] = ()) -> CertificateRequest:
        """An X.509 CERTREQ (encoding 4) naming these SHA-1 SubjectPublicKeyInfo hashes."""
        hashes = tuple(ca_key_hashes)
        if any(len(h) != CA_KEY_HASH_LEN for h in hashes):
            raise ValueError("CA key hashes are 20-byte SHA-1 digests")
        return cls(CertEncoding.X509_CERTIFICATE_SIGNATURE, b"".join(hashes))

    @property
    def ca_key_hashes(self) -> tuple[bytes, ...]:
        """The 20-byte CA key hashes of an X.509 CERTREQ; empty for any other encoding."""
        if self.encoding != CertEncoding.X509_CERTIFICATE_SIGNATURE:
            return ()
        return tuple(self.data[i : i + CA_KEY_HASH_LEN] for i in range(0, len(self.data), CA_KEY_HASH_LEN))

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.CERTREQ

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> CertificateRequest:
        encoding = CertEncoding(r.u8("cert encoding"))
        if encoding == CertEncoding.X509_CERTIFICATE_SIGNATURE and r.remaining % CA_KEY_HASH_LEN:
            raise r.fail(f"X.509 CERTREQ data of {r.remaining} bytes is not a list of 20-byte hashes")
        return cls(encoding, r.rest())
