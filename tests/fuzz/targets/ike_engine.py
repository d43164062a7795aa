"""Z1/Z2 in depth: fuzzed messages through the whole IKE engine (``IkeEngine.receive_datagram``)
to the tasks, with two PSK engines linked in memory (``tests.support.engines``; seeded, so
every run is the same).

Input ``mode | ...`` (modes 0-2 attack the responder, 3-4 the initiator):

- mode 0, *IKE_SA_INIT request*: ``first payload type | payload chain`` behind a valid header,
  to the responder (no keys needed: what any spoofed packet can reach);
- mode 1, *IKE_AUTH request*: the pair runs IKE_SA_INIT; then ``first payload type |
  plaintext`` is sealed with the initiator's real SK_ei/SK_ai into the IKE_AUTH request
  (message 1) instead of the honest one: what anyone who completes IKE_SA_INIT can send
  before authenticating;
- mode 2, *established*: the pair establishes an IKE SA; then ``direction | exchange type |
  first payload type | plaintext`` is sealed by one side as its next request to the other;
- mode 3, *IKE_SA_INIT response*: ``first payload type | payload chain`` as the answer to the
  initiator's IKE_SA_INIT request (what anyone on the path can send);
- mode 4, *IKE_AUTH response*: the responder processes the honest IKE_AUTH request; then
  ``first payload type | plaintext`` is sealed with the responder's keys as its response (what
  a rogue gateway can send).

After the message, the link delivers whatever follows until it is quiet.

Contract: nothing raises out of the engine; no IKE SA closes with ``INTERNAL_ERROR`` (the
engine's catch-all for a bug in a task); every datagram either engine sends decodes.
"""

from __future__ import annotations

from collections.abc import Callable

from pyipsec.iana.ikev2 import ExchangeType, HeaderFlag, PayloadType
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.events import CloseCause, IkeSaClosed
from pyipsec.ike.sa import IkeSa
from pyipsec.net.addr import Datagram
from pyipsec.wire.header import IkeHeader
from pyipsec.wire.message import Message, decode_message, encode_payload_chain
from tests.fuzz.targets._input import FuzzInput
from tests.fuzz.targets._sk import Suite
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, Side, endpoint, psk_connection

MAX_PLAINTEXT = 60000  # (an IKE message's length is 16 bits)
MAX_DELIVERIES = 64
_SPI_I = bytes.fromhex("a1a2a3a4a5a6a7a8")
_SPI_R = bytes.fromhex("b1b2b3b4b5b6b7b8")


def new_pair() -> EnginePair:
    i = psk_connection("c", local_id="i.test", remote_id="r.test", local_addr=I_ADDR, remote_addr=R_ADDR)
    r = psk_connection(
        "c",
        local_id="r.test",
        remote_id="i.test",
        local_addr=R_ADDR,
        remote_addr=I_ADDR,
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
    )
    return EnginePair(i, [r])


def _receive(side: Side, d: Datagram) -> None:
    """``d`` as sent by the other side, received by ``side``."""
    side.pair.emit(side, side.engine.receive_datagram(Datagram(d.remote, d.local, d.payload), side.pair.now))


def _settle(p: EnginePair) -> None:
    for _ in range(MAX_DELIVERIES):
        if not p.deliver():
            return


def _check(p: EnginePair) -> None:
    for side in (p.i, p.r):
        for e in side.of(IkeSaClosed):
            assert isinstance(e, IkeSaClosed)
            assert e.cause is not CloseCause.INTERNAL_ERROR, f"internal error: {e.reason}"
    for d in p.sent:
        decode_message(d.payload)


def _sender_suite(sa: IkeSa) -> Suite:
    """The SK transforms and keys ``sa`` sends with."""
    assert sa.keys is not None and sa.encr is not None
    k = sa.keys
    if sa.initiator:
        return Suite(sa.encr, sa.integ, k.sk_ei, k.sk_ai)
    return Suite(sa.encr, sa.integ, k.sk_er, k.sk_ar)


def _sealed(
    sa: IkeSa, exchange: ExchangeType, message_id: int, inp: FuzzInput, *, response: bool = False
) -> bytes:
    """A message ``sa`` could send, its SK plaintext ``first payload type | rest`` from ``inp``."""
    msg = Message(
        sa.spi_i,
        sa.spi_r,
        exchange_type=exchange,
        message_id=message_id,
        is_initiator=sa.initiator,
        is_response=response,
    )
    first = PayloadType(inp.u8())
    return _sender_suite(sa).seal(msg, first, inp.rest()[:MAX_PLAINTEXT] + b"\0")


def init_message(first: int, chain: bytes, *, spi_i: bytes = _SPI_I, response: bool = False) -> bytes:
    """An IKE_SA_INIT request (SPIr 0) or response header, message 0, followed by ``chain`` as given."""
    hdr = IkeHeader(
        spi_i,
        _SPI_R if response else bytes(8),
        next_payload=PayloadType(first),
        major_version=2,
        minor_version=0,
        exchange_type=ExchangeType.IKE_SA_INIT,
        flags=HeaderFlag.RESPONSE if response else HeaderFlag.INITIATOR,
        message_id=0,
        length=28 + len(chain),
    )
    return hdr.encode() + chain


