"""The store interface both stores implement, and how ``[settings] store`` chooses one.

Theory of operation. A gateway keeps EAP users (NT hashes, failure counters) and virtual-IP
leases in a store. :class:`Store` is what the daemon and ``pyipsec user``/``store`` rely on;
:class:`~pyipsec.store.sqlite.SqliteStore` (one file, one gateway: the embedded default) and
:class:`~pyipsec.store.postgres.PostgresStore` (a database server shared by several gateways)
implement it. Both are synchronous: the CLI calls them directly, the daemon calls the
PostgreSQL one only from its store worker thread (``daemon.sharedstore``), never on the event
loop.

Leases are owned by a gateway (``gateway_id``): :meth:`Store.release_own` at a daemon's start
frees only that gateway's leases, :meth:`Store.heartbeat` says the gateway is alive, and
:meth:`Store.gateway_load` counts live leases per gateway (what a redirect policy reads). The
SQLite store has one gateway, its own; its heartbeat does nothing.

:func:`store_location` tells which store a configuration names: ``store`` when it is a
``postgresql://`` (or ``postgres://``) URI or a libpq ``key=value`` string, else the SQLite
file ``users``. A DSN may carry a password: :func:`mask_dsn` is the only form that reaches a
log or an error message.
"""

from __future__ import annotations

import re
import socket
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pyipsec.store.sqlite import AddressRange, Lease, StoreError, UserInfo

__all__ = [
    "Store",
    "StoreUnavailable",
    "default_gateway_id",
    "is_dsn",
    "mask_dsn",
]

IPAddress = IPv4Address | IPv6Address


class StoreUnavailable(StoreError):
    """The database server cannot be reached (or broke the connection); try again later."""


def default_gateway_id() -> str:
    """A gateway's default id: the host name."""
    return socket.gethostname() or "localhost"


def is_dsn(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database (a libpq URI or ``key=value`` string)."""
    text = value.strip()
    return text.startswith(("postgresql://", "postgres://")) or bool(re.match(r"^\w+\s*=", text))


_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password (in the URI's user info, a ``password`` query parameter or a
    ``password=`` keyword) replaced by ``***``."""
    text = dsn.strip()
    if not text.startswith(("postgresql://", "postgres://")):
        return _KV_PASSWORD.sub(r"\1***", text)
    try:
        parts = urlsplit(text)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Store(Protocol):
    """Users and leases; every method raises :class:`StoreError` (:class:`StoreUnavailable`
    when the database server is away) and never anything else for bad input or I/O."""

    gateway_id: str

    def describe(self) -> str:
        """Where the store is, fit for a log line (a DSN's password masked)."""
        ...

    # users
    def nt_hash(self, username: str) -> bytes | None: ...
    def add_user(self, name: str, password: str) -> None: ...
    def set_password(self, name: str, password: str) -> None: ...
    def delete_user(self, name: str) -> None: ...
    def list_users(self) -> list[UserInfo]: ...
    def record_failure(self, username: str) -> None: ...
    def reset_failures(self, username: str) -> None: ...

    # leases
    def lease(
        self,
        pool: str,
        addresses: AddressRange,
        identity: str,
        now: float,
        requested: IPAddress | None = None,
    ) -> IPAddress: ...
    def release(self, pool: str, address: IPAddress, now: float | None = None) -> bool: ...
    def release_own(self) -> int: ...
    def heartbeat(self, now: float) -> int: ...
    def leases(self, pool: str) -> list[Lease]: ...
    def gateway_load(self, now: float) -> dict[str, int]: ...

    def close(self) -> None: ...
