"""Unauthenticated input at the engine's door (RELIABILITY.md §5: A1-A5, A7, B3, B7, E5, E6).

Every message here is one an attacker can send without keys: a lying IKE header or payload
length, an abused payload chain, a bad KE payload, a message out of state, a COOKIE that is
not bound to the request, IKE messages for SPIs nobody has, and forged error answers to our
own IKE_SA_INIT. The pass criterion is the plan's "clean drop" — the matching counter up by
exactly one, no reply, no state — or the one stateless answer RFC 7296 allows, never larger
than what came in (no amplification). Forged errors must not end a setup: the initiator keeps
waiting for a valid response (§2.21.1). All on the virtual clock of ``EnginePair``.
"""

from __future__ import annotations

import struct
import tracemalloc
from dataclasses import replace

import pytest

from pyipsec.iana.ikev2 import ExchangeType, IdType, NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import EncrId, IntegId, KeId, PrfId, TransformType
from pyipsec.ike.events import IkeSaClosed, IkeSaEstablished
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.ike.state import IkeSaState
from pyipsec.net.addr import Datagram
from pyipsec.wire.message import Message, decode_message, encode_message
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import Proposal, SecurityAssociation, Transform
from pyipsec.wire.payloads.unknown import UnknownPayload
from pyipsec.wire.payloads.vendor import VendorId
from tests.scenario.test_handshake_psk import pair
from tests.scenario.test_hostile import MESSAGES
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, endpoint

ZERO = bytes(8)
IKE_SA_INIT = ExchangeType.IKE_SA_INIT


def _first_request(p: EnginePair) -> Datagram:
    """The initiator's IKE_SA_INIT request, taken off the link (not delivered)."""
    p.initiate()
    (d,) = p.r.inbox
    p.r.inbox.clear()
    return d


def _to_r(p: EnginePair, payload: bytes, *, src: str = I_ADDR, port: int = 500) -> tuple[Datagram, ...]:
    """Hand ``payload`` to the responder as if sent from ``src``; what it sends back."""
    out = p.r.engine.receive_datagram(Datagram(endpoint(R_ADDR, port), endpoint(src, port), payload), p.now)
    p.r.events.extend(out.events)
    return out.datagrams


def _to_i(p: EnginePair, payload: bytes) -> tuple[Datagram, ...]:
    out = p.i.engine.receive_datagram(Datagram(endpoint(I_ADDR), endpoint(R_ADDR), payload), p.now)
    p.i.events.extend(out.events)
    return out.datagrams


def _stats(p: EnginePair) -> tuple[int, int]:
    return p.r.engine.stats.malformed, p.r.engine.stats.unknown_spi


# -- A2: length-field lies ---------------------------------------------------------------------


