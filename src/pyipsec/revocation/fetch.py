"""Fetching CRLs and OCSP responses over HTTP without blocking the event loop.

Theory of operation
-------------------
The revocation checker never opens sockets itself: it calls a :data:`Fetcher`, an async
callable ``(url, body, content_type) -> bytes``. ``body`` ``None`` means GET (a CRL
distribution point, RFC 5280 §4.2.1.13), bytes mean POST with that ``Content-Type`` (an OCSP
request, RFC 6960 Appendix A.1). Tests inject a fake; the daemon uses :class:`HttpFetcher`.

:class:`HttpFetcher` speaks the smallest useful HTTP/1.0 over ``asyncio`` streams: one request
with ``Connection: close``, the status line, the headers, then the body up to a size limit
(``Content-Length`` if given, else until the server closes). ``https://`` URLs use the
``ssl`` module's default context (system trust store, host name checked). A whole fetch is
bounded by a timeout. Redirects, chunked transfer encoding, proxies and ``ldap://`` are not
supported: they raise :class:`FetchError` with a clear message, as do non-2xx statuses,
oversized bodies, timeouts and connection errors. Nothing else escapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from pyipsec.errors import PyIpsecError

__all__ = [
    "CRL_LIMIT",
    "DEFAULT_TIMEOUT",
    "OCSP_LIMIT",
    "FetchError",
    "Fetcher",
    "HttpFetcher",
]

Fetcher = Callable[[str, bytes | None, str], Awaitable[bytes]]
"""``await fetch(url, body, content_type)``: GET when ``body`` is None, else POST; the body."""

CRL_LIMIT: Final = 1 << 20
"""Largest CRL accepted (1 MiB)."""
OCSP_LIMIT: Final = 64 << 10
"""Largest OCSP response accepted (64 KiB)."""
DEFAULT_TIMEOUT: Final = 5.0
"""Seconds for one whole fetch: connect, send, receive."""

_HEADER_LIMIT: Final = 16 << 10


class FetchError(PyIpsecError):
    """A URL that could not be fetched; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class _Target:
    tls: bool
    host: str
    port: int
    path: str
    host_header: str


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"bad URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {scheme or '(none)'!r} in {url!r} (http and https only)")
    host = parts.hostname
    if not host:
        raise FetchError(f"no host in URL {url!r}")
    tls = scheme == "https"
    default_port = 443 if tls else 80
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if any(c in path for c in "\r\n "):
        raise FetchError(f"bad characters in URL path {url!r}")
    netloc_host = f"[{host}]" if ":" in host else host
    host_header = netloc_host if port in (None, default_port) else f"{netloc_host}:{port}"
    return _Target(tls, host, port or default_port, path, host_header)


def _request(target: _Target, body: bytes | None, content_type: str) -> bytes:
    method = "GET" if body is None else "POST"
    lines = [
        f"{method} {target.path} HTTP/1.0",
        f"Host: {target.host_header}",
        "User-Agent: pyipsec",
        "Accept: */*",
        "Connection: close",
    ]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")


def _parse_head(head: bytes, url: str) -> dict[str, str]:
    text = head.decode("iso-8859-1")
    status_line, *header_lines = text.split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise FetchError(f"{url}: not an HTTP response")
    status = int(fields[1])
    if not 200 <= status < 300:
        reason = fields[2] if len(fields) > 2 else ""
        raise FetchError(f"{url}: HTTP {status} {reason}".rstrip())
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


class HttpFetcher:
    """The default :data:`Fetcher`: HTTP/1.0 (and HTTPS) on asyncio streams, bounded in time and size."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        crl_limit: int = CRL_LIMIT,
        ocsp_limit: int = OCSP_LIMIT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._timeout = timeout
        self._crl_limit = crl_limit
        self._ocsp_limit = ocsp_limit
        self._ssl_context = ssl_context

    async def __call__(self, url: str, body: bytes | None, content_type: str) -> bytes:
        target = _target(url)
        limit = self._crl_limit if body is None else self._ocsp_limit
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(target, _request(target, body, content_type), limit, url)
        except TimeoutError:
            raise FetchError(f"{url}: no answer within {self._timeout:g} s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, UnicodeError) as exc:
            raise FetchError(f"{url}: {getattr(exc, 'strerror', None) or exc}") from None

    async def _exchange(self, target: _Target, request: bytes, limit: int, url: str) -> bytes:
        context: ssl.SSLContext | None = None
        if target.tls:
            context = self._ssl_context or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context, limit=_HEADER_LIMIT
        )
        try:
            writer.write(request)
            await writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise FetchError(f"{url}: HTTP headers longer than {_HEADER_LIMIT} bytes") from None
            except asyncio.IncompleteReadError:
                raise FetchError(f"{url}: connection closed before the HTTP headers ended") from None
            headers = _parse_head(head[:-4], url)
            if "chunked" in headers.get("transfer-encoding", "").lower():
                raise FetchError(f"{url}: chunked transfer encoding is not supported")
            length = headers.get("content-length")
            if length is not None:
                if not length.isdigit():
                    raise FetchError(f"{url}: bad Content-Length {length!r}")
                if int(length) > limit:
                    raise FetchError(f"{url}: response of {int(length)} bytes exceeds the limit of {limit}")
                return await reader.readexactly(int(length))
            data = await reader.read(limit + 1)
            chunks = [data]
            total = len(data)
            while data and total <= limit:
                data = await reader.read(limit + 1 - total)
                chunks.append(data)
                total += len(data)
            if total > limit:
                raise FetchError(f"{url}: response exceeds the limit of {limit} bytes")
            return b"".join(chunks)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
