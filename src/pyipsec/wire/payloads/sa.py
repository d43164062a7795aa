"""Security Association payload (RFC 7296 §3.3).

Theory of operation: an SA payload is a list of Proposal substructures, each a list of
Transform substructures, each with optional attributes. Every substructure starts with a
"Last Substruc" octet — 0 on the last one, 2 ("more proposals") or 3 ("more transforms") on
the others (RFC 7296 §3.3.1, §3.3.2) — and its own length, which must fit inside its parent;
the decoder checks every flag, every length and the Num Transforms and SPI Size fields, and
raises ``DecodeError`` (INVALID_SYNTAX) on any mismatch. Proposal numbering and which
transforms make sense together are the negotiation's business (``ike.proposal``), not the
codec's.

Transform IDs are typed by their transform type (``EncrId`` for ENCR, ``KeId`` for KE and
ADDKE1-7, ...) and stay plain ints for types without a registry here. The Key Length
attribute (type 14, always TV format, RFC 7296 §3.3.5) is lifted into
``Transform.key_length``; any other attribute is kept as a :class:`TransformAttribute`. On
encoding the Key Length attribute comes first, so a peer that put it after another attribute
does not round-trip byte for byte (no known implementation does). RESERVED fields are sent
as zero and ignored on receipt.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from pyipsec.errors import DecodeError
from pyipsec.iana.base import OpenIntEnum
from pyipsec.iana.ikev2 import PayloadType, ProtocolId
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId, TransformAttr, TransformType
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = [
    "Proposal",
    "SecurityAssociation",
    "Transform",
    "TransformAttribute",
    "spi_sizes_for",
    "typed_transform_id",
]

_LAST = 0
_MORE_PROPOSALS = 2  # RFC 7296 §3.3.1
_MORE_TRANSFORMS = 3  # RFC 7296 §3.3.2
_PROPOSAL_HEADER_LEN = 8
_TRANSFORM_HEADER_LEN = 8
_AF_TV = 0x8000  # Attribute Format bit: 1 = TV (2-byte value), 0 = TLV (RFC 7296 §3.3.5)

_ID_REGISTRIES: dict[int, type[OpenIntEnum]] = {
    TransformType.ENCR: EncrId,
    TransformType.PRF: PrfId,
    TransformType.INTEG: IntegId,
    TransformType.KE: KeId,
    TransformType.ESN: EsnId,
    **{t: KeId for t in range(TransformType.ADDKE1, TransformType.ADDKE7 + 1)},  # RFC 9370 §2.2.1
}


def typed_transform_id(transform_type: int, transform_id: int) -> int:
    """``transform_id`` as a member of its type's IANA registry, or a plain int if none is known."""
    registry = _ID_REGISTRIES.get(transform_type)
    return registry(transform_id) if registry is not None else int(transform_id)


def spi_sizes_for(protocol: ProtocolId) -> frozenset[int] | None:
    """SPI sizes allowed in a proposal for ``protocol``, or None if any size goes.

    RFC 7296 §3.3.1: 4 for AH and ESP; for IKE, 0 in IKE_SA_INIT and 8 when rekeying an IKE
    SA in CREATE_CHILD_SA (which of the two the exchange needs is checked by the protocol).
    """
    if protocol == ProtocolId.IKE:
        return frozenset({0, 8})
    if protocol in (ProtocolId.AH, ProtocolId.ESP):
        return frozenset({4})
    return None


@dataclass(frozen=True, slots=True)
class TransformAttribute:
    """A transform attribute other than Key Length (RFC 7296 §3.3.5).

    ``tv`` selects the TV format (AF=1, exactly two value bytes) instead of TLV (AF=0).
    """

    attr_type: TransformAttr
    value: bytes
    _: KW_ONLY
    tv: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.attr_type <= 0x7FFF:
            raise ValueError("attribute types are 15-bit values")
        if self.tv and len(self.value) != 2:
            raise ValueError("a TV attribute value is exactly 2 bytes")
        if len(self.value) > 0xFFFF:
            raise ValueError("attribute value too long")
        object.__setattr__(self, "attr_type", TransformAttr(self.attr_type))

    def encode(self, w: Writer) -> None:
        if self.tv:
            w.u16(_AF_TV | self.attr_type).write(self.value)
        else:
            w.u16(self.attr_type).u16(len(self.value)).write(self.value)


