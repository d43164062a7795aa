"""The batched hot path with in-memory I/O: TSO → GSO runs → GRO batches → coalesced writes."""

from __future__ import annotations

import os
import struct
from ipaddress import ip_address

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.dataplane.fastpath import MAX_RUN_PACKETS, Decapsulator, Encapsulator
from pyipsec.dataplane.offload import GSO_TCPV4, VnetHdr, complete_checksum
from pyipsec.esp.processor import EspProcessor
from pyipsec.esp.sa import Direction, EspSa, EspSaConfig
from pyipsec.esp.sad import Child
from pyipsec.esp.spd import Selector
from pyipsec.net.addr import Endpoint
from tests.unit.esp._support import SUITE_IDS, SUITES, Suite, child_sa_spec

from ._packets import inet_checksum, ipv4_tcp, ipv4_udp, tcp_checksum_ok

N = Selector.network
A, B = Endpoint(ip_address("192.0.2.1"), 4500), Endpoint(ip_address("192.0.2.2"), 4500)


class Wire:
    def __init__(self) -> None:
        self.runs: list[tuple[str, bytes, int, int]] = []

    def send(self, route: str, data: memoryview, seg: int, count: int) -> None:
        self.runs.append((route, bytes(data), seg, count))


class Tun:
    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    def write(self, parts: object) -> None:
        assert isinstance(parts, tuple)
        self.writes.append([bytes(p) for p in parts])


def _peers(
    suite: Suite, *, batch: bool = True, vnet: bool = True
) -> tuple[Encapsulator[str], Wire, Decapsulator, Tun, EspProcessor]:
    a, b = EspProcessor(rng=SeededRandom(1)), EspProcessor(rng=SeededRandom(2))
    a.install(child_sa_spec(suite, 0x1000, 0x2000, "10.1.0.0/16", "10.2.0.0/16", A, B))
    b.install(child_sa_spec(suite, 0x2000, 0x1000, "10.2.0.0/16", "10.1.0.0/16", B, A))
    wire, tun = Wire(), Tun()

    def route_of(child: Child) -> str:
        return "udp" if batch else "raw"

    enc = Encapsulator(a, route_of, wire.send, batchable=lambda r: r == "udp", max_mss4=1360)
    dec = Decapsulator(b, tun.write, vnet_hdr=vnet, max_mss4=1360)
    return enc, wire, dec, tun, b


def _partial_super(payload: bytes) -> bytearray:
    pkt = bytearray(ipv4_tcp(payload, seq=1, flags=0x18))
    s = struct.unpack(">H", pkt[36:38])[0]
    # partial checksum as TUN gives it: pseudo-header sum only
    pseudo = pkt[12:20] + struct.pack(">BBH", 0, 6, len(pkt) - 20)
    struct.pack_into(">H", pkt, 36, ~inet_checksum(pseudo) & 0xFFFF)
    assert s != pkt[36:38]
    return pkt


