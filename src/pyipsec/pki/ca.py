"""A small certificate authority for IKEv2 remote access: CA, gateway and client certificates.

Theory of operation
-------------------
:func:`create_ca` makes a self-signed root; :func:`issue_gateway` and :func:`issue_client`
sign end-entity certificates with it. Every certificate is signed with SHA-256, carries a
positive random serial of at most 20 octets (RFC 5280 §4.1.2.2) drawn from an injected
:class:`~pyipsec.crypto.rand.RandomSource`, and a validity window that starts an hour before
``now`` (clients with slightly slow clocks) and never outlasts the issuing CA. The clock is an
argument: nothing here reads it.

What each certificate carries, and why (RFC 5280 §4.2 for the extensions):

- **CA**: subject = issuer = ``CN=<name>``; basicConstraints cA, pathLen 0, critical; keyUsage
  keyCertSign and cRLSign, critical; subjectKeyIdentifier.
- **Gateway**: CN = the first name (macOS before 10.15 compared the CN); subjectAltName with a
  dNSName for *every* name, IP addresses included, plus an iPAddress for each address — Windows
  compares the server address against dNSName entries only, RFC 4945 §5.1.3.6 wants the
  iPAddress; extendedKeyUsage serverAuth (required by macOS/iOS and Windows) and
  iKEIntermediate 1.3.6.1.5.5.8.2.2 (macOS/iOS); keyUsage digitalSignature, critical
  (RFC 4945 §5.1.3.2); basicConstraints cA false; subject and authority key identifiers.
- **Client**: CN = the name; subjectAltName rfc822Name (e-mail) or dNSName; extendedKeyUsage
  clientAuth; keyUsage digitalSignature, critical; the same constraints and key identifiers.
- **Revocation pointers** (gateway and client, optional, like strongSwan's ``pki --issue --crl
  URI --ocsp URI``): cRLDistributionPoints with one distribution point per CRL URI (§4.2.1.13)
  and authorityInfoAccess id-ad-ocsp entries for the OCSP responders (§4.2.2.1). URIs must be
  absolute ``http``, ``https`` or ``ldap`` URIs in ASCII (an IA5String).

:func:`pkcs12_bundle` packs a client's key, certificate and CA certificate for import on a
phone. The default encryption is the legacy PKCS#12 scheme — pbeWithSHAAnd3-KeyTripleDES-CBC
for key and certificates, SHA-1 MAC (``cryptography``'s ``PBESv1SHA1And3KeyTripleDESCBC``
with ``hmac_hash(SHA1)``) — because Apple's iOS/macOS import only that (strongSwan's
interoperability notes: "Apple clients can only process PKCS#12 containers that are protected
with 3DES and the legacy KDF", i.e. what ``openssl pkcs12 -legacy`` writes) and older Android
keystores are the same. ``BestAvailableEncryption`` (PBES2: PBKDF2-HMAC-SHA256 with
AES-256-CBC) is available as ``encryption="modern"`` for Windows and current Android. A legacy
bundle is only as strong as its password: use a long random one and send it separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    NameOID,
    ObjectIdentifier,
)

from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.pki.errors import PkiError
from pyipsec.pki.keys import DEFAULT_KEY, IssuingKey, KeySpec
from pyipsec.pki.names import ClientName, GatewayName, parse_client_name, parse_gateway_name

__all__ = [
    "BACKDATE",
    "CA_DAYS",
    "EKU_IKE_INTERMEDIATE",
    "LEAF_DAYS",
    "Issued",
    "P12Encryption",
    "check_ca",
    "check_uri",
    "create_ca",
    "issue_client",
    "issue_gateway",
    "pkcs12_bundle",
]

EKU_IKE_INTERMEDIATE: Final = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
"""iKEIntermediate, which macOS/iOS want in a gateway certificate."""

CA_DAYS: Final = 3650
LEAF_DAYS: Final = 825
"""Default lifetime of gateway and client certificates: Apple refuses longer TLS server
certificates, and IKE clients apply much of the same policy."""
BACKDATE: Final = timedelta(hours=1)
"""How far before ``now`` a certificate becomes valid."""

MAX_COMMON_NAME: Final = 64
"""ub-common-name (RFC 5280 Appendix A.1)."""

P12Encryption = Literal["legacy", "modern"]

_LEGACY_P12_ROUNDS: Final = 2048
"""PKCS#12 KDF iterations for the legacy scheme (OpenSSL's default, which Apple accepts)."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: IssuingKey = field(repr=False)


