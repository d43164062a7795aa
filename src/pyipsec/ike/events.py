"""What the engine tells the outside world: frozen event records.

The runtime applies ``ChildSaInstalled`` / ``ChildSaRemoved`` to the data plane and shows
the others in logs and ``status``. Keys travel only inside :class:`EspSaParams` and are
excluded from ``repr`` so that logging an event never leaks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = [
    "ChildSaFailed",
    "ChildSaInstalled",
    "ChildSaRemoved",
    "EspSaParams",
    "Event",
    "IkeSaClosed",
    "IkeSaEstablished",
]


@dataclass(frozen=True, slots=True)
class EspSaParams:
    """Everything the data plane needs for one Child SA (both directions)."""

    spi_in: bytes
    spi_out: bytes
    encr: EncrId
    encr_key_bits: int
    integ: IntegId
    esn: bool
    mode: str  # tunnel | transport
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    local: Endpoint
    remote: Endpoint
    encap: bool  # UDP encapsulation (RFC 3948) on the NAT-T port
    replay_window: int
    encr_key_in: bytes = field(repr=False)
    integ_key_in: bytes = field(repr=False)
    encr_key_out: bytes = field(repr=False)
    integ_key_out: bytes = field(repr=False)


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


@dataclass(frozen=True, slots=True)
class IkeSaClosed:
    sa_id: int
    connection: str
    reason: str
    established: bool  # False: the SA failed before it was established


@dataclass(frozen=True, slots=True)
class ChildSaInstalled:
    sa_id: int
    connection: str
    child: str
    child_id: int
    proposal: str
    params: EspSaParams


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


Event = IkeSaEstablished | IkeSaClosed | ChildSaInstalled | ChildSaRemoved | ChildSaFailed
