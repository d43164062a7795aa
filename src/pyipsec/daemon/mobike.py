"""Paths: which local address IKE leaves from, and MOBIKE moves (RFC 4555).

Theory of operation
-------------------
An :class:`AddressSource` knows our usable local addresses and which one the routing table
uses towards a remote address; production: :class:`HostAddresses` (netlink and a connected UDP
probe socket), tests: a fixed table.

* Initiating without a concrete ``local_addrs`` (a road warrior), the source address is the one
  the routing table picks for the peer, as strongSwan does (:func:`initiator_source`).
* :class:`AddressWatcher` tells the engine our addresses whenever they change (it announces
  them to MOBIKE peers, ADDITIONAL_IP*_ADDRESS, §3.6), and every :data:`ADDRESS_CHECK` seconds
  asks, for each IKE SA we may move, whether the route to the peer now leaves from another
  local address (Wi-Fi gone, mobile data up): then it moves the SA there
  (``IkeEngine.update_sa_address``). :func:`mobike_path` is that choice (§3.8, a simple
  policy): the peer's current address first, then its additional addresses in order.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from pyipsec.daemon.clock import Clock, TimerHandle
from pyipsec.errors import UsageError
from pyipsec.ike.config import ConnectionConfig
from pyipsec.ike.engine import IkeEngine, Output
from pyipsec.io.addrs import list_local_addresses
from pyipsec.net.addr import Endpoint, IPAddress

__all__ = [
    "ADDRESS_CHECK",
    "AddressSource",
    "AddressWatcher",
    "HostAddresses",
    "initiator_source",
    "mobike_path",
    "route_source",
]

_log = logging.getLogger("pyipsec.daemon")

ADDRESS_CHECK = 2.0  # seconds between checks of the path to MOBIKE peers
_ANY_ADDRS = ("%any", "0.0.0.0", "::")


def route_source(remote: str) -> str | None:
    """The local address the routing table uses towards ``remote`` (no packet is sent), or None."""
    family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((remote, 500))
            return str(probe.getsockname()[0])
    except OSError:
        return None


class AddressSource(Protocol):
    def addresses(self) -> tuple[IPAddress, ...]:
        """Our usable local addresses; raises OSError when they cannot be listed."""

    def route_source(self, remote: str) -> str | None:
        """The local address the routing table uses towards ``remote``, or None (no route)."""


class HostAddresses:
    """This host's addresses (netlink), without those of ``exclude_ifaces`` (our TUN device)."""

    def __init__(self, exclude_ifaces: Collection[str] = ()) -> None:
        self.exclude_ifaces = tuple(exclude_ifaces)

    def addresses(self) -> tuple[IPAddress, ...]:
        return list_local_addresses(exclude_ifaces=self.exclude_ifaces)

    def route_source(self, remote: str) -> str | None:
        return route_source(remote)


def initiator_source(
    conn: ConnectionConfig, source_for: Callable[[str], str | None], remote: str | None = None
) -> Endpoint | None:
    """Where to initiate ``conn`` from when its ``local_addrs`` name no concrete address: the
    routing table's choice towards ``remote`` (default: its first concrete remote address;
    another one after a redirect or a failover) — None: the engine picks."""
    if any(a not in _ANY_ADDRS for a in conn.local_addrs):
        return None
    if remote is None:
        remote = next((a for a in conn.remote_addrs if a not in _ANY_ADDRS), None)
    src = source_for(remote) if remote is not None else None
    return Endpoint.parse(src, conn.local_port) if src is not None else None


def mobike_path(
    local: IPAddress,
    remote: IPAddress,
    peer_addresses: Sequence[IPAddress],
    source_for: Callable[[str], str | None],
) -> tuple[str, IPAddress | None] | None:
    """Where a MOBIKE initiator should move (RFC 4555 §3.8, a simple policy), or None to stay.

    The peer's current address first: if the route to it now leaves from another local
    address, move there (same peer address: ``None`` in the result). With no route to it at
    all, the first of the peer's additional addresses we have a route to.
    """
    src = source_for(str(remote))
    if src is not None:
        return None if src == str(local) else (src, None)
    for alt in peer_addresses:
        src = source_for(str(alt))
        if src is not None:
            return src, alt
    return None


class AddressWatcher:
    """Keeps the engine told of our addresses and moves MOBIKE SAs (module docstring)."""

    def __init__(
        self, engine: IkeEngine, source: AddressSource, clock: Clock, apply: Callable[[Output], None]
    ) -> None:
        self.engine = engine
        self.source = source
        self.clock = clock
        self.apply = apply
        self._known: tuple[IPAddress, ...] | None = None  # as last reported to the engine
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        """Report the addresses now (before any IKE_AUTH announces them, §3.4), then check
        every :data:`ADDRESS_CHECK` seconds."""
        self.refresh()
        self._timer = self.clock.call_later(ADDRESS_CHECK, self.check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def refresh(self) -> None:
        """Tell the engine our usable addresses if they changed (only with MOBIKE connections)."""
        if not any(c.mobike for c in self.engine.config.connections.values()):
            return
        try:
            addrs = self.source.addresses()
        except Exception as exc:  # netlink unavailable: keep the last list
            _log.debug("cannot list local addresses: %s", exc)
            return
        if addrs != self._known:
            _log.info("local addresses: %s", ", ".join(map(str, addrs)) or "none")
            self._known = addrs
            self.apply(self.engine.set_local_addresses(addrs, self.clock.now()))

    def check(self) -> None:
        """Refresh, then move each SA whose path changed (:func:`mobike_path`)."""
        self.refresh()
        for sa in self.engine.list_sas():
            if not sa.can_move:
                continue
            target = mobike_path(sa.local.ip, sa.remote.ip, sa.peer_addresses or (), self.source.route_source)
            if target is None:
                continue
            src, remote = target
            with contextlib.suppress(UsageError):
                local = Endpoint.parse(src, sa.local.port)
                self.apply(self.engine.update_sa_address(sa.sa_id, local, self.clock.now(), remote=remote))
        self._timer = self.clock.call_later(ADDRESS_CHECK, self.check)
