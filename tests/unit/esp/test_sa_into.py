"""``EspSa.decapsulate_into`` (the data plane's path) agrees with ``decapsulate`` on every outcome.

The two methods are kept as separate inline copies for speed (a shared helper costs the batched
receive path a measurable share per packet), so this drives both with the same packet sequence,
good and bad, and compares results, exceptions and counters after each packet.
"""

from __future__ import annotations

import pytest

from pyipsec.childsa import EspMode
from pyipsec.esp.packet import EspDrop
from pyipsec.esp.sa import EspSa

from ._support import SUITE_IDS, SUITES, Suite, ipv4_packet, ipv6_packet, reference_seal, sa_pair


def _pad(data: bytes, block: int, extra: int = 0) -> bytes:
    pad_len = (-(len(data) + 2)) % block + extra
    return data + bytes(range(1, pad_len + 1)) + bytes([pad_len])


def _packets(suite: Suite, out: EspSa, inb: EspSa) -> list[bytes]:
    """Accepted, replayed, tampered, padded, TFC, malformed and dummy packets, in one order."""

    def seal(seq: int, plain: bytes) -> bytes:
        return reference_seal(
            suite,
            inb.config.encr_key,
            inb.config.integ_key,
            spi=inb.spi,
            seq=seq,
            plaintext=plain,
            esn=inb.esn,
        )

    good = out.encapsulate(ipv4_packet(40), 4)  # seq 1
    flipped = bytearray(out.encapsulate(ipv6_packet(20), 41))  # seq 2
    flipped[-1] ^= 1
    wrong_spi = bytearray(good)
    wrong_spi[0] ^= 0x80
    bad_pad = bytearray(_pad(b"P" * 8, suite.block))
    bad_pad[8] ^= 0x40
    long_len = bytearray(ipv4_packet(30))
    long_len[2:4] = (len(long_len) + 1).to_bytes(2, "big")
    tfc = bytes(range(200, 255))
    return [
        good,
        good,  # replayed
        bytes(flipped),  # ICV / tag mismatch
        bytes(wrong_spi),
        b"",
        good[:8],
        good[:-1] + b"\x00" * 9,  # misaligned for CBC (a replay of seq 1 for AEAD)
        seal(3, bytes(bad_pad) + b"\x04"),  # bad padding after commit
        seal(3, bytes(bad_pad) + b"\x04"),  # and now a replay
        seal(4, _pad(bytes(long_len), suite.block) + b"\x04"),  # inner length beyond the payload
        seal(5, _pad(ipv6_packet(0)[:39], suite.block) + b"\x29"),  # IPv6 runt
        seal(6, _pad(ipv4_packet(37) + tfc, suite.block) + b"\x04"),  # TFC padding
        seal(7, _pad(ipv6_packet(12) + tfc, suite.block) + b"\x29"),
        seal(8, _pad(b"udp", suite.block, 16) + b"\x11"),  # long padding, not IP
        seal(9, _pad(b"junk", suite.block) + b"\x3b"),  # dummy packet (RFC 4303 §2.6)
        seal(10, _pad(ipv4_packet(0) + bytes(5), suite.block) + b"\x04"),  # a bare header + TFC
        seal(11, _pad(b"x", suite.block) + b"\xff"),  # Next Header 255 (reserved)
        seal(1000, _pad(ipv4_packet(1), suite.block) + b"\x04"),
        good,  # in the window, already seen
    ]


def _outcome(sa: EspSa, packet: bytes, into: bool) -> tuple[object, ...]:
    try:
        if into:
            buf = bytearray(len(packet) + 16)
            start, end, nh = sa.decapsulate_into(packet, memoryview(buf))
            return (bytes(buf[start:end]), nh)
        return sa.decapsulate(packet)
    except EspDrop as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("mode", [EspMode.TUNNEL, EspMode.TRANSPORT], ids=["tunnel", "transport"])
@pytest.mark.parametrize("esn", [False, True], ids=["32", "esn"])
@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_decapsulate_into_matches_decapsulate(suite: Suite, esn: bool, mode: EspMode) -> None:
    out, a = sa_pair(suite, esn=esn, mode=mode)
    _, b = sa_pair(suite, esn=esn, mode=mode)
    outcomes: set[object] = set()
    for n, packet in enumerate(_packets(suite, out, a)):
        got = _outcome(a, packet, into=False)
        assert _outcome(b, packet, into=True) == got, f"packet {n}"
        assert a.counters() == b.counters(), f"packet {n}"
        outcomes.add(got[0] if isinstance(got[0], type) else "accepted")
    assert a.replay is not None and b.replay is not None and a.replay.top == b.replay.top == 1000
    # the sequence really exercises every kind of drop (and acceptance)
    c = a.counters()
    assert c.packets >= 6 and c.replay_drops >= 3 and c.integrity_failures >= 1
    assert c.spi_mismatches == 1 and c.pad_errors == 1 and c.malformed >= 2
    assert len(outcomes) == 6
