"""IKEv2 messages: the header plus the chain of payloads (RFC 7296 §3.1, §3.2).

Theory of operation: every payload starts with a 4-byte generic header — Next Payload, the
Critical bit, Payload Length — and each header names the type of the payload *after* it; the
IKE header names the first. :func:`decode_message` walks that chain with one bounded reader
per payload body and hands each body to the decoder registered for its type
(``wire.payloads.base.register``). A payload type without a decoder becomes an
:class:`UnknownPayload` if its critical bit is clear and raises
:class:`~pyipsec.errors.UnsupportedCriticalPayload` if it is set (RFC 7296 §2.5); the critical
bit of known payloads is ignored on receipt and sent as 0.

The Encrypted (SK, RFC 7296 §3.14) and Encrypted Fragment (SKF, RFC 7383 §2.5) payloads are
special: their Next Payload field names the first payload *inside* the ciphertext, so the
chain ends with them, and they must be the last payload of the message. Their body stays
opaque here; ``ike.protect`` decrypts it and decodes the plaintext with
:func:`decode_payload_chain`, which rejects SK/SKF (no nesting). To build the AAD / the
integrity-checked octets before the ciphertext exists, ``ike.protect`` uses
:func:`encode_message_prefix`.

A chain holds at most :data:`MAX_PAYLOADS` (64) payloads — the outer chain and each decrypted
chain on its own: real messages carry a dozen or so, and the cap keeps an attacker's 1,000
four-byte payloads from costing a thousand decodes (RELIABILITY.md §5 A3).

The model (:class:`Message`) keeps everything needed to re-encode a decoded message byte
for byte: header flags the protocol does not use (``extra_flags``), the minor version, and
unknown payloads. The lengths (IKE header Length, Payload Lengths) are derived on encoding,
and ``raw`` holds the exact bytes a message was decoded from (the first message of each side
is signed as received, RFC 7296 §2.15).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import TypeVar

from pyipsec.errors import DecodeError, UnsupportedCriticalPayload
from pyipsec.iana.ikev2 import ExchangeType, HeaderFlag, NotifyType, PayloadType
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.header import IKE_HEADER_LEN, IKE_MAJOR_VERSION, IKE_MINOR_VERSION, SPI_LEN, IkeHeader

# Every payload module is imported so that its codec is registered.
from pyipsec.wire.payloads import auth as _auth  # noqa: F401
from pyipsec.wire.payloads import cert as _cert  # noqa: F401
from pyipsec.wire.payloads import cp as _cp  # noqa: F401
from pyipsec.wire.payloads import delete as _delete  # noqa: F401
from pyipsec.wire.payloads import eap as _eap  # noqa: F401
from pyipsec.wire.payloads import ident as _ident  # noqa: F401
from pyipsec.wire.payloads import ke as _ke  # noqa: F401
from pyipsec.wire.payloads import nonce as _nonce  # noqa: F401
from pyipsec.wire.payloads import sa as _sa  # noqa: F401
from pyipsec.wire.payloads import ts as _ts  # noqa: F401
from pyipsec.wire.payloads import vendor as _vendor  # noqa: F401
from pyipsec.wire.payloads.base import GENERIC_HEADER_LEN, Payload, decoder_for
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload, decode_sk, decode_skf
from pyipsec.wire.payloads.unknown import UnknownPayload

__all__ = [
    "CRITICAL_BIT",
    "ENCRYPTED_TYPES",
    "MAX_PAYLOADS",
    "MAX_PAYLOAD_LEN",
    "Message",
    "decode_message",
    "decode_payload_chain",
    "encode_header_for",
    "encode_message",
    "encode_message_prefix",
    "encode_payload_chain",
]

CRITICAL_BIT = 0x80
MAX_PAYLOADS = 64  # payloads per chain (outer, or one decrypted SK payload)
"""The C bit in the second octet of the generic payload header (RFC 7296 §3.2)."""

ENCRYPTED_TYPES = frozenset({PayloadType.SK, PayloadType.SKF})
"""Payload types whose Next Payload field names the first inner payload; always last."""

MAX_PAYLOAD_LEN = 0xFFFF
"""Payload Length is 16 bits and includes the generic header."""

_I_AND_R = int(HeaderFlag.INITIATOR | HeaderFlag.RESPONSE)

_P = TypeVar("_P")


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded (or to-be-encoded) IKE message.

    ``payloads`` is the outer chain. For a protected message it ends with an
    ``EncryptedPayload`` (or ``EncryptedFragment``); after decryption the protocol layer
    usually works on ``dataclasses.replace(msg, payloads=inner)``. ``extra_flags`` holds
    the header flag bits other than I and R (e.g. the Version bit, RFC 7296 §3.1), kept for
    byte-exact re-encoding. ``raw`` is the exact input of :func:`decode_message` (empty for
    a message built locally) and takes part in neither ``==`` nor ``repr``.
    """

    spi_i: bytes
    spi_r: bytes
    _: KW_ONLY
    exchange_type: ExchangeType
    message_id: int
    is_initiator: bool
    is_response: bool
    payloads: tuple[Payload, ...] = ()
    major_version: int = IKE_MAJOR_VERSION
    minor_version: int = IKE_MINOR_VERSION
    extra_flags: int = 0
    raw: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.spi_i) != SPI_LEN or len(self.spi_r) != SPI_LEN:
            raise ValueError("IKE SPIs are 8 bytes")
        if not 0 <= self.message_id <= 0xFFFFFFFF:
            raise ValueError("message IDs are 32-bit values")
        if not 0 <= self.extra_flags <= 0xFF or self.extra_flags & _I_AND_R:
            raise ValueError("extra_flags are the 8-bit header flags other than I and R")
        if not 0 <= self.exchange_type <= 255:
            raise ValueError("exchange types are 8-bit values")
        object.__setattr__(self, "exchange_type", ExchangeType(self.exchange_type))
        object.__setattr__(self, "payloads", tuple(self.payloads))

    @property
    def flags(self) -> HeaderFlag:
        """The header's Flags octet."""
        flags = self.extra_flags
        if self.is_initiator:
            flags |= HeaderFlag.INITIATOR
        if self.is_response:
            flags |= HeaderFlag.RESPONSE
        return HeaderFlag(flags)

    def header(self, length: int) -> IkeHeader:
        """The IKE header of this message for a total message length of ``length`` bytes."""
        first = self.payloads[0].payload_type if self.payloads else PayloadType.NO_NEXT_PAYLOAD
        return IkeHeader(
            self.spi_i,
            self.spi_r,
            next_payload=first,
            major_version=self.major_version,
            minor_version=self.minor_version,
            exchange_type=self.exchange_type,
            flags=self.flags,
            message_id=self.message_id,
            length=length,
        )

    def get(self, ptype: PayloadType) -> Payload | None:
        """The first payload of type ``ptype``, or None."""
        return next((p for p in self.payloads if p.payload_type == ptype), None)

    def get_all(self, ptype: PayloadType) -> tuple[Payload, ...]:
        """Every payload of type ``ptype``, in message order."""
        return tuple(p for p in self.payloads if p.payload_type == ptype)

    def find(self, cls: type[_P]) -> _P | None:
        """The first payload that is an instance of ``cls`` (typed access), or None."""
        return next((p for p in self.payloads if isinstance(p, cls)), None)

    def find_all(self, cls: type[_P]) -> tuple[_P, ...]:
        """Every payload that is an instance of ``cls``, in message order."""
        return tuple(p for p in self.payloads if isinstance(p, cls))

    def notifies(self) -> tuple[Notify, ...]:
        """The Notify payloads, in message order."""
        return self.find_all(Notify)

    def notify(self, ntype: NotifyType) -> Notify | None:
        """The first Notify of type ``ntype``, or None."""
        return next((n for n in self.notifies() if n.notify_type == ntype), None)

    def with_payloads(self, payloads: Sequence[Payload]) -> Message:
        """This message with another payload chain (``raw`` is kept)."""
        return replace(self, payloads=tuple(payloads))


