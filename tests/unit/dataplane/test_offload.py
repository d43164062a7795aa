"""TSO segmentation, checksum completion, MSS clamping and TCP coalescing (dataplane.offload)."""

from __future__ import annotations

import os
import struct

import pytest
from scapy.layers.inet import IP, TCP  # type: ignore[import-untyped]

from pyipsec.dataplane.offload import (
    GSO_TCPV4,
    GSO_TCPV6,
    NEEDS_CSUM,
    ZERO_VNET_HDR,
    TcpCoalescer,
    VnetHdr,
    checksum,
    clamp_mss,
    complete_checksum,
    ones_sum,
    segment_tso,
)

from ._packets import inet_checksum, ipv4_header_ok, ipv4_tcp, ipv4_udp, ipv6_tcp, tcp_checksum_ok

TS_OPT = bytes((1, 1, 8, 10)) + struct.pack(">II", 123456, 654321)


def _partial(pkt: bytes, l4: int) -> bytearray:
    """What TUN hands over with NEEDS_CSUM: the L4 checksum field holds the pseudo-header sum."""
    out = bytearray(pkt)
    v4 = pkt[0] >> 4 == 4
    src, dst = (pkt[12:16], pkt[16:20]) if v4 else (pkt[8:24], pkt[24:40])
    proto = pkt[9] if v4 else pkt[6]
    off = l4 + (16 if proto == 6 else 6)
    length = len(pkt) - l4
    pseudo = (
        src + dst + (struct.pack(">BBH", 0, proto, length) if v4 else struct.pack(">IxxxB", length, proto))
    )
    struct.pack_into(">H", out, off, ~inet_checksum(pseudo) & 0xFFFF)
    return out


@pytest.mark.parametrize("n", [0, 1, 2, 3, 99, 1000, 1399])
def test_checksum_matches_textbook(n: int) -> None:
    data = os.urandom(n)
    assert checksum(data) == (inet_checksum(data) or 0xFFFF)
    assert (ones_sum(data) + ((~inet_checksum(data)) & 0xFFFF)) % 0xFFFF == (2 * ones_sum(data)) % 0xFFFF


def test_vnet_header_round_trip() -> None:
    h = VnetHdr(NEEDS_CSUM, GSO_TCPV4, 52, 1360, 20, 16)
    assert VnetHdr.unpack(h.pack()) == h
    assert len(h.pack()) == 10


@pytest.mark.parametrize("proto", ["tcp4", "udp4", "tcp6"])
def test_complete_checksum(proto: str) -> None:
    if proto == "tcp4":
        pkt, l4, off = ipv4_tcp(os.urandom(777)), 20, 16
    elif proto == "udp4":
        pkt, l4, off = ipv4_udp(os.urandom(333)), 20, 6
    else:
        pkt, l4, off = ipv6_tcp(os.urandom(501)), 40, 16
    partial = _partial(pkt, l4)
    assert bytes(partial) != pkt or proto == "x"
    complete_checksum(partial, l4, off)
    assert tcp_checksum_ok(bytes(partial))


