"""New IKE SAs wait, established ones do not (issue 16; daemon.initqueue).

Under a cookie-answering flood the daemon serves the messages of established SAs (DPD,
rekeys, INFORMATIONAL) and control commands before queued IKE_SA_INIT requests; the queue is
bounded, what does not fit is dropped and counted (``pyipsec stats``). Checked on real
runtimes over the memory network under the virtual clock (tests/support/daemons.py): with
10,000 IKE_SA_INITs arriving in the same round as a client's DPD request, the gateway answers
the DPD before it has done one DH for the flood.
"""

from __future__ import annotations

from pathlib import Path

from pyipsec.daemon.initqueue import INIT_BATCH, INIT_QUEUE_LIMIT, InitQueue, is_init_request
from pyipsec.iana.ikev2 import ExchangeType
from pyipsec.net.addr import Datagram, Endpoint
from tests.support.clock import FakeClock
from tests.support.daemons import GW_ADDR, I_ADDR, Node, World, psk_configs
from tests.support.engines import endpoint
from tests.support.flood import InitFlood, source

FLOOD = 10_000


def _up(world: World, tmp_path: Path) -> tuple[Node, Node]:
    client_cfg, gw_cfg = psk_configs(tmp_path)
    client, gw = world.node(client_cfg, I_ADDR), world.node(gw_cfg, GW_ADDR)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    return client, gw


def _flood(client: Node) -> InitFlood:
    return InitFlood(client.runtime.engine.config.connections["office"], endpoint(GW_ADDR))


def test_header_peek_finds_only_new_ike_sa_init_requests(world: World, tmp_path: Path) -> None:
    client, _gw = _up(world, tmp_path)
    request = _flood(client).request(source(1)).payload
    assert is_init_request(request)
    for s in world.net.log:  # the handshake's own datagrams: only the first request is one
        assert is_init_request(s.datagram.payload) == (s is world.net.requests(ExchangeType.IKE_SA_INIT)[0])
    response = bytearray(request)
    response[19] = 0x20  # R flag
    assert not is_init_request(bytes(response))
    known = bytearray(request)
    known[8:16] = b"\x01" * 8  # SPIr set: not a new SA
    assert not is_init_request(bytes(known))
    assert not is_init_request(request[:27]) and not is_init_request(b"")


def test_the_queue_is_bounded_and_served_in_batches() -> None:
    clock = FakeClock()
    served: list[Datagram] = []
    q = InitQueue(clock, served.append, limit=20, batch=INIT_BATCH)
    flood = InitFlood.__new__(InitFlood)  # (no engine needed: build requests by hand below)
    del flood
    template = bytearray(28)
    template[18], template[19] = 34, 0x08
    dgrams = [
        Datagram(Endpoint.parse("192.0.2.2", 500), Endpoint.parse(str(source(k)), 500), bytes(template))
        for k in range(30)
    ]
    assert all(q.offer(d) for d in dgrams)
    # full: the oldest went (their senders retransmit), the newest 20 wait
    assert (q.waiting, q.dropped, q.queued) == (20, 10, 30)
    assert served == []  # nothing before the loop's next round
    (handle,) = clock.pending()
    handle.callback()  # one round: the newest first
    assert served == dgrams[::-1][:INIT_BATCH] and q.waiting == 20 - INIT_BATCH
    clock.advance(0)  # the following rounds
    assert served == dgrams[10:][::-1] and q.waiting == 0
    other = Datagram(dgrams[0].local, dgrams[0].remote, bytes(28))
    assert not q.offer(other)  # not an IKE_SA_INIT request: the caller serves it at once
    q.close()
    assert q.offer(dgrams[0]) and q.dropped == 11


def test_established_sa_is_answered_while_10000_ike_sa_inits_wait(world: World, tmp_path: Path) -> None:
    client, gw = _up(world, tmp_path)
    (sa,) = client.sas()
    flood = _flood(client)
    requests = [flood.request(source(k)) for k in range(FLOOD)]
    engine = gw.runtime.engine
    cookies_before = engine.stats.cookies_sent
    # the client checks liveness; its INFORMATIONAL reaches the gateway in the same round as the flood
    client.runtime.apply(client.runtime.engine.check_liveness(sa.sa_id, world.clock.now()))
    for d in requests:
        gw.runtime.datagram_received(d)
    logged = len(world.net.log)
    world.net.deliver()
    answers = [
        s
        for s in world.net.log[logged:]
        if str(s.datagram.local.ip) == GW_ADDR
        and s.header.exchange_type is ExchangeType.INFORMATIONAL
        and s.header.is_response
    ]
    attackers = {source(k) for k in range(FLOOD)}
    assert len(answers) == 1  # answered at once, before any of the flood:
    assert not [s for s in world.net.log if s.datagram.remote.ip in attackers]
    assert engine.half_open == 0 and engine.stats.cookies_sent == cookies_before
    inits = gw.runtime.inits
    assert inits.waiting == INIT_QUEUE_LIMIT and inits.dropped == FLOOD - INIT_QUEUE_LIMIT
    # the control socket is served too, and shows the counters
    stats = world.command(gw, "stats")
    assert stats["init_queue_dropped"] == FLOOD - INIT_QUEUE_LIMIT
    world.run_for(1.0)  # the queue drains, batch by batch
    assert inits.waiting == 0
    flood_answers = [s for s in world.net.log if s.datagram.remote.ip in attackers]
    assert len(flood_answers) == INIT_QUEUE_LIMIT  # each queued request was served (answered)
    (after,) = client.sas()
    assert after.sa_id == sa.sa_id and after.established