def _lie(raw: bytes, *, at: int, fmt: str, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into(fmt, b, at, value)
    return bytes(b)


def _length_lies(raw: bytes) -> list[bytes]:
    first = 28  # the first payload's generic header: next(1) critical(1) length(2)
    return [
        *(_lie(raw, at=24, fmt="!I", value=v) for v in (0, 27, len(raw) + 1, 0xFFFFFFFF)),
        *(_lie(raw, at=first + 2, fmt="!H", value=v) for v in (0, 1, 2, 3, len(raw), 0xFFFF)),
        raw[:40],  # a payload that claims more than the datagram holds
    ]


@pytest.mark.parametrize("case", range(11))
def test_length_lies_are_clean_drops_with_bounded_allocation(case: int) -> None:
    p = pair()
    raw = _first_request(p).payload
    lie = _length_lies(raw)[case]
    tracemalloc.start()
    try:
        out = _to_r(p, lie)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out == ()
    assert _stats(p) == (1, 0)
    assert p.r.engine.sas() == []
    # nothing sized by the claimed lengths (0xFFFF, 0xFFFFFFFF) is ever allocated
    assert peak < 64 * 1024


def _chain(raw: bytes) -> list[tuple[int, int, int]]:
    """(payload type, offset, length) of each outer payload of a plain message."""
    out, ptype, at = [], raw[16], 28
    while ptype != 0:
        length = struct.unpack_from("!H", raw, at + 2)[0]
        out.append((ptype, at, length))
        ptype, at = raw[at], at + length
    return out


def test_inner_lengths_inconsistent_with_the_payload_are_clean_drops() -> None:
    p = pair()
    raw = _first_request(p).payload
    chain = _chain(raw)
    sa_at = next(at for t, at, _ in chain if t == PayloadType.SA)
    ke_at = next(at for t, at, _ in chain if t == PayloadType.KE)
    n_at = next(at for t, at, _ in chain if t == PayloadType.N)
    cases = [
        _lie(raw, at=sa_at + 6, fmt="!H", value=7),  # proposal shorter than its own header
        _lie(raw, at=sa_at + 6, fmt="!H", value=0xFFFF),  # proposal longer than the SA payload
        _lie(raw, at=ke_at + 2, fmt="!H", value=6),  # KE payload without room for its group
        _lie(raw, at=n_at + 5, fmt="!B", value=255),  # Notify SPI size beyond the payload
    ]
    for lie in cases:
        before = _stats(p)
        assert _to_r(p, lie) == ()
        assert _stats(p) == (before[0] + 1, before[1])
    assert p.r.engine.sas() == []


# -- A3: payload-chain abuse -------------------------------------------------------------------


def _with(msg: Message, *extra: object, first: bool = False) -> bytes:
    payloads = [*extra, *msg.payloads] if first else [*msg.payloads, *extra]
    return encode_message(msg.with_payloads(payloads))  # type: ignore[arg-type]


def _answer_types(out: tuple[Datagram, ...]) -> list[str]:
    (d,) = out
    answer = decode_message(d.payload)
    assert answer.is_response and answer.exchange_type is IKE_SA_INIT
    return [type(x).__name__ if not isinstance(x, Notify) else x.notify_type.name for x in answer.payloads]


def test_a_thousand_tiny_payloads_are_a_clean_drop() -> None:
    p = pair()
    msg = decode_message(_first_request(p).payload)
    assert _to_r(p, _with(msg, *[UnknownPayload(PayloadType(200), False, body=b"")] * 1000)) == ()
    assert _stats(p) == (1, 0) and p.r.engine.sas() == []
    # 64 payloads in all is still a message (the cap, not a ban on unknown payloads)
    room = 64 - len(msg.payloads)
    assert "SecurityAssociation" in _answer_types(
        _to_r(p, _with(msg, *[UnknownPayload(PayloadType(200), False, body=b"")] * room))
    )


@pytest.mark.parametrize("ptype", [1, 5, 13, 200])  # IKEv1 numbers are just unknown in IKEv2
def test_unknown_payloads_are_ignored_unless_critical(ptype: int) -> None:
    p = pair()
    msg = decode_message(_first_request(p).payload)
    answer = _answer_types(_to_r(p, _with(msg, UnknownPayload(PayloadType(ptype), False, body=b"x"))))
    assert answer[:3] == ["SecurityAssociation", "KeyExchange", "Nonce"]
    q = pair()
    # critical: the message is refused, and no state is kept for it (RFC 7296 §2.5)
    assert _to_r(q, _with(msg, UnknownPayload(PayloadType(ptype), True, body=b"x"))) == ()
    assert _stats(q) == (1, 0) and q.r.engine.sas() == []


def _misplaced(msg: Message) -> list[bytes]:
    sa, ke, nonce = (msg.find(t) for t in (SecurityAssociation, KeyExchange, Nonce))
    return [
        _with(msg, sa),  # two SA payloads
        _with(msg, ke),  # two KE payloads
        _with(msg, nonce),  # two nonces
        _with(msg, Delete(ProtocolId.IKE)),  # a Delete has no place in IKE_SA_INIT
        _with(msg, Identification(PayloadType.IDi, IdType.ID_FQDN, data=b"moon.test")),
    ]


@pytest.mark.parametrize("case", range(5))
def test_repeated_or_misplaced_payloads_get_invalid_syntax_and_no_state(case: int) -> None:
    p = pair()
    msg = decode_message(_first_request(p).payload)
    bad = _misplaced(msg)[case]
    out = _to_r(p, bad)
    assert _answer_types(out) == ["INVALID_SYNTAX"]
    assert len(out[0].payload) <= len(bad)
    assert p.r.engine.sas() == []


# -- A5: KE abuse --------------------------------------------------------------------------------

_P25519 = 2**255 - 19
_X25519_BAD = [
    b"",
    bytes(31),
    bytes(33),
    bytes(32),  # u = 0
    (1).to_bytes(32, "little"),  # u = 1
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),  # order 8
    (_P25519 - 1).to_bytes(32, "little"),  # order 2
    _P25519.to_bytes(32, "little"),  # p ≡ 0
    (_P25519 + 1).to_bytes(32, "little"),  # p + 1 ≡ 1
]


