"""The fixed 28-byte IKE header (RFC 7296 §3.1).

Theory of operation: :class:`IkeHeader` is the header exactly as it is on the wire, including
its Length field and every flag bit (also the ones RFC 7296 does not define), so a decoded
header re-encodes to the same 28 bytes. ``IkeHeader.decode`` reads only the header; it is
cheap enough for demultiplexing a datagram by SPI before anything else is parsed. Checking
the Length against the datagram, and the payload chain, are ``wire.message``'s business.

::

                         1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       IKE SA Initiator's SPI                  |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       IKE SA Responder's SPI                  |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                          Message ID                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                            Length                             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from pyipsec.errors import InvalidMajorVersion
from pyipsec.iana.ikev2 import ExchangeType, HeaderFlag, PayloadType
from pyipsec.wire.buffer import Reader, Writer

__all__ = ["IKE_HEADER_LEN", "IKE_MAJOR_VERSION", "IKE_MINOR_VERSION", "SPI_LEN", "IkeHeader"]

IKE_HEADER_LEN = 28
"""Length of the fixed IKE header in bytes (RFC 7296 §3.1)."""

IKE_MAJOR_VERSION = 2
"""Major version of IKEv2; anything else is rejected with INVALID_MAJOR_VERSION (RFC 7296 §2.5)."""

IKE_MINOR_VERSION = 0
"""Minor version sent (RFC 7296 §3.1); received minor versions are ignored but kept."""

SPI_LEN = 8
"""IKE SPIs are 8 bytes (RFC 7296 §3.1); the responder's is all zero in the first message."""


@dataclass(frozen=True, slots=True)
class IkeHeader:
    """The IKE header (RFC 7296 §3.1), as on the wire.

    ``flags`` keeps undefined bits too (``HeaderFlag`` is an ``IntFlag`` that keeps unknown
    bits), so decoding and encoding is byte exact; :attr:`is_initiator` and
    :attr:`is_response` read the two flags the protocol uses.
    """

    spi_i: bytes
    spi_r: bytes
    _: KW_ONLY
    next_payload: PayloadType
    major_version: int = IKE_MAJOR_VERSION
    minor_version: int = IKE_MINOR_VERSION
    exchange_type: ExchangeType
    flags: HeaderFlag
    message_id: int
    length: int

    def __post_init__(self) -> None:
        if len(self.spi_i) != SPI_LEN or len(self.spi_r) != SPI_LEN:
            raise ValueError("IKE SPIs are 8 bytes")
        if not (0 <= self.major_version <= 15 and 0 <= self.minor_version <= 15):
            raise ValueError("IKE versions are 4-bit values")
        if not (0 <= self.next_payload <= 255 and 0 <= self.exchange_type <= 255 and 0 <= self.flags <= 255):
            raise ValueError("next payload, exchange type and flags are 8-bit values")
        if not (0 <= self.message_id <= 0xFFFFFFFF and 0 <= self.length <= 0xFFFFFFFF):
            raise ValueError("message ID and length are 32-bit values")
        object.__setattr__(self, "next_payload", PayloadType(self.next_payload))
        object.__setattr__(self, "exchange_type", ExchangeType(self.exchange_type))
        object.__setattr__(self, "flags", HeaderFlag(self.flags))

    @property
    def is_initiator(self) -> bool:
        """The I(nitiator) flag: set by the original initiator of the IKE SA (RFC 7296 §3.1)."""
        return bool(self.flags & HeaderFlag.INITIATOR)

    @property
    def is_response(self) -> bool:
        """The R(esponse) flag: this message answers a request with the same Message ID."""
        return bool(self.flags & HeaderFlag.RESPONSE)

    def encode(self) -> bytes:
        """The 28 header bytes."""
        w = Writer()
        w.write(self.spi_i).write(self.spi_r)
        w.u8(self.next_payload).u8((self.major_version << 4) | self.minor_version)
        w.u8(self.exchange_type).u8(self.flags)
        w.u32(self.message_id).u32(self.length)
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader) -> IkeHeader:
        """Read the 28 header bytes from ``r``.

        Raises :class:`~pyipsec.errors.InvalidMajorVersion` for a major version other than 2
        (RFC 7296 §2.5), and ``DecodeError`` if fewer than 28 bytes are left. The Length
        field is returned as read; the caller compares it with the datagram.
        """
        spi_i = r.read(SPI_LEN, "initiator SPI")
        spi_r = r.read(SPI_LEN, "responder SPI")
        next_payload = PayloadType(r.u8("next payload"))
        version_at = r.offset
        version = r.u8("version")
        exchange_type = ExchangeType(r.u8("exchange type"))
        flags = HeaderFlag(r.u8("flags"))
        message_id = r.u32("message ID")
        length = r.u32("length")
        major, minor = version >> 4, version & 0x0F
        if major != IKE_MAJOR_VERSION:
            raise InvalidMajorVersion(major, offset=version_at)
        return cls(
            spi_i,
            spi_r,
            next_payload=next_payload,
            major_version=major,
            minor_version=minor,
            exchange_type=exchange_type,
            flags=flags,
            message_id=message_id,
            length=length,
        )
