"""A payload whose type this implementation does not know (RFC 7296 §2.5, §3.2).

An unknown payload without the critical bit is skipped by the protocol but kept by the codec,
body untouched, so a message re-encodes byte for byte. One with the critical bit set makes
``wire.message`` raise ``UnsupportedCriticalPayload`` instead; no ``UnknownPayload`` is then
created. ``UnknownPayload`` is never registered: the message codec builds it for every type
without a registered decoder.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from pyipsec.iana.ikev2 import PayloadType

__all__ = ["UnknownPayload"]


@dataclass(frozen=True, slots=True)
class UnknownPayload:
    """An unrecognised payload: its type, critical bit and raw body."""

    ptype: PayloadType
    critical: bool
    _: KW_ONLY
    body: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.ptype <= 255:
            raise ValueError("payload types are 1..255 (0 ends the chain)")
        object.__setattr__(self, "ptype", PayloadType(self.ptype))

    @property
    def payload_type(self) -> PayloadType:
        return self.ptype

    def encode_body(self) -> bytes:
        return self.body