def _replace_ke(msg: Message, ke: KeyExchange) -> bytes:
    return encode_message(msg.with_payloads([ke if isinstance(x, KeyExchange) else x for x in msg.payloads]))


@pytest.mark.parametrize("value", _X25519_BAD, ids=lambda v: v.hex()[:12] or "empty")
def test_bad_x25519_values_get_invalid_syntax_and_no_state(value: bytes) -> None:
    p = pair()
    msg = decode_message(_first_request(p).payload)
    bad = _replace_ke(msg, KeyExchange(KeId.CURVE25519, value))
    out = _to_r(p, bad)
    assert _answer_types(out) == ["INVALID_SYNTAX"]
    assert len(out[0].payload) <= len(bad)
    assert p.r.engine.sas() == [] and not p.r.of(IkeSaEstablished)


@pytest.mark.parametrize(
    "value", [bytes(63), (1).to_bytes(32, "big") * 2, b"\xff" * 64], ids=["short", "(1,1)", "beyond-p"]
)
def test_p256_points_off_the_curve_get_invalid_syntax_and_no_state(value: bytes) -> None:
    p = pair(i_proposals="aes256gcm16-prfsha256-ecp256", r_proposals="aes256gcm16-prfsha256-ecp256")
    msg = decode_message(_first_request(p).payload)
    out = _to_r(p, _replace_ke(msg, KeyExchange(KeId.ECP_256, value)))
    assert _answer_types(out) == ["INVALID_SYNTAX"]
    assert p.r.engine.sas() == []


def test_a_ke_payload_for_a_group_nobody_proposed_gets_invalid_ke_and_no_state() -> None:
    p = pair()  # both sides: x25519 only
    msg = decode_message(_first_request(p).payload)
    bad = _replace_ke(msg, KeyExchange(KeId.ECP_384, bytes(96)))
    out = _to_r(p, bad)
    assert _answer_types(out) == ["INVALID_KE_PAYLOAD"]
    assert decode_message(out[0].payload).notifies()[0].wanted_group() is KeId.CURVE25519
    assert len(out[0].payload) <= len(bad)
    assert p.r.engine.sas() == []


# -- A7: out-of-state messages -------------------------------------------------------------------


def test_ike_sa_init_with_the_response_flag_or_a_zero_spi_creates_nothing() -> None:
    p = pair()
    msg = decode_message(_first_request(p).payload)
    for bad in (
        replace(msg, is_response=True),  # a "response" nobody asked for
        replace(msg, spi_i=ZERO),  # SPIi MUST NOT be zero (RFC 7296 §3.1)
    ):
        before = _stats(p)
        assert _to_r(p, encode_message(bad)) == ()
        assert _stats(p) == (before[0] + 1, before[1])
    assert p.r.engine.sas() == [] and p.r.events == []
    p.run()  # the real request, retransmitted, still gets through
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)


def test_first_messages_with_the_wrong_spis_or_flags_are_unknown_spi_drops() -> None:
    p = pair()
    msg = decode_message(_first_request(p).payload)
    cases = [
        replace(msg, spi_r=b"\x01" * 8),  # SPIr ≠ 0 in a first IKE_SA_INIT
        replace(msg, is_initiator=False),  # the wrong I flag
        replace(msg, exchange_type=ExchangeType.IKE_AUTH, spi_r=b"\x02" * 8, message_id=1),  # no INIT before
    ]
    for n, bad in enumerate(cases, 1):
        assert _to_r(p, encode_message(bad)) == ()
        assert _stats(p) == (0, n)
    assert p.r.engine.sas() == []


