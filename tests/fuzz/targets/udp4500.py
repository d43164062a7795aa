"""Z7: one UDP datagram on port 4500 (RFC 3948 §2) → the data plane's demultiplexer
(``Decapsulator.datagram``, with an optional GRO segment size) and ``net.udp_encap.classify``
(the control plane's, when no data plane runs).

Input: ``segment size (u16; 0 = no GRO) | datagram``.

Contract: nothing raises; each segment that is the keepalive octet 0xFF or starts with the
4-zero-octet non-ESP marker (and is at least 8 octets) goes, unchanged, to the IKE side, and
nothing else does; ``classify`` agrees; every other segment is delivered or a counted drop.
"""

from __future__ import annotations

from pyipsec.net.udp_encap import NON_ESP_MARKER, Kind, classify
from tests.fuzz.targets._esp import Receivers, suite_of
from tests.fuzz.targets._input import FuzzInput


def _segments(data: bytes, segment: int) -> list[bytes]:
    if segment <= 0 or segment > len(data):
        segment = len(data)
    return [data[i : i + segment] for i in range(0, len(data), segment)]


def _is_other(seg: bytes) -> bool:
    return seg == b"\xff" or (len(seg) >= 8 and seg[:4] == NON_ESP_MARKER)


def check(data: bytes) -> None:
    inp = FuzzInput(data)
    segment, datagram = inp.u16(), inp.rest()
    if not datagram:
        return
    rx = Receivers(suite_of(0))
    rx.decap.datagram(memoryview(datagram), segment)
    rx.decap.flush()
    segments = _segments(datagram, segment)
    expected = [s for s in segments if _is_other(s)]
    assert rx.others == expected, "the demultiplexer sent other segments to IKE than the marked ones"
    for seg in segments:
        kind = classify(seg)
        if seg == b"\xff":
            assert kind is Kind.KEEPALIVE
        elif _is_other(seg):
            assert kind is Kind.IKE
        else:
            assert kind in (Kind.ESP, Kind.INVALID)
    esp = len(segments) - len(expected)
    rx.fast.check_accounting(esp, len(rx.delivered))
