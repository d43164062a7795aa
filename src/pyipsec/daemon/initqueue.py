"""New IKE SAs wait, established ones do not: the queue of IKE_SA_INIT requests.

Theory of operation. A cookie-answering flood of IKE_SA_INIT requests (each costs the engine
a DH) must not delay the messages of established SAs (DPD, rekeys, Deletes) or the control
socket. The runtime offers every IKE datagram to :meth:`InitQueue.offer`, which peeks at the
28-byte IKE header without decoding it (:func:`is_init_request`: exchange 34, the Initiator
flag, not a response, SPIr zero): such a request goes into a bounded queue (``limit``; beyond
it the oldest is dropped and counted), every other datagram is left to the caller, which hands
it to the engine at once. Newest first: under a flood more requests arrive than the engine can
take, and a request that waited behind the whole queue is stale (its sender has retransmitted
or given up), while a legitimate client's fresh request gets served within a few rounds.
The queue is served ``batch`` requests at a time
from a callback scheduled for the event loop's next round (``clock.call_later(0)``): asyncio
runs the I/O callbacks of a round before callbacks scheduled during it, so between two batches
the loop reads its sockets again, and established SAs and control commands come first however
long the queue is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from pyipsec.daemon.clock import Clock, TimerHandle
from pyipsec.net.addr import Datagram

__all__ = ["INIT_BATCH", "INIT_QUEUE_LIMIT", "InitQueue", "is_init_request"]

#: IKE_SA_INIT requests waiting for the engine; beyond this, the oldest are dropped (counted).
#: A full queue is well under a second of the engine's work (measured under the flood
#: benchmark: 2-5 ms per request on this machine, DH, decoding and logging included).
INIT_QUEUE_LIMIT = 128
#: IKE_SA_INIT requests served in one round of the event loop. One: a control command takes
#: several rounds (the data plane's counters go there and back), so it waits for a request's
#: engine work (DH and all, 2-5 ms) per round. Measured with bench/bench_flood.py (500/s,
#: cookie-answering): control latency p50/max 356/593 ms with 8, 93/231 ms with 2, 37/137 ms
#: with 1, the same number of requests served.
INIT_BATCH = 1

_IKE_SA_INIT = 34
_FLAG_I, _FLAG_R = 0x08, 0x20
_ZERO_SPI = bytes(8)


def is_init_request(payload: bytes) -> bool:
    """An IKE_SA_INIT request that would make a new SA, by its header alone (RFC 7296 §3.1)."""
    return (
        len(payload) >= 28
        and payload[18] == _IKE_SA_INIT
        and payload[19] & (_FLAG_I | _FLAG_R) == _FLAG_I
        and payload[8:16] == _ZERO_SPI
    )


class InitQueue:
    def __init__(
        self,
        clock: Clock,
        serve: Callable[[Datagram], None],
        *,
        limit: int = INIT_QUEUE_LIMIT,
        batch: int = INIT_BATCH,
    ) -> None:
        self._clock = clock
        self._serve = serve
        self.limit = limit
        self.batch = batch
        self._waiting: deque[Datagram] = deque()
        self._scheduled: TimerHandle | None = None
        self._closed = False
        self.queued = 0  # IKE_SA_INIT requests that went through the queue
        self.dropped = 0  # ... dropped because it was full
        self.peak = 0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def offer(self, d: Datagram) -> bool:
        """Take ``d`` if it is an IKE_SA_INIT request (queued or dropped); False: serve it now."""
        if not is_init_request(d.payload):
            return False
        if self._closed:
            self.dropped += 1
            return True
        if len(self._waiting) >= self.limit:  # the oldest goes: its sender has retransmitted
            self._waiting.popleft()
            self.dropped += 1
        self._waiting.append(d)
        self.queued += 1
        self.peak = max(self.peak, len(self._waiting))
        if self._scheduled is None:
            self._scheduled = self._clock.call_later(0.0, self._run)
        return True

    def _run(self) -> None:
        """One batch; the rest in the loop's next round."""
        self._scheduled = None
        for _ in range(min(self.batch, len(self._waiting))):
            self._serve(self._waiting.pop())  # newest first (module docstring)
        if self._waiting and not self._closed:
            self._scheduled = self._clock.call_later(0.0, self._run)

    def close(self) -> None:
        self._closed = True
        self._waiting.clear()
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
