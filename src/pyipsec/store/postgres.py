"""The shared store: EAP users and virtual-IP leases in PostgreSQL, for several gateways.

Theory of operation. One PostgreSQL database (``[settings] store``, a libpq URI or DSN) holds:

* ``schema_version(version)``: one row, the schema's version. :func:`migrate` brings a
  database up to :data:`SCHEMA_VERSION` by applying :data:`MIGRATIONS` in order, each in the
  same transaction as the version bump and under an advisory lock (two gateways migrating at
  once do it once); a second run changes nothing. :func:`migrate` with ``init=True``
  (``pyipsec store init``) creates the schema in an empty database and refuses a database
  with another version. A store never creates or alters tables itself: it refuses a database
  without the schema, or with an older or newer one, naming the command that fixes it.
* ``users(name, nt_hash, failures)``: as in the SQLite store (NT hashes only).
* ``leases(pool, address, identity, gateway, heartbeat, updated)``: one row per address ever
  handed out, primary key (pool, address), so no address is ever in two rows. A row with a
  ``gateway`` is held by that gateway; ``heartbeat`` is when that gateway last said it is
  alive. Without a gateway the row is released and remembers its identity.
* ``gateways(gateway_id, heartbeat)``: every gateway's last heartbeat, so that
  :meth:`PostgresStore.gateway_load` also lists a live gateway that holds no lease.

Allocation (:meth:`PostgresStore.lease`) runs in one transaction that first takes a
transaction-scoped advisory lock on the pool, so allocations in one pool are serialised across
all gateways (short transactions; other pools are not held up) and the primary key stays the
backstop. A lease is *live* while its gateway's heartbeat is younger than ``grace`` seconds.
The order of choice: the address the identity asks for when it holds it live on another
gateway (a client moving over, e.g. on redirect, keeps its address); the identity's own
previous address when it is not live — released, or held by a gateway that died; then an
address nobody has used; then the least recently released one of another identity; and only
last an address a dead gateway held for another identity. So a dead gateway's addresses go
back to their identities before anyone else gets them. The chosen row gets our gateway id and
a heartbeat of ``now``.

:meth:`PostgresStore.release` and :meth:`PostgresStore.release_own` only touch rows of our
gateway: a gateway that starts frees its own leases, never another gateway's, and a release
that comes after the address moved to another gateway does nothing. :meth:`heartbeat` (every
few seconds from the daemon) refreshes our row in ``gateways`` and the heartbeat of our leases.

Connections. The store holds one connection (autocommit; explicit transactions), opened on
first use. When the server cannot be reached, or drops the connection, the call raises
:class:`~pyipsec.store.base.StoreUnavailable` ("store unavailable: …") and the connection is
dropped; the next call reconnects, but no sooner than a back-off that doubles from
``min_backoff`` to ``max_backoff`` while the server stays away (calls in between fail at once
without a network round trip), and resets on success. Every method is synchronous and
blocking: the daemon calls them only from its store worker thread (``daemon.storeworker``), so
one instance must not be used from two threads at once. Error messages name the database with
its password masked (:func:`~pyipsec.store.base.mask_dsn`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import ip_address
from types import TracebackType
from typing import Any, TypeVar

import psycopg

from pyipsec.store.base import IPAddress, StoreUnavailable, default_gateway_id, mask_dsn
from pyipsec.store.sqlite import (
    AddressRange,
    Lease,
    PoolExhausted,
    SqlUsers,
    StoreError,
    UserExists,
    _address,
    _bounds,
    _check_name,
    nt_hash_of,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore", "migrate", "schema_version"]

T = TypeVar("T")

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE users (
                name     text PRIMARY KEY,
                nt_hash  bytea NOT NULL CHECK (octet_length(nt_hash) = 16),
                failures integer NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE leases (
                pool      text NOT NULL,
                address   inet NOT NULL,
                identity  text NOT NULL,
                gateway   text,
                heartbeat double precision,
                updated   double precision NOT NULL,
                PRIMARY KEY (pool, address),
                CHECK ((gateway IS NULL) = (heartbeat IS NULL))
            )""",
            "CREATE INDEX leases_by_identity ON leases (pool, identity)",
            "CREATE INDEX leases_by_gateway ON leases (gateway) WHERE gateway IS NOT NULL",
            """CREATE TABLE gateways (
                gateway_id text PRIMARY KEY,
                heartbeat  double precision NOT NULL
            )""",
        ),
    ),
)
"""(version, statements) in order; a new schema version is a new entry, never an edit."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
_MIGRATION_LOCK = 0x50594950  # "PYIP": the advisory lock key of migrations
_LEASE_LOCK = 0x4C454153  # "LEAS": with hashtext(pool), the advisory lock of a pool's allocations


def _unavailable(dsn: str, exc: BaseException) -> StoreUnavailable:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"store unavailable: {mask_dsn(dsn)}: {detail}")


def _version(conn: psycopg.Connection[Any]) -> int | None:
    """The database's schema version; None without the ``schema_version`` table."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return None
    got = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(got[0]) if got is not None and got[0] is not None else None


