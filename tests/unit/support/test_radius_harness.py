"""The RADIUS test harnesses keep their promises without root: the shim around an EapServer
answers as RFC 2865/3579/2548 say (checked with the production codec, as our client reads it),
:func:`tests.support.freeradius.relay_eap` relays until the final answer, and the FreeRADIUS
configuration carries the EAP-TLS options the root tier relies on."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pyipsec.ike.eap.base import EapOutcome
from pyipsec.radius import EapRelayAnswer, RadiusAnswerKind, RadiusClient, RadiusServer, RadiusSettings
from tests.support.freeradius import FreeRadius, TlsFiles, relay_eap
from tests.support.radius_eap_shim import RadiusEapShim
from tests.support.radius_fake import FakeRadius, Request, eap_reply

SECRET = b"harness-secret"
MSK = bytes(range(64))
EAP_IDENTITY = b"\x02\x07\x00\x0a\x01alice"
EAP_SUCCESS = b"\x03\x08\x00\x04"


class TwoStepServer:
    """An EapServer that asks once more, then succeeds with :data:`MSK`."""

    def __init__(self) -> None:
        self.outcome = EapOutcome.CONTINUE
        self.msk = b""
        self.reason = ""
        self.identity = ""
        self.seen: list[bytes] = []

    def start(self) -> bytes:
        return b"\x01\x07\x00\x05\x01"

    def process(self, response: bytes) -> bytes:
        self.seen.append(response)
        if len(self.seen) == 1:
            return b"\x01\x08\x00\x06\x0d\x20"
        self.outcome, self.msk = EapOutcome.SUCCESS, MSK
        return EAP_SUCCESS


class ScriptedPeer:
    """An EapPeer answering every Request with ``answers`` in turn (None: silence)."""

    def __init__(self, *answers: bytes | None) -> None:
        self.answers = list(answers)
        self.got: list[bytes] = []
        self.outcome = EapOutcome.CONTINUE
        self.msk = b""
        self.reason = ""

    def process(self, request: bytes) -> bytes | None:
        self.got.append(request)
        if request[0] == 3:
            self.outcome = EapOutcome.SUCCESS
            return None
        return self.answers.pop(0)


async def relay_to(
    port: int, peer: ScriptedPeer, *, secret: bytes = SECRET, rounds: int = 100, timeout: float = 1.0
) -> EapRelayAnswer:
    """``peer``'s conversation through our RadiusClient with the server on 127.0.0.1:``port``."""
    server = RadiusServer("test", "127.0.0.1", auth_port=port, secret=secret)
    client = RadiusClient(RadiusSettings(servers=(server,), timeout=timeout, tries=1))
    try:
        return await relay_eap(client, peer, "alice", rounds=rounds)
    finally:
        client.close()


def relay_against_fake(peer: ScriptedPeer, rounds: int = 100) -> tuple[EapRelayAnswer, list[Request]]:
    def handler(req: Request, fake: FakeRadius) -> list[bytes]:
        if req.value(24) is None:
            return [eap_reply(req, 11, b"\x01\x2b\x00\x06\x0d\x20", secret=fake.secret, extra=[(24, b"st")])]
        return [eap_reply(req, 2, EAP_SUCCESS, secret=fake.secret)]

    async def main() -> tuple[EapRelayAnswer, list[Request]]:
        fake = await FakeRadius(handler, secret=SECRET).start()
        try:
            return await relay_to(fake.port, peer, rounds=rounds), fake.received
        finally:
            fake.close()

    return asyncio.run(main())


def test_shim_serves_our_client_challenge_then_accept_with_the_msk_in_mppe_keys() -> None:
    server = TwoStepServer()
    listening = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    shim = RadiusEapShim(listening, SECRET, lambda _first: server)
    shim.start()
    try:
        peer = ScriptedPeer(EAP_IDENTITY, b"\x02\x08\x00\x06\x0d\x00")
        answer = asyncio.run(relay_to(port, peer))
        # A client with another secret: its Message-Authenticator fails, the shim stays silent.
        stranger = asyncio.run(relay_to(port, ScriptedPeer(EAP_IDENTITY), secret=b"other", timeout=0.2))
    finally:
        shim.stop()
    assert answer.kind is RadiusAnswerKind.ACCEPT and peer.outcome is EapOutcome.SUCCESS
    assert answer.msk == MSK  # Recv-Key | Send-Key as the production codec decrypts them
    assert server.seen == [EAP_IDENTITY, b"\x02\x08\x00\x06\x0d\x00"]
    assert shim.finished == [server]
    assert stranger.kind is RadiusAnswerKind.TIMEOUT
    assert shim.errors == ["Access-Request with a bad Message-Authenticator"]


def test_relay_eap_relays_until_the_final_answer() -> None:
    peer = ScriptedPeer(b"\x02\x2a\x00\x0a\x01alice", b"\x02\x2b\x00\x06\x0d\x00")
    answer, received = relay_against_fake(peer)
    assert answer.kind is RadiusAnswerKind.ACCEPT
    assert peer.outcome is EapOutcome.SUCCESS and peer.got[-1] == EAP_SUCCESS
    assert [r.value(24) for r in received] == [None, b"st"]  # the Challenge's State echoed


def test_relay_eap_names_a_peer_that_goes_silent_and_a_conversation_too_long() -> None:
    with pytest.raises(AssertionError, match="stopped answering"):
        relay_against_fake(ScriptedPeer(b"\x02\x2a\x00\x0a\x01alice", None))
    with pytest.raises(AssertionError, match="within 1 rounds"):
        relay_against_fake(ScriptedPeer(b"\x02\x2a\x00\x0a\x01alice", b"\x02\x2b\x00\x06\x0d\x00"), rounds=1)


def rendered(**kwargs: Any) -> str:
    ns: Any = SimpleNamespace(name="pyi-test")
    server = FreeRadius(ns, listen="127.0.0.1", client="127.0.0.1", secret=SECRET, **kwargs)
    try:
        server.write_config()
        return Path(server.dir, "radiusd.conf").read_text()
    finally:
        server.stop()


def test_freeradius_config_eap_tls_only_with_a_fragment_size() -> None:
    tls = TlsFiles(cert_pem=b"cert", key_pem=b"key", ca_pem=b"ca")
    conf = rendered(
        tls=tls, default_eap_type="tls", mschapv2=False, tls_fragment_size=300, tls_max_version="1.3"
    )
    assert "mschapv2 {" not in conf and "default_eap_type = tls" in conf
    assert "fragment_size = 300" in conf and 'tls_max_version = "1.3"' in conf
    assert 'ecdh_curve = ""' in conf and "auto_chain = no" in conf
    default = rendered()
    assert "mschapv2 {" in default and "tls-config" not in default
