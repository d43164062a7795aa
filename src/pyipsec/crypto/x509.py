"""X.509 certificates for IKE authentication: loading, chain validation, identities, CERTREQ.

Theory of operation
-------------------
**Loading.** :func:`load_certificate`, :func:`load_certificates` and :func:`load_private_key` take
bytes (PEM or DER; the caller reads the file) and turn every parse failure into a pyipsec
error with a clear message, never a raw ``cryptography`` exception: certificates raise
:class:`MalformedCertificate` (an :class:`~pyipsec.errors.AuthenticationFailed`, since peers
send certificates too), private keys — always local — raise :class:`~pyipsec.errors.ConfigError`.

**Chain validation.** :class:`TrustStore` holds the trust anchors and locally configured
intermediates. :meth:`TrustStore.verify_chain` builds and checks the path with
``cryptography.x509.verification`` (RFC 5280 path building, signatures, validity, basic
constraints, path length, name constraints) under an extension policy relaxed for IKE:
``cryptography``'s defaults follow the CA/Browser Forum Web PKI profile, which IKE
certificates often do not (no SAN, no AKI, IPsec EKUs, CAs without KeyUsage). Then our own IKE
usage policy applies to the end entity (RFC 4945 §5.1.3.2 KeyUsage, §5.1.3.12 EKU); see
:data:`IKE_EKUS`. The validation time is an argument: this module never reads the clock.

When ``cryptography`` rejects a chain, its reason is a free-form string, so we diagnose the
failure ourselves by walking from the end entity towards an anchor and report the first cause
found — expired or not yet valid (with the dates), no trusted issuer, a signature that does not
verify — each as its own :class:`~pyipsec.errors.CertificateError` subclass. The diagnosis only
names the cause; the accept/reject decision is ``cryptography``'s.

Known limit of ``cryptography``'s verifier (50.x): CA keys must be RSA ≥ 2048 bits or ECDSA
P-256/P-384/P-521 and certificate signatures RSA PKCS#1 v1.5/PSS or ECDSA with SHA-2. An
Ed25519/Ed448 *end-entity* key under such a CA is fine; an Ed25519/Ed448 *CA* is rejected with
:class:`UnsupportedCertificateAlgorithm`.

**Identities.** :func:`identity_matches_certificate` implements RFC 4945 §3.1 / RFC 7296 §3.5
matching of an IKE ID against the certificate: FQDN, IP address and RFC 822 IDs against the
subjectAltName, DN IDs against the subject. :func:`identity_for_certificate` picks our own ID.

**CERTREQ.** :func:`ca_key_hash` is the SHA-1 of a CA's DER SubjectPublicKeyInfo (RFC 7296 §3.7),
taken from the certificate's own bytes.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from pyipsec.errors import CertificateError, ConfigError
from pyipsec.iana.ikev2 import IdType

__all__ = [
    "EKU_IKE_INTERMEDIATE",
    "EKU_IPSEC_IKE",
    "IKE_EKUS",
    "BadCertificateSignature",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateUsageError",
    "MalformedCertificate",
    "PrivateKey",
    "PublicKey",
    "Purpose",
    "TrustStore",
    "UnsupportedCertificateAlgorithm",
    "UntrustedCertificate",
    "ValidatedChain",
    "ca_key_hash",
    "certificate_public_key",
    "describe",
    "identity_for_certificate",
    "identity_matches_certificate",
    "load_certificate",
    "load_certificates",
    "load_private_key",
]

PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
Purpose = Literal["server", "client", "any"]

EKU_IPSEC_IKE: Final = ObjectIdentifier("1.3.6.1.5.5.7.3.17")
"""id-kp-ipsecIKE (RFC 4945 §5.1.3.12)."""
EKU_IKE_INTERMEDIATE: Final = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
"""iKEIntermediate, asked for by Windows and macOS IKEv2 clients."""

IKE_EKUS: Final[dict[str, frozenset[ObjectIdentifier]]] = {
    "server": frozenset(
        {
            EKU_IPSEC_IKE,
            EKU_IKE_INTERMEDIATE,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            ExtendedKeyUsageOID.SERVER_AUTH,
        }
    ),
    "client": frozenset(
        {
            EKU_IPSEC_IKE,
            EKU_IKE_INTERMEDIATE,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            ExtendedKeyUsageOID.CLIENT_AUTH,
        }
    ),
    "any": frozenset(
        {
            EKU_IPSEC_IKE,
            EKU_IKE_INTERMEDIATE,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
        }
    ),
}
"""Key purposes accepted in an end entity's EKU, per purpose (RFC 4945 §5.1.3.12).

