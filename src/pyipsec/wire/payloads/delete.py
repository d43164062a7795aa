"""Delete payload (RFC 7296 §3.11).

::

    | Protocol ID (1) | SPI Size (1) | Num of SPIs (2) | SPIs (SPI Size x Num of SPIs) |

Deleting the IKE SA uses protocol IKE, SPI Size 0 and no SPIs (the SPIs are in the header);
Child SAs use AH or ESP with 4-byte SPIs, the SPIs the sender expects on *inbound* packets.
The decoder requires Num of SPIs x SPI Size to fill the body exactly, and rejects other
protocol IDs (a Delete for them could not be acted on, and their SPI size is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import PayloadType, ProtocolId
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = ["Delete", "delete_spi_size"]


def delete_spi_size(protocol: ProtocolId) -> int | None:
    """SPI size for ``protocol`` in a Delete payload, or None if the protocol is not deletable."""
    if protocol == ProtocolId.IKE:
        return 0
    if protocol in (ProtocolId.AH, ProtocolId.ESP):
        return 4
    return None


@register(PayloadType.D)
@dataclass(frozen=True, slots=True)
class Delete:
    """The D payload: which SAs the sender has deleted."""

    protocol: ProtocolId
    spis: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", ProtocolId(self.protocol))
        object.__setattr__(self, "spis", tuple(self.spis))
        size = delete_spi_size(self.protocol)
        if size is None:
            raise ValueError(f"cannot delete SAs of protocol {self.protocol.name}")
        if size == 0 and self.spis:
            raise ValueError("an IKE SA Delete carries no SPIs")
        if any(len(s) != size for s in self.spis) or len(self.spis) > 0xFFFF:
            raise ValueError(f"{self.protocol.name} SPIs are {size} bytes")

    @classmethod
    def ike(cls) -> Delete:
        """Delete for the IKE SA of the message carrying it."""
        return cls(ProtocolId.IKE)

    @property
    def payload_type(self) -> PayloadType:
        return PayloadType.D

    def encode_body(self) -> bytes:
        size = delete_spi_size(self.protocol) or 0
        w = Writer().u8(self.protocol).u8(size).u16(len(self.spis))
        for spi in self.spis:
            w.write(spi)
        return w.getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> Delete:
        at = r.offset
        protocol = ProtocolId(r.u8("protocol ID"))
        size_at = r.offset
        spi_size = r.u8("SPI size")
        count = r.u16("number of SPIs")
        expected = delete_spi_size(protocol)
        if expected is None:
            raise DecodeError(f"Delete for unsupported protocol {protocol.name}", offset=at)
        if spi_size != expected:
            raise DecodeError(f"SPI size {spi_size} is invalid for {protocol.name}", offset=size_at)
        if expected == 0 and count:
            raise DecodeError("an IKE SA Delete carries no SPIs", offset=size_at)
        if r.remaining != count * spi_size:
            raise r.fail(f"{count} SPIs of {spi_size} bytes do not fill the {r.remaining} remaining bytes")
        return cls(protocol, tuple(r.read(spi_size, "SPI") for _ in range(count)))
