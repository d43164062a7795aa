"""Virtual-IP address pools as the engine sees them: acquire and release by identity.

The daemon backs this with the persistent lease store (``store.sqlite``); ``MemoryPools``
serves tests and deployments without a store. Either way an identity gets its previous
address back while that address is free, two live SAs never share an address, and an
exhausted pool raises ``InternalAddressFailure`` (answered with INTERNAL_ADDRESS_FAILURE).
``requested`` is the address the peer asks for (in the pool), which a shared store gives an
identity that holds it on another gateway.

``LookupPools`` is for a store behind I/O (PostgreSQL shared by gateways): ``acquire`` never
answers itself but suspends the exchange with a :class:`~pyipsec.ike.lookups.LeaseQuery`
(the engine's lookup round trip, as for RADIUS), so the event loop never waits for the
database; ``release`` hands the address to the host's callback, which queues it and never
blocks. This keeps the engine's pool interface synchronous and the change to the CP task
small: the task only learns to resume with a :class:`~pyipsec.ike.lookups.LeaseAnswer`.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol

from pyipsec.errors import InternalAddressFailure
from pyipsec.ike.config import PoolConfig
from pyipsec.ike.lookups import LeaseQuery
from pyipsec.ike.task import Suspend

__all__ = ["AddressPools", "LookupPools", "MemoryPools"]

IPAddress = IPv4Address | IPv6Address


class AddressPools(Protocol):
    def acquire(self, pool: PoolConfig, identity: str, requested: IPAddress | None = None) -> IPAddress: ...

    def release(self, pool: PoolConfig, address: IPAddress) -> None: ...


class MemoryPools:
    def __init__(self) -> None:
        self._in_use: dict[str, dict[IPAddress, str]] = {}
        self._last: dict[tuple[str, str], IPAddress] = {}

    def acquire(self, pool: PoolConfig, identity: str, requested: IPAddress | None = None) -> IPAddress:
        used = self._in_use.setdefault(pool.name, {})
        previous = self._last.get((pool.name, identity))
        if previous is not None and previous not in used:
            used[previous] = identity
            return previous
        for n in range(int(pool.first), int(pool.last) + 1):
            addr = ip_address(n) if pool.version == 4 else IPv6Address(n)
            if addr not in used and addr not in self._last.values():
                used[addr] = identity
                self._last[(pool.name, identity)] = addr
                return addr
        for n in range(int(pool.first), int(pool.last) + 1):  # reuse addresses remembered for others
            addr = ip_address(n) if pool.version == 4 else IPv6Address(n)
            if addr not in used:
                used[addr] = identity
                self._last[(pool.name, identity)] = addr
                return addr
        raise InternalAddressFailure(f"pool {pool.name} ({pool.first}-{pool.last}) is exhausted")

    def release(self, pool: PoolConfig, address: IPAddress) -> None:
        self._in_use.get(pool.name, {}).pop(address, None)

    def in_use(self, pool: str) -> dict[IPAddress, str]:
        return dict(self._in_use.get(pool, {}))


class LookupPools:
    """Leases from the host: ``acquire`` suspends with a LeaseQuery, ``release`` calls ``released``."""

    def __init__(self, released: Callable[[PoolConfig, IPAddress], None]) -> None:
        self._released = released

    def acquire(self, pool: PoolConfig, identity: str, requested: IPAddress | None = None) -> IPAddress:
        raise Suspend(LeaseQuery(pool.name, pool.first, pool.last, identity, requested))

    def release(self, pool: PoolConfig, address: IPAddress) -> None:
        self._released(pool, address)