A certificate without EKU is accepted. RFC 4945 accepts only id-kp-ipsecIKE and
anyExtendedKeyUsage; like strongSwan, Windows and macOS we also accept serverAuth (for a
responder, ``"server"``) and clientAuth (for an initiator, ``"client"``), which is what most
deployed IKE certificates carry, and iKEIntermediate. An EKU naming none of these — say,
only emailProtection or codeSigning — is rejected.
"""


# --- errors ----------------------------------------------------------------------------------


class MalformedCertificate(CertificateError):
    """Bytes that are not a (parseable) X.509 certificate."""


class UntrustedCertificate(CertificateError):
    """No path from the certificate to a trust anchor: an unknown or missing issuer."""


class CertificateExpired(CertificateError):
    """A certificate of the chain expired before the validation time."""

    def __init__(self, message: str, *, not_after: datetime) -> None:
        super().__init__(message)
        self.not_after = not_after


class CertificateNotYetValid(CertificateError):
    """A certificate of the chain is not valid yet at the validation time."""

    def __init__(self, message: str, *, not_before: datetime) -> None:
        super().__init__(message)
        self.not_before = not_before


class BadCertificateSignature(CertificateError):
    """A certificate's signature does not verify with its (named) issuer's key."""


class CertificateUsageError(CertificateError):
    """The end entity's KeyUsage or ExtendedKeyUsage does not allow IKE authentication."""


class UnsupportedCertificateAlgorithm(CertificateError):
    """A key or signature algorithm the validator does not accept (e.g. an Ed25519 CA, RSA-1024)."""


# --- small helpers ---------------------------------------------------------------------------

# Everything cryptography raises for malformed certificates (InvalidVersion and
# UnsupportedGeneralNameType are not ValueErrors).
_CRYPTO_ERRORS = (
    ValueError,
    TypeError,
    _CryptoUnsupported,
    x509.InvalidVersion,
    x509.UnsupportedGeneralNameType,
    x509.DuplicateExtension,
)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def describe(cert: x509.Certificate) -> str:
    """The subject DN in RFC 4514 form, for messages (``<empty subject>`` when it has none)."""
    try:
        text = cert.subject.rfc4514_string()
    except _CRYPTO_ERRORS:
        return "<unprintable subject>"
    return f"'{text}'" if text else "<empty subject>"


