"""SharedStore: the daemon's worker thread over a real PostgreSQL — lookups answered off the
event loop, an outage answered with the reason, releases kept and retried after it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.config.load import load_config
from pyipsec.config.model import Config
from pyipsec.daemon.build import build_engine
from pyipsec.daemon.lookups import Lookups
from pyipsec.daemon.sharedstore import SharedStore
from pyipsec.errors import ConfigError
from pyipsec.ike.config import PoolConfig
from pyipsec.ike.lookups import LeaseAnswer, LeaseQuery, UserAnswer, UserQuery
from pyipsec.revocation import RevocationChecker
from pyipsec.store.postgres import PostgresStore, migrate
from pyipsec.store.sqlite import nt_hash_of
from tests.support.daemons import eap_trees
from tests.support.postgres import PostgresCluster, require_postgres
from tests.support.pyipsecd import to_toml

POOL = PoolConfig("rw", ip_address("10.4.0.1"), ip_address("10.4.0.9"))


def query(identity: str) -> LeaseQuery:
    return LeaseQuery(POOL.name, POOL.first, POOL.last, identity)


def test_lookups_run_on_the_worker_thread(pg_dsn: str) -> None:
    with PostgresStore(pg_dsn, gateway_id="gw") as seed:
        seed.add_user("alice", "pw-alice")
    shared = SharedStore(PostgresStore(pg_dsn, gateway_id="gw"), heartbeat=0.05)
    loop_thread: list[threading.Thread] = []
    worker: list[str] = []
    real = shared.store.nt_hash

    def spy(name: str) -> bytes | None:
        worker.append(threading.current_thread().name)
        return real(name)

    shared.store.nt_hash = spy  # type: ignore[method-assign]

    async def scenario() -> tuple[object, object]:
        loop_thread.append(threading.current_thread())
        shared.start()
        users = await shared.resolve(UserQuery(("CORP\\alice", "alice")))
        lease = await shared.resolve(query("alice"))
        await asyncio.sleep(0.2)  # a few heartbeats
        return users, lease

    try:
        users, lease = asyncio.run(scenario())
    finally:
        shared.close()
    assert users == UserAnswer((("alice", nt_hash_of("pw-alice")),))
    assert lease == LeaseAnswer("rw", ip_address("10.4.0.1"))
    assert worker == ["pyipsec-store", "pyipsec-store"]
    assert loop_thread[0].name != "pyipsec-store"
    with PostgresStore(pg_dsn) as check:
        (row,) = check.leases("rw")
        assert row.gateway == "gw" and row.heartbeat is not None and row.heartbeat > row.updated


def test_start_releases_only_this_gateways_leases(pg_dsn: str) -> None:
    with PostgresStore(pg_dsn, gateway_id="gw") as old, PostgresStore(pg_dsn, gateway_id="other") as other:
        old.lease("rw", (POOL.first, POOL.last), "alice", time.time())
        other.lease("rw", (POOL.first, POOL.last), "bob", time.time())
    shared = SharedStore(PostgresStore(pg_dsn, gateway_id="gw"))

    async def scenario() -> None:
        shared.start()
        await shared.call(lambda: None)  # after the start job

    asyncio.run(scenario())
    shared.close()
    with PostgresStore(pg_dsn) as check:
        assert [(r.identity, r.gateway) for r in check.leases("rw") if r.live] == [("bob", "other")]


def test_outage_answers_with_the_reason_and_keeps_releases(caplog: pytest.LogCaptureFixture) -> None:
    require_postgres()
    caplog.set_level(logging.INFO, logger="pyipsec.daemon")
    with PostgresCluster() as cluster:
        dsn = cluster.create_database("shared")
        migrate(dsn, init=True)
        store = PostgresStore(dsn, gateway_id="gw", min_backoff=0.1, max_backoff=0.3)
        shared = SharedStore(store, heartbeat=0.2)

        async def scenario() -> tuple[object, object, object]:
            shared.start()
            got = await shared.resolve(query("alice"))
            assert isinstance(got, LeaseAnswer) and got.address is not None
            await asyncio.to_thread(cluster.stop)
            shared.release(POOL, got.address)  # its SA closes during the outage
            lease = await shared.resolve(query("bob"))
            users = await shared.resolve(UserQuery(("bob",)))
            await asyncio.to_thread(cluster.start)
            deadline = time.monotonic() + 10
            while shared.pending_releases or not shared.available:
                assert time.monotonic() < deadline, "the release was never retried"
                await asyncio.sleep(0.1)
            after = await shared.resolve(query("carol"))
            return lease, users, after

        try:
            lease, users, after = asyncio.run(scenario())
        finally:
            shared.close()
        assert isinstance(lease, LeaseAnswer) and lease.address is None
        assert lease.reason.startswith("store unavailable: ")
        assert isinstance(users, UserAnswer) and users.error.startswith("store unavailable: ")
        assert isinstance(after, LeaseAnswer) and after.address is not None
        with PostgresStore(dsn) as check:
            live = {r.identity for r in check.leases("rw") if r.live}
        assert live == {"carol"}  # alice's release was not lost
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and warnings[0].startswith("store unavailable: ")
        assert any("is available again" in r.getMessage() for r in caplog.records)


def _gateway_config(tmp_path: Path, dsn: str) -> Config:
    _c, g, _pki = eap_trees(tmp_path)
    g["settings"]["store"] = dsn
    g["settings"]["gateway_id"] = "gw-test"
    path = tmp_path / "gw.toml"
    path.write_text(to_toml(g))
    return load_config(path)


def test_a_gateway_refuses_a_database_without_the_schema(pg_empty: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run pyipsec store init") as info:
        build_engine(_gateway_config(tmp_path, pg_empty))
    assert info.value.key == "settings.store"


def test_a_gateway_starts_while_the_database_is_away(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dsn = f"postgresql://pyipsec:s3cret@/vpn?host={tmp_path}&port=1"
    engine, store = build_engine(_gateway_config(tmp_path, dsn))
    try:
        assert isinstance(store, SharedStore) and engine.ctx.pools is store.pools
    finally:
        if store is not None:
            store.close()
    text = caplog.text
    assert "store unavailable: postgresql://pyipsec:***@/vpn" in text and "s3cret" not in text


def test_leases_and_users_without_a_shared_store_are_answered_as_failures() -> None:
    answers: list[object] = []

    async def scenario() -> None:
        lookups = Lookups(lambda _ticket, answer: answers.append(answer), revocation=RevocationChecker())
        lookups.start(1, 1, query("alice"))
        lookups.start(1, 2, UserQuery(("alice",)))
        while len(answers) < 2:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    lease, users = answers
    assert isinstance(lease, LeaseAnswer) and lease.address is None and "no handler" in lease.reason
    assert isinstance(users, UserAnswer) and "no handler" in users.error
