"""What the engine tells the outside world: frozen event records.

The runtime applies ``ChildSaInstalled`` / ``ChildSaRemoved`` to the data plane and shows
the others in logs and ``status``. Keys travel only inside the Child SA's
:class:`~pyipsec.childsa.ChildSaSpec` and are excluded from ``repr`` so that logging an event
never leaks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pyipsec.childsa import ChildSaSpec
from pyipsec.net.addr import Endpoint

__all__ = [
    "ChildSaAddressesChanged",
    "ChildSaFailed",
    "ChildSaInstalled",
    "ChildSaOutboundActivated",
    "ChildSaRemoved",
    "Event",
    "IkeSaClosed",
    "IkeSaEstablished",
    "NatKeepalive",
    "SaProgress",
    "VirtualIpAssigned",
]


@dataclass(frozen=True, slots=True)
class IkeSaEstablished:
    sa_id: int
    connection: str
    spi_i: bytes
    spi_r: bytes
    initiator: bool
    local: Endpoint
    remote: Endpoint
    local_id: str
    remote_id: str
    proposal: str
    rekeyed_from: int | None = None  # the IKE SA this one replaces (rekey, RFC 7296 §1.3.2)
    reauth_of: int | None = None  # the IKE SA this one replaces (reauthentication, RFC 7296 §2.8.3)


@dataclass(frozen=True, slots=True)
class IkeSaClosed:
    sa_id: int
    connection: str
    reason: str
    established: bool  # False: the SA failed before it was established


@dataclass(frozen=True, slots=True)
class ChildSaInstalled:
    """A new Child SA. With ``spec.outbound_active`` False only its inbound half is to be used
    yet (the responder of a rekey, make-before-break); :class:`ChildSaOutboundActivated` follows."""

    sa_id: int
    connection: str
    child: str
    child_id: int
    proposal: str
    spec: ChildSaSpec
    replaces: int | None = None  # child_id of the Child SA this one rekeys


@dataclass(frozen=True, slots=True)
class ChildSaOutboundActivated:
    """Send on this Child SA from now on (the peer has switched to it)."""

    sa_id: int
    connection: str
    child_id: int
    spi_out: bytes


@dataclass(frozen=True, slots=True)
class ChildSaRemoved:
    sa_id: int
    connection: str
    child: str
    child_id: int
    spi_in: bytes
    spi_out: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class ChildSaFailed:
    sa_id: int
    connection: str
    child: str
    reason: str


@dataclass(frozen=True, slots=True)
class VirtualIpAssigned:
    """The gateway gave us inner addresses and DNS settings (initiator side, RFC 7296 §2.19)."""

    sa_id: int
    connection: str
    addresses: tuple[IPv4Address | IPv6Address, ...]
    dns: tuple[IPv4Address | IPv6Address, ...]
    domains: tuple[str, ...]
    subnets: tuple[IPv4Network | IPv6Network, ...]


@dataclass(frozen=True, slots=True)
class ChildSaAddressesChanged:
    """The Child SA's ESP now goes between these endpoints (MOBIKE, RFC 4555), in UDP when ``encap``."""

    sa_id: int
    connection: str
    child_id: int
    spi_in: bytes
    local: Endpoint
    remote: Endpoint
    encap: bool


@dataclass(frozen=True, slots=True)
class SaProgress:
    """A step of bringing an IKE SA up, for people watching (``pyipsec up``)."""

    sa_id: int
    connection: str
    phase: str  # IKE_SA_INIT, IKE_AUTH, EAP
    detail: str


@dataclass(frozen=True, slots=True)
class NatKeepalive:
    """Send a NAT keepalive (the single octet 0xFF on the NAT-T port, RFC 3948 §2.3) now."""

    sa_id: int
    local: Endpoint
    remote: Endpoint


Event = (
    IkeSaEstablished
    | IkeSaClosed
    | ChildSaInstalled
    | ChildSaOutboundActivated
    | ChildSaRemoved
    | ChildSaFailed
    | VirtualIpAssigned
    | NatKeepalive
    | SaProgress
    | ChildSaAddressesChanged
)