@dataclass(frozen=True, slots=True)
class Transform:
    """A Transform substructure (RFC 7296 §3.3.2).

    ``transform_id`` is normalised to its registry's enum (see :func:`typed_transform_id`).
    ``key_length`` is the Key Length attribute in bits, or None when absent.
    """

    transform_type: TransformType
    transform_id: int
    _: KW_ONLY
    key_length: int | None = None
    extra_attributes: tuple[TransformAttribute, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.transform_type <= 255:
            raise ValueError("transform types are 8-bit values")
        if not 0 <= self.transform_id <= 0xFFFF:
            raise ValueError("transform IDs are 16-bit values")
        if self.key_length is not None and not 0 <= self.key_length <= 0xFFFF:
            raise ValueError("key length is a 16-bit value")
        if any(a.attr_type == TransformAttr.KEY_LENGTH for a in self.extra_attributes):
            raise ValueError("Key Length goes in key_length, not extra_attributes")
        object.__setattr__(self, "transform_type", TransformType(self.transform_type))
        object.__setattr__(self, "transform_id", typed_transform_id(self.transform_type, self.transform_id))
        object.__setattr__(self, "extra_attributes", tuple(self.extra_attributes))

    def encode(self, w: Writer, *, last: bool) -> None:
        start = len(w)
        w.u8(_LAST if last else _MORE_TRANSFORMS).u8(0).u16(0)
        w.u8(self.transform_type).u8(0).u16(self.transform_id)
        if self.key_length is not None:
            w.u16(_AF_TV | TransformAttr.KEY_LENGTH).u16(self.key_length)
        for attr in self.extra_attributes:
            attr.encode(w)
        w.patch_u16(start + 2, len(w) - start)

    @classmethod
    def decode(cls, r: Reader) -> Transform:
        """Decode the part after the 4-byte substructure header; ``r`` spans exactly it."""
        ttype = TransformType(r.u8("transform type"))
        r.u8("transform reserved")
        tid = r.u16("transform ID")
        key_length: int | None = None
        extra: list[TransformAttribute] = []
        while not r.at_end():
            at = r.offset
            word = r.u16("attribute type")
            atype = TransformAttr(word & 0x7FFF)
            tv = bool(word & _AF_TV)
            value = (
                r.read(2, "TV attribute value")
                if tv
                else r.read(r.u16("attribute length"), "attribute value")
            )
            if atype == TransformAttr.KEY_LENGTH:
                if not tv:
                    raise DecodeError("Key Length attribute must use the TV format", offset=at)
                if key_length is not None:
                    raise DecodeError("duplicate Key Length attribute", offset=at)
                key_length = int.from_bytes(value, "big")
            else:
                extra.append(TransformAttribute(atype, value, tv=tv))
        return cls(ttype, tid, key_length=key_length, extra_attributes=tuple(extra))


@dataclass(frozen=True, slots=True)
class Proposal:
    """A Proposal substructure (RFC 7296 §3.3.1): number, protocol, SPI and transforms."""

    number: int
    protocol: ProtocolId
    _: KW_ONLY
    spi: bytes = b""
    transforms: tuple[Transform, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.number <= 255 or not 0 <= self.protocol <= 255:
            raise ValueError("proposal number and protocol ID are 8-bit values")
        object.__setattr__(self, "protocol", ProtocolId(self.protocol))
        allowed = spi_sizes_for(self.protocol)
        if len(self.spi) > 255 or (allowed is not None and len(self.spi) not in allowed):
            raise ValueError(f"SPI of {len(self.spi)} bytes is invalid for {self.protocol.name}")
        if len(self.transforms) > 255:
            raise ValueError("at most 255 transforms per proposal")
        object.__setattr__(self, "transforms", tuple(self.transforms))

    def transforms_of(self, transform_type: TransformType) -> tuple[Transform, ...]:
        """The transforms of one type, in the order proposed."""
        return tuple(t for t in self.transforms if t.transform_type == transform_type)

    def encode(self, w: Writer, *, last: bool) -> None:
        start = len(w)
        w.u8(_LAST if last else _MORE_PROPOSALS).u8(0).u16(0)
        w.u8(self.number).u8(self.protocol).u8(len(self.spi)).u8(len(self.transforms))
        w.write(self.spi)
        for i, t in enumerate(self.transforms):
            t.encode(w, last=i == len(self.transforms) - 1)
        w.patch_u16(start + 2, len(w) - start)

    @classmethod
    def decode(cls, r: Reader) -> Proposal:
        """Decode the part after the 4-byte substructure header; ``r`` spans exactly it."""
        number = r.u8("proposal number")
        protocol = ProtocolId(r.u8("protocol ID"))
        spi_at = r.offset
        spi_size = r.u8("SPI size")
        num_transforms = r.u8("number of transforms")
        allowed = spi_sizes_for(protocol)
        if allowed is not None and spi_size not in allowed:
            raise DecodeError(f"SPI size {spi_size} is invalid for {protocol.name}", offset=spi_at)
        spi = r.read(spi_size, "proposal SPI")
        transforms = []
        for i in range(num_transforms):
            at = r.offset
            flag = r.u8("transform last substruc")
            expected = _LAST if i == num_transforms - 1 else _MORE_TRANSFORMS
            if flag != expected:
                raise DecodeError(
                    f"transform {i + 1} of {num_transforms} has last-substruc {flag}, expected {expected}",
                    offset=at,
                )
            r.u8("transform reserved")
            length = r.u16("transform length")
            if length < _TRANSFORM_HEADER_LEN:
                raise DecodeError(f"transform length {length} is below {_TRANSFORM_HEADER_LEN}", offset=at)
            transforms.append(Transform.decode(r.sub(length - 4, "transform")))
        r.expect_end(f"proposal (after {num_transforms} transforms)")
        return cls(number, protocol, spi=spi, transforms=tuple(transforms))


@register(PayloadType.SA)
@dataclass(frozen=True, slots=True)
class SecurityAssociation:
    """The SA payload (RFC 7296 §3.3): one or more proposals, most preferred first."""

    proposals: tuple[Proposal, ...]

    def __post_init__(self) -> None:
        if not self.proposals:
            raise ValueError("an SA payload carries at least one proposal")
        object.__setattr__(self, "proposals", tuple(self.proposals))

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.SA

    def encode_body(self) -> bytes:
        w = Writer()
        for i, p in enumerate(self.proposals):
            p.encode(w, last=i == len(self.proposals) - 1)
        return w.getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> SecurityAssociation:
        if r.at_end():
            raise r.fail("SA payload without proposals")
        proposals = []
        while True:
            at = r.offset
            flag = r.u8("proposal last substruc")
            if flag not in (_LAST, _MORE_PROPOSALS):
                raise DecodeError(f"proposal last-substruc {flag} is neither 0 nor 2", offset=at)
            r.u8("proposal reserved")
            length = r.u16("proposal length")
            if length < _PROPOSAL_HEADER_LEN:
                raise DecodeError(f"proposal length {length} is below {_PROPOSAL_HEADER_LEN}", offset=at)
            proposals.append(Proposal.decode(r.sub(length - 4, "proposal")))
            if flag == _LAST:
                break
        r.expect_end("SA payload (after the last proposal)")
        return cls(tuple(proposals))