# -- decoding --------------------------------------------------------------------------------


def _guarded(
    decode: Callable[[PayloadType, Reader], Payload],
    ptype: PayloadType,
    arg: PayloadType,
    body: Reader,
    at: int,
) -> Payload:
    """Run one payload decoder; it must consume the whole body and raise only DecodeError."""
    try:
        payload = decode(arg, body)
    except ValueError as exc:  # a model invariant the decoder did not check itself
        raise DecodeError(f"invalid {ptype.name} payload: {exc}", offset=at) from exc
    body.expect_end(f"{ptype.name} payload")
    return payload


def _decode_chain(first: PayloadType, r: Reader, *, outer: bool) -> tuple[Payload, ...]:
    """Walk the chain starting with a payload of type ``first``; ``r`` must end with it."""
    payloads: list[Payload] = []
    ptype = first
    while ptype != PayloadType.NO_NEXT_PAYLOAD:
        at = r.offset
        if len(payloads) == MAX_PAYLOADS:
            raise DecodeError(f"more than {MAX_PAYLOADS} payloads in one chain", offset=at)
        next_type = PayloadType(r.u8("next payload"))
        critical = bool(r.u8("critical bit") & CRITICAL_BIT)
        length = r.u16("payload length")
        if length < GENERIC_HEADER_LEN:
            raise DecodeError(f"payload length {length} is below {GENERIC_HEADER_LEN}", offset=at)
        if length - GENERIC_HEADER_LEN > r.remaining:
            raise DecodeError(
                f"{ptype.name} payload length {length} runs past the end ({r.remaining + 4} bytes left)",
                offset=at,
            )
        body = r.sub(length - GENERIC_HEADER_LEN, f"{ptype.name} payload")
        if ptype in ENCRYPTED_TYPES:
            if not outer:
                raise DecodeError(f"{ptype.name} payload inside an encrypted payload", offset=at)
            decode_encrypted = decode_sk if ptype == PayloadType.SK else decode_skf
            payloads.append(_guarded(decode_encrypted, ptype, next_type, body, at))
            # RFC 7296 §3.14 / RFC 7383 §2.5: the encrypted payload is the last one.
            r.expect_end(f"message after its {ptype.name} payload")
            return tuple(payloads)
        decoder = decoder_for(ptype)
        if decoder is None:
            if critical:
                raise UnsupportedCriticalPayload(ptype, offset=at)
            payloads.append(UnknownPayload(ptype, False, body=body.rest()))
        else:
            payloads.append(_guarded(decoder, ptype, ptype, body, at))
        ptype = next_type
    r.expect_end("message after its last payload")
    return tuple(payloads)


