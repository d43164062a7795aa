"""Bad input never crashes the engine: malformed datagrams, invalid KE values, bugs in one SA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.crypto.rand import SeededRandom
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.events import IkeSaClosed, IkeSaEstablished
from pyipsec.ike.tasks import ike_auth
from pyipsec.net.addr import Datagram
from pyipsec.wire.message import decode_message, encode_message
from pyipsec.wire.payloads.ke import KeyExchange
from tests.scenario.test_handshake_psk import pair
from tests.support.engines import I_ADDR, R_ADDR, endpoint

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
MESSAGES = [
    bytes.fromhex(m["udp_payload_hex"])[4 if m["non_esp_marker"] else 0 :]
    for f in sorted(CAPTURES.glob("*.json"))
    for m in json.loads(f.read_text())["ike_messages"]
]


def _responder() -> IkeEngine:
    return pair().r.engine


@given(st.binary(max_size=600))
def test_random_datagrams_are_dropped_and_counted(data: bytes) -> None:
    engine = _responder()
    out = engine.receive_datagram(Datagram(endpoint(R_ADDR), endpoint(I_ADDR), data), 0.0)
    counted = engine.stats.malformed + engine.stats.unknown_spi
    assert out.events == ()
    assert counted == 1 or out.datagrams or engine.sas()  # dropped and counted, or (a valid INIT) answered


@given(st.sampled_from(MESSAGES), st.integers(0, 10_000), st.integers(0, 255))
def test_mutated_real_messages_never_raise(msg: bytes, pos: int, value: int) -> None:
    engine = _responder()
    mutated = bytearray(msg)
    mutated[pos % len(mutated)] = value
    for port in (500, 4500):
        engine.receive_datagram(Datagram(endpoint(R_ADDR, port), endpoint(I_ADDR, port), bytes(mutated)), 0.0)
        engine.handle_timer(100.0)


def test_invalid_ke_public_value_gets_invalid_syntax_and_no_sa() -> None:
    p = pair(i_proposals="aes256gcm16-prfsha256-ecp256", r_proposals="aes256gcm16-prfsha256-ecp256")
    _, out = p.i.engine.initiate("office", 0.0)
    (req,) = out.datagrams
    msg = decode_message(req.payload)
    bad = [KeyExchange(ke.group, bytes(64)) if isinstance(ke, KeyExchange) else ke for ke in msg.payloads]
    forged = encode_message(msg.with_payloads(bad))
    resp = p.r.engine.receive_datagram(Datagram(req.remote, req.local, forged), 0.0)
    (answer,) = resp.datagrams
    notify = decode_message(answer.payload).notifies()[0]
    assert notify.notify_type.name == "INVALID_SYNTAX"
    assert p.r.engine.sas() == []


def test_a_bug_in_one_sa_closes_only_that_sa(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pair()
    p.initiate()
    p.run()
    assert p.r.of(IkeSaEstablished)

    def boom(self: object, sa: object, req: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(ike_auth.IkeAuthTask, "process_r", boom)
    q = pair()
    q.r.engine = p.r.engine  # the same responder, which already holds an established SA
    q.i.engine.ctx.rng = SeededRandom(5)
    q.initiate()
    q.run()
    closed = q.r.of(IkeSaClosed)
    assert closed and "internal error: RuntimeError: simulated bug" in closed[0].reason
    assert len(p.r.engine.sas()) == 1  # the first SA is untouched
