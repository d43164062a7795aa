"""EspSa behaviour: round trips, padding, IVs, tampering, replay, TFC, counters, validation."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.childsa import EspMode
from pyipsec.crypto.rand import SeededRandom
from pyipsec.errors import IntegrityError, UnsupportedAlgorithm, UsageError
from pyipsec.esp.packet import (
    BadPadding,
    EspIntegrityFailure,
    MalformedEsp,
    ReplayedPacket,
    SpiMismatch,
)
from pyipsec.esp.replay import SeqExhausting, SequenceExhausted
from pyipsec.esp.sa import Direction, EspCounters, EspSa, EspSaConfig
from pyipsec.iana.transforms import EncrId, IntegId

from ._support import (
    SUITE_IDS,
    SUITES,
    CountingRandom,
    Suite,
    ipv4_packet,
    ipv6_packet,
    reference_seal,
    sa_pair,
)

GCM = SUITES[2]  # aes256gcm16
CBC = SUITES[5]  # aes256cbc-sha256
SPI = 0x1000_0001


def _plain(suite: Suite, sa: EspSa, wire: bytes) -> bytes:
    """Decrypt an ESP packet of ``sa``'s keys with the reference primitives (trailer included)."""
    ekey = sa.config.encr_key
    if suite.aead:
        aead = AESGCM(ekey[:-4]) if suite.encr == EncrId.ENCR_AES_GCM_16 else ChaCha20Poly1305(ekey[:-4])
        assert not sa.esn
        return aead.decrypt(ekey[-4:] + wire[8:16], wire[16:], wire[:8])
    body = wire[8 + 16 : len(wire) - suite.icv_len]
    return Cipher(algorithms.AES(ekey), modes.CBC(wire[8:24])).decryptor().update(body)


# --- round trips and the wire format ----------------------------------------------------------


@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_round_trip_every_payload_length_modulo_the_block(suite: Suite, esn: bool) -> None:
    out, inb = sa_pair(suite, esn=esn, mode=EspMode.TRANSPORT)
    for n in range(40):
        payload = bytes(range(n))
        wire = out.encapsulate(payload, 17)
        assert len(wire) == out.encapsulated_len(n)
        assert (len(wire) - 8 - suite.iv_len - suite.icv_len) % suite.block == 0
        assert inb.decapsulate(wire) == (payload, 17)
    assert (out.packets, inb.packets) == (40, 40)
    assert out.bytes == inb.bytes == sum(range(40))


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_header_and_default_padding(suite: Suite) -> None:
    out, _ = sa_pair(suite)
    for n in (1, 2, 3, 4, 5, 13, 14, 15, 16):
        inner = bytes([0x5A]) * n
        wire = out.encapsulate(inner, 41)
        spi, seq = struct.unpack(">II", wire[:8])
        assert out.seq is not None
        assert (spi, seq) == (SPI, out.seq.last)
        plain = _plain(suite, out, wire)
        pad_len = (-(n + 2)) % suite.block
        assert plain == inner + bytes(range(1, pad_len + 1)) + bytes([pad_len, 41])


@pytest.mark.parametrize("suite", [s for s in SUITES if s.aead], ids=[s.name for s in SUITES if s.aead])
def test_aead_iv_is_the_sequence_number(suite: Suite) -> None:
    out, _ = sa_pair(suite, esn=True)
    assert out.seq is not None
    out.seq.skip_to(0x1_2345_6788)
    wire = out.encapsulate(b"x" * 10, 4)
    assert wire[4:8] == bytes.fromhex("23456789")
    assert wire[8:16] == (0x1_2345_6789).to_bytes(8, "big")


@pytest.mark.parametrize(
    "suite", [s for s in SUITES if not s.aead], ids=[s.name for s in SUITES if not s.aead]
)
def test_cbc_ivs_are_fresh_and_randomness_is_batched(suite: Suite) -> None:
    rng = CountingRandom()
    out, inb = sa_pair(suite, rng=rng)
    inner = ipv4_packet(64)
    wires = [out.encapsulate(inner, 4) for _ in range(600)]
    ivs = {w[8:24] for w in wires}
    assert len(ivs) == 600
    assert len({w[24:40] for w in wires}) == 600  # same plaintext, different first block
    assert rng.calls == [4096, 4096, 4096]  # 16 bytes a packet, 256 packets a call
    assert all(inb.decapsulate(w) == (inner, 4) for w in wires)


