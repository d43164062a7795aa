"""Encrypted (SK, RFC 7296 §3.14) and Encrypted Fragment (SKF, RFC 7383 §2.5) payloads.

Theory of operation: the codec treats the protected part as opaque. An SK body is
``IV | Encrypted IKE Payloads | Padding | Pad Length | ICV``; an SKF body is ``Fragment
Number (2) | Total Fragments (2)`` followed by the same protected layout. Which octets are
IV and which are ICV depends on the negotiated transforms, so ``ike.protect`` splits and
verifies ``data``; this module only carries it.

Both payloads are special in the chain: the generic header's Next Payload field holds the
type of the first payload *inside* (``inner_type``), and the SK/SKF payload is the last
one in the message. So they are not registered with :func:`~pyipsec.wire.payloads.base.register`:
``wire.message`` calls :func:`decode_sk` / :func:`decode_skf` with the Next Payload value it
read, and writes ``inner_type`` back into that field when encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType
from pyipsec.wire.buffer import Reader, Writer

__all__ = ["SKF_HEADER_LEN", "EncryptedFragment", "EncryptedPayload", "decode_sk", "decode_skf"]

SKF_HEADER_LEN = 4
"""Fragment Number (2) | Total Fragments (2), RFC 7383 §2.5."""


@dataclass(frozen=True, slots=True)
class EncryptedPayload:
    """An SK payload; ``data`` is IV ‖ ciphertext ‖ ICV (RFC 7296 §3.14).

    ``inner_type`` is the first inner payload's type (NO_NEXT_PAYLOAD if there is none,
    as in an empty INFORMATIONAL).
    """

    payload_type: ClassVar[PayloadType] = PayloadType.SK

    inner_type: PayloadType
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.inner_type <= 0xFF:
            raise ValueError(f"inner payload type {int(self.inner_type)} does not fit one octet")

    def __repr__(self) -> str:
        return f"EncryptedPayload(inner_type={self.inner_type.name}, data=<{len(self.data)} octets>)"

    def encode_body(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class EncryptedFragment:
    """An SKF payload (RFC 7383 §2.5): one fragment of an SK payload's protected content.

    Fragment numbers count from 1 up to ``total_fragments``; ``inner_type`` is the first
    inner payload's type in fragment 1 and NO_NEXT_PAYLOAD in every other fragment.
    """

    payload_type: ClassVar[PayloadType] = PayloadType.SKF

    fragment_number: int
    total_fragments: int
    inner_type: PayloadType
    data: bytes

    def __post_init__(self) -> None:
        problem = _fragment_problem(self.fragment_number, self.total_fragments, self.inner_type)
        if problem:
            raise ValueError(problem)

    def __repr__(self) -> str:
        return (
            f"EncryptedFragment({self.fragment_number}/{self.total_fragments}, "
            f"inner_type={self.inner_type.name}, data=<{len(self.data)} octets>)"
        )

    def encode_body(self) -> bytes:
        w = Writer().u16(self.fragment_number).u16(self.total_fragments)
        return w.write(self.data).getvalue()


def _fragment_problem(number: int, total: int, inner_type: PayloadType) -> str | None:
    if not 1 <= number <= 0xFFFF or not 1 <= total <= 0xFFFF:
        return f"fragment number {number} and total {total} must be 1..65535"
    if number > total:
        return f"fragment number {number} exceeds total fragments {total}"
    if number > 1 and inner_type != PayloadType.NO_NEXT_PAYLOAD:
        return f"fragment {number} must have Next Payload 0, got {int(inner_type)}"
    if not 0 <= inner_type <= 0xFF:
        return f"inner payload type {int(inner_type)} does not fit one octet"
    return None


def decode_sk(inner_type: PayloadType, r: Reader) -> EncryptedPayload:
    """An SK payload body; ``inner_type`` is the Next Payload field of its generic header."""
    return EncryptedPayload(inner_type, r.rest())


def decode_skf(inner_type: PayloadType, r: Reader) -> EncryptedFragment:
    """An SKF payload body; ``inner_type`` is the Next Payload field of its generic header."""
    start = r.offset
    number = r.u16("Fragment Number")
    total = r.u16("Total Fragments")
    problem = _fragment_problem(number, total, inner_type)
    if problem:
        raise DecodeError(problem, offset=start)
    return EncryptedFragment(number, total, inner_type, r.rest())
