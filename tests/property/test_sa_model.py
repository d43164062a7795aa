"""The IKE SA lifecycle of two engines against a model of what the peers agreed on (issue 16,
"hypothesis state machines").

Two real engines (``tests/support/engines.EnginePair``, virtual clock) with one connection,
and the network in the machine's hands: each datagram in flight is delivered in any order
(time passes only once none is in flight), dropped (at most :data:`DROPS` between two
settles, fewer than the retransmissions of one exchange, so none runs out of tries) or
duplicated. The rules are what the host and the peers
do: initiate, rekey the IKE SA or a Child SA, reauthenticate, DPD, delete a Child SA,
terminate an IKE SA — at either end, while anything else is in flight.

The model does not know SPIs; it knows *lineages*: an IKE SA that ``initiate`` started, and
whatever replaces it by rekeying or reauthentication, carries one logical tunnel with a number
of logical Child SAs (one lineage alive at a time: :data:`MAX_LINEAGES`). ``initiate`` adds
a lineage with one child, ``terminate`` ends one,
deleting a Child SA takes one child away (once, however many ends ask); rekeys,
reauthentication and DPD change nothing. Lifecycle changes (delete, terminate,
reauthenticate) wait until no other lifecycle change is under way (in flight or queued), so
what they mean is not ambiguous; rekeys, DPD and the network are never held back.

Invariants after every step: nothing raises and no SA closes for an internal error; the
Child SAs each engine reported installed and not removed are exactly the ones it holds (none
vanishes without a ``ChildSaRemoved``, none is reported twice); an SA in any state but
ESTABLISHED has a timer, so it cannot be stuck. At each ``settle`` (the network delivers
everything and 600 virtual seconds pass) and at the end: every SA is ESTABLISHED with only
INSTALLED children, both engines hold the same IKE SAs (SPIs) and the same Child SAs (our
inbound SPI is the peer's outbound), one IKE SA per live lineage and as many children as the
model says.

Budget: 200 examples of 40 steps (about 30 s); ``PYIPSEC_STATEFUL_EXAMPLES=1000`` for a longer
hunt (the bugs fixed alongside this machine showed up after 400 to 600 examples; each has its
own test in ``tests/scenario/test_collisions.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pyipsec.ike.events import ChildSaInstalled, ChildSaRemoved, CloseCause, IkeSaClosed, IkeSaEstablished
from pyipsec.ike.sa import ChildSa, IkeSa
from pyipsec.ike.state import ChildSaState, IkeSaState
from pyipsec.ike.tasks.delete import ChildDeleteTask, IkeDeleteTask
from tests.support.engines import EnginePair, Side, psk_connection

DROPS = 2
"""Datagrams the network may lose between two settles: with 5 retransmissions per exchange,
and the half-open timeout (30 s) longer than three sends of IKE_AUTH (4 s, then 7.2 s), none
of our exchanges fails for loss alone."""

MAX_LINEAGES = 1
"""One tunnel at a time, and a new one only once the initiator holds no IKE SA at all, as the
daemon does (``up`` of a connection that is up or coming up reuses that SA). Two IKE SAs of one
connection with the same peer are not a state the engines agree on: the second one's IKE_AUTH
carries INITIAL_CONTACT, so the responder drops the first one silently (even one whose Delete
it is still sending) while the initiator keeps it; without INITIAL_CONTACT the responder would
take the second for a reauthentication of the first."""
TRANSITIONAL = frozenset(IkeSaState) - {IkeSaState.ESTABLISHED, IkeSaState.CLOSED}


@dataclass
class Lineage:
    """One logical tunnel: the IKE SA ``initiate`` made and its replacements."""

    number: int
    children: int = 1
    alive: bool = True


class SaModelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        i = psk_connection(
            "site",
            local_id="moon.test",
            remote_id="sun.test",
            local_addr="192.0.2.1",
            remote_addr="192.0.2.2",
        )
        r = psk_connection(
            "site",
            local_id="sun.test",
            remote_id="moon.test",
            local_addr="192.0.2.2",
            remote_addr="192.0.2.1",
            local_ts="10.2.0.0/16",
            remote_ts="10.1.0.0/16",
        )
        self.p = EnginePair(i, [r])
        self.lineages: list[Lineage] = []
        self.of_i: dict[int, Lineage] = {}  # the initiator's IKE SA ids → lineage
        self.of_r: dict[int, Lineage] = {}  # the responder's, as learnt
        self.deleted: set[frozenset[bytes]] = set()  # the SPI pairs of logical children deleted
        self.drops = 0
        self.read = {"i": 0, "r": 0}  # events looked at so far
        self.live: dict[str, set[bytes]] = {"i": set(), "r": set()}  # installed, not removed

    # -- helpers --------------------------------------------------------------------------------

    def _sides(self) -> dict[str, Side]:
        return {"i": self.p.i, "r": self.p.r}

    def _side(self, initiator: bool) -> Side:
        return self.p.i if initiator else self.p.r

    def _follow_events(self) -> None:
        """Lineages of the initiator's new IKE SAs, and the Child SAs each side installed."""
        for key, side in self._sides().items():
            for event in side.events[self.read[key] :]:
                if isinstance(event, IkeSaEstablished):
                    old = event.rekeyed_from if event.rekeyed_from is not None else event.reauth_of
                    known = self.of_i if key == "i" else self.of_r
                    if old is not None and old not in known and key == "r":
                        old_sa = side.engine.sa(old)
                        if old_sa is not None:
                            self._lineage(side, old_sa)  # (by the SPIs the initiator knows)
                    if old is not None and old in known:
                        known[event.sa_id] = known[old]
                elif isinstance(event, ChildSaInstalled):
                    assert event.spec.spi_in not in self.live[key], f"{key}: {event} reported twice"
                    self.live[key].add(event.spec.spi_in)
                elif isinstance(event, ChildSaRemoved):
                    assert event.spi_in in self.live[key], f"{key}: {event} was never installed"
                    self.live[key].discard(event.spi_in)
                elif isinstance(event, IkeSaClosed):
                    assert event.cause is not CloseCause.INTERNAL_ERROR, event
            self.read[key] = len(side.events)

    def _lineage(self, side: Side, sa: IkeSa) -> Lineage | None:
        if side is self.p.i:
            return self.of_i.get(sa.sa_id)
        if sa.sa_id in self.of_r:
            return self.of_r[sa.sa_id]
        twin = [s for s in self.p.i.engine.sas() if (s.spi_i, s.spi_r) == (sa.spi_i, sa.spi_r)]
        found = self.of_i.get(twin[0].sa_id) if twin else None
        if found is not None:
            self.of_r[sa.sa_id] = found
        return found

    def _quiet(self) -> bool:
        """No lifecycle change under way at either end (rekeys may be)."""
        for side in (self.p.i, self.p.r):
            for sa in side.engine.sas():
                if sa.state in (
                    IkeSaState.CREATED,
                    IkeSaState.CONNECTING,
                    IkeSaState.REAUTHENTICATING,
                    IkeSaState.DELETING,
                ):
                    return False
                if any(c.state is ChildSaState.DELETING for c in sa.children.values()):
                    return False
                ex = side.engine.tasks.exchanger(sa)  # a Delete in flight or queued behind one
                exchanges = [*([ex.inflight.exchange] if ex.inflight is not None else []), *ex.queue]
                tasks = [t for x in exchanges for t in getattr(x, "tasks", ())]
                if any(isinstance(t, IkeDeleteTask | ChildDeleteTask) for t in tasks):
                    return False
        return True

    def _installed(self, side: Side) -> list[tuple[IkeSa, ChildSa]]:
        """The logical Child SAs: INSTALLED, not the peer's half of a rekey collision still
        being settled (which goes, or replaces its predecessor, when our rekey completes)."""
        return [
            (sa, c)
            for sa in side.engine.sas()
            if sa.active
            for c in sa.children.values()
            if c.state is ChildSaState.INSTALLED
            and not any(o.peer_rekey is not None and o.peer_rekey[2] is c for o in sa.children.values())
        ]

    def _pick(self, items: list[IkeSa], pick: int) -> IkeSa | None:
        return items[pick % len(items)] if items else None

    def _established(self, side: Side) -> list[IkeSa]:
        return [sa for sa in side.engine.sas() if sa.state is IkeSaState.ESTABLISHED]

    # -- the host's and the peers' actions ------------------------------------------------------

    @precondition(
        lambda self: sum(lin.alive for lin in self.lineages) < MAX_LINEAGES and not self.p.i.engine.sas()
    )
    @rule()
    def initiate(self) -> None:
        lineage = Lineage(len(self.lineages))
        self.lineages.append(lineage)
        self.of_i[self.p.initiate()] = lineage

    @rule(initiator=st.booleans(), pick=st.integers(0, 7))
    def rekey_ike(self, initiator: bool, pick: int) -> None:
        side = self._side(initiator)
        sa = self._pick(self._established(side), pick)
        if sa is not None:
            side.rekey_ike(sa.sa_id)

    @rule(initiator=st.booleans(), pick=st.integers(0, 7))
    def rekey_child(self, initiator: bool, pick: int) -> None:
        side = self._side(initiator)
        children = self._installed(side)
        if children:
            sa, child = children[pick % len(children)]
            side.rekey_child(sa.sa_id, child.child_id)

    @rule(initiator=st.booleans(), pick=st.integers(0, 7))
    def dpd(self, initiator: bool, pick: int) -> None:
        side = self._side(initiator)
        sa = self._pick([s for s in side.engine.sas() if s.active], pick)
        if sa is not None:
            side.check_liveness(sa.sa_id)

    @precondition(lambda self: self._quiet())
    @rule(pick=st.integers(0, 7))
    def reauthenticate(self, pick: int) -> None:
        sa = self._pick([s for s in self._established(self.p.i) if s.original_initiator], pick)
        if sa is not None:
            self.p.i.reauthenticate(sa.sa_id)

    @precondition(lambda self: self._quiet())
    @rule(initiator=st.booleans(), pick=st.integers(0, 7))
    def delete_child(self, initiator: bool, pick: int) -> None:
        side = self._side(initiator)
        children = self._installed(side)
        if not children:
            return
        sa, child = children[pick % len(children)]
        lineage = self._lineage(side, sa)
        assert lineage is not None and lineage.alive, (sa.sa_id, lineage)
        spis = frozenset((child.spi_in, child.spi_out))
        if spis not in self.deleted:
            self.deleted.add(spis)
            lineage.children -= 1
        side.terminate_child(sa.sa_id, child.child_id)

    @precondition(lambda self: self._quiet())
    @rule(initiator=st.booleans(), pick=st.integers(0, 7))
    def terminate(self, initiator: bool, pick: int) -> None:
        side = self._side(initiator)
        sa = self._pick([s for s in side.engine.sas() if s.active], pick)
        if sa is None:
            return
        lineage = self._lineage(side, sa)
        assert lineage is not None and lineage.alive, (sa.sa_id, lineage)
        lineage.alive = False
        side.terminate(sa.sa_id)

    # -- the network and the clock --------------------------------------------------------------

    @rule(to_initiator=st.booleans(), index=st.integers(0, 7))
    def deliver(self, to_initiator: bool, index: int) -> None:
        """Deliver one datagram in flight, not necessarily the oldest (reordering)."""
        side = self._side(to_initiator)
        if not side.inbox:
            return
        d = side.inbox.pop(index % len(side.inbox))
        seen = type(d)(local=d.remote, remote=d.local, payload=d.payload)
        self.p.emit(side, side.engine.receive_datagram(seen, self.p.now))

    @precondition(lambda self: self.drops < DROPS)
    @rule(to_initiator=st.booleans(), index=st.integers(0, 7))
    def drop(self, to_initiator: bool, index: int) -> None:
        side = self._side(to_initiator)
        if side.inbox:
            side.inbox.pop(index % len(side.inbox))
            self.drops += 1

    @rule(to_initiator=st.booleans(), index=st.integers(0, 7))
    def duplicate(self, to_initiator: bool, index: int) -> None:
        side = self._side(to_initiator)
        if side.inbox:
            side.inbox.append(side.inbox[index % len(side.inbox)])

    @precondition(lambda self: not self.p.i.inbox and not self.p.r.inbox)
    @rule(seconds=st.sampled_from([0.5, 3.0, 8.0, 20.0]))
    def advance(self, seconds: float) -> None:
        """Time passes, timers fire (retransmissions, timeouts). The network is fast: time
        passes only when nothing is in flight (a datagram held back for half a minute would
        be a loss the half-open timeout rightly punishes)."""
        self.p.now += seconds
        for side in (self.p.i, self.p.r):
            side.timer()
            deadline = side.engine.next_deadline()
            assert deadline is None or deadline > self.p.now - 1e-9, (deadline, self.p.now)

    @rule()
    def settle(self) -> None:
        self._settle()

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def engines_agree_with_their_reports(self) -> None:
        self._follow_events()
        for key, side in self._sides().items():
            held = {
                c.spi_in
                for sa in side.engine.sas()
                for c in sa.children.values()
                if c.state is not ChildSaState.CREATING
            }
            assert held == self.live[key], (key, held, self.live[key])
            if any(sa.state in TRANSITIONAL for sa in side.engine.sas()):
                assert side.engine.next_deadline() is not None, [sa.state for sa in side.engine.sas()]

    def _settle(self) -> None:
        self.p.run(until=self.p.now + 600)
        self.drops = 0
        self._follow_events()
        i_sas = [s for s in self.p.i.engine.sas() if s.state is not IkeSaState.CLOSED]
        r_sas = [s for s in self.p.r.engine.sas() if s.state is not IkeSaState.CLOSED]
        for sa in i_sas + r_sas:  # nothing stuck: every exchange finished or timed out
            assert sa.state is IkeSaState.ESTABLISHED, (sa.sa_id, sa.state)
            assert all(c.state is ChildSaState.INSTALLED for c in sa.children.values()), sa.sa_id
        assert sorted((s.spi_i, s.spi_r) for s in i_sas) == sorted((s.spi_i, s.spi_r) for s in r_sas)
        alive = [lin for lin in self.lineages if lin.alive]
        assert len(i_sas) == len(alive), ([self._lineage(self.p.i, s) for s in i_sas], alive)
        assert sorted(lin.number for lin in alive) == sorted(
            lin.number for s in i_sas if (lin := self._lineage(self.p.i, s)) is not None
        )
        for sa in i_sas:
            [twin] = [s for s in r_sas if (s.spi_i, s.spi_r) == (sa.spi_i, sa.spi_r)]
            ours = sorted((c.spi_in, c.spi_out) for c in sa.children.values())
            theirs = sorted((c.spi_out, c.spi_in) for c in twin.children.values())
            assert ours == theirs, (sa.sa_id, ours, theirs)
            lineage = self._lineage(self.p.i, sa)
            assert lineage is not None and len(ours) == lineage.children, (lineage, ours)
        # every Child SA installed was removed or is held, matched, by both ends
        assert self.live["i"] == {c.spi_in for s in i_sas for c in s.children.values()}
        assert self.live["r"] == {c.spi_in for s in r_sas for c in s.children.values()}

    def teardown(self) -> None:
        self._settle()


TestSaModel = SaModelMachine.TestCase
TestSaModel.settings = settings(
    max_examples=int(os.environ.get("PYIPSEC_STATEFUL_EXAMPLES", "200")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")