def _connect(dsn: str, timeout: float) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, round(timeout)))
    except psycopg.OperationalError as exc:
        raise _unavailable(dsn, exc) from None
    except (psycopg.Error, ValueError) as exc:  # psycopg.ProgrammingError: a DSN libpq cannot parse
        raise StoreError(f"store {mask_dsn(dsn)}: {exc}") from None


def schema_version(dsn: str, *, timeout: float = 5.0) -> int | None:
    """The schema version of the database ``dsn`` (None: no pyipsec schema)."""
    with _connect(dsn, timeout) as conn:
        try:
            return _version(conn)
        except psycopg.Error as exc:
            raise StoreError(f"store {mask_dsn(dsn)}: {exc}") from None


def migrate(
    dsn: str,
    *,
    init: bool = False,
    migrations: tuple[tuple[int, tuple[str, ...]], ...] = MIGRATIONS,
    timeout: float = 5.0,
) -> tuple[int, int]:
    """Bring the database ``dsn`` up to the newest schema of ``migrations``: (before, after),
    0 for no schema. With ``init`` the database must have no schema or the newest one.
    A database whose schema is newer than ours is refused (an older pyipsec must not touch it).
    """
    latest = migrations[-1][0]
    where = mask_dsn(dsn)
    with _connect(dsn, timeout) as conn:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                before = _version(conn) or 0
                if before > latest:
                    raise StoreError(
                        f"store {where}: schema version {before} is newer than this pyipsec's "
                        f"({latest}); upgrade pyipsec"
                    )
                if init and 0 < before < latest:
                    raise StoreError(
                        f"store {where}: already initialised with schema version {before}; "
                        "run pyipsec store migrate"
                    )
                if before == 0:
                    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
                for version, statements in migrations:
                    if version <= before:
                        continue
                    for statement in statements:
                        conn.execute(statement)  # our own constant SQL
                    conn.execute("DELETE FROM schema_version")
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        except psycopg.OperationalError as exc:
            raise _unavailable(dsn, exc) from None
        except psycopg.Error as exc:
            raise StoreError(f"store {where}: {exc}") from None
    return before, latest


