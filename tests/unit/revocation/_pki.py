"""A throw-away PKI for the revocation tests: CA, leaf certificates, CRLs and OCSP responses.

ECDSA P-256 keys keep it fast. Everything is built with ``cryptography``'s builders at a fixed
clock ``T0`` so tests can move a fake clock around it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from pyipsec.revocation.fetch import FetchError

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OCSP_URI = "http://ocsp.example/"
CRL_URI = "http://crl.example/ca.crl"

_serials = iter(range(0x1F00, 0x10000))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Entity:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def make_ca(cn: str = "Test CA", *, crl_sign: bool = True) -> Entity:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(next(_serials))
        .not_valid_before(T0 - timedelta(days=30))
        .not_valid_after(T0 + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, crl_sign, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return Entity(cert, key)


def make_leaf(
    ca: Entity,
    cn: str = "alice",
    *,
    ocsp_uris: Sequence[str] = (),
    crl_uris: Sequence[str] = (),
    ekus: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
    ca_cert: bool = False,
) -> Entity:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(next(_serials))
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca_cert, path_length=None), critical=True)
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if ocsp_uris:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u)
                    )
                    for u in ocsp_uris
                ]
            ),
            critical=False,
        )
    if crl_uris:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None)
                    for u in crl_uris
                ]
            ),
            critical=False,
        )
    return Entity(builder.sign(ca.key, hashes.SHA256()), key)


def make_crl(
    ca: Entity,
    revoked: Sequence[tuple[int, x509.ReasonFlags | None]] = (),
    *,
    this_update: datetime = T0 - timedelta(hours=1),
    next_update: datetime | None = T0 + timedelta(days=7),
    signer: Entity | None = None,
    issuer_name: x509.Name | None = None,
    pem: bool = False,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_name or ca.cert.subject)
        .last_update(this_update)
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    if next_update is not None:
        builder = builder.next_update(next_update)
    for serial, reason in revoked:
        entry = (
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(T0 - timedelta(hours=2))
        )
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign((signer or ca).key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


def nonce_of(request: bytes) -> bytes | None:
    req = ocsp.load_der_ocsp_request(request)
    try:
        return req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def make_response(
    subject: Entity,
    issuer: Entity,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    *,
    nonce: bytes | None = None,
    signer: Entity | None = None,
    include_signer: bool = False,
    this_update: datetime = T0 - timedelta(minutes=1),
    next_update: datetime | None = T0 + timedelta(hours=1),
    reason: x509.ReasonFlags | None = None,
    cert_for_id: x509.Certificate | None = None,
) -> bytes:
    """A signed OCSP response (by ``signer``, default the issuer) about ``subject``."""
    signing = signer or issuer
    revoked_at = T0 - timedelta(hours=2) if status is ocsp.OCSPCertStatus.REVOKED else None
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert_for_id or subject.cert,
        issuer=issuer.cert,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revoked_at,
        revocation_reason=reason if status is ocsp.OCSPCertStatus.REVOKED else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signing.cert)
    if include_signer:
        builder = builder.certificates([signing.cert])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(signing.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


Handler = Callable[[bytes | None], bytes]


class FakeFetcher:
    """A :data:`~pyipsec.revocation.fetch.Fetcher` answering from a table of handlers."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.calls: list[str] = []

    def serve(self, url: str, handler: Handler | bytes) -> None:
        self.routes[url] = handler if callable(handler) else (lambda _body, data=handler: data)

    def ocsp(self, url: str, build: Callable[[bytes | None], bytes]) -> None:
        """Serve OCSP at ``url``: ``build(nonce of the request)`` makes the response."""
        self.routes[url] = lambda body: build(nonce_of(body) if body else None)

    def down(self, url: str) -> None:
        self.routes.pop(url, None)

    def __call__(self, url: str, body: bytes | None, content_type: str) -> Awaitable[bytes]:
        self.calls.append(url)
        return self._answer(url, body)

    async def _answer(self, url: str, body: bytes | None) -> bytes:
        handler = self.routes.get(url)
        if handler is None:
            raise FetchError(f"{url}: connection refused")
        return handler(body)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
