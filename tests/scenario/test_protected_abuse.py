"""Protected IKE messages that are forged, out of window, or hostile inside (RELIABILITY.md §5:
B5, E4, A6).

* B5 — a flood of IKE_AUTH messages with a bad ICV or random ciphertext on a half-open SA: each
  is dropped by the integrity check before any authentication work (the IKE_AUTH responder
  tasks never run: no signature check, no PSK check, no EAP), nothing is sent, and the half-open
  SA survives, so the real IKE_AUTH that follows still succeeds.
* E4 — message IDs (RFC 7296 §2.2, §2.3, window size 1): a request beyond the next expected ID,
  an old one, a response nobody asked for: dropped without an answer; near 2^32 the IKE SA is
  rekeyed, so IDs start again from 0 before they could wrap.
* A6 — hostile payloads inside a valid IKE_AUTH or INFORMATIONAL (traffic selectors with start
  after end, of unknown type or 1,000 of them, an ID that is junk DER, a CP with 1,000
  attributes, a Notify with a 255-octet SPI, a Delete listing 1,000 SPIs): a protected
  TS_UNACCEPTABLE / INVALID_SYNTAX answer or a clean drop, never an exception, and bounded
  memory.

The attacker of B5 has no keys; the one of E4 and A6 is the authenticated peer itself (its
messages are built with the initiator engine's own exchanger).
"""

from __future__ import annotations

import random
import tracemalloc
from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from pyipsec.iana.ikev2 import (
    CfgAttr,
    CfgType,
    ExchangeType,
    IdType,
    NotifyType,
    PayloadType,
    ProtocolId,
    TsType,
)
from pyipsec.ike.events import ChildSaInstalled, IkeSaClosed, IkeSaEstablished
from pyipsec.ike.exchanger import Exchanger
from pyipsec.ike.manager import MESSAGE_ID_REKEY
from pyipsec.ike.sa import IkeSa
from pyipsec.ike.state import IkeSaState
from pyipsec.ike.tasks import ike_auth
from pyipsec.net.addr import Datagram
from pyipsec.wire.message import Message, decode_message, encode_message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.cp import ConfigAttribute, Configuration
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload
from pyipsec.wire.payloads.ts import RawTrafficSelector, TrafficSelector, TrafficSelectors
from pyipsec.wire.payloads.unknown import UnknownPayload
from tests.scenario.test_handshake_psk import pair
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, endpoint

IKE_AUTH = ExchangeType.IKE_AUTH
INFORMATIONAL = ExchangeType.INFORMATIONAL


def _to_r(p: EnginePair, raw: bytes) -> tuple[Datagram, ...]:
    out = p.r.engine.receive_datagram(Datagram(endpoint(R_ADDR), endpoint(I_ADDR), raw), p.now)
    p.r.events.extend(out.events)
    return out.datagrams


def _exchangers(p: EnginePair) -> tuple[IkeSa, Exchanger, IkeSa, Exchanger]:
    (isa,) = p.i.engine.sas()
    (rsa,) = p.r.engine.sas()
    return isa, p.i.engine.tasks.exchanger(isa), rsa, p.r.engine.tasks.exchanger(rsa)


def _half_open() -> tuple[EnginePair, Datagram]:
    """IKE_SA_INIT done; the initiator's IKE_AUTH request taken off the link."""
    p = pair(i_fragmentation=False, r_fragmentation=False)  # big messages whole, for reading
    p.initiate()
    p.deliver()
    (auth,) = p.r.inbox
    p.r.inbox.clear()
    assert decode_message(auth.payload).exchange_type is IKE_AUTH
    return p, auth


def _answer(iex: Exchanger, out: tuple[Datagram, ...]) -> list[str]:
    """The payload names of the responder's protected answer, decrypted with the initiator's keys."""
    protect = iex._protectors()
    assert protect is not None
    (d,) = out
    inner = protect[1].unprotect(decode_message(d.payload))
    return [x.notify_type.name if isinstance(x, Notify) else type(x).__name__ for x in inner]


# -- B5: IKE_AUTH garbage flood ------------------------------------------------------------------


