"""The engine's typed outcomes: what the runtime learns without looking inside the engine.

``initiate`` returns the new SA's id; ``IkeSaClosed.cause`` says why an SA went (and whether
another took its place); ``ChildSaRemoved.replaced_by`` says what took over a Child SA;
``list_sas`` describes every SA; ``handle_signal`` acts on the data plane's lifetime signals.
"""

from __future__ import annotations

import pytest

from pyipsec.errors import UsageError
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.events import (
    ChildSaInstalled,
    ChildSaRemoved,
    ChildSaSignal,
    CloseCause,
    IkeSaClosed,
    IkeSaEstablished,
    Replacement,
    SignalKind,
)
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.ike.state import ChildSaState, IkeSaState
from tests.scenario.test_handshake_psk import pair
from tests.scenario.test_rekey import established
from tests.support.engines import EnginePair


def _causes(p: EnginePair) -> tuple[list[CloseCause], list[CloseCause]]:
    return (
        [e.cause for e in p.i.of(IkeSaClosed)],  # type: ignore[attr-defined]
        [e.cause for e in p.r.of(IkeSaClosed)],  # type: ignore[attr-defined]
    )


def test_initiate_returns_the_new_sas_id_and_list_sas_describes_it() -> None:
    p = pair()
    sa_id = p.initiate()
    (connecting,) = p.i.engine.list_sas()
    assert connecting.sa_id == sa_id and connecting.connecting and not connecting.established
    p.run(until=5)
    (info,) = p.i.engine.list_sas("office")
    assert info.sa_id == sa_id and info.established and info.original_initiator
    assert info.state is IkeSaState.ESTABLISHED and info.remote_id == "sun.test"
    assert info.proposal is not None and format_chosen(info.proposal) == "aes256gcm16-prfsha256-x25519"
    (child,) = info.children
    (installed,) = p.i.of(ChildSaInstalled)
    assert child.child_id == installed.child_id and child.state is ChildSaState.INSTALLED  # type: ignore[attr-defined]
    assert p.i.engine.list_sas("no-such-connection") == []
    second = p.initiate()
    assert second != sa_id  # every SA its own id


def test_local_and_peer_deletes_say_so() -> None:
    p = established()
    (sa,) = p.i.engine.list_sas()
    p.i.terminate(sa.sa_id)
    p.run()
    assert _causes(p) == ([CloseCause.LOCAL], [CloseCause.PEER])
    assert not any(c.replaced for c in _causes(p)[0] + _causes(p)[1])
    for side in (p.i, p.r):
        assert [e.replaced_by for e in side.of(ChildSaRemoved)] == [Replacement.NONE]  # type: ignore[attr-defined]


def test_an_ike_rekey_closes_the_old_sa_as_replaced_and_moves_the_children() -> None:
    p = established()
    (sa,) = p.i.engine.list_sas()
    p.i.rekey_ike(sa.sa_id)
    assert p.i.engine.list_sas()[0].state is IkeSaState.REKEYING
    with pytest.raises(UsageError, match="REKEYING"):
        p.i.rekey_ike(sa.sa_id)  # one rekey at a time
    p.run(until=p.now + 10)
    assert _causes(p) == ([CloseCause.REKEYED], [CloseCause.REKEYED])
    assert all(c.replaced for c in _causes(p)[0])
    assert not p.i.of(ChildSaRemoved) and not p.r.of(ChildSaRemoved)  # they moved, none went
    (new,) = p.i.engine.list_sas()
    assert new.sa_id != sa.sa_id and new.state is IkeSaState.ESTABLISHED and len(new.children) == 1


def test_a_child_rekey_reports_the_old_child_replaced_by_a_rekey() -> None:
    p = established()
    (sa,) = p.i.engine.list_sas()
    (child,) = sa.children
    p.i.rekey_child(sa.sa_id, child.child_id)
    states = {c.child_id: (c.state, c.rekey_at) for c in p.i.engine.list_sas()[0].children}
    assert states[child.child_id] == (ChildSaState.REKEYING, None)  # and the new one CREATING
    p.run(until=p.now + 10)
    for side in (p.i, p.r):
        (removed,) = side.of(ChildSaRemoved)
        assert removed.replaced_by is Replacement.REKEY  # type: ignore[attr-defined]
    assert not p.i.of(IkeSaClosed)


def test_a_reauthentication_closes_the_old_sa_as_reauthenticated_and_its_children_as_replaced() -> None:
    p = established()
    (old,) = p.i.engine.list_sas()
    p.i.reauthenticate(old.sa_id)
    states = {s.sa_id: s.state for s in p.i.engine.list_sas()}
    assert states[old.sa_id] is IkeSaState.REAUTHENTICATING
    assert p.i.engine.list_sas()[0].reauthenticating
    p.run(until=p.now + 10)
    (closed_i,) = p.i.of(IkeSaClosed)
    (closed_r,) = p.r.of(IkeSaClosed)
    assert closed_i.cause is CloseCause.REAUTHENTICATED and closed_i.cause.replaced  # type: ignore[attr-defined]
    assert closed_r.cause is CloseCause.PEER  # type: ignore[attr-defined]
    for side in (p.i, p.r):
        (removed,) = side.of(ChildSaRemoved)
        assert removed.replaced_by is Replacement.REAUTH  # type: ignore[attr-defined]
    (new,) = p.i.engine.list_sas()
    assert new.sa_id != old.sa_id and new.established


def test_dead_peer_and_failed_authentication_causes() -> None:
    p = established(i_dpd_delay=30.0)
    p.link.loss = 1.0
    p.run(until=400)
    assert _causes(p)[0] == [CloseCause.TIMEOUT]
    p2 = pair()
    p2.r.engine.ctx.creds = MemoryCredentials([SharedSecret(b"another secret")])
    p2.initiate()
    p2.run(until=30)
    assert _causes(p2) == ([CloseCause.FAILED], [CloseCause.FAILED])


@pytest.mark.parametrize("kind", [SignalKind.SOFT_LIFETIME, SignalKind.SEQ_EXHAUSTING])
def test_a_soft_signal_rekeys_the_child_once(kind: SignalKind) -> None:
    p = established()
    (sa,) = p.i.engine.list_sas()
    (child,) = sa.children
    p.i.handle_signal(ChildSaSignal(child.spi_in, kind))
    p.i.handle_signal(ChildSaSignal(child.spi_in, kind))  # already rekeying: nothing more
    p.run(until=p.now + 10)
    assert len(p.i.of(ChildSaInstalled)) == 2  # the first and its one successor
    (removed,) = p.i.of(ChildSaRemoved)
    assert removed.spi_in == child.spi_in and removed.replaced_by is Replacement.REKEY  # type: ignore[attr-defined]


def test_a_hard_signal_deletes_the_child_and_unknown_spis_change_nothing() -> None:
    p = established()
    (sa,) = p.i.engine.list_sas()
    (child,) = sa.children
    p.i.handle_signal(ChildSaSignal(b"\x00\x00\x00\x01", SignalKind.HARD_LIFETIME))
    p.run(until=p.now + 10)
    assert not p.i.of(ChildSaRemoved)
    p.i.handle_signal(ChildSaSignal(child.spi_in, SignalKind.HARD_LIFETIME))
    p.run(until=p.now + 10)
    (removed,) = p.i.of(ChildSaRemoved)
    assert removed.reason == "hard lifetime expired" and removed.replaced_by is Replacement.NONE  # type: ignore[attr-defined]
    assert p.i.engine.list_sas()[0].established and not p.i.engine.list_sas()[0].children
    assert p.i.of(IkeSaEstablished)
