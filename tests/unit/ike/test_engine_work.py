"""The engine's work per event does not grow with the number of IKE SAs (issue 16).

A cookie-answering flood leaves thousands of half-open SAs on a responder; a gateway holds
thousands of established ones (issue 13). Each datagram, timer tick or API call must touch
only the SAs it concerns: spies count the deadlines the engine computes
(``IkeEngine._sa_deadline``), the SAs the timer visits (``TaskManager.on_timer``) and the SAs
whose output is collected (``TaskManager.take_outbox``), with 2,000 half-open SAs and one
established SA next to them. (That the incremental bookkeeping stays exact is checked after
every engine call of the whole suite: ``IkeEngine.audit`` in tests/conftest.py.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pyipsec.ike.config import EngineConfig, Identity
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.events import IkeSaEstablished
from pyipsec.ike.manager import TaskManager
from pyipsec.ike.state import IkeSaState
from pyipsec.net.addr import Datagram
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, endpoint, psk_connection
from tests.support.flood import InitFlood, flood_pair, source

N = 2000
SPACING = 0.01  # seconds between the flood's requests: their half-open timeouts are spread too


def _pair() -> EnginePair:
    return flood_pair({"dpd_delay": 30.0}, init_limit_half_open=10 * N)


class Work:
    """Counts calls of the engine's per-SA steps (spies, wrapped around the real methods)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        for owner, name in (
            (IkeEngine, "_sa_deadline"),
            (TaskManager, "on_timer"),
            (TaskManager, "take_outbox"),
        ):
            self._spy(monkeypatch, owner, name)

    def _spy(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        real = getattr(owner, name)

        def spy(*args: object, **kw: object) -> object:
            self.calls[name] += 1
            return real(*args, **kw)

        monkeypatch.setattr(owner, name, spy)

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture(scope="module")
def flooded() -> Iterator[tuple[EnginePair, int]]:
    """One established SA (with DPD), then 2,000 half-open SAs from 2,000 addresses."""
    p = _pair()
    sa_id = p.initiate()
    p.run(until=1.0)
    assert p.r.of(IkeSaEstablished)
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    start = p.now
    for k in range(N):
        flood.send(p.r.engine, source(k), start + k * SPACING)
    p.now = start + N * SPACING
    assert flood.answered == N
    yield p, sa_id


def _half_open(engine: IkeEngine) -> int:
    return sum(1 for s in engine.sas() if s.state is IkeSaState.CONNECTING)


def test_a_new_ike_sa_init_works_on_its_own_sa_only(
    flooded: tuple[EnginePair, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, _ = flooded
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    work = Work(monkeypatch)
    flood.send(p.r.engine, source(N + 1), p.now)
    assert flood.answered == 1
    assert work.calls["_sa_deadline"] <= 2
    assert work.calls["take_outbox"] <= 2


def test_the_next_deadline_is_read_not_computed(
    flooded: tuple[EnginePair, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, _ = flooded
    work = Work(monkeypatch)
    assert p.r.engine.next_deadline() is not None
    assert work.calls["_sa_deadline"] == 0


def test_dpd_of_the_established_sa_touches_that_sa_only(
    flooded: tuple[EnginePair, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, sa_id = flooded
    p.i.check_liveness(sa_id)
    (request,) = p.r.inbox
    p.r.inbox.clear()
    work = Work(monkeypatch)
    out = p.r.engine.receive_datagram(Datagram(request.remote, request.local, request.payload), p.now)
    assert [str(d.remote.ip) for d in out.datagrams] == [I_ADDR]  # answered
    assert work.calls["_sa_deadline"] <= 1
    assert work.calls["take_outbox"] <= 1


def test_a_timer_tick_visits_only_the_sas_that_are_due(
    flooded: tuple[EnginePair, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, _ = flooded
    engine = p.r.engine
    work = Work(monkeypatch)
    engine.handle_timer(p.now)  # nothing is due yet
    assert work.calls["on_timer"] == 0
    assert work.calls["_sa_deadline"] == 0


def test_half_open_expiry_closes_the_due_sa_and_visits_no_other(
    flooded: tuple[EnginePair, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, _ = flooded
    engine = p.r.engine
    before, expired = _half_open(engine), engine.stats.half_open_expired
    first_expiry = engine.next_deadline()
    assert first_expiry is not None
    work = Work(monkeypatch)
    engine.handle_timer(first_expiry + SPACING / 2)
    assert engine.stats.half_open_expired == expired + 1
    assert work.calls["_sa_deadline"] <= 1 and work.calls["take_outbox"] <= 1
    work.reset()
    assert _half_open(engine) == before - 1


N_ESTABLISHED = 250  # (issue 13 wants 1,000; the property is the same, the test time is not)


@pytest.fixture(scope="module")
def established() -> Iterator[EnginePair]:
    """250 established SAs with DPD, each with its own client identity, 0.1 s apart."""
    base_i = psk_connection(
        "c0", local_id="c0.test", remote_id="sun.test", local_addr=I_ADDR, remote_addr=R_ADDR, dpd_delay=30.0
    )
    r = psk_connection(
        "gw",
        local_id="sun.test",
        remote_id="c0.test",
        local_addr=R_ADDR,
        remote_addr="%any",
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
        dpd_delay=30.0,
    )
    r = replace(r, remote=replace(r.remote, identity=Identity.any()))
    p = EnginePair(base_i, [r])
    conns = {
        f"c{k}": replace(
            base_i, name=f"c{k}", local=replace(base_i.local, identity=Identity.fqdn(f"c{k}.test"))
        )
        for k in range(N_ESTABLISHED)
    }
    p.i.engine.reconfigure(EngineConfig(conns))
    for k in range(N_ESTABLISHED):
        p.now = k * 0.1
        p.i.initiate(f"c{k}")
        while p.deliver():
            pass
    assert len(p.r.of(IkeSaEstablished)) == N_ESTABLISHED == len(p.r.engine.sas())
    p.now = N_ESTABLISHED * 0.1
    yield p


def test_with_established_sas_a_dpd_exchange_touches_one_sa(
    established: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = established
    sa_id = p.i.engine.sas()[100].sa_id
    p.i.check_liveness(sa_id)
    work = Work(monkeypatch)
    assert p.deliver()  # the request answered, the response processed
    assert not p.i.engine.tasks.busy(p.i.engine.sa(sa_id))  # type: ignore[arg-type]
    assert work.calls["_sa_deadline"] <= 2  # one SA on each side
    assert work.calls["take_outbox"] <= 2


def test_with_established_sas_timers_visit_only_the_due_ones(
    established: EnginePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = established
    engine = p.r.engine
    first = engine.next_deadline()
    assert first is not None and first >= 30.0  # the first SA's DPD (established at 0)
    work = Work(monkeypatch)
    engine.handle_timer(first + 0.05)  # the SAs are 0.1 s apart: one is due
    assert work.calls["on_timer"] == 1
    assert work.calls["_sa_deadline"] <= 1