def test_a_second_ike_sa_init_on_an_established_spi_pair_changes_nothing() -> None:
    p = pair()
    p.initiate()
    p.run()
    (sa,) = p.r.engine.sas()
    init_request = p.sent[0].payload  # (the SA keeps no IKE_SA_INIT messages once established)
    first = decode_message(init_request)
    assert first.exchange_type is ExchangeType.IKE_SA_INIT and first.spi_i == sa.spi_i
    for mid in (0, 1, 2, 3):  # the peer's next request would be 2
        again = replace(first, spi_r=sa.spi_r, message_id=mid)
        assert _to_r(p, encode_message(again)) == ()
    assert sa.state is IkeSaState.ESTABLISHED
    # and the SA still works: a liveness check goes through, with message ID 2
    (isa,) = p.i.engine.sas()
    p.i.check_liveness(isa.sa_id)
    p.run()
    assert sa.state is IkeSaState.ESTABLISHED and not p.i.of(IkeSaClosed) and not p.r.of(IkeSaClosed)
    assert p.r.engine.tasks.exchanger(sa).next_in == 3


# -- B3: cookie correctness ----------------------------------------------------------------------


def _cookie_pair() -> tuple[EnginePair, Message, bytes]:
    """A responder in cookie mode, the initiator's request, and the cookie it was given."""
    p = pair(responder_settings={"cookie_threshold": 0})
    msg = decode_message(_first_request(p).payload)
    (challenge,) = _to_r(p, encode_message(msg))
    (notify,) = decode_message(challenge.payload).payloads
    assert isinstance(notify, Notify) and notify.notify_type is NotifyType.COOKIE
    assert len(challenge.payload) <= len(msg.raw)
    return p, msg, notify.cookie_data()


def _is_challenge(out: tuple[Datagram, ...]) -> bool:
    return _answer_types(out) == ["COOKIE"]


def test_the_cookie_bound_to_the_request_is_accepted() -> None:
    p, msg, cookie = _cookie_pair()
    assert "SecurityAssociation" in _answer_types(_to_r(p, _with(msg, Notify.cookie(cookie), first=True)))
    assert len(p.r.engine.sas()) == 1


def test_cookies_not_bound_to_the_request_get_a_new_challenge_and_no_state() -> None:
    p, msg, cookie = _cookie_pair()
    mangled = bytes([cookie[0]]) + cookie[1:-1] + bytes([cookie[-1] ^ 1])
    nonce = Nonce(b"\x07" * 32)
    other_nonce = msg.with_payloads([nonce if isinstance(x, Nonce) else x for x in msg.payloads])
    cases = [
        (_with(msg, Notify.cookie(mangled), first=True), I_ADDR),
        (_with(replace(msg, spi_i=b"\x09" * 8), Notify.cookie(cookie), first=True), I_ADDR),  # other SPIi
        (_with(other_nonce, Notify.cookie(cookie), first=True), I_ADDR),  # other Ni
        (_with(msg, Notify.cookie(cookie), first=True), "192.0.2.99"),  # from another address
        (_with(msg, Notify.cookie(cookie)), I_ADDR),  # not the first payload
        (_with(msg, Notify.cookie(cookie[:1]), first=True), I_ADDR),  # one octet
        (_with(msg, Notify.cookie(cookie + bytes(43)), first=True), I_ADDR),  # 64 octets
        (_with(msg, Notify(ProtocolId.NONE, b"", NotifyType.COOKIE, b""), first=True), I_ADDR),  # empty
        (_with(msg, Notify(ProtocolId.NONE, b"", NotifyType.COOKIE, cookie * 4), first=True), I_ADDR),  # 84
    ]
    for bad, src in cases:
        assert _is_challenge(_to_r(p, bad, src=src))
    assert p.r.engine.sas() == []


def test_a_cookie_expires_after_ten_seconds() -> None:
    p, msg, cookie = _cookie_pair()
    p.now = 11.0
    assert _is_challenge(_to_r(p, _with(msg, Notify.cookie(cookie), first=True)))
    assert p.r.engine.sas() == []
    p.now = 10.0  # (the clock of this test may go back; the engine's does not)
    assert "SecurityAssociation" in _answer_types(_to_r(p, _with(msg, Notify.cookie(cookie), first=True)))


