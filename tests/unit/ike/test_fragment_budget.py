"""A global budget for IKE fragment reassembly (RFC 7383; issue 16; RELIABILITY.md B6).

A cookie-answering attacker holds the keys of thousands of half-open SAs, so each SA's own
limit (``ike.fragment.MAX_FRAGMENT_BYTES``) does not bound the total: 300 half-open SAs each
fed all but the last fragment of a 4 KB IKE_AUTH would hold over 1 MB. With a budget of
64 KiB they hold at most that; the fragments beyond it are dropped and counted; the bytes come
back when a message completes or when the SAs expire.
"""

from __future__ import annotations

from pyipsec.crypto.rand import SeededRandom
from pyipsec.iana.ikev2 import ExchangeType
from pyipsec.ike.config import EngineConfig
from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.fragment import FragmentBudget, Reassembler
from pyipsec.net.addr import Datagram, Endpoint
from pyipsec.wire.payloads.vendor import VendorId
from tests.support.engines import R_ADDR, endpoint
from tests.support.flood import flood_pair, source
from tests.unit.ike.test_fragment import fragments, opener

N = 300
BUDGET = 64 * 1024


def _held(engine: IkeEngine) -> int:
    """Bytes held by every reassembler of the engine, counted one by one."""
    return sum(r.held for ex in engine.tasks._exchangers.values() for r in ex._reassembly.values())


def test_reassemblers_share_one_budget() -> None:
    frags = fragments()  # ~640 bytes of inner payloads in small fragments
    budget = FragmentBudget(800)
    a, b = Reassembler(budget=budget), Reassembler(budget=budget)
    prot = opener()
    for m in frags[:10]:
        assert a.add(1, prot.unprotect_fragment(m)) is None
    assert budget.used == a.held > 0
    assert all(b.add(1, prot.unprotect_fragment(m)) is None for m in frags)  # some did not fit
    assert budget.used == a.held + b.held <= 800 and budget.dropped > 0
    a.release()
    assert budget.used == b.held
    out = [b.add(1, prot.unprotect_fragment(m)) for m in frags]  # the dropped ones fit now
    assert any(x is not None for x in out)
    assert b.held == 0 and budget.used == 0


def test_half_open_sas_fed_fragments_stay_within_the_global_budget() -> None:
    p = flood_pair(cookie_threshold=10 * N, init_limit_half_open=10 * N, fragment_budget=BUDGET)
    i_conn = p.i_conn
    responder = p.r.engine
    attacker = IkeEngine(
        EngineConfig({i_conn.name: i_conn}), MemoryCredentials([SharedSecret(b"x" * 20)]), rng=SeededRandom(5)
    )
    for k in range(N):
        sa_id, out = attacker.initiate("office", 0.0, local=Endpoint(source(k), 500), remote=endpoint(R_ADDR))
        (request,) = out.datagrams
        (response,) = responder.receive_datagram(_turned(request), 0.0).datagrams
        attacker.receive_datagram(_turned(response), 0.0)  # keys; its IKE_AUTH is not sent on
        sa = attacker.sa(sa_id)
        assert sa is not None and sa.peer_fragmentation
        big = attacker.tasks.exchanger(sa).encode(
            ExchangeType.IKE_AUTH, 1, response=False, payloads=[VendorId(bytes(4000))]
        )
        assert len(big) >= 4
        for frag in big[:-1]:  # all but the last: the message never completes
            responder.receive_datagram(Datagram(endpoint(R_ADDR), Endpoint(source(k), 500), frag), 0.0)
        assert _held(responder) == responder.fragments.used <= BUDGET
    assert responder.half_open == N
    assert responder.fragments.peak <= BUDGET < N * 3 * 1000
    assert responder.fragments.dropped > 0
    responder.handle_timer(31.0)  # the half-open SAs expire: their fragments go back
    assert responder.sa_count == 0 and responder.fragments.used == 0


def _turned(d: Datagram) -> Datagram:
    return Datagram(d.remote, d.local, d.payload)
