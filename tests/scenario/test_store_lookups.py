"""A gateway whose users and leases live behind I/O (the shared store): the engine asks the host
with LeaseQuery / UserQuery lookups and waits without blocking; failures of the store are
clear failures of the new SA only."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from pyipsec.crypto.rand import SeededRandom
from pyipsec.ike.config import PoolConfig
from pyipsec.ike.eap.lookupusers import LookupUsers
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.events import IkeSaClosed, IkeSaEstablished, LookupNeeded, VirtualIpAssigned
from pyipsec.ike.lookups import Answer, LeaseAnswer, LeaseQuery, Lookup, UserAnswer, UserQuery
from pyipsec.ike.pools import LookupPools
from pyipsec.net.addr import IPAddress
from pyipsec.store.sqlite import SqliteStore
from tests.scenario.test_remote_access import POOL, RoadWarrior
from tests.support.engines import EnginePair


class StoreHost:
    """The daemon's part, synchronously: answers lookups from a SqliteStore, or fails them."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.down = ""  # non-empty: the store is unavailable with this reason
        self.released: list[tuple[str, IPAddress]] = []
        self.failures: list[str] = []
        self.asked: list[Lookup] = []

    def answer(self, lookup: Lookup) -> Answer:
        self.asked.append(lookup)
        if isinstance(lookup, UserQuery):
            if self.down:
                return UserAnswer(error=self.down)
            found = [(n, h) for n in lookup.names if (h := self.store.nt_hash(n)) is not None]
            return UserAnswer(tuple(found))
        assert isinstance(lookup, LeaseQuery)
        if self.down:
            return LeaseAnswer(lookup.pool, None, self.down)
        addr = self.store.lease(lookup.pool, (lookup.first, lookup.last), lookup.identity, 0.0)
        return LeaseAnswer(lookup.pool, addr)

    def release(self, pool: PoolConfig, address: IPAddress) -> None:
        self.released.append((pool.name, address))
        self.store.release(pool.name, address)


def gateway(rw: RoadWarrior, p: EnginePair, host: StoreHost, *, answer: bool = True) -> None:
    gw = p.r.engine
    gw.ctx.pools = LookupPools(host.release)
    gw.ctx.eap_server = lambda: MsChapV2Server(LookupUsers({}, host.failures.append), rng=SeededRandom(7))
    if answer:
        p.r.answer = host.answer


def test_eap_user_and_lease_come_through_lookups(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    host = StoreHost(rw.users)
    p = rw.client("alice", "alice-secret-1")
    gateway(rw, p, host)
    p.initiate()
    p.run()
    assert len(p.r.of(IkeSaEstablished)) == 1
    (vip,) = p.i.of(VirtualIpAssigned)
    assert vip.addresses == (ip_address("10.3.0.1"),)
    kinds = [type(e.lookup) for e in p.r.of(LookupNeeded)]
    assert kinds == [UserQuery, LeaseQuery]
    assert [(lease.identity, lease.live) for lease in rw.users.leases("rw")] == [("alice", True)]
    p.i.terminate(p.i.engine.sas()[0].sa_id)
    p.run()
    assert host.released == [("rw", ip_address("10.3.0.1"))]
    assert not rw.users.leases("rw")[0].live


def test_wrong_password_is_counted_through_the_host(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    host = StoreHost(rw.users)
    p = rw.client("alice", "not-her-password")
    gateway(rw, p, host)
    p.initiate()
    p.run()
    assert not p.r.of(IkeSaEstablished)
    assert host.failures == ["alice"]
    assert not any(isinstance(q, LeaseQuery) for q in host.asked)


def test_store_unavailable_fails_the_login_with_the_reason_and_counts_nothing(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    host = StoreHost(rw.users)
    host.down = "store unavailable: postgresql://gw@db/vpn: connection refused"
    p = rw.client("alice", "alice-secret-1")
    gateway(rw, p, host)
    p.initiate()
    p.run()
    (closed,) = p.r.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in closed.reason and "store unavailable" in closed.reason
    assert host.failures == []
    assert p.r.engine.sas() == []


def test_no_lease_is_internal_address_failure_with_the_reason(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    host = StoreHost(rw.users)
    p = rw.client("alice", "alice-secret-1")
    gateway(rw, p, host, answer=False)
    p.initiate()
    p.run(until=p.now + 1)  # not longer: the half-open timeout would end the waiting SA
    (user_q,) = p.r.pending
    p.r.reply(user_q, host.answer(user_q.lookup))
    p.run(until=p.now + 1)
    (lease_q,) = p.r.pending[1:]
    p.r.reply(lease_q, LeaseAnswer("rw", None, "store unavailable: server closed the connection"))
    p.run()
    (closed,) = p.i.of(IkeSaClosed)
    assert "INTERNAL_ADDRESS_FAILURE" in closed.reason
    assert p.r.engine.sas() == [] and p.i.engine.sas() == []


def test_an_address_leased_for_an_sa_that_is_gone_goes_back(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    host = StoreHost(rw.users)
    p = rw.client("alice", "alice-secret-1")
    gateway(rw, p, host, answer=False)
    p.initiate()
    p.run(until=p.now + 1)
    (user_q,) = p.r.pending
    p.r.reply(user_q, host.answer(user_q.lookup))
    p.run(until=p.now + 1)
    lease_q = p.r.pending[1]
    assert isinstance(lease_q.lookup, LeaseQuery)
    assert lease_q.lookup.identity == "alice" and lease_q.lookup.pool == POOL.name
    p.run(until=p.now + 120)  # the answer never comes in time: the half-open SA dies
    assert p.r.engine.sas() == []
    late = host.answer(lease_q.lookup)
    assert isinstance(late, LeaseAnswer) and late.address is not None
    p.r.reply(lease_q, late)
    assert host.released == [("rw", late.address)]
    assert not any(lease.live for lease in rw.users.leases("rw"))
