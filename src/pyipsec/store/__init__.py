"""The stores (DESIGN.md §2): EAP users and virtual-IP address leases.

SQLite (``sqlite``) is the embedded default; PostgreSQL (``postgres``, shared by several
gateways) is imported by name only where one is opened (``factory``: psycopg is slow to
import); ``base`` holds the interface both implement.
"""

from __future__ import annotations

from pyipsec.store.sqlite import (
    DEFAULT_DB_PATH,
    AddressRange,
    InsecureStoreFile,
    Lease,
    PoolExhausted,
    SqliteStore,
    StoreError,
    UnknownUser,
    UserExists,
    UserInfo,
)

__all__ = [
    "DEFAULT_DB_PATH",
    "AddressRange",
    "InsecureStoreFile",
    "Lease",
    "PoolExhausted",
    "SqliteStore",
    "StoreError",
    "UnknownUser",
    "UserExists",
    "UserInfo",
]
