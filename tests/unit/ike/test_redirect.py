"""The engine's side of RFC 5685 (``ike.redirect``): forged and genuine REDIRECT answers to our
IKE_SA_INIT, the loop limiter, which gateways an unauthenticated redirect may name."""

from __future__ import annotations

import pytest

from pyipsec.iana.ikev2 import ExchangeType, NotifyType
from pyipsec.ike.events import CloseCause, IkeSaClosed, IkeSaEstablished, IkeSaRedirected
from pyipsec.ike.redirect import REDIRECT_LIMIT, REDIRECT_PERIOD, RedirectLimiter, redirect_allowed
from pyipsec.net.addr import Datagram
from pyipsec.wire.message import Message, decode_message, encode_message
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from tests.scenario.test_handshake_psk import pair
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, endpoint, psk_connection

OTHER = "192.0.2.77"


def _take_request(p: EnginePair) -> Datagram:
    (d,) = p.r.inbox
    p.r.inbox.clear()
    return d


def _answer(p: EnginePair, request: Datagram, notify: Notify) -> tuple[Datagram, ...]:
    req = decode_message(request.payload)
    forged = Message(
        req.spi_i,
        bytes(8),
        exchange_type=ExchangeType.IKE_SA_INIT,
        message_id=0,
        is_initiator=False,
        is_response=True,
        payloads=(notify,),
    )
    d = Datagram(endpoint(I_ADDR), endpoint(R_ADDR), encode_message(forged))
    out = p.i.engine.receive_datagram(d, p.now)
    p.i.events.extend(out.events)
    return out.datagrams


def _nonce(request: Datagram) -> bytes:
    nonce = decode_message(request.payload).find(Nonce)
    assert nonce is not None
    return nonce.data


def test_the_request_announces_redirect_support_unless_the_connection_opts_out() -> None:
    p = pair()
    p.initiate()
    assert decode_message(_take_request(p).payload).notify(NotifyType.REDIRECT_SUPPORTED) is not None
    q = pair(i_redirect=False)
    q.initiate()
    assert decode_message(_take_request(q).payload).notify(NotifyType.REDIRECT_SUPPORTED) is None


def test_a_redirect_without_our_nonce_is_ignored_and_the_setup_goes_on() -> None:
    p = pair(i_redirect_allow=(OTHER,))
    p.initiate()
    req = _take_request(p)
    assert _answer(p, req, Notify.redirect(OTHER, b"\x00" * 32)) == ()
    assert p.i.of(IkeSaRedirected) == [] and p.i.of(IkeSaClosed) == []
    p.r.inbox.append(req)  # the genuine responder answers after all
    p.run()
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)


def test_a_redirect_to_an_untrusted_gateway_is_ignored_even_with_our_nonce() -> None:
    p = pair()
    p.initiate()
    req = _take_request(p)
    assert _answer(p, req, Notify.redirect(OTHER, _nonce(req))) == ()
    assert p.i.of(IkeSaRedirected) == [] and p.i.of(IkeSaClosed) == []
    p.r.inbox.append(req)
    p.run()
    assert p.i.of(IkeSaEstablished)


def test_a_trusted_redirect_with_our_nonce_closes_the_sa_as_redirected() -> None:
    p = pair(i_redirect_allow=(OTHER,))
    sa_id = p.initiate()
    req = _take_request(p)
    assert _answer(p, req, Notify.redirect(OTHER, _nonce(req))) == ()
    (moved,) = p.i.of(IkeSaRedirected)
    assert moved == IkeSaRedirected(sa_id, "office", OTHER, R_ADDR, False, ())
    (closed,) = p.i.of(IkeSaClosed)
    assert closed.cause is CloseCause.REDIRECTED and OTHER in closed.reason
    assert p.i.engine.sa(sa_id) is None


def test_the_responder_redirects_only_peers_that_announced_support() -> None:
    p = pair(i_redirect_allow=(OTHER,))
    p.r.engine.ctx.redirect_init = lambda local, remote: OTHER
    sa_id = p.initiate()
    p.run()
    (moved,) = p.i.of(IkeSaRedirected)
    assert moved.sa_id == sa_id and moved.gateway == OTHER
    assert p.r.engine.sas() == []  # the gateway keeps nothing of a redirected client
    q = pair(i_redirect=False)
    q.r.engine.ctx.redirect_init = lambda local, remote: OTHER
    q.initiate()
    q.run()
    assert q.i.of(IkeSaEstablished) and q.r.of(IkeSaEstablished)


def test_redirected_from_replaces_redirect_supported_on_the_followed_request() -> None:
    i = psk_connection(
        "office", local_id="moon.test", remote_id="sun.test", local_addr=I_ADDR, remote_addr=R_ADDR
    )
    r = psk_connection(
        "gw",
        local_id="sun.test",
        remote_id="moon.test",
        local_addr=R_ADDR,
        remote_addr=I_ADDR,
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
    )
    p = EnginePair(i, [r])
    _sa_id, out = p.i.engine.initiate("office", p.now, redirected_from="192.0.2.9")
    msg = decode_message(out.datagrams[0].payload)
    came = msg.notify(NotifyType.REDIRECTED_FROM)
    assert came is not None and str(came.redirect_data().gateway) == "192.0.2.9"
    assert msg.notify(NotifyType.REDIRECT_SUPPORTED) is None


def test_the_limiter_allows_five_redirects_a_minute() -> None:
    lim = RedirectLimiter()
    assert [lim.allow("a", t) for t in range(REDIRECT_LIMIT + 1)] == [True] * REDIRECT_LIMIT + [False]
    assert lim.allow("b", 5.0)  # per connection
    assert not lim.allow("a", REDIRECT_PERIOD - 0.5)
    assert lim.allow("a", REDIRECT_PERIOD + 0.5)  # the first two have aged out
    assert lim.allow("a", REDIRECT_PERIOD + 1.5)
    assert not lim.allow("a", REDIRECT_PERIOD + 1.6)


@pytest.mark.parametrize(
    ("gateway", "ok"),
    [
        ("192.0.2.2", True),  # remote_addrs
        ("2001:db8::0:1", True),  # redirect_allow, written differently
        ("VPN2.Example.ORG.", True),  # a name, case and trailing dot aside
        ("192.0.2.99", False),
        ("vpn3.example.org", False),
    ],
)
def test_which_gateways_an_unauthenticated_redirect_may_name(gateway: str, ok: bool) -> None:
    conn = psk_connection(
        "c",
        local_id="a.test",
        remote_id="b.test",
        local_addr=I_ADDR,
        remote_addr="192.0.2.2",
        redirect_allow=("2001:db8::1", "vpn2.example.org"),
    )
    assert redirect_allowed(conn, gateway) is ok