def _utc(now: datetime) -> datetime:
    """``now`` as an aware UTC datetime; a naive ``now`` is taken to be UTC."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ensure_parsed(cert: x509.Certificate, where: str) -> x509.Certificate:
    """Force the lazy parts (extensions, names, TBS layout) so later use cannot fail."""
    try:
        _ = cert.extensions
        _ = cert.subject.rfc4514_string()
        _ = cert.issuer.rfc4514_string()
        _tbs_fields(cert)
    except _CRYPTO_ERRORS as exc:
        raise MalformedCertificate(f"{where}malformed X.509 certificate: {_reason(exc)}") from exc
    return cert


def _prefix(source: str) -> str:
    return f"{source}: " if source else ""


# --- loading ---------------------------------------------------------------------------------

_PEM_MARK = b"-----BEGIN"


def load_certificate(data: bytes, *, source: str = "") -> x509.Certificate:
    """One X.509 certificate from PEM or DER bytes.

    ``source`` (a file name, say) prefixes error messages. A PEM input must hold exactly one
    certificate; use :func:`load_certificates` for bundles. Raises :class:`MalformedCertificate`.
    """
    certs = load_certificates(data, source=source)
    if len(certs) != 1:
        raise MalformedCertificate(
            f"{_prefix(source)}expected one certificate, found {len(certs)} (use load_certificates)"
        )
    return certs[0]


def load_certificates(data: bytes, *, source: str = "") -> tuple[x509.Certificate, ...]:
    """All certificates of a PEM bundle (other PEM blocks are ignored), or one DER certificate."""
    where = _prefix(source)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCertificate(f"{where}certificate data must be bytes, not {type(data).__name__}")
    raw = bytes(data)
    if not raw.strip():
        raise MalformedCertificate(f"{where}no certificate data (empty input)")
    try:
        if _PEM_MARK in raw:
            certs = tuple(x509.load_pem_x509_certificates(raw))
        else:
            certs = (x509.load_der_x509_certificate(raw),)
    except _CRYPTO_ERRORS as exc:
        kind = "PEM" if _PEM_MARK in raw else "DER"
        raise MalformedCertificate(f"{where}not a valid X.509 certificate ({kind}): {_reason(exc)}") from exc
    return tuple(_ensure_parsed(c, where) for c in certs)


def load_private_key(data: bytes, password: bytes | str | None = None, *, source: str = "") -> PrivateKey:
    """An RSA, ECDSA, Ed25519 or Ed448 private key from PEM or DER (PKCS#8, PKCS#1, SEC 1).

    Raises :class:`~pyipsec.errors.ConfigError` (with ``path=source``) for unreadable data, a
    missing or wrong password, or a key type that cannot sign IKE AUTH payloads.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ConfigError(f"private key data must be bytes, not {type(data).__name__}", path=source)
    secret = password.encode() if isinstance(password, str) else password
    raw = bytes(data)
    if not raw.strip():
        raise ConfigError("no private key data (empty input)", path=source)
    try:
        if _PEM_MARK in raw:
            key = serialization.load_pem_private_key(raw, secret)
        else:
            key = serialization.load_der_private_key(raw, secret)
    except TypeError as exc:
        # cryptography says TypeError for "password given but key not encrypted" and vice versa.
        hint = "the key is encrypted: a password is needed" if secret is None else "the key is not encrypted"
        raise ConfigError(f"cannot load private key: {hint}", path=source) from exc
    except (ValueError, _CryptoUnsupported) as exc:
        detail = _reason(ValueError(str(exc).partition("Details: ")[2] or str(exc)))
        hint = ", or the password is wrong" if secret is not None else ""
        raise ConfigError(
            f"cannot load private key: not a valid PEM or DER private key{hint} ({detail})", path=source
        ) from exc
    if not isinstance(
        key,
        rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey,
    ):
        raise ConfigError(
            f"unsupported private key type {type(key).__name__}: IKE needs RSA, ECDSA, Ed25519 or Ed448",
            path=source,
        )
    return key


def certificate_public_key(cert: x509.Certificate) -> PublicKey:
    """The subject public key, if it is one IKE can verify signatures with (RSA/EC/EdDSA)."""
    try:
        key = cert.public_key()
    except _CRYPTO_ERRORS as exc:
        raise UnsupportedCertificateAlgorithm(
            f"certificate {describe(cert)} has an unusable public key: {_reason(exc)}"
        ) from exc
    if isinstance(
        key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    ):
        return key
    raise UnsupportedCertificateAlgorithm(
        f"certificate {describe(cert)} has a {type(key).__name__}, which cannot verify IKE signatures"
    )


# --- minimal DER reading (the TBS fields and Names that cryptography re-encodes) ---------------


class _Der(ValueError):
    pass


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at ``pos``; single-byte tags only."""
    if pos + 2 > len(data):
        raise _Der("truncated DER element")
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise _Der("multi-byte DER tags are not used here")
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or start + n > len(data):
            raise _Der("bad DER length")
        length = int.from_bytes(data[start : start + n], "big")
        start += n
    end = start + length
    if end > len(data):
        raise _Der("DER element runs past its container")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(tag, element start, element end) of each element between ``start`` and ``end``."""
    out = []
    pos = start
    while pos < end:
        tag, _, nxt = _tlv(data, pos)
        if nxt > end:
            raise _Der("DER element runs past its container")
        out.append((tag, pos, nxt))
        pos = nxt
    return out


def _tbs_fields(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """The DER subject Name and SubjectPublicKeyInfo exactly as they appear in the certificate."""
    tbs = cert.tbs_certificate_bytes
    tag, start, end = _tlv(tbs, 0)
    if tag != 0x30 or end != len(tbs):
        raise _Der("TBSCertificate is not one SEQUENCE")
    fields = _children(tbs, start, end)
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo (RFC 5280 §4.1)
    if len(fields) < 6 or fields[4][0] != 0x30 or fields[5][0] != 0x30:
        raise _Der("TBSCertificate lacks subject or subjectPublicKeyInfo")
    _, s0, s1 = fields[4]
    _, k0, k1 = fields[5]
    return tbs[s0:s1], tbs[k0:k1]


# Directory string types compared as text (RFC 5280 §7.1): their encodings map to one text.
_STRING_CODECS: Final[dict[int, str]] = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # TeletexString (T.61; latin-1 is the usual practical reading)
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}

_Rdn = frozenset[tuple[bytes, object]]


def _parse_name(der: bytes) -> tuple[_Rdn, ...]:
    """A DER Name as RDNs of (attribute OID bytes, comparable value); raises ``_Der``."""
    tag, start, end = _tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise _Der("a Name is one SEQUENCE")
    rdns = []
    for rtag, r0, _r1 in _children(der, start, end):
        if rtag != 0x31:
            raise _Der("an RDN is a SET")
        _, c0, c1 = _tlv(der, r0)
        atvs: set[tuple[bytes, object]] = set()
        for atag, a0, _a1 in _children(der, c0, c1):
            if atag != 0x30:
                raise _Der("an AttributeTypeAndValue is a SEQUENCE")
            _, v0, v1 = _tlv(der, a0)
            parts = _children(der, v0, v1)
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise _Der("an AttributeTypeAndValue is (OID, value)")
            oid = der[parts[0][1] : parts[0][2]]
            vtag, vs, ve = _tlv(der, parts[1][1])
            value: object
            codec = _STRING_CODECS.get(vtag)
            if codec is None:
                value = (vtag, der[vs:ve])
            else:
                try:
                    text = der[vs:ve].decode(codec)
                except UnicodeDecodeError as exc:
                    raise _Der("undecodable directory string") from exc
                # caseIgnoreMatch with insignificant space handling, simplified (RFC 4518 §2.6).
                value = " ".join(text.split()).casefold()
            atvs.add((oid, value))
        if not atvs:
            raise _Der("an RDN holds at least one attribute")
        rdns.append(frozenset(atvs))
    return tuple(rdns)


# --- CERTREQ ---------------------------------------------------------------------------------


def ca_key_hash(cert: x509.Certificate) -> bytes:
    """SHA-1 of the certificate's DER SubjectPublicKeyInfo: a CERTREQ entry (RFC 7296 §3.7)."""
    try:
        _, spki = _tbs_fields(cert)
    except _Der as exc:
        raise MalformedCertificate(f"certificate {describe(cert)}: {exc}") from exc
    return hashlib.sha1(spki, usedforsecurity=False).digest()


# --- identities (RFC 4945 §3.1, RFC 7296 §3.5) -----------------------------------------------


def _subject_alt_names(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except _CRYPTO_ERRORS as exc:
        raise MalformedCertificate(f"certificate {describe(cert)}: bad extensions: {_reason(exc)}") from exc
    return list(ext.value)


def _subject_der(cert: x509.Certificate) -> bytes:
    try:
        return _tbs_fields(cert)[0]
    except _Der as exc:
        raise MalformedCertificate(f"certificate {describe(cert)}: {exc}") from exc


def _email_equal(a: str, b: str) -> bool:
    # RFC 5280 §7.5: the local-part is case-sensitive, the domain is not.
    la, at_a, da = a.rpartition("@")
    lb, at_b, db = b.rpartition("@")
    if not (at_a and at_b):
        return False
    return la == lb and da.casefold() == db.casefold()


def identity_matches_certificate(id_type: IdType | int, id_data: bytes, cert: x509.Certificate) -> bool:
    """Whether an IKE identity (ID payload type and data) is bound to ``cert``.

    - ``ID_FQDN`` matches a dNSName subjectAltName, case-insensitively, without wildcards;
    - ``ID_IPV4_ADDR`` / ``ID_IPV6_ADDR`` match an iPAddress subjectAltName of that family;
    - ``ID_RFC822_ADDR`` matches an rfc822Name subjectAltName (domain case-insensitive);
    - ``ID_DER_ASN1_DN`` matches the subject DN: byte-equal DER, or the same RDNs with string
      values compared case- and space-insensitively across string types (RFC 5280 §7.1);
    - ``ID_KEY_ID`` and every other type never match (RFC 4945 §3.1.7: a KEY_ID is not bound
      to a certificate).

    Raises :class:`MalformedCertificate` if the certificate's extensions do not parse.
    """
    try:
        kind = IdType(id_type)
    except ValueError:
        return False
    if kind == IdType.ID_FQDN:
        # Only dNSName SANs count. A subject CN equal to the FQDN is NOT accepted as a fallback:
        # RFC 4945 §3.1.2 binds ID_FQDN to dNSName, and strongSwan likewise matches SANs only.
        try:
            fqdn = id_data.decode("ascii")
        except UnicodeDecodeError:
            return False
        if not fqdn:
            return False
        wanted = fqdn.casefold()
        return any(
            isinstance(gn, x509.DNSName) and gn.value.casefold() == wanted for gn in _subject_alt_names(cert)
        )
    if kind in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
        size = 4 if kind == IdType.ID_IPV4_ADDR else 16
        if len(id_data) != size:
            return False
        addr = ipaddress.ip_address(id_data)
        return any(
            isinstance(gn, x509.IPAddress) and gn.value == addr and gn.value.version == addr.version
            for gn in _subject_alt_names(cert)
        )
    if kind == IdType.ID_RFC822_ADDR:
        try:
            email = id_data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return any(
            isinstance(gn, x509.RFC822Name) and _email_equal(gn.value, email)
            for gn in _subject_alt_names(cert)
        )
    if kind == IdType.ID_DER_ASN1_DN:
        subject = _subject_der(cert)
        try:
            subject_rdns = _parse_name(subject)
        except _Der:
            return False
        if not subject_rdns:
            return False  # an empty subject names nobody
        if id_data == subject:
            return True
        try:
            return _parse_name(id_data) == subject_rdns
        except _Der:
            return False
    return False


def identity_for_certificate(cert: x509.Certificate) -> tuple[IdType, bytes]:
    """The IKE identity to send with ``cert``: its subject DN as ``ID_DER_ASN1_DN``.

    The DER is the certificate's own encoding of the subject. A certificate with an empty
    subject falls back to its first dNSName, iPAddress or rfc822Name subjectAltName.
    """
    subject = _subject_der(cert)
    if subject != b"\x30\x00":
        return IdType.ID_DER_ASN1_DN, subject
    for gn in _subject_alt_names(cert):
        if isinstance(gn, x509.DNSName):
            return IdType.ID_FQDN, gn.value.encode("ascii")
        if isinstance(gn, x509.IPAddress) and isinstance(
            gn.value, ipaddress.IPv4Address | ipaddress.IPv6Address
        ):
            kind = IdType.ID_IPV4_ADDR if gn.value.version == 4 else IdType.ID_IPV6_ADDR
            return kind, gn.value.packed
        if isinstance(gn, x509.RFC822Name):
            return IdType.ID_RFC822_ADDR, gn.value.encode("utf-8")
    raise CertificateError(f"certificate {describe(cert)} has neither a subject nor a usable subjectAltName")


# --- chain validation ------------------------------------------------------------------------


def _ca_basic_constraints(_policy: Policy, _cert: x509.Certificate, ext: x509.BasicConstraints) -> None:
    if not ext.ca:
        raise ValueError("basicConstraints.cA is not asserted in an issuing certificate")


def _ca_key_usage(_policy: Policy, _cert: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    if ext is not None and not ext.key_cert_sign:
        raise ValueError("the issuer's keyUsage lacks keyCertSign")


# CA certificates: RFC 5280 rather than CA/B Forum. A CA must assert basicConstraints cA (the
# extension may be non-critical, as many private CAs mark it); a KeyUsage, when present, must
# allow keyCertSign (a missing one is tolerated, as OpenSSL's default CA profile omits it); an
# EKU on a CA does not constrain its subordinates.
_CA_POLICY: Final = (
    ExtensionPolicy.webpki_defaults_ca()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _ca_basic_constraints)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
)
# End entities: no SAN requirement (IKE may identify by DN), no AKI requirement, and the EKU is
# judged by our IKE policy afterwards. Kept from the defaults: basicConstraints cA must not be
# asserted, no keyCertSign, no nameConstraints, unknown critical extensions rejected.
_EE_POLICY: Final = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
)


@dataclass(frozen=True, slots=True)
class ValidatedChain:
    """A certificate path that validated: end entity first, trust anchor last."""

    chain: tuple[x509.Certificate, ...]
    public_key: PublicKey
    """The end entity's public key, for verifying the peer's AUTH payload."""

    @property
    def end_entity(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def anchor(self) -> x509.Certificate:
        return self.chain[-1]

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self.chain[1:-1]


_E = TypeVar("_E", bound=x509.ExtensionType)

_EKU_NAMES: Final[dict[ObjectIdentifier, str]] = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    EKU_IPSEC_IKE: "ipsecIKE",
    EKU_IKE_INTERMEDIATE: "iKEIntermediate",
}


def _optional_extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except _CRYPTO_ERRORS as exc:
        raise MalformedCertificate(f"certificate {describe(cert)}: bad extensions: {_reason(exc)}") from exc


def _check_ike_usage(cert: x509.Certificate, purpose: Purpose) -> None:
    """RFC 4945 §5.1.3.2 (KeyUsage) and §5.1.3.12 (EKU) for an end entity used in IKE."""
    ku = _optional_extension(cert, x509.KeyUsage)
    if ku is not None and not (ku.digital_signature or ku.content_commitment):
        raise CertificateUsageError(
            f"certificate {describe(cert)} cannot sign: its keyUsage has neither digitalSignature "
            "nor nonRepudiation (RFC 4945 §5.1.3.2)"
        )
    eku = _optional_extension(cert, x509.ExtendedKeyUsage)
    if eku is not None and not any(oid in IKE_EKUS[purpose] for oid in eku):
        names = ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku) or "nothing"
        raise CertificateUsageError(
            f"certificate {describe(cert)} is not for IKE ({purpose}): its extendedKeyUsage "
            f"allows only {names} (RFC 4945 §5.1.3.12)"
        )


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, *_CRYPTO_ERRORS):
        return False
    return True


