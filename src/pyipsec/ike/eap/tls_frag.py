"""EAP-TLS framing and fragmentation (RFC 5216 §2.1.5, §3.1; unchanged for TLS 1.3 by RFC 9190).

Theory of operation. The Type-Data of every EAP-TLS Request and Response is::

    Flags (1) | TLS Message Length (4, only when L is set) | TLS Data (0 or more)

with the flag bits L = 0x80 (length included), M = 0x40 (more fragments follow) and S = 0x20
(EAP-TLS Start, in Requests only); the other five bits are reserved, sent as zero and ignored
on receipt. A TLS flight longer than the fragment size goes out as several EAP-TLS messages:
the first carries L and the total length of the flight, every fragment but the last carries M,
and the other side answers each fragment that carries M with an *ACK*, an EAP-TLS message
with no flags and no data (§2.1.5). Only after the last fragment does the other side answer
with its own data.

:class:`Fragmenter` cuts an outgoing flight into :class:`EapTlsFrame` s of at most
``fragment_size`` octets of TLS data. :class:`Reassembler` puts an incoming flight together
and enforces the limits that keep a hostile peer from making us store or loop without bound:
a declared or actual flight longer than :data:`MAX_MESSAGE_LEN`, more than
:data:`MAX_FRAGMENTS` fragments in one flight, an empty fragment that claims more, or a TLS
Message Length that disagrees with the data that arrives all raise :class:`FragmentError`,
which the EAP-TLS conversation turns into FAILURE. A first fragment without L is accepted
(some implementations leave it out); the limits still hold.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACK",
    "DEFAULT_FRAGMENT_SIZE",
    "FLAG_L",
    "FLAG_M",
    "FLAG_S",
    "MAX_FRAGMENTS",
    "MAX_FRAGMENT_SIZE",
    "MAX_MESSAGE_LEN",
    "MIN_FRAGMENT_SIZE",
    "EapTlsFrame",
    "FragmentError",
    "Fragmenter",
    "Reassembler",
]

FLAG_L = 0x80
"""Length included: a 4-octet TLS Message Length follows the flags (RFC 5216 §3.1)."""
FLAG_M = 0x40
"""More fragments follow."""
FLAG_S = 0x20
"""EAP-TLS Start, sent by the server to open the TLS conversation."""

DEFAULT_FRAGMENT_SIZE = 1024
"""Octets of TLS data per EAP-TLS message, as strongSwan's default."""
MIN_FRAGMENT_SIZE = 64
MAX_FRAGMENT_SIZE = 65535 - 10  # EAP header 5, flags 1, length 4: one EAP packet
MAX_MESSAGE_LEN = 64 * 1024
"""Longest TLS flight accepted from the other side, in octets."""
MAX_FRAGMENTS = 1024
"""Most fragments accepted for one incoming flight."""

_LENGTH_LEN = 4


class FragmentError(Exception):
    """An EAP-TLS message that breaks the framing rules or the limits; the text is the reason."""


@dataclass(frozen=True, slots=True)
class EapTlsFrame:
    """The Type-Data of one EAP-TLS message (RFC 5216 §3.1)."""

    flags: int = 0
    tls_length: int | None = None
    data: bytes = b""

    @property
    def start(self) -> bool:
        return bool(self.flags & FLAG_S)

    @property
    def more(self) -> bool:
        return bool(self.flags & FLAG_M)

    @property
    def is_ack(self) -> bool:
        """An empty message: the ACK of a fragment, or a final empty Response."""
        return not self.data and not self.flags & (FLAG_L | FLAG_M | FLAG_S)

    def encode(self) -> bytes:
        flags = self.flags & ~FLAG_L
        if self.tls_length is None:
            return bytes([flags]) + self.data
        return bytes([flags | FLAG_L]) + self.tls_length.to_bytes(_LENGTH_LEN, "big") + self.data

    @classmethod
    def decode(cls, type_data: bytes) -> EapTlsFrame:
        """Parse EAP-TLS Type-Data; raises FragmentError when it is too short."""
        if not type_data:
            raise FragmentError("EAP-TLS message without its Flags octet")
        flags = type_data[0]
        if not flags & FLAG_L:
            return cls(flags & (FLAG_M | FLAG_S), None, bytes(type_data[1:]))
        if len(type_data) < 1 + _LENGTH_LEN:
            raise FragmentError("EAP-TLS message with the L flag but no 4-octet TLS Message Length")
        length = int.from_bytes(type_data[1 : 1 + _LENGTH_LEN], "big")
        return cls(flags & (FLAG_M | FLAG_S), length, bytes(type_data[1 + _LENGTH_LEN :]))


ACK = EapTlsFrame()
"""The empty EAP-TLS message that acknowledges a fragment."""


class Fragmenter:
    """One outgoing TLS flight, handed out a fragment at a time."""

    def __init__(self, flight: bytes, fragment_size: int) -> None:
        self._flight = flight
        self._size = fragment_size
        self._offset = 0

    @property
    def done(self) -> bool:
        """Whether every fragment has been handed out."""
        return self._offset >= len(self._flight)

    def next_frame(self) -> EapTlsFrame:
        """The next fragment; the first of several carries L, all but the last carry M."""
        total = len(self._flight)
        chunk = self._flight[self._offset : self._offset + self._size]
        first = self._offset == 0
        self._offset += len(chunk) if chunk else 1  # an empty flight is one empty message
        more = self._offset < total
        length = total if first and more else None
        return EapTlsFrame(FLAG_M if more else 0, length, chunk)


class Reassembler:
    """Collects the fragments of one incoming TLS flight within the limits."""

    def __init__(self, max_len: int = MAX_MESSAGE_LEN, max_fragments: int = MAX_FRAGMENTS) -> None:
        self._max_len = max_len
        self._max_fragments = max_fragments
        self._parts: list[bytes] = []
        self._received = 0
        self._declared: int | None = None

    @property
    def in_progress(self) -> bool:
        """Whether a fragment with M has arrived and the flight is not complete yet."""
        return bool(self._parts)

    def add(self, frame: EapTlsFrame) -> bytes | None:
        """Take one fragment; the whole flight once its last fragment arrived, else None."""
        first = not self._parts
        if frame.tls_length is not None:
            if frame.tls_length > self._max_len:
                raise FragmentError(
                    f"TLS Message Length {frame.tls_length} exceeds the limit of {self._max_len} octets"
                )
            if first:
                self._declared = frame.tls_length
            elif frame.tls_length != self._declared:
                raise FragmentError(
                    f"TLS Message Length changed from {self._declared} to {frame.tls_length} "
                    "in the middle of a fragmented message"
                )
        if frame.more and not frame.data:
            raise FragmentError("empty EAP-TLS fragment with the M flag")
        self._received += len(frame.data)
        if self._received > self._max_len:
            raise FragmentError(f"fragmented TLS message exceeds the limit of {self._max_len} octets")
        if self._declared is not None and self._received > self._declared:
            raise FragmentError(
                f"fragments carry more than the announced TLS Message Length of {self._declared} octets"
            )
        if len(self._parts) >= self._max_fragments:
            raise FragmentError(f"TLS message in more than {self._max_fragments} fragments")
        self._parts.append(frame.data)
        if frame.more:
            return None
        flight = b"".join(self._parts)
        declared = self._declared
        self._parts, self._received, self._declared = [], 0, None
        if declared is not None and len(flight) != declared:
            raise FragmentError(
                f"TLS Message Length {declared} announced, but the fragments carry {len(flight)} octets"
            )
        return flight
