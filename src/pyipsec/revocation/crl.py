"""Certificate revocation lists (RFC 5280 §5, checked as §6.3 asks): parsing, verification, caching.

Theory of operation
-------------------
:func:`parse_crl` accepts DER or PEM bytes. :func:`usable_crl` decides whether a CRL may
answer for certificates of a given issuer at ``now`` (RFC 5280 §6.3.3): the CRL's issuer name
equals the issuer's subject; the issuer may sign CRLs (keyUsage cRLSign if keyUsage is
present); the signature verifies with the issuer's public key; ``thisUpdate`` is not in the
future (beyond a small clock skew); no critical extension we cannot process. Delta CRLs
(deltaCRLIndicator), indirect CRLs and CRLs partitioned by reason (issuingDistributionPoint
``indirectCRL`` / ``onlySomeReasons``) are not supported and are never used — a CA that only
publishes such CRLs gives "no information". A CRL whose ``nextUpdate`` has passed is
*stale*: :class:`CrlError` with ``stale`` set, which the checker turns into "no information"
plus a warning. :func:`crl_entry` looks a serial up.

:class:`CrlStore` holds the CRLs the checker consults:

- **files** (e.g. a ``x509crl/`` or ``cacerts`` directory: a directory stands for every file
  in it, listed anew on each lookup). A file is parsed once and re-read when its
  (inode, size, mtime) changes, so replacing the CRL file takes effect at the next check.
  Reading these small local files happens on the event loop.
- **distribution points** fetched through the injected :data:`~pyipsec.revocation.fetch.Fetcher`,
  cached by URI until the CRL's ``nextUpdate`` (or ``default_lifetime`` without one).
  Concurrent lookups of one URI share a single download. Failed fetches are not cached.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from pyipsec.errors import PyIpsecError
from pyipsec.revocation.fetch import CRL_LIMIT, Fetcher

__all__ = [
    "CRL_CONTENT_TYPE",
    "CrlEntry",
    "CrlError",
    "CrlStore",
    "crl_entry",
    "parse_crl",
    "usable_crl",
]

CRL_CONTENT_TYPE: Final = "application/pkix-crl"

_KNOWN_CRL_EXTENSIONS: Final = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
        ExtensionOID.FRESHEST_CRL,
    }
)
_KNOWN_ENTRY_EXTENSIONS: Final = frozenset(
    {CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE}
)


class CrlError(PyIpsecError):
    """A CRL that cannot answer: unparsable, wrong issuer, bad signature, unsupported or stale."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


