"""The store under a gateway's load (issue 13, found by bench/loadgen.py): a lease and a release per
client must not wait for a disk flush each, nor parse every address of the pool as an object."""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path

import pytest

from pyipsec.store import sqlite as store_module
from pyipsec.store.sqlite import SqliteStore

POOL = ip_network("10.234.0.0/22")


def test_the_store_logs_ahead_and_does_not_sync_every_commit(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    with SqliteStore(db) as store:
        store.lease("rw", POOL, "alice", 1.0)
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # (persistent in the file)
    finally:
        raw.close()
    with SqliteStore(db) as store:
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_lease_in_a_busy_pool_parses_no_address_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SqliteStore(tmp_path / "users.db") as store:
        for k in range(500):
            store.lease("rw", POOL, f"user{k}", float(k))
        store.release("rw", IPv4Address("10.234.0.100"), 600.0)
        calls = 0
        real = store_module.ip_address

        def spy(text: object) -> object:
            nonlocal calls
            calls += 1
            return real(text)  # type: ignore[arg-type]

        monkeypatch.setattr(store_module, "ip_address", spy)
        assert store.lease("rw", POOL, "user99", 700.0) == ip_address("10.234.0.100")  # its old one
        assert store.lease("rw", POOL, "newcomer", 701.0) == ip_address("10.234.1.245")  # the first unused
        assert calls == 0


def test_a_returning_identity_is_served_from_the_index_without_reading_the_pool(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "users.db") as store:
        for k in range(300):
            store.lease("rw", POOL, f"user{k}", float(k))
        store.release("rw", IPv4Address("10.234.0.50"), 400.0)
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        assert store.lease("rw", POOL, "user49", 500.0) == ip_address("10.234.0.50")
        store._db.set_trace_callback(None)
        reads = [s for s in statements if s.startswith("SELECT")]
        assert reads and all("identity =" in s for s in reads)  # no read of the whole pool
        assert [lease.live for lease in store.leases("rw") if str(lease.address) == "10.234.0.50"] == [True]