def test_a_cookie_survives_one_secret_rotation_but_not_two() -> None:
    p, msg, _ = _cookie_pair()
    p.now = 115.0
    (challenge,) = _to_r(p, encode_message(msg))
    cookie = decode_message(challenge.payload).notifies()[0].cookie_data()
    p.now = 120.0
    p.r.timer()  # the secret rotates
    p.now = 121.0
    assert "SecurityAssociation" in _answer_types(_to_r(p, _with(msg, Notify.cookie(cookie), first=True)))
    q, msg, _ = _cookie_pair()
    q.now = 119.0
    (challenge,) = _to_r(q, encode_message(msg))
    cookie = decode_message(challenge.payload).notifies()[0].cookie_data()
    for t in (120.0, 240.0):  # two rotations, the cookie still young enough by the clock alone
        q.now = t
        q.r.timer()
    q.now = 119.0  # (back in time: only the secrets decide here, not the cookie's age)
    assert _is_challenge(_to_r(q, _with(msg, Notify.cookie(cookie), first=True)))
    assert q.r.engine.sas() == []


def test_invalid_ke_in_cookie_mode_takes_three_round_trips_and_no_state_until_the_last() -> None:
    p = pair(
        i_proposals="aes256gcm16-prfsha256-x25519-ecp256",
        r_proposals="aes256gcm16-prfsha256-ecp256",
        responder_settings={"cookie_threshold": 0},
    )
    p.initiate()
    answers: list[list[str]] = []
    while not p.i.of(IkeSaEstablished) and len(answers) < 5:
        (req,) = p.r.inbox
        p.r.inbox.clear()
        seen = Datagram(local=req.remote, remote=req.local, payload=req.payload)
        out = p.r.engine.receive_datagram(seen, p.now)
        p.r.events.extend(out.events)
        init = [d for d in out.datagrams if decode_message(d.payload).exchange_type is IKE_SA_INIT]
        answers.append(_answer_types(tuple(init)))
        if "SecurityAssociation" not in answers[-1]:
            assert p.r.engine.sas() == []  # the server keeps nothing until the final request
        p.emit(p.r, out)
        p.i.inbox, inbox = [], p.i.inbox
        for d in inbox:
            p.emit(p.i, p.i.engine.receive_datagram(Datagram(d.remote, d.local, d.payload), p.now))
        if "SecurityAssociation" in answers[-1]:
            p.run()
    assert answers[0] == ["COOKIE"] and answers[1] == ["INVALID_KE_PAYLOAD"]
    assert answers[2][:3] == ["SecurityAssociation", "KeyExchange", "Nonce"] and len(answers) == 3
    (ei,) = p.i.of(IkeSaEstablished)
    assert format_chosen(ei.proposal).endswith("ecp256")


# -- B7: unknown SPIs and amplification --------------------------------------------------------


def test_messages_for_unknown_ike_spis_are_counted_and_never_answered() -> None:
    p = pair()
    p.initiate()
    p.run()
    (sa,) = p.r.engine.sas()
    out_bytes = in_bytes = 0
    exchanges = [ExchangeType.IKE_AUTH, ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL]
    for n in range(2000):
        p.now = 100.0 + n * 0.03  # 2,000 messages over 60 s
        spi = n.to_bytes(8, "big") if n else b"\xff" * 8
        response = n % 2 == 1
        msg = Message(
            spi if not response else spi[::-1],
            spi[::-1] if not response else spi,
            exchange_type=exchanges[n % 3],
            message_id=n % 7,
            is_initiator=not response,
            is_response=response,
            payloads=(VendorId(bytes(n % 50)),),
        )
        raw = encode_message(msg)
        in_bytes += len(raw)
        out_bytes += sum(len(d.payload) for d in _to_r(p, raw, port=4500 if n % 2 else 500))
        out_bytes += sum(len(d.payload) for d in p.r.engine.handle_timer(p.now).datagrams)
    # no INVALID_IKE_SPI at all (we never send one), so neither a reply to a response
    assert out_bytes == 0 < in_bytes
    assert _stats(p) == (0, 2000)
    assert p.r.engine.sas() == [sa] and sa.state is IkeSaState.ESTABLISHED


def test_unauthenticated_answers_are_never_larger_than_the_request() -> None:
    p = pair()
    msg = decode_message(_first_request(p).payload)
    tiny = [
        encode_message(msg.with_payloads([VendorId(b"")])),  # no SA, KE or Nonce: INVALID_SYNTAX
        encode_message(msg.with_payloads([Nonce(bytes(16))])),
        encode_message(msg.with_payloads([msg.find(SecurityAssociation)])),  # type: ignore[list-item]
    ]
    q = pair(responder_settings={"cookie_threshold": 0})
    for raw in tiny:
        for side in (p, q):
            out = _to_r(side, raw)
            assert sum(len(d.payload) for d in out) <= len(raw)
    assert p.r.engine.sas() == [] and q.r.engine.sas() == []