class PostgresStore(SqlUsers):
    """Users and address leases in the PostgreSQL database ``dsn``; implements ``store.base.Store``.

    ``gateway_id`` owns the leases this store hands out; a lease whose gateway's heartbeat is
    older than ``grace`` seconds is reclaimable. Nothing is connected until the first call (or
    :meth:`check`).
    """

    MARK = "%s"

    def __init__(
        self,
        dsn: str,
        *,
        gateway_id: str | None = None,
        grace: float = 60.0,
        timeout: float = 5.0,
        min_backoff: float = 0.5,
        max_backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dsn = dsn
        self.gateway_id = gateway_id or default_gateway_id()
        self.grace = grace
        self.timeout = timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._db: psycopg.Connection[Any] | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error: StoreUnavailable | None = None

    # -- plumbing ----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"PostgreSQL {mask_dsn(self.dsn)}"

    def __repr__(self) -> str:
        return f"PostgresStore({mask_dsn(self.dsn)!r}, gateway_id={self.gateway_id!r})"

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._db is not None and not self._db.closed and not self._db.broken

    def _connection(self) -> psycopg.Connection[Any]:
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        self.close()
        now = self._clock()
        if self._last_error is not None and now < self._retry_at:
            raise StoreUnavailable(f"{self._last_error} (retrying in {self._retry_at - now:.1f} s)")
        try:
            conn = _connect(self.dsn, self.timeout)
        except StoreUnavailable as exc:
            self._failed(exc)
            raise
        try:
            version = _version(conn)
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"store {mask_dsn(self.dsn)}: {exc}") from None
        if version != SCHEMA_VERSION:
            conn.close()
            if version is None:
                raise StoreError(f"store {mask_dsn(self.dsn)} has no pyipsec schema: run pyipsec store init")
            if version < SCHEMA_VERSION:
                raise StoreError(
                    f"store {mask_dsn(self.dsn)}: schema version {version} is older than this "
                    f"pyipsec's ({SCHEMA_VERSION}): run pyipsec store migrate"
                )
            raise StoreError(
                f"store {mask_dsn(self.dsn)}: schema version {version} is newer than this "
                f"pyipsec's ({SCHEMA_VERSION}); upgrade pyipsec"
            )
        self._db = conn
        self._backoff = 0.0
        self._last_error = None
        return conn

    def _failed(self, exc: StoreUnavailable) -> None:
        self._backoff = min(self.max_backoff, max(self.min_backoff, self._backoff * 2))
        self._retry_at = self._clock() + self._backoff
        self._last_error = exc

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = self._connection()
        try:
            return work(conn)
        except psycopg.OperationalError as exc:  # the server went away (or is shutting down)
            self.close()
            error = _unavailable(self.dsn, exc)
            self._failed(error)
            raise error from None
        except psycopg.Error as exc:
            if conn.broken:
                self.close()
            raise StoreError(f"store {mask_dsn(self.dsn)}: {exc}") from None

    def check(self) -> None:
        """Connect now: StoreUnavailable, or StoreError for a missing or foreign schema."""
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def _change(self, sql: str, args: tuple[object, ...]) -> int:
        return self._run(lambda conn: conn.execute(sql, args).rowcount)

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, args).fetchall())

    # -- users -------------------------------------------------------------------------------

    def nt_hash(self, username: str) -> bytes | None:
        rows = self._query("SELECT nt_hash FROM users WHERE name = %s", (username,))
        return bytes(rows[0][0]) if rows else None

    def add_user(self, name: str, password: str) -> None:
        _check_name(name)
        nt_hash = nt_hash_of(password)
        added = self._change(
            "INSERT INTO users (name, nt_hash, failures) VALUES (%s, %s, 0) ON CONFLICT (name) DO NOTHING",
            (name, nt_hash),
        )
        if not added:
            raise UserExists(f"user {name!r} already exists")

    # -- address leases ----------------------------------------------------------------------

    def lease(
        self,
        pool: str,
        addresses: AddressRange,
        identity: str,
        now: float,
        requested: IPAddress | None = None,
    ) -> IPAddress:
        """Lease an address of ``pool`` to ``identity`` for this gateway (module docstring:
        the order of choice); :class:`PoolExhausted` when every address is live."""
        first, last, version = _bounds(addresses)
        stale_before = now - self.grace

        def work(conn: psycopg.Connection[Any]) -> IPAddress:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LEASE_LOCK, pool))
                conn.execute(
                    "INSERT INTO gateways (gateway_id, heartbeat) VALUES (%s, %s)"
                    " ON CONFLICT (gateway_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                    (self.gateway_id, float(now)),
                )
                rows = conn.execute(
                    "SELECT host(address), identity, gateway, heartbeat, updated FROM leases WHERE pool = %s",
                    (pool,),
                ).fetchall()
                known: set[int] = set()
                moving: int | None = None
                mine: list[tuple[float, int]] = []
                others: list[tuple[float, int]] = []
                orphans: list[tuple[float, int]] = []
                for text, owner, gateway, heartbeat, updated in rows:
                    addr = ip_address(text)
                    value = int(addr)
                    if addr.version != version or not first <= value <= last:
                        continue
                    known.add(value)
                    live = gateway is not None and heartbeat >= stale_before
                    if live:
                        if owner == identity and addr == requested and gateway != self.gateway_id:
                            moving = value
                    elif owner == identity:
                        mine.append((max(updated, heartbeat or 0.0), value))
                    elif gateway is None:
                        others.append((updated, value))
                    else:
                        orphans.append((heartbeat, value))
                choice = moving
                if choice is None and mine:
                    choice = max(mine)[1]
                if choice is None:
                    value = first
                    while value <= last and value in known:
                        value += 1
                    if value <= last:
                        choice = value
                if choice is None and others:
                    choice = min(others)[1]
                if choice is None and orphans:
                    choice = min(orphans)[1]
                if choice is None:
                    size = last - first + 1
                    raise PoolExhausted(f"pool {pool!r} is exhausted: all {size} addresses are leased")
                chosen = _address(choice, version)
                conn.execute(
                    "INSERT INTO leases (pool, address, identity, gateway, heartbeat, updated)"
                    " VALUES (%s, %s::inet, %s, %s, %s, %s)"
                    " ON CONFLICT (pool, address) DO UPDATE SET identity = excluded.identity,"
                    " gateway = excluded.gateway, heartbeat = excluded.heartbeat, updated = excluded.updated",
                    (pool, str(chosen), identity, self.gateway_id, float(now), float(now)),
                )
                return chosen

        return self._run(work)

    def release(self, pool: str, address: IPAddress, now: float | None = None) -> bool:
        """End our live lease of ``address``; its identity stays remembered. False if we hold none."""
        return (
            self._change(
                "UPDATE leases SET gateway = NULL, heartbeat = NULL, updated = coalesce(%s, updated)"
                " WHERE pool = %s AND address = %s::inet AND gateway = %s",
                (None if now is None else float(now), pool, str(address), self.gateway_id),
            )
            > 0
        )

    def release_own(self) -> int:
        """End every lease of this gateway (a daemon's start: none of its SAs survived)."""
        return self._change(
            "UPDATE leases SET gateway = NULL, heartbeat = NULL WHERE gateway = %s", (self.gateway_id,)
        )

    def heartbeat(self, now: float) -> int:
        """This gateway is alive: refresh its heartbeat and its leases'; how many leases it holds."""

        def work(conn: psycopg.Connection[Any]) -> int:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO gateways (gateway_id, heartbeat) VALUES (%s, %s)"
                    " ON CONFLICT (gateway_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                    (self.gateway_id, float(now)),
                )
                cur = conn.execute(
                    "UPDATE leases SET heartbeat = %s WHERE gateway = %s", (float(now), self.gateway_id)
                )
                return cur.rowcount

        return self._run(work)

    def gateway_load(self, now: float) -> dict[str, int]:
        """{gateway id: its live leases} for every gateway alive within the grace (also with none)."""
        stale_before = now - self.grace
        rows = self._query(
            "SELECT g.gateway_id, count(l.address) FROM gateways g"
            " LEFT JOIN leases l ON l.gateway = g.gateway_id AND l.heartbeat >= %s"
            " WHERE g.heartbeat >= %s GROUP BY g.gateway_id ORDER BY g.gateway_id",
            (stale_before, stale_before),
        )
        return {gateway: int(count) for gateway, count in rows}

    def leases(self, pool: str) -> list[Lease]:
        """Every address of ``pool`` ever leased, in address order; ``live``: held by a gateway
        (which may be dead: see ``gateway`` and ``heartbeat``)."""
        rows = self._query(
            "SELECT host(address), identity, gateway, heartbeat, updated FROM leases WHERE pool = %s",
            (pool,),
        )
        result = [
            Lease(
                pool, ip_address(text), owner, gateway is not None, float(updated), gateway or "", heartbeat
            )
            for text, owner, gateway, heartbeat, updated in rows
        ]
        return sorted(result, key=lambda lease: (lease.address.version, int(lease.address)))
