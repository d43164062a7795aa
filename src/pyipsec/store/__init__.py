"""The embedded default store (DESIGN.md §2): EAP users and virtual-IP address leases in SQLite."""

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
