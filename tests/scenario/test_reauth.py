"""Reauthentication (RFC 7296 §2.8.3, make-before-break; AUTH_LIFETIME, RFC 4478)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.errors import UsageError
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.config import ChildConfig
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.events import (
    ChildSaInstalled,
    ChildSaOutboundActivated,
    ChildSaRemoved,
    IkeSaClosed,
    IkeSaEstablished,
    SaProgress,
    VirtualIpAssigned,
)
from pyipsec.ike.sa import IkeSa
from pyipsec.ike.state import ChildSaState, IkeSaState
from pyipsec.ike.tasks.ike_auth import IkeAuthTask
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.scenario.test_handshake_psk import pair
from tests.scenario.test_remote_access import RoadWarrior
from tests.support.engines import EnginePair, esp


def established(**kw: object) -> EnginePair:
    p = pair(**kw)
    p.initiate()
    p.run(until=5)
    assert len(p.i.of(IkeSaEstablished)) == 1 and len(p.r.of(IkeSaEstablished)) == 1
    return p


def live(side_engine_sas: list[IkeSa]) -> list[IkeSa]:
    return [s for s in side_engine_sas if s.state is IkeSaState.ESTABLISHED]


def assert_one_of_each(p: EnginePair, children: int = 1) -> tuple[IkeSa, IkeSa]:
    """Exactly one IKE SA per side, with ``children`` installed Child SAs that pair up."""
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    assert sa_i.state is sa_r.state is IkeSaState.ESTABLISHED
    assert (sa_i.spi_i, sa_i.spi_r) == (sa_r.spi_i, sa_r.spi_r)
    ci = sorted((c for c in sa_i.children.values()), key=lambda c: c.name)
    cr = sorted((c for c in sa_r.children.values()), key=lambda c: c.name)
    assert len(ci) == len(cr) == children
    for a, b in zip(ci, cr, strict=True):
        assert a.state is b.state is ChildSaState.INSTALLED
        assert a.name == b.name and a.spi_in == b.spi_out and a.spi_out == b.spi_in
        assert a.outbound_active and b.outbound_active
    return sa_i, sa_r


def test_reauth_fires_at_its_interval_within_the_jitter_and_replaces_everything() -> None:
    p = established(i_reauth_time=100.0)
    (old_i,) = p.i.engine.sas()
    (old_r,) = p.r.engine.sas()
    assert old_i.reauth_at is not None and 90.0 <= old_i.reauth_at - old_i.established_at <= 100.0
    assert old_r.reauth_at is None  # a responder never reauthenticates
    (old_child_i,) = old_i.children.values()
    old_ts = (old_child_i.local_ts, old_child_i.remote_ts)
    reauth_at = old_i.reauth_at
    p.run(until=reauth_at - 0.01)
    assert len(p.i.of(IkeSaEstablished)) == 1  # not before its time
    p.run(until=reauth_at + 5)
    new_i, new_r = p.i.of(IkeSaEstablished)[-1], p.r.of(IkeSaEstablished)[-1]
    assert new_i.reauth_of == old_i.sa_id and new_r.reauth_of == old_r.sa_id
    assert new_i.rekeyed_from is None
    assert (new_i.spi_i, new_i.spi_r) != (old_i.spi_i, old_i.spi_r)
    # the old IKE SA and its Child SA are gone on both sides, with the reason
    (closed_i,) = p.i.of(IkeSaClosed)
    (closed_r,) = p.r.of(IkeSaClosed)
    assert closed_i.sa_id == old_i.sa_id and "reauthenticated" in closed_i.reason
    assert closed_r.sa_id == old_r.sa_id and closed_r.reason == "deleted by peer"
    assert [e.child_id for e in p.i.of(ChildSaRemoved)] == [old_child_i.child_id]
    assert len(p.r.of(ChildSaRemoved)) == 1
    sa_i, _ = assert_one_of_each(p)
    assert sa_i.sa_id == new_i.sa_id
    (child,) = sa_i.children.values()
    assert (child.local_ts, child.remote_ts) == old_ts
    # the new SA reauthenticates again at its own interval
    assert sa_i.reauth_at is not None and 90.0 <= sa_i.reauth_at - sa_i.established_at <= 100.0


def test_reauth_repeats_and_every_new_child_is_installed_before_the_old_one_goes() -> None:
    p = established(i_reauth_time=60.0)
    p.run(until=200)
    assert len(p.i.of(IkeSaEstablished)) >= 3
    for side in (p.i, p.r):
        installs = [e for e in side.events if isinstance(e, ChildSaInstalled)]
        for removed in side.of(ChildSaRemoved):
            # a newer Child SA was installed before each old one was removed
            at = side.events.index(removed)
            assert any(side.events.index(e) < at and e.child_id > removed.child_id for e in installs)
    assert_one_of_each(p)


def test_responder_sends_on_the_new_child_only_once_the_old_sa_is_deleted() -> None:
    p = established()
    (old_i,) = p.i.engine.sas()
    p.i.reauthenticate(old_i.sa_id)
    p.run(until=p.now + 5)
    new_r = p.r.of(ChildSaInstalled)[-1]
    assert not new_r.spec.outbound_active  # make-before-break: inbound only at first
    (act,) = p.r.of(ChildSaOutboundActivated)
    assert act.child_id == new_r.child_id
    (removed,) = p.r.of(ChildSaRemoved)
    assert p.r.events.index(removed) < p.r.events.index(act)
    new_i = p.i.of(ChildSaInstalled)[-1]
    assert new_i.spec.outbound_active  # the initiator switches as soon as the responder has it
    assert new_i.spec.spi_out == new_r.spec.spi_in
    assert new_i.spec.encr_key_out == new_r.spec.encr_key_in
    assert_one_of_each(p)


def test_reauth_sends_no_initial_contact(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[bool, bool]] = []  # (reauthentication, INITIAL_CONTACT)
    original = IkeAuthTask.build_i

    def spy(self: IkeAuthTask, sa: IkeSa, req: list[Payload]) -> None:
        original(self, sa, req)
        ic = any(isinstance(x, Notify) and x.notify_type is NotifyType.INITIAL_CONTACT for x in req)
        sent.append((sa.reauth_of is not None, ic))

    monkeypatch.setattr(IkeAuthTask, "build_i", spy)
    p = established()
    (old,) = p.i.engine.sas()
    p.i.reauthenticate(old.sa_id)
    p.run(until=p.now + 5)
    assert sent == [(False, True), (True, False)]
    assert "INITIAL_CONTACT" not in p.r.of(IkeSaClosed)[0].reason


def test_changed_psk_fails_the_reauth_and_the_old_sa_survives_and_retries() -> None:
    p = established(i_reauth_time=100.0)
    (old_i,) = p.i.engine.sas()
    (old_r,) = p.r.engine.sas()
    (child_i,) = old_i.children.values()
    p.r.engine.ctx.creds = MemoryCredentials([SharedSecret(b"a different secret")])
    p.i.reauthenticate(old_i.sa_id)
    p.run(until=p.now + 5)
    failed_i = [e for e in p.i.of(IkeSaClosed) if e.sa_id != old_i.sa_id]
    assert len(failed_i) == 1 and "AUTHENTICATION_FAILED" in failed_i[0].reason
    assert old_i.state is old_r.state is IkeSaState.ESTABLISHED
    assert child_i.state is ChildSaState.INSTALLED and not p.i.of(ChildSaRemoved)
    assert p.i.engine.sas() == [old_i] and p.r.engine.sas() == [old_r]
    assert old_i.reauth_by is None and old_i.reauth_at is not None
    assert 10 <= old_i.reauth_at - p.now <= 30  # retried soon
    # with the right key again, the retry succeeds
    p.r.engine.ctx.creds = MemoryCredentials([SharedSecret(b"correct horse battery staple")])
    p.run(until=old_i.reauth_at + 5)
    assert p.i.of(IkeSaEstablished)[-1].reauth_of == old_i.sa_id
    sa_i, _ = assert_one_of_each(p)
    assert sa_i is not old_i


def test_all_children_are_recreated_the_first_in_ike_auth_the_rest_with_create_child_sa() -> None:
    extra = ChildConfig(
        "voice",
        local_ts=(TrafficSelector.from_network("10.11.0.0/16"),),
        remote_ts=(TrafficSelector.from_network("10.12.0.0/16"),),
        esp_proposals=esp("aes256gcm16"),
    )
    extra_r = replace(extra, local_ts=extra.remote_ts, remote_ts=extra.local_ts)
    p = pair()
    p.i_conn = replace(p.i_conn, children=(*p.i_conn.children, extra))
    p.i.engine.reconfigure(replace(p.i.engine.config, connections={p.i_conn.name: p.i_conn}))
    gw = p.r.engine.config.connections["gw"]
    p.r.engine.reconfigure(
        replace(p.r.engine.config, connections={"gw": replace(gw, children=(*gw.children, extra_r))})
    )
    p.initiate()
    p.run(until=5)
    (old,) = p.i.engine.sas()
    p.i.initiate_child(old.sa_id, "voice")
    p.run(until=p.now + 5)
    assert {c.name for c in old.children.values()} == {"net", "voice"}
    p.i.reauthenticate(old.sa_id)
    p.run(until=p.now + 5)
    sa_i, _ = assert_one_of_each(p, children=2)
    assert sa_i.sa_id != old.sa_id
    by_name = {c.name: c for c in sa_i.children.values()}
    assert by_name["voice"].local_ts == extra.local_ts and by_name["voice"].remote_ts == extra.remote_ts
    assert len(p.i.of(ChildSaRemoved)) == 2


def test_auth_lifetime_from_the_responder_makes_the_initiator_reauthenticate() -> None:
    p = established(r_reauth_time=200.0)  # the initiator has no reauth_time of its own
    (old,) = p.i.engine.sas()
    assert old.reauth_at is not None
    assert 0.8 * 200 <= old.reauth_at - old.established_at <= 0.9 * 200
    p.run(until=old.reauth_at + 5)
    assert p.i.of(IkeSaEstablished)[-1].reauth_of == old.sa_id
    assert_one_of_each(p)


def test_auth_lifetime_shortens_a_longer_reauth_time_of_our_own() -> None:
    p = established(i_reauth_time=1000.0, r_reauth_time=100.0)
    (sa,) = p.i.engine.sas()
    assert sa.reauth_at is not None and sa.reauth_at - sa.established_at <= 90.0


def test_reauth_is_for_the_original_initiator_only_and_one_at_a_time() -> None:
    p = established()
    (sa_r,) = p.r.engine.sas()
    with pytest.raises(UsageError, match="initiator"):
        p.r.engine.reauthenticate(sa_r.sa_id, p.now)
    (sa_i,) = p.i.engine.sas()
    p.i.reauthenticate(sa_i.sa_id)
    with pytest.raises(UsageError, match="already"):
        p.i.engine.reauthenticate(sa_i.sa_id, p.now)


def test_ike_rekey_does_not_restart_the_reauth_clock() -> None:
    p = established(i_reauth_time=300.0, i_rekey_time=100.0)
    (first,) = p.i.engine.sas()
    reauth_at = first.reauth_at
    assert reauth_at is not None
    p.run(until=first.rekey_at + 5 if first.rekey_at else 120)
    (rekeyed,) = p.i.engine.sas()
    assert rekeyed.sa_id != first.sa_id and rekeyed.reauth_at == reauth_at
    assert p.i.of(IkeSaEstablished)[-1].rekeyed_from == first.sa_id


def test_road_warrior_keeps_its_virtual_ip_across_eap_reauthentications(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    p = rw.client("alice", "alice-secret-1")
    p.initiate()
    p.run(until=5)
    (vip,) = p.i.of(VirtualIpAssigned)
    assert vip.addresses == (ip_address("10.3.0.1"),)
    for _ in range(2):
        (sa,) = p.i.engine.sas()
        p.i.reauthenticate(sa.sa_id)
        p.run(until=p.now + 5)
    assert len(p.i.of(IkeSaEstablished)) == 3
    assert [v.addresses for v in p.i.of(VirtualIpAssigned)] == [vip.addresses] * 3
    assert len([e for e in p.i.of(SaProgress) if e.phase == "EAP"]) == 3  # EAP ran each time
    sa_i, sa_r = assert_one_of_each(p)
    assert sa_i.virtual_ips == sa_r.virtual_ips == vip.addresses
    (child,) = sa_i.children.values()
    assert [str(t) for t in child.local_ts] == ["10.3.0.1/32"]
    assert rw.pools.in_use("rw") == {ip_address("10.3.0.1"): "alice"}
    # the lease moved with the SA: deleting it frees the address
    p.i.terminate(sa_i.sa_id)
    p.run(until=p.now + 5)
    assert rw.pools.in_use("rw") == {}


def test_road_warrior_with_a_wrong_password_on_reauth_keeps_the_old_sa(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    p = rw.client("alice", "alice-secret-1")
    p.initiate()
    p.run(until=5)
    (old,) = p.i.engine.sas()
    rw.users.set_password("alice", "changed-secret-9")  # the password changed meanwhile
    p.i.reauthenticate(old.sa_id)
    p.run(until=p.now + 5)
    assert any("EAP" in e.reason for e in p.i.of(IkeSaClosed) if e.sa_id != old.sa_id)
    assert old.state is IkeSaState.ESTABLISHED and p.i.engine.sas() == [old]
    assert rw.pools.in_use("rw") == {ip_address("10.3.0.1"): "alice"}


def test_responder_deletes_an_sa_that_is_not_reauthenticated_in_time() -> None:
    p = established(r_reauth_time=100.0)
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    assert sa_r.reauth_at == pytest.approx(sa_r.established_at + 100.0 + 30.0)
    sa_i.reauth_at = None  # an initiator that ignores AUTH_LIFETIME
    p.run(until=sa_r.established_at + 129.0)
    assert sa_r.state is IkeSaState.ESTABLISHED  # the grace period
    p.run(until=sa_r.established_at + 135.0)
    (closed_r,) = p.r.of(IkeSaClosed)
    assert "did not reauthenticate in time" in closed_r.reason
    assert p.i.of(IkeSaClosed)[0].reason == "deleted by peer"
    assert p.i.engine.sas() == [] and p.r.engine.sas() == []


def test_responder_keeps_an_sa_that_is_reauthenticated_in_time() -> None:
    p = established(r_reauth_time=100.0)
    p.run(until=400)
    assert len(p.i.of(IkeSaEstablished)) >= 4
    assert not any("in time" in e.reason for e in p.r.of(IkeSaClosed))
    assert_one_of_each(p)
