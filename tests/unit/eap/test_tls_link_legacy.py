"""The EAP-TLS client against a TLS 1.2 server without RFC 5746's renegotiation_info.

strongSwan's libtls (5.9.8, Debian 12's charon) answers a ClientHello without the
renegotiation_info extension; OpenSSL 3 clients refuse such a server by default ("unsafe legacy
renegotiation disabled"), which made every pyipsec client fail EAP-TLS against a strongSwan
gateway (tests/interop/test_eap_tls_strongswan.py). The extension protects renegotiation only,
which EAP-TLS never does, so our client accepts its absence. Here an OpenSSL server's
ServerHello has the extension cut out, which is what such a server sends.
"""

from __future__ import annotations

import struct

from pyipsec.ike.eap.tls_link import TlsLink, TlsVersion, make_context
from tests.unit.eap._tls_support import pki

RENEGOTIATION_INFO = 0xFF01
HANDSHAKE, SERVER_HELLO = 22, 2


def _without_extension(server_hello: bytes, ext_type: int) -> bytes:
    """A TLS 1.2 ServerHello handshake message with the extension ``ext_type`` removed."""
    body = server_hello[4:]
    pos = 2 + 32  # version, random
    pos += 1 + body[pos]  # session id
    pos += 2 + 1  # cipher suite, compression
    (ext_len,) = struct.unpack_from("!H", body, pos)
    exts, kept = body[pos + 2 : pos + 2 + ext_len], b""
    i = 0
    while i < len(exts):
        etype, elen = struct.unpack_from("!HH", exts, i)
        if etype != ext_type:
            kept += exts[i : i + 4 + elen]
        i += 4 + elen
    assert len(kept) < len(exts), "the server sent no such extension"
    new_body = body[:pos] + struct.pack("!H", len(kept)) + kept
    return bytes([SERVER_HELLO]) + len(new_body).to_bytes(3, "big") + new_body


def _strip_renegotiation_info(flight: bytes) -> bytes:
    """The server's first flight with renegotiation_info cut out of its ServerHello record."""
    out, i = b"", 0
    while i < len(flight):
        rtype, version, rlen = struct.unpack_from("!BHH", flight, i)
        payload = flight[i + 5 : i + 5 + rlen]
        if rtype == HANDSHAKE and payload[0] == SERVER_HELLO:
            hello_len = int.from_bytes(payload[1:4], "big")
            hello = _without_extension(payload[: 4 + hello_len], RENEGOTIATION_INFO)
            payload = hello + payload[4 + hello_len :]
        out += struct.pack("!BHH", rtype, version, len(payload)) + payload
        i += 5 + rlen
    return out


def _links() -> tuple[TlsLink, TlsLink]:
    p = pki()
    links = []
    for server, ours in ((True, p.gateway), (False, p.client)):
        ctx, verifier = make_context(
            server=server,
            cert=ours.cert,
            key=ours.key,
            chain=[p.intermediate.cert],
            ca_certs=[p.root.cert],
            max_version=TlsVersion.TLS1_2,
            check=None,
        )
        links.append(TlsLink(ctx, verifier, server=server))
    return links[0], links[1]


def test_client_accepts_a_tls12_server_without_renegotiation_info() -> None:
    server, client = _links()
    server_flight = server.feed(client.start())
    # without OP_LEGACY_SERVER_CONNECT this raised TlsFailure("... unsafe legacy renegotiation
    # disabled"); now the client goes on with its certificate flight
    answer = client.feed(_strip_renegotiation_info(server_flight))
    assert answer and answer[0] == HANDSHAKE
    assert client.version is TlsVersion.TLS1_2
