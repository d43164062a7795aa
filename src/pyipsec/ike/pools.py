"""Virtual-IP address pools as the engine sees them: acquire and release by identity.

The daemon backs this with the persistent lease store (``store.sqlite``); ``MemoryPools``
serves tests and deployments without a store. Either way an identity gets its previous
address back while that address is free, two live SAs never share an address, and an
exhausted pool raises ``InternalAddressFailure`` (answered with INTERNAL_ADDRESS_FAILURE).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Protocol

from pyipsec.errors import InternalAddressFailure
from pyipsec.ike.config import PoolConfig

__all__ = ["AddressPools", "MemoryPools"]

IPAddress = IPv4Address | IPv6Address


class AddressPools(Protocol):
    def acquire(self, pool: PoolConfig, identity: str) -> IPAddress: ...

    def release(self, pool: PoolConfig, address: IPAddress) -> None: ...


class MemoryPools:
    def __init__(self) -> None:
        self._in_use: dict[str, dict[IPAddress, str]] = {}
        self._last: dict[tuple[str, str], IPAddress] = {}

    def acquire(self, pool: PoolConfig, identity: str) -> IPAddress:
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
