"""Reassembly of IKE fragments (RFC 7383 §2.6).

Each SKF fragment is verified and decrypted on its own before it is kept (so a forged
fragment can neither take space nor poison a message); the message is processed once all
fragments of one Message ID have arrived. Only one message per direction is collected at a
time: a fragment of a newer Message ID starts over, one with a larger Total Fragments
replaces what was collected (§2.6), a smaller one is dropped. Limits on the number of
fragments and their bytes bound what a peer can make us hold.
"""

from __future__ import annotations

from pyipsec.errors import DecodeError
from pyipsec.ike.protect import FragmentPiece, reassemble
from pyipsec.wire.payloads.base import Payload

__all__ = ["MAX_FRAGMENT_BYTES", "MAX_FRAGMENTS", "Reassembler"]

MAX_FRAGMENTS = 256
MAX_FRAGMENT_BYTES = 128 * 1024


class Reassembler:
    def __init__(self, *, max_fragments: int = MAX_FRAGMENTS, max_bytes: int = MAX_FRAGMENT_BYTES) -> None:
        self.max_fragments = max_fragments
        self.max_bytes = max_bytes
        self._msg_id: int | None = None
        self._total = 0
        self._pieces: dict[int, FragmentPiece] = {}
        self._bytes = 0

    @property
    def held_bytes(self) -> int:
        """Plaintext bytes of the fragments kept now (never more than ``max_bytes``)."""
        return self._bytes

    def reset(self) -> None:
        self._msg_id, self._total, self._pieces, self._bytes = None, 0, {}, 0

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
        self._bytes += len(piece.plaintext)
        if self._bytes > self.max_bytes:
            self.reset()
            raise DecodeError(f"fragmented message exceeds {self.max_bytes} bytes")
        self._pieces[piece.fragment_number] = piece
        if len(self._pieces) < self._total:
            return None
        pieces = list(self._pieces.values())
        self.reset()
        try:
            return reassemble(pieces)
        except ValueError as exc:
            raise DecodeError(f"cannot reassemble fragments: {exc}") from None
