"""The embedded store: EAP users (NT hashes only) and virtual-IP leases in one SQLite file.

Theory of operation. One SQLite database file holds two tables:

* ``users(name, nt_hash, failures)``: an account is its name and the 16-octet NT hash of its
  password (MD4 of the UTF-16LE password, RFC 2759 §8.3), which is all EAP-MSCHAPv2 needs on the
  gateway; the password itself is never stored. ``failures`` counts failed logins
  (:meth:`SqliteStore.record_failure`) and is reset when the password changes.
* ``leases(pool, address, identity, live, updated)``: one row per address ever handed out in a
  pool. A live row is an address in use; a released row remembers its last identity, so that
  identity gets the same address back next time (while nobody else holds it). Rows persist, so
  leases survive a daemon restart; :meth:`SqliteStore.release_all` frees them when the daemon
  knows no SA survived.

The file holds password equivalents (an NT hash is enough to log in with MS-CHAPv2), so it is
created with mode 0600 (its directory 0700) and an existing file readable or writable by
others is refused (:class:`InsecureStoreFile`); group access is logged as a warning. SQLite's
journal files inherit the database file's mode.

The database runs in WAL mode with ``synchronous = NORMAL``: a commit appends to the log without
waiting for the disk (a gateway leases and releases an address per client; with a sync per
commit, a thousand clients wait on a thousand disk flushes). A power loss may forget the last
leases, which a restart releases anyway (:meth:`SqliteStore.release_all`); the database stays
consistent. :meth:`SqliteStore.lease` gives a returning identity its address from the
``(pool, identity)`` index; only a newcomer reads the pool's rows, parsing the addresses with
``inet_pton`` (it runs for every client that asks for a virtual IP).

Every change runs in one ``BEGIN IMMEDIATE`` transaction, so several connections (the daemon and
the ``pyipsec user`` CLI, or two daemons' helpers) serialise their writes and never hand one
address to two live identities. Timestamps (``now``) come from the caller, in seconds since the
epoch, since they must stay meaningful across restarts.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import stat
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from pathlib import Path
from types import TracebackType
from typing import Any

from pyipsec.crypto.md4 import md4
from pyipsec.errors import InternalAddressFailure, PyIpsecError

__all__ = [
    "DEFAULT_DB_PATH",
    "AddressRange",
    "IPAddress",
    "InsecureStoreFile",
    "Lease",
    "PoolExhausted",
    "SqlUsers",
    "SqliteStore",
    "StoreError",
    "UnknownUser",
    "UserExists",
    "UserInfo",
    "nt_hash_of",
]

log = logging.getLogger(__name__)

DEFAULT_DB_PATH = Path("/var/lib/pyipsec/users.db")

IPAddress = IPv4Address | IPv6Address
AddressRange = IPv4Network | IPv6Network | tuple[IPAddress, IPAddress]
"""A pool's addresses: a network (its usable host addresses) or an inclusive (first, last) range."""

MAX_NAME_OCTETS = 256
MAX_PASSWORD_CHARS = 256  # RFC 2759 §8.1
_SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        name     TEXT PRIMARY KEY NOT NULL,
        nt_hash  BLOB NOT NULL CHECK (length(nt_hash) = 16),
        failures INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS leases (
        pool     TEXT NOT NULL,
        address  TEXT NOT NULL,
        identity TEXT NOT NULL,
        live     INTEGER NOT NULL CHECK (live IN (0, 1)),
        updated  REAL NOT NULL,
        PRIMARY KEY (pool, address)
    )""",
    "CREATE INDEX IF NOT EXISTS leases_by_identity ON leases (pool, identity)",
    f"PRAGMA user_version = {_SCHEMA_VERSION}",
)


class StoreError(PyIpsecError):
    """The store cannot do what was asked: bad input, a missing or unusable database file."""


class UserExists(StoreError):
    """``add_user`` of a name that already has an account."""


class UnknownUser(StoreError):
    """An operation on a name without an account."""


class InsecureStoreFile(StoreError):
    """The database file is accessible to other users (it holds password equivalents)."""


class PoolExhausted(InternalAddressFailure):
    """Every address of the pool is leased (answered with INTERNAL_ADDRESS_FAILURE, RFC 7296 §3.10.1)."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An account as ``list_users`` shows it (never the hash)."""

    name: str
    failures: int


@dataclass(frozen=True, slots=True)
class Lease:
    """One address of a pool: held by ``identity`` if ``live``, else remembered for it."""

    pool: str
    address: IPAddress
    identity: str
    live: bool
    updated: float
    gateway: str = ""  # the gateway holding a live lease (PostgreSQL; the SQLite store has one)
    heartbeat: float | None = None  # when that gateway last said it is alive (PostgreSQL)


def nt_hash_of(password: str) -> bytes:
    """The NT hash of ``password`` (RFC 2759 §8.3); StoreError if it cannot be one."""
    if not password:
        raise StoreError("the password is empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise StoreError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")
    try:
        encoded = password.encode("utf-16-le")
    except UnicodeEncodeError:
        raise StoreError("the password is not valid Unicode text") from None
    return md4(encoded)