# -- E5, E6: forged answers to our IKE_SA_INIT ---------------------------------------------------


def _forged_answer(request: Datagram, *payloads: object) -> bytes:
    req = decode_message(request.payload)
    forged = Message(
        req.spi_i,
        ZERO,
        exchange_type=IKE_SA_INIT,
        message_id=0,
        is_initiator=False,
        is_response=True,
        payloads=payloads,  # type: ignore[arg-type]
    )
    return encode_message(forged)


def _race(p: EnginePair, *payloads: object, times: int = 1) -> None:
    """An attacker answers each of the first ``times`` IKE_SA_INIT requests before the
    responder does (and the responder's answer to all but the last of them is lost)."""
    raced = 0
    while not p.i.of(IkeSaEstablished) and not p.i.of(IkeSaClosed) and raced < times:
        inits = [d for d in p.r.inbox if decode_message(d.payload).exchange_type is IKE_SA_INIT]
        if not inits:
            p.now = p.i.engine.next_deadline() or p.now
            p.i.timer()
            continue
        raced += 1
        assert _to_i(p, _forged_answer(inits[0], *payloads)) == ()  # nothing sent in reaction
        assert p.i.of(IkeSaClosed) == []
        if raced < times:
            p.r.inbox.clear()  # lost
    p.run()


@pytest.mark.parametrize(
    "notify",
    [
        NotifyType.NO_PROPOSAL_CHOSEN,
        NotifyType.INVALID_SYNTAX,
        NotifyType.AUTHENTICATION_FAILED,
        NotifyType.TEMPORARY_FAILURE,
        NotifyType(8191),  # an error type nobody registered
    ],
    ids=lambda n: n.name if hasattr(n, "name") else str(n),
)
@pytest.mark.parametrize("times", [1, 2])
def test_forged_error_answers_do_not_stop_the_setup(notify: NotifyType, times: int) -> None:
    p = pair()
    p.initiate()
    _race(p, Notify.of(notify), times=times)
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    assert not p.i.of(IkeSaClosed)


def test_a_forged_downgrade_invalid_ke_is_ignored_and_x25519_is_used() -> None:
    both = "aes256gcm16-prfsha256-x25519-ecp256"
    p = pair(i_proposals=both, r_proposals=both)
    p.initiate()
    _race(p, Notify.invalid_ke(KeId.MODP_1024))  # a group the client did not offer
    (ei,) = p.i.of(IkeSaEstablished)
    assert format_chosen(ei.proposal).endswith("x25519")
    sent = [decode_message(d.payload) for d in p.sent if str(d.remote.ip) == R_ADDR]
    groups = {ke.group for m in sent if m.exchange_type is IKE_SA_INIT for ke in m.find_all(KeyExchange)}
    assert groups == {KeId.CURVE25519}  # never retried with the forged group


def test_an_unanswered_setup_fails_naming_the_unauthenticated_error() -> None:
    p = pair(link=None)
    p.initiate()
    p.r.inbox.clear()
    (req,) = [d for d in p.sent if str(d.remote.ip) == R_ADDR]
    assert _to_i(p, _forged_answer(req, Notify.of(NotifyType.NO_PROPOSAL_CHOSEN))) == ()
    p.link.drop_if = lambda d: str(d.remote.ip) == R_ADDR  # the responder never hears us
    p.run()
    (closed,) = p.i.of(IkeSaClosed)
    assert "NO_PROPOSAL_CHOSEN" in closed.reason and "unauthenticated" in closed.reason
    assert p.i.engine.sas() == []


# -- A1: truncation sweep through a live engine ---------------------------------------------------


def test_every_prefix_of_every_captured_message_is_a_counted_drop() -> None:
    """Each prefix (0 … L−1 octets) of each IKE message strongSwan sent in tests/captures —
    IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL, both directions — through one
    responder: nothing answered, no state, each datagram counted exactly once."""
    p = pair()
    sent = 0
    for msg in MESSAGES:
        for n in range(len(msg)):
            assert _to_r(p, msg[:n]) == ()
            sent += 1
    assert sum(_stats(p)) == sent > 3000
    assert p.r.engine.sas() == [] and p.r.events == []


