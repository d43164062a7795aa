"""The revocation checker: "is this chain revoked under policy P?" for the daemon.

Theory of operation
-------------------
The IKE engine verifies a peer's certificate chain (signatures, validity, trust) and then,
before accepting IKE_AUTH, lets the daemon ``await checker.check(chain, anchor, policy)``.
``chain`` is the validated path in DER, end entity first, up to but excluding the trust anchor
``anchor``; every certificate is checked against its issuer (the next one in the chain, the
anchor for the last). The anchor itself is never checked.

For each certificate, in this order, the first definite answer (GOOD or REVOKED) wins:

1. **OCSP** (:mod:`~pyipsec.revocation.ocsp`): the responders configured in the checker,
   then those named in the certificate's authorityInfoAccess (charon's order: a CA's
   configured ``ocsp_uris`` before the certificate's own). Verified answers are
   cached per (issuer key, serial) until their nextUpdate, or ``ocsp_lifetime`` without one;
   an ``unknown`` answer, a failure or an unusable response moves on.
2. **CRLs** (:mod:`~pyipsec.revocation.crl`): the configured CRL files of the issuer, then the
   certificate's CRL distribution points (http/https; other schemes fail with a note). At
   most :data:`MAX_URIS` URIs of each kind are tried per certificate.

If nothing answers, the status is UNKNOWN with every source's failure in ``detail``; the
policy (:func:`~pyipsec.revocation.verdict.decide`) makes the decision. The certificates of a
chain are checked concurrently. Nothing raises out of :meth:`RevocationChecker.check`: bad
input, dead servers and even unexpected errors become UNKNOWN with the reason.

Randomness (the OCSP nonce) comes from the injected ``rng`` (default ``os.urandom``), time
from ``now`` (default the system clock in UTC): tests drive both.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID

from pyipsec.revocation.crl import CrlError, CrlStore, crl_entry, usable_crl
from pyipsec.revocation.fetch import Fetcher, FetchError, HttpFetcher
from pyipsec.revocation.ocsp import (
    NONCE_SIZE,
    OCSP_REQUEST_TYPE,
    OcspAnswer,
    OcspError,
    build_request,
    evaluate_response,
)
from pyipsec.revocation.verdict import (
    CertCheck,
    CertStatus,
    RevocationPolicy,
    RevocationVerdict,
    decide,
)

__all__ = ["DEFAULT_CRL_LIFETIME", "DEFAULT_OCSP_LIFETIME", "DEFAULT_SKEW", "MAX_URIS", "RevocationChecker"]

_log = logging.getLogger("pyipsec.revocation")

DEFAULT_SKEW: Final = timedelta(minutes=5)
"""Clock difference tolerated on thisUpdate/nextUpdate."""
DEFAULT_OCSP_LIFETIME: Final = timedelta(minutes=5)
"""How long an OCSP answer without nextUpdate is cached."""
DEFAULT_CRL_LIFETIME: Final = timedelta(hours=1)
"""How long a fetched CRL without nextUpdate is cached."""
MAX_URIS: Final = 4
"""At most this many OCSP and this many CRL URIs are tried per certificate."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Cached:
    answer: OcspAnswer
    source: str
    expires: datetime


