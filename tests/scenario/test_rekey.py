"""Rekeying (RFC 7296 §1.3.2, §1.3.3, §2.8): make-before-break, PFS, collisions, lifetimes, DPD."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.ike.events import (
    ChildSaInstalled,
    ChildSaOutboundActivated,
    ChildSaRemoved,
    IkeSaClosed,
    IkeSaEstablished,
    NatKeepalive,
)
from pyipsec.ike.state import ChildSaState, IkeSaState
from tests.scenario.test_handshake_psk import pair
from tests.support.engines import EnginePair, Link


def established(**kw: object) -> EnginePair:
    p = pair(**kw)
    p.initiate()
    p.run(until=5)
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    return p


def installed(p: EnginePair) -> tuple[list[bytes], list[bytes]]:
    """Our inbound SPIs of the installed children, per side."""
    out = []
    for side in (p.i, p.r):
        out.append(
            sorted(
                c.spi_in
                for s in side.engine.sas()
                for c in s.children.values()
                if c.state is ChildSaState.INSTALLED
            )
        )
    return out[0], out[1]


def assert_one_consistent_child(p: EnginePair) -> None:
    (sa_i,) = [s for s in p.i.engine.sas() if s.state is IkeSaState.ESTABLISHED]
    (sa_r,) = [s for s in p.r.engine.sas() if s.state is IkeSaState.ESTABLISHED]
    (ci,) = [c for c in sa_i.children.values() if c.state is ChildSaState.INSTALLED]
    (cr,) = [c for c in sa_r.children.values() if c.state is ChildSaState.INSTALLED]
    assert ci.spi_in == cr.spi_out and ci.spi_out == cr.spi_in
    assert ci.outbound_active and cr.outbound_active


@pytest.mark.parametrize("esp", ["aes256gcm16", "aes256gcm16-modp2048", "aes256-sha256-ecp256"])
def test_child_rekey_is_make_before_break(esp: str) -> None:
    p = established(i_esp_proposals=esp, r_esp_proposals=esp)
    (sa,) = p.i.engine.sas()
    (old,) = sa.children
    p.i.rekey_child(sa.sa_id, old)
    p.run(until=p.now + 5)
    new_i = p.i.of(ChildSaInstalled)[-1]
    new_r = p.r.of(ChildSaInstalled)[-1]
    assert new_i.replaces == old and new_i.spec.outbound_active
    assert new_r.replaces is not None and not new_r.spec.outbound_active  # responder: inbound first
    (act,) = p.r.of(ChildSaOutboundActivated)  # ... outbound once the initiator deleted the old SA
    assert act.spi_out == new_r.spec.spi_out
    assert [e.reason for e in p.i.of(ChildSaRemoved)] == ["rekeyed"]
    assert [e.reason for e in p.r.of(ChildSaRemoved)] == ["rekeyed by peer"]
    # the responder activates outbound only after it removed the old inbound SA's partner
    events = p.r.events
    assert events.index(p.r.of(ChildSaRemoved)[0]) < events.index(act)
    assert new_i.spec.encr_key_out == new_r.spec.encr_key_in
    assert new_i.spec.encr_key_out != p.i.of(ChildSaInstalled)[0].spec.encr_key_out
    assert_one_consistent_child(p)


def test_children_rekey_on_their_soft_lifetime_and_never_expire() -> None:
    p = pair()
    for side, name in ((p.i, "office"), (p.r, "gw")):
        conn = side.engine.config.connections[name]
        child = replace(conn.children[0], rekey_time=30.0, life_time=40.0)
        side.engine.config.connections[name] = replace(conn, children=(child,))  # type: ignore[index]
    p.initiate()
    p.run(until=300)
    assert len(p.i.of(ChildSaInstalled)) >= 8  # ~ every 27-30 s for 300 s
    assert not [
        e for e in p.i.of(ChildSaRemoved) + p.r.of(ChildSaRemoved) if e.reason == "hard lifetime expired"
    ]
    assert_one_consistent_child(p)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_simultaneous_child_rekey_ends_with_exactly_one_new_sa(seed: int) -> None:
    p = established()
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    (ci,) = sa_i.children
    (cr,) = sa_r.children
    p.i.engine.ctx.rng = SeededRandom(seed)
    p.i.rekey_child(sa_i.sa_id, ci)
    p.r.rekey_child(sa_r.sa_id, cr)
    p.run(until=p.now + 30)
    assert_one_consistent_child(p)
    i_spis, r_spis = installed(p)
    assert len(i_spis) == len(r_spis) == 1


def test_ike_rekey_moves_children_and_keeps_working() -> None:
    p = established()
    (old,) = p.i.engine.sas()
    p.i.rekey_ike(old.sa_id)
    p.run(until=p.now + 5)
    (new_i,) = [s for s in p.i.engine.sas()]
    (new_r,) = [s for s in p.r.engine.sas()]
    assert new_i.sa_id != old.sa_id
    assert (new_i.spi_i, new_i.spi_r) == (new_r.spi_i, new_r.spi_r) != (old.spi_i, old.spi_r)
    assert [e.reason for e in p.i.of(IkeSaClosed)] == ["rekeyed"]
    assert [e.reason for e in p.r.of(IkeSaClosed)] == ["rekeyed"]
    assert not p.i.of(ChildSaRemoved) and not p.r.of(ChildSaRemoved)
    assert_one_consistent_child(p)
    # the new SA carries further exchanges: a Child SA rekey and a liveness check
    (child,) = new_i.children
    p.i.rekey_child(new_i.sa_id, child)
    p.r.check_liveness(new_r.sa_id)
    p.run(until=p.now + 5)
    assert_one_consistent_child(p)
    assert not [e for e in p.i.of(IkeSaClosed) if e.reason != "rekeyed"]


def test_ike_rekey_by_the_responder_swaps_roles() -> None:
    p = established()
    (old_r,) = p.r.engine.sas()
    p.r.rekey_ike(old_r.sa_id)
    p.run(until=p.now + 5)
    (new_r,) = p.r.engine.sas()
    (new_i,) = p.i.engine.sas()
    assert new_r.initiator and not new_i.initiator  # the rekey's initiator is the new SA's
    assert_one_consistent_child(p)


def test_simultaneous_ike_rekey_ends_with_one_ike_sa() -> None:
    p = established()
    (a,) = p.i.engine.sas()
    (b,) = p.r.engine.sas()
    p.i.rekey_ike(a.sa_id)
    p.r.rekey_ike(b.sa_id)
    p.run(until=p.now + 120)
    assert len(p.i.engine.sas()) == len(p.r.engine.sas()) == 1
    assert_one_consistent_child(p)


def test_rekeys_complete_over_a_lossy_link() -> None:
    p = established()
    p.link = Link(loss=0.3, duplicate=0.1, reorder=0.2, seed=11)
    for _ in range(5):
        (sa,) = p.i.engine.sas()
        (child,) = [c for c in sa.children.values() if c.state is ChildSaState.INSTALLED]
        p.i.rekey_child(sa.sa_id, child.child_id)
        p.run(until=p.now + 200)
        assert_one_consistent_child(p)
    (sa,) = p.i.engine.sas()
    p.i.rekey_ike(sa.sa_id)
    p.run(until=p.now + 200)
    assert len(p.i.engine.sas()) == len(p.r.engine.sas()) == 1
    assert_one_consistent_child(p)


def test_dpd_detects_a_dead_peer_after_silence() -> None:
    p = established(i_dpd_delay=30.0)
    p.run(until=100)  # quiet but alive: liveness checks are answered
    assert not p.i.of(IkeSaClosed)
    p.link.loss = 1.0
    p.run(until=400)
    (closed,) = p.i.of(IkeSaClosed)
    assert "peer not responding" in closed.reason


def test_nat_keepalives_only_behind_a_nat_and_only_when_quiet() -> None:
    p = established(i_encap=True)  # forced encapsulation: the initiator believes it is behind a NAT
    p.run(until=100)
    keepalives = p.i.of(NatKeepalive)
    assert 4 <= len(keepalives) <= 5  # every 20 s of silence
    assert all(k.local.port == 4500 and k.remote.port == 4500 for k in keepalives)
    assert not p.r.of(NatKeepalive)  # the responder is not behind a NAT
