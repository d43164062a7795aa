"""Nonce payload (RFC 7296 §3.9): Ni and Nr.

RFC 7296 §3.9: the nonce data is between 16 and 256 octets inclusive (and §2.10 asks for at
least half the PRF's key size, which the protocol checks once a PRF is negotiated).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import register

__all__ = ["NONCE_MAX_LEN", "NONCE_MIN_LEN", "Nonce"]

NONCE_MIN_LEN = 16
NONCE_MAX_LEN = 256


@register(PayloadType.NONCE)
@dataclass(frozen=True, slots=True)
class Nonce:
    """The Nonce payload: 16 to 256 random bytes."""

    data: bytes

    def __post_init__(self) -> None:
        if not NONCE_MIN_LEN <= len(self.data) <= NONCE_MAX_LEN:
            raise ValueError(f"nonce of {len(self.data)} bytes; RFC 7296 §3.9 wants 16..256")

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.NONCE

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> Nonce:
        if not NONCE_MIN_LEN <= r.remaining <= NONCE_MAX_LEN:
            raise r.fail(f"nonce of {r.remaining} bytes; RFC 7296 §3.9 wants 16..256")
        return cls(r.rest())
