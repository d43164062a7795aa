"""The batched hot path: TUN packets → ESP send runs, and ESP datagrams → TUN writes.

Theory of operation
-------------------
:class:`Encapsulator` takes what one TUN read returned — a plain IP packet, or a TSO
super-segment (see :mod:`.offload`) — and turns it into ESP packets laid out back to back in one
preallocated send buffer. Consecutive packets for the same peer form a *run*; a run is handed to
``send(route, data, segment_size, count)`` as one UDP GSO send (``UDP_SEGMENT``), which requires
equal sizes except for a shorter last packet, at most 64 packets and 64 KB. Routes that cannot
batch (raw ESP, or GSO unavailable) get one ``send`` per packet. Plaintexts are assembled in a
reusable scratch buffer and sealed straight into the send buffer
(:meth:`~pyipsec.esp.sa.EspSa.encapsulate_into`); nothing per packet is allocated but what the
crypto library returns internally.

:class:`Decapsulator` takes one received datagram (with UDP GRO: many ESP packets of one size,
from one peer) and processes each ESP packet: SPI lookup in the current SAD snapshot, the SA's
replay/ICV/padding checks (:meth:`~pyipsec.esp.sa.EspSa.decapsulate_into`, decrypting into a
preallocated buffer), the inbound selector check, MSS clamping of SYNs, then
:class:`~.offload.TcpCoalescer` (or one write per packet without a virtio-net header). Drops
are counted where they happen; a bad packet never stops the batch.

Both classes take their I/O as callables, so tests drive them with in-memory fakes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from pyipsec.childsa import EspMode
from pyipsec.dataplane.offload import (
    NEEDS_CSUM,
    VNET_HDR_LEN,
    ZERO_VNET_HDR,
    BytesLike,
    TcpCoalescer,
    clamp_mss,
    complete_checksum,
    segment_tso,
)
from pyipsec.esp.packet import EspDrop
from pyipsec.esp.processor import EspProcessor, ip_header_for_transport
from pyipsec.esp.replay import SequenceExhausted
from pyipsec.esp.sad import Child

__all__ = ["MAX_RUN_BYTES", "MAX_RUN_PACKETS", "Decapsulator", "Encapsulator"]

MAX_RUN_PACKETS = 64  # UDP_MAX_SEGMENTS
MAX_RUN_BYTES = 65000  # one UDP datagram before segmentation (IPv4 allows 65507)
_MAX_ESP = 65535 + 64  # an ESP packet of a maximal inner packet, with room to spare
_u32 = struct.Struct(">I").unpack_from
_vnet = struct.Struct("=BBHHHH").unpack_from
_HEAD = 16  # drain() reads packets to this offset: room for a CBC IV block before them

R = TypeVar("R")


class Encapsulator(Generic[R]):
    """TUN → ESP runs. ``route_of(child)`` gives the opaque send route of a child (None: drop);
    ``batchable(route)`` says whether runs of several packets may use it."""

    def __init__(
        self,
        processor: EspProcessor,
        route_of: Callable[[Child], R | None],
        send: Callable[[R, memoryview, int, int], object],
        *,
        batchable: Callable[[R], bool],
        max_mss4: int = 0,
        max_mss6: int = 0,
        on_no_policy: Callable[[memoryview], object] | None = None,
    ) -> None:
        self.processor = processor
        self.on_no_policy = on_no_policy
        self.route_of = route_of
        self.send = send
        self.batchable = batchable
        self.max_mss4 = max_mss4
        self.max_mss6 = max_mss6
        self._scratch = memoryview(bytearray(_MAX_ESP + 64))
        self._rbuf = bytearray(_HEAD + _MAX_ESP + 64)
        self._rmv = memoryview(self._rbuf)
        self._sbuf = bytearray(2 * _MAX_ESP + 4096)
        self._smv = memoryview(self._sbuf)
        self._cap = len(self._sbuf) - _MAX_ESP - 64
        self._spos = 0
        self._run_start = 0
        self._count = 0
        self._seg = 0
        self._route: R | None = None
        self._batch = False
        # the child whose super-segment is being cut (read by _emit)
        self._child: Child | None = None
        self._child_route: R | None = None
        self._nh = 4
        self.no_route = 0
        self.runs = 0

    # --- the run buffer ----------------------------------------------------------------------

    def flush(self) -> None:
        """Send the pending run (call after each batch of TUN reads)."""
        if self._count:
            route = self._route
            assert route is not None
            self.send(route, self._smv[self._run_start : self._spos], self._seg, self._count)
            self.runs += 1
            self._count = 0
        self._run_start = self._spos
        if self._spos > self._cap:
            self._spos = self._run_start = 0

    def _seal(self, child: Child, route: R, n: int, nh: int) -> None:
        """Seal ``scratch[payload_offset : payload_offset + n]`` onto the run buffer."""
        if self._spos > self._cap:
            self.flush()
        spos = self._spos
        try:
            m = child.outbound.encapsulate_into(self._scratch, n, nh, self._smv[spos:])
        except SequenceExhausted:
            self.processor.counters.seq_exhausted += 1
            child.expired = True
            return
        count = self._count
        if count and (
            route is not self._route
            or m > self._seg
            or spos + m - self._run_start > MAX_RUN_BYTES
            or count >= MAX_RUN_PACKETS
        ):
            self.flush()
            count = 0
        if count == 0:
            self._run_start = spos
            self._route = route
            self._seg = m
            self._batch = self.batchable(route)
        self._spos = spos + m
        self._count = count + 1
        if m < self._seg or not self._batch:
            self.flush()

    # --- input -------------------------------------------------------------------------------

    def drain(self, read: Callable[[Sequence[memoryview]], int], *, vnet_hdr: bool, budget: int = 64) -> int:
        """Read up to ``budget`` packets with ``read`` (``os.readv`` of the TUN fd: it raises
        BlockingIOError when empty) straight into the sealing buffer, encapsulate them and
        flush the runs. Returns the number of reads. This is the per-packet hot path: the
        packet is never copied before encryption and the child is looked up once per run of
        packets with the same addresses."""
        rbuf = self._rbuf
        rmv = self._rmv
        body = rmv[_HEAD:]
        targets = (rmv[_HEAD - VNET_HDR_LEN :] if vnet_hdr else body,)
        smv = self._smv
        processor = self.processor
        needs_ports = processor.spd.needs_ports
        max4, max6 = self.max_mss4, self.max_mss6
        last_key: bytearray | None = None
        child: Child | None = None
        route: R | None = None
        buf = body
        seal: Callable[[memoryview, int, int, memoryview], int] | None = None
        got = 0
        while got < budget:
            try:
                n = read(targets)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            got += 1
            partial = False
            if vnet_hdr:
                n -= VNET_HDR_LEN
                if n <= 0:
                    continue
                flags, gso_type, _hl, gso_size, cs, co = _vnet(rbuf, _HEAD - VNET_HDR_LEN)
                if gso_type:
                    last_key = None
                    self.super_segment(rmv[_HEAD : _HEAD + n], gso_size, cs)
                    continue
                if flags & NEEDS_CSUM:
                    partial = True
            b0 = rbuf[_HEAD]
            if b0 >> 4 == 4 and n >= 20:
                key = rbuf[_HEAD + 12 : _HEAD + 20]
                if rbuf[_HEAD + 9] == 6 and max4:
                    l4 = _HEAD + (b0 & 15) * 4
                    if l4 + 20 <= _HEAD + n and rbuf[l4 + 13] & 2:
                        clamp_mss(body[:n], l4 - _HEAD, max4, fix_checksum=not partial)
                nh = 4
            elif b0 >> 4 == 6 and n >= 40:
                key = rbuf[_HEAD + 8 : _HEAD + 40]
                if rbuf[_HEAD + 6] == 6 and max6 and n >= 60 and rbuf[_HEAD + 53] & 2:
                    clamp_mss(body[:n], 40, max6, fix_checksum=not partial)
                nh = 41
            else:
                processor.counters.malformed += 1
                continue
            if partial:
                complete_checksum(body[:n], cs, co)
            if needs_ports or child is None or key != last_key or child.expired:
                pkt = body[:n]
                found = self._child_for(pkt)
                if found is None:
                    last_key = None
                    continue
                child, route = found
                if child.mode is not EspMode.TUNNEL:
                    last_key = None
                    self.packet(pkt)
                    continue
                last_key = key
                buf = rmv if child.outbound.payload_offset == _HEAD else body
                seal = child.outbound.encapsulate_into
            assert seal is not None and child is not None and route is not None
            # _seal inlined: calling it here costs about 5 % per packet (1400-byte AES-GCM)
            if self._spos > self._cap:
                self.flush()
            spos = self._spos
            try:
                m = seal(buf, n, nh, smv[spos:])
            except SequenceExhausted:
                processor.counters.seq_exhausted += 1
                child.expired = True
                last_key = None
                continue
            count = self._count
            if count and (
                route is not self._route
                or m > self._seg
                or spos + m - self._run_start > MAX_RUN_BYTES
                or count >= MAX_RUN_PACKETS
            ):
                self.flush()
                count = 0
            if count == 0:
                self._run_start = spos
                self._route = route
                self._seg = m
                self._batch = self.batchable(route)
            self._spos = spos + m
            self._count = count + 1
            if m < self._seg or not self._batch:
                self.flush()
        self.flush()
        return got

    def _child_for(self, pkt: memoryview) -> tuple[Child, R] | None:
        child = self.processor.route(pkt)
        if child is None:
            if self.on_no_policy is not None:
                self.on_no_policy(pkt)
            return None
        route = self.route_of(child)
        if route is None:
            self.no_route += 1
            return None
        return child, route

    def packet(self, pkt: memoryview) -> None:
        """One complete IP packet (checksums final)."""
        found = self._child_for(pkt)
        if found is None:
            return
        child, route = found
        off = child.outbound.payload_offset
        b0 = pkt[0]
        if child.mode is EspMode.TUNNEL:
            n = len(pkt)
            self._scratch[off : off + n] = pkt
            self._seal(child, route, n, 4 if b0 >> 4 == 4 else 41)
            return
        hl = (b0 & 15) * 4 if b0 >> 4 == 4 else 40
        proto = pkt[9] if b0 >> 4 == 4 else pkt[6]
        n = len(pkt) - hl
        self._scratch[off : off + n] = pkt[hl:]
        self._seal(child, route, n, proto)

    def packet_with_partial_csum(self, pkt: memoryview, csum_start: int, csum_offset: int) -> None:
        """A packet whose L4 checksum the kernel left partial (``NEEDS_CSUM``)."""
        self._clamp(pkt, fix=False)
        complete_checksum(pkt, csum_start, csum_offset)
        self.packet(pkt)

    def plain(self, pkt: memoryview) -> None:
        """A packet from a TUN device without offloads: clamp SYNs, then :meth:`packet`."""
        self._clamp(pkt, fix=True)
        self.packet(pkt)

    def _clamp(self, pkt: memoryview, *, fix: bool) -> None:
        if len(pkt) < 40:
            return
        b0 = pkt[0]
        if b0 >> 4 == 4:
            if pkt[9] == 6 and self.max_mss4:
                l4 = (b0 & 15) * 4
                if l4 + 20 <= len(pkt) and pkt[l4 + 13] & 2:
                    clamp_mss(pkt, l4, self.max_mss4, fix_checksum=fix)
        elif len(pkt) >= 60 and pkt[6] == 6 and self.max_mss6 and pkt[53] & 2:
            clamp_mss(pkt, 40, self.max_mss6, fix_checksum=fix)

    def super_segment(self, pkt: memoryview, gso_size: int, l4: int) -> None:
        """A TSO super-segment: cut into MSS-sized segments, each sealed onto the runs."""
        found = self._child_for(pkt)
        if found is None:
            return
        child, route = found
        if child.mode is not EspMode.TUNNEL:
            # transport mode: segment into plain packets first, then the per-packet path
            seg = bytearray(len(pkt) + 64)
            segment_tso(pkt, gso_size, l4, memoryview(seg), lambda n: self.packet(memoryview(seg)[:n]))
            return
        self._child = child
        self._child_route = route
        self._nh = 4 if pkt[0] >> 4 == 4 else 41
        off = child.outbound.payload_offset
        segment_tso(pkt, gso_size, l4, self._scratch[off:], self._emit)
        self._child = None

    def _emit(self, n: int) -> None:
        child = self._child
        route = self._child_route
        assert child is not None and route is not None
        self._seal(child, route, n, self._nh)


class Decapsulator:
    """ESP datagrams → TUN writes. ``write(parts)`` gets the iovecs of one TUN write (with the
    virtio-net header first when ``vnet_hdr``); ``on_other(segment)`` gets what is not ESP
    (a 4-zero-byte marker: IKE on the NAT-T port)."""

    def __init__(
        self,
        processor: EspProcessor,
        write: Callable[[Sequence[BytesLike]], object],
        *,
        vnet_hdr: bool,
        coalesce: bool = True,
        on_other: Callable[[memoryview], object] | None = None,
        max_mss4: int = 0,
        max_mss6: int = 0,
    ) -> None:
        self.processor = processor
        self.vnet_hdr = vnet_hdr
        self._write = write
        self.on_other = on_other
        self.max_mss4 = max_mss4
        self.max_mss6 = max_mss6
        self.coalescer: TcpCoalescer | None = TcpCoalescer(write) if vnet_hdr and coalesce else None
        self._obuf = bytearray(4 * 65536)
        self._omv = memoryview(self._obuf)
        self._ocap = len(self._obuf) - 65536 - 64
        self._opos = 0

    def flush(self) -> None:
        if self.coalescer is not None:
            self.coalescer.flush()
        self._opos = 0

    def _deliver(self, pkt: memoryview) -> None:
        if self.coalescer is not None:
            self.coalescer.add(pkt)
        elif self.vnet_hdr:
            self._write((ZERO_VNET_HDR, pkt))
        else:
            self._write((pkt,))

    def datagram(self, data: memoryview, segment: int = 0) -> None:
        """A received UDP payload or raw ESP packet; with GRO, ``segment`` is the size of each
        of the ESP packets it holds (the last may be shorter). Call :meth:`flush` after a batch.

        This is the receive hot path: the SA, its decrypt method and the last accepted address
        pair are remembered across the packets of the batch (they normally share them all)."""
        total = len(data)
        if segment <= 0 or segment > total:
            segment = total
        processor = self.processor
        counters = processor.counters
        inbound = processor.sad.inbound
        obuf = self._obuf
        omv = self._omv
        deliver = self._deliver
        max4 = self.max_mss4
        last_spi = -1
        child: Child | None = None
        dec: Callable[[BytesLike, memoryview], tuple[int, int, int]] | None = None
        memo = False
        last_addr: bytearray | None = None
        off = 0
        while off < total:
            end = off + segment
            if end > total:  # noqa: PLR1730  (cheaper than min() on the hot path)
                end = total
            if end - off < 8:
                self._one(data[off:end])
                off = end
                continue
            spi = _u32(data, off)[0]
            if spi != last_spi or child is None:
                child = inbound.get(spi)
                if child is None or spi == 0 or child.mode is not EspMode.TUNNEL:
                    last_spi = -1
                    child = None
                    self._one(data[off:end])
                    off = end
                    continue
                last_spi = spi
                dec = child.inbound.decapsulate_into
                memo = not child.check.needs_ports
                last_addr = None
            if child.expired:
                counters.expired += 1
                off = end
                continue
            if self._opos > self._ocap:
                self.flush()
            opos = self._opos
            assert dec is not None
            try:
                start, stop, nh = dec(data[off:end], omv[opos:])
            except EspDrop:
                off = end
                continue
            off = end
            base = opos + start
            if nh == 4:
                addr = obuf[base + 12 : base + 20]
            elif nh == 41:
                addr = obuf[base + 8 : base + 40]
            else:
                if nh != 59:  # 59: dummy packet (RFC 4303 §2.6), discarded silently
                    child.policy_drops += 1
                continue
            pkt = omv[base : opos + stop]
            if not memo or addr != last_addr:
                if not child.check(pkt):
                    child.policy_drops += 1
                    continue
                last_addr = addr if memo else None
            self._opos = opos + stop + 16
            if nh == 4:
                if (
                    obuf[base + 9] == 6
                    and max4
                    and stop - start >= 40
                    and obuf[base + 33] & 2
                    and obuf[base] == 0x45
                ):
                    clamp_mss(pkt, 20, max4)
            elif obuf[base + 6] == 6 and self.max_mss6 and stop - start >= 60 and obuf[base + 53] & 2:
                clamp_mss(pkt, 40, self.max_mss6)
            deliver(pkt)

    def _one(self, esp: memoryview) -> None:
        counters = self.processor.counters
        if len(esp) < 8:
            if self.on_other is not None and len(esp) == 1 and esp[0] == 0xFF:
                self.on_other(esp)
            else:
                counters.malformed += 1
            return
        spi = _u32(esp)[0]
        if spi == 0:
            if self.on_other is not None:
                self.on_other(esp)
            else:
                counters.malformed += 1
            return
        child = self.processor.sad.inbound.get(spi)
        if child is None:
            counters.unknown_spi += 1
            return
        if child.expired:
            counters.expired += 1
            return
        if self._opos > self._ocap:
            self.flush()
        opos = self._opos
        try:
            start, end, nh = child.inbound.decapsulate_into(esp, self._omv[opos:])
        except EspDrop:
            return
        if child.mode is EspMode.TUNNEL:
            if nh != 4 and nh != 41:  # noqa: PLR1714  (two compares beat a tuple here)
                if nh != 59:
                    child.policy_drops += 1
                return
            pkt = self._omv[opos + start : opos + end]
        else:
            whole = bytearray(ip_header_for_transport(child.peer, nh, end - start))
            whole += self._omv[opos + start : opos + end]
            pkt = memoryview(whole)
        if not child.check(pkt):
            child.policy_drops += 1
            return
        self._opos = opos + end + 16
        b0 = pkt[0]
        if b0 == 0x45:
            if pkt[9] == 6 and len(pkt) >= 40 and pkt[33] & 2 and self.max_mss4:
                clamp_mss(pkt, 20, self.max_mss4)
        elif b0 >> 4 == 6 and pkt[6] == 6 and len(pkt) >= 60 and pkt[53] & 2 and self.max_mss6:
            clamp_mss(pkt, 40, self.max_mss6)
        self._deliver(pkt)
