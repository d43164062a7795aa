"""TUN offloads in Python: virtio-net headers, TSO segmentation, TCP coalescing, checksums.

Theory of operation
-------------------
With ``IFF_VNET_HDR`` and ``TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)`` the kernel
hands the data plane TCP "super-segments" of up to 64 KB behind a 10-byte
:class:`VnetHdr` (``gso_type`` TCPV4/TCPV6, ``gso_size`` = MSS, ``csum_start``/``csum_offset``
of a *partial* checksum: only the pseudo-header sum is filled in). Such a packet cannot go into
ESP as it is: :func:`segment_tso` cuts it into MSS-sized IP packets exactly as the kernel's own
``tcp_gso_segment`` would — header copied once, then per segment the IPv4 total length, ID
(+1 each) and header checksum or the IPv6 payload length, the TCP sequence number, the flags
(CWR on the first segment only, FIN and PSH on the last only) and a *full* TCP checksum — so
that a kernel or strongSwan peer, which verifies inner checksums, accepts them. Non-GSO packets
with ``NEEDS_CSUM`` get their checksum finished by :func:`complete_checksum`. No partial
checksum ever reaches the wire.

The other direction, :class:`TcpCoalescer` gathers consecutive in-order segments of one TCP flow
(same addresses, ports, ack, window and options; only ACK/PSH flags; equal sizes but for a
shorter last one) and writes them to the TUN device as *one* GSO packet (``NEEDS_CSUM`` with the
pseudo-header sum in the checksum field, ``gso_size`` = segment size) through ``writev`` of the
original payload memoryviews: one system call and one trip through the kernel's TCP receive path
per group instead of one per segment. The kernel treats such a packet as checksum-verified; the
segments' integrity was already proven by ESP.

Checksums use the ones'-complement identity ``sum of 16-bit words ≡ int(data) mod 0xFFFF``
(RFC 1071 §2; 2^16 ≡ 1 mod 2^16-1), which CPython evaluates in C. :func:`clamp_mss` rewrites
the MSS option of SYN segments (RFC 879 / RFC 6691) with an incremental checksum update
(RFC 1624), so peers never send segments that would need fragmenting after ESP.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "NEEDS_CSUM",
    "VNET_HDR_LEN",
    "ZERO_VNET_HDR",
    "TcpCoalescer",
    "VnetHdr",
    "checksum",
    "clamp_mss",
    "complete_checksum",
    "ones_sum",
    "segment_tso",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview

VNET_HDR_LEN = 10
NEEDS_CSUM = 1  # VIRTIO_NET_HDR_F_NEEDS_CSUM
DATA_VALID = 2  # VIRTIO_NET_HDR_F_DATA_VALID
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_ECN = 0x80
_VNET = struct.Struct("=BBHHHH")
ZERO_VNET_HDR = bytes(VNET_HDR_LEN)

_FIN, _SYN, _RST, _PSH, _ACK, _URG, _ECE, _CWR = 1, 2, 4, 8, 16, 32, 64, 128
_pack_into = struct.pack_into
_u32 = struct.Struct(">I").unpack_from
_seq_flags = struct.Struct(">I5xB").unpack_from
_from = int.from_bytes


@dataclass(frozen=True, slots=True)
class VnetHdr:
    """``struct virtio_net_hdr`` (legacy layout, host byte order as TUN uses it)."""

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @classmethod
    def unpack(cls, data: BytesLike) -> VnetHdr:
        return cls(*_VNET.unpack_from(data))

    def pack(self) -> bytes:
        return _VNET.pack(
            self.flags, self.gso_type, self.hdr_len, self.gso_size, self.csum_start, self.csum_offset
        )


def ones_sum(data: BytesLike) -> int:
    """The ones'-complement sum of ``data`` as 16-bit big-endian words, reduced mod 0xFFFF
    (an odd trailing byte is padded with a zero on the right, RFC 1071)."""
    n = _from(data, "big")
    if len(data) & 1:
        n <<= 8
    return n % 0xFFFF


def checksum(data: BytesLike, initial: int = 0) -> int:
    """The Internet checksum (RFC 1071) of ``data`` with ``initial`` added to the sum; never 0
    (0xFFFF stands for it, as UDP requires)."""
    return 0xFFFF - (ones_sum(data) + initial) % 0xFFFF


def complete_checksum(pkt: memoryview | bytearray, csum_start: int, csum_offset: int) -> None:
    """Finish a partial checksum (``NEEDS_CSUM``): the field already holds the pseudo-header
    sum, so the checksum is the complement of the sum from ``csum_start`` to the end."""
    at = csum_start + csum_offset
    if at + 2 > len(pkt) or csum_start >= len(pkt):
        return
    _pack_into(">H", pkt, at, 0xFFFF - ones_sum(pkt[csum_start:]))


def _pseudo_sum(pkt: BytesLike, version: int) -> int:
    """Sum of the source and destination addresses of an IP header (pseudo-header part)."""
    if version == 4:
        return _from(pkt[12:20], "big") % 0xFFFF
    return _from(pkt[8:40], "big") % 0xFFFF


def segment_tso(
    pkt: memoryview,
    gso_size: int,
    l4: int,
    out: memoryview,
    emit: Callable[[int], object],
) -> int:
    """Cut a TCP super-segment ``pkt`` (IP header at 0, TCP header at ``l4``) into segments of
    ``gso_size`` payload bytes. Each segment is built in ``out[0:n]`` with complete headers and
    checksums, then ``emit(n)`` is called (before the next segment overwrites ``out``).
    Returns the number of segments."""
    version = pkt[0] >> 4
    thl = (pkt[l4 + 12] >> 4) * 4
    hl = l4 + thl
    total = len(pkt)
    if gso_size <= 0 or hl >= total:
        out[:total] = pkt
        if version == 4:
            _pack_into(">H", out, 10, 0)
            _pack_into(">H", out, 10, checksum(out[:l4]))
        _pack_into(">H", out, l4 + 16, 0)
        _pack_into(">H", out, l4 + 16, checksum(out[l4:total], _pseudo_sum(pkt, version) + 6 + total - l4))
        emit(total)
        return 1
    out[:hl] = pkt[:hl]
    seq0 = _u32(pkt, l4 + 4)[0]
    flags = pkt[l4 + 13]
    doff = pkt[l4 + 12] << 8
    # TCP: header sum without seq, flags word and checksum; plus the pseudo-header sans length
    _pack_into(">I", out, l4 + 4, 0)
    _pack_into(">BB", out, l4 + 12, 0, 0)
    _pack_into(">H", out, l4 + 16, 0)
    base_tcp = ones_sum(out[l4:hl]) + _pseudo_sum(pkt, version) + 6 + thl
    out[l4 + 12] = pkt[l4 + 12]
    if version == 4:
        ip_id0 = pkt[4] << 8 | pkt[5]
        _pack_into(">HHH", out, 2, 0, 0, out[6] << 8 | out[7])
        _pack_into(">H", out, 10, 0)
        base_ip = ones_sum(out[:l4])
    else:
        ip_id0 = base_ip = 0
    first_flags = flags & ~(_FIN | _PSH)
    mid_flags = first_flags & ~_CWR
    last_flags = flags & ~_CWR
    pos = hl
    k = 0
    while pos < total:
        end = pos + gso_size
        if end >= total:
            end = total
            f = flags if k == 0 else last_flags
        else:
            f = first_flags if k == 0 else mid_flags
        n = end - pos
        seq = (seq0 + pos - hl) & 0xFFFF_FFFF
        out[hl : hl + n] = pkt[pos:end]
        p = _from(pkt[pos:end], "big")
        if n & 1:
            p <<= 8
        s = base_tcp + n + (seq >> 16) + (seq & 0xFFFF) + (doff | f) + p
        _pack_into(">I", out, l4 + 4, seq)
        out[l4 + 13] = f
        _pack_into(">H", out, l4 + 16, 0xFFFF - s % 0xFFFF)
        if version == 4:
            tot = hl + n
            ip_id = (ip_id0 + k) & 0xFFFF
            _pack_into(">HH", out, 2, tot, ip_id)
            _pack_into(">H", out, 10, 0xFFFF - (base_ip + tot + ip_id) % 0xFFFF)
        else:
            _pack_into(">H", out, 4, hl - 40 + n)
        emit(hl + n)
        pos = end
        k += 1
    return k


def clamp_mss(pkt: memoryview | bytearray, l4: int, max_mss: int, *, fix_checksum: bool = True) -> bool:
    """Lower the MSS option of a TCP SYN to ``max_mss``; True if the packet changed.

    With ``fix_checksum`` the TCP checksum is updated incrementally (RFC 1624 eqn. 3);
    without it (a partial checksum still to be completed) only the option changes.
    """
    if l4 + 20 > len(pkt) or not pkt[l4 + 13] & _SYN:
        return False
    thl = (pkt[l4 + 12] >> 4) * 4
    end = min(l4 + thl, len(pkt))
    i = l4 + 20
    while i < end:
        kind = pkt[i]
        if kind == 0:
            return False
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            return False
        size = pkt[i + 1]
        if size < 2:
            return False
        if kind == 2 and size == 4 and i + 4 <= end:
            old = pkt[i + 2] << 8 | pkt[i + 3]
            if old <= max_mss:
                return False
            _pack_into(">H", pkt, i + 2, max_mss)
            if fix_checksum:
                hc = pkt[l4 + 16] << 8 | pkt[l4 + 17]
                s = (~hc & 0xFFFF) + (~old & 0xFFFF) + max_mss
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                _pack_into(">H", pkt, l4 + 16, ~s & 0xFFFF)
            return True
        i += size
    return False


class TcpCoalescer:
    """Groups in-order TCP segments of one flow into GSO writes (module docstring).

    ``write(parts)`` receives the iovecs of one TUN write (virtio-net header first). Packets
    passed to :meth:`add` must stay valid (unchanged) until :meth:`flush`.
    """

    __slots__ = (
        "_count",
        "_first",
        "_flags",
        "_gso",
        "_hl",
        "_key",
        "_l4",
        "_next",
        "_parts",
        "_structs",
        "_total",
        "_version",
        "closed",
        "groups",
        "max_segments",
        "write",
    )

    def __init__(self, write: Callable[[Sequence[BytesLike]], object], *, max_segments: int = 64) -> None:
        self.write = write
        self.max_segments = max_segments
        self._structs: dict[int, struct.Struct] = {}
        self._count = 0
        self._first: memoryview | None = None
        self._parts: list[BytesLike] = []
        self._key: tuple[object, ...] = ()
        self._next = 0
        self._gso = 0
        self._hl = 0
        self._l4 = 0
        self._version = 4
        self._total = 0
        self._flags = 0
        self.closed = False
        self.groups = 0  # GSO writes made (statistics)

    def _key_struct(self, l4: int, thl: int) -> struct.Struct:
        """Fields that must be equal for two segments to merge (all but length, ID, IP checksum,
        sequence number, flags and TCP checksum): TOS/traffic class and TTL/hop limit,
        addresses, ports, ack, data offset, window, urgent pointer, options."""
        st = self._structs.get(l4 << 8 | thl)
        if st is None:
            opts = f"{thl - 20}s" if thl > 20 else ""
            if l4 == 20:
                st = struct.Struct(f">xB6xB3x12s4xIBxH2xH{opts}")
            else:
                st = struct.Struct(f">I3xB36s4xIBxH2xH{opts}")
            self._structs[l4 << 8 | thl] = st
        return st

    def add(self, pkt: memoryview) -> None:
        n = len(pkt)
        b0 = pkt[0]
        if b0 == 0x45 and n >= 40 and pkt[9] == 6 and not ((pkt[6] & 0x3F) | pkt[7]):
            l4 = 20
        elif b0 >> 4 == 6 and n >= 60 and pkt[6] == 6:
            l4 = 40
        else:
            self.flush()
            self.write((ZERO_VNET_HDR, pkt))
            return
        thl = (pkt[l4 + 12] >> 4) * 4
        hl = l4 + thl
        seq, flags = _seq_flags(pkt, l4 + 4)
        size = n - hl
        if size <= 0 or thl < 20 or hl > n or flags & ~(_ACK | _PSH) or not flags & _ACK:
            self.flush()
            self.write((ZERO_VNET_HDR, pkt))
            return
        key = self._key_struct(l4, thl).unpack_from(pkt)
        if self._count:
            if (
                seq == self._next
                and key == self._key
                and size <= self._gso
                and self._count < self.max_segments
                and self._total + size + hl <= 65535
            ):
                self._parts.append(pkt[hl:])
                self._count += 1
                self._total += size
                self._next = (seq + size) & 0xFFFF_FFFF
                self._flags |= flags
                if size < self._gso or flags & _PSH:
                    self.flush()
                return
            self.flush()
        self._key = key
        self._first = pkt
        self._parts = [pkt[hl:]]
        self._count = 1
        self._gso = size
        self._total = size
        self._hl = hl
        self._l4 = l4
        self._version = 4 if l4 == 20 else 6
        self._next = (seq + size) & 0xFFFF_FFFF
        self._flags = flags
        if flags & _PSH:
            self.flush()

    def flush(self) -> None:
        count = self._count
        if not count:
            return
        first = self._first
        assert first is not None
        self._count = 0
        self._first = None
        if count == 1:
            self.write((ZERO_VNET_HDR, first))
            return
        hl, l4, total = self._hl, self._l4, self._total
        hdr = bytearray(first[:hl])
        if self._version == 4:
            _pack_into(">H", hdr, 2, hl + total)
            _pack_into(">H", hdr, 10, 0)
            _pack_into(">H", hdr, 10, checksum(hdr[:l4]))
            gso_type = GSO_TCPV4
        else:
            _pack_into(">H", hdr, 4, hl - 40 + total)
            gso_type = GSO_TCPV6
        hdr[l4 + 13] = self._flags
        # CHECKSUM_PARTIAL convention: the field holds the (uncomplemented) pseudo-header sum
        pseudo = (_pseudo_sum(first, self._version) + 6 + hl - l4 + total) % 0xFFFF
        _pack_into(">H", hdr, l4 + 16, pseudo)
        vnet = _VNET.pack(NEEDS_CSUM, gso_type, hl, self._gso, l4, 16)
        self.groups += 1
        self.write((vnet, hdr, *self._parts))
