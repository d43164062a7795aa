"""``pyipsec pki doctor``: would the built-in IKEv2 clients accept this gateway certificate?

Theory of operation
-------------------
:func:`diagnose` checks one gateway certificate — optionally against the CA that should have
issued it and the server name the clients dial — and returns a :class:`Diagnosis`: for each
client in :class:`Client` (Windows, Apple iOS/macOS, the strongSwan app for Android, strongSwan
itself) a :class:`ClientResult` with every :class:`Finding` that applies and the worst
:class:`Verdict` among them. ``rejects`` means the client is documented to refuse the
certificate; ``warning`` means it works today but is fragile (expires soon, too long for Apple's
TLS rules, no iKEIntermediate for old macOS, a weak key a client does not yet refuse). The
clock is an argument; nothing here does I/O.

Every rule carries the source it is taken from in a comment next to it; rules that could not be
tied to a published statement are not encoded. The sources, shortened in the comments:

- [WIN] strongSwan, "Windows Certificate Requirements"
  (docs.strongswan.org/docs/5.9/interop/windowsCertRequirements.html): the gateway certificate
  must carry the serverAuth EKU; the host name the user enters must be in the subject DN or a
  subjectAltName; an IP address must be a dNSName entry, not (only) an iPAddress entry, or the
  client fails with error 13801. The same page: a SAN "is essential when using the strongSwan
  Android app or working with macOS clients", and iKEIntermediate lets older macOS accept it.
- [APPLE-SS] strongSwan, "iOS and macOS" (docs.strongswan.org/docs/latest/interop/ios.html):
  since iOS 13 and macOS 10.15 a SAN is required and the CN no longer counts; the TLS Server
  Authentication flag (serverAuth) must be set.
- [APPLE] Apple, "Requirements for trusted certificates in iOS 13 and macOS 10.15"
  (support.apple.com/HT210176): RSA keys of at least 2048 bits, SHA-2 signatures (SHA-1 no
  longer trusted), the DNS name in the SAN, the serverAuth EKU, and a validity of at most 825
  days for certificates issued after 1 July 2019. Apple writes these for TLS server
  certificates; the IKEv2 client evaluates the gateway certificate with the same trust policy
  for the first four (which [APPLE-SS] confirms for SAN and EKU), whereas whether the 825-day
  limit applies to IKE is not documented — so it is a warning here, not a rejection.
- [SS-ID] strongSwan (Martin Willi on the users list, 2011-08, "Checking of certificate CN and
  subjectAltName against IDr"): the peer's identity must match the full subject DN or one of the
  subjectAltNames — a host name never matches the CN alone. An IP identity is an
  ID_IPV4_ADDR/ID_IPV6_ADDR and matches iPAddress entries (RFC 4945 §5.1.3.6 asks for the
  iPAddress form); the Android app is built on the same library ([WIN]: the SAN is essential).
- [RFC5280] validity (§4.1.2.5, §6.1.3 (a)(2)) and the signature by the issuing CA (§6.1.3
  (a)(1)): every client rejects an expired, not yet valid or wrongly signed certificate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyipsec.pki.ca import EKU_IKE_INTERMEDIATE
from pyipsec.pki.keys import describe_public_key

__all__ = [
    "APPLE_MAX_DAYS",
    "EXPIRY_WARNING",
    "Client",
    "ClientResult",
    "Diagnosis",
    "Finding",
    "Verdict",
    "diagnose",
]

EXPIRY_WARNING: Final = timedelta(days=30)
"""A certificate that expires sooner than this gets a warning for every client."""
APPLE_MAX_DAYS: Final = 825
"""[APPLE]: the longest validity of a TLS server certificate issued after 1 July 2019."""
_APPLE_RULE_START: Final = datetime(2019, 7, 1, tzinfo=UTC)
_MIN_RSA_BITS: Final = 2048
_E = TypeVar("_E", bound=x509.ExtensionType)


class Client(StrEnum):
    """The IKEv2 clients whose rules are checked."""

    WINDOWS = "windows"
    APPLE = "apple"
    ANDROID = "android"
    STRONGSWAN = "strongswan"

    @property
    def label(self) -> str:
        """The client's name for people."""
        return _TITLES[self]