@pytest.mark.parametrize("suite", [SUITES[2], SUITES[3], SUITES[5]], ids=lambda s: s.name)
def test_tso_to_gso_runs_to_coalesced_tun_writes(suite: Suite) -> None:
    enc, wire, dec, tun, b = _peers(suite)
    payload = os.urandom(64000 - 52)
    enc.super_segment(memoryview(_partial_super(payload)), 1360, 20)
    enc.flush()
    assert wire.runs, "nothing sent"
    nseg = -(-len(payload) // 1360)
    assert sum(r[3] for r in wire.runs) == nseg
    for route, data, seg, count in wire.runs:
        assert route == "udp" and count <= MAX_RUN_PACKETS and len(data) <= 65000
        # GSO semantics: count packets of `seg` bytes, the last one possibly shorter
        assert (count - 1) * seg < len(data) <= count * seg
        dec.datagram(memoryview(data), seg)  # as GRO would deliver it
    dec.flush()
    got = b""
    for parts in tun.writes:
        h = VnetHdr.unpack(parts[0])
        whole = b"".join(parts[1:])
        if h.gso_type == GSO_TCPV4:
            done = bytearray(whole)
            complete_checksum(done, 20, 16)
            assert tcp_checksum_ok(bytes(done))
        else:
            assert tcp_checksum_ok(whole)  # full checksum computed by the segmenter
        got += whole[(whole[0] & 15) * 4 + (whole[32] >> 4) * 4 :]
    assert got == payload
    assert b.sad.children[0x2000].inbound.packets == nseg


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_single_packets_without_vnet_header(suite: Suite) -> None:
    enc, wire, dec, tun, _ = _peers(suite, batch=False, vnet=False)
    pkts = [ipv4_udp(os.urandom(n)) for n in (1, 64, 64, 64, 1000)]
    for p in pkts:
        enc.plain(memoryview(bytearray(p)))
    enc.flush()
    assert [r[3] for r in wire.runs] == [1] * len(pkts)
    for _route, data, _seg, _count in wire.runs:
        dec.datagram(memoryview(data))
    dec.flush()
    assert [w[0] for w in tun.writes] == pkts


def test_equal_sized_packets_share_a_run_and_the_short_one_ends_it() -> None:
    enc, wire, _dec, _tun, _ = _peers(SUITES[2])
    for n in (100, 100, 100, 40, 100):
        enc.plain(memoryview(bytearray(ipv4_udp(bytes(n)))))
    enc.flush()
    assert [r[3] for r in wire.runs] == [4, 1]


def test_partial_checksum_completed_and_syn_clamped() -> None:
    enc, wire, dec, tun, _ = _peers(SUITES[2], vnet=False)
    pkt = _partial_super(b"abc")
    enc.packet_with_partial_csum(memoryview(pkt), 20, 16)
    syn = bytearray(ipv4_tcp(b"", flags=0x02, options=bytes((2, 4)) + struct.pack(">H", 1460)))
    enc.plain(memoryview(syn))
    enc.flush()
    for _r, data, seg, _c in wire.runs:
        dec.datagram(memoryview(data), seg)
    dec.flush()
    first, second = tun.writes[0][0], tun.writes[1][0]
    assert tcp_checksum_ok(first)
    assert tcp_checksum_ok(second) and struct.unpack(">H", second[42:44])[0] == 1360


def test_decapsulator_drops_and_non_esp() -> None:
    enc, wire, _dec, _tun, b = _peers(SUITES[2])
    others: list[bytes] = []
    tun = Tun()
    dec = Decapsulator(b, tun.write, vnet_hdr=True, on_other=lambda m: others.append(bytes(m)))
    dec.datagram(memoryview(b"\xff"))
    dec.datagram(memoryview(b"\x00\x00\x00\x00IKE-message-bytes"))
    dec.datagram(memoryview(b"\x00\x00\x77\x77" + bytes(40)))
    dec.datagram(memoryview(b"\x01\x02\x03"))
    enc.plain(memoryview(bytearray(ipv4_udp(b"x" * 10))))
    enc.flush()
    esp = bytearray(wire.runs[0][1])
    esp[-3] ^= 0x40
    dec.datagram(memoryview(bytes(esp)))
    dec.flush()
    assert others == [b"\xff", b"\x00\x00\x00\x00IKE-message-bytes"]
    assert b.counters.unknown_spi == 1 and b.counters.malformed == 1
    assert b.sad.children[0x2000].inbound.integrity_failures == 1
    assert tun.writes == []


def test_no_policy_reported() -> None:
    seen: list[bytes] = []
    a = EspProcessor()
    enc: Encapsulator[str] = Encapsulator(a, lambda c: "x", lambda *args: None, batchable=lambda r: True,
                                          on_no_policy=lambda p: seen.append(bytes(p)))  # fmt: skip
    pkt = ipv4_udp(b"nobody")
    enc.plain(memoryview(bytearray(pkt)))
    assert seen == [pkt] and a.counters.no_policy == 1


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
@pytest.mark.parametrize("esn", [False, True])
def test_buffer_api_matches_bytes_api(suite: Suite, esn: bool) -> None:
    ek, ik = suite.keys(5)

    def sa(direction: Direction) -> EspSa:
        cfg = EspSaConfig(spi=0x4242, direction=direction, encr=suite.encr, encr_key=ek, integ=suite.integ,
                          integ_key=ik, esn=esn)  # fmt: skip
        return EspSa(cfg, rng=SeededRandom(3))

    out, inb, ref_in = sa(Direction.OUTBOUND), sa(Direction.INBOUND), sa(Direction.INBOUND)
    if esn:
        out.seq.skip_to(0x7FFF_FFF0)  # type: ignore[union-attr]
    scratch = bytearray(3000)
    wire = bytearray(3100)
    plain = bytearray(3100)
    for n in (0, 1, 14, 15, 16, 17, 1400):
        inner = ipv4_udp(os.urandom(n))
        off = out.payload_offset
        scratch[off : off + len(inner)] = inner
        m = out.encapsulate_into(memoryview(scratch), len(inner), 4, memoryview(wire))
        assert m == out.encapsulated_len(len(inner))
        esp = bytes(wire[:m])
        start, end, nh = inb.decapsulate_into(esp, memoryview(plain))
        assert (bytes(plain[start:end]), nh) == (inner, 4)
        assert ref_in.decapsulate(esp) == (inner, 4)
    assert out.packets == inb.packets == 7


@pytest.mark.parametrize("vnet", [True, False])
@pytest.mark.parametrize("suite", [SUITES[2], SUITES[5]], ids=lambda s: s.name)
def test_drain_reads_straight_into_the_sealing_buffer(suite: Suite, vnet: bool) -> None:
    enc, wire, dec, tun, _ = _peers(suite, vnet=vnet)
    syn = ipv4_tcp(b"", flags=0x02, options=bytes((2, 4)) + struct.pack(">H", 1460))
    pkts = [ipv4_udp(bytes([i]) * 200) for i in range(5)] + [syn, ipv4_udp(b"x", dst="192.0.2.77")]
    pkts += [ipv4_udp(b"late", src="10.1.0.9")]
    queue = list(pkts)

    def read(bufs: object) -> int:
        assert isinstance(bufs, tuple)
        if not queue:
            raise BlockingIOError
        data = (VnetHdr().pack() if vnet else b"") + queue.pop(0)
        bufs[0][: len(data)] = data
        return len(data)

    assert enc.drain(read, vnet_hdr=vnet, budget=3) == 3
    assert enc.drain(read, vnet_hdr=vnet, budget=100) == len(pkts) - 3
    assert enc.processor.counters.no_policy == 1
    for _r, data, seg, _c in wire.runs:
        dec.datagram(memoryview(data), seg)
    dec.flush()
    got = [b"".join(w[1:]) if vnet else w[0] for w in tun.writes]
    expected = [p for p in pkts if b"\xc0\x00\x02\x4d" not in p[16:20]]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if e is syn:
            assert tcp_checksum_ok(g) and struct.unpack(">H", g[42:44])[0] == 1360
        else:
            assert g == e
    assert [r[3] for r in wire.runs][:1] == [3]  # the first three equal-size packets: one run