def _garbage(real: bytes, rng: random.Random) -> bytes:
    msg = decode_message(real)
    sk = msg.payloads[-1]
    assert isinstance(sk, EncryptedPayload)
    kind = rng.randrange(4)
    if kind == 0:  # one flipped bit anywhere after the header
        b = bytearray(real)
        b[rng.randrange(28, len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 1:  # random ciphertext of the same length
        return real[: len(real) - len(sk.data)] + rng.randbytes(len(sk.data))
    if kind == 2:  # random ciphertext of another length
        body = rng.randbytes(rng.randrange(0, 300))
        return encode_message(msg.with_payloads([EncryptedPayload(sk.inner_type, body)]))
    number = rng.randrange(1, 4)
    data = rng.randbytes(rng.randrange(0, 200))
    first = sk.inner_type if number == 1 else PayloadType.NO_NEXT_PAYLOAD
    fragment = EncryptedFragment(number, 3, first, data)
    return encode_message(msg.with_payloads([fragment]))  # an SKF with a bad ICV


def test_an_ike_auth_garbage_flood_costs_no_authentication_and_the_real_one_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p, auth = _half_open()
    calls = 0
    real_process_r = ike_auth.IkeAuthTask.process_r

    def counting(self: ike_auth.IkeAuthTask, sa: IkeSa, req: Message) -> None:
        nonlocal calls
        calls += 1
        real_process_r(self, sa, req)

    monkeypatch.setattr(ike_auth.IkeAuthTask, "process_r", counting)
    _, _, rsa, rex = _exchangers(p)
    rng = random.Random(7)
    n = 3000
    tracemalloc.start()
    try:
        for _ in range(n):
            assert _to_r(p, _garbage(auth.payload, rng)) == ()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert calls == 0  # no AUTH payload looked at: no signature or PSK check, no EAP started
    # every one counted: by the SA (bad ICV, wrong ID) or, with a flipped SPI, length or
    # flag bit, by the engine (malformed, unknown SPI)
    stats = p.r.engine.stats
    assert rex.dropped + stats.malformed + stats.unknown_spi == n and rex.next_in == 1
    assert rsa.state is IkeSaState.CONNECTING and p.r.events == []
    assert peak < 256 * 1024  # no unauthenticated fragment kept
    p.r.inbox.append(auth)  # now the real IKE_AUTH
    p.run()
    assert calls == 1
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished) and p.r.of(ChildSaInstalled)


# -- E4: the message-ID window -------------------------------------------------------------------


def _established() -> EnginePair:
    p = pair(i_fragmentation=False, r_fragmentation=False)  # big messages whole, for reading
    p.initiate()
    p.run()
    return p


def test_requests_outside_the_window_and_unknown_responses_are_dropped_unanswered() -> None:
    p = _established()
    isa, iex, rsa, rex = _exchangers(p)
    assert rex.next_in == 2
    for mid in (3, 4, 0x7FFFFFFF, 0):  # ahead of the next expected ID, or long gone
        (raw,) = iex.encode(INFORMATIONAL, mid, response=False, payloads=[])
        assert _to_r(p, raw) == ()
    # ID 1 was IKE_AUTH: an INFORMATIONAL with that ID is no retransmission of it
    (raw,) = iex.encode(INFORMATIONAL, 1, response=False, payloads=[])
    assert _to_r(p, raw) == ()
    assert rex.next_in == 2 and rex.dropped == 5
    # responses to requests the initiator never sent
    for mid in (0, 2, 9):
        (raw,) = rex.encode(INFORMATIONAL, mid, response=True, payloads=[])
        out = p.i.engine.receive_datagram(Datagram(endpoint(I_ADDR), endpoint(R_ADDR), raw), p.now)
        assert out.datagrams == () and out.events == ()
    assert iex.dropped == 3
    # the SA still works: a liveness check with ID 2
    p.i.check_liveness(isa.sa_id)
    p.run()
    assert rex.next_in == 3 and isa.state is rsa.state is IkeSaState.ESTABLISHED
    assert not p.i.of(IkeSaClosed) and not p.r.of(IkeSaClosed)


@pytest.mark.parametrize("side", ["ours", "peers"])
def test_message_ids_near_two_to_the_32_rekey_the_ike_sa(side: str) -> None:
    p = _established()
    isa, iex, rsa, rex = _exchangers(p)
    # the test hook: both ends of one direction jump to just below the rekey mark
    if side == "ours":
        iex.next_out = rex.next_in = MESSAGE_ID_REKEY - 1
    else:
        rex.next_out = iex.next_in = MESSAGE_ID_REKEY - 1
    (first, second) = (p.i, p.r) if side == "ours" else (p.r, p.i)
    sa = isa if side == "ours" else rsa
    first.check_liveness(sa.sa_id)
    p.run()
    # the next exchange would use an ID at the mark: the SA was rekeyed instead
    closed = [e for e in p.i.of(IkeSaClosed) + p.r.of(IkeSaClosed)]
    assert {e.cause.value for e in closed} == {"rekeyed"} and len(closed) == 2
    (new_i,) = p.i.engine.sas()
    (new_r,) = p.r.engine.sas()
    assert new_i.state is new_r.state is IkeSaState.ESTABLISHED
    assert p.i.engine.tasks.exchanger(new_i).next_out < 2 and p.r.engine.tasks.exchanger(new_r).next_in < 2
    assert new_i.children and new_r.children  # the Child SA moved to the new IKE SA
    del second


# -- A6: hostile payloads inside protected messages --------------------------------------------

_ONE = TrafficSelector.from_network("10.1.0.0/16")
_BACKWARDS = TrafficSelector(
    TsType.TS_IPV4_ADDR_RANGE, 0, 0, 65535, IPv4Address("10.1.255.255"), IPv4Address("10.1.0.0")
)


def _swap(inner: tuple[Payload, ...], ptype: PayloadType, *new: Payload) -> list[Payload]:
    kept = [x for x in inner if x.payload_type is not ptype]
    return [*kept, *new]


_AUTH_CASES: dict[str, tuple[object, set[str]]] = {
    "ts-start-after-end": (
        lambda inner: _swap(inner, PayloadType.TSi, TrafficSelectors(PayloadType.TSi, (_BACKWARDS,))),
        {"TS_UNACCEPTABLE"},
    ),
    "ts-unknown-type": (
        lambda inner: _swap(
            inner,
            PayloadType.TSi,
            TrafficSelectors(PayloadType.TSi, (RawTrafficSelector(TsType(99), bytes(12)),)),
        ),
        {"TS_UNACCEPTABLE"},
    ),
    "ts-1000": (
        lambda inner: _swap(inner, PayloadType.TSi, *[TrafficSelectors(PayloadType.TSi, (_ONE,) * 250)] * 4),
        {"INVALID_SYNTAX"},
    ),
    "id-junk-der": (
        lambda inner: _swap(
            inner,
            PayloadType.IDi,
            Identification(PayloadType.IDi, IdType.ID_DER_ASN1_DN, data=b"\x30\x82\xff\xff"),
        ),
        {"INVALID_SYNTAX", "AUTHENTICATION_FAILED"},
    ),
    "cp-1000": (
        lambda inner: [
            *inner,
            Configuration(CfgType.CFG_REQUEST, (ConfigAttribute(CfgAttr.INTERNAL_IP4_DNS),) * 1000),
        ],
        {"SecurityAssociation"},  # attributes we do not serve are ignored; the setup succeeds
    ),
    "notify-spi-255": (
        lambda inner: [*inner, Notify(ProtocolId.ESP, b"\x01" * 255, NotifyType(40000))],
        {"SecurityAssociation"},
    ),
}


@pytest.mark.parametrize("case", sorted(_AUTH_CASES))
def test_hostile_payloads_in_ike_auth_get_a_protected_answer(case: str) -> None:
    change, expected = _AUTH_CASES[case]
    p, auth = _half_open()
    _, iex, _, rex = _exchangers(p)
    protect = rex._protectors()
    assert protect is not None
    inner = protect[1].unprotect(decode_message(auth.payload))
    packets = iex.encode(IKE_AUTH, 1, response=False, payloads=change(inner))  # type: ignore[operator]
    tracemalloc.start()
    try:
        out = tuple(d for raw in packets for d in _to_r(p, raw))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    answer = _answer(iex, out)
    assert expected & set(answer)
    assert peak < 2 * 1024 * 1024
    installed = p.r.of(ChildSaInstalled)
    if "SecurityAssociation" not in expected:
        assert not installed  # no Child SA from the hostile selectors
    else:
        assert [str(t) for t in installed[0].spec.remote_ts] == ["10.1.0.0/16"]


@pytest.mark.parametrize(
    "payloads",
    [
        [Delete(ProtocolId.ESP, tuple(i.to_bytes(4, "big") for i in range(1, 1001)))],
        [Notify(ProtocolId.ESP, b"\x01" * 255, NotifyType(40000))],
        [Configuration(CfgType.CFG_REQUEST, (ConfigAttribute(CfgAttr.INTERNAL_IP4_DNS),) * 1000)],
    ],
    ids=["delete-1000-unknown-spis", "notify-spi-255", "cp-1000"],
)
def test_hostile_informational_requests_change_nothing(payloads: list[Payload]) -> None:
    p = _established()
    _, iex, rsa, rex = _exchangers(p)
    children = dict(rsa.children)
    (raw,) = iex.encode(INFORMATIONAL, rex.next_in, response=False, payloads=payloads)
    out = _to_r(p, raw)
    assert _answer(iex, out) == []  # an empty protected answer
    assert rsa.state is IkeSaState.ESTABLISHED and dict(rsa.children) == children


def test_a_delete_claiming_more_spis_than_it_holds_is_a_clean_drop() -> None:
    p = _established()
    isa, iex, rsa, rex = _exchangers(p)
    protect = iex._protectors()
    assert protect is not None
    # a Delete payload: ESP, SPI size 4, "65,535 SPIs" — in 8 octets of body
    body = bytes([ProtocolId.ESP, 4]) + (65535).to_bytes(2, "big") + b"\x00\x00\x00\x01"
    plaintext = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + body
    header = Message(
        isa.spi_i, isa.spi_r, exchange_type=INFORMATIONAL, message_id=2, is_initiator=True, is_response=False
    )
    sk = EncryptedPayload(PayloadType.D, b"")
    forged = protect[0]._seal(header, sk, plaintext, p.i.engine.ctx.rng)
    tracemalloc.start()
    try:
        assert _to_r(p, forged) == ()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert rex.dropped == 1 and rex.next_in == 2 and rsa.state is IkeSaState.ESTABLISHED


def test_a_retransmitted_fragmented_request_gets_one_copy_of_the_response() -> None:
    """Each retransmitted SKF fragment passes the ICV check, but only the first fragment makes
    the responder resend its cached response: n fragments in, one response out, not n."""
    p = pair()
    for side in (p.i, p.r):
        side.engine.reconfigure(replace(side.engine.config, fragment_size=120))
    p.initiate()
    p.run()
    assert p.r.of(IkeSaEstablished)
    request = [d for d in p.sent if d.payload[18] == 35 and str(d.remote.ip) == R_ADDR]
    response = [d for d in p.sent if d.payload[18] == 35 and str(d.remote.ip) == I_ADDR]
    assert len(request) > 2 and len(response) > 1
    again = [d for frag in request for d in _to_r(p, frag.payload)]
    assert [d.payload for d in again] == [d.payload for d in response]


# -- A3, protected: unknown critical payloads ----------------------------------------------------


def test_an_unknown_critical_payload_in_a_protected_request_is_answered() -> None:
    """RFC 7296 §2.5: rejected, and the response carries UNSUPPORTED_CRITICAL_PAYLOAD with the
    payload type; a non-critical one is ignored. The SA lives on (and answers a retransmission
    of the refused request from its cache)."""
    p = _established()
    _isa, iex, rsa, rex = _exchangers(p)
    (raw,) = iex.encode(
        INFORMATIONAL, 2, response=False, payloads=[UnknownPayload(PayloadType(200), True, body=b"x")]
    )
    out = _to_r(p, raw)
    assert _answer(iex, out) == ["UNSUPPORTED_CRITICAL_PAYLOAD"]
    protect = iex._protectors()
    assert protect is not None
    (notify,) = protect[1].unprotect(decode_message(out[0].payload))
    assert isinstance(notify, Notify) and notify.data == bytes([200])
    assert [d.payload for d in _to_r(p, raw)] == [d.payload for d in out]  # the cached answer
    (raw,) = iex.encode(
        INFORMATIONAL, 3, response=False, payloads=[UnknownPayload(PayloadType(200), False, body=b"x")]
    )
    assert _answer(iex, _to_r(p, raw)) == []
    assert rsa.state is IkeSaState.ESTABLISHED and rex.next_in == 4


def test_an_unknown_critical_payload_in_ike_auth_fails_the_setup_with_that_notify() -> None:
    p, auth = _half_open()
    _, iex, _rsa, rex = _exchangers(p)
    protect = rex._protectors()
    assert protect is not None
    inner = protect[1].unprotect(decode_message(auth.payload))
    (raw,) = iex.encode(
        IKE_AUTH, 1, response=False, payloads=[*inner, UnknownPayload(PayloadType(201), True, body=b"")]
    )
    assert _answer(iex, _to_r(p, raw)) == ["UNSUPPORTED_CRITICAL_PAYLOAD"]
    assert not p.r.of(IkeSaEstablished) and p.r.engine.sas() == []
    (closed,) = p.r.of(IkeSaClosed)
    assert "UNSUPPORTED_CRITICAL_PAYLOAD" in closed.reason


# -- F2: unauthenticated "hints" against an established SA -----------------------------------------


def test_unprotected_deletes_and_errors_tear_nothing_down() -> None:
    """RELIABILITY.md §5 F2 (engine part): unprotected INFORMATIONALs with the SA's own SPIs — a
    Delete of the IKE SA, INVALID_SPI, INVALID_IKE_SPI, AUTHENTICATION_FAILED, as requests and as
    responses, from the peer's address and from another — change nothing and get no answer."""
    p = _established()
    isa, _iex, rsa, rex = _exchangers(p)
    hints = [
        Delete(ProtocolId.IKE),
        Notify.of(NotifyType.INVALID_SPI, b"\x00\x00\x10\x00"),
        Notify.of(NotifyType.INVALID_IKE_SPI),
        Notify.of(NotifyType.AUTHENTICATION_FAILED),
    ]
    sent = 0
    for hint in hints:
        for mid in (rex.next_in, 0, 1):
            for src in (I_ADDR, "198.51.100.7"):
                for response in (False, True):
                    forged = Message(
                        rsa.spi_i,
                        rsa.spi_r,
                        exchange_type=INFORMATIONAL,
                        message_id=mid,
                        is_initiator=not response,
                        is_response=response,
                        payloads=(hint,),
                    )
                    out = p.r.engine.receive_datagram(
                        Datagram(endpoint(R_ADDR), endpoint(src), encode_message(forged)), p.now
                    )
                    to_i = Message(
                        isa.spi_i,
                        isa.spi_r,
                        exchange_type=INFORMATIONAL,
                        message_id=mid,
                        is_initiator=False,
                        is_response=response,
                        payloads=(hint,),
                    )
                    back = p.i.engine.receive_datagram(
                        Datagram(endpoint(I_ADDR), endpoint(src), encode_message(to_i)), p.now
                    )
                    assert out == back == ((), ())
                    sent += 2
    assert sent == 96
    assert isa.state is rsa.state is IkeSaState.ESTABLISHED
    assert len(isa.children) == len(rsa.children) == 1
    assert rsa.remote.ip == isa.local.ip  # no endpoint moved to the forger's address
    p.i.check_liveness(isa.sa_id)
    p.run()
    assert not p.i.of(IkeSaClosed) and not p.r.of(IkeSaClosed)


# -- E1: the retransmission schedule -----------------------------------------------------------


@pytest.mark.parametrize("exchange", ["IKE_SA_INIT", "INFORMATIONAL"])
def test_unanswered_requests_are_resent_byte_identical_on_schedule_then_given_up(exchange: str) -> None:
    """RFC 7296 §2.1 with strongSwan's schedule (4 s × 1.8^n, 5 retransmissions): each resend is
    the same bytes, at the policy's times on the virtual clock, then the SA closes once, and the
    responder never retransmits by itself."""
    if exchange == "IKE_SA_INIT":
        p = pair()
        p.initiate()
        (isa,) = p.i.engine.sas()
    else:
        p = _established()
        isa, _, _, _ = _exchangers(p)
        p.i.check_liveness(isa.sa_id)
    policy = p.i.engine.config.retransmit
    sends: list[tuple[float, bytes]] = [(p.now, d.payload) for d in p.r.inbox]
    p.r.inbox.clear()
    r_out = 0
    while p.i.engine.sas():
        deadline = p.i.engine.next_deadline()
        assert deadline is not None
        p.now = deadline
        out = p.i.engine.handle_timer(p.now)
        p.i.events.extend(out.events)
        sends += [(p.now, d.payload) for d in out.datagrams]
        r_out += len(p.r.engine.handle_timer(p.now).datagrams)
    assert len(sends) == policy.tries + 1
    assert len({payload for _, payload in sends}) == 1  # byte-identical
    start = sends[0][0]
    expected = [start + sum(policy.interval(k) for k in range(n)) for n in range(policy.tries + 1)]
    assert [t for t, _ in sends] == pytest.approx(expected, rel=0.1)
    (closed,) = p.i.of(IkeSaClosed)
    assert closed.cause.value == "timeout" and str(policy.tries) in closed.reason
    assert r_out == 0