def decode_message(data: bytes) -> Message:
    """Decode a whole IKE message (no non-ESP marker); SK/SKF bodies stay encrypted.

    Raises ``DecodeError`` (or its subclasses ``InvalidMajorVersion`` and
    ``UnsupportedCriticalPayload``) for anything malformed, including a header Length that
    differs from ``len(data)``.
    """
    data = bytes(data)
    r = Reader(data)
    hdr = IkeHeader.decode(r)
    if hdr.length != len(data):
        raise DecodeError(f"IKE header length {hdr.length} but the message has {len(data)} bytes", offset=24)
    payloads = _decode_chain(hdr.next_payload, r, outer=True)
    return Message(
        hdr.spi_i,
        hdr.spi_r,
        exchange_type=hdr.exchange_type,
        message_id=hdr.message_id,
        is_initiator=hdr.is_initiator,
        is_response=hdr.is_response,
        payloads=payloads,
        major_version=hdr.major_version,
        minor_version=hdr.minor_version,
        extra_flags=int(hdr.flags) & ~_I_AND_R & 0xFF,
        raw=data,
    )


def decode_payload_chain(first: PayloadType, data: bytes, *, base: int = 0) -> tuple[Payload, ...]:
    """Decode a bare chain, e.g. the plaintext of an SK payload (without padding).

    ``first`` is the type of the first payload (the SK payload's Next Payload field);
    ``base`` is added to error offsets, e.g. the plaintext's offset in the message. SK and
    SKF payloads inside are a ``DecodeError``, and so are bytes after the last payload.
    """
    return _decode_chain(PayloadType(first), Reader(bytes(data), base=base), outer=False)


