"""Key Exchange payload (RFC 7296 §3.4).

::

    | Key Exchange Method Num (2) | RESERVED (2) | Key Exchange Data ... |

The data's length depends on the method (e.g. 32 bytes for Curve25519, 64 for ECP-256);
checking it against the group is the key-exchange code's business, not the codec's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.iana.ikev2 import PayloadType
from pyipsec.iana.transforms import KeId
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = ["KeyExchange"]


@register(PayloadType.KE)
@dataclass(frozen=True, slots=True)
class KeyExchange:
    """The KE payload: the key-exchange method (formerly D-H group) and the public value."""

    group: KeId
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.group <= 0xFFFF:
            raise ValueError("key exchange method numbers are 16-bit values")
        object.__setattr__(self, "group", KeId(self.group))

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.KE

    def encode_body(self) -> bytes:
        return Writer().u16(self.group).u16(0).write(self.data).getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> KeyExchange:
        group = KeId(r.u16("key exchange method"))
        r.u16("KE reserved")
        return cls(group, r.rest())
