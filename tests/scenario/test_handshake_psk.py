"""Full IKEv2 handshakes between two engines over the simulated link (PSK)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pyipsec.childsa import EspMode
from pyipsec.config.ids import parse_identity
from pyipsec.crypto.rand import SeededRandom
from pyipsec.ike.config import Identity
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.events import ChildSaFailed, ChildSaInstalled, ChildSaRemoved, IkeSaClosed, IkeSaEstablished
from pyipsec.ike.manager import ERROR_GRACE, ERROR_TRANSMISSIONS
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.ike.state import IkeSaState
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, Link, psk_connection


def pair(**kw: object) -> EnginePair:
    i_kw = {k[2:]: v for k, v in kw.items() if k.startswith("i_")}
    r_kw = {k[2:]: v for k, v in kw.items() if k.startswith("r_")}
    rest = {k: v for k, v in kw.items() if not k.startswith(("i_", "r_"))}
    i = psk_connection(
        "office", local_id="moon.test", remote_id="sun.test", local_addr=I_ADDR, remote_addr=R_ADDR, **i_kw
    )
    r = psk_connection(
        "gw",
        local_id="sun.test",
        remote_id="moon.test",
        local_addr=R_ADDR,
        remote_addr=I_ADDR,
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
        **r_kw,
    )
    return EnginePair(i, [r], **rest)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ike", "esp"),
    [
        ("aes256gcm16-prfsha256-ecp256", "aes256gcm16"),
        ("aes256-sha256-modp2048", "aes256-sha256"),
        ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
        ("aes128-sha1-modp1024", "aes128-sha1"),
        ("aes256gcm16-prfsha384-ecp384", "aes128gcm16"),
    ],
)
def test_psk_handshake_establishes_ike_and_child(ike: str, esp: str) -> None:
    p = pair(i_proposals=ike, r_proposals=ike, i_esp_proposals=esp, r_esp_proposals=esp)
    p.initiate()
    p.run()
    (ei,) = p.i.of(IkeSaEstablished)
    (er,) = p.r.of(IkeSaEstablished)
    assert (ei.spi_i, ei.spi_r) == (er.spi_i, er.spi_r)
    assert format_chosen(ei.proposal) == format_chosen(er.proposal) == ike
    assert ei.remote_id == "sun.test" and er.remote_id == "moon.test"
    (ci,) = p.i.of(ChildSaInstalled)
    (cr,) = p.r.of(ChildSaInstalled)
    assert ci.spec.spi_out == cr.spec.spi_in and ci.spec.spi_in == cr.spec.spi_out
    assert ci.spec.encr_key_out == cr.spec.encr_key_in
    assert ci.spec.integ_key_out == cr.spec.integ_key_in
    assert ci.spec.encr_key_in == cr.spec.encr_key_out
    assert [str(t) for t in ci.spec.local_ts] == ["10.1.0.0/16"]
    assert [str(t) for t in cr.spec.local_ts] == ["10.2.0.0/16"]
    assert not ci.spec.encap  # no NAT between them


def test_delete_from_initiator_removes_both_sides() -> None:
    p = pair()
    p.initiate()
    p.run()
    (sa,) = p.i.engine.sas()
    out = p.i.engine.terminate(sa.sa_id, p.now)
    p.emit(p.i, out)
    p.run()
    assert p.i.of(IkeSaClosed)[0].reason == "deleted locally"
    assert p.r.of(IkeSaClosed)[0].reason == "deleted by peer"
    assert len(p.i.of(ChildSaRemoved)) == len(p.r.of(ChildSaRemoved)) == 1
    assert p.i.engine.sas() == [] and p.r.engine.sas() == []


def test_delete_from_responder_removes_both_sides() -> None:
    p = pair()
    p.initiate()
    p.run()
    (sa,) = p.r.engine.sas()
    p.r.terminate(sa.sa_id)
    p.run()
    assert p.i.engine.sas() == [] and p.r.engine.sas() == []
    assert p.i.of(IkeSaClosed)[0].reason == "deleted by peer"


def test_wrong_psk_fails_on_both_sides_with_authentication_failed() -> None:
    p = pair()
    p.r.engine.ctx.creds = MemoryCredentials([SharedSecret(b"wrong")])
    p.initiate()
    p.run()
    (ri,) = p.r.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in ri.reason and "wrong PSK" in ri.reason
    (ii,) = p.i.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in ii.reason
    assert not p.i.of(IkeSaEstablished) and not p.r.of(IkeSaEstablished)
    assert p.i.engine.sas() == [] and p.r.engine.sas() == []


def test_no_common_proposal_names_both_sides() -> None:
    p = pair(i_proposals="aes128-sha256-modp2048", r_proposals="aes256gcm16-prfsha384-ecp384")
    p.initiate()
    p.run()
    # the answer is unauthenticated (RFC 7296 §2.21.1): the initiator believes it once it
    # answered a retransmission too, and the responder, keeping no state, refuses each copy
    ri = p.r.of(IkeSaClosed)
    assert len(ri) == len([d for d in p.sent if str(d.remote.ip) == R_ADDR]) == ERROR_TRANSMISSIONS
    assert all("NO_PROPOSAL_CHOSEN" in e.reason for e in ri)
    assert "aes128-sha256-modp2048" in ri[0].reason and "aes256gcm16-prfsha384-ecp384" in ri[0].reason
    (ii,) = p.i.of(IkeSaClosed)
    assert "NO_PROPOSAL_CHOSEN" in ii.reason and "unauthenticated" in ii.reason
    # after the first retransmission (4 s, jittered) and the grace for a valid answer
    assert p.now <= 4.0 * 1.1 + ERROR_GRACE + 0.1
    assert p.i.engine.sas() == [] and p.r.engine.sas() == []


def test_invalid_ke_round_trip_uses_the_responders_group() -> None:
    p = pair(i_proposals="aes256gcm16-prfsha256-x25519-ecp256", r_proposals="aes256gcm16-prfsha256-ecp256")
    p.initiate()
    p.run()
    (ei,) = p.i.of(IkeSaEstablished)
    assert format_chosen(ei.proposal).endswith("ecp256")
    # request, INVALID_KE answer, request again, response, then IKE_AUTH
    inits = [d for d in p.sent if d.payload[18] == 34]
    assert len(inits) == 4


def test_child_ts_mismatch_keeps_ike_sa_and_reports_ts_unacceptable() -> None:
    p = pair(i_remote_ts="10.9.0.0/16")
    p.initiate()
    p.run()
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    assert not p.i.of(ChildSaInstalled)
    (f,) = p.i.of(ChildSaFailed)
    assert "TS_UNACCEPTABLE" in f.reason
    assert all(s.state is IkeSaState.ESTABLISHED for s in p.i.engine.sas() + p.r.engine.sas())


def test_handshake_survives_loss_duplication_and_reordering() -> None:
    p = pair(link=Link(loss=0.3, duplicate=0.2, reorder=0.2, seed=7))
    p.initiate()
    p.run()
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    assert p.i.of(ChildSaInstalled) and p.r.of(ChildSaInstalled)


def test_retransmission_exhaustion_closes_the_sa() -> None:
    p = pair(link=Link(loss=1.0))
    p.initiate()
    p.run(until=1000)
    (closed,) = p.i.of(IkeSaClosed)
    assert "peer not responding" in closed.reason
    # 1 + 5 retransmissions with 4 s * 1.8^n back-off: ~ 165 s in total
    assert 100 < p.now < 200
    assert len([d for d in p.sent if str(d.remote.ip) == R_ADDR]) == 6


def test_cookie_demanded_and_answered_when_half_open_threshold_reached() -> None:
    p = pair(responder_settings={"cookie_threshold": 0})
    p.initiate()
    p.run()
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    assert p.r.engine.stats.cookies_sent == 1
    inits = [d for d in p.sent if d.payload[18] == 34]
    assert len(inits) == 4  # request, COOKIE, request with COOKIE, response


def test_cookie_without_state_on_the_responder() -> None:
    p = pair(responder_settings={"cookie_threshold": 0})
    p.initiate()
    p.deliver()  # request in, COOKIE out
    assert p.r.engine.sas() == []


def test_retransmitted_request_is_answered_from_cache_without_reprocessing() -> None:
    p = pair(link=Link(duplicate=1.0))
    p.initiate()
    p.run()
    assert len(p.r.of(IkeSaEstablished)) == 1 and len(p.r.of(ChildSaInstalled)) == 1
    assert len(p.i.of(IkeSaEstablished)) == 1


def test_half_open_sa_expires_on_the_responder() -> None:
    # the initiator's IKE_AUTH never arrives
    p = pair(link=Link(drop_if=lambda d: d.payload[18] == 35))
    p.initiate()
    p.run(until=40)
    assert p.r.engine.stats.half_open_expired == 1
    assert p.r.engine.sas() == []


def test_forced_encapsulation_moves_both_to_nat_t_port() -> None:
    p = pair(i_encap=True)
    p.initiate()
    p.run()
    (ci,) = p.i.of(ChildSaInstalled)
    (cr,) = p.r.of(ChildSaInstalled)
    assert ci.spec.encap and cr.spec.encap
    assert ci.spec.local.port == ci.spec.remote.port == 4500
    assert cr.spec.local.port == cr.spec.remote.port == 4500
    auth = [d for d in p.sent if d.payload[18] == 35]
    assert all(d.local.port == 4500 and d.remote.port == 4500 for d in auth)


def _established_pair(**kw: object) -> EnginePair:
    p = pair(**kw)
    p.initiate()
    p.run()
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    return p


@pytest.mark.parametrize("esp", ["aes256gcm16", "aes256gcm16-ecp256", "aes128-sha256-modp2048"])
def test_create_child_sa_adds_a_second_child(esp: str) -> None:
    """CREATE_CHILD_SA with and without PFS (a KE payload when the ESP proposal has a group)."""
    p = _established_pair(i_esp_proposals=esp, r_esp_proposals=esp)
    (sa,) = p.i.engine.sas()
    p.i.initiate_child(sa.sa_id, "net")
    p.run()
    ci, cr = p.i.of(ChildSaInstalled), p.r.of(ChildSaInstalled)
    assert len(ci) == len(cr) == 2
    second_i, second_r = ci[1].spec, cr[1].spec
    assert second_i.spi_out == second_r.spi_in and second_i.encr_key_out == second_r.encr_key_in
    assert second_i.encr_key_out != ci[0].spec.encr_key_out  # fresh nonces, fresh keys
    kes = [d for d in p.sent if d.payload[18] == 36]
    assert len(kes) == 2  # request and response
    with_ke = "modp" in esp or "ecp" in esp
    assert (
        "ecp256" in format_chosen(ci[1].proposal) or "modp2048" in format_chosen(ci[1].proposal)
    ) is with_ke


def test_child_delete_from_either_side() -> None:
    p = _established_pair()
    (sa,) = p.i.engine.sas()
    (child_id,) = sa.children
    p.i.terminate_child(sa.sa_id, child_id)
    p.run()
    assert len(p.i.of(ChildSaRemoved)) == len(p.r.of(ChildSaRemoved)) == 1
    assert p.i.of(ChildSaRemoved)[0].spi_in == p.r.of(ChildSaRemoved)[0].spi_out
    assert all(not s.children for s in p.i.engine.sas() + p.r.engine.sas())
    assert all(s.state is IkeSaState.ESTABLISHED for s in p.i.engine.sas() + p.r.engine.sas())


def test_liveness_check_is_answered_and_detects_a_dead_peer() -> None:
    p = _established_pair()
    (sa,) = p.i.engine.sas()
    p.i.check_liveness(sa.sa_id)
    p.run()
    assert not p.i.of(IkeSaClosed)
    p.link.loss = 1.0
    p.i.check_liveness(sa.sa_id)
    p.run(until=p.now + 400)
    (closed,) = p.i.of(IkeSaClosed)
    assert "peer not responding" in closed.reason
    assert len(p.i.of(ChildSaRemoved)) == 1


def test_transport_mode_negotiated_with_use_transport_mode() -> None:
    p = pair()
    for side, name in ((p.i, "office"), (p.r, "gw")):
        conn = side.engine.config.connections[name]
        child = replace(conn.children[0], mode=EspMode.TRANSPORT)
        side.engine.config.connections[name] = replace(conn, children=(child,))  # type: ignore[index]
    p.initiate()
    p.run()
    (ci,) = p.i.of(ChildSaInstalled)
    (cr,) = p.r.of(ChildSaInstalled)
    assert ci.spec.mode is cr.spec.mode is EspMode.TRANSPORT


def test_no_proposal_chosen_names_the_nearest_match() -> None:
    p = pair(
        i_proposals="aes256-sha256-ecp256", r_proposals="aes256-sha256-modp2048,aes128gcm16-prfsha384-x25519"
    )
    p.initiate()
    p.run()
    ri = p.r.of(IkeSaClosed)[0]
    assert (
        "closest: ours aes256-sha256-modp2048 vs peer aes256-sha256-ecp256 (no common key exchange)"
        in ri.reason
    )


def test_initial_contact_clears_the_stale_sas_of_a_restarted_peer() -> None:
    p = _established_pair()
    (old,) = p.r.engine.sas()
    # the initiator "restarts": a fresh engine with the same configuration connects again
    fresh = EnginePair(p.i_conn, [])
    p.i.engine = fresh.i.engine
    p.i.engine.ctx.rng = SeededRandom(99)
    p.initiate()
    p.run()
    closed = [e for e in p.r.of(IkeSaClosed) if e.sa_id == old.sa_id]
    assert closed and "INITIAL_CONTACT" in closed[0].reason
    (current,) = p.r.engine.sas()
    assert current.sa_id != old.sa_id


@pytest.mark.parametrize(
    ("i_id", "r_id"),
    [
        ("192.0.2.1", "192.0.2.2"),
        ("2001:db8::1", "2001:db8::2"),
        ("moon@pyipsec.test", "sun@pyipsec.test"),
        ("@#0102030405", "@#a0b0c0"),
        ("C=CH, O=pyipsec, CN=moon", "C=CH, O=pyipsec, CN=sun"),
    ],
)
def test_every_identity_type_is_sent_and_matched(i_id: str, r_id: str) -> None:
    def ident(text: str) -> Identity:
        parsed = parse_identity(text)
        return Identity(parsed.id_type, parsed.data)

    p = pair()
    for side, name, local, remote in ((p.i, "office", i_id, r_id), (p.r, "gw", r_id, i_id)):
        conn = side.engine.config.connections[name]
        side.engine.config.connections[name] = replace(  # type: ignore[index]
            conn,
            local=replace(conn.local, identity=ident(local)),
            remote=replace(conn.remote, identity=ident(remote)),
        )
    p.initiate()
    p.run()
    (ei,) = p.i.of(IkeSaEstablished)
    (er,) = p.r.of(IkeSaEstablished)
    assert ident(ei.remote_id) == ident(r_id) if "@#" not in r_id else ei.remote_id == "#" + r_id[2:]
    assert er.remote_id == str(ident(i_id))


def test_responder_rejects_an_unknown_identity_naming_what_is_configured() -> None:
    p = pair()
    office = p.i.engine.config.connections["office"]
    p.i.engine.config.connections["office"] = replace(  # type: ignore[index]
        office, local=replace(office.local, identity=Identity.fqdn("mars.test"))
    )
    p.initiate()
    p.run()
    (ri,) = p.r.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in ri.reason
    assert "no connection for peer identity mars.test" in ri.reason and "moon.test" in ri.reason
