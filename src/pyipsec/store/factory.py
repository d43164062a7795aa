"""Open the store a location names: a PostgreSQL DSN or a SQLite file.

Theory of operation. ``pyipsec user`` and ``pyipsec store`` take a location: a libpq URI or
``key=value`` DSN names the shared PostgreSQL store (:mod:`pyipsec.store.postgres`), anything
else the SQLite file (:mod:`pyipsec.store.sqlite`). psycopg takes a noticeable time to import
and most commands never need it, so the PostgreSQL module is imported by name only when a DSN
is opened — the same lazy pattern as the CLI's ``daemon`` command (``cli.main``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pyipsec.store.base import Store, is_dsn
from pyipsec.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["open_store", "postgres"]


def postgres() -> ModuleType:
    """:mod:`pyipsec.store.postgres`, imported now."""
    return importlib.import_module("pyipsec.store.postgres")


def open_store(location: str | Path, *, create: bool = False, gateway_id: str | None = None) -> Store:
    """The store at ``location``; StoreError (or StoreUnavailable) if it cannot be used.
    A PostgreSQL store is connected and its schema checked before it is returned."""
    if isinstance(location, str) and is_dsn(location):
        store = postgres().PostgresStore(location, gateway_id=gateway_id)
        try:
            store.check()
        except BaseException:
            store.close()
            raise
        return cast(Store, store)
    return SqliteStore(location, create=create)
