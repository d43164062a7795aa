"""Roles survive an IKE SA rekey started by the responder.

RFC 7296 §2.18 makes the initiator of a rekey the new IKE SA's initiator: after the gateway
rekeys, the client's new SA says ``initiator = False``. The client is still the client, though
(``original_initiator``, like strongSwan's COND_ORIGINAL_INITIATOR): it reauthenticates, it
moves the SA with MOBIKE, it is the one whose NAT mapping the gateway follows, and the
gateway enforces the reauthentication deadline instead of trying to reauthenticate itself.
"""

from __future__ import annotations

from ipaddress import ip_address

from pyipsec.ike.engine import Output
from pyipsec.ike.events import ChildSaAddressesChanged, IkeSaClosed, IkeSaEstablished
from pyipsec.ike.state import IkeSaState
from pyipsec.net.addr import Datagram, Endpoint
from tests.scenario.test_handshake_psk import pair
from tests.scenario.test_rekey import assert_one_consistent_child
from tests.support.engines import I_ADDR, EnginePair, Side


def rekeyed_by_the_gateway(**kw: object) -> EnginePair:
    p = pair(**kw)
    p.initiate()
    p.run(until=5)
    (sa_r,) = p.r.engine.sas()
    p.r.rekey_ike(sa_r.sa_id)
    p.run(until=p.now + 5)
    (client,) = p.i.engine.sas()
    (gateway,) = p.r.engine.sas()
    assert p.i.of(IkeSaEstablished)[-1].rekeyed_from is not None
    assert not client.initiator and gateway.initiator  # the wire roles swapped (§2.18)
    assert client.original_initiator and not gateway.original_initiator
    return p


def test_the_client_still_reauthenticates_and_the_gateway_does_not() -> None:
    p = rekeyed_by_the_gateway(i_reauth_time=100.0, r_reauth_time=100.0)
    (client,) = p.i.engine.sas()
    (gateway,) = p.r.engine.sas()
    assert client.reauth_at is not None and gateway.reauth_at is not None
    assert gateway.reauth_at > client.reauth_at  # the gateway's is the enforcement deadline
    p.run(until=client.reauth_at + 10)
    est_i = p.i.of(IkeSaEstablished)[-1]
    assert est_i.reauth_of == client.sa_id  # type: ignore[attr-defined]
    (new_i,) = p.i.engine.sas()
    (new_r,) = p.r.engine.sas()
    assert new_i.initiator and new_i.original_initiator and not new_r.original_initiator
    assert not [e for e in p.r.of(IkeSaClosed) if "reauthenticated in time" in e.reason]  # type: ignore[attr-defined]
    assert_one_consistent_child(p)


def test_the_client_still_moves_the_sa_with_mobike() -> None:
    p = rekeyed_by_the_gateway()
    (client,) = p.i.engine.sas()
    (gateway,) = p.r.engine.sas()
    assert client.peer_mobike and gateway.peer_mobike  # kept by the rekey
    p.i.update_sa_address(client.sa_id, Endpoint(ip_address("192.0.2.11"), 4500))
    p.run(until=p.now + 5)
    assert str(gateway.remote) == "192.0.2.11:4500"
    assert p.r.of(ChildSaAddressesChanged)
    assert gateway.state is IkeSaState.ESTABLISHED and client.state is IkeSaState.ESTABLISHED


def test_the_gateway_still_follows_the_clients_nat_rebinding() -> None:
    p = rekeyed_by_the_gateway(i_encap=True)
    (client,) = p.i.engine.sas()
    (gateway,) = p.r.engine.sas()
    assert gateway.nat_remote
    original = p.emit

    def rebinding_emit(src: Side, out: Output) -> None:
        if src is p.i:
            out = out._replace(
                datagrams=tuple(
                    Datagram(d.local.with_port(31337), d.remote, d.payload)
                    if str(d.local.ip) == I_ADDR
                    else d
                    for d in out.datagrams
                )
            )
        original(src, out)

    p.emit = rebinding_emit  # type: ignore[method-assign]
    p.i.check_liveness(client.sa_id)
    p.run(until=p.now + 5)
    assert gateway.remote.port == 31337
    assert p.r.of(ChildSaAddressesChanged)


def test_forced_encapsulation_survives_a_mobike_move() -> None:
    """With ``encap`` the client fakes a NAT in its NAT-D hashes; its UPDATE_SA_ADDRESSES must
    fake it again, or the gateway would see no NAT any more and stop encapsulating."""
    p = pair(i_encap=True)
    p.initiate()
    p.run(until=5)
    (client,) = p.i.engine.sas()
    (gateway,) = p.r.engine.sas()
    assert gateway.nat_remote and gateway.use_encap
    p.i.update_sa_address(client.sa_id, Endpoint(ip_address("192.0.2.11"), 4500))
    p.run(until=p.now + 5)
    assert str(gateway.remote) == "192.0.2.11:4500"
    assert gateway.nat_remote and gateway.use_encap and client.use_encap
    moves = p.r.of(ChildSaAddressesChanged)
    assert moves and all(m.encap for m in moves)  # type: ignore[attr-defined]
