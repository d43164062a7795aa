"""Security association database: the live Child SAs, inbound by SPI (RFC 4301 §4.4.2).

Theory of operation
-------------------
A :class:`Child` is one installed Child SA as the data plane keeps it: its inbound and outbound
:class:`~pyipsec.esp.sa.EspSa`, its :class:`~pyipsec.esp.spd.Policy` with the memoised inbound
selector check, the peer it talks to, its lifetimes and its policy-drop counter. It is named by
its ``key``, the inbound SPI as an int (unique on this host, RFC 4301 §4.1).

:class:`Sad` is an immutable snapshot: ``inbound`` maps SPI → :class:`Child` and ``children``
holds every child by key. Installing or removing builds a new snapshot that the processor swaps
in whole, so a reader holding the old one never sees a half-made change. A rekey installs the new
Child SA beside the old one (both inbound SPIs resolve during the overlap, RFC 7296 §2.8 make-
before-break); the SPD sends outbound traffic on the newest, and the old child goes when the
control plane removes it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pyipsec.childsa import EspMode, Lifetimes
from pyipsec.esp.sa import EspSa
from pyipsec.esp.spd import InboundCheck, Policy
from pyipsec.net.addr import Endpoint

__all__ = ["Child", "Peer", "Sad"]


@dataclass(frozen=True, slots=True)
class Peer:
    """Where the outbound ESP of a child goes: our and the peer's endpoint, and the framing."""

    local: Endpoint
    remote: Endpoint
    encap: bool  # True: ESP in UDP (RFC 3948) on the NAT-T port; False: IP protocol 50


class Child:
    """One installed Child SA (mutable counters; everything else fixed at install time)."""

    __slots__ = (
        "check",
        "expired",
        "inbound",
        "installed_at",
        "key",
        "lifetimes",
        "mode",
        "outbound",
        "outbound_active",
        "peer",
        "policy",
        "policy_drops",
        "signalled",
        "spi_in",
        "spi_out",
    )

    def __init__(
        self,
        *,
        inbound: EspSa,
        outbound: EspSa,
        policy: Policy,
        peer: Peer,
        mode: EspMode = EspMode.TUNNEL,
        lifetimes: Lifetimes | None = None,
        installed_at: float = 0.0,
        outbound_active: bool = True,
    ) -> None:
        if policy.key != inbound.spi:
            raise ValueError("a child's policy key must be its inbound SPI")
        self.key = inbound.spi
        self.spi_in = inbound.spi
        self.spi_out = outbound.spi
        self.inbound = inbound
        self.outbound = outbound
        self.policy = policy
        self.check = InboundCheck(policy)
        self.peer = peer
        self.mode = mode
        self.lifetimes = lifetimes
        self.installed_at = installed_at
        self.outbound_active = outbound_active
        self.policy_drops = 0
        self.expired = False
        self.signalled: set[str] = set()

    def __repr__(self) -> str:
        return f"Child(in={self.spi_in:08x}, out={self.spi_out:08x}, peer={self.peer.remote})"


class Sad:
    """An immutable snapshot of the installed children."""

    __slots__ = ("children", "inbound")

    def __init__(self, children: Mapping[int, Child] | None = None) -> None:
        kids = dict(children or {})
        self.children: Mapping[int, Child] = MappingProxyType(kids)
        self.inbound: Mapping[int, Child] = MappingProxyType({c.spi_in: c for c in kids.values()})

    def with_child(self, child: Child) -> Sad:
        if child.spi_in in self.inbound and self.inbound[child.spi_in] is not child:
            raise ValueError(f"inbound SPI {child.spi_in:08x} is already installed")
        return Sad({**self.children, child.key: child})

    def without(self, key: int) -> Sad:
        return Sad({k: c for k, c in self.children.items() if k != key})

    def get(self, spi: int) -> Child | None:
        return self.inbound.get(spi)

    def __len__(self) -> int:
        return len(self.children)

    def __iter__(self) -> Iterator[Child]:
        return iter(self.children.values())
