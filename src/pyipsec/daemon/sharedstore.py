"""The daemon's side of the shared PostgreSQL store: a worker thread, lookups, heartbeats.

Theory of operation. :class:`~pyipsec.store.postgres.PostgresStore` is synchronous (psycopg's
blocking connection); the event loop must never wait for the database. So the daemon owns
one :class:`SharedStore`, which owns one worker thread with a queue and the store's one
connection. Everything the daemon asks of the store is a job on that queue:

* the engine's lookups (``ike.lookups``): a :class:`~pyipsec.ike.lookups.LeaseQuery` (the
  engine's pools are ``ike.pools.LookupPools``) and a :class:`~pyipsec.ike.lookups.UserQuery`
  (its EAP server's users are ``ike.eap.lookupusers.LookupUsers``) reach
  :meth:`SharedStore.resolve` through ``daemon.lookups``; the coroutine awaits the job's
  future, and the answer goes back into the engine. A store that is unavailable answers with
  the reason ("store unavailable: …"): the new SA fails with INTERNAL_ADDRESS_FAILURE or
  AUTHENTICATION_FAILED, and the reason is logged. Established SAs never depend on the
  store, so an outage does not touch them.
* releases (an SA closed) and failed-login counts are posted without waiting. A release that
  fails for want of the server is kept and retried at each heartbeat until it succeeds, so no
  lease stays live because the database was away when its SA closed.
* every ``heartbeat`` seconds (10) :meth:`PostgresStore.heartbeat` refreshes this gateway's
  heartbeat and its leases'. The first job after the start releases this gateway's leases
  from before (no SA survives a restart; other gateways' leases are left alone).

The store reconnects by itself with back-off (``store.postgres``); the daemon logs the
outage once when it starts ("store unavailable: …") and once when the store answers again,
so a long outage does not flood the log. Nothing restarts: the next lookup after the server
is back simply works.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any, TypeVar

from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.ike.config import PoolConfig
from pyipsec.ike.eap.lookupusers import LookupUsers
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.lookups import Answer, LeaseAnswer, LeaseQuery, Lookup, UserAnswer, UserQuery
from pyipsec.ike.pools import LookupPools
from pyipsec.store.base import StoreUnavailable
from pyipsec.store.sqlite import PoolExhausted, StoreError

if TYPE_CHECKING:  # the caller imports it (store.factory): psycopg only when one is opened
    from pyipsec.store.postgres import PostgresStore

__all__ = ["HEARTBEAT", "SharedStore"]

_log = logging.getLogger("pyipsec.daemon")

T = TypeVar("T")
IPAddress = IPv4Address | IPv6Address
HEARTBEAT = 10.0
"""Seconds between heartbeats (well inside the default ``lease_grace`` of 60)."""

_Job = tuple[Callable[[], Any], concurrent.futures.Future[Any]]


class SharedStore:
    """The PostgreSQL store behind a worker thread, as the daemon and its engine use it."""

    def __init__(self, store: PostgresStore, *, heartbeat: float = HEARTBEAT) -> None:
        self.store = store
        self.interval = heartbeat
        self.pools = LookupPools(self.release)
        self.pending_releases: list[tuple[str, IPAddress]] = []
        self.available = True
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="pyipsec-store", daemon=True)
        self._thread.start()
        self._heartbeat: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return self.store.describe()

    # -- the worker thread -----------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            work, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to whoever waits for the future
                future.set_exception(exc)
        self.store.close()

    def submit(self, work: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``work`` on the worker thread; its future (never blocks)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((work, future))
        return future

    async def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` on the worker thread and wait for it without blocking the loop."""
        return await asyncio.wrap_future(self.submit(work))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Release this gateway's old leases, then heartbeat (needs the running loop)."""
        self.submit(self._start_job)
        self._heartbeat = asyncio.ensure_future(self._beat())

    def _start_job(self) -> None:
        try:
            freed = self.store.release_own()
            self.store.heartbeat(time.time())
        except StoreError as exc:
            self._outage(exc)
            return
        self._back()
        if freed:
            _log.info(
                "store %s: released %d leases of gateway %s", self.describe(), freed, self.store.gateway_id
            )

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.call(self._beat_job)

    def _beat_job(self) -> None:
        try:
            self.store.heartbeat(time.time())
        except StoreError as exc:
            self._outage(exc)
            return
        self._back()
        self._retry_releases()

    def close(self, timeout: float = 5.0) -> None:
        """Stop heartbeating, finish the queued jobs (releases of the last SAs), close."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._jobs.put(None)
        self._thread.join(timeout)

    # -- availability ----------------------------------------------------------------------------

    def _outage(self, exc: StoreError) -> None:
        if self.available:
            self.available = False
            _log.warning(
                "%s", exc if str(exc).startswith("store unavailable") else f"store unavailable: {exc}"
            )

    def _back(self) -> None:
        if not self.available:
            self.available = True
            _log.info("store %s is available again", self.describe())

    # -- what the engine and the host ask --------------------------------------------------------

    async def resolve(self, lookup: Lookup) -> Answer:
        """The answer to a LeaseQuery or UserQuery (``daemon.lookups``)."""
        if isinstance(lookup, LeaseQuery):
            return await self.call(lambda: self._lease(lookup))
        assert isinstance(lookup, UserQuery)
        return await self.call(lambda: self._users(lookup))

    def _lease(self, q: LeaseQuery) -> LeaseAnswer:
        try:
            addr = self.store.lease(q.pool, (q.first, q.last), q.identity, time.time(), q.requested)
        except PoolExhausted as exc:
            return LeaseAnswer(q.pool, None, str(exc))
        except StoreError as exc:
            self._outage(exc)
            return LeaseAnswer(q.pool, None, str(exc))
        self._back()
        return LeaseAnswer(q.pool, addr)

    def _users(self, q: UserQuery) -> UserAnswer:
        try:
            found = [(name, nt_hash) for name in q.names if (nt_hash := self.store.nt_hash(name)) is not None]
        except StoreError as exc:
            self._outage(exc)
            return UserAnswer(error=str(exc))
        self._back()
        for name, _ in found:
            _log.info("EAP user %r: password from the user store %s", name, self.describe())
        return UserAnswer(tuple(found))

    def release(self, pool: PoolConfig, address: IPAddress) -> None:
        """An SA closed: give its address back (queued; retried while the store is away)."""
        self.submit(lambda: self._release(pool.name, address))

    def _release(self, pool: str, address: IPAddress) -> None:
        try:
            self.store.release(pool, address, time.time())
        except StoreUnavailable as exc:
            self._outage(exc)
            self.pending_releases.append((pool, address))

    def _retry_releases(self) -> None:
        pending, self.pending_releases = self.pending_releases, []
        for pool, address in pending:
            self._release(pool, address)
        if pending and not self.pending_releases:
            _log.info("store %s: %d delayed lease releases done", self.describe(), len(pending))

    def record_failure(self, username: str) -> None:
        def job() -> None:
            with contextlib.suppress(StoreError):  # a lost count is no reason to fail anything
                self.store.record_failure(username)

        self.submit(job)

    async def gateway_load(self) -> dict[str, int]:
        """{gateway id: live leases} of every live gateway (for a redirect policy)."""
        return await self.call(lambda: self.store.gateway_load(time.time()))

    def eap_server_factory(
        self, configured: Mapping[str, bytes], *, rng: RandomSource = OS_RANDOM
    ) -> Callable[[], MsChapV2Server]:
        """EAP-MSCHAPv2 conversations over ``configured`` users, then the store's (by lookups)."""
        return lambda: MsChapV2Server(LookupUsers(configured, self.record_failure), rng=rng)