def _super(version: int, payload: bytes, flags: int, *, options: bytes = b"") -> tuple[bytearray, int]:
    if version == 4:
        pkt = ipv4_tcp(payload, seq=0xFFFF_F000, flags=flags, ip_id=0xFFFE, options=options)
        return _partial(pkt, 20), 20
    return _partial(ipv6_tcp(payload, seq=5, flags=flags), 40), 40


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("size", [1, 1359, 1360, 1361, 65000 - 52])
def test_segment_tso_matches_kernel_rules(version: int, size: int) -> None:
    payload = os.urandom(size)
    flags = 0x80 | 0x10 | 0x08 | 0x01  # CWR ACK PSH FIN
    sup, l4 = _super(version, payload, flags, options=TS_OPT if version == 4 else b"")
    mss = 1360
    out = bytearray(70000)
    segs: list[bytes] = []
    count = segment_tso(memoryview(sup), mss, l4, memoryview(out), lambda n: segs.append(bytes(out[:n])))
    assert count == len(segs) == max(1, -(-size // mss))
    hl = l4 + (32 if version == 4 else 20)
    assert b"".join(s[hl:] for s in segs) == payload
    seq0 = struct.unpack_from(">I", sup, l4 + 4)[0]
    for k, seg in enumerate(segs):
        assert tcp_checksum_ok(seg), k
        assert struct.unpack_from(">I", seg, l4 + 4)[0] == (seq0 + k * mss) & 0xFFFF_FFFF
        f = seg[l4 + 13]
        assert bool(f & 0x80) == (k == 0)  # CWR on the first only
        assert bool(f & 0x09) == (k == count - 1)  # FIN, PSH on the last only
        assert f & 0x10
        assert seg[l4 + 20 : hl] == sup[l4 + 20 : hl]  # options copied
        if version == 4:
            assert ipv4_header_ok(seg)
            assert struct.unpack_from(">H", seg, 2)[0] == len(seg)
            assert struct.unpack_from(">H", seg, 4)[0] == (0xFFFE + k) & 0xFFFF
        else:
            assert struct.unpack_from(">H", seg, 4)[0] == len(seg) - 40
    # an independent decoder agrees
    if version == 4:
        parsed = IP(segs[0])
        assert parsed[TCP].dport == 5201
        raw = bytes(segs[0])
        del parsed.chksum
        del parsed[TCP].chksum
        assert bytes(parsed) == raw


def test_clamp_mss_updates_checksum() -> None:
    syn = ipv4_tcp(b"", flags=0x02, options=bytes((2, 4)) + struct.pack(">H", 1460) + bytes((1, 1, 1, 0)))
    buf = bytearray(syn)
    assert clamp_mss(buf, 20, 1360)
    assert struct.unpack_from(">H", buf, 42)[0] == 1360
    assert tcp_checksum_ok(bytes(buf))
    assert not clamp_mss(buf, 20, 1400)  # already small enough
    ack = bytearray(ipv4_tcp(b"", flags=0x10, options=bytes((2, 4)) + struct.pack(">H", 1460)))
    assert not clamp_mss(ack, 20, 1000)  # not a SYN
    junk = bytearray(ipv4_tcp(b"", flags=0x02, options=bytes((9, 0, 0, 0))))
    assert not clamp_mss(junk, 20, 1000)  # malformed option length: left alone


class _Tun:
    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    def __call__(self, parts: object) -> None:
        assert isinstance(parts, tuple)
        self.writes.append([bytes(p) for p in parts])


def _stream(version: int, sizes: list[int], *, seq: int = 100, psh_last: bool = False) -> list[bytes]:
    out = []
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        f = 0x10 | (0x08 if last and psh_last else 0)
        data = bytes([i & 0xFF]) * n
        pkt = ipv4_tcp(data, seq=seq, flags=f, ip_id=i) if version == 4 else ipv6_tcp(data, seq=seq, flags=f)
        out.append(pkt)
        seq += n
    return out


@pytest.mark.parametrize("version", [4, 6])
def test_coalescer_merges_in_order_segments(version: int) -> None:
    tun = _Tun()
    co = TcpCoalescer(tun)
    pkts = _stream(version, [1360] * 10 + [500])
    for p in pkts:
        co.add(memoryview(p))
    co.flush()
    assert len(tun.writes) == 1
    vnet, hdr, *payloads = tun.writes[0]
    h = VnetHdr.unpack(vnet)
    l4 = 20 if version == 4 else 40
    assert h.flags == NEEDS_CSUM
    assert h.gso_type == (GSO_TCPV4 if version == 4 else GSO_TCPV6)
    assert (h.gso_size, h.csum_start, h.csum_offset, h.hdr_len) == (1360, l4, 16, l4 + 20)
    hl = l4 + 20
    assert b"".join(payloads) == b"".join(p[hl:] for p in pkts)
    whole = hdr + b"".join(payloads)
    if version == 4:
        assert ipv4_header_ok(whole)
        assert struct.unpack_from(">H", whole, 2)[0] == len(whole)
    else:
        assert struct.unpack_from(">H", whole, 4)[0] == len(whole) - 40
    # the checksum field holds the pseudo-header sum: finishing it gives a valid checksum
    done = bytearray(whole)
    complete_checksum(done, l4, 16)
    assert tcp_checksum_ok(bytes(done))


def test_coalescer_breaks_on_gaps_flags_and_other_flows() -> None:
    tun = _Tun()
    co = TcpCoalescer(tun)
    a = _stream(4, [1000, 1000])
    gap = ipv4_tcp(b"x" * 1000, seq=100 + 3000, flags=0x10)  # hole before it
    syn = ipv4_tcp(b"", flags=0x02)
    other = ipv4_tcp(b"y" * 1000, sport=1234, seq=100 + 2000, flags=0x10)
    udp = ipv4_udp(b"z" * 100)
    for p in (*a, gap, syn, other, udp):
        co.add(memoryview(p))
    co.flush()
    # a (merged), gap, syn, other, udp
    assert [len(w) for w in tun.writes] == [4, 2, 2, 2, 2]
    assert tun.writes[1] == [ZERO_VNET_HDR, gap]
    assert tun.writes[4] == [ZERO_VNET_HDR, udp]


def test_coalescer_psh_and_short_segment_end_a_group() -> None:
    tun = _Tun()
    co = TcpCoalescer(tun)
    for p in _stream(4, [800, 800, 300], psh_last=True) + _stream(4, [800], seq=2000):
        co.add(memoryview(p))
    co.flush()
    assert len(tun.writes) == 2
    assert len(tun.writes[0]) == 2 + 3
    assert tun.writes[0][1][33] & 0x08  # PSH kept on the merged header
