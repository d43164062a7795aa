"""A tiny certificate factory for tests: CAs, intermediates and end-entity certificates.

Theory of operation
-------------------
Everything is built in memory with ``cryptography``'s :class:`~cryptography.x509.CertificateBuilder`
at test time, so no fixture files are needed. :func:`make_ca` creates a self-signed root (or, given
``issuer``, an intermediate); :func:`make_end_entity` issues a leaf with chosen SANs, EKUs, key
usage and validity window. All validity windows default to a fixed period around :data:`NOW`
(never the wall clock), and tests pass :data:`NOW` (or a chosen instant) as the validation time.

Keys are chosen by :data:`KeyKind`. RSA key generation is slow, so RSA keys come from a cache of
:data:`RSA_POOL` keys per size, handed out round-robin (``slot`` picks one explicitly); within one
test the keys are therefore distinct as long as it makes fewer than :data:`RSA_POOL` RSA keys.
EC and EdDSA keys are always fresh.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = [
    "EKU_IKE_INTERMEDIATE",
    "EKU_IPSEC_IKE",
    "NOW",
    "RSA_POOL",
    "Issued",
    "KeyKind",
    "PrivateKey",
    "make_ca",
    "make_chain",
    "make_end_entity",
    "make_key",
    "name",
]

NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)
"""The reference instant of every default validity window."""

EKU_IPSEC_IKE = ObjectIdentifier("1.3.6.1.5.5.7.3.17")  # id-kp-ipsecIKE, RFC 4945 §5.1.3.12
EKU_IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")  # iKEIntermediate (Microsoft, macOS)

KeyKind = Literal["rsa2048", "rsa3072", "rsa1024", "p256", "p384", "p521", "ed25519", "ed448"]
PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)

_CURVES: dict[str, ec.EllipticCurve] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
}


RSA_POOL = 16
_rsa_next = itertools.count()


@cache
def _rsa_key(bits: int, slot: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_key(kind: KeyKind = "p256", *, slot: int | None = None) -> PrivateKey:
    """A private key of ``kind``; RSA keys come from a round-robin cache (``slot`` picks one)."""
    if kind.startswith("rsa"):
        return _rsa_key(int(kind[3:]), (next(_rsa_next) if slot is None else slot) % RSA_POOL)
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def name(common_name: str, *, org: str = "pyipsec tests", country: str = "XX") -> x509.Name:
    """A ``C=…, O=…, CN=…`` distinguished name."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted when ``password`` is given."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


_serial = itertools.count(0x1000)


def _key_usage(usages: Sequence[str]) -> x509.KeyUsage:
    known = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    )
    unknown = set(usages) - set(known)
    if unknown:
        raise ValueError(f"unknown key usages {sorted(unknown)}")
    flags = {k: k in usages for k in known}
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def _builder(
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key: ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(next(_serial))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def make_ca(
    common_name: str = "pyipsec test root CA",
    *,
    key: KeyKind = "p256",
    issuer: Issued | None = None,
    subject: x509.Name | None = None,
    not_before: datetime = NOW - timedelta(days=3650),
    not_after: datetime = NOW + timedelta(days=3650),
    path_length: int | None = None,
    key_usage: Sequence[str] | None = ("key_cert_sign", "crl_sign"),
    eku: Sequence[ObjectIdentifier] | None = None,
    ca: bool = True,
    slot: int | None = None,
) -> Issued:
    """A CA certificate: self-signed root, or an intermediate when ``issuer`` is given."""
    private = make_key(key, slot=slot)
    subject = subject or name(common_name)
    b = _builder(
        subject,
        issuer.cert.subject if issuer else subject,
        private.public_key(),
        not_before,
        not_after,
    )
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    if key_usage is not None:
        b = b.add_extension(_key_usage(key_usage), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
    signer = issuer.key if issuer else private
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    return Issued(b.sign(signer, _hash_for(signer)), private)


def make_end_entity(
    issuer: Issued,
    common_name: str = "peer.example.test",
    *,
    key: KeyKind = "p256",
    subject: x509.Name | None = None,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    emails: Sequence[str] = (),
    directory_names: Sequence[x509.Name] = (),
    eku: Sequence[ObjectIdentifier] | None = None,
    key_usage: Sequence[str] | None = ("digital_signature",),
    not_before: datetime = NOW - timedelta(days=365),
    not_after: datetime = NOW + timedelta(days=365),
    san_critical: bool = False,
    authority_key_id: bool = True,
    signer: PrivateKey | None = None,
    slot: int | None = None,
) -> Issued:
    """An end-entity certificate issued by ``issuer``.

    ``eku=None`` leaves the ExtendedKeyUsage extension out; ``key_usage=None`` leaves KeyUsage
    out. ``signer`` signs with another key than the issuer's (to forge a bad signature).
    """
    private = make_key(key, slot=slot)
    subject = name(common_name) if subject is None else subject
    b = _builder(subject, issuer.cert.subject, private.public_key(), not_before, not_after)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    sans += [x509.RFC822Name(e) for e in emails]
    sans += [x509.DirectoryName(n) for n in directory_names]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=san_critical)
    if key_usage is not None:
        b = b.add_extension(_key_usage(key_usage), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if authority_key_id:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    sign_key = signer or issuer.key
    return Issued(b.sign(sign_key, _hash_for(sign_key)), private)


def make_chain(
    *,
    key: KeyKind = "p256",
    intermediates: int = 1,
    dns: Sequence[str] = ("peer.example.test",),
    eku: Sequence[ObjectIdentifier] | None = None,
) -> tuple[Issued, list[Issued], Issued]:
    """A root, ``intermediates`` intermediate CAs (root-most first) and a leaf under the last."""
    root = make_ca(key=key)
    chain: list[Issued] = []
    parent = root
    for i in range(intermediates):
        parent = make_ca(f"pyipsec test intermediate CA {i + 1}", key=key, issuer=parent)
        chain.append(parent)
    leaf = make_end_entity(parent, dns[0] if dns else "peer.example.test", key=key, dns=dns, eku=eku)
    return root, chain, leaf