# -- A4: proposal/transform matrix -----------------------------------------------------------------

_T = TransformType


def _t(ttype: TransformType, tid: int, key_length: int | None = None) -> Transform:
    return Transform(ttype, tid, key_length=key_length)


_ENCR, _PRF, _INTEG = (_T.ENCR, EncrId.ENCR_AES_CBC), (_T.PRF, PrfId.PRF_HMAC_SHA2_256), _T.INTEG
_BROKEN_PROPOSALS = {
    "no-encr": [_t(*_PRF), _t(_INTEG, IntegId.AUTH_HMAC_SHA2_256_128), _t(_T.KE, KeId.CURVE25519)],
    "no-prf": [_t(*_ENCR, 256), _t(_INTEG, IntegId.AUTH_HMAC_SHA2_256_128), _t(_T.KE, KeId.CURVE25519)],
    "no-integ": [_t(*_ENCR, 256), _t(*_PRF), _t(_T.KE, KeId.CURVE25519)],
    "no-ke": [_t(*_ENCR, 256), _t(*_PRF), _t(_INTEG, IntegId.AUTH_HMAC_SHA2_256_128)],
    "unknown-ids": [_t(_T.ENCR, 1000), _t(_T.PRF, 1000), _t(_INTEG, 1000), _t(_T.KE, 1000)],
    "aes-no-key-length": [_t(*_ENCR), _t(*_PRF), _t(_INTEG, 12), _t(_T.KE, KeId.CURVE25519)],
    "aes-key-length-0": [_t(*_ENCR, 0), _t(*_PRF), _t(_INTEG, 12), _t(_T.KE, KeId.CURVE25519)],
    "aes-key-length-7": [_t(*_ENCR, 7), _t(*_PRF), _t(_INTEG, 12), _t(_T.KE, KeId.CURVE25519)],
    "aes-key-length-65535": [_t(*_ENCR, 65535), _t(*_PRF), _t(_INTEG, 12), _t(_T.KE, KeId.CURVE25519)],
    "gcm-plus-integ": [
        _t(_T.ENCR, EncrId.ENCR_AES_GCM_16, 256),
        _t(*_PRF),
        _t(_INTEG, IntegId.AUTH_HMAC_SHA2_256_128),
        _t(_T.KE, KeId.CURVE25519),
    ],
}


@pytest.mark.parametrize("case", sorted(_BROKEN_PROPOSALS))
def test_incomplete_or_absurd_proposals_get_no_proposal_chosen_and_no_state(case: str) -> None:
    p = pair(r_proposals="aes256-sha256-x25519,aes256gcm16-prfsha256-x25519")
    msg = decode_message(_first_request(p).payload)
    offer = SecurityAssociation((Proposal(1, ProtocolId.IKE, transforms=tuple(_BROKEN_PROPOSALS[case])),))
    bad = encode_message(
        msg.with_payloads([offer if isinstance(x, SecurityAssociation) else x for x in msg.payloads])
    )
    out = _to_r(p, bad)
    assert _answer_types(out) == ["NO_PROPOSAL_CHOSEN"]
    assert len(out[0].payload) <= len(bad)
    assert p.r.engine.sas() == []


def test_a_huge_offer_is_handled_and_only_an_offered_proposal_is_chosen() -> None:
    """200 proposals of 40 transforms (≈ 64 KB), all unusable but the last: the responder picks
    exactly that one, with the number the initiator gave it."""
    p = pair()
    msg = decode_message(_first_request(p).payload)
    junk = tuple(_t(_T.ENCR, 1000 + n) for n in range(40))
    good = msg.find(SecurityAssociation)
    assert good is not None
    real = good.proposals[0]
    proposals = [Proposal(n, ProtocolId.IKE, transforms=junk) for n in range(1, 200)]
    proposals.append(Proposal(200, ProtocolId.IKE, transforms=real.transforms))
    big = msg.with_payloads(
        [
            SecurityAssociation(tuple(proposals)) if isinstance(x, SecurityAssociation) else x
            for x in msg.payloads
        ]
    )
    (answer,) = _to_r(p, encode_message(big))
    chosen = decode_message(answer.payload).find(SecurityAssociation)
    assert chosen is not None and len(chosen.proposals) == 1
    assert chosen.proposals[0].number == 200
    assert set(chosen.proposals[0].transforms) <= set(real.transforms)
