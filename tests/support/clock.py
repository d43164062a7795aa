"""A virtual clock for the daemon (``pyipsec.daemon.clock.Clock``): time moves only when told.

Callbacks run in the order of their due time (and of scheduling, for equal times), each with
:meth:`FakeClock.now` set to its due time; a callback scheduled while others fire runs in the
same advance if it is due by then. Nothing sleeps: a test advances time to the next deadline
(:meth:`FakeClock.step`) or by an amount (:meth:`FakeClock.advance`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

__all__ = ["FakeClock", "FakeHandle"]


class FakeHandle:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self._when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def when(self) -> float:
        return self._when


class FakeClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, FakeHandle]] = []
        self._seq = itertools.count()
        self.fired = 0

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], object]) -> FakeHandle:
        handle = FakeHandle(max(when, self._now), callback)
        heapq.heappush(self._queue, (handle.when(), next(self._seq), handle))
        return handle

    def call_later(self, delay: float, callback: Callable[[], object]) -> FakeHandle:
        return self.call_at(self._now + delay, callback)

    def next_deadline(self) -> float | None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)
        return self._queue[0][0] if self._queue else None

    def pending(self) -> list[FakeHandle]:
        return sorted((h for _, _, h in self._queue if not h.cancelled), key=FakeHandle.when)

    def step(self, limit: float = float("inf")) -> bool:
        """Move to the next deadline (if at most ``limit``) and run what is due then."""
        due = self.next_deadline()
        if due is None or due > limit:
            return False
        self._now = max(self._now, due)
        while (nxt := self.next_deadline()) is not None and nxt <= self._now:
            _, _, handle = heapq.heappop(self._queue)
            self.fired += 1
            handle.callback()
        return True

    def advance_to(self, when: float) -> None:
        while self.step(when):
            pass
        self._now = max(self._now, when)

    def advance(self, seconds: float) -> None:
        self.advance_to(self._now + seconds)
