"""The contract every payload codec follows, and the type → codec registry.

Theory of operation: a payload is a frozen dataclass that knows its own body (the bytes
after the 4-byte generic payload header, RFC 7296 §3.2). The generic header — next payload,
critical bit, length — belongs to the *chain*, so it is written and read by
``wire.message`` and never by a payload. A payload class registers the payload type(s) it
decodes with :func:`register`; ``decode_body(ptype, reader)`` receives a reader bounded
to exactly the body and must consume all of it (or raise ``DecodeError``).

Payload types that share a format (IDi/IDr, TSi/TSr) use one class whose instances carry
``payload_type`` as a field; the others expose it as a class attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader

__all__ = ["GENERIC_HEADER_LEN", "Payload", "PayloadDecoder", "decoder_for", "register", "registered_types"]

GENERIC_HEADER_LEN = 4
"""Next Payload (1) | C + RESERVED (1) | Payload Length (2), RFC 7296 §3.2."""


class Payload(Protocol):
    """What the message codec needs from any payload object."""

    @property
    def payload_type(self) -> PayloadType: ...

    def encode_body(self) -> bytes:
        """The payload body, without the generic payload header."""
        ...


class PayloadDecoder(Protocol):
    """A class (or function) that decodes one payload body."""

    def __call__(self, ptype: PayloadType, r: Reader) -> Payload: ...


_DECODERS: dict[PayloadType, Callable[[PayloadType, Reader], Payload]] = {}

_C = TypeVar("_C")


def register(*ptypes: PayloadType) -> Callable[[_C], _C]:
    """Class decorator: ``cls.decode_body(ptype, reader)`` decodes these payload types."""

    def deco(cls: _C) -> _C:
        decode = cls.decode_body  # type: ignore[attr-defined]
        for t in ptypes:
            if t in _DECODERS:
                raise RuntimeError(f"payload type {t!r} registered twice")
            _DECODERS[t] = decode
        return cls

    return deco


def decoder_for(ptype: PayloadType) -> Callable[[PayloadType, Reader], Payload] | None:
    """The registered decoder, or None for an unknown payload type."""
    return _DECODERS.get(ptype)


def registered_types() -> frozenset[PayloadType]:
    return frozenset(_DECODERS)
