"""Authentication payload (RFC 7296 §3.8).

::

    | Auth Method (1) | RESERVED (3) | Authentication Data ... |

For the Digital Signature method (14, RFC 7427 §3) the data is itself structured — a
one-octet length, a DER AlgorithmIdentifier of that length, then the signature value —
which :meth:`Authentication.digital_signature` and :meth:`Authentication.split_signature`
build and take apart. Comparing AUTH values is the protocol's job (with
``hmac.compare_digest``); this module only moves bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import AuthMethod, PayloadType
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = ["Authentication"]


@register(PayloadType.AUTH)
@dataclass(frozen=True, slots=True)
class Authentication:
    """The AUTH payload: method and authentication data (a MAC or a signature)."""

    method: AuthMethod
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.method <= 255:
            raise ValueError("auth methods are 8-bit values")
        object.__setattr__(self, "method", AuthMethod(self.method))

    @classmethod
    def digital_signature(cls, algorithm_identifier: bytes, signature: bytes) -> Authentication:
        """Method 14 data: ASN.1 length ‖ AlgorithmIdentifier ‖ signature (RFC 7427 §3)."""
        if not 1 <= len(algorithm_identifier) <= 255:
            raise ValueError("the AlgorithmIdentifier must be 1..255 bytes")
        data = bytes([len(algorithm_identifier)]) + algorithm_identifier + signature
        return cls(AuthMethod.DIGITAL_SIGNATURE, data)

    def split_signature(self) -> tuple[bytes, bytes]:
        """(AlgorithmIdentifier DER, signature value) of a method-14 payload (RFC 7427 §3).

        Raises ``DecodeError`` if the method is not 14 or the length octet overruns the data.
        """
        if self.method != AuthMethod.DIGITAL_SIGNATURE:
            raise DecodeError(f"{self.method.name} data has no AlgorithmIdentifier")
        r = Reader(self.data)
        algorithm = r.read(r.u8("ASN.1 length"), "AlgorithmIdentifier")
        if not algorithm:
            raise DecodeError("empty AlgorithmIdentifier")
        return algorithm, r.rest()

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.AUTH

    def encode_body(self) -> bytes:
        return Writer().u8(self.method).write(b"\x00\x00\x00").write(self.data).getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> Authentication:
        method = AuthMethod(r.u8("auth method"))
        r.read(3, "AUTH reserved")
        return cls(method, r.rest())