def half_open() -> EnginePair:
    """A pair after IKE_SA_INIT, with the initiator's honest IKE_AUTH request taken off the link."""
    p = new_pair()
    p.initiate()
    _receive(p.r, p.r.inbox.pop(0))
    _receive(p.i, p.i.inbox.pop(0))
    p.r.inbox.clear()
    return p


def answered() -> EnginePair:
    """A pair after IKE_SA_INIT and the responder's processing of the honest IKE_AUTH request,
    with its IKE_AUTH response taken off the link."""
    p = half_open()
    _receive(p.r, p.sent[-1])
    p.i.inbox.clear()
    return p


def established() -> EnginePair:
    p = new_pair()
    p.initiate()
    _settle(p)
    return p


def peer_sa(engine: IkeEngine) -> IkeSa:
    return engine.sas()[0]


def check(data: bytes) -> None:
    inp = FuzzInput(data)
    mode = inp.u8() % 5
    if mode == 0:  # an IKE_SA_INIT request to the responder
        p = new_pair()
        first = inp.u8()
        _receive(p.r, Datagram(endpoint(I_ADDR), endpoint(R_ADDR), init_message(first, inp.rest())))
    elif mode == 1:  # an IKE_AUTH request after IKE_SA_INIT
        p = half_open()
        packet = _sealed(peer_sa(p.i.engine), ExchangeType.IKE_AUTH, 1, inp)
        _receive(p.r, Datagram(endpoint(I_ADDR), endpoint(R_ADDR), packet))
    elif mode == 2:  # a request within an established IKE SA, either way
        p = established()
        to_responder = not inp.u8() & 1
        sender, receiver = (p.i, p.r) if to_responder else (p.r, p.i)
        exchange = ExchangeType(inp.u8())
        expected = receiver.engine.tasks.exchanger(peer_sa(receiver.engine)).next_in
        packet = _sealed(peer_sa(sender.engine), exchange, expected, inp)
        _receive(receiver, Datagram(endpoint(sender.addr), endpoint(receiver.addr), packet))
    elif mode == 3:  # an IKE_SA_INIT response to the initiator (anyone on the path can send it)
        p = new_pair()
        p.initiate()
        p.r.inbox.clear()
        first = inp.u8()
        payload = init_message(first, inp.rest(), spi_i=peer_sa(p.i.engine).spi_i, response=True)
        _receive(p.i, Datagram(endpoint(R_ADDR), endpoint(I_ADDR), payload))
    else:  # the IKE_AUTH response, sealed with the responder's keys (a rogue gateway)
        p = answered()
        packet = _sealed(peer_sa(p.r.engine), ExchangeType.IKE_AUTH, 1, inp, response=True)
        _receive(p.i, Datagram(endpoint(R_ADDR), endpoint(I_ADDR), packet))
    _settle(p)
    _check(p)


def _plaintext(sender: IkeSa, d: Datagram) -> tuple[int, int, bytes]:
    """(exchange type, first inner payload type, inner chain) of a request ``sender`` sent."""
    msg = decode_message(d.payload)
    first, chain = encode_payload_chain(_sender_suite(sender).receiver().unprotect(msg))
    return int(msg.exchange_type), int(first), chain


def honest_requests() -> list[tuple[str, bytes]]:
    """Seeds: the honest requests of each mode, in this target's input format."""
    seeds = []
    p = half_open()
    p.r.inbox.append(p.sent[-1])  # (the honest IKE_AUTH request, taken off the link)
    _, first, chain = _plaintext(peer_sa(p.i.engine), p.r.inbox[-1])
    seeds.append(("auth", bytes([1, first]) + chain))
    p = answered()
    p.i.inbox.append(p.sent[-1])  # (the honest IKE_AUTH response, taken off the link)
    _, first, chain = _plaintext(peer_sa(p.r.engine), p.i.inbox[-1])
    seeds.append(("auth-response", bytes([4, first]) + chain))
    actions: dict[str, Callable[[EnginePair, IkeSa, int], None]] = {
        "dpd": lambda p, sa, child: p.i.check_liveness(sa.sa_id),
        "rekey-child": lambda p, sa, child: p.i.rekey_child(sa.sa_id, child),
        "rekey-ike": lambda p, sa, child: p.i.rekey_ike(sa.sa_id),
        "delete-child": lambda p, sa, child: p.i.terminate_child(sa.sa_id, child),
        "delete-ike": lambda p, sa, child: p.i.terminate(sa.sa_id),
    }
    for name, act in actions.items():
        p = established()
        sa = peer_sa(p.i.engine)
        act(p, sa, next(iter(sa.children)))
        exchange, first, chain = _plaintext(sa, p.r.inbox[-1])
        seeds.append((name, bytes([2, 0, exchange, first]) + chain))
    return seeds
