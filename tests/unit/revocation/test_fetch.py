"""The default HTTP fetcher against small asyncio servers on the loopback interface."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyipsec.revocation.fetch import FetchError, HttpFetcher

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _run(serve: Serve, fetch: Callable[[str], Awaitable[bytes]]) -> bytes:
    async def main() -> bytes:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await fetch(f"http://127.0.0.1:{port}/path?q=1")
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def _responder(response: bytes, seen: list[bytes] | None = None) -> Serve:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
            length = [
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ]
            if length:
                seen.append(await reader.readexactly(length[0]))
        writer.write(response)
        await writer.drain()
        writer.close()

    return serve


def test_get_with_content_length() -> None:
    seen: list[bytes] = []
    body = _run(
        _responder(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", seen),
        lambda u: HttpFetcher()(u, None, "x"),
    )
    assert body == b"hello"
    assert seen[0].startswith(b"GET /path?q=1 HTTP/1.0\r\n") and b"\r\nHost: 127.0.0.1:" in seen[0]


def test_post_until_close() -> None:
    seen: list[bytes] = []
    body = _run(
        _responder(b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n\r\nanswer", seen),
        lambda u: HttpFetcher()(u, b"\x30\x00", "application/ocsp-request"),
    )
    assert body == b"answer"
    assert seen[0].startswith(b"POST ") and b"Content-Type: application/ocsp-request" in seen[0]
    assert seen[1] == b"\x30\x00"


def test_http_error_status() -> None:
    with pytest.raises(FetchError, match="HTTP 404 Not Found"):
        _run(_responder(b"HTTP/1.0 404 Not Found\r\n\r\n"), lambda u: HttpFetcher()(u, None, "x"))


def test_not_http() -> None:
    with pytest.raises(FetchError, match="not an HTTP response"):
        _run(_responder(b"SSH-2.0-OpenSSH\r\n\r\n"), lambda u: HttpFetcher()(u, None, "x"))


@pytest.mark.parametrize("header", [True, False])
def test_size_limit(header: bool) -> None:
    data = b"x" * 2000
    head = b"HTTP/1.0 200 OK\r\n" + (b"Content-Length: 2000\r\n" if header else b"") + b"\r\n"
    with pytest.raises(FetchError, match="limit"):
        _run(_responder(head + data), lambda u: HttpFetcher(crl_limit=1000)(u, None, "x"))


def test_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    with pytest.raises(FetchError, match="no answer within"):
        _run(silent, lambda u: HttpFetcher(timeout=0.2)(u, None, "x"))


def test_connection_refused() -> None:
    async def main() -> bytes:
        server = await asyncio.start_server(_responder(b""), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        return await HttpFetcher()(f"http://127.0.0.1:{port}/", None, "x")

    with pytest.raises(FetchError):
        asyncio.run(main())


def test_truncated_body() -> None:
    with pytest.raises(FetchError):
        _run(
            _responder(b"HTTP/1.0 200 OK\r\nContent-Length: 50\r\n\r\nshort"),
            lambda u: HttpFetcher()(u, None, "x"),
        )


@pytest.mark.parametrize(
    "url", ["ldap://ldap.example/cn=CA", "file:///etc/passwd", "http:///nohost", "no scheme"]
)
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(FetchError):
        asyncio.run(HttpFetcher()(url, None, "x"))


def _tls_pair(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a self-signed 127.0.0.1 certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_https(tmp_path: Path) -> None:
    server_ctx, client_ctx = _tls_pair(tmp_path)

    async def main(client: ssl.SSLContext) -> bytes:
        server = await asyncio.start_server(
            _responder(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\ncrl"), "127.0.0.1", 0, ssl=server_ctx
        )
        port = server.sockets[0].getsockname()[1]
        try:
            return await HttpFetcher(ssl_context=client)(f"https://127.0.0.1:{port}/ca.crl", None, "x")
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(main(client_ctx)) == b"crl"
    with pytest.raises(FetchError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        asyncio.run(main(ssl.create_default_context()))  # the system store does not trust it
