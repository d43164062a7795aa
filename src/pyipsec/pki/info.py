"""What ``pyipsec pki show`` prints about a certificate.

Theory of operation: :func:`certificate_info` reads the fields an admin checks before handing
a certificate to a client — subject, issuer, subjectAltName, extended key usages, key usage,
CA flag, validity, key type, SHA-256 fingerprint and where its revocation status is published
(CRL distribution points, OCSP responders) — into a :class:`CertificateInfo`, which
renders as text (:func:`format_info`) or JSON (:meth:`CertificateInfo.as_json`). Unknown
extended key usages and name types are shown by OID or type rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ObjectIdentifier

from pyipsec.pki.ca import EKU_IKE_INTERMEDIATE
from pyipsec.pki.keys import describe_public_key

__all__ = ["CertificateInfo", "JsonValue", "certificate_info", "fingerprint", "format_info"]

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]

EKU_NAMES: Final[dict[ObjectIdentifier, str]] = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    ObjectIdentifier("1.3.6.1.5.5.7.3.17"): "ipsecIKE",
    EKU_IKE_INTERMEDIATE: "iKEIntermediate",
}

_KEY_USAGE_BITS: Final = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """The admin-relevant fields of one certificate. ``alt_names`` are (type, value) pairs with
    type ``dns``, ``ip``, ``email``, ``uri``, ``dn`` or ``other``."""

    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    alt_names: tuple[tuple[str, str], ...]
    extended_key_usage: tuple[str, ...] | None
    key_usage: tuple[str, ...] | None
    is_ca: bool
    public_key: str
    signature_hash: str | None
    sha256_fingerprint: str
    crl_uris: tuple[str, ...] = ()
    ocsp_uris: tuple[str, ...] = ()

    def as_json(self) -> dict[str, JsonValue]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "subject_alt_names": [{"type": kind, "value": value} for kind, value in self.alt_names],
            "extended_key_usage": list(self.extended_key_usage)
            if self.extended_key_usage is not None
            else None,
            "key_usage": list(self.key_usage) if self.key_usage is not None else None,
            "ca": self.is_ca,
            "public_key": self.public_key,
            "signature_hash": self.signature_hash,
            "sha256_fingerprint": self.sha256_fingerprint,
            "crl_uris": list(self.crl_uris),
            "ocsp_uris": list(self.ocsp_uris),
        }


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of the DER certificate, as colon-separated upper-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _alt_name(gn: x509.GeneralName) -> tuple[str, str]:
    if isinstance(gn, x509.DNSName):
        return "dns", gn.value
    if isinstance(gn, x509.IPAddress):
        return "ip", str(gn.value)
    if isinstance(gn, x509.RFC822Name):
        return "email", gn.value
    if isinstance(gn, x509.UniformResourceIdentifier):
        return "uri", gn.value
    if isinstance(gn, x509.DirectoryName):
        return "dn", gn.value.rfc4514_string()
    return "other", repr(gn.value)


def _revocation_uris(extensions: x509.Extensions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    crls: tuple[str, ...] = ()
    responders: tuple[str, ...] = ()
    try:
        points = extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        crls = tuple(
            name.value
            for point in points
            for name in point.full_name or ()
            if isinstance(name, x509.UniformResourceIdentifier)
        )
    except x509.ExtensionNotFound:
        pass
    try:
        aia = extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        responders = tuple(
            d.access_location.value
            for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)
        )
    except x509.ExtensionNotFound:
        pass
    return crls, responders


def certificate_info(cert: x509.Certificate) -> CertificateInfo:
    """The fields of ``cert`` that ``pki show`` prints."""
    extensions = cert.extensions
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        alt_names = tuple(_alt_name(gn) for gn in san)
    except x509.ExtensionNotFound:
        alt_names = ()
    try:
        eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ekus: tuple[str, ...] | None = tuple(EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)
    except x509.ExtensionNotFound:
        ekus = None
    try:
        ku = extensions.get_extension_for_class(x509.KeyUsage).value
        usages: tuple[str, ...] | None = tuple(name for attr, name in _KEY_USAGE_BITS if getattr(ku, attr))
    except x509.ExtensionNotFound:
        usages = None
    try:
        is_ca = extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    sig_hash = cert.signature_hash_algorithm
    crl_uris, ocsp_uris = _revocation_uris(extensions)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        alt_names=alt_names,
        extended_key_usage=ekus,
        key_usage=usages,
        is_ca=is_ca,
        public_key=describe_public_key(cert.public_key()),
        signature_hash=sig_hash.name.upper() if sig_hash is not None else None,
        sha256_fingerprint=fingerprint(cert),
        crl_uris=crl_uris,
        ocsp_uris=ocsp_uris,
    )


_SAN_LABELS: Final = {
    "dns": "DNS",
    "ip": "IP",
    "email": "email",
    "uri": "URI",
    "dn": "DirName",
    "other": "other",
}


def format_info(info: CertificateInfo) -> str:
    """``info`` as aligned text lines (no trailing newline)."""
    sans = ", ".join(f"{_SAN_LABELS[kind]}:{value}" for kind, value in info.alt_names) or "(none)"
    ekus = "(none: any purpose)" if info.extended_key_usage is None else ", ".join(info.extended_key_usage)
    usage = "(not restricted)" if info.key_usage is None else ", ".join(info.key_usage) or "(none)"
    rows = [
        ("subject", info.subject or "(empty)"),
        ("issuer", info.issuer or "(empty)"),
        ("serial", info.serial),
        ("valid from", _iso(info.not_before)),
        ("valid until", _iso(info.not_after)),
        ("subjectAltName", sans),
        ("extendedKeyUsage", ekus),
        ("keyUsage", usage),
        ("CA", "yes" if info.is_ca else "no"),
        ("public key", info.public_key),
        ("signature", f"{info.signature_hash or 'unknown hash'}"),
        ("SHA-256", info.sha256_fingerprint),
    ]
    if info.crl_uris:
        rows.append(("CRL", ", ".join(info.crl_uris)))
    if info.ocsp_uris:
        rows.append(("OCSP", ", ".join(info.ocsp_uris)))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in rows)
