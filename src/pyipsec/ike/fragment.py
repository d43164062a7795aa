"""Reassembly of IKE fragments (RFC 7383 §2.6).

Each SKF fragment is verified and decrypted on its own before it is kept (so a forged
fragment can neither take space nor poison a message); the message is processed once all
fragments of one Message ID have arrived. Only one message per direction is collected at a
time: a fragment of a newer Message ID starts over, one with a larger Total Fragments
replaces what was collected (§2.6), a smaller one is dropped. Limits on the number of
fragments and their bytes bound what a peer can make us hold.

One peer is bounded by those limits; many peers are bounded by a :class:`FragmentBudget` shared
by every reassembler of an engine (a cookie-answering attacker has the keys of thousands of
half-open SAs and could otherwise fill each one's limit). A fragment that does not fit in the
budget is dropped and counted, as if it had been lost; the bytes of a set go back to the budget
when the message is complete, when a newer message replaces the set, when the set is
discarded for exceeding a limit, and when the SA is forgotten (:meth:`Reassembler.release`,
which the task manager calls; half-open SAs are forgotten at their timeout).
"""

from __future__ import annotations

from pyipsec.errors import DecodeError
from pyipsec.ike.protect import FragmentPiece, reassemble
from pyipsec.wire.payloads.base import Payload

__all__ = ["MAX_FRAGMENT_BYTES", "MAX_FRAGMENTS", "FragmentBudget", "Reassembler"]

MAX_FRAGMENTS = 256
MAX_FRAGMENT_BYTES = 128 * 1024


class FragmentBudget:
    """Bytes of fragments held for reassembly across all SAs of an engine, and a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.dropped = 0  # fragments that did not fit

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            self.dropped += 1
            return False
        self.used += n
        self.peak = max(self.peak, self.used)
        return True

    def give_back(self, n: int) -> None:
        self.used -= n


class Reassembler:
    def __init__(
        self,
        *,
        max_fragments: int = MAX_FRAGMENTS,
        max_bytes: int = MAX_FRAGMENT_BYTES,
        budget: FragmentBudget | None = None,
    ) -> None:
        self.max_fragments = max_fragments
        self.max_bytes = max_bytes
        self.budget = budget
        self._msg_id: int | None = None
        self._total = 0
        self._pieces: dict[int, FragmentPiece] = {}
        self._bytes = 0

    @property
    def held(self) -> int:
        """Bytes of fragments held now."""
        return self._bytes

    def reset(self) -> None:
        if self.budget is not None:
            self.budget.give_back(self._bytes)
        self._msg_id, self._total, self._pieces, self._bytes = None, 0, {}, 0

    release = reset  # the SA is gone: give the bytes back

    def add(self, message_id: int, piece: FragmentPiece) -> tuple[Payload, ...] | None:
        """Keep one verified fragment; the inner payloads once the message is complete."""
        if piece.total_fragments > self.max_fragments:
            raise DecodeError(f"{piece.total_fragments} fragments exceed our limit of {self.max_fragments}")
        if message_id != self._msg_id or piece.total_fragments > self._total:
            self.reset()
            self._msg_id, self._total = message_id, piece.total_fragments
        elif piece.total_fragments < self._total:
            return None  # a stale fragment of an earlier, coarser fragmentation
        if piece.fragment_number in self._pieces:
            return None  # duplicate
        size = len(piece.plaintext)
        if self._bytes + size > self.max_bytes:
            self.reset()
            raise DecodeError(f"fragmented message exceeds {self.max_bytes} bytes")
        if self.budget is not None and not self.budget.take(size):
            return None  # dropped: all SAs together hold as much as they may (counted)
        self._bytes += size
        self._pieces[piece.fragment_number] = piece
        if len(self._pieces) < self._total:
            return None
        pieces = list(self._pieces.values())
        self.reset()
        try:
            return reassemble(pieces)
        except ValueError as exc:
            raise DecodeError(f"cannot reassemble fragments: {exc}") from None
