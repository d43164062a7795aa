"""Driving an EAP method with fuzzer bytes, and the invariants every method must keep.

Three ways, chosen by the first input byte (``check``):

- *peer*: u16-prefixed packets are the gateway's messages to the client method;
- *server*: u16-prefixed packets are the client's messages to the gateway method;
- *man in the middle*: an honest peer and server talk; one packet, at a fuzzer-chosen step and
  direction, is replaced by fuzzer bytes or has one octet changed, and the rest is honest.

Invariants (RFC 3748; RFC 7296 §2.16; the CVE-2021-45079 class): ``process`` raises nothing
while the outcome is open, and at most ``EapError`` (misuse) once it is final; a final outcome
never changes; what a side sends
decodes as an EAP packet of the right code; a side that ends in FAILURE has a reason and no
MSK; a side that ends in SUCCESS has a 64-octet MSK and has completed its method
(``completed``); when both succeed, their MSKs are equal.
"""

from __future__ import annotations

from collections.abc import Callable

from pyipsec.errors import EapError
from pyipsec.iana.ikev2 import EapCode
from pyipsec.ike.eap.base import MSK_LEN, EapOutcome, EapPeer, EapServer
from pyipsec.wire.payloads.eap import EapMessage
from tests.fuzz.targets._input import FuzzInput

__all__ = ["Method", "check_method"]

MAX_ROUNDS = 64

_CODE_OF = {
    EapOutcome.CONTINUE: EapCode.REQUEST,
    EapOutcome.SUCCESS: EapCode.SUCCESS,
    EapOutcome.FAILURE: EapCode.FAILURE,
}


class Method:
    """How to make one method's two sides, and what 'the peer completed the method' means."""

    def __init__(
        self,
        peer: Callable[[], EapPeer],
        server: Callable[[], EapServer],
        completed: Callable[[EapPeer, list[bytes]], bool],
    ) -> None:
        self.peer, self.server, self.completed = peer, server, completed


def _process(side: EapPeer | EapServer, packet: bytes) -> bytes | None:
    """``side.process(packet)``; EapError (misuse) is allowed only once the outcome is final,
    and a final outcome never changes."""
    before = side.outcome
    try:
        out = side.process(packet)
    except EapError:
        assert before is not EapOutcome.CONTINUE, "EapError while the conversation goes on"
        return None
    assert before is EapOutcome.CONTINUE or side.outcome is before, (
        f"outcome {before} changed to {side.outcome}"
    )
    return out


def _peer_step(m: Method, p: EapPeer, packet: bytes, sent: list[bytes]) -> bytes | None:
    out = _process(p, packet)
    if out is not None:
        assert EapMessage.decode(out).code == EapCode.RESPONSE, "the peer sent something else than a Response"
        sent.append(out)
    _check_peer(m, p, sent)
    return out


def _check_peer(m: Method, p: EapPeer, sent: list[bytes]) -> None:
    if p.outcome is EapOutcome.SUCCESS:
        assert len(p.msk) == MSK_LEN, "peer SUCCESS without a 64-octet MSK"
        assert m.completed(p, sent), "peer SUCCESS before it completed the method"
    else:
        assert p.msk == b"", "peer holds an MSK without SUCCESS"
    if p.outcome is EapOutcome.FAILURE:
        assert p.reason, "peer FAILURE without a reason"


def _server_step(s: EapServer, packet: bytes) -> bytes | None:
    out = _process(s, packet)
    if out is not None:
        _check_server(s, out)
    return out


def _check_server(s: EapServer, out: bytes) -> None:
    assert EapMessage.decode(out).code == _CODE_OF[s.outcome], "server packet does not match its outcome"
    if s.outcome is EapOutcome.SUCCESS:
        assert len(s.msk) == MSK_LEN, "server SUCCESS without a 64-octet MSK"
        assert s.identity is not None, "server SUCCESS without an identity"
    else:
        assert s.msk == b"", "server holds an MSK without SUCCESS"
    if s.outcome is EapOutcome.FAILURE:
        assert s.reason, "server FAILURE without a reason"


def _as_peer(m: Method, inp: FuzzInput) -> None:
    p, sent = m.peer(), []
    for packet in inp.chunks(MAX_ROUNDS):
        _peer_step(m, p, packet, sent)


def _as_server(m: Method, inp: FuzzInput) -> None:
    s = m.server()
    _check_server(s, s.start())
    for packet in inp.chunks(MAX_ROUNDS):
        _server_step(s, packet)


def _spoil(honest: bytes, how: int, inp: FuzzInput) -> bytes:
    if how & 1:  # one octet changed
        i = inp.u16() % max(1, len(honest))
        return honest[:i] + bytes([inp.u8()]) + honest[i + 1 :]
    return inp.rest()


def _in_the_middle(m: Method, inp: FuzzInput) -> None:
    step, to_peer, how = inp.u8() % 32, bool(inp.u8() & 1), inp.u8()
    p, s, sent = m.peer(), m.server(), []
    packet = s.start()
    _check_server(s, packet)
    for n in range(MAX_ROUNDS):
        if to_peer and n == step:
            packet = _spoil(packet, how, inp)
        answer = _peer_step(m, p, packet, sent)
        if answer is None or s.outcome is not EapOutcome.CONTINUE:
            break
        if not to_peer and n == step:
            answer = _spoil(answer, how, inp)
        reply = _server_step(s, answer)
        if reply is None:
            break
        packet = reply
    if p.outcome is EapOutcome.SUCCESS and s.outcome is EapOutcome.SUCCESS:
        assert p.msk == s.msk, "both sides succeeded with different MSKs"


def check_method(m: Method, data: bytes) -> None:
    inp = FuzzInput(data)
    mode = inp.u8() % 3
    (_as_peer, _as_server, _in_the_middle)[mode](m, inp)
