"""Z8: ESP inbound — SPI lookup → replay pre-check → decrypt with a fixed key → padding and
Next Header → inner packet length and the SA's traffic selectors (``_esp``).

Input ``mode | suite | records``:

- mode 0, *raw*: u16-prefixed raw ESP packets (the ICV almost always fails);
- mode 1, *encrypt-then-feed*: ``seq (u32) | u16-prefixed plaintext`` records; the plaintext
  (inner packet ‖ padding ‖ Pad Length ‖ Next Header, all fuzzer-chosen) is sealed for the SA;
- mode 2, *replay window*: u32 sequence numbers; each packet carries a valid inner packet, and
  acceptance must match a model of the window (RFC 4303 §3.4.3: the highest number seen, a
  1024-packet window below it, and the numbers inside it already seen).

Contract for all: nothing raises; the reference and batched paths deliver the same packets;
every packet is delivered or a counted drop.
"""

from __future__ import annotations

import struct

from tests.fuzz.targets._esp import Receivers, seal, suite_of
from tests.fuzz.targets._input import FuzzInput

WINDOW = 1024
_INNER = bytes.fromhex("4500001c0000400040110000") + bytes([10, 1, 0, 1, 10, 2, 0, 1]) + bytes(8)


def valid_plaintext(align: int) -> bytes:
    """An IPv4/UDP packet 10.1.0.1 → 10.2.0.1, padded for the suite, Next Header 4."""
    inner = bytearray(_INNER)
    total = sum(struct.unpack(">10H", bytes(inner[:20])))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    inner[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
    pad = -(len(inner) + 2) % align
    return bytes(inner) + bytes(range(1, pad + 1)) + bytes([pad, 4])


def _replay(rx: Receivers, inp: FuzzInput, align: int) -> None:
    plaintext = valid_plaintext(align)
    top, seen = 0, set()
    while inp.remaining:
        seq = inp.u32() or 1
        fresh = seq > top or (top - seq < WINDOW and seq not in seen)
        delivered = rx.feed(seal(rx.suite, seq, plaintext))
        assert (delivered is not None) == fresh, f"sequence number {seq} (top {top}): model says {fresh}"
        if fresh:
            seen.add(seq)
            top = max(top, seq)
            seen = {s for s in seen if top - s < WINDOW}


def check(data: bytes) -> None:
    inp = FuzzInput(data)
    mode, suite = inp.u8() % 3, suite_of(inp.u8())
    rx = Receivers(suite)
    if mode == 0:
        for packet in inp.chunks():
            rx.feed(packet)
    elif mode == 1:
        while inp.remaining:
            seq = inp.u32()
            rx.feed(seal(suite, seq, inp.chunk()))
    else:
        _replay(rx, inp, suite.block)
