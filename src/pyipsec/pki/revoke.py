"""Revoking certificates of the built-in CA and issuing its CRL (RFC 5280 §5).

Theory of operation
-------------------
Revocations are recorded in :data:`INDEX_FILE` (``revoked.json``) beside the CA key: a JSON
object ``{"version": 1, "crl_number": N, "revoked": [{"serial": "1f…", "revoked_at":
"2026-12-07T18:00:00Z", "reason": "keyCompromise", "subject": "CN=alice"}, …]}`` (serials in
hexadecimal, reason omitted when none was given). :func:`revoke` adds an entry (refusing a
serial that is already revoked); :func:`issue_crl` signs a version-2 CRL listing every entry
with its revocation date and CRLReason (§5.3.1; none for an unspecified reason, as §5.3.1
recommends), the CRL number (§5.2.3) one higher than the last one issued, the
authorityKeyIdentifier (§5.2.1) and a nextUpdate ``days`` ahead (§5.1.2.5). The index is
written atomically (a temporary file in the same directory, fsync, rename), so a crash never
leaves half an index; :func:`index_lock` serialises concurrent ``pki revoke``/``pki crl`` runs
on one CA directory with ``flock``. The CRL file is replaced the same way, so a daemon
re-reading it (by mtime) never sees a partial file.

The clock is an argument; nothing here reads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization

from pyipsec.pki.ca import Issued, check_ca
from pyipsec.pki.errors import PkiError
from pyipsec.pki.info import JsonValue

__all__ = [
    "CRL_DAYS",
    "CRL_FILE",
    "INDEX_FILE",
    "REASONS",
    "RevocationIndex",
    "RevokedEntry",
    "check_issued_by",
    "crl_bytes",
    "entries_json",
    "index_lock",
    "issue_crl",
    "load_index",
    "parse_reason",
    "parse_serial",
    "revoke",
    "save_index",
    "write_atomic",
]

INDEX_FILE: Final = "revoked.json"
CRL_FILE: Final = "ca.crl"
CRL_DAYS: Final = 15
"""Default CRL lifetime (strongSwan's ``pki --signcrl`` uses 15 days too)."""

REASONS: Final = tuple(
    r.value
    for r in x509.ReasonFlags
    if r not in (x509.ReasonFlags.unspecified, x509.ReasonFlags.remove_from_crl)
)
"""CRLReason names accepted by ``pki revoke --reason`` (removeFromCRL belongs to delta CRLs)."""

_INDEX_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None
    subject: str = ""

    def as_json(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {"serial": f"{self.serial:x}", "revoked_at": _stamp(self.revoked_at)}
        if self.reason is not None:
            out["reason"] = self.reason.value
        if self.subject:
            out["subject"] = self.subject
        return out


@dataclass(frozen=True, slots=True)
class RevocationIndex:
    """The CA's revocations and the number of the last CRL issued (0: none yet)."""

    crl_number: int = 0
    entries: tuple[RevokedEntry, ...] = ()

    def find(self, serial: int) -> RevokedEntry | None:
        return next((e for e in self.entries if e.serial == serial), None)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def parse_serial(text: str) -> int:
    """A serial in hexadecimal: ``1f2a``, ``0x1F2A`` or ``1F:2A`` (as openssl prints it)."""
    cleaned = text.strip().replace(":", "").lower().removeprefix("0x")
    try:
        serial = int(cleaned, 16)
    except ValueError:
        raise PkiError(f"bad serial {text!r}: give it in hexadecimal, e.g. 1f2a or 1F:2A") from None
    if serial <= 0:
        raise PkiError(f"bad serial {text!r}: serials are positive (RFC 5280 §4.1.2.2)")
    return serial


def parse_reason(text: str | None) -> x509.ReasonFlags | None:
    """A CRLReason from its RFC 5280 name (``keyCompromise``, case-insensitive); None for none."""
    if text is None or text.lower() == "unspecified":
        return None
    for reason in x509.ReasonFlags:
        if reason.value.lower() == text.lower() and reason.value in REASONS:
            return reason
    raise PkiError(f"unknown revocation reason {text!r} (one of {', '.join(REASONS)})")


def _entry_from_json(item: object, path: Path) -> RevokedEntry:
    if not isinstance(item, dict):
        raise PkiError(f"{path}: every revoked entry must be an object")
    try:
        serial = parse_serial(str(item["serial"]))
        revoked_at = _utc(datetime.strptime(str(item["revoked_at"]), "%Y-%m-%dT%H:%M:%SZ"))
        reason = parse_reason(item.get("reason"))
        subject = str(item.get("subject", ""))
    except (KeyError, ValueError, PkiError) as exc:
        raise PkiError(f"{path}: bad revoked entry {item!r} ({exc})") from None
    return RevokedEntry(serial, revoked_at, reason, subject)


def load_index(ca_dir: Path) -> RevocationIndex:
    """The revocation index of ``ca_dir`` (empty if none was written yet)."""
    path = ca_dir / INDEX_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RevocationIndex()
    except (OSError, UnicodeDecodeError) as exc:
        raise PkiError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PkiError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != _INDEX_VERSION:
        raise PkiError(f"{path} is not a pyipsec revocation index (version {_INDEX_VERSION})")
    number, revoked = data.get("crl_number", 0), data.get("revoked", [])
    if not isinstance(number, int) or number < 0 or not isinstance(revoked, list):
        raise PkiError(f"{path}: bad crl_number or revoked list")
    return RevocationIndex(number, tuple(_entry_from_json(item, path) for item in revoked))


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` by a file holding ``data`` in one rename (temporary file, fsync, rename)."""
    directory = path.parent if str(path.parent) else Path()
    if path.is_dir():
        raise PkiError(f"{path} is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise PkiError(f"cannot write into {directory}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PkiError(f"cannot write {path}: {exc.strerror}") from None


def save_index(ca_dir: Path, index: RevocationIndex) -> Path:
    """Write ``index`` into ``ca_dir`` atomically; returns its path."""
    path = ca_dir / INDEX_FILE
    data = {
        "version": _INDEX_VERSION,
        "crl_number": index.crl_number,
        "revoked": [entry.as_json() for entry in index.entries],
    }
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
    return path


@contextlib.contextmanager
def index_lock(ca_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``ca_dir``'s revocation index while the block runs."""
    try:
        fd = os.open(ca_dir / f".{INDEX_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise PkiError(f"cannot lock the revocation index in {ca_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_issued_by(ca: Issued, cert: x509.Certificate) -> None:
    """Raise :class:`PkiError` unless ``cert`` was signed by ``ca``."""
    subject = cert.subject.rfc4514_string()
    if cert.issuer != ca.certificate.subject:
        raise PkiError(
            f"{subject} was issued by {cert.issuer.rfc4514_string()}, not by this CA "
            f"({ca.certificate.subject.rfc4514_string()})"
        )
    try:
        cert.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise PkiError(f"{subject} is not signed by this CA's key") from None


def revoke(
    index: RevocationIndex,
    serial: int,
    *,
    now: datetime,
    reason: x509.ReasonFlags | None = None,
    subject: str = "",
) -> tuple[RevocationIndex, RevokedEntry]:
    """``index`` with ``serial`` revoked at ``now``; :class:`PkiError` if it already is."""
    existing = index.find(serial)
    if existing is not None:
        raise PkiError(f"serial {serial:x} was already revoked on {_stamp(existing.revoked_at)}")
    entry = RevokedEntry(serial, _utc(now).replace(microsecond=0), reason, subject)
    return replace(index, entries=(*index.entries, entry)), entry


def issue_crl(
    ca: Issued, index: RevocationIndex, *, now: datetime, days: int = CRL_DAYS
) -> tuple[x509.CertificateRevocationList, RevocationIndex]:
    """A CRL of ``ca`` listing ``index``, and the index with the CRL number it used."""
    if days < 1:
        raise PkiError(f"a CRL must be valid for at least one day, not {days}")
    now = _utc(now).replace(microsecond=0)
    check_ca(ca, now)
    number = index.crl_number + 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now)
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    for entry in index.entries:
        revoked = (
            x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.revoked_at)
        )
        if entry.reason is not None:
            revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    crl = builder.sign(ca.key, hashes.SHA256())
    return crl, replace(index, crl_number=number)


def crl_bytes(crl: x509.CertificateRevocationList, path: Path) -> tuple[bytes, str]:
    """The CRL encoded for ``path``: PEM for ``.pem``, DER otherwise; and the format's name."""
    if path.suffix.lower() == ".pem":
        return crl.public_bytes(serialization.Encoding.PEM), "pem"
    return crl.public_bytes(serialization.Encoding.DER), "der"


def entries_json(entries: Sequence[RevokedEntry]) -> list[JsonValue]:
    return [entry.as_json() for entry in entries]
