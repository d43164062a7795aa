"""A scriptable RADIUS server on loopback for the unit tests of ``pyipsec.radius``.

Theory of operation
-------------------
:class:`FakeRadius` binds a UDP socket on 127.0.0.1 (any free port) in the running event loop
and hands every datagram to ``handler(request, server) -> list[bytes]``; the returned datagrams
are sent back to the source. :attr:`FakeRadius.received` keeps every request in order, so tests
see retransmissions byte for byte. Handlers build replies with :func:`reply`, which signs them
with code written here straight from the RFCs (independent of ``pyipsec.radius.codec``):
Response Authenticator (RFC 2865 §3), Message-Authenticator (RFC 2869 §5.14), MS-MPPE keys
(RFC 2548 §2.4.2).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FakeRadius",
    "Request",
    "attrs",
    "encrypt_mppe",
    "eap_reply",
    "parse",
    "reply",
    "request_authenticator_ok",
    "vsa",
]

Attr = tuple[int, bytes]


@dataclass(frozen=True)
class Request:
    """A datagram as the fake server received it, split into header and attributes."""

    raw: bytes
    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[Attr, ...]

    def values(self, code: int) -> list[bytes]:
        return [v for c, v in self.attributes if c == code]

    def value(self, code: int) -> bytes | None:
        found = self.values(code)
        return found[0] if found else None


def attrs(data: bytes) -> tuple[Attr, ...]:
    """(type, value) pairs of an attribute block (assumes it is well formed)."""
    out: list[Attr] = []
    i = 0
    while i < len(data):
        code, length = data[i], data[i + 1]
        out.append((code, data[i + 2 : i + length]))
        i += length
    return tuple(out)


def parse(raw: bytes) -> Request:
    code, identifier, length = struct.unpack_from("!BBH", raw)
    return Request(raw, code, identifier, raw[4:20], attrs(raw[20:length]))


def _encode(attributes: Sequence[Attr]) -> bytes:
    return b"".join(bytes([c, len(v) + 2]) + v for c, v in attributes)


def vsa(vendor: int, vendor_type: int, value: bytes) -> Attr:
    return 26, struct.pack("!I", vendor) + bytes([vendor_type, len(value) + 2]) + value


def encrypt_mppe(key: bytes, secret: bytes, request_authenticator: bytes, salt: bytes = b"\x81\x02") -> bytes:
    """RFC 2548 §2.4.2: salt | c(1) | c(2) ..., plaintext Key-Length | Key | zero padding."""
    plain = bytes([len(key)]) + key
    plain += bytes(-len(plain) % 16)
    out, chain = b"", request_authenticator + salt
    for i in range(0, len(plain), 16):
        b = hashlib.md5(secret + chain).digest()
        c = bytes(x ^ y for x, y in zip(plain[i : i + 16], b, strict=True))
        out, chain = out + c, c
    return salt + out


def reply(
    request: Request,
    code: int,
    attributes: Sequence[Attr] = (),
    *,
    secret: bytes,
    message_authenticator: bool = True,
    identifier: int | None = None,
) -> bytes:
    """A signed reply to ``request``; the Message-Authenticator (if any) goes first."""
    ident = request.identifier if identifier is None else identifier
    body = list(attributes)
    if message_authenticator:
        body.insert(0, (80, bytes(16)))
    block = _encode(body)
    header = struct.pack("!BBH", code, ident, 20 + len(block))
    if message_authenticator:
        ma = hmac.new(secret, header + request.authenticator + block, hashlib.md5).digest()
        block = block[:2] + ma + block[18:]
    auth = hashlib.md5(header + request.authenticator + block + secret).digest()
    return header + auth + block


def eap_reply(request: Request, code: int, eap: bytes, *, secret: bytes, extra: Sequence[Attr] = ()) -> bytes:
    """A reply carrying ``eap`` split into EAP-Message attributes."""
    chunks = [(79, eap[i : i + 253]) for i in range(0, len(eap), 253)]
    return reply(request, code, [*chunks, *extra], secret=secret)


def request_authenticator_ok(raw: bytes, secret: bytes) -> bool:
    """RFC 2866 §3 check of an Accounting-Request."""
    expected = hashlib.md5(raw[:4] + bytes(16) + raw[20:] + secret).digest()
    return hmac.compare_digest(expected, raw[4:20])


Handler = Callable[[Request, "FakeRadius"], list[bytes]]


@dataclass
class FakeRadius(asyncio.DatagramProtocol):
    """A loopback RADIUS server driven by ``handler``."""

    handler: Handler
    secret: bytes = b"fake-secret"
    received: list[Request] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    port: int = 0

    async def start(self, host: str = "127.0.0.1") -> FakeRadius:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        return self

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        request = parse(data)
        self.received.append(request)
        assert self.transport is not None
        for datagram in self.handler(request, self):
            self.transport.sendto(datagram, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