class TrustStore:
    """Trust anchors plus locally known intermediates; validates peers' certificate chains."""

    def __init__(
        self, anchors: Sequence[x509.Certificate], *, intermediates: Sequence[x509.Certificate] = ()
    ) -> None:
        self._anchors: tuple[x509.Certificate, ...] = tuple(anchors)
        self._intermediates: tuple[x509.Certificate, ...] = tuple(intermediates)
        self._store: Store | None = Store(list(self._anchors)) if self._anchors else None
        self._by_hash: dict[bytes, x509.Certificate] = {}
        for anchor in self._anchors:
            self._by_hash.setdefault(ca_key_hash(anchor), anchor)

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return self._anchors

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self._intermediates

    @property
    def ca_key_hashes(self) -> tuple[bytes, ...]:
        """The anchors' CERTREQ hashes (RFC 7296 §3.7), in anchor order, without duplicates."""
        return tuple(self._by_hash)

    def anchor_for_hashes(self, hashes: Iterable[bytes]) -> x509.Certificate | None:
        """The first anchor (in the peer's order) whose key hash a CERTREQ names, if any."""
        for h in hashes:
            anchor = self._by_hash.get(bytes(h))
            if anchor is not None:
                return anchor
        return None

    def verify_chain(
        self,
        end_entity: x509.Certificate,
        untrusted: Sequence[x509.Certificate],
        now: datetime,
        *,
        purpose: Purpose = "any",
    ) -> ValidatedChain:
        """Validate ``end_entity`` at ``now`` through ``untrusted`` (peer-sent) and local intermediates.

        ``purpose`` selects the accepted EKUs (:data:`IKE_EKUS`): ``"server"`` when we are the
        initiator checking a responder, ``"client"`` for a responder checking an initiator.
        A naive ``now`` is taken as UTC. Raises a :class:`~pyipsec.errors.CertificateError`
        subclass naming the cause.
        """
        if purpose not in IKE_EKUS:
            raise ValueError(f"purpose must be 'server', 'client' or 'any', not {purpose!r}")
        when = _utc(now)
        pool = [c for c in (*untrusted, *self._intermediates) if c != end_entity]
        if self._store is None:
            raise UntrustedCertificate(
                f"certificate {describe(end_entity)} cannot be trusted: no trust anchors are configured"
            )
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(when)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(end_entity, pool)
        except VerificationError as exc:
            raise self._diagnose(end_entity, pool, when, exc) from exc
        except _CRYPTO_ERRORS as exc:  # defensive: malformed input the verifier trips over
            raise MalformedCertificate(
                f"certificate {describe(end_entity)} could not be validated: {_reason(exc)}"
            ) from exc
        chain = tuple(verified.chain)
        _check_ike_usage(chain[0], purpose)
        return ValidatedChain(chain=chain, public_key=certificate_public_key(chain[0]))

    # --- failure diagnosis -------------------------------------------------------------------

    def _validity_error(self, cert: x509.Certificate, when: datetime, role: str) -> CertificateError | None:
        nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
        if when > na:
            return CertificateExpired(
                f"{role} {describe(cert)} expired on {_stamp(na)} (valid from {_stamp(nb)}; "
                f"validation time {_stamp(when)})",
                not_after=na,
            )
        if when < nb:
            return CertificateNotYetValid(
                f"{role} {describe(cert)} is not valid before {_stamp(nb)} (until {_stamp(na)}; "
                f"validation time {_stamp(when)})",
                not_before=nb,
            )
        return None

    def _diagnose(
        self,
        end_entity: x509.Certificate,
        pool: list[x509.Certificate],
        when: datetime,
        exc: VerificationError,
    ) -> CertificateError:
        candidates = [*self._anchors, *pool]
        cert = end_entity
        role = "certificate"
        for _ in range(16):  # deeper than the verifier's own limit
            problem = self._validity_error(cert, when, role)
            if problem is not None:
                return problem
            if cert in self._anchors:
                break
            named = [c for c in candidates if c.subject == cert.issuer and c != cert]
            if not named:
                issuer = cert.issuer.rfc4514_string() or "<empty>"
                return UntrustedCertificate(
                    f"{role} {describe(cert)} has an untrusted issuer: no trust anchor or known "
                    f"intermediate named '{issuer}'"
                )
            signers = [c for c in named if _signed_by(cert, c)]
            if not signers:
                return BadCertificateSignature(
                    f"the signature of {role} {describe(cert)} does not verify with the key of "
                    f"its issuer {describe(named[0])} (a forged certificate, or issued by another CA "
                    "of the same name)"
                )
            anchor = next((c for c in signers if c in self._anchors), None)
            if anchor is not None:
                problem = self._validity_error(anchor, when, "trust anchor")
                if problem is not None:
                    return problem
                break
            cert, role = signers[0], "CA certificate"
        reason = str(exc)
        if "Forbidden public key algorithm" in reason or "Forbidden signature algorithm" in reason:
            return UnsupportedCertificateAlgorithm(
                f"certificate chain of {describe(end_entity)} uses an algorithm the validator does not "
                "accept: CA keys must be RSA (>= 2048 bits) or ECDSA P-256/P-384/P-521, signatures "
                "RSA PKCS#1 v1.5/PSS or ECDSA with SHA-2"
            )
        if "RSA key is too weak" in reason:
            return UnsupportedCertificateAlgorithm(
                f"certificate chain of {describe(end_entity)} has a CA RSA key shorter than 2048 bits"
            )
        return CertificateError(f"certificate chain of {describe(end_entity)} rejected: {_reason(exc)}")
