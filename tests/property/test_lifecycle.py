"""The lifecycle tables of ``ike.state``, walked at random (h11's and h2's state-machine tests
are the models).

Two machines: one feeds random events to a lone IKE SA and Child SA lifecycle and checks
that each event moves exactly as the table says or raises ``IllegalTransition`` leaving the
state alone; the other drives two real engines with random API calls (rekeys, reauthentication,
deletes, liveness checks) over a link that loses and reorders, and checks after every step
that each SA's state agrees with its data and with the exchanges in flight, and at the end
that both sides settle on one IKE SA.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pyipsec.crypto.rand import SeededRandom
from pyipsec.ike.events import CloseCause, IkeSaClosed
from pyipsec.ike.sa import ChildSa, IkeSa
from pyipsec.ike.state import (
    CHILD_TABLE,
    IKE_TABLE,
    ChildEvent,
    ChildSaState,
    IkeEvent,
    IkeSaState,
    IllegalTransition,
    child_next,
    ike_next,
)
from pyipsec.ike.tasks.child_create import ChildCreateTask
from pyipsec.ike.tasks.ike_rekey import IkeRekeyTask
from tests.support.engines import EnginePair, Link, Side, psk_connection

# -- the tables themselves ----------------------------------------------------------------------


def _reachable(table: dict[object, dict[object, object]], start: object) -> set[object]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in table[todo.pop()].values():
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_and_can_close() -> None:
    assert _reachable(IKE_TABLE, IkeSaState.CREATED) == set(IkeSaState)  # type: ignore[arg-type]
    assert _reachable(CHILD_TABLE, ChildSaState.CREATING) == set(ChildSaState)  # type: ignore[arg-type]
    for ike_state in IkeSaState:
        assert ike_state is IkeSaState.CLOSED or IKE_TABLE[ike_state][IkeEvent.CLOSE] is IkeSaState.CLOSED
    for child_state in ChildSaState:
        assert (
            child_state is ChildSaState.CLOSED
            or CHILD_TABLE[child_state][ChildEvent.CLOSE] is ChildSaState.CLOSED
        )


def test_closed_is_final_and_replaced_states_only_close() -> None:
    assert IKE_TABLE[IkeSaState.CLOSED] == {} and CHILD_TABLE[ChildSaState.CLOSED] == {}
    for state in (IkeSaState.REKEYED, IkeSaState.REDUNDANT, IkeSaState.DELETING):
        assert set(IKE_TABLE[state]) == {IkeEvent.CLOSE}
    for child_state in (ChildSaState.REDUNDANT, ChildSaState.DELETING):
        assert set(CHILD_TABLE[child_state]) == {ChildEvent.CLOSE}


class LifecycleMachine(RuleBasedStateMachine):
    """Random events on one IKE SA and one Child SA lifecycle."""

    def __init__(self) -> None:
        super().__init__()
        self.ike = IkeSaState.CREATED
        self.child = ChildSaState.CREATING
        self.ike_seen = {self.ike}
        self.child_seen = {self.child}

    @rule(event=st.sampled_from(IkeEvent))
    def ike_event(self, event: IkeEvent) -> None:
        expected = IKE_TABLE[self.ike].get(event)
        try:
            new = ike_next(self.ike, event)
        except IllegalTransition:
            assert expected is None
            return
        assert new is expected
        self.ike = new
        self.ike_seen.add(new)

    @rule(event=st.sampled_from(ChildEvent))
    def child_event(self, event: ChildEvent) -> None:
        expected = CHILD_TABLE[self.child].get(event)
        try:
            new = child_next(self.child, event)
        except IllegalTransition:
            assert expected is None
            return
        assert new is expected
        self.child = new
        self.child_seen.add(new)

    @invariant()
    def closed_stays_closed(self) -> None:
        if IkeSaState.CLOSED in self.ike_seen:
            assert self.ike is IkeSaState.CLOSED
        if ChildSaState.CLOSED in self.child_seen:
            assert self.child is ChildSaState.CLOSED


TestLifecycle = LifecycleMachine.TestCase
TestLifecycle.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


# -- two engines driven at random ---------------------------------------------------------------


def _queued(side: Side, sa: IkeSa) -> list[object]:
    """Every task of ours queued or in flight on ``sa``."""
    ex = side.engine.tasks.exchanger(sa)
    tasks: list[object] = []
    if ex.inflight is not None:
        tasks += ex.inflight.exchange.tasks
    for item in ex.queue:
        tasks += getattr(item, "tasks", [])
    return tasks


def _rekeying_child(side: Side, child: ChildSa) -> bool:
    owners = [s for s in side.engine.sas() if child.child_id in s.children] or side.engine.sas()
    return any(
        isinstance(t, ChildCreateTask) and t.rekey is child for sa in owners for t in _queued(side, sa)
    )


class EnginesMachine(RuleBasedStateMachine):
    """Two engines with one IKE SA and one Child SA, and a random mix of everything that moves
    their lifecycles; the link loses, duplicates and reorders while the machine runs."""

    def __init__(self) -> None:
        super().__init__()
        i = psk_connection(
            "site",
            local_id="moon.test",
            remote_id="sun.test",
            local_addr="192.0.2.1",
            remote_addr="192.0.2.2",
            esp_proposals="aes256gcm16-ecp256",
        )
        r = psk_connection(
            "site",
            local_id="sun.test",
            remote_id="moon.test",
            local_addr="192.0.2.2",
            remote_addr="192.0.2.1",
            esp_proposals="aes256gcm16-ecp256",
            local_ts="10.2.0.0/16",
            remote_ts="10.1.0.0/16",
        )
        self.p = EnginePair(i, [r])
        self.p.initiate()
        self.p.run(until=10)
        assert len(self.p.i.engine.sas()) == 1
        self.seeded = False

    def _side(self, initiator: bool) -> Side:
        return self.p.i if initiator else self.p.r

    @rule(seed=st.integers(0, 2**16))
    @precondition(lambda self: not self.seeded)
    def bad_link(self, seed: int) -> None:
        self.seeded = True
        self.p.i.engine.ctx.rng = SeededRandom(seed)
        self.p.r.engine.ctx.rng = SeededRandom(seed + 1)
        self.p.link = Link(loss=0.1, duplicate=0.1, reorder=0.4, seed=seed)

    @rule(initiator=st.booleans())
    def rekey_ike(self, initiator: bool) -> None:
        side = self._side(initiator)
        for sa in side.engine.sas():
            if sa.state is IkeSaState.ESTABLISHED:
                side.rekey_ike(sa.sa_id)
                return

    @rule(initiator=st.booleans())
    def rekey_child(self, initiator: bool) -> None:
        side = self._side(initiator)
        for sa in side.engine.sas():
            for child in list(sa.children.values()):
                if sa.active and child.state is ChildSaState.INSTALLED:
                    side.rekey_child(sa.sa_id, child.child_id)
                    return

    @rule()
    def reauthenticate(self) -> None:
        for sa in self.p.i.engine.sas():
            if sa.state is IkeSaState.ESTABLISHED and sa.original_initiator:
                self.p.i.reauthenticate(sa.sa_id)
                return

    @rule(initiator=st.booleans())
    def liveness(self, initiator: bool) -> None:
        side = self._side(initiator)
        for sa in side.engine.sas():
            if sa.active:
                side.check_liveness(sa.sa_id)
                return

    @rule(steps=st.integers(1, 6))
    def deliver(self, steps: int) -> None:
        for _ in range(steps):
            if not self.p.deliver():
                return

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0]))
    def wait(self, seconds: float) -> None:
        self.p.run(until=self.p.now + seconds)

    @invariant()
    def states_agree_with_data(self) -> None:
        for side in (self.p.i, self.p.r):
            closed = [e for e in side.events if isinstance(e, IkeSaClosed)]
            assert not [e for e in closed if e.cause is CloseCause.INTERNAL_ERROR], closed
            for sa in side.engine.sas():
                queued = _queued(side, sa)
                if sa.state is IkeSaState.REKEYING:
                    assert any(isinstance(t, IkeRekeyTask) for t in queued), sa.sa_id
                if sa.state is IkeSaState.REAUTHENTICATING:
                    assert sa.reauth_by is not None
                if sa.state is IkeSaState.PENDING:
                    assert any(o.peer_rekey is not None and o.peer_rekey[2] is sa for o in side.engine.sas())
                if sa.state is IkeSaState.REDUNDANT:
                    assert sa.redundant_at is not None or sa.state is IkeSaState.CLOSED
                if sa.state in (IkeSaState.ESTABLISHED, IkeSaState.REKEYING, IkeSaState.REAUTHENTICATING):
                    assert sa.keys is not None and sa.was_established
                for child in sa.children.values():
                    assert child.owner is sa
                    assert child.state is not ChildSaState.CLOSED
                    if child.state is ChildSaState.REKEYED:
                        assert child.successor is not None
                    if child.state is ChildSaState.REKEYING and sa.state is not IkeSaState.DELETING:
                        # (a Delete of the IKE SA drops what was queued on it)
                        assert _rekeying_child(side, child), child.child_id

    def teardown(self) -> None:
        """Once the link heals, both sides settle on one IKE SA (the same) and nothing broke."""
        self.p.link = Link()
        self.p.run(until=self.p.now + 600)
        a = [s for s in self.p.i.engine.sas() if s.state is not IkeSaState.CLOSED]
        b = [s for s in self.p.r.engine.sas() if s.state is not IkeSaState.CLOSED]
        if a or b:  # (a lost Delete may end both)
            assert [s.state for s in a] == [IkeSaState.ESTABLISHED]
            assert [s.state for s in b] == [IkeSaState.ESTABLISHED]
            assert (a[0].spi_i, a[0].spi_r) == (b[0].spi_i, b[0].spi_r)


TestEngines = EnginesMachine.TestCase
TestEngines.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
