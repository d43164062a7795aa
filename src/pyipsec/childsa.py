"""One Child SA, as negotiated, from the engine's event to the data plane.

Theory of operation
-------------------
:class:`ChildSaSpec` is the single description of one negotiated Child SA: both of its ESP
SAs (our inbound SPI and the peer's, which we send to), the transform and its four keys, ESN,
the mode (:class:`EspMode`), the traffic selectors, the endpoints the ESP travels between and
how (raw IP protocol 50, or ESP in UDP on the NAT-T port, RFC 3948), the replay window, the
volume :class:`Lifetimes` the data plane enforces, and whether its outbound half is in use yet
(``outbound_active`` False: a rekey's new SA receives before it sends, RFC 7296 §2.8).

The IKE engine builds it (``ike.events.ChildSaInstalled.spec``); the daemon sends it as is over
the data-plane channel (``dataplane.messages`` encodes it); the ESP processor builds its live
SAs from it once, at install time, so nothing on the packet path reads it. Keys are
``field(repr=False)``: logging a spec, or an event carrying one, never shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = ["ChildSaSpec", "EspMode", "Lifetimes"]


class EspMode(Enum):
    """How ESP wraps traffic (RFC 4301 §4.1): the whole IP packet, or its payload only."""

    TUNNEL = "tunnel"
    TRANSPORT = "transport"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lifetimes:
    """Soft and hard SA lifetimes (RFC 4301 §4.4.2.1); None means no limit.

    Crossing the soft one asks for a rekey, crossing the hard one ends the SA. Bytes count inner
    (payload) bytes, the larger of the two directions.
    """

    soft_bytes: int | None = None
    hard_bytes: int | None = None
    soft_packets: int | None = None
    hard_packets: int | None = None
    soft_seconds: float | None = None
    hard_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSaSpec:
    """One negotiated Child SA: both ESP SAs, their selectors and where the ESP goes.

    ``encr_key_*`` include the 4-byte salt for AES-GCM and ChaCha20-Poly1305 (RFC 4106 §8.1,
    RFC 7634 §2); ``integ`` is ``IntegId.NONE`` for those, and ``integ_key_*`` empty.
    ``local_ts``/``remote_ts`` are the narrowed selectors, ours and the peer's. ``encap`` puts
    ESP in UDP on the NAT-T port (RFC 3948), else raw IP protocol 50. ``lifetimes`` holds the
    limits the data plane counts (None: none; the engine keeps time limits itself).
    """

    spi_in: bytes
    spi_out: bytes
    encr: EncrId
    encr_key_bits: int
    integ: IntegId
    esn: bool
    mode: EspMode
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    local: Endpoint
    remote: Endpoint
    encap: bool
    replay_window: int
    encr_key_in: bytes = field(repr=False)
    integ_key_in: bytes = field(repr=False)
    encr_key_out: bytes = field(repr=False)
    integ_key_out: bytes = field(repr=False)
    lifetimes: Lifetimes | None = None
    outbound_active: bool = True

    def __post_init__(self) -> None:
        if len(self.spi_in) != 4 or len(self.spi_out) != 4:
            raise ValueError("ESP SPIs are 4 bytes")
        if not isinstance(self.mode, EspMode):
            raise ValueError(f"mode must be an EspMode, not {self.mode!r}")
        if self.local.ip.version != self.remote.ip.version:
            raise ValueError("local and remote endpoints are of different address families")
        if not self.local_ts or not self.remote_ts:
            raise ValueError("a Child SA needs local and remote traffic selectors")