_TITLES: Final = {
    Client.WINDOWS: "Windows",
    Client.APPLE: "Apple iOS/macOS",
    Client.ANDROID: "strongSwan app (Android)",
    Client.STRONGSWAN: "strongSwan",
}
ALL_CLIENTS: Final = tuple(Client)


class Verdict(StrEnum):
    """How a client takes the certificate, from best to worst."""

    OK = "ok"
    WARNING = "warning"
    REJECTS = "rejects"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS: Final = {Verdict.OK: 0, Verdict.WARNING: 1, Verdict.REJECTS: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's outcome for one client: ``rule`` is a short stable name (for tests and
    scripts), ``reason`` the sentence for the admin."""

    client: Client
    verdict: Verdict
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class ClientResult:
    """Everything found for one client; ``verdict`` is the worst of the findings."""

    client: Client
    findings: tuple[Finding, ...] = ()

    @property
    def verdict(self) -> Verdict:
        return max((f.verdict for f in self.findings), key=lambda v: v.rank, default=Verdict.OK)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The verdict of every client on one certificate checked against ``name``."""

    subject: str
    name: str | None
    results: tuple[ClientResult, ...] = field(default=())

    @property
    def rejected(self) -> bool:
        """Whether at least one client rejects the certificate."""
        return any(r.verdict == Verdict.REJECTS for r in self.results)

    def result(self, client: Client) -> ClientResult:
        return next(r for r in self.results if r.client == client)

    def as_json(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "name": self.name,
            "rejected": self.rejected,
            "clients": {
                r.client.value: {
                    "verdict": r.verdict.value,
                    "findings": [
                        {"verdict": f.verdict.value, "rule": f.rule, "reason": f.reason} for f in r.findings
                    ],
                }
                for r in self.results
            },
        }


# --- what the certificate holds ------------------------------------------------------------------


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _common_names(cert: x509.Certificate) -> list[str]:
    values = (a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return [v if isinstance(v, str) else v.decode("utf-8", "replace") for v in values]


@dataclass(frozen=True, slots=True)
class _Sans:
    dns: tuple[str, ...]
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]

    @property
    def empty(self) -> bool:
        return not self.dns and not self.ips

    def text(self) -> str:
        names = [f"DNS:{d}" for d in self.dns] + [f"IP:{ip}" for ip in self.ips]
        return ", ".join(names) or "none"


def _sans(cert: x509.Certificate) -> _Sans | None:
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return None
    ips = tuple(
        ip
        for ip in san.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    )
    return _Sans(tuple(d.lower() for d in san.get_values_for_type(x509.DNSName)), ips)


def _default_name(cert: x509.Certificate, sans: _Sans | None) -> str | None:
    """The name to check when none is given: the first SAN, else the CN."""
    if sans is not None and sans.dns:
        return sans.dns[0]
    if sans is not None and sans.ips:
        return str(sans.ips[0])
    cns = _common_names(cert)
    return cns[0] if cns else None


# --- the rules -----------------------------------------------------------------------------------


def _all(verdict: Verdict, rule: str, reason: str, clients: Iterable[Client] = ALL_CLIENTS) -> list[Finding]:
    return [Finding(c, verdict, rule, reason) for c in clients]


def _validity(cert: x509.Certificate, now: datetime) -> list[Finding]:
    # [RFC5280] §6.1.3 (a)(2): the current time must lie within the validity period
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > not_after:
        return _all(Verdict.REJECTS, "expired", f"the certificate expired on {not_after:%Y-%m-%d %H:%M} UTC")
    if now < not_before:
        return _all(
            Verdict.REJECTS,
            "not-yet-valid",
            f"the certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC",
        )
    if not_after - now < EXPIRY_WARNING:
        days = (not_after - now).days
        return _all(
            Verdict.WARNING,
            "expires-soon",
            f"the certificate expires in {days} day{'' if days == 1 else 's'} ({not_after:%Y-%m-%d})",
        )
    return []


