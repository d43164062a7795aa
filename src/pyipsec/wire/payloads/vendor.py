"""Vendor ID payload (RFC 7296 §3.12): an opaque constant, usually a hash of a vendor string."""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader
from pyipsec.wire.payloads.base import register

__all__ = ["VendorId"]


@register(PayloadType.V)
@dataclass(frozen=True, slots=True)
class VendorId:
    """The V payload; unrecognised Vendor IDs are ignored by the protocol (RFC 7296 §3.12)."""

    data: bytes

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.V

    def encode_body(self) -> bytes:
        return self.data

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> VendorId:
        return cls(r.rest())