def test_cbc_output_is_a_function_of_the_random_source() -> None:
    a, _ = sa_pair(CBC, rng=SeededRandom(3))
    b, _ = sa_pair(CBC, rng=SeededRandom(3))
    c, _ = sa_pair(CBC, rng=SeededRandom(4))
    inner = ipv4_packet(100)
    wa = [a.encapsulate(inner, 4) for _ in range(3)]
    assert wa == [b.encapsulate(inner, 4) for _ in range(3)]
    assert wa != [c.encapsulate(inner, 4) for _ in range(3)]


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_buffer_types_are_accepted(suite: Suite) -> None:
    out, inb = sa_pair(suite)
    inner = ipv6_packet(33)
    for buf in (inner, bytearray(inner), memoryview(inner)):
        wire = out.encapsulate(buf, 41)
        assert inb.decapsulate(memoryview(wire)) == (inner, 41)
        assert inb.decapsulate(bytearray(out.encapsulate(buf, 41))) == (inner, 41)


# --- tampering ------------------------------------------------------------------------------


def _flips(suite: Suite, length: int) -> list[tuple[str, int]]:
    """(region, byte offset) of bytes to flip a bit in."""
    iv_end = 8 + suite.iv_len
    icv_start = length - suite.icv_len
    return [
        ("seq", 4),
        ("seq", 7),
        ("iv", 8),
        ("iv", iv_end - 1),
        ("ciphertext", iv_end),
        ("ciphertext", (iv_end + icv_start) // 2),
        ("ciphertext", icv_start - 1),  # next header
        ("icv", icv_start),
        ("icv", length - 1),
    ]


@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_any_flipped_bit_is_dropped_counted_and_leaves_the_window_alone(suite: Suite, esn: bool) -> None:
    out, inb = sa_pair(suite, esn=esn)
    assert inb.replay is not None
    inb.decapsulate(out.encapsulate(ipv4_packet(10), 4))  # seq 1
    wire = out.encapsulate(ipv4_packet(50), 4)  # seq 2
    flips = _flips(suite, len(wire))
    for n, (region, offset) in enumerate(flips, 1):
        for bit in (0x01, 0x80):
            bad = bytearray(wire)
            bad[offset] ^= bit
            with pytest.raises(EspIntegrityFailure) as caught:
                inb.decapsulate(bytes(bad))
            assert isinstance(caught.value, IntegrityError), region
            assert (inb.replay.top, inb.replay.seen(2)) == (1, False), region
        assert inb.integrity_failures == 2 * n
    assert inb.decapsulate(wire) == (ipv4_packet(50), 4)  # the genuine one still gets in
    assert (inb.packets, inb.replay_drops, inb.pad_errors, inb.malformed) == (2, 0, 0, 0)


@pytest.mark.parametrize("suite", [GCM, CBC], ids=[GCM.name, CBC.name])
def test_flipped_spi_is_a_mismatch(suite: Suite) -> None:
    out, inb = sa_pair(suite)
    wire = bytearray(out.encapsulate(ipv4_packet(3), 4))
    wire[0] ^= 0x10
    with pytest.raises(SpiMismatch):
        inb.decapsulate(bytes(wire))
    assert inb.spi_mismatches == 1
    assert inb.replay is not None and inb.replay.top == 0


@pytest.mark.parametrize("suite", [GCM, CBC], ids=[GCM.name, CBC.name])
def test_wrong_key_fails_integrity(suite: Suite) -> None:
    out, _ = sa_pair(suite, seed=1)
    _, inb = sa_pair(suite, seed=2)
    with pytest.raises(EspIntegrityFailure):
        inb.decapsulate(out.encapsulate(ipv4_packet(3), 4))
    assert inb.integrity_failures == 1


@pytest.mark.parametrize("suite", [GCM, CBC], ids=[GCM.name, CBC.name])
def test_esn_high_half_is_authenticated(suite: Suite) -> None:
    """A packet sealed with seq-hi 1 does not verify where the window infers seq-hi 0."""
    out, inb = sa_pair(suite, esn=True)
    assert out.seq is not None and inb.replay is not None
    out.seq.skip_to((1 << 32) + 9)
    wire = out.encapsulate(ipv4_packet(3), 4)  # 2^32 + 10, low half 10
    inb.replay.commit(5)  # window at epoch 0: infers 10
    with pytest.raises(EspIntegrityFailure):
        inb.decapsulate(wire)
    assert inb.replay.top == 5
    _, fresh = sa_pair(suite, esn=True)
    assert fresh.replay is not None
    fresh.replay.commit((1 << 32) + 3)
    assert fresh.decapsulate(wire) == (ipv4_packet(3), 4)


# --- replay ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_replayed_packet_is_dropped_and_counted(suite: Suite) -> None:
    out, inb = sa_pair(suite)
    wire = out.encapsulate(ipv4_packet(20), 4)
    inb.decapsulate(wire)
    for n in (1, 2):
        with pytest.raises(ReplayedPacket):
            inb.decapsulate(wire)
        assert inb.replay_drops == n
    assert (inb.packets, inb.integrity_failures) == (1, 0)


def test_reordering_within_the_window_and_too_old_packets() -> None:
    out, inb = sa_pair(GCM, window=32)
    wires = [out.encapsulate(ipv4_packet(8, seed=i), 4) for i in range(100)]  # seq = index + 1
    for i in range(50, 100):
        if i not in (68, 75, 90):
            inb.decapsulate(wires[i])
    # top is 100: a 32-packet window takes 69..100
    for i in (49, 18, 67, 80, 99):  # seq 50, 19, 68 too old; 81, 100 duplicates
        with pytest.raises(ReplayedPacket):
            inb.decapsulate(wires[i])
    for i in (90, 75, 68):  # seq 91, 76, 69: late but in the window
        assert inb.decapsulate(wires[i]) == (ipv4_packet(8, seed=i), 4)
    assert (inb.replay_drops, inb.packets) == (5, 50)


def test_replay_check_runs_before_any_crypto() -> None:
    """A replayed sequence number is dropped as a replay even when its ICV is garbage."""
    out, inb = sa_pair(CBC)
    wire = out.encapsulate(ipv4_packet(3), 4)
    inb.decapsulate(wire)
    bad = bytearray(wire)
    bad[-1] ^= 1
    with pytest.raises(ReplayedPacket):
        inb.decapsulate(bytes(bad))
    assert (inb.replay_drops, inb.integrity_failures) == (1, 0)


def test_esn_flow_across_the_32_bit_wrap_with_reordering() -> None:
    for suite in (GCM, CBC, SUITES[3]):
        out, inb = sa_pair(suite, esn=True, window=64)
        assert out.seq is not None and inb.replay is not None
        start = (1 << 32) - 40
        out.seq.skip_to(start - 1)
        inb.replay.commit(start - 1)
        wires = [(start + i, out.encapsulate(ipv4_packet(4, seed=i), 4)) for i in range(80)]
        assert {int.from_bytes(w[4:8], "big") for _, w in wires[40:]} == set(range(40))  # low halves wrapped
        # top ends at start + 79 = 2^32 + 39: the 64-packet window takes start + 16 .. start + 79
        order = wires[45:] + wires[38:45] + wires[20:30]  # late packets from before the wrap
        for seq, wire in order:
            payload, _ = inb.decapsulate(wire)
            assert payload == ipv4_packet(4, seed=seq - start)
            assert inb.replay.seen(seq)
        assert inb.replay.top == start + 79
        # left of the window: inferred in the epoch after the window bottom's, so the ICV fails
        for _, wire in wires[:16]:
            with pytest.raises(EspIntegrityFailure):
                inb.decapsulate(wire)
        # in the window and already seen: replays
        for _, wire in wires[20:30:3]:
            with pytest.raises(ReplayedPacket):
                inb.decapsulate(wire)
        assert (inb.integrity_failures, inb.replay_drops, inb.packets) == (16, 4, 52)


# --- padding, TFC, dummy and malformed packets ----------------------------------------------


def _seal(suite: Suite, sa: EspSa, seq: int, plaintext: bytes) -> bytes:
    return reference_seal(
        suite, sa.config.encr_key, sa.config.integ_key, spi=sa.spi, seq=seq, plaintext=plaintext, esn=sa.esn
    )


def _pad(data: bytes, block: int, extra: int = 0) -> bytes:
    pad_len = (-(len(data) + 2)) % block + extra
    return data + bytes(range(1, pad_len + 1)) + bytes([pad_len])


@pytest.mark.parametrize("suite", [GCM, CBC, SUITES[3]], ids=[GCM.name, CBC.name, SUITES[3].name])
def test_bad_padding_is_dropped_after_commit(suite: Suite) -> None:
    _, inb = sa_pair(suite, mode=EspMode.TRANSPORT)
    assert inb.replay is not None
    payload = b"P" * 8
    good = _pad(payload, suite.block)
    assert good[-1] >= 2
    cases = [
        bytearray(good[:-2] + b"\x03" + good[-1:]),  # wrong pad byte value before the length
        bytearray(good),
        bytes(suite.block - 2) + bytes([255]),  # pad length beyond the payload
    ]
    cases[1][len(payload)] ^= 0x40  # first padding byte is not 1
    for seq, plain in enumerate(cases, 1):
        assert len(plain) % suite.block == suite.block - 1
        wire = _seal(suite, inb, seq, bytes(plain) + b"\x11")
        with pytest.raises(BadPadding):
            inb.decapsulate(wire)
        assert inb.replay.seen(seq)  # authenticated: the number is used up
        with pytest.raises(ReplayedPacket):
            inb.decapsulate(wire)
    assert (inb.pad_errors, inb.replay_drops, inb.packets) == (3, 3, 0)


@pytest.mark.parametrize("suite", [GCM, CBC], ids=[GCM.name, CBC.name])
def test_long_default_padding_is_accepted(suite: Suite) -> None:
    """Any pad length up to 255 is valid as long as the bytes are 1, 2, 3, ... (RFC 4303 §2.4)."""
    _, inb = sa_pair(suite, mode=EspMode.TRANSPORT)
    payload = b"abc"
    extra = 240 if suite.block == 16 else 248
    plain = _pad(payload, suite.block, extra) + b"\x06"
    assert plain[-2] > 240
    assert inb.decapsulate(_seal(suite, inb, 1, plain)) == (payload, 6)


@pytest.mark.parametrize("suite", [GCM, CBC], ids=[GCM.name, CBC.name])
@pytest.mark.parametrize(("next_header", "maker"), [(4, ipv4_packet), (41, ipv6_packet)])
def test_tfc_padding_is_stripped_in_tunnel_mode(suite: Suite, next_header: int, maker: object) -> None:
    _, inb = sa_pair(suite)
    _, transport = sa_pair(suite, mode=EspMode.TRANSPORT)
    inner = maker(37)  # type: ignore[operator]
    tfc = bytes(range(200, 255)) * 2
    plain = _pad(inner + tfc, suite.block) + bytes([next_header])
    assert inb.decapsulate(_seal(suite, inb, 1, plain)) == (inner, next_header)
    assert inb.bytes == len(inner)
    # transport mode cannot know where the payload ends: everything is returned
    assert transport.decapsulate(_seal(suite, transport, 1, plain)) == (inner + tfc, next_header)


@pytest.mark.parametrize("suite", [GCM, CBC], ids=[GCM.name, CBC.name])
def test_inner_length_beyond_the_payload_is_malformed(suite: Suite) -> None:
    _, inb = sa_pair(suite)
    inner = bytearray(ipv4_packet(30))
    inner[2:4] = (len(inner) + 1).to_bytes(2, "big")
    runt = ipv6_packet(0)[:39]
    for seq, (data, nh) in enumerate([(bytes(inner), 4), (runt, 41), (b"\x45\x00", 4)], 1):
        with pytest.raises(MalformedEsp):
            inb.decapsulate(_seal(suite, inb, seq, _pad(data, suite.block) + bytes([nh])))
    assert (inb.malformed, inb.packets) == (3, 0)


def test_dummy_packets_are_returned_with_next_header_59() -> None:
    out, inb = sa_pair(GCM)
    assert inb.decapsulate(out.encapsulate(b"", 59)) == (b"", 59)
    assert inb.decapsulate(out.encapsulate(b"junk", 59)) == (b"junk", 59)


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_short_and_misaligned_packets_are_malformed(suite: Suite) -> None:
    out, inb = sa_pair(suite)
    wire = out.encapsulate(ipv4_packet(5), 4)
    too_short = 8 + suite.iv_len + 4 + suite.icv_len - 1 if suite.aead else 8 + 16 + 16 + suite.icv_len - 1
    samples = [b"", wire[:8], wire[:too_short]]
    if not suite.aead:
        samples.append(wire[:-1] + b"\x00" * 9)  # ciphertext no longer a whole number of blocks
    for n, sample in enumerate(samples, 1):
        with pytest.raises(MalformedEsp):
            inb.decapsulate(sample)
        assert inb.malformed == n
    assert inb.replay is not None and inb.replay.top == 0
    assert inb.decapsulate(wire) == (ipv4_packet(5), 4)


# --- sequence numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("esn", [False, True])
def test_sequence_exhaustion_signal_and_hard_stop(esn: bool) -> None:
    limit = (1 << 64) - 1 if esn else (1 << 32) - 1
    out, _ = sa_pair(GCM, esn=esn, seq_soft_limit=limit - 5)
    assert out.seq is not None
    assert out.poll_signal() is None
    out.seq.skip_to(limit - 7)
    out.encapsulate(b"a", 4)
    assert out.poll_signal() is None
    out.encapsulate(b"a", 4)  # limit - 5
    assert out.poll_signal() == SeqExhausting(spi=SPI, seq=limit - 5, limit=limit)
    assert out.poll_signal() is None
    for _ in range(5):
        out.encapsulate(b"a", 4)
    assert out.seq.last == limit
    for _ in range(2):
        with pytest.raises(SequenceExhausted):
            out.encapsulate(b"a", 4)
    assert out.seq.last == limit
    assert out.packets == 7


def test_encapsulate_at_checks_its_arguments_and_leaves_the_counter() -> None:
    out, inb = sa_pair(GCM)
    assert out.seq is not None
    wire = out.encapsulate_at(b"x", 4, seq=77)
    assert out.seq.last == 0
    assert wire[8:16] == (77).to_bytes(8, "big")
    with pytest.raises(ValueError, match="sequence number"):
        out.encapsulate_at(b"x", 4, seq=0)
    with pytest.raises(ValueError, match="sequence number"):
        out.encapsulate_at(b"x", 4, seq=1 << 32)
    with pytest.raises(ValueError, match="IV"):
        out.encapsulate_at(b"x", 4, seq=5, iv=bytes(16))
    with pytest.raises(UsageError):
        inb.encapsulate_at(b"x", 4, seq=5)


# --- directions, counters, configuration ----------------------------------------------------


def test_directions_are_enforced() -> None:
    out, inb = sa_pair(GCM)
    with pytest.raises(UsageError):
        inb.encapsulate(b"x", 4)
    with pytest.raises(UsageError):
        out.decapsulate(out.encapsulate(b"x", 4))
    assert inb.poll_signal() is None
    assert (out.replay, inb.seq) == (None, None)


def test_counters_snapshot() -> None:
    out, inb = sa_pair(GCM)
    inner = ipv4_packet(100)
    wires = [out.encapsulate(inner, 4) for _ in range(3)]
    for w in wires:
        inb.decapsulate(w)
    with pytest.raises(ReplayedPacket):
        inb.decapsulate(wires[0])
    assert inb.counters() == EspCounters(
        packets=3,
        bytes=3 * len(inner),
        replay_drops=1,
        integrity_failures=0,
        pad_errors=0,
        malformed=0,
        spi_mismatches=0,
    )
    assert out.counters().packets == 3


def _config(**changes: object) -> EspSaConfig:
    base: dict[str, object] = {
        "spi": SPI,
        "direction": Direction.INBOUND,
        "encr": EncrId.ENCR_AES_GCM_16,
        "encr_key": bytes(36),
    }
    base.update(changes)
    return EspSaConfig(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("spi", [0, 1, 255, 1 << 32])
def test_reserved_and_oversized_spis_are_refused(spi: int) -> None:
    with pytest.raises(ValueError, match="SPI"):
        _config(spi=spi)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"encr": EncrId.ENCR_3DES, "encr_key": bytes(24), "integ": IntegId.AUTH_HMAC_SHA1_96,
          "integ_key": bytes(20)}, UnsupportedAlgorithm),
        ({"encr": EncrId.ENCR_AES_CTR, "encr_key": bytes(20), "integ": IntegId.AUTH_HMAC_SHA1_96,
          "integ_key": bytes(20)}, UnsupportedAlgorithm),
        ({"encr": EncrId.ENCR_AES_GCM_8}, UnsupportedAlgorithm),
        ({"integ": IntegId.AUTH_HMAC_SHA2_256_128, "integ_key": bytes(32)}, UnsupportedAlgorithm),
        ({"encr": EncrId.ENCR_AES_CBC, "encr_key": bytes(32)}, UnsupportedAlgorithm),
        ({"encr": EncrId.ENCR_AES_CBC, "encr_key": bytes(32), "integ": IntegId.AUTH_AES_XCBC_96,
          "integ_key": bytes(16)}, UnsupportedAlgorithm),
        ({"encr_key": bytes(32)}, ValueError),  # GCM without its salt
        ({"encr_key": bytes(37)}, ValueError),
        ({"encr": EncrId.ENCR_CHACHA20_POLY1305, "encr_key": bytes(20)}, ValueError),
        ({"encr": EncrId.ENCR_AES_CBC, "encr_key": bytes(20), "integ": IntegId.AUTH_HMAC_SHA1_96,
          "integ_key": bytes(20)}, ValueError),
        ({"encr": EncrId.ENCR_AES_CBC, "encr_key": bytes(32), "integ": IntegId.AUTH_HMAC_SHA1_96,
          "integ_key": bytes(32)}, ValueError),
        ({"integ_key": bytes(4)}, ValueError),
        ({"replay_window": 16}, ValueError),
    ],
)  # fmt: skip
def test_bad_configurations_are_refused(changes: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        _config(**changes)


def test_outbound_cbc_needs_a_random_source_and_keys_stay_out_of_repr() -> None:
    ekey, ikey = b"\xaa" * 32, b"\xbb" * 32
    config = _config(
        direction=Direction.OUTBOUND,
        encr=EncrId.ENCR_AES_CBC,
        encr_key=ekey,
        integ=IntegId.AUTH_HMAC_SHA2_256_128,
        integ_key=ikey,
    )
    with pytest.raises(ValueError, match="RandomSource"):
        EspSa(config)
    sa = EspSa(config, rng=SeededRandom(0))
    for text in (repr(config), repr(sa)):
        assert "aa" * 4 not in text and "bb" * 4 not in text
    assert "10000001" in repr(sa)
    EspSa(
        _config(encr=EncrId.ENCR_AES_CBC, encr_key=ekey, integ=IntegId.AUTH_HMAC_SHA2_256_128, integ_key=ikey)
    )


@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("suite", [GCM, CBC], ids=[GCM.name, CBC.name])
def test_a_forged_far_ahead_sequence_number_does_not_move_the_window(suite: Suite, esn: bool) -> None:
    """RELIABILITY.md §5 D2: a packet claiming sequence number +10,000 with a bad ICV is dropped
    and leaves the window where it was, so the next genuine (lower-numbered) packet gets in."""
    out, inb = sa_pair(suite, esn=esn)
    assert inb.replay is not None
    wires = [out.encapsulate(ipv4_packet(20, seed=i), 4) for i in range(3)]  # seq 1..3
    inb.decapsulate(wires[0])
    forged = bytearray(wires[1])
    struct.pack_into("!I", forged, 4, 10_002)
    with pytest.raises(EspIntegrityFailure):
        inb.decapsulate(bytes(forged))
    assert inb.replay.top == 1 and inb.integrity_failures == 1
    assert inb.decapsulate(wires[1]) == (ipv4_packet(20, seed=1), 4)
    assert inb.decapsulate(wires[2]) == (ipv4_packet(20, seed=2), 4)
    assert inb.replay.top == 3
