"""MOBIKE (RFC 4555) and NAT rebinding: the IKE SA and its Child SAs follow the initiator."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address

import pytest

from pyipsec.errors import UsageError
from pyipsec.ike.engine import Output
from pyipsec.ike.events import ChildSaAddressesChanged, ChildSaInstalled, ChildSaRemoved, IkeSaEstablished
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.message import decode_message, encode_message
from tests.scenario.test_handshake_psk import pair
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, Side

NEW_ADDR = "192.0.2.11"


def established(**kw: object) -> EnginePair:
    p = pair(**kw)
    p.initiate()
    p.run(until=5)
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    return p


def test_mobike_moves_ike_and_child_sas_to_the_new_address() -> None:
    p = established()
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    assert sa_i.peer_mobike and sa_r.peer_mobike
    p._emit(p.i, p.i.engine.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500), p.now))
    p.run(until=p.now + 5)
    assert str(sa_r.remote) == f"{NEW_ADDR}:4500"
    assert str(sa_i.local) == f"{NEW_ADDR}:4500"
    (moved_i,) = p.i.of(ChildSaAddressesChanged)
    (moved_r,) = p.r.of(ChildSaAddressesChanged)
    assert str(moved_r.remote) == f"{NEW_ADDR}:4500" and str(moved_i.local) == f"{NEW_ADDR}:4500"
    assert moved_i.spi_in == p.i.of(ChildSaInstalled)[0].params.spi_in
    # the moved SA keeps working: a Child SA rekey and a delete go over the new path
    (child,) = sa_i.children
    p._emit(p.i, p.i.engine.rekey_child(sa_i.sa_id, child, p.now))
    p.run(until=p.now + 5)
    new = p.i.of(ChildSaInstalled)[-1]
    assert str(new.params.local) == f"{NEW_ADDR}:4500"
    assert [e.reason for e in p.r.of(ChildSaRemoved)] == ["rekeyed by peer"]


def test_without_mobike_the_initiator_cannot_move() -> None:
    p = pair(r_mobike=False)
    p.initiate()
    p.run(until=5)
    (sa_i,) = p.i.engine.sas()
    assert not sa_i.peer_mobike
    with pytest.raises(UsageError, match="no MOBIKE"):
        p.i.engine.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500), p.now)


def test_an_unauthenticated_packet_from_a_new_address_moves_nothing() -> None:
    p = established(i_encap=True)  # the responder sees a NAT in front of the initiator
    (sa_r,) = p.r.engine.sas()
    before = sa_r.remote
    # a forged INFORMATIONAL "from" another address: right SPIs, garbage ciphertext
    good = next(d for d in p.sent if d.payload[18] == 37 or d.payload[18] == 35)
    msg = decode_message(good.payload)
    forged = bytearray(encode_message(replace(msg, message_id=99)))
    forged[-1] ^= 0xFF
    spoof = Datagram(
        local=Endpoint(ip_address(R_ADDR), 4500),
        remote=Endpoint(ip_address("198.51.100.9"), 4500),
        payload=bytes(forged),
    )
    p._emit(p.r, p.r.engine.receive_datagram(spoof, p.now))
    assert sa_r.remote == before
    assert not p.r.of(ChildSaAddressesChanged)


def test_nat_rebinding_is_followed_on_the_next_authenticated_request() -> None:
    p = established(i_encap=True)
    (sa_r,) = p.r.engine.sas()
    assert sa_r.nat_remote
    # the NAT in front of the initiator picks a new port: rewrite the source port of what it sends
    original = p._emit

    def rebinding_emit(src: Side, out: Output) -> None:
        if src is p.i:
            rebound = tuple(
                Datagram(d.local.with_port(31337), d.remote, d.payload) if str(d.local.ip) == I_ADDR else d
                for d in out.datagrams
            )
            out = out._replace(datagrams=rebound)
        original(src, out)

    p._emit = rebinding_emit  # type: ignore[method-assign]
    (sa_i,) = p.i.engine.sas()
    p._emit(p.i, p.i.engine.check_liveness(sa_i.sa_id, p.now))
    p.run(until=p.now + 5)
    assert sa_r.remote.port == 31337
    (moved,) = p.r.of(ChildSaAddressesChanged)
    assert moved.remote.port == 31337 and moved.encap
