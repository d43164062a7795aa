"""Anti-replay window and outbound sequence counter (RFC 4303 §3.3.3, §3.4.3, Appendix A).

Theory of operation
-------------------
Inbound, :class:`ReplayWindow` keeps the highest authenticated sequence number ``top`` and a
bitmap held in one Python ``int``: bit *i* set means ``top - i`` has been received (bit 0 is
``top`` itself). Processing is split in two so that the window only ever moves for packets whose
ICV verified (RFC 4303 §3.4.3):

1. :meth:`ReplayWindow.check` runs *before* any crypto. It takes the 32 low-order bits carried
   in the ESP header, infers the full sequence number (with ESN, the high 32 bits come from the
   window position, RFC 4303 Appendix A2.2) and returns it, or ``None`` for a duplicate or a
   packet left of the window. The inferred value is what the ICV/AEAD computation needs
   (RFC 4303 §2.2.1; RFC 4106 §5 puts it in the AAD).
2. :meth:`ReplayWindow.commit` runs once the ICV verified. It marks the number seen and slides
   the window right when the number is new. It re-checks and returns ``False`` for a number that
   became a duplicate or too old in between (two copies of one packet in the same batch, or a
   batch whose later packets moved the window): the caller then drops that packet as a replay.

Outbound, :class:`SequenceCounter` hands out 1, 2, 3, ... and never wraps (RFC 4303 §3.3.3):
past a soft threshold it raises a one-shot :class:`SeqExhausting` signal (rekey now), and asking
for a number past 2^32-1 (2^64-1 with ESN) raises :class:`SequenceExhausted`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyipsec.errors import PyIpsecError

__all__ = [
    "DEFAULT_WINDOW",
    "ReplayWindow",
    "SeqExhausting",
    "SequenceCounter",
    "SequenceExhausted",
]

DEFAULT_WINDOW = 1024
"""Default anti-replay window (packets). RFC 4303 §3.4.3 asks for at least 32, 64 by default;
a userspace data plane reorders more, and a bigger window costs little with an int bitmap."""

_MASK32 = 0xFFFF_FFFF
_MAX32 = 0xFFFF_FFFF
_MAX64 = 0xFFFF_FFFF_FFFF_FFFF


class SequenceExhausted(PyIpsecError):
    """The outbound SA used its last sequence number: it must be replaced (RFC 4303 §3.3.3)."""


@dataclass(frozen=True, slots=True)
class SeqExhausting:
    """Signal: an outbound SA crossed its soft sequence-number threshold; rekey it now.

    ``seq`` is the sequence number that crossed the threshold, ``limit`` the last one usable.
    """

    spi: int
    seq: int
    limit: int


class ReplayWindow:
    """RFC 4303 §3.4.3 sliding-window anti-replay check, ESN-aware (Appendix A2).

    ``size`` is the window width in packets. ``check()`` before decryption, ``commit()`` after
    the ICV verified; both are O(1) big-int bit operations.
    """

    __slots__ = ("_bitmap", "_mask", "_top", "esn", "size")

    def __init__(self, size: int = DEFAULT_WINDOW, esn: bool = False) -> None:
        if size < 32:
            raise ValueError(f"replay window must be at least 32 packets (RFC 4303 §3.4.3), not {size}")
        self.size = size
        self.esn = esn
        self._top = 0  # highest authenticated sequence number; 0 = none yet (ESP starts at 1)
        self._bitmap = 0  # bit i <=> top - i was received
        self._mask = (1 << size) - 1

    @property
    def top(self) -> int:
        """The highest sequence number authenticated so far (full 64 bits with ESN), 0 if none."""
        return self._top

    def check(self, seq_low32: int) -> int | None:
        """The full sequence number of a packet carrying ``seq_low32``, or ``None`` to drop it.

        ``None`` means a duplicate, a number left of the window, the never-valid 0, or (ESN) a
        high half that would fall outside 0 .. 2^32-1. Does not change the window.
        """
        top = self._top
        if self.esn:
            # RFC 4303 Appendix A2.2: infer Seqh from the window bottom Tl - W + 1.
            tl = top & _MASK32
            th = top >> 32
            bottom = tl - self.size + 1
            if bottom >= 0:  # Case A: the window lies within one 2^32 subspace
                seq_hi = th if seq_low32 >= bottom else th + 1
            else:  # Case B: the window spans the subspace boundary
                seq_hi = th - 1 if seq_low32 >= bottom + 0x1_0000_0000 else th
            if seq_hi < 0 or seq_hi > _MAX32:
                return None
            seq = (seq_hi << 32) | seq_low32
        else:
            seq = seq_low32
        if seq > top:
            return seq
        diff = top - seq
        if diff >= self.size or (self._bitmap >> diff) & 1 or seq == 0:
            return None
        return seq

    def commit(self, seq: int) -> bool:
        """Mark the authenticated full sequence number ``seq`` received; slide if it is new.

        Returns ``False`` (and changes nothing) when ``seq`` is by now a duplicate or left of
        the window; the caller must then drop the packet as a replay.
        """
        top = self._top
        if seq > top:
            shift = seq - top
            self._bitmap = (((self._bitmap << shift) | 1) & self._mask) if shift < self.size else 1
            self._top = seq
            return True
        diff = top - seq
        if diff >= self.size or seq == 0:
            return False
        bit = 1 << diff
        bitmap = self._bitmap
        if bitmap & bit:
            return False
        self._bitmap = bitmap | bit
        return True

    def seen(self, seq: int) -> bool:
        """True if the full sequence number ``seq`` is inside the window and marked received."""
        diff = self._top - seq
        return 0 <= diff < self.size and bool((self._bitmap >> diff) & 1)

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, esn={self.esn}, top={self._top})"


class SequenceCounter:
    """Outbound sequence numbers 1, 2, 3, ... that never wrap (RFC 4303 §3.3.3).

    ``soft_limit`` is the first number whose use raises the :class:`SeqExhausting` signal
    (default: 7/8 of the space); :meth:`poll` returns that signal once. :meth:`next` past the
    hard limit (2^32-1, or 2^64-1 with ESN) raises :class:`SequenceExhausted` and never reuses
    a number. ``spi`` only labels the signal.
    """

    __slots__ = ("_last", "_pending", "_signalled", "_soft", "esn", "limit", "on_exhausting", "spi")

    def __init__(self, esn: bool = False, *, soft_limit: int | None = None, spi: int = 0) -> None:
        self.esn = esn
        self.spi = spi
        self.limit = _MAX64 if esn else _MAX32
        if soft_limit is None:
            soft_limit = self.limit - (self.limit >> 3)
        if not 1 <= soft_limit <= self.limit:
            raise ValueError(f"soft_limit must be within 1..{self.limit}, not {soft_limit}")
        self._soft = soft_limit
        self._last = 0
        self._signalled = False
        self._pending: SeqExhausting | None = None
        # called once, when the soft limit is crossed (the processor's cue to poll this SA)
        self.on_exhausting: Callable[[], None] | None = None

    @property
    def last(self) -> int:
        """The last sequence number handed out (0 before the first)."""
        return self._last

    @property
    def soft_limit(self) -> int:
        return self._soft

    @property
    def exhausting(self) -> bool:
        """True once a number at or past the soft limit was handed out."""
        return self._signalled

    def next(self) -> int:
        """The next sequence number (full 64 bits with ESN)."""
        seq = self._last + 1
        if seq >= self._soft:
            return self._near_end(seq)
        self._last = seq
        return seq

    def _near_end(self, seq: int) -> int:
        if seq > self.limit:
            raise SequenceExhausted(f"SPI {self.spi:08x}: sequence number space exhausted at {self.limit}")
        self._last = seq
        if not self._signalled:
            self._signalled = True
            self._pending = SeqExhausting(spi=self.spi, seq=seq, limit=self.limit)
            if self.on_exhausting is not None:
                self.on_exhausting()
        return seq

    def poll(self) -> SeqExhausting | None:
        """The :class:`SeqExhausting` signal, once, after the soft limit was crossed."""
        pending = self._pending
        self._pending = None
        return pending

    def skip_to(self, last: int) -> None:
        """Continue after ``last`` (tests and SA migration); never moves backwards."""
        if last < self._last or last > self.limit:
            raise ValueError(f"cannot move the sequence counter from {self._last} to {last}")
        self._last = last

    def __repr__(self) -> str:
        return f"SequenceCounter(esn={self.esn}, last={self._last}, limit={self.limit})"