@dataclass(frozen=True, slots=True)
class CrlEntry:
    """A revoked serial as listed in a CRL."""

    revoked_at: datetime
    reason: str | None
    """The CRLReason name (``keyCompromise``, ...), None if the entry gives none."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from DER or PEM bytes; :class:`CrlError` if they are not one."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
        _ = crl.issuer, crl.last_update_utc, crl.next_update_utc
    except ValueError as exc:
        raise CrlError(f"not a CRL ({_first_line(exc)})") from None
    return crl


def _check_extensions(crl: x509.CertificateRevocationList, is_ca: bool) -> None:
    for ext in crl.extensions:
        if ext.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            raise CrlError("delta CRLs are not supported")
        if ext.critical and ext.oid not in _KNOWN_CRL_EXTENSIONS:
            raise CrlError(f"unsupported critical CRL extension {ext.oid.dotted_string}")
        if isinstance(ext.value, x509.IssuingDistributionPoint):
            idp = ext.value
            if idp.indirect_crl or idp.only_some_reasons or idp.only_contains_attribute_certs:
                raise CrlError("indirect or reason-partitioned CRLs are not supported")
            if idp.only_contains_ca_certs and not is_ca:
                raise CrlError("the CRL covers CA certificates only")
            if idp.only_contains_user_certs and is_ca:
                raise CrlError("the CRL covers end-entity certificates only")


def _may_sign_crls(issuer: x509.Certificate) -> bool:
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.crl_sign


def usable_crl(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    *,
    now: datetime,
    skew: timedelta,
    is_ca: bool = False,
) -> None:
    """Raise :class:`CrlError` unless ``crl`` may answer for certificates of ``issuer`` at ``now``.

    ``is_ca`` says whether the certificate in question is a CA (issuingDistributionPoint scope).
    """
    try:
        if crl.issuer != issuer.subject:
            raise CrlError(f"issued by {crl.issuer.rfc4514_string()}, not {issuer.subject.rfc4514_string()}")
        if not _may_sign_crls(issuer):
            raise CrlError(f"{issuer.subject.rfc4514_string()} may not sign CRLs (no cRLSign key usage)")
        try:
            valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise CrlError(f"cannot verify the signature ({_first_line(exc)})") from None
        if not valid:
            raise CrlError("bad signature: not signed by the issuer's key")
        _check_extensions(crl, is_ca)
        if crl.last_update_utc > now + skew:
            raise CrlError(f"thisUpdate {crl.last_update_utc:%Y-%m-%d %H:%M:%S} UTC is in the future")
        next_update = crl.next_update_utc
        if next_update is not None and now > next_update + skew:
            raise CrlError(f"expired: nextUpdate was {next_update:%Y-%m-%d %H:%M:%S} UTC", stale=True)
    except ValueError as exc:
        raise CrlError(f"malformed CRL ({_first_line(exc)})") from None


def crl_entry(crl: x509.CertificateRevocationList, serial: int) -> CrlEntry | None:
    """The entry of ``serial`` in ``crl``, or None if it is not listed."""
    try:
        revoked = crl.get_revoked_certificate_by_serial_number(serial)
        if revoked is None:
            return None
        reason: str | None = None
        for ext in revoked.extensions:
            if isinstance(ext.value, x509.CRLReason):
                reason = ext.value.reason.value
            elif ext.critical and ext.oid not in _KNOWN_ENTRY_EXTENSIONS:
                raise CrlError(f"unsupported critical CRL entry extension {ext.oid.dotted_string}")
        return CrlEntry(revoked.revocation_date_utc, reason)
    except ValueError as exc:
        raise CrlError(f"malformed CRL entry ({_first_line(exc)})") from None


@dataclass(frozen=True, slots=True)
class _FileCrl:
    signature: tuple[int, int, int]
    crl: x509.CertificateRevocationList | None
    error: str


@dataclass(frozen=True, slots=True)
class _UriCrl:
    crl: x509.CertificateRevocationList
    expires: datetime


def _stat_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class CrlStore:
    """Configured CRL files and a cache of CRLs fetched from distribution points."""

    def __init__(
        self,
        files: Sequence[Path],
        fetcher: Fetcher,
        *,
        now: Callable[[], datetime],
        default_lifetime: timedelta,
    ) -> None:
        self._paths = tuple(files)
        self._fetcher = fetcher
        self._now = now
        self._default_lifetime = default_lifetime
        self._files: dict[Path, _FileCrl] = {}
        self._uris: dict[str, _UriCrl] = {}
        self._inflight: dict[str, asyncio.Future[x509.CertificateRevocationList]] = {}

    def clear(self) -> None:
        self._files.clear()
        self._uris.clear()

    def _expand(self) -> Iterator[Path]:
        for path in self._paths:
            if path.is_dir():
                try:
                    yield from sorted(p for p in path.iterdir() if p.is_file())
                except OSError:
                    continue
            else:
                yield path

    def _load_file(self, path: Path) -> _FileCrl:
        signature = _stat_signature(path)
        if signature is None:
            return _FileCrl((0, 0, 0), None, "cannot be read")
        cached = self._files.get(path)
        if cached is not None and cached.signature == signature:
            return cached
        try:
            with path.open("rb") as handle:
                data = handle.read(CRL_LIMIT + 1)
            if len(data) > CRL_LIMIT:
                raise CrlError(f"larger than {CRL_LIMIT} bytes")
            entry = _FileCrl(signature, parse_crl(data), "")
        except OSError as exc:
            entry = _FileCrl(signature, None, f"cannot be read ({exc.strerror})")
        except CrlError as exc:
            entry = _FileCrl(signature, None, str(exc))
        self._files[path] = entry
        return entry

    def local(self, issuer: x509.Certificate) -> list[tuple[str, x509.CertificateRevocationList | None, str]]:
        """(source, CRL or None, error) for every configured file that claims ``issuer`` as
        its issuer, plus the unreadable or unparsable ones (which claim nothing)."""
        found: list[tuple[str, x509.CertificateRevocationList | None, str]] = []
        for path in self._expand():
            entry = self._load_file(path)
            source = f"CRL {path}"
            if entry.crl is None:
                found.append((source, None, entry.error))
            elif entry.crl.issuer == issuer.subject:
                found.append((source, entry.crl, ""))
        return found

    async def remote(self, uri: str) -> x509.CertificateRevocationList:
        """The CRL at ``uri``, from the cache while it is fresh; raises FetchError or CrlError.

        Concurrent callers share one download (many peers of one CA authenticating at once)."""
        cached = self._uris.get(uri)
        if cached is not None and self._now() < cached.expires:
            return cached.crl
        self._uris.pop(uri, None)
        task = self._inflight.get(uri)
        if task is None:
            task = asyncio.ensure_future(self._download(uri))
            self._inflight[uri] = task
            task.add_done_callback(functools.partial(self._settled, uri))
        return await asyncio.shield(task)

    async def _download(self, uri: str) -> x509.CertificateRevocationList:
        crl = parse_crl(await self._fetcher(uri, None, CRL_CONTENT_TYPE))
        self._uris[uri] = _UriCrl(crl, crl.next_update_utc or self._now() + self._default_lifetime)
        return crl

    def _settled(self, uri: str, task: asyncio.Future[x509.CertificateRevocationList]) -> None:
        self._inflight.pop(uri, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter was cancelled

    def forget(self, uri: str) -> None:
        """Drop ``uri`` from the cache (its CRL turned out to be unusable)."""
        self._uris.pop(uri, None)
