"""EAP payload (RFC 7296 §3.16) and the EAP packet it carries (RFC 3748 §4).

Theory of operation: the EAP payload body is exactly one EAP packet, ``Code (1) |
Identifier (1) | Length (2) | Data``. :class:`EapPayload` keeps the packet as bytes (EAP
methods in ``ike.eap`` work on whole packets) and checks only that the packet's Length
field equals the body length. :class:`EapMessage` is the parsed packet: Request and
Response carry a Type octet and Type-Data (RFC 3748 §4.1), Success and Failure are exactly
four octets (§4.2). Expanded Types (254) keep their Vendor-Id/Vendor-Type inside
``type_data``. RFC 3748 lets a link layer pad after Length; in IKEv2 the payload length
already delimits the packet, so a mismatch is INVALID_SYNTAX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import EapCode, EapType, PayloadType
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = ["EAP_HEADER_LEN", "EapMessage", "EapPayload"]

EAP_HEADER_LEN = 4
"""Code | Identifier | Length (RFC 3748 §4)."""

_NO_TYPE_CODES = (EapCode.SUCCESS, EapCode.FAILURE)
_TYPED_CODES = (EapCode.REQUEST, EapCode.RESPONSE)


@dataclass(frozen=True, slots=True)
class EapMessage:
    """One EAP packet (RFC 3748 §4).

    ``eap_type`` is None exactly for packets without a Type octet: Success and Failure,
    or a four-octet packet of a code this module does not know.
    """

    code: EapCode
    identifier: int
    eap_type: EapType | None = None
    type_data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.code <= 0xFF or not 0 <= self.identifier <= 0xFF:
            raise ValueError("EAP code and identifier are one octet each")
        if self.eap_type is None:
            if self.type_data:
                raise ValueError("type data without an EAP type")
            if self.code in _TYPED_CODES:
                raise ValueError(f"EAP {self.code.name} needs a Type")
        else:
            if self.code in _NO_TYPE_CODES:
                raise ValueError(f"EAP {self.code.name} has no Type")
            if not 0 <= self.eap_type <= 0xFF:
                raise ValueError("EAP type is one octet")
        if len(self) > 0xFFFF:
            raise ValueError("EAP packet longer than 65535 octets")

    def __len__(self) -> int:
        return EAP_HEADER_LEN + (0 if self.eap_type is None else 1 + len(self.type_data))

    def encode(self) -> bytes:
        w = Writer().u8(self.code).u8(self.identifier).u16(len(self))
        if self.eap_type is not None:
            w.u8(self.eap_type).write(self.type_data)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes, *, base: int = 0) -> EapMessage:
        """Parse one whole EAP packet; ``base`` is its offset, for error messages."""
        r = Reader(data, base=base)
        code = EapCode(r.u8("EAP Code"))
        identifier = r.u8("EAP Identifier")
        length = r.u16("EAP Length")
        if length != len(data):
            raise DecodeError(f"EAP Length {length} does not match {len(data)} octets", offset=base + 2)
        if code in _NO_TYPE_CODES:
            if length != EAP_HEADER_LEN:
                raise r.fail(f"EAP {code.name} must be {EAP_HEADER_LEN} octets, got {length}")
            return cls(code, identifier)
        if r.at_end():
            if code in _TYPED_CODES:
                raise r.fail(f"EAP {code.name} without a Type")
            return cls(code, identifier)
        eap_type = EapType(r.u8("EAP Type"))
        return cls(code, identifier, eap_type, r.rest())


@register(PayloadType.EAP)
@dataclass(frozen=True, slots=True)
class EapPayload:
    """An EAP payload (RFC 7296 §3.16): one whole EAP packet."""

    payload_type: ClassVar[PayloadType] = PayloadType.EAP

    message: bytes

    def __post_init__(self) -> None:
        if len(self.message) < EAP_HEADER_LEN or int.from_bytes(self.message[2:4], "big") != len(
            self.message
        ):
            raise ValueError("EAP payload must hold one EAP packet whose Length matches")

    @classmethod
    def of(cls, msg: EapMessage) -> EapPayload:
        return cls(msg.encode())

    def eap_message(self) -> EapMessage:
        """The parsed packet (DecodeError if its Code/Type layout is wrong)."""
        return EapMessage.decode(self.message)

    def encode_body(self) -> bytes:
        return self.message

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> EapPayload:
        start = r.offset
        if r.remaining < EAP_HEADER_LEN:
            raise r.fail(f"EAP payload of {r.remaining} octets is shorter than an EAP header")
        body = r.rest()
        length = int.from_bytes(body[2:4], "big")
        if length != len(body):
            raise DecodeError(
                f"EAP Length {length} does not match the payload's {len(body)}", offset=start + 2
            )
        return cls(body)