def _check_name(name: str) -> None:
    if not name:
        raise StoreError("the user name is empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_OCTETS:
        raise StoreError(f"the user name is longer than {MAX_NAME_OCTETS} octets")
    if name != name.strip():
        raise StoreError("the user name starts or ends with white space")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise StoreError("the user name contains control characters")


def _bounds(addresses: AddressRange) -> tuple[int, int, int]:
    """(first, last, IP version) of a pool: a network's host addresses or an explicit range."""
    if isinstance(addresses, tuple):
        first, last = addresses
        if first.version != last.version:
            raise StoreError(f"address range {first}-{last} mixes IPv4 and IPv6")
        if int(first) > int(last):
            raise StoreError(f"address range {first}-{last} is empty")
        return int(first), int(last), first.version
    lo, hi = int(addresses.network_address), int(addresses.broadcast_address)
    if isinstance(addresses, IPv4Network):
        if addresses.prefixlen < 31:  # leave out the network and broadcast addresses
            lo, hi = lo + 1, hi - 1
        return lo, hi, 4
    if addresses.prefixlen < 127:  # leave out the Subnet-Router anycast address (RFC 4291 §2.6.1)
        lo += 1
    return lo, hi, 6


def _parse(text: str) -> tuple[int, int]:
    """An address as stored (its text): (IP version, integer value); (0, 0) if it is none."""
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        pass
    try:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError:
        return 0, 0


def _address(value: int, version: int) -> IPAddress:
    return IPv4Address(value) if version == 4 else IPv6Address(value)


class SqlUsers:
    """The account statements both SQL stores share (this one and ``store.postgres``): they
    differ only in the driver's parameter mark, :attr:`MARK`, and in how a statement runs
    (``_query``, ``_change``: the affected row count)."""

    MARK = "?"

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _change(self, sql: str, args: tuple[object, ...]) -> int:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.MARK)

    def set_password(self, name: str, password: str) -> None:
        """Replace an account's password (and clear its failure count)."""
        nt_hash = nt_hash_of(password)
        if not self._change(
            self._sql("UPDATE users SET nt_hash = ?, failures = 0 WHERE name = ?"), (nt_hash, name)
        ):
            raise UnknownUser(f"no user {name!r}")

    def delete_user(self, name: str) -> None:
        if not self._change(self._sql("DELETE FROM users WHERE name = ?"), (name,)):
            raise UnknownUser(f"no user {name!r}")

    def list_users(self) -> list[UserInfo]:
        rows = self._query("SELECT name, failures FROM users ORDER BY name")
        return [UserInfo(name, failures) for name, failures in rows]

    def record_failure(self, username: str) -> None:
        """Count one failed login of ``username`` (nothing happens for an unknown name)."""
        self._change(self._sql("UPDATE users SET failures = failures + 1 WHERE name = ?"), (username,))

    def reset_failures(self, username: str) -> None:
        if not self._change(self._sql("UPDATE users SET failures = 0 WHERE name = ?"), (username,)):
            raise UnknownUser(f"no user {username!r}")