@dataclass(slots=True)
class _Trail:
    """What the sources said about one certificate so far."""

    expected: bool = False
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _uris(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(OCSP responder URIs, CRL distribution point URIs) named in ``cert``."""
    ocsp_uris: list[str] = []
    crl_uris: list[str] = []
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp_uris = [
            d.access_location.value
            for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)
        ]
    except x509.ExtensionNotFound:
        pass
    try:
        cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        crl_uris = [
            name.value
            for point in cdp
            for name in point.full_name or ()
            if isinstance(name, x509.UniformResourceIdentifier)
        ]
    except x509.ExtensionNotFound:
        pass
    return ocsp_uris[:MAX_URIS], crl_uris[:MAX_URIS]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "unparsable subject"


class RevocationChecker:
    """Answers revocation questions over OCSP and CRLs, with caches; one per daemon."""

    def __init__(
        self,
        *,
        crl_files: Sequence[Path] = (),
        ocsp_responders: Sequence[str] = (),
        fetcher: Fetcher | None = None,
        now: Callable[[], datetime] = _utc_now,
        rng: Callable[[int], bytes] = os.urandom,
        skew: timedelta = DEFAULT_SKEW,
        ocsp_lifetime: timedelta = DEFAULT_OCSP_LIFETIME,
        crl_lifetime: timedelta = DEFAULT_CRL_LIFETIME,
    ) -> None:
        self._fetch: Fetcher = fetcher if fetcher is not None else HttpFetcher()
        self._now = now
        self._rng = rng
        self._skew = skew
        self._ocsp_lifetime = ocsp_lifetime
        self._responders = tuple(ocsp_responders)
        self._crls = CrlStore(crl_files, self._fetch, now=now, default_lifetime=crl_lifetime)
        self._ocsp_cache: dict[tuple[bytes, int], _Cached] = {}

    def clear_cache(self) -> None:
        """Forget every cached OCSP answer and CRL (e.g. on a configuration reload)."""
        self._ocsp_cache.clear()
        self._crls.clear()

    async def check(
        self, chain: Sequence[bytes], anchor: bytes, policy: RevocationPolicy
    ) -> RevocationVerdict:
        """The verdict on ``chain`` (DER, end entity first, without the anchor) under ``policy``."""
        policy = RevocationPolicy(policy)
        try:
            certs = [x509.load_der_x509_certificate(der) for der in chain]
            issuers = [*certs[1:], x509.load_der_x509_certificate(anchor)]
        except ValueError as exc:
            return self._unparsable(policy, str(exc))
        if not certs:
            return self._unparsable(policy, "empty chain")
        checks = await asyncio.gather(*(self._guarded(c, i) for c, i in zip(certs, issuers, strict=True)))
        return decide(policy, checks)

    def _unparsable(self, policy: RevocationPolicy, why: str) -> RevocationVerdict:
        first = why.strip().splitlines()[0] if why.strip() else "unparsable"
        check = CertCheck(
            0, "", CertStatus.UNKNOWN, expected=True, detail=f"unparsable certificate ({first})"
        )
        return decide(policy, [check])

    async def _guarded(self, cert: x509.Certificate, issuer: x509.Certificate) -> CertCheck:
        try:
            return await self._check_one(cert, issuer)
        except Exception as exc:
            _log.exception("revocation check of %s failed unexpectedly", _subject(cert))
            return CertCheck(
                cert.serial_number,
                _subject(cert),
                CertStatus.UNKNOWN,
                expected=True,
                detail=f"internal error: {type(exc).__name__}",
            )

    async def _check_one(self, cert: x509.Certificate, issuer: x509.Certificate) -> CertCheck:
        trail = _Trail()
        ocsp_uris, crl_uris = _uris(cert)
        responders = list(dict.fromkeys([*self._responders, *ocsp_uris]))
        trail.expected = bool(responders or crl_uris)
        for uri in responders:
            result = await self._ocsp(cert, issuer, uri, trail)
            if result is not None:
                return result
        local = self._crls.local(issuer)
        trail.warnings.extend(f"{source}: {error}" for source, crl, error in local if crl is None)
        for source, crl, _ in local:
            result = self._from_crl(cert, issuer, source, crl, trail) if crl is not None else None
            if result is not None:
                return result
        for uri in crl_uris:
            result = await self._remote_crl(cert, issuer, uri, trail)
            if result is not None:
                return result
        detail = "; ".join(trail.failures) if trail.failures else "no OCSP responder and no CRL"
        return CertCheck(
            cert.serial_number,
            _subject(cert),
            CertStatus.UNKNOWN,
            expected=trail.expected,
            detail=detail,
            warnings=tuple(trail.warnings),
        )

    def _result(
        self,
        cert: x509.Certificate,
        status: CertStatus,
        source: str,
        trail: _Trail,
        *,
        revoked_at: datetime | None = None,
        reason: str | None = None,
    ) -> CertCheck:
        return CertCheck(
            cert.serial_number,
            _subject(cert),
            status,
            source=source,
            expected=True,
            revoked_at=revoked_at,
            revocation_reason=reason,
            warnings=tuple(trail.warnings),
        )

    async def _ocsp(
        self, cert: x509.Certificate, issuer: x509.Certificate, uri: str, trail: _Trail
    ) -> CertCheck | None:
        source = f"OCSP {uri}"
        key = (issuer.fingerprint(hashes.SHA256()), cert.serial_number)
        now = self._now()
        cached = self._ocsp_cache.get(key)
        if cached is not None and now < cached.expires:
            return self._answer(cert, cached.answer, cached.source, trail)
        nonce = self._rng(NONCE_SIZE)
        try:
            request = build_request(cert, issuer, nonce)
            body = await self._fetch(uri, request, OCSP_REQUEST_TYPE)
            answer = evaluate_response(body, cert, issuer, nonce=nonce, now=self._now(), skew=self._skew)
        except (FetchError, OcspError) as exc:
            trail.failures.append(f"{source}: {exc}")
            return None
        except ValueError as exc:  # e.g. an issuer key the request builder cannot hash
            trail.failures.append(f"{source}: {exc}")
            return None
        trail.warnings.extend(f"{source}: {w}" for w in answer.warnings)
        if answer.status is CertStatus.UNKNOWN:
            trail.failures.append(f"{source}: the responder does not know the certificate")
            return None
        expires = answer.next_update or now + self._ocsp_lifetime
        self._ocsp_cache[key] = _Cached(answer, source, expires)
        return self._answer(cert, answer, source, trail)

    def _answer(self, cert: x509.Certificate, answer: OcspAnswer, source: str, trail: _Trail) -> CertCheck:
        return self._result(
            cert, answer.status, source, trail, revoked_at=answer.revoked_at, reason=answer.reason
        )

    def _from_crl(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        source: str,
        crl: x509.CertificateRevocationList,
        trail: _Trail,
    ) -> CertCheck | None:
        trail.expected = True
        try:
            usable_crl(crl, issuer, now=self._now(), skew=self._skew, is_ca=_is_ca(cert))
            entry = crl_entry(crl, cert.serial_number)
        except CrlError as exc:
            trail.failures.append(f"{source}: {exc}")
            if exc.stale:
                trail.warnings.append(f"{source}: {exc}")
            return None
        if entry is None:
            return self._result(cert, CertStatus.GOOD, source, trail)
        return self._result(
            cert, CertStatus.REVOKED, source, trail, revoked_at=entry.revoked_at, reason=entry.reason
        )

    async def _remote_crl(
        self, cert: x509.Certificate, issuer: x509.Certificate, uri: str, trail: _Trail
    ) -> CertCheck | None:
        source = f"CRL {uri}"
        try:
            crl = await self._crls.remote(uri)
        except (FetchError, CrlError) as exc:
            trail.failures.append(f"{source}: {exc}")
            return None
        result = self._from_crl(cert, issuer, source, crl, trail)
        if result is None:
            self._crls.forget(uri)
        return result
