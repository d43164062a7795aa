"""Revocation policies, per-certificate outcomes and the verdict on a whole chain.

Theory of operation
-------------------
The checker finds, for every certificate of a chain, one :class:`CertCheck`: GOOD, REVOKED or
UNKNOWN, where the status came from, and whether revocation information was *expected* for it
(``expected``: the certificate names an OCSP responder or CRL distribution point, a responder
is configured, or a configured CRL of its issuer exists). :func:`decide` then applies a
:class:`RevocationPolicy`, the values of swanctl's ``remote.revocation``:

========  ==========================================================================
strict    every certificate must be GOOD: revoked, unknown or unreachable all fail
ifuri     fail if a certificate is REVOKED, or if revocation information was expected
          for it but no status could be obtained (unreachable responder, unusable or
          expired CRL); a certificate without any URI or configured source passes
relaxed   fail only if a certificate is REVOKED (the default, as in swanctl)
========  ==========================================================================

This follows strongSwan's constraint check (``auth_cfg.c``: strict requires
VALIDATION_GOOD, ifuri accepts VALIDATION_GOOD or VALIDATION_SKIPPED — no URI, no CRL — and
relaxed only rejects a revocation) and its revocation validator (OCSP first, an OCSP
``unknown`` or failure falls back to CRLs; a URI found but no answer is VALIDATION_FAILED; an
expired CRL is VALIDATION_STALE, which ifuri rejects too; responders configured for the CA
count as URIs). Consequently, under ``ifuri`` a certificate that names an OCSP responder which
is down is *rejected*; only a certificate that names no URI (and has no configured source) is
accepted with a warning. Where we differ from charon:

- charon records the status that the policy judges only for the end-entity certificate and
  rejects an intermediate CA only if it is revoked; pyipsec applies the policy to *every*
  certificate of the chain (the trust anchor itself is never checked, as in charon).
- charon has a separate on-hold status (rejected like a revocation); here a certificate on
  hold is REVOKED with reason ``certificateHold``.
- Delta CRLs, indirect CRLs and LDAP distribution points are not used (see ``crl``, ``fetch``).

The :class:`RevocationVerdict` names the decisive certificate: the first revoked one, else the
first one the policy rejected, else the end entity. ``reason`` is one line for the log;
``warnings`` collect what an admin should know even when the chain is accepted (a missing OCSP
nonce, an expired CRL, an unreachable responder under ``relaxed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = [
    "CertCheck",
    "CertStatus",
    "RevocationPolicy",
    "RevocationVerdict",
    "decide",
    "describe_certificate",
]


class RevocationPolicy(StrEnum):
    """swanctl's ``remote.revocation``."""

    STRICT = "strict"
    IFURI = "ifuri"
    RELAXED = "relaxed"


class CertStatus(StrEnum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


def describe_certificate(serial: int, subject: str) -> str:
    """``certificate serial 0x1f… (CN=alice)``."""
    return f"certificate serial {serial:#x} ({subject or 'empty subject'})"


@dataclass(frozen=True, slots=True)
class CertCheck:
    """What the checker found out about one certificate."""

    serial: int
    subject: str
    status: CertStatus
    source: str = ""
    """Where ``status`` came from: ``OCSP http://…``, ``CRL /etc/…/ca.crl``, ``CRL http://…``;
    empty when no source answered."""
    expected: bool = False
    """Revocation information was expected (a URI in the certificate or a configured source)."""
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    detail: str = ""
    """Why the status is unknown (every source tried, ``;``-separated)."""
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return describe_certificate(self.serial, self.subject)

    def explain(self) -> str:
        """One line: the status, with its source and, if revoked, time and reason."""
        if self.status is CertStatus.REVOKED:
            when = f" at {self.revoked_at:%Y-%m-%d %H:%M:%S} UTC" if self.revoked_at is not None else ""
            why = f" ({self.revocation_reason})" if self.revocation_reason else ""
            return f"{self.name} revoked{when}{why} per {self.source}"
        if self.status is CertStatus.GOOD:
            return f"{self.name} is good per {self.source}"
        detail = self.detail or "no revocation information"
        return f"{self.name} revocation status unknown: {detail}"


@dataclass(frozen=True, slots=True)
class RevocationVerdict:
    """The answer to "is this chain revoked under policy P?"."""

    ok: bool
    status: CertStatus
    serial: int
    subject: str
    source: str
    reason: str
    warnings: tuple[str, ...] = ()
    checks: tuple[CertCheck, ...] = ()
    """Every certificate's outcome, end entity first."""


def _rejects(policy: RevocationPolicy, check: CertCheck) -> bool:
    if check.status is CertStatus.REVOKED:
        return True
    if check.status is CertStatus.GOOD:
        return False
    if policy is RevocationPolicy.STRICT:
        return True
    return policy is RevocationPolicy.IFURI and check.expected


def decide(policy: RevocationPolicy, checks: Sequence[CertCheck]) -> RevocationVerdict:
    """Apply ``policy`` to the outcomes of a chain (end entity first; at least one)."""
    if not checks:
        raise ValueError("decide() needs the outcome of at least one certificate")
    warnings = [w for check in checks for w in check.warnings]
    revoked = [c for c in checks if c.status is CertStatus.REVOKED]
    rejected = [c for c in checks if _rejects(policy, c)]
    if revoked:
        decisive, status = revoked[0], CertStatus.REVOKED
    elif rejected:
        decisive, status = rejected[0], CertStatus.UNKNOWN
    else:
        unknown = [c for c in checks if c.status is CertStatus.UNKNOWN]
        decisive = checks[0]
        status = CertStatus.UNKNOWN if unknown else CertStatus.GOOD
        warnings += [f"{c.explain()} (accepted under revocation policy {policy})" for c in unknown]
    if rejected:
        reason = decisive.explain()
        if decisive.status is CertStatus.UNKNOWN:
            reason += f" (rejected under revocation policy {policy})"
    elif status is CertStatus.GOOD:
        reason = decisive.explain() if len(checks) == 1 else f"{decisive.explain()}, and its issuers are good"
    else:
        reason = f"{decisive.name} accepted under revocation policy {policy}: status of the chain not known"
    return RevocationVerdict(
        ok=not rejected,
        status=status,
        serial=decisive.serial,
        subject=decisive.subject,
        source=decisive.source,
        reason=reason,
        warnings=tuple(dict.fromkeys(warnings)),
        checks=tuple(checks),
    )
