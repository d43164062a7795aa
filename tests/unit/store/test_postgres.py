"""The store interface against both stores, and PostgresStore against a real PostgreSQL 15:
schema versions, leases shared by gateways (atomic, sticky, owned, reclaimable), outages."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, ip_network
from pathlib import Path

import psycopg
import pytest

from pyipsec.store import PoolExhausted, SqliteStore, StoreError, UnknownUser, UserExists
from pyipsec.store.base import Store, StoreUnavailable, is_dsn, mask_dsn
from pyipsec.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore, migrate, schema_version
from pyipsec.store.sqlite import nt_hash_of
from tests.support.postgres import PostgresCluster

NET = ip_network("10.9.0.0/29")  # 10.9.0.1 - 10.9.0.6
T0 = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        with SqliteStore(tmp_path / "users.db", gateway_id="gw-a") as s:
            yield s
    else:
        dsn = request.getfixturevalue("pg_dsn")
        with PostgresStore(dsn, gateway_id="gw-a") as p:
            yield p


# -- the same behaviour from both stores ---------------------------------------------------------


def test_users_round_trip(store: Store) -> None:
    store.add_user("alice", "secret")
    assert store.nt_hash("alice") == nt_hash_of("secret")
    assert store.nt_hash("bob") is None
    with pytest.raises(UserExists, match="already exists"):
        store.add_user("alice", "other")
    store.record_failure("alice")
    store.record_failure("alice")
    assert [(u.name, u.failures) for u in store.list_users()] == [("alice", 2)]
    store.set_password("alice", "new")
    assert store.nt_hash("alice") == nt_hash_of("new")
    assert store.list_users()[0].failures == 0
    store.delete_user("alice")
    with pytest.raises(UnknownUser):
        store.delete_user("alice")
    with pytest.raises(StoreError, match="empty"):
        store.add_user("", "x")


def test_leases_are_sticky_and_exclusive(store: Store) -> None:
    a = store.lease("p", NET, "alice", T0)
    b = store.lease("p", NET, "bob", T0)
    assert a != b
    assert store.release("p", a, T0 + 1)
    assert not store.release("p", a, T0 + 2)  # not live any more
    assert store.lease("p", NET, "carol", T0 + 3) not in (a, b)  # alice's address stays hers
    assert store.lease("p", NET, "alice", T0 + 4) == a
    assert store.gateway_load(T0 + 5) == {"gw-a": 3}


def test_pool_exhausted(store: Store) -> None:
    got = {store.lease("p", NET, f"u{i}", T0) for i in range(6)}
    assert len(got) == 6
    with pytest.raises(PoolExhausted, match="exhausted"):
        store.lease("p", NET, "late", T0)


def test_release_own(store: Store) -> None:
    a = store.lease("p", NET, "alice", T0)
    assert store.release_own() == 1
    assert not any(lease.live for lease in store.leases("p"))
    assert store.lease("p", NET, "alice", T0 + 1) == a


# -- the DSN -------------------------------------------------------------------------------------


def test_mask_dsn_hides_passwords() -> None:
    assert (
        mask_dsn("postgresql://pyipsec:s3cret@db.example:5432/vpn")
        == "postgresql://pyipsec:***@db.example:5432/vpn"
    )
    assert "s3cret" not in mask_dsn("postgresql://u@h/db?password=s3cret&sslmode=require")
    assert (
        mask_dsn("host=db user=u password='a b\\' c' dbname=vpn") == "host=db user=u password=*** dbname=vpn"
    )
    assert mask_dsn("host=db password=s3cret") == "host=db password=***"
    assert is_dsn("postgresql://x/y") and is_dsn("host=db dbname=vpn") and not is_dsn("/var/lib/users.db")


def test_unreachable_server_names_the_store_without_password(tmp_path: Path) -> None:
    dsn = f"postgresql://u:s3cret@/vpn?host={tmp_path}&port=1"
    store = PostgresStore(dsn, gateway_id="gw")
    with pytest.raises(StoreUnavailable) as info:
        store.nt_hash("alice")
    assert str(info.value).startswith("store unavailable: postgresql://u:***@/vpn")
    assert "s3cret" not in str(info.value)
    with pytest.raises(StoreUnavailable, match="retrying in"):  # back-off: no new attempt yet
        store.nt_hash("alice")


# -- schema versions -----------------------------------------------------------------------------


def test_init_and_migrate(pg_empty: str) -> None:
    assert schema_version(pg_empty) is None
    with pytest.raises(StoreError, match="no pyipsec schema: run pyipsec store init"):
        PostgresStore(pg_empty).check()
    assert migrate(pg_empty, init=True) == (0, SCHEMA_VERSION)
    assert migrate(pg_empty) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    assert migrate(pg_empty, init=True) == (SCHEMA_VERSION, SCHEMA_VERSION)
    PostgresStore(pg_empty).check()


def test_migrate_applies_later_versions_once(pg_empty: str) -> None:
    later = (*MIGRATIONS, (SCHEMA_VERSION + 1, ("ALTER TABLE users ADD COLUMN note text",)))
    migrate(pg_empty, init=True)
    assert migrate(pg_empty, migrations=later) == (SCHEMA_VERSION, SCHEMA_VERSION + 1)
    assert migrate(pg_empty, migrations=later) == (SCHEMA_VERSION + 1, SCHEMA_VERSION + 1)
    with psycopg.connect(pg_empty) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)
    # this pyipsec knows only SCHEMA_VERSION: it refuses the newer schema everywhere
    with pytest.raises(StoreError, match="newer than this pyipsec"):
        migrate(pg_empty, init=True)
    with pytest.raises(StoreError, match="newer than this pyipsec"):
        migrate(pg_empty)
    with pytest.raises(StoreError, match="newer than this pyipsec"):
        PostgresStore(pg_empty).check()


def test_init_refuses_an_older_schema(pg_empty: str) -> None:
    later = (*MIGRATIONS, (SCHEMA_VERSION + 1, ("ALTER TABLE users ADD COLUMN note text",)))
    migrate(pg_empty, init=True)
    with pytest.raises(StoreError, match="run pyipsec store migrate"):
        migrate(pg_empty, init=True, migrations=later)


# -- several gateways ----------------------------------------------------------------------------


def _live_rows(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return [
            (str(a), i, g)
            for a, i, g in conn.execute(
                "SELECT host(address), identity, gateway FROM leases WHERE gateway IS NOT NULL"
            ).fetchall()
        ]


def test_two_gateways_hammering_one_pool_never_share_an_address(pg_dsn: str) -> None:
    net = ip_network("10.20.0.0/26")  # 62 addresses, 2 x 40 requests: some must fail
    results: dict[str, list[IPv4Address]] = {"gw-a": [], "gw-b": []}
    exhausted: list[str] = []
    released: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def gateway(name: str) -> None:
        with PostgresStore(pg_dsn, gateway_id=name) as s:
            start.wait()
            for i in range(40):
                try:
                    addr = s.lease("p", net, f"{name}-user{i}", time.time())
                    assert isinstance(addr, IPv4Address)
                    results[name].append(addr)
                    if i % 7 == 0:  # churn: some go back to the pool
                        s.release("p", addr, time.time())
                        results[name].remove(addr)
                        released.append(name)
                except PoolExhausted:
                    exhausted.append(name)
                except BaseException as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=gateway, args=(n,)) for n in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    held = results["gw-a"] + results["gw-b"]
    assert len(held) == len(set(held))
    rows = _live_rows(pg_dsn)
    assert sorted(str(a) for a in held) == sorted(a for a, _, _ in rows)
    assert {(a, g) for a, _, g in rows} == {(str(a), g) for g, addrs in results.items() for a in addrs}
    assert exhausted  # the pool was too small: both gateways competed for its last addresses
    assert len(held) + len(exhausted) + len(released) == 2 * 40


def test_identity_keeps_its_address_on_another_gateway(pg_dsn: str) -> None:
    with PostgresStore(pg_dsn, gateway_id="gw-a") as a, PostgresStore(pg_dsn, gateway_id="gw-b") as b:
        addr = a.lease("p", NET, "alice", T0)
        b.lease("p", NET, "bob", T0)
        assert a.release("p", addr, T0 + 1)
        assert b.lease("p", NET, "carol", T0 + 2) != addr
        assert b.lease("p", NET, "alice", T0 + 3) == addr
        assert [(lease.identity, lease.gateway) for lease in b.leases("p") if lease.address == addr] == [
            ("alice", "gw-b")
        ]
        assert not a.release("p", addr, T0 + 4)  # gw-a no longer holds it: it stays gw-b's


def test_a_moving_client_takes_its_live_address_along(pg_dsn: str) -> None:
    with PostgresStore(pg_dsn, gateway_id="gw-a") as a, PostgresStore(pg_dsn, gateway_id="gw-b") as b:
        addr = a.lease("p", NET, "alice", T0)
        assert b.lease("p", NET, "alice", T0 + 1, requested=addr) == addr  # e.g. redirected
        assert not a.release("p", addr, T0 + 2)  # the old gateway's late release changes nothing
        assert b.lease("p", NET, "mallory", T0 + 3, requested=addr) != addr  # not someone else's


def test_a_start_releases_only_its_own_leases(pg_dsn: str) -> None:
    with PostgresStore(pg_dsn, gateway_id="gw-a") as a, PostgresStore(pg_dsn, gateway_id="gw-b") as b:
        a.lease("p", NET, "alice", T0)
        kept = b.lease("p", NET, "bob", T0)
        assert a.release_own() == 1
        assert [(str(r.address), r.gateway) for r in b.leases("p") if r.live] == [(str(kept), "gw-b")]


def test_dead_gateway_leases_go_back_to_their_identities_first(pg_dsn: str) -> None:
    grace = 60.0
    with (
        PostgresStore(pg_dsn, gateway_id="dead", grace=grace) as dead,
        PostgresStore(pg_dsn, gateway_id="alive", grace=grace) as alive,
    ):
        held = {name: dead.lease("p", NET, name, T0) for name in ("u1", "u2", "u3", "u4", "u5", "u6")}
        alive.heartbeat(T0 + 30)
        with pytest.raises(PoolExhausted):  # within the grace: still the dead gateway's
            alive.lease("p", NET, "late", T0 + 30)
        assert alive.gateway_load(T0 + 30) == {"alive": 0, "dead": 6}
        later = T0 + grace + 10
        alive.heartbeat(later)
        assert alive.gateway_load(later) == {"alive": 0}
        assert alive.lease("p", NET, "u3", later) == held["u3"]  # its own address back
        other = alive.lease("p", NET, "newcomer", later + 1)  # the oldest orphan, not u3's
        assert other != held["u3"] and other in held.values()
        assert alive.gateway_load(later + 2) == {"alive": 2}


def test_heartbeat_keeps_leases_live(pg_dsn: str) -> None:
    with (
        PostgresStore(pg_dsn, gateway_id="gw-a", grace=60) as a,
        PostgresStore(pg_dsn, gateway_id="gw-b", grace=60) as b,
    ):
        addr = a.lease("p", NET, "alice", T0)
        assert a.heartbeat(T0 + 50) == 1
        b.heartbeat(T0 + 100)
        assert b.gateway_load(T0 + 100) == {"gw-a": 1, "gw-b": 0}
        assert b.lease("p", NET, "mallory", T0 + 100) != addr


# -- outage --------------------------------------------------------------------------------------


def test_outage_is_reported_and_recovered_from() -> None:
    with PostgresCluster() as cluster:
        dsn = cluster.create_database("outage")
        migrate(dsn, init=True)
        with PostgresStore(dsn, gateway_id="gw", min_backoff=0.2, max_backoff=0.5) as s:
            s.add_user("alice", "pw")
            addr = s.lease("p", NET, "alice", T0)
            cluster.stop()
            with pytest.raises(StoreUnavailable, match=r"^store unavailable: "):
                s.nt_hash("alice")
            with pytest.raises(StoreUnavailable):
                s.release("p", addr, T0 + 1)
            cluster.start()
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert s.nt_hash("alice") == nt_hash_of("pw")
                    break
                except StoreUnavailable:
                    assert time.monotonic() < deadline, "the store never reconnected"
                    time.sleep(0.1)
            assert s.release("p", addr, T0 + 2)
