"""Z4: IKE fragments (RFC 7383) → the per-direction ``Reassembler``.

Input, first byte even — *arbitrary* sequences: records ``message id (2 bits) | fragment
number | total | first payload type | u16-prefixed plaintext``; each record becomes a real SKF
message sealed with fixed keys, decoded (``decode_message`` rejects what a peer cannot send,
such as number 0 or number > total) and opened with ``SkProtector.unprotect_fragment`` before
it reaches the reassembler.

First byte odd — *valid* sequences: ``first payload type | number of pieces | a permutation
and duplication schedule | plaintext``: the plaintext is cut into pieces, the fragments are
sent in the scheduled order with duplicates, and the reassembled message must equal the
plaintext decoded whole (or both must be a ``DecodeError``).

Contract: only ``DecodeError`` escapes; the bytes held never exceed the reassembler's cap
(a small cap here, so the fuzzer reaches it); reassembled payloads round-trip.
"""

from __future__ import annotations

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import ExchangeType, PayloadType
from pyipsec.ike.fragment import Reassembler
from pyipsec.ike.protect import FragmentPiece
from pyipsec.wire.message import decode_message, decode_payload_chain, encode_payload_chain
from pyipsec.wire.payloads.base import Payload
from tests.fuzz.targets._input import FuzzInput
from tests.fuzz.targets._sk import SUITES, header

MAX_BYTES = 4096
MAX_FRAGMENTS = 32
_SKF_AT = 28  # the SKF payload's generic header follows the IKE header
_RECEIVER = SUITES[0].receiver()


def _piece(
    msg_id: int, number: int, total: int, first: PayloadType, plaintext: bytes
) -> FragmentPiece | None:
    """Send one SKF fragment and open it as the receiver does; None if it does not decode."""
    suite, msg = SUITES[0], header(ExchangeType.IKE_AUTH, msg_id)
    try:
        wire = suite.seal(msg, first, plaintext + b"\0", fragment=(number, total))
    except ValueError:  # the model cannot hold what RFC 7383 forbids: patch a sent fragment
        wire = bytearray(suite.seal(msg, PayloadType.NO_NEXT_PAYLOAD, plaintext + b"\0", fragment=(1, 1)))
        wire[_SKF_AT] = first
        wire[_SKF_AT + 4 : _SKF_AT + 8] = number.to_bytes(2, "big") + total.to_bytes(2, "big")
        try:
            decode_message(bytes(wire))
        except DecodeError:
            return None
        raise AssertionError(
            f"an SKF payload with number {number}, total {total}, type {first} decoded"
        ) from None
    return _RECEIVER.unprotect_fragment(decode_message(wire))


def _round_trip(payloads: tuple[Payload, ...]) -> None:
    first, chain = encode_payload_chain(payloads)
    assert decode_payload_chain(first, chain) == payloads, "reassembled payloads do not round-trip"


def _add(r: Reassembler, msg_id: int, piece: FragmentPiece) -> tuple[Payload, ...] | None:
    try:
        out = r.add(msg_id, piece)
    except DecodeError:
        out = None
    assert r.held <= r.max_bytes, f"{r.held} bytes held, cap {r.max_bytes}"
    if out is not None:
        _round_trip(out)
    return out


def _arbitrary(inp: FuzzInput) -> None:
    r = Reassembler(max_fragments=MAX_FRAGMENTS, max_bytes=MAX_BYTES)
    while inp.remaining:
        msg_id, number, total, first = inp.u8() & 3, inp.u8(), inp.u8(), PayloadType(inp.u8())
        piece = _piece(msg_id, number, total, first, inp.chunk())
        if piece is not None:
            _add(r, msg_id, piece)


def _valid(inp: FuzzInput) -> None:
    first = PayloadType(inp.u8())
    total = 1 + inp.u8() % 8
    schedule = inp.take(2 * total)
    plaintext = inp.rest()[:MAX_BYTES]
    size = -(-len(plaintext) // total) or 1
    chunks = [plaintext[i * size : (i + 1) * size] for i in range(total)]
    try:
        expected: tuple[Payload, ...] | DecodeError = decode_payload_chain(first, plaintext)
    except DecodeError as exc:
        expected = exc
    order = sorted(range(total), key=lambda i: schedule[i] if i < len(schedule) else i)
    dups = {i for i in range(total) if total + i < len(schedule) and schedule[total + i] & 1}
    r = Reassembler(max_fragments=MAX_FRAGMENTS, max_bytes=MAX_BYTES)
    for n, i in enumerate(order):
        piece = _piece(5, i + 1, total, first if i == 0 else PayloadType.NO_NEXT_PAYLOAD, chunks[i])
        assert piece is not None, "a valid fragment did not decode"
        for copy in range(2 if i in dups else 1):
            try:
                out = r.add(5, piece)
            except DecodeError as exc:
                assert isinstance(expected, DecodeError), f"valid fragments refused: {exc}"
                assert n == total - 1 and copy == 0, "a fragment was refused before the message was complete"
                return
            assert r.held <= r.max_bytes
            if n == total - 1 and copy == 0:  # the last new fragment completes the message
                assert not isinstance(expected, DecodeError), "an undecodable message was reassembled"
                assert out == expected, "valid fragments did not reassemble to the original message"
                assert out is not None
                _round_trip(out)
            elif out is not None:  # only a one-fragment message, retransmitted, completes again
                assert total == 1 and out == expected, "a duplicate fragment completed a message"


def check(data: bytes) -> None:
    inp = FuzzInput(data)
    if inp.u8() & 1:
        _valid(inp)
    else:
        _arbitrary(inp)