def _issuer(cert: x509.Certificate, ca: x509.Certificate | None, now: datetime) -> list[Finding]:
    # [RFC5280] §6.1.3 (a)(1) and (a)(4): signed by the trusted CA, whose name is the issuer's
    if ca is None:
        return []
    ca_name = ca.subject.rfc4514_string()
    if cert.issuer != ca.subject:
        return _all(
            Verdict.REJECTS,
            "wrong-ca",
            f"the certificate was issued by {cert.issuer.rfc4514_string()!r}, not by the CA {ca_name!r}",
        )
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return _all(
            Verdict.REJECTS,
            "bad-signature",
            f"the certificate's signature does not verify with the CA {ca_name!r}'s key",
        )
    if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
        return _all(Verdict.REJECTS, "ca-expired", f"the CA certificate {ca_name!r} is not valid now")
    return []


def _signature_hash(cert: x509.Certificate, ca: x509.Certificate | None) -> list[Finding]:
    findings: list[Finding] = []
    for what, c in (("certificate", cert), ("CA certificate", ca)):
        if c is None or not isinstance(c.signature_hash_algorithm, hashes.SHA1 | hashes.MD5):
            continue
        algorithm = c.signature_hash_algorithm.name.upper()
        # [APPLE]: "SHA-1 signed certificates are no longer trusted"
        findings.append(
            Finding(
                Client.APPLE,
                Verdict.REJECTS,
                "sha1-signature",
                f"the {what} is signed with {algorithm}; iOS 13 and macOS 10.15 accept only SHA-2",
            )
        )
        others = (Client.WINDOWS, Client.ANDROID, Client.STRONGSWAN)
        findings += _all(
            Verdict.WARNING,
            "sha1-signature",
            f"the {what} is signed with {algorithm}, which is broken: reissue it with SHA-256",
            others,
        )
    return findings


def _key(cert: x509.Certificate, ca: x509.Certificate | None) -> list[Finding]:
    findings: list[Finding] = []
    for what, c in (("certificate", cert), ("CA certificate", ca)):
        if c is None:
            continue
        key = c.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
            # [APPLE]: RSA keys of the certificate and the issuing CA must have >= 2048 bits
            findings.append(
                Finding(
                    Client.APPLE,
                    Verdict.REJECTS,
                    "rsa-too-small",
                    f"the {what} has an RSA {key.key_size} key; Apple needs at least 2048 bits",
                )
            )
            others = (Client.WINDOWS, Client.ANDROID, Client.STRONGSWAN)
            findings += _all(
                Verdict.WARNING,
                "rsa-too-small",
                f"the {what} has an RSA {key.key_size} key: use RSA 3072 or ECDSA P-256",
                others,
            )
        elif not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            findings += _all(
                Verdict.WARNING,
                "unusual-key",
                f"the {what} has a {describe_public_key(key)} key; every client supports RSA and ECDSA",
            )
    return findings


def _eku(cert: x509.Certificate) -> list[Finding]:
    usage = _extension(cert, x509.ExtendedKeyUsage)
    ekus = list(usage) if usage is not None else []
    findings: list[Finding] = []
    if ExtendedKeyUsageOID.SERVER_AUTH not in ekus:
        missing = "has no extendedKeyUsage" if usage is None else "has no serverAuth extendedKeyUsage"
        # [WIN]: "A VPN gateway certificate must have ... the serverAuth EKU"
        findings.append(
            Finding(
                Client.WINDOWS,
                Verdict.REJECTS,
                "no-server-auth",
                f"the certificate {missing}; Windows requires serverAuth",
            )
        )
        # [APPLE-SS], [APPLE]: "the TLS Server Authentication flag has to be set"
        findings.append(
            Finding(
                Client.APPLE,
                Verdict.REJECTS,
                "no-server-auth",
                f"the certificate {missing}; iOS and macOS require serverAuth",
            )
        )
    if EKU_IKE_INTERMEDIATE not in ekus:
        # [WIN]: iKEIntermediate "will allow you to use the certificate with older macOS releases"
        findings.append(
            Finding(
                Client.APPLE,
                Verdict.WARNING,
                "no-ike-intermediate",
                "no iKEIntermediate extendedKeyUsage: macOS before 10.15 may refuse it",
            )
        )
    return findings


