"""SqliteStore: users (NT hashes only), file permissions, persistence, address leases, concurrency."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

import pytest

from pyipsec.crypto.md4 import md4_pure
from pyipsec.crypto.rand import SeededRandom
from pyipsec.errors import InternalAddressFailure
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.eap import EapOutcome, FailureRecorder, MsChapV2Peer, MsChapV2Server, UserStore
from pyipsec.store import (
    InsecureStoreFile,
    PoolExhausted,
    SqliteStore,
    StoreError,
    UnknownUser,
    UserExists,
    UserInfo,
)

NET = ip_network("10.9.0.0/24")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "users.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    with SqliteStore(db) as s:
        yield s


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the file -----------------------------------------------------------------------------------


def test_new_file_is_private(db: Path) -> None:
    old = os.umask(0)
    try:
        SqliteStore(db).close()
    finally:
        os.umask(old)
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o700


def test_world_readable_file_is_refused(db: Path) -> None:
    SqliteStore(db).close()
    db.chmod(0o644)
    with pytest.raises(InsecureStoreFile, match="chmod 600"):
        SqliteStore(db)
    db.chmod(0o602)
    with pytest.raises(InsecureStoreFile, match="mode 0602"):
        SqliteStore(db)


def test_group_readable_file_is_a_warning(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    SqliteStore(db).close()
    db.chmod(0o640)
    with caplog.at_level(logging.WARNING), SqliteStore(db) as s:
        assert s.list_users() == []
    assert "accessible to its group" in caplog.text


def test_missing_file_without_create(db: Path) -> None:
    with pytest.raises(StoreError, match="no user database"):
        SqliteStore(db, create=False)
    assert not db.exists()


def test_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not SQLite, just some text padding it out " * 40)
    bogus.chmod(0o600)
    with pytest.raises(StoreError, match=r"bogus\.db"):
        SqliteStore(bogus)
    with pytest.raises(StoreError, match="not a regular file"):
        SqliteStore(tmp_path)


def test_newer_schema_is_refused(db: Path) -> None:
    SqliteStore(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(db)


# -- users ----------------------------------------------------------------------------------------


def test_only_the_nt_hash_is_stored(store: SqliteStore, db: Path) -> None:
    store.add_user("alice", "Secret-Passw0rd")
    assert store.nt_hash("alice") == md4_pure("Secret-Passw0rd".encode("utf-16-le"))
    store.close()
    raw = db.read_bytes()
    assert b"Secret-Passw0rd" not in raw
    assert "Secret-Passw0rd".encode("utf-16-le") not in raw
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(users)")]
    assert columns == ["name", "nt_hash", "failures"]


def test_user_lifecycle(store: SqliteStore) -> None:
    assert store.nt_hash("alice") is None
    store.add_user("alice", "one")
    store.add_user("bob", "two")
    with pytest.raises(UserExists, match="alice"):
        store.add_user("alice", "three")
    assert store.nt_hash("alice") == md4_pure("one".encode("utf-16-le"))
    store.set_password("alice", "four")
    assert store.nt_hash("alice") == md4_pure("four".encode("utf-16-le"))
    store.delete_user("bob")
    assert store.nt_hash("bob") is None
    assert store.list_users() == [UserInfo("alice", 0)]
    with pytest.raises(UnknownUser):
        store.delete_user("bob")
    with pytest.raises(UnknownUser):
        store.set_password("bob", "x")
    with pytest.raises(UnknownUser):
        store.reset_failures("bob")


def test_names_are_case_sensitive_and_unicode(store: SqliteStore) -> None:
    store.add_user("Jürgen", "pw")
    store.add_user("jürgen", "other")
    assert store.nt_hash("Jürgen") != store.nt_hash("jürgen")
    assert [u.name for u in store.list_users()] == ["Jürgen", "jürgen"]


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("", "pw", "empty"),
        (" alice", "pw", "white space"),
        ("alice\n", "pw", "white space"),
        ("al\x00ice", "pw", "control"),
        ("a" * 257, "pw", "longer than 256"),
        ("alice", "", "empty"),
        ("alice", "p" * 257, "256"),
        ("alice", "\ud800", "Unicode"),
    ],
)
def test_bad_names_and_passwords(store: SqliteStore, name: str, password: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.add_user(name, password)
    assert store.list_users() == []


def test_failure_counter(store: SqliteStore) -> None:
    store.add_user("alice", "pw")
    store.add_user("bob", "pw")
    store.record_failure("alice")
    store.record_failure("alice")
    store.record_failure("nobody")  # no row, nothing to count
    assert store.list_users() == [UserInfo("alice", 2), UserInfo("bob", 0)]
    store.set_password("alice", "new")
    assert store.list_users()[0] == UserInfo("alice", 0)
    store.record_failure("bob")
    store.reset_failures("bob")
    assert store.list_users()[1] == UserInfo("bob", 0)


def test_persistence_across_reopen(db: Path) -> None:
    with SqliteStore(db) as s:
        s.add_user("alice", "pw")
        s.record_failure("alice")
        s.lease("pool", NET, "alice", 1.0)
    with SqliteStore(db, create=False) as s:
        assert s.nt_hash("alice") == md4_pure("pw".encode("utf-16-le"))
        assert s.list_users() == [UserInfo("alice", 1)]
        assert [(x.address, x.identity, x.live) for x in s.leases("pool")] == [
            (IPv4Address("10.9.0.1"), "alice", True)
        ]


def test_store_drives_an_eap_server(store: SqliteStore) -> None:
    assert isinstance(store, UserStore) and isinstance(store, FailureRecorder)
    store.add_user("alice", "pw")
    for password, outcome in (("pw", EapOutcome.SUCCESS), ("wrong", EapOutcome.FAILURE)):
        server = MsChapV2Server(store, rng=SeededRandom(1))
        peer = MsChapV2Peer("alice", password, rng=SeededRandom(2))
        msg: bytes | None = server.start()
        while msg is not None and server.outcome is EapOutcome.CONTINUE:
            answer = peer.process(msg)
            msg = server.process(answer) if answer is not None else None
        assert server.outcome is outcome
    assert store.list_users() == [UserInfo("alice", 1)]


# -- leases ---------------------------------------------------------------------------------------


def test_network_pools_skip_network_and_broadcast(store: SqliteStore) -> None:
    small = ip_network("10.0.0.0/30")
    assert store.lease("a", small, "x", 0) == IPv4Address("10.0.0.1")
    assert store.lease("a", small, "y", 0) == IPv4Address("10.0.0.2")
    with pytest.raises(PoolExhausted, match="all 2 addresses"):
        store.lease("a", small, "z", 0)
    pair = ip_network("10.0.1.0/31")
    assert {store.lease("b", pair, n, 0) for n in "xy"} == {IPv4Address("10.0.1.0"), IPv4Address("10.0.1.1")}
    v6 = ip_network("fd00::/120")
    assert store.lease("c", v6, "x", 0) == IPv6Address("fd00::1")


def test_explicit_range(store: SqliteStore) -> None:
    rng = (ip_address("192.0.2.10"), ip_address("192.0.2.11"))
    assert [store.lease("r", rng, n, 0) for n in "ab"] == [ip_address("192.0.2.10"), ip_address("192.0.2.11")]
    with pytest.raises(StoreError, match="mixes"):
        store.lease("r", (ip_address("192.0.2.1"), ip_address("::1")), "c", 0)
    with pytest.raises(StoreError, match="empty"):
        store.lease("r", (ip_address("192.0.2.9"), ip_address("192.0.2.1")), "c", 0)


def test_identity_gets_its_address_back(store: SqliteStore) -> None:
    a = store.lease("p", NET, "alice", 1)
    b = store.lease("p", NET, "bob", 2)
    assert store.release("p", a, now=3)
    c = store.lease("p", NET, "carol", 4)
    assert c not in (a, b)  # alice's remembered address is kept for her while others are unused
    assert store.lease("p", NET, "alice", 5) == a


def test_live_address_is_never_shared(store: SqliteStore) -> None:
    a1 = store.lease("p", NET, "alice", 1)
    a2 = store.lease("p", NET, "alice", 1)  # a second SA of the same identity
    assert a1 != a2
    assert {x.address for x in store.leases("p") if x.live} == {a1, a2}


def test_exhaustion_then_reuse_of_the_least_recently_released(store: SqliteStore) -> None:
    net = ip_network("10.1.0.0/29")  # six hosts
    got = [store.lease("p", net, f"u{i}", i) for i in range(6)]
    assert len(set(got)) == 6
    with pytest.raises(PoolExhausted) as info:
        store.lease("p", net, "late", 10)
    assert isinstance(info.value, InternalAddressFailure)
    assert info.value.notify == NotifyType.INTERNAL_ADDRESS_FAILURE
    store.release("p", got[4], now=20)
    store.release("p", got[1], now=21)
    assert store.lease("p", net, "late", 22) == got[4]  # released earliest
    assert store.lease("p", net, "u1", 23) == got[1]  # sticky for its owner


def test_release(store: SqliteStore) -> None:
    a = store.lease("p", NET, "alice", 1)
    assert store.release("p", a)
    assert not store.release("p", a)  # no longer live
    assert not store.release("p", IPv4Address("10.9.0.200"))  # never leased
    (lease,) = store.leases("p")
    assert (lease.identity, lease.live, lease.updated) == ("alice", False, 1.0)
    store.release("p", store.lease("p", NET, "alice", 2), now=7.5)
    assert store.leases("p")[0].updated == 7.5


def test_release_all_and_independent_pools(store: SqliteStore) -> None:
    store.lease("p", NET, "alice", 1)
    store.lease("q", NET, "alice", 1)
    assert store.lease("q", NET, "bob", 1) == IPv4Address("10.9.0.2")
    assert store.release_all("p") == 1
    assert [x.live for x in store.leases("p")] == [False]
    assert store.release_all() == 2
    assert store.leases("nothing") == []


def test_leases_outside_a_changed_range_are_ignored(store: SqliteStore) -> None:
    store.lease("p", ip_network("10.2.0.0/24"), "alice", 1)
    assert store.lease("p", ip_network("10.3.0.0/30"), "alice", 2) == IPv4Address("10.3.0.1")
    assert len(store.leases("p")) == 2


def test_leases_survive_a_restart(db: Path) -> None:
    with SqliteStore(db) as s:
        a = s.lease("p", NET, "alice", 1)
        b = s.lease("p", NET, "bob", 1)
        s.release("p", b)
    with SqliteStore(db) as s:
        assert s.lease("p", NET, "carol", 2) not in (a, b)  # alice's is live, bob's remembered
        assert s.lease("p", NET, "bob", 3) == b


def test_leases_are_listed_in_address_order(store: SqliteStore) -> None:
    rng = (ip_address("10.0.0.9"), ip_address("10.0.0.11"))
    for name in "abc":
        store.lease("p", rng, name, 0)
    store.lease("p", ip_network("fd00::/126"), "v6", 0)
    assert [str(x.address) for x in store.leases("p")] == ["10.0.0.9", "10.0.0.10", "10.0.0.11", "fd00::1"]


def test_huge_ipv6_pool_is_cheap(store: SqliteStore) -> None:
    net = ip_network("fd00:1::/64")
    got = {store.lease("v6", net, f"u{i}", 0) for i in range(50)}
    assert len(got) == 50 and all(a in net for a in got)


def test_two_connections_never_hand_out_the_same_address(db: Path) -> None:
    SqliteStore(db).close()
    net = ip_network("10.5.0.0/26")  # 62 hosts
    results: list[list[IPv4Address | IPv6Address]] = [[], []]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with SqliteStore(db, timeout=30) as s:
                for i in range(25):
                    results[index].append(s.lease("p", net, f"t{index}-{i}", i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everything = results[0] + results[1]
    assert len(everything) == len(set(everything)) == 50
    with SqliteStore(db) as s:
        assert sum(x.live for x in s.leases("p")) == 50
