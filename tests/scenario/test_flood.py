"""Cookie-answering IKE_SA_INIT floods against a responder engine (issue 16).

RELIABILITY.md B1 (a spoofed flood from 5,000 addresses, B1's 10,000 halved for CI time:
half-open SAs stay at the cookie threshold, everything else gets a COOKIE, a legitimate client
connects, cookies are off again once the half-open SAs are gone), B2 (one attacker address
that echoes cookies: at most ``block_threshold`` half-open SAs from it, the rest dropped with a
rate-limited log line, a legitimate client from elsewhere still connects) and B4
(``init_limit_half_open``: never more half-open SAs; at the cap the oldest that has not begun
IKE_AUTH makes room, so a client connects during a cookie-answering flood, while an
established SA keeps working; every half-open SA goes at its timeout and the count returns to
0), at the engine level with a virtual clock; the daemon-level flood is bench/bench_flood.py.
Also §7's per-address cookie threshold (``cookie_threshold_ip``).
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

import pytest

from pyipsec.ike.events import ChildSaInstalled, IkeSaEstablished
from pyipsec.ike.state import IkeSaState
from tests.support.engines import R_ADDR, EnginePair, endpoint
from tests.support.flood import InitFlood, flood_pair, source


def _pair(**settings: object) -> EnginePair:
    return flood_pair(**settings)


def test_b2_one_cookie_answering_address_keeps_at_most_block_threshold_half_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = _pair()  # defaults: cookie_threshold_ip 3, block_threshold 5
    engine = p.r.engine
    attacker = source(1)
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    caplog.set_level(logging.WARNING, logger="pyipsec.ike")
    for k in range(200):
        flood.send(engine, attacker, p.now + k * 0.001)  # 1,000/s for 0.2 s
        assert engine.half_open_from(attacker) <= 5
    assert engine.half_open_from(attacker) == engine.half_open == 5
    assert flood.answered == 5 and flood.unanswered == 195
    assert flood.cookies == 197  # from the 4th request on, a COOKIE first (cookie_threshold_ip)
    assert engine.stats.init_blocked == 195
    blocked = [r for r in caplog.records if "block_threshold" in r.getMessage()]
    assert len(blocked) == 1  # one line per second at most
    # a legitimate client from another address connects during the flood
    p.initiate()
    p.run(until=5.0)
    assert p.i.of(IkeSaEstablished) and p.i.of(ChildSaInstalled)


def test_b2_block_log_line_comes_again_after_a_second(caplog: pytest.LogCaptureFixture) -> None:
    p = _pair(block_threshold=1, cookie_threshold=100, cookie_threshold_ip=100)
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    caplog.set_level(logging.WARNING, logger="pyipsec.ike")
    for now in (0.0, 0.1, 0.5, 0.9, 1.1, 1.5, 2.2):
        flood.send(p.r.engine, source(1), now)
    lines = [r for r in caplog.records if "block_threshold" in r.getMessage()]
    assert p.r.engine.stats.init_blocked == 6
    assert len(lines) == 3  # at 0.1, 1.1 and 2.2


def test_per_address_cookie_threshold_demands_cookies_below_the_global_one() -> None:
    p = _pair(cookie_threshold=100, cookie_threshold_ip=2)
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    for _ in range(2):
        flood.send(p.r.engine, source(7), 0.0)
    assert flood.cookies == 0
    flood.send(p.r.engine, source(7), 0.0)
    assert flood.cookies == 1 and flood.answered == 3  # echoed: accepted (below block_threshold)
    flood.send(p.r.engine, source(8), 0.0)
    assert flood.cookies == 1  # another address: no cookie


def test_b4_at_the_global_cap_the_oldest_half_open_sa_makes_room_and_established_sas_keep_working() -> None:
    p = _pair(init_limit_half_open=100, half_open_timeout=30.0)
    engine = p.r.engine
    sa_id = p.initiate()
    p.run(until=2.0)
    (child,) = p.i.of(ChildSaInstalled)
    start = p.now
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    for k in range(250):  # 250 addresses, each below the per-address limits
        flood.send(engine, source(k), start)
    # never more than the cap; the oldest 150 made room for the newest (RFC 8019 §4)
    assert engine.half_open == 100 and flood.answered == 250
    assert engine.stats.half_open_evicted == 150 and engine.stats.init_over_limit == 0
    assert engine.half_open_from(source(0)) == 0 and engine.half_open_from(source(249)) == 1
    # the established SA works: DPD is answered, its Child SA rekeys
    p.i.events.clear()
    p.i.check_liveness(sa_id)
    p.i.rekey_child(sa_id, child.child_id)
    p.run(until=start + 5.0)
    assert p.i.of(ChildSaInstalled)
    assert p.i.engine.sa(sa_id) is not None and p.i.engine.sa(sa_id).state is IkeSaState.ESTABLISHED  # type: ignore[union-attr]
    # every half-open SA goes at its timeout (not before), and the count returns to 0
    engine.handle_timer(start + 29.5)
    assert engine.half_open == 100
    engine.handle_timer(start + 30.0)
    assert engine.half_open == 0 and engine.stats.half_open_expired == 100
    assert engine.sa_count == 1 and engine.half_open_from(IPv4Address("10.99.0.1")) == 0


def test_b4_a_client_connects_while_a_cookie_answering_flood_holds_the_cap() -> None:
    """Before eviction, a flood that echoes cookies from many addresses kept the cap full for
    ``half_open_timeout`` and every legitimate IKE_SA_INIT was dropped (the flood benchmark's
    client needed 15-30 s or failed). Now the client's request evicts the oldest flood SA,
    and its IKE_AUTH comes long before the flood renews the cap."""
    p = _pair(init_limit_half_open=100, half_open_timeout=30.0)
    engine = p.r.engine
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    for k in range(300):
        flood.send(engine, source(k), k * 0.002)
    assert engine.half_open == 100
    p.now = 1.0
    p.initiate()
    n = 300
    while not p.i.of(IkeSaEstablished) and p.now < 3.0:
        for _ in range(20):  # the flood goes on between the client's messages
            flood.send(engine, source(n), p.now)
            n += 1
        p.deliver()
        p.now += 0.01
    assert p.i.of(IkeSaEstablished) and p.i.of(ChildSaInstalled)
    assert engine.stats.init_over_limit == 0 and engine.half_open <= 100


def test_b1_spoofed_flood_from_5000_addresses_gets_cookies_and_a_client_connects() -> None:
    p = _pair()
    engine = p.r.engine
    flood = InitFlood(p.i_conn, endpoint(R_ADDR))
    for k in range(5_000):  # within 1 s; the attacker never sees the cookies
        flood.send(engine, source(k), k * 0.0002, echo=False)
        assert engine.half_open <= engine.config.cookie_threshold
    assert flood.answered == engine.config.cookie_threshold
    assert flood.cookies == 5_000 - flood.answered  # >= 99 % COOKIE-only
    p.now = 2.0
    p.initiate()
    p.run(until=5.0)
    assert p.i.of(IkeSaEstablished) and p.i.of(ChildSaInstalled)
    # the flood's half-open SAs expire, cookies are off again
    engine.handle_timer(2.0 + engine.config.half_open_timeout)
    assert engine.half_open == 0
    sent = engine.stats.cookies_sent
    flood.send(engine, source(20_000), 40.0, echo=False)
    assert engine.stats.cookies_sent == sent and engine.half_open == 1
