"""Z2: the decrypt-and-decode path of SK payloads, with known keys.

Input: ``suite | exchange type | first inner payload type | plaintext``. The plaintext (inner
payload chain ‖ padding ‖ Pad Length, all fuzzer-chosen) is sealed into an SK payload with
fixed keys (``_sk``); the message is decoded with ``decode_message`` and opened with
``SkProtector.unprotect``, the function the exchanger runs on every protected message.

Contract: the sealed message decodes; ``unprotect`` raises nothing but ``DecodeError``
(never ``IntegrityError``: the keys are right); accepted inner payloads re-encode to a chain
that decodes equal, and sending them with ``SkProtector.protect`` and opening the result gives
them back.
"""

from __future__ import annotations

from pyipsec.crypto.rand import SeededRandom
from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.message import decode_message, decode_payload_chain, encode_payload_chain
from tests.fuzz.targets._input import FuzzInput
from tests.fuzz.targets._sk import SUITES, header

MAX_PLAINTEXT = 60000  # an SK payload's length field is 16 bits


def check(data: bytes) -> None:
    inp = FuzzInput(data)
    suite = SUITES[inp.u8() % len(SUITES)]
    msg = header(inp.u8())
    first = PayloadType(inp.u8())
    padded = inp.rest()[:MAX_PLAINTEXT]
    wire = suite.seal(msg, first, padded)
    received = decode_message(wire)
    receiver = suite.receiver()
    try:
        inner = receiver.unprotect(received)
    except DecodeError:
        return
    first2, chain = encode_payload_chain(inner)
    assert decode_payload_chain(first2, chain) == inner, "inner chain does not round-trip"
    resent = decode_message(receiver.protect(msg, inner, SeededRandom(1)))
    assert receiver.unprotect(resent) == inner, "protect → unprotect changed the inner payloads"
