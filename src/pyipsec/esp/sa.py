"""One ESP security association: parameters, crypto context, sequence state and counters.

Theory of operation
-------------------
:class:`EspSaConfig` is the frozen description of one direction of a Child SA (SPI, direction,
suite and keys, ESN, mode, window); :meth:`EspSaConfig.from_spec` takes it out of the
:class:`~pyipsec.childsa.ChildSaSpec` IKE negotiated. :class:`EspSa` is the live object the
data plane keeps per SA: it builds its :class:`~pyipsec.esp.packet.EspTransform` once and then
handles one packet per call, with no per-packet set-up and only the allocations the bytes
themselves need.

Outbound, :meth:`EspSa.encapsulate` takes the next sequence number (never wrapping, with a
one-shot :class:`~pyipsec.esp.replay.SeqExhausting` signal near the end, see :meth:`poll_signal`)
and seals.

Inbound, :meth:`EspSa.decapsulate` follows RFC 4303 §3.4 in this order: length sanity → SPI
match → :meth:`ReplayWindow.check` before any crypto (which also infers the ESN high half the
ICV needs) → ICV / AEAD verification and decryption (failure: :class:`EspIntegrityFailure`, the
window untouched) → :meth:`ReplayWindow.commit` → trailer check (Pad Length and the default
1, 2, 3, ... padding, RFC 4303 §2.4) → in tunnel mode, TFC padding after the inner IP packet is
cut off using the inner header's length (RFC 4303 §2.7). Each drop raises an
:class:`~pyipsec.esp.packet.EspDrop` subclass and bumps its counter; the counters are plain
attributes, cheap to bump, and :meth:`EspSa.counters` takes a snapshot.

Next Header 59 marks a dummy packet (RFC 4303 §2.6): it is returned like any other and the
caller discards it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from pyipsec.childsa import ChildSaSpec, EspMode
from pyipsec.errors import UsageError
from pyipsec.esp.packet import (
    PAD_BYTES,
    BadPadding,
    BytesLike,
    EspIntegrityFailure,
    EspTransform,
    MalformedEsp,
    RandomBytes,
    ReplayedPacket,
    SpiMismatch,
    check_keys,
    make_transform,
)
from pyipsec.esp.replay import DEFAULT_WINDOW, ReplayWindow, SeqExhausting, SequenceCounter
from pyipsec.iana.transforms import EncrId, IntegId

__all__ = ["Direction", "EspCounters", "EspSa", "EspSaConfig"]

_unpack_from = struct.Struct(">II").unpack_from
_PADS = tuple(PAD_BYTES[:n] for n in range(256))


class Direction(Enum):
    INBOUND = "in"
    OUTBOUND = "out"


@dataclass(frozen=True, slots=True, kw_only=True)
class EspSaConfig:
    """The negotiated parameters of one ESP SA (traffic selectors and lifetimes live elsewhere).

    ``encr_key`` is the encryption key from KEYMAT; for AES-GCM and ChaCha20-Poly1305 it ends with
    the 4-byte salt (RFC 4106 §8.1, RFC 7634 §2). ``seq_soft_limit`` is the outbound sequence
    number from which the SA asks to be rekeyed (default: 7/8 of the sequence space).
    """

    spi: int
    direction: Direction
    encr: EncrId
    encr_key: bytes = field(repr=False)
    integ: IntegId = IntegId.NONE
    integ_key: bytes = field(default=b"", repr=False)
    esn: bool = False
    mode: EspMode = EspMode.TUNNEL
    replay_window: int = DEFAULT_WINDOW
    seq_soft_limit: int | None = None

    def __post_init__(self) -> None:
        # RFC 4303 §2.1: SPI 0 is local-only and 1..255 are reserved by IANA.
        if not 256 <= self.spi <= 0xFFFF_FFFF:
            raise ValueError(f"ESP SPI {self.spi:#x} is outside 256 .. 2^32-1")
        if self.replay_window < 32:
            raise ValueError("the replay window must be at least 32 packets (RFC 4303 §3.4.3)")
        check_keys(self.encr, self.encr_key, self.integ, self.integ_key)

    @classmethod
    def from_spec(cls, spec: ChildSaSpec, direction: Direction) -> EspSaConfig:
        """The inbound (our SPI, the peer's keys to us) or outbound ESP SA of a Child SA."""
        inbound = direction is Direction.INBOUND
        return cls(
            spi=int.from_bytes(spec.spi_in if inbound else spec.spi_out, "big"),
            direction=direction,
            encr=spec.encr,
            encr_key=spec.encr_key_in if inbound else spec.encr_key_out,
            integ=spec.integ,
            integ_key=spec.integ_key_in if inbound else spec.integ_key_out,
            esn=spec.esn,
            mode=spec.mode,
            replay_window=spec.replay_window,
        )


@dataclass(frozen=True, slots=True)
class EspCounters:
    """A snapshot of one SA's counters. ``bytes`` counts payload (inner packet) bytes."""

    packets: int
    bytes: int
    replay_drops: int
    integrity_failures: int
    pad_errors: int
    malformed: int
    spi_mismatches: int


def _refuse_encapsulate() -> int:
    raise UsageError("an inbound ESP SA cannot encapsulate")


def _refuse_check(seq_low32: int) -> int | None:
    raise UsageError("an outbound ESP SA cannot decapsulate")


def _refuse_commit(seq: int) -> bool:
    raise UsageError("an outbound ESP SA cannot decapsulate")


class EspSa:
    """A live ESP SA: ``encapsulate`` (outbound) or ``decapsulate`` (inbound), with counters.

    ``rng`` is required for an outbound AES-CBC SA (random IVs); AEAD suites use the sequence
    number as IV and need none.
    """

    __slots__ = (
        "_check",
        "_commit",
        "_min_len",
        "_next_seq",
        "_open",
        "_open_into",
        "_overhead",
        "_payload_offset",
        "_seal",
        "_seal_into",
        "_transform",
        "_tunnel",
        "_unaligned",
        "bytes",
        "config",
        "esn",
        "integrity_failures",
        "malformed",
        "packets",
        "pad_errors",
        "replay",
        "replay_drops",
        "seq",
        "spi",
        "spi_mismatches",
    )

    def __init__(self, config: EspSaConfig, *, rng: RandomBytes | None = None) -> None:
        self.config = config
        self.spi = config.spi
        self.esn = config.esn
        outbound = config.direction is Direction.OUTBOUND
        if outbound and config.encr == EncrId.ENCR_AES_CBC and rng is None:
            raise ValueError("an outbound AES-CBC SA needs a RandomSource (rng) for its IVs")
        transform = make_transform(
            spi=config.spi,
            encr=config.encr,
            encr_key=config.encr_key,
            integ=config.integ,
            integ_key=config.integ_key,
            esn=config.esn,
            rng=rng,
        )
        self._transform: EspTransform = transform
        self._seal = transform.seal
        self._open = transform.open
        self._seal_into = transform.seal_into
        self._open_into = transform.open_into
        self._min_len = transform.min_len
        self._overhead = 8 + transform.iv_len + transform.icv_len
        self._unaligned = transform.align - 1 if transform.align > 4 else 0  # block ciphers only
        self._payload_offset = transform.payload_offset
        self._tunnel = config.mode is EspMode.TUNNEL

        self.replay: ReplayWindow | None = None
        self.seq: SequenceCounter | None = None
        self._next_seq: Callable[[], int] = _refuse_encapsulate
        self._check: Callable[[int], int | None] = _refuse_check
        self._commit: Callable[[int], bool] = _refuse_commit
        if outbound:
            self.seq = SequenceCounter(config.esn, soft_limit=config.seq_soft_limit, spi=config.spi)
            self._next_seq = self.seq.next
        else:
            self.replay = ReplayWindow(config.replay_window, config.esn)
            self._check = self.replay.check
            self._commit = self.replay.commit

        self.packets = 0
        self.bytes = 0
        self.replay_drops = 0
        self.integrity_failures = 0
        self.pad_errors = 0
        self.malformed = 0
        self.spi_mismatches = 0

    # --- outbound -----------------------------------------------------------------------------

    def encapsulate(self, inner: BytesLike, next_header: int) -> bytes:
        """``SPI ‖ Seq ‖ IV ‖ ciphertext ‖ ICV`` for ``inner`` (an IP packet in tunnel mode,
        next header 4 or 41; the transport payload otherwise).

        Raises :class:`~pyipsec.esp.replay.SequenceExhausted` once the sequence space is used up.
        """
        packet = self._seal(self._next_seq(), inner, next_header)
        self.packets += 1
        self.bytes += len(inner)
        return packet

    def encapsulate_at(
        self, inner: BytesLike, next_header: int, *, seq: int, iv: bytes | None = None
    ) -> bytes:
        """Seal with a given full sequence number and IV, leaving the sequence counter alone.

        For known-answer tests and reproducing captures only: sealing twice with one
        (``seq``, ``iv``) under the same key breaks AES-GCM and ChaCha20-Poly1305.
        """
        if self.seq is None:
            _refuse_encapsulate()
        limit = 0xFFFF_FFFF_FFFF_FFFF if self.esn else 0xFFFF_FFFF
        if not 1 <= seq <= limit:
            raise ValueError(f"sequence number {seq} outside 1..{limit}")
        if iv is not None and len(iv) != self._transform.iv_len:
            raise ValueError(f"the IV is {self._transform.iv_len} bytes, not {len(iv)}")
        packet = self._seal(seq, inner, next_header, iv)
        self.packets += 1
        self.bytes += len(inner)
        return packet

    def encapsulate_into(self, buf: memoryview, inner_len: int, next_header: int, out: memoryview) -> int:
        """Like :meth:`encapsulate`, for the batched data plane: the payload is already in
        ``buf[payload_offset : payload_offset + inner_len]`` (see
        :meth:`~pyipsec.esp.packet.EspTransform.seal_into` for the room ``buf`` and ``out``
        need); the ESP packet is written to ``out`` and its length returned."""
        size = self._seal_into(self._next_seq(), buf, inner_len, next_header, out)
        self.packets += 1
        self.bytes += inner_len
        return size

    @property
    def payload_offset(self) -> int:
        """Where :meth:`encapsulate_into` expects the payload in its scratch buffer."""
        return self._payload_offset

    def encapsulated_len(self, inner_len: int) -> int:
        """The ESP packet length ``encapsulate`` produces for an ``inner_len``-byte payload."""
        return self._transform.sealed_len(inner_len)

    def poll_signal(self) -> SeqExhausting | None:
        """A one-shot :class:`SeqExhausting` once the soft sequence limit was crossed."""
        return self.seq.poll() if self.seq is not None else None

    # --- inbound ------------------------------------------------------------------------------

    def decapsulate(self, packet: BytesLike) -> tuple[bytes, int]:
        """``(payload, next_header)`` of an authenticated, in-window ESP packet (RFC 4303 §3.4).

        Raises (each counted): :class:`MalformedEsp`, :class:`SpiMismatch`,
        :class:`ReplayedPacket`, :class:`EspIntegrityFailure` (an ``IntegrityError``),
        :class:`BadPadding`. TFC padding after an inner IP packet is removed in tunnel mode.
        """
        size = len(packet)
        if size < self._min_len or (size - self._overhead) & self._unaligned:
            self.malformed += 1
            raise MalformedEsp(f"SPI {self.spi:08x}: {size}-byte ESP packet")
        spi, seq_low = _unpack_from(packet)
        if spi != self.spi:
            self.spi_mismatches += 1
            raise SpiMismatch(f"SPI {spi:08x} on the SA of SPI {self.spi:08x}")
        seq = self._check(seq_low)
        if seq is None:
            self.replay_drops += 1
            raise ReplayedPacket(f"SPI {self.spi:08x}: sequence number {seq_low} replayed or too old")
        try:
            plain = self._open(packet, seq)
        except EspIntegrityFailure:
            self.integrity_failures += 1
            raise
        if not self._commit(seq):  # a copy in the same batch got there first
            self.replay_drops += 1
            raise ReplayedPacket(f"SPI {self.spi:08x}: sequence number {seq} replayed")

        # RFC 4303 §2.4-2.6: payload ‖ padding 1, 2, 3, ... ‖ Pad Length ‖ Next Header
        start = self._payload_offset
        last = len(plain) - 2
        pad_len = plain[last]
        end = last - pad_len
        if end < start or (pad_len and not plain.startswith(_PADS[pad_len], end)):
            self.pad_errors += 1
            raise BadPadding(f"SPI {self.spi:08x} seq {seq}: bad padding (pad length {pad_len})")
        next_header = plain[-1]

        if self._tunnel and next_header in (4, 41):  # IPv4, IPv6
            # RFC 4303 §2.7: TFC padding may follow the inner packet; its header gives its length.
            size = end - start
            if next_header == 4:
                ip_len = (plain[start + 2] << 8 | plain[start + 3]) if size >= 20 else 0
                if ip_len < 20:
                    ip_len = 0
            else:
                ip_len = (plain[start + 4] << 8 | plain[start + 5]) + 40 if size >= 40 else 0
            if ip_len != size:
                if not 0 < ip_len < size:
                    self.malformed += 1
                    raise MalformedEsp(
                        f"SPI {self.spi:08x} seq {seq}: inner packet length {ip_len} of {size}"
                    )
                end = start + ip_len

        self.packets += 1
        self.bytes += end - start
        return plain[start:end], next_header

    def decapsulate_into(self, packet: BytesLike, out: memoryview) -> tuple[int, int, int]:
        """:meth:`decapsulate` for the batched data plane: the plaintext goes to ``out`` (which
        needs ``len(packet) + 16`` bytes) and ``(start, end, next_header)`` locate the payload
        in it. Same checks, order, exceptions and counters as :meth:`decapsulate`.

        Deliberately an inline copy of :meth:`decapsulate`: shared helpers cost this, the data
        plane's receive path, 1-2 % per packet, and :meth:`decapsulate` calling this one costs
        it 12-25 %; ``tests/unit/esp/test_sa_into.py`` keeps the two in step."""
        size = len(packet)
        if size < self._min_len or (size - self._overhead) & self._unaligned:
            self.malformed += 1
            raise MalformedEsp(f"SPI {self.spi:08x}: {size}-byte ESP packet")
        spi, seq_low = _unpack_from(packet)
        if spi != self.spi:
            self.spi_mismatches += 1
            raise SpiMismatch(f"SPI {spi:08x} on the SA of SPI {self.spi:08x}")
        seq = self._check(seq_low)
        if seq is None:
            self.replay_drops += 1
            raise ReplayedPacket(f"SPI {self.spi:08x}: sequence number {seq_low} replayed or too old")
        try:
            n = self._open_into(packet, seq, out)
        except EspIntegrityFailure:
            self.integrity_failures += 1
            raise
        if not self._commit(seq):
            self.replay_drops += 1
            raise ReplayedPacket(f"SPI {self.spi:08x}: sequence number {seq} replayed")
        start = self._payload_offset
        last = n - 2
        pad_len = out[last]
        end = last - pad_len
        if end < start or (pad_len and out[end:last] != _PADS[pad_len]):
            self.pad_errors += 1
            raise BadPadding(f"SPI {self.spi:08x} seq {seq}: bad padding (pad length {pad_len})")
        next_header = out[last + 1]
        if self._tunnel and next_header in (4, 41):
            size = end - start
            if next_header == 4:
                ip_len = (out[start + 2] << 8 | out[start + 3]) if size >= 20 else 0
                if ip_len < 20:
                    ip_len = 0
            else:
                ip_len = (out[start + 4] << 8 | out[start + 5]) + 40 if size >= 40 else 0
            if ip_len != size:
                if not 0 < ip_len < size:
                    self.malformed += 1
                    raise MalformedEsp(
                        f"SPI {self.spi:08x} seq {seq}: inner packet length {ip_len} of {size}"
                    )
                end = start + ip_len
        self.packets += 1
        self.bytes += end - start
        return start, end, next_header

    # --- state --------------------------------------------------------------------------------

    def counters(self) -> EspCounters:
        return EspCounters(
            packets=self.packets,
            bytes=self.bytes,
            replay_drops=self.replay_drops,
            integrity_failures=self.integrity_failures,
            pad_errors=self.pad_errors,
            malformed=self.malformed,
            spi_mismatches=self.spi_mismatches,
        )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"EspSa(spi={self.spi:08x}, {c.direction.value}, {c.encr.name}, {c.integ.name}, esn={self.esn})"
        )
