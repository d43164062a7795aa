"""The asyncio RADIUS client against loopback fake servers: retransmission, failover, drops.

Timeouts are short (tens of milliseconds) so the tests run fast; nothing asserts how long
anything took, only what was sent and answered.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyipsec.crypto.rand import SeededRandom
from pyipsec.radius import (
    AccountingRecord,
    AcctStatus,
    EapRelayAnswer,
    RadiusAnswerKind,
    RadiusClient,
    RadiusServer,
    RadiusSettings,
)
from tests.support.radius_fake import (
    FakeRadius,
    Request,
    eap_reply,
    encrypt_mppe,
    reply,
    request_authenticator_ok,
    vsa,
)

T = TypeVar("T")
SECRET = b"fake-secret"
EAP_IDENTITY = b"\x02\x01\x00\x0a\x01alice"
EAP_SUCCESS = b"\x03\x05\x00\x04"


def accept(req: Request, fake: FakeRadius) -> list[bytes]:
    keys = [
        vsa(311, 17, encrypt_mppe(bytes(range(32)), fake.secret, req.authenticator)),
        vsa(311, 16, encrypt_mppe(bytes(range(32, 64)), fake.secret, req.authenticator)),
    ]
    return [eap_reply(req, 2, EAP_SUCCESS, secret=fake.secret, extra=keys)]


def challenge(req: Request, fake: FakeRadius) -> list[bytes]:
    return [
        eap_reply(req, 11, b"\x01\x02\x00\x06\x1a\x01", secret=fake.secret, extra=[(24, b"st-" + fake.name)])
    ]


def silent(req: Request, fake: FakeRadius) -> list[bytes]:
    return []


def acct_ok(req: Request, fake: FakeRadius) -> list[bytes]:
    assert request_authenticator_ok(req.raw, fake.secret)
    return [reply(req, 5, secret=fake.secret, message_authenticator=False)]


class Fake(FakeRadius):
    name = b"?"


async def fakes(*handlers: Callable[[Request, FakeRadius], list[bytes]]) -> list[Fake]:
    out = []
    for i, handler in enumerate(handlers):
        fake = Fake(handler, secret=SECRET)
        fake.name = bytes([ord("a") + i])
        out.append(await fake.start())
    return out


def server(fake: FakeRadius, name: str, *, secret: bytes = SECRET) -> RadiusServer:
    return RadiusServer(name, "127.0.0.1", auth_port=fake.port, acct_port=fake.port, secret=secret)


def make_client(
    *servers: RadiusServer, clock: Callable[[], float] | None = None, tries: int = 2
) -> RadiusClient:
    cfg = RadiusSettings(servers=servers, timeout=0.1, tries=tries, nas_identifier="unit")
    kwargs = {"clock": clock} if clock is not None else {}
    return RadiusClient(cfg, rng=SeededRandom(1), **kwargs)  # type: ignore[arg-type]


async def relay(
    client: RadiusClient, state: bytes | None = None, eap: bytes = EAP_IDENTITY
) -> EapRelayAnswer:
    return await client.eap(
        user="alice", eap=eap, state=state, session="s1", calling_station="c", called_station="d", nas_port=1
    )


def run(coro: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(coro())  # type: ignore[arg-type]


def test_accept_with_msk() -> None:
    async def body() -> None:
        (fake,) = await fakes(accept)
        client = make_client(server(fake, "one"))
        answer = await relay(client)
        assert answer.kind is RadiusAnswerKind.ACCEPT and answer.server == "one"
        assert answer.msk == bytes(range(64)) and answer.eap == EAP_SUCCESS
        stats = client.stats.server("one")
        assert (stats.requests, stats.retransmissions, stats.answers) == (1, 0, 1)
        client.close()
        fake.close()

    run(body)


def test_retransmission_is_byte_identical() -> None:
    def second_time(req: Request, fake: FakeRadius) -> list[bytes]:
        return accept(req, fake) if len(fake.received) == 2 else []

    async def body() -> None:
        (fake,) = await fakes(second_time)
        client = make_client(server(fake, "one"), tries=3)
        answer = await relay(client)
        assert answer.kind is RadiusAnswerKind.ACCEPT
        first, second = fake.received
        assert first.raw == second.raw  # same Identifier, same Request Authenticator
        assert client.stats.server("one").retransmissions == 1
        client.close()
        fake.close()

    run(body)


def test_failover_and_dead_server_tried_last_until_dead_time_passes() -> None:
    now = [100.0]

    async def body() -> None:
        dead, live = await fakes(silent, accept)
        client = make_client(server(dead, "dead"), server(live, "live"), clock=lambda: now[0], tries=2)
        answer = await relay(client)
        assert answer.kind is RadiusAnswerKind.ACCEPT and answer.server == "live"
        assert len(dead.received) == 2 and dead.received[0].raw == dead.received[1].raw
        assert client.stats.server("dead").timeouts == 1
        # Remembered as dead: the next request goes to "live" only.
        assert (await relay(client)).server == "live"
        assert len(dead.received) == 2
        # After the dead time, "dead" is first again (and fails over again).
        now[0] += 61
        assert (await relay(client)).server == "live"
        assert len(dead.received) == 4
        # A fresh packet for the next server: another authenticator than the dead one saw.
        assert live.received[0].authenticator != dead.received[0].authenticator
        client.close()
        dead.close()
        live.close()

    run(body)


def test_no_server_answers_timeout_names_servers() -> None:
    async def body() -> None:
        a, b = await fakes(silent, silent)
        client = make_client(server(a, "first"), server(b, "second"))
        answer = await relay(client)
        assert answer.kind is RadiusAnswerKind.TIMEOUT
        assert "first" in answer.reason and "second" in answer.reason and str(b.port) in answer.reason
        assert answer.msk == b""
        client.close()
        a.close()
        b.close()

    run(body)


def test_wrong_secret_replies_dropped_counted_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        (fake,) = await fakes(accept)
        client = make_client(server(fake, "one", secret=b"other-secret"))
        with caplog.at_level(logging.WARNING, logger="pyipsec.radius"):
            first = await relay(client)
            second = await relay(client)
        assert first.kind is RadiusAnswerKind.TIMEOUT and second.kind is RadiusAnswerKind.TIMEOUT
        assert client.stats.server("one").bad_authenticator == 4  # two tries each, every reply dropped
        client.close()
        fake.close()

    run(body)
    hints = [r for r in caplog.records if "wrong shared secret?" in r.getMessage()]
    assert len(hints) == 1 and "one" in hints[0].getMessage()
    assert "other-secret" not in caplog.text and "fake-secret" not in caplog.text


def test_garbage_and_forged_replies_before_the_real_one() -> None:
    def noisy(req: Request, fake: FakeRadius) -> list[bytes]:
        forged = bytearray(accept(req, fake)[0])
        forged[-1] ^= 1
        return [
            b"\x02",
            b"junk" * 10,
            reply(req, 2, secret=fake.secret, identifier=(req.identifier + 1) % 256),
            reply(req, 2, [(79, EAP_SUCCESS)], secret=fake.secret, message_authenticator=False),
            bytes(forged),
            *accept(req, fake),
        ]

    async def body() -> None:
        (fake,) = await fakes(noisy)
        client = make_client(server(fake, "one"))
        answer = await relay(client)
        assert answer.kind is RadiusAnswerKind.ACCEPT and answer.msk == bytes(range(64))
        stats = client.stats.server("one")
        assert stats.bad_authenticator == 2  # missing and forged Message-Authenticator
        assert stats.unexpected + stats.malformed == 3
        client.close()
        fake.close()

    run(body)


def test_conversation_sticks_to_the_challenging_server() -> None:
    def challenge_then_accept(req: Request, fake: FakeRadius) -> list[bytes]:
        return accept(req, fake) if req.value(24) is not None else challenge(req, fake)

    async def body() -> None:
        a, b = await fakes(challenge_then_accept, challenge_then_accept)
        client = make_client(server(a, "a"), server(b, "b"))
        # Make "b" hold the conversation: "a" is down for the first message.
        a.handler = silent
        first = await relay(client)
        assert first.kind is RadiusAnswerKind.CHALLENGE and first.server == "b" and first.state == b"st-b"
        a.handler = challenge_then_accept
        client._states[0].dead_until = None  # "a" is back; the conversation still goes to "b"
        second = await relay(client, state=first.state, eap=b"\x02\x02\x00\x06\x1a\x02")
        assert second.kind is RadiusAnswerKind.ACCEPT and second.server == "b"
        assert b.received[-1].value(24) == b"st-b"
        client.close()
        a.close()
        b.close()

    run(body)


def test_many_concurrent_requests_share_the_identifier_space() -> None:
    async def body() -> None:
        (fake,) = await fakes(accept)
        client = RadiusClient(
            RadiusSettings((server(fake, "one"),), timeout=2.0, tries=2), rng=SeededRandom(3)
        )
        answers = await asyncio.gather(*(relay(client) for _ in range(300)))
        assert all(a.kind is RadiusAnswerKind.ACCEPT for a in answers)
        assert client.stats.server("one").answers == 300
        client.close()
        fake.close()

    run(body)


def test_accounting_and_failover() -> None:
    async def body() -> None:
        dead, live = await fakes(silent, acct_ok)
        client = make_client(server(dead, "dead"), server(live, "live"))
        record = AccountingRecord(status=AcctStatus.START, session="acct-1", user="alice")
        assert await client.account(record)
        (sent,) = live.received
        assert sent.code == 4 and sent.value(40) == struct.pack("!I", 1) and sent.value(44) == b"acct-1"
        assert client.stats.server("dead").timeouts == 1
        client.close()
        dead.close()
        live.close()

    run(body)


def test_accounting_without_answer_is_false() -> None:
    async def body() -> None:
        (fake,) = await fakes(silent)
        client = make_client(server(fake, "one"))
        assert not await client.account(AccountingRecord(status=AcctStatus.STOP, session="x", user="u"))
        client.close()
        fake.close()

    run(body)


def test_closed_client_answers_timeout() -> None:
    async def body() -> None:
        (fake,) = await fakes(accept)
        client = make_client(server(fake, "one"))
        client.close()
        answer = await relay(client)
        assert answer.kind is RadiusAnswerKind.TIMEOUT and "closed" in answer.reason
        fake.close()

    run(body)


def test_unencodable_request_raises_before_sending() -> None:
    async def body() -> None:
        (fake,) = await fakes(accept)
        client = make_client(server(fake, "one"))
        with pytest.raises(ValueError, match="User-Name"):
            await client.eap(
                user="x" * 300,
                eap=EAP_IDENTITY,
                state=None,
                session="s",
                calling_station="",
                called_station="",
                nas_port=0,
            )
        assert fake.received == []
        client.close()
        fake.close()

    run(body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=120), max_size=4))
def test_hostile_replies_never_break_the_client(replies: list[bytes]) -> None:
    """Arbitrary datagrams (also ones carrying the right identifier) before the real answer."""

    def hostile(req: Request, fake: FakeRadius) -> list[bytes]:
        shaped = [r[:1] + bytes([req.identifier]) + r[2:] if len(r) > 2 else r for r in replies]
        return [*replies, *shaped, *accept(req, fake)]

    async def body() -> None:
        (fake,) = await fakes(hostile)
        client = make_client(server(fake, "one"))
        answer = await relay(client)
        assert answer.kind is RadiusAnswerKind.ACCEPT
        client.close()
        fake.close()

    run(body)