def _apple_lifetime(cert: x509.Certificate) -> list[Finding]:
    # [APPLE]: at most 825 days for certificates whose notBefore is after 1 July 2019 — a TLS rule
    # whose application to IKE is not documented, hence a warning
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    if cert.not_valid_before_utc >= _APPLE_RULE_START and days > APPLE_MAX_DAYS:
        return [
            Finding(
                Client.APPLE,
                Verdict.WARNING,
                "validity-over-825-days",
                f"valid for {days} days; Apple limits TLS server certificates to {APPLE_MAX_DAYS} days",
            )
        ]
    return []


def _name_rules(cert: x509.Certificate, sans: _Sans | None, name: str | None) -> list[Finding]:
    findings: list[Finding] = []
    if sans is None or sans.empty:
        # [APPLE-SS]/[APPLE]: a SAN is required; [WIN]: essential for the Android app; [SS-ID]
        reason = "the certificate has no subjectAltName (DNS or IP)"
        findings.append(
            Finding(
                Client.APPLE, Verdict.REJECTS, "no-san", f"{reason}; iOS 13 and macOS 10.15 ignore the CN"
            )
        )
        findings.append(
            Finding(
                Client.ANDROID,
                Verdict.REJECTS,
                "no-san",
                f"{reason}; the app matches the server name only there",
            )
        )
        findings.append(
            Finding(
                Client.STRONGSWAN,
                Verdict.REJECTS,
                "no-san",
                f"{reason}; a host name never matches the subject DN",
            )
        )
    if name is None:
        return findings
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    dns = sans.dns if sans is not None else ()
    ips = sans.ips if sans is not None else ()
    have = sans.text() if sans is not None else "none"
    in_dns = name.lower() in dns
    cns = [cn.lower() for cn in _common_names(cert)]
    # [WIN]: the name the user enters must be in the subject DN or a SAN; an IP address must be a
    # dNSName entry (an iPAddress entry alone gives error 13801)
    if not in_dns and name.lower() not in cns:
        why = f"{name} is not a dNSName in the subjectAltName ({have}) nor the CN"
        if address is not None and address in ips:
            why = (
                f"{name} is only an iPAddress entry; Windows matches addresses against dNSName "
                "entries (error 13801)"
            )
        findings.append(Finding(Client.WINDOWS, Verdict.REJECTS, "name-mismatch", why))
    if address is not None:
        matched = address in ips
        form = "an iPAddress entry"
    else:
        matched = in_dns
        form = "a dNSName entry"
    if sans is not None and not sans.empty and not matched:
        why = f"{name} is not {form} of the subjectAltName ({have})"
        # [APPLE-SS]: the server's identity must be in a SAN; [APPLE]: the DNS name in the SAN
        if not (address is not None and in_dns):
            findings.append(Finding(Client.APPLE, Verdict.REJECTS, "name-mismatch", why))
        # [SS-ID]: the identity must match one of the subjectAltNames (or the full DN)
        findings.append(Finding(Client.ANDROID, Verdict.REJECTS, "name-mismatch", why))
        findings.append(Finding(Client.STRONGSWAN, Verdict.REJECTS, "name-mismatch", why))
    return findings


def diagnose(
    cert: x509.Certificate,
    *,
    now: datetime,
    ca: x509.Certificate | None = None,
    name: str | None = None,
    clients: Sequence[Client] = ALL_CLIENTS,
) -> Diagnosis:
    """Check ``cert`` as a gateway certificate for ``clients`` dialling ``name`` (default: the
    certificate's first subjectAltName, else its CN), issued by ``ca`` if given, at ``now``."""
    now = _utc(now)
    sans = _sans(cert)
    checked = name.strip() if name is not None else _default_name(cert, sans)
    if checked is not None:
        try:
            checked = str(ipaddress.ip_address(checked))
        except ValueError:
            checked = checked.lower()
    findings = [
        *_validity(cert, now),
        *_issuer(cert, ca, now),
        *_signature_hash(cert, ca),
        *_key(cert, ca),
        *_eku(cert),
        *_apple_lifetime(cert),
        *_name_rules(cert, sans, checked),
    ]
    results = tuple(ClientResult(c, tuple(f for f in findings if f.client == c)) for c in clients)
    return Diagnosis(cert.subject.rfc4514_string(), checked, results)