class SqliteStore(SqlUsers):
    """Users and address leases in the SQLite file ``path``; implements ``UserStore``.

    With ``create`` (the default) a missing file is created (mode 0600, parent directories
    0700); without it a missing file is a :class:`StoreError`. ``timeout`` is how long to wait
    for another connection's write transaction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        timeout: float = 5.0,
        gateway_id: str = "local",
    ) -> None:
        self.path = Path(path)
        self.gateway_id = gateway_id
        self._prepare_file(create)
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open: {exc}") from None
        try:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from None
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > _SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: schema version {version} is newer than this pyipsec")
                for statement in _SCHEMA:
                    db.execute(statement)
        except StoreError:
            self._db.close()
            raise

    def _prepare_file(self, create: bool) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if not create:
                raise StoreError(f"no user database at {self.path}") from None
            self._create_file()
            return
        except OSError as exc:
            raise StoreError(f"{self.path}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{self.path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o007:
            raise InsecureStoreFile(
                f"{self.path} is accessible to other users (mode {mode:04o}); it holds password "
                f"hashes: run chmod 600 {self.path}"
            )
        if mode & 0o070:
            log.warning("%s is accessible to its group (mode %04o); chmod 600 is safer", self.path, mode)

    def _create_file(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:  # created meanwhile by another process: check it like any other
            self._prepare_file(create=False)
            return
        except OSError as exc:
            raise StoreError(f"cannot create {self.path}: {exc.strerror}") from None
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
        finally:
            os.close(fd)

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def describe(self) -> str:
        return f"SQLite {self.path}"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        try:
            yield self._db
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: {exc}") from None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: {exc}") from None

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None

    def _change(self, sql: str, args: tuple[object, ...]) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        with self._write() as db:
            return db.execute(sql, args).rowcount

    # -- users -------------------------------------------------------------------------------

    def nt_hash(self, username: str) -> bytes | None:
        """The NT hash of ``username``'s password, or None if there is no such account."""
        rows = self._query("SELECT nt_hash FROM users WHERE name = ?", (username,))
        if not rows:
            return None
        value = rows[0][0]
        assert isinstance(value, bytes)
        return value

    def add_user(self, name: str, password: str) -> None:
        """Create an account; :class:`UserExists` if ``name`` has one."""
        _check_name(name)
        nt_hash = nt_hash_of(password)
        with self._write() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise UserExists(f"user {name!r} already exists")
            db.execute("INSERT INTO users (name, nt_hash, failures) VALUES (?, ?, 0)", (name, nt_hash))

    # -- address leases ----------------------------------------------------------------------

    def lease(
        self,
        pool: str,
        addresses: AddressRange,
        identity: str,
        now: float,
        requested: IPAddress | None = None,
    ) -> IPAddress:
        """Lease an address of ``pool`` (spanning ``addresses``) to ``identity``.

        ``requested`` is ignored: with one gateway, the engine itself moves an address its
        established SA holds over to that peer's reauthentication (``ike.tasks.ike_config``).

        The identity's most recently released address comes back if it is free; otherwise the
        first address nobody has used, then the least recently released one. A live address is
        never handed out twice; an identity asking again while it holds a lease gets a second
        address (two SAs never share one). :class:`PoolExhausted` if all are live.
        """
        first, last, version = _bounds(addresses)
        with self._write() as db:
            # the common case first, on the (pool, identity) index: a returning identity
            returning = [
                (updated, value)
                for text, updated in db.execute(
                    "SELECT address, updated FROM leases WHERE pool = ? AND identity = ? AND live = 0",
                    (pool, identity),
                ).fetchall()
                for row_version, value in (_parse(text),)
                if row_version == version and first <= value <= last
            ]
            if returning:
                chosen = _address(max(returning)[1], version)
                db.execute(
                    "UPDATE leases SET live = 1, updated = ? WHERE pool = ? AND address = ?",
                    (float(now), pool, str(chosen)),
                )
                return chosen
            rows = db.execute(
                "SELECT address, identity, live, updated FROM leases WHERE pool = ?", (pool,)
            ).fetchall()
            live: set[int] = set()
            known: set[int] = set()
            mine: list[tuple[float, int]] = []
            others: list[tuple[float, int]] = []
            for text, owner, is_live, updated in rows:
                row_version, value = _parse(text)
                if row_version != version or not first <= value <= last:
                    continue
                known.add(value)
                if is_live:
                    live.add(value)
                elif owner == identity:
                    mine.append((updated, value))
                else:
                    others.append((updated, value))
            choice: int | None = None
            if mine:
                choice = max(mine)[1]
            else:
                value = first
                while value <= last and value in known:
                    value += 1
                if value <= last:
                    choice = value
                elif others:
                    choice = min(others)[1]
            if choice is None:
                size = last - first + 1
                raise PoolExhausted(f"pool {pool!r} is exhausted: all {size} addresses are leased")
            chosen = _address(choice, version)
            db.execute(
                "INSERT OR REPLACE INTO leases (pool, address, identity, live, updated)"
                " VALUES (?, ?, ?, 1, ?)",
                (pool, str(chosen), identity, float(now)),
            )
            return chosen

    def release(self, pool: str, address: IPAddress, now: float | None = None) -> bool:
        """End the live lease of ``address``; its identity stays remembered. False if not live."""
        if now is None:
            sql = "UPDATE leases SET live = 0 WHERE pool = ? AND address = ? AND live = 1"
            return self._change(sql, (pool, str(address))) > 0
        sql = "UPDATE leases SET live = 0, updated = ? WHERE pool = ? AND address = ? AND live = 1"
        return self._change(sql, (float(now), pool, str(address))) > 0

    def release_all(self, pool: str | None = None) -> int:
        """End every live lease (of ``pool``, or of all pools), e.g. at daemon start; how many."""
        if pool is None:
            return self._change("UPDATE leases SET live = 0 WHERE live = 1", ())
        return self._change("UPDATE leases SET live = 0 WHERE pool = ? AND live = 1", (pool,))

    def release_own(self) -> int:
        """End this gateway's live leases: with one gateway, all of them (``release_all``)."""
        return self.release_all()

    def heartbeat(self, now: float) -> int:
        """Nothing to do: a SQLite store serves one gateway, whose leases never go stale."""
        return 0

    def gateway_load(self, now: float) -> dict[str, int]:
        """{this gateway: its live leases}."""
        rows = self._query("SELECT count(*) FROM leases WHERE live = 1")
        return {self.gateway_id: int(rows[0][0])}

    def leases(self, pool: str) -> list[Lease]:
        """Every address of ``pool`` ever leased, live or remembered, in address order."""
        rows = self._query("SELECT address, identity, live, updated FROM leases WHERE pool = ?", (pool,))
        result = [
            Lease(pool, ip_address(text), owner, bool(is_live), float(updated))
            for text, owner, is_live, updated in rows
        ]
        return sorted(result, key=lambda lease: (lease.address.version, int(lease.address)))
