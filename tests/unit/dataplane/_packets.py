"""Test packets for the data-plane tests, and a textbook checksum to check ours against."""

from __future__ import annotations

import struct
from ipaddress import ip_address

__all__ = ["inet_checksum", "ipv4_tcp", "ipv4_udp", "ipv6_tcp", "tcp_checksum_ok", "ipv4_header_ok"]


def inet_checksum(data: bytes) -> int:
    """RFC 1071, the slow obvious way: sum 16-bit words, fold carries, complement."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack(">H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack(">BBH", 0, proto, length)
    return src + dst + struct.pack(">IxxxB", length, proto)


def _tcp(src: bytes, dst: bytes, payload: bytes, *, seq: int, flags: int, sport: int, dport: int,
         options: bytes = b"") -> bytes:  # fmt: skip
    doff = (20 + len(options)) // 4
    hdr = struct.pack(">HHIIBBHHH", sport, dport, seq, 7777, doff << 4, flags, 500, 0, 0) + options
    csum = inet_checksum(_pseudo(src, dst, 6, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:16] + struct.pack(">H", csum) + hdr[18:] + payload


def ipv4_tcp(payload: bytes, *, src: str = "10.1.0.1", dst: str = "10.2.0.1", seq: int = 1000,
             flags: int = 0x18, sport: int = 40000, dport: int = 5201, ip_id: int = 7,
             options: bytes = b"") -> bytes:  # fmt: skip
    s, d = ip_address(src).packed, ip_address(dst).packed
    seg = _tcp(s, d, payload, seq=seq, flags=flags, sport=sport, dport=dport, options=options)
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), ip_id, 0x4000, 64, 6, 0, s, d)
    hdr = hdr[:10] + struct.pack(">H", inet_checksum(hdr)) + hdr[12:]
    return hdr + seg


def ipv6_tcp(payload: bytes, *, src: str = "fd01::1", dst: str = "fd02::1", seq: int = 1000,
             flags: int = 0x18, sport: int = 40000, dport: int = 5201) -> bytes:  # fmt: skip
    s, d = ip_address(src).packed, ip_address(dst).packed
    seg = _tcp(s, d, payload, seq=seq, flags=flags, sport=sport, dport=dport)
    return struct.pack(">IHBB", 6 << 28, len(seg), 6, 64) + s + d + seg


def ipv4_udp(payload: bytes, *, src: str = "10.1.0.1", dst: str = "10.2.0.1", sport: int = 1000,
             dport: int = 2000) -> bytes:  # fmt: skip
    s, d = ip_address(src).packed, ip_address(dst).packed
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = inet_checksum(_pseudo(s, d, 17, len(udp)) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack(">H", csum) + udp[8:]
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0, s, d)
    return hdr[:10] + struct.pack(">H", inet_checksum(hdr)) + hdr[12:] + udp


def ipv4_header_ok(pkt: bytes) -> bool:
    ihl = (pkt[0] & 15) * 4
    return inet_checksum(pkt[:ihl]) == 0


def tcp_checksum_ok(pkt: bytes) -> bool:
    """Verify the L4 checksum of an IPv4 or IPv6 TCP/UDP packet independently."""
    if pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 15) * 4
        src, dst, proto = pkt[12:16], pkt[16:20], pkt[9]
        seg = pkt[ihl : struct.unpack(">H", pkt[2:4])[0]]
    else:
        src, dst, proto = pkt[8:24], pkt[24:40], pkt[6]
        seg = pkt[40 : 40 + struct.unpack(">H", pkt[4:6])[0]]
    return inet_checksum(_pseudo(src, dst, proto, len(seg)) + seg) == 0
