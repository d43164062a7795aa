"""Endpoints and datagrams: what the sans-I/O core exchanges with the I/O edge.

A :class:`Datagram` carries one IKE message (``payload``) between two UDP endpoints. On the
NAT-T port the 4-byte non-ESP marker (RFC 3948 §2.2) is *not* part of ``payload``: the UDP
layer strips it on receive and adds it on send whenever the local port is the NAT-T port,
so the protocol core never sees framing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

__all__ = ["IKE_NATT_PORT", "IKE_PORT", "Datagram", "Endpoint", "IPAddress"]

IPAddress = IPv4Address | IPv6Address

IKE_PORT = 500
IKE_NATT_PORT = 4500


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An IP address and UDP port."""

    ip: IPAddress
    port: int

    @classmethod
    def parse(cls, ip: str | IPAddress, port: int) -> Endpoint:
        return cls(ip_address(ip) if isinstance(ip, str) else ip, port)

    def with_port(self, port: int) -> Endpoint:
        return Endpoint(self.ip, port)

    @property
    def packed(self) -> bytes:
        """Address bytes followed by the 2-byte port (the NAT-D hash input, RFC 7296 §2.23)."""
        return self.ip.packed + self.port.to_bytes(2, "big")

    def __str__(self) -> str:
        host = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram as the protocol core sees it (no non-ESP marker)."""

    local: Endpoint
    remote: Endpoint
    payload: bytes = field(repr=False)
