"""MOBIKE (RFC 4555) and NAT rebinding: the IKE SA and its Child SAs follow the initiator."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address

import pytest

from pyipsec.errors import UsageError
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.engine import Output
from pyipsec.ike.events import (
    ChildSaAddressesChanged,
    ChildSaInstalled,
    ChildSaRemoved,
    IkeSaClosed,
    IkeSaEstablished,
)
from pyipsec.ike.tasks import ike_mobike
from pyipsec.ike.tasks.informational import InformationalResponder
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.message import Message, decode_message, encode_message
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
    p.i.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500))
    p.run(until=p.now + 5)
    assert str(sa_r.remote) == f"{NEW_ADDR}:4500"
    assert str(sa_i.local) == f"{NEW_ADDR}:4500"
    (moved_i,) = p.i.of(ChildSaAddressesChanged)
    (moved_r,) = p.r.of(ChildSaAddressesChanged)
    assert str(moved_r.remote) == f"{NEW_ADDR}:4500" and str(moved_i.local) == f"{NEW_ADDR}:4500"
    assert moved_i.spi_in == p.i.of(ChildSaInstalled)[0].spec.spi_in
    # the moved SA keeps working: a Child SA rekey and a delete go over the new path
    (child,) = sa_i.children
    p.i.rekey_child(sa_i.sa_id, child)
    p.run(until=p.now + 5)
    new = p.i.of(ChildSaInstalled)[-1]
    assert str(new.spec.local) == f"{NEW_ADDR}:4500"
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
    p.emit(p.r, p.r.engine.receive_datagram(spoof, p.now))
    assert sa_r.remote == before
    assert not p.r.of(ChildSaAddressesChanged)


def test_nat_rebinding_is_followed_on_the_next_authenticated_request() -> None:
    p = established(i_encap=True)
    (sa_r,) = p.r.engine.sas()
    assert sa_r.nat_remote
    # the NAT in front of the initiator picks a new port: rewrite the source port of what it sends
    original = p.emit

    def rebinding_emit(src: Side, out: Output) -> None:
        if src is p.i:
            rebound = tuple(
                Datagram(d.local.with_port(31337), d.remote, d.payload) if str(d.local.ip) == I_ADDR else d
                for d in out.datagrams
            )
            out = out._replace(datagrams=rebound)
        original(src, out)

    p.emit = rebinding_emit  # type: ignore[method-assign]
    (sa_i,) = p.i.engine.sas()
    p.i.check_liveness(sa_i.sa_id)
    p.run(until=p.now + 5)
    assert sa_r.remote.port == 31337
    (moved,) = p.r.of(ChildSaAddressesChanged)
    assert moved.remote.port == 31337 and moved.encap


# -- COOKIE2, address lists, path fallback (RFC 4555 §3.4-§3.8) ---------------------------------

R_OTHER = "192.0.2.22"
I_V6 = "2001:db8::1"


class MultiHomedPair(EnginePair):
    """An EnginePair whose responder owns several addresses; ``down`` addresses reach nobody."""

    def __init__(self, inner: EnginePair, r_addrs: set[str]) -> None:  # adopt an existing pair
        self.__dict__.update(inner.__dict__)
        self.r_addrs = r_addrs
        self.down: set[str] = set()
        self.i.pair = self.r.pair = self

    def emit(self, src: Side, out: Output) -> None:
        src.events.extend(out.events)
        for d in out.datagrams:
            self.sent.append(d)
            if str(d.remote.ip) in self.down or str(d.local.ip) in self.down:
                continue
            (self.r if str(d.remote.ip) in self.r_addrs else self.i).inbox.append(d)


def spy_cookie2(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes | None]]:
    """Record (sent, echoed) COOKIE2 for every MOBIKE response the initiator checks."""

    seen: list[tuple[bytes, bytes | None]] = []
    real = ike_mobike.check_cookie2

    def spy(sa: object, resp: Message, sent: bytes, what: str) -> bool:
        echo = resp.notify(NotifyType.COOKIE2)
        seen.append((sent, echo.data if echo is not None else None))
        return real(sa, resp, sent, what)  # type: ignore[arg-type]

    monkeypatch.setattr(ike_mobike, "check_cookie2", spy)
    return seen


def with_addresses(i_addrs: list[str] | None, r_addrs: list[str] | None) -> EnginePair:
    p = pair()
    if i_addrs is not None:
        p.i.engine.set_local_addresses([ip_address(a) for a in i_addrs], 0.0)
    if r_addrs is not None:
        p.r.engine.set_local_addresses([ip_address(a) for a in r_addrs], 0.0)
    p.initiate()
    p.run(until=5)
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    return p


def test_update_carries_a_fresh_cookie2_that_the_responder_echoes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_cookie2(monkeypatch)
    p = established()
    (sa_i,) = p.i.engine.sas()
    for addr in (NEW_ADDR, "192.0.2.12"):
        p.i.update_sa_address(sa_i.sa_id, Endpoint(ip_address(addr), 4500))
        p.run(until=p.now + 5)
    assert len(seen) == 4  # per move: our update, then the responder's return routability check
    assert all(echo == sent for sent, echo in seen)
    assert all(8 <= len(sent) <= 64 for sent, _ in seen)
    assert len({sent for sent, _ in seen}) == 4  # fresh every time
    assert len(p.i.of(ChildSaAddressesChanged)) == 2


def test_a_response_with_a_wrong_cookie2_is_not_accepted(monkeypatch: pytest.MonkeyPatch) -> None:

    p = established()
    (sa_i,) = p.i.engine.sas()
    real = InformationalResponder.build_r

    def bad_echo(self: InformationalResponder, sa: object, resp: list[object]) -> None:
        if self.cookie2 is not None:
            self.cookie2 = bytes(len(self.cookie2))  # echo something else
        real(self, sa, resp)  # type: ignore[arg-type]

    monkeypatch.setattr(InformationalResponder, "build_r", bad_echo)
    p.i.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500))
    p.run(until=p.now + 5)
    assert not p.i.of(ChildSaAddressesChanged)  # the initiator did not move its Child SAs
    (closed,) = p.i.of(IkeSaClosed)
    assert "COOKIE2" in closed.reason


def test_a_response_without_cookie2_is_not_accepted(monkeypatch: pytest.MonkeyPatch) -> None:

    p = established()
    (sa_i,) = p.i.engine.sas()
    real = InformationalResponder.build_r

    def no_echo(self: InformationalResponder, sa: object, resp: list[object]) -> None:
        self.cookie2 = None
        real(self, sa, resp)  # type: ignore[arg-type]

    monkeypatch.setattr(InformationalResponder, "build_r", no_echo)
    p.i.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500))
    p.run(until=p.now + 5)
    assert not p.i.of(ChildSaAddressesChanged)
    assert "COOKIE2" in p.i.of(IkeSaClosed)[0].reason


def test_additional_address_lists_are_exchanged_in_ike_auth() -> None:
    p = with_addresses([I_ADDR, NEW_ADDR, I_V6], [R_ADDR, R_OTHER])
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    assert sa_r.peer_addresses == (ip_address(NEW_ADDR), ip_address(I_V6))  # not the one in use
    assert sa_i.peer_addresses == (ip_address(R_OTHER),)
    assert sa_i.peer_addresses_known and sa_r.peer_addresses_known


def test_no_additional_addresses() -> None:
    p = with_addresses([I_ADDR], [R_ADDR])
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    assert sa_i.peer_addresses_known and sa_i.peer_addresses == ()
    assert sa_r.peer_addresses_known and sa_r.peer_addresses == ()


def test_without_known_addresses_no_list_is_sent() -> None:
    p = established()
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    assert not sa_i.peer_addresses_known and not sa_r.peer_addresses_known


def test_a_changed_address_set_is_sent_in_an_informational() -> None:
    p = with_addresses([I_ADDR], [R_ADDR])
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    p.r.set_local_addresses([ip_address(R_ADDR), ip_address(R_OTHER)])
    p.run(until=p.now + 5)
    assert sa_i.peer_addresses == (ip_address(R_OTHER),)
    p.i.set_local_addresses([ip_address(I_ADDR), ip_address(I_V6)])
    p.run(until=p.now + 5)
    assert sa_r.peer_addresses == (ip_address(I_V6),)
    # the same set again: nothing to tell
    before = len(p.sent)
    p.r.set_local_addresses([ip_address(R_ADDR), ip_address(R_OTHER)])
    assert len(p.sent) == before
    # an address gone: NO_ADDITIONAL_ADDRESSES empties the list
    p.r.set_local_addresses([ip_address(R_ADDR)])
    p.run(until=p.now + 5)
    assert sa_i.peer_addresses == () and sa_i.state.name == "ESTABLISHED"


def test_the_initiator_falls_back_to_an_additional_address_of_the_peer() -> None:
    p = MultiHomedPair(with_addresses([I_ADDR], [R_ADDR, R_OTHER]), {R_ADDR, R_OTHER})
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    p.down = {R_ADDR, I_ADDR}  # our old uplink and the peer's current address are unreachable
    p.i.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500))
    p.run(until=p.now + 60)
    assert str(sa_i.remote) == f"{R_OTHER}:4500" and str(sa_i.local) == f"{NEW_ADDR}:4500"
    assert str(sa_r.local) == f"{R_OTHER}:4500" and str(sa_r.remote) == f"{NEW_ADDR}:4500"
    (moved_i,) = p.i.of(ChildSaAddressesChanged)
    assert str(moved_i.remote) == f"{R_OTHER}:4500"
    # the responder checked that the new address answers (return routability)
    assert ip_address(NEW_ADDR) in sa_r.verified_remote
    assert sa_i.state.name == sa_r.state.name == "ESTABLISHED"
    # and the SA keeps working on the new path
    p.i.check_liveness(sa_i.sa_id)
    p.run(until=p.now + 10)
    assert sa_i.state.name == "ESTABLISHED"


def test_the_responder_checks_return_routability_of_a_new_address() -> None:
    p = established()
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    assert ip_address(NEW_ADDR) not in sa_r.verified_remote
    sent_before = len(p.sent)
    p.i.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500))
    p.run(until=p.now + 5)
    assert ip_address(NEW_ADDR) in sa_r.verified_remote
    # update request + response, check request + response
    informational = [d for d in p.sent[sent_before:] if d.payload[18] == 37]
    assert len(informational) == 4
    assert [str(d.remote.ip) for d in informational if str(d.local.ip) == R_ADDR] == [NEW_ADDR, NEW_ADDR]


def test_a_replayed_update_from_another_address_moves_nothing() -> None:
    p = established()
    (sa_i,) = p.i.engine.sas()
    (sa_r,) = p.r.engine.sas()
    p.i.update_sa_address(sa_i.sa_id, Endpoint(ip_address(NEW_ADDR), 4500))
    p.run(until=p.now + 5)
    update = next(d for d in p.sent if str(d.local.ip) == NEW_ADDR and d.payload[18] == 37)
    events_before = len(p.r.events)
    replay = Datagram(
        local=Endpoint(ip_address(R_ADDR), 4500),
        remote=Endpoint(ip_address("198.51.100.9"), 4500),
        payload=update.payload,
    )
    p.emit(p.r, p.r.engine.receive_datagram(replay, p.now))
    assert str(sa_r.remote) == f"{NEW_ADDR}:4500"
    assert not [e for e in p.r.events[events_before:] if isinstance(e, ChildSaAddressesChanged)]