def _utc(now: datetime) -> datetime:
    """``now`` as an aware UTC datetime; a naive ``now`` is taken to be UTC."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _serial(rng: RandomSource) -> int:
    # 159 random bits: positive and at most 20 octets in DER (RFC 5280 §4.1.2.2).
    return (int.from_bytes(rng.random_bytes(20), "big") >> 1) or 1


def _common_name(text: str, what: str) -> str:
    value = text.strip()
    if not value:
        raise PkiError(f"the {what} needs a non-empty common name")
    if len(value) > MAX_COMMON_NAME:
        raise PkiError(
            f"the {what} common name {value!r} has {len(value)} characters; at most {MAX_COMMON_NAME} "
            "fit in a certificate subject (RFC 5280 ub-common-name)"
        )
    return value


def _check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"a certificate must be valid for at least one day, not {days}")


def check_uri(text: str, what: str) -> str:
    """``text`` if it is an absolute http/https/ldap URI in ASCII, else :class:`PkiError`."""
    uri = text.strip()
    try:
        parts = urlsplit(uri)
        uri.encode("ascii")
    except (ValueError, UnicodeError):
        raise PkiError(f"bad {what} URI {text!r}: use an absolute http:// URI in ASCII") from None
    if (
        parts.scheme.lower() not in ("http", "https", "ldap")
        or not parts.netloc
        or any(c.isspace() for c in uri)
    ):
        raise PkiError(f"bad {what} URI {text!r}: use an absolute http://, https:// or ldap:// URI")
    return uri


def _revocation_extensions(
    builder: x509.CertificateBuilder, crl_uris: Sequence[str], ocsp_uris: Sequence[str]
) -> x509.CertificateBuilder:
    crls = [check_uri(u, "CRL") for u in crl_uris]
    responders = [check_uri(u, "OCSP") for u in ocsp_uris]
    if crls:
        points = [x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None) for u in crls]
        builder = builder.add_extension(x509.CRLDistributionPoints(points), critical=False)
    if responders:
        access = [
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u))
            for u in responders
        ]
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    return builder


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def create_ca(
    common_name: str,
    *,
    now: datetime,
    days: int = CA_DAYS,
    key: IssuingKey | None = None,
    key_spec: KeySpec = DEFAULT_KEY,
    rng: RandomSource = OS_RANDOM,
) -> Issued:
    """A self-signed CA ``CN=common_name`` valid for ``days`` from ``now``.

    ``key`` signs and is certified if given; otherwise a fresh ``key_spec`` key is generated.
    """
    cn = _common_name(common_name, "CA")
    _check_days(days)
    now = _utc(now)
    key = key if key is not None else key_spec.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(_serial(rng))
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def check_ca(ca: Issued, now: datetime) -> None:
    """Raise :class:`PkiError` unless ``ca`` is a CA certificate, its key, and valid at ``now``."""
    cert = ca.certificate
    now = _utc(now)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    subject = cert.subject.rfc4514_string()
    if constraints is None or not constraints.ca:
        raise PkiError(f"certificate {subject!r} is not a CA certificate (basicConstraints cA is not set)")
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if ca.key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise PkiError(f"the CA private key does not belong to the CA certificate {subject!r}")
    if now > cert.not_valid_after_utc:
        raise PkiError(f"the CA certificate {subject!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if now < cert.not_valid_before_utc:
        raise PkiError(
            f"the CA certificate {subject!r} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        )


def _issue(
    ca: Issued,
    common_name: str,
    alt_names: Sequence[x509.GeneralName],
    ekus: Sequence[ObjectIdentifier],
    *,
    now: datetime,
    days: int,
    key: IssuingKey | None,
    key_spec: KeySpec,
    rng: RandomSource,
    what: str,
    crl_uris: Sequence[str] = (),
    ocsp_uris: Sequence[str] = (),
) -> Issued:
    cn = _common_name(common_name, what)
    _check_days(days)
    now = _utc(now)
    check_ca(ca, now)
    key = key if key is not None else key_spec.generate()
    issuer = ca.certificate
    not_before = max(now - BACKDATE, issuer.not_valid_before_utc)
    not_after = min(now + timedelta(days=days), issuer.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(_serial(rng))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(alt_names)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    certificate = _revocation_extensions(builder, crl_uris, ocsp_uris).sign(ca.key, hashes.SHA256())
    return Issued(certificate, key)


def issue_gateway(
    ca: Issued,
    names: Sequence[str | GatewayName],
    *,
    now: datetime,
    days: int = LEAF_DAYS,
    key: IssuingKey | None = None,
    key_spec: KeySpec = DEFAULT_KEY,
    rng: RandomSource = OS_RANDOM,
    crl_uris: Sequence[str] = (),
    ocsp_uris: Sequence[str] = (),
) -> Issued:
    """A gateway certificate for ``names`` (DNS names or IP addresses; the first becomes the CN),
    pointing to ``crl_uris`` and ``ocsp_uris`` for its revocation status."""
    parsed = [n if isinstance(n, GatewayName) else parse_gateway_name(n) for n in names]
    if not parsed:
        raise PkiError("a gateway certificate needs at least one name (--name)")
    unique = list(dict.fromkeys(parsed))
    alt_names = [gn for name in unique for gn in name.general_names()]
    return _issue(
        ca,
        unique[0].text,
        list(dict.fromkeys(alt_names)),
        [ExtendedKeyUsageOID.SERVER_AUTH, EKU_IKE_INTERMEDIATE],
        now=now,
        days=days,
        key=key,
        key_spec=key_spec,
        rng=rng,
        what="gateway",
        crl_uris=crl_uris,
        ocsp_uris=ocsp_uris,
    )


def issue_client(
    ca: Issued,
    name: str | ClientName,
    *,
    now: datetime,
    days: int = LEAF_DAYS,
    key: IssuingKey | None = None,
    key_spec: KeySpec = DEFAULT_KEY,
    rng: RandomSource = OS_RANDOM,
    crl_uris: Sequence[str] = (),
    ocsp_uris: Sequence[str] = (),
) -> Issued:
    """A client certificate for ``name``, an e-mail address or a DNS name, pointing to
    ``crl_uris`` and ``ocsp_uris`` for its revocation status."""
    parsed = name if isinstance(name, ClientName) else parse_client_name(name)
    return _issue(
        ca,
        parsed.text,
        [parsed.general_name()],
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        now=now,
        days=days,
        key=key,
        key_spec=key_spec,
        rng=rng,
        what="client",
        crl_uris=crl_uris,
        ocsp_uris=ocsp_uris,
    )


def pkcs12_bundle(
    issued: Issued,
    ca_certificate: x509.Certificate,
    password: bytes,
    *,
    friendly_name: str,
    encryption: P12Encryption = "legacy",
) -> bytes:
    """A PKCS#12 file with ``issued``'s key and certificate and the CA certificate.

    ``encryption="legacy"`` (3DES, SHA-1 MAC) imports on iOS/macOS and old Android;
    ``"modern"`` (PBES2, AES-256, SHA-256) is stronger but Apple refuses it. An empty password
    is refused: phones will not import an unprotected bundle.
    """
    if not password:
        raise PkiError("a PKCS#12 bundle needs a non-empty password")
    algorithm: serialization.KeySerializationEncryption
    if encryption == "legacy":
        algorithm = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(_LEGACY_P12_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - PKCS#12 MAC that Apple requires, not a signature
            .build(password)
        )
    elif encryption == "modern":
        algorithm = serialization.BestAvailableEncryption(password)
    else:
        raise PkiError(f"unknown PKCS#12 encryption {encryption!r} (legacy or modern)")
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"), issued.key, issued.certificate, [ca_certificate], algorithm
    )
