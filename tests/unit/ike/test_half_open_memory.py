"""A half-open responder SA holds only what IKE_AUTH needs, and nothing keeps it after its
timeout (issue 16; RELIABILITY.md B1/B4: bounded memory under a cookie-answering flood).

Measured with tracemalloc over 500 half-open SAs made by IKE_SA_INIT requests from 500
addresses: about 5.9 KB each before (an IkeSa __dict__, an empty deque and two fragment
reassemblers per SA, the DH private key and secret kept), about 3.2 KB now (IkeSa in slots, a
list for the exchange queue, reassemblers made on first use, the DH secret dropped once the
keys are derived; the request and response stay as the encoded bytes AUTH signs). Python 3.11;
the bound leaves room for allocator differences. The DH secret itself is checked too.
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Iterator

import pytest

from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.state import IkeSaState
from tests.support.engines import R_ADDR, endpoint
from tests.support.flood import InitFlood, flood_pair, source

N = 500
BYTES_PER_HALF_OPEN_SA = 4096  # ~3,200 measured; 5,900 before


def _responder() -> tuple[IkeEngine, InitFlood]:
    p = flood_pair(init_limit_half_open=10 * N, cookie_threshold=10 * N)
    return p.r.engine, InitFlood(p.i_conn, endpoint(R_ADDR))


@pytest.fixture
def traced() -> Iterator[None]:
    gc.collect()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def test_half_open_sa_is_small(traced: None) -> None:
    engine, flood = _responder()
    requests = [flood.request(source(k)) for k in range(N + 10)]
    for d in requests[:10]:  # warm up (first-use caches, the engine's tables)
        engine.receive_datagram(d, 0.0)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for d in requests[10:]:
        engine.receive_datagram(d, 0.0)
    gc.collect()
    per_sa = (tracemalloc.get_traced_memory()[0] - before) / N
    assert engine.half_open == N + 10
    assert per_sa <= BYTES_PER_HALF_OPEN_SA, f"{per_sa:.0f} bytes per half-open SA"


def test_half_open_sa_keeps_no_dh_secret() -> None:
    engine, flood = _responder()
    engine.receive_datagram(flood.request(source(1)), 0.0)
    (sa,) = engine.sas()
    assert sa.state is IkeSaState.CONNECTING and sa.keys is not None
    assert sa.shared_secret == b"" and sa.ke is None


def test_expired_half_open_sas_are_freed_without_the_garbage_collector() -> None:
    """Nothing (a table, a cycle) keeps an expired half-open SA: reference counting alone
    frees it, and with it its keys and cached messages."""
    engine, flood = _responder()
    gc.collect()
    gc.disable()
    try:
        for k in range(N):
            engine.receive_datagram(flood.request(source(k)), 0.0)
        alive = [weakref.ref(sa) for sa in engine.sas()]
        assert len(alive) == engine.half_open == N
        engine.handle_timer(29.0)
        assert sum(r() is not None for r in alive) == N
        engine.handle_timer(31.0)
        assert engine.sa_count == 0 and engine.half_open == 0
        assert sum(r() is not None for r in alive) == 0
    finally:
        gc.enable()
