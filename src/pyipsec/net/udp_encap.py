"""Port-4500 framing (RFC 3948 §2): what one datagram on the NAT-T port is.

- 4 zero octets (the non-ESP marker) → an IKE message follows;
- the single octet 0xFF → a NAT keepalive;
- anything else → an ESP packet (its SPI is never 0).
"""

from __future__ import annotations

from enum import Enum, auto

__all__ = ["NON_ESP_MARKER", "Kind", "classify", "frame_ike"]

NON_ESP_MARKER = b"\x00\x00\x00\x00"
KEEPALIVE = b"\xff"


class Kind(Enum):
    IKE = auto()
    ESP = auto()
    KEEPALIVE = auto()
    INVALID = auto()


def classify(datagram: bytes) -> Kind:
    if datagram == KEEPALIVE:
        return Kind.KEEPALIVE
    if len(datagram) < 8:  # shorter than an ESP header or marker + anything
        return Kind.INVALID
    if datagram[:4] == NON_ESP_MARKER:
        return Kind.IKE
    return Kind.ESP


def frame_ike(message: bytes) -> bytes:
    """An IKE message as sent on the NAT-T port."""
    return NON_ESP_MARKER + message