# -- encoding --------------------------------------------------------------------------------


def _encode_chain(payloads: Sequence[Payload], *, outer: bool, tail: int = 0) -> tuple[PayloadType, bytes]:
    """Encode a chain; ``tail`` extra bytes are counted in the last payload's length but not written."""
    w = Writer()
    for i, p in enumerate(payloads):
        ptype = p.payload_type
        is_last = i == len(payloads) - 1
        if isinstance(p, EncryptedPayload | EncryptedFragment):
            if not outer:
                raise ValueError(f"{ptype.name} payload inside an encrypted payload")
            if not is_last:
                raise ValueError(f"the {ptype.name} payload must be the last payload")
            next_type = p.inner_type
        elif ptype in ENCRYPTED_TYPES:
            raise ValueError(f"{ptype.name} must be an EncryptedPayload/EncryptedFragment")
        else:
            next_type = PayloadType.NO_NEXT_PAYLOAD if is_last else payloads[i + 1].payload_type
        body = p.encode_body()
        length = GENERIC_HEADER_LEN + len(body) + (tail if is_last else 0)
        if length > MAX_PAYLOAD_LEN:
            raise ValueError(f"{ptype.name} payload of {length} bytes exceeds {MAX_PAYLOAD_LEN}")
        critical = isinstance(p, UnknownPayload) and p.critical
        w.u8(next_type).u8(CRITICAL_BIT if critical else 0).u16(length).write(body)
    first = payloads[0].payload_type if payloads else PayloadType.NO_NEXT_PAYLOAD
    return first, w.getvalue()


def encode_payload_chain(payloads: Sequence[Payload]) -> tuple[PayloadType, bytes]:
    """(type of the first payload, bytes) of a bare chain, e.g. the plaintext of an SK payload.

    An empty chain gives ``(NO_NEXT_PAYLOAD, b"")`` (an empty INFORMATIONAL). SK/SKF inside
    raise ``ValueError``.
    """
    return _encode_chain(payloads, outer=False)


def encode_header_for(msg: Message, body_len: int) -> bytes:
    """The 28-byte IKE header of ``msg`` when ``body_len`` bytes of payloads follow it."""
    return msg.header(IKE_HEADER_LEN + body_len).encode()


def encode_message(msg: Message) -> bytes:
    """The wire bytes of ``msg`` (header Length and every Payload Length computed)."""
    _, chain = _encode_chain(msg.payloads, outer=True)
    return encode_header_for(msg, len(chain)) + chain


def encode_message_prefix(msg: Message, data_len: int) -> bytes:
    """The octets of ``msg`` that precede the ``data`` of its final SK/SKF payload.

    ``msg.payloads`` must end with an ``EncryptedPayload`` or ``EncryptedFragment``, whose
    ``data`` (IV ‖ ciphertext ‖ ICV) is ignored: the prefix is computed as if it were
    ``data_len`` bytes long. The result is the IKE header, any payloads before the
    encrypted one, its generic header and, for SKF, the Fragment Number and Total Fragments
    fields — exactly the AEAD associated data (RFC 5282 §5.1, RFC 7383 §2.5), and the start
    of the octets an integrity transform covers (RFC 7296 §3.14). For every ``data`` of
    length ``data_len``::

        encode_message_prefix(msg, len(data)) + data == encode_message(msg with that data)
    """
    if data_len < 0:
        raise ValueError("data_len must be non-negative")
    last = msg.payloads[-1] if msg.payloads else None
    if not isinstance(last, EncryptedPayload | EncryptedFragment):
        raise ValueError("the message does not end with an SK or SKF payload")
    stub = replace(last, data=b"")
    _, chain = _encode_chain((*msg.payloads[:-1], stub), outer=True, tail=data_len)
    return encode_header_for(msg, len(chain) + data_len) + chain
