"""The engine's timer queue: the next deadline of every IKE SA, in a heap with lazy invalidation.

Theory of operation. Each IKE SA has one deadline (the earliest of its retransmission, half-open
expiry, rekey, reauthentication, DPD, keepalive and Child SA lifetimes; ``IkeEngine`` computes
it). :meth:`DeadlineQueue.set` records an SA's deadline and pushes ``(deadline, key)`` onto a
binary heap; an older entry of the same key is not searched for and removed, it becomes
*stale*: ``_current`` holds the one valid deadline per key, and an entry whose deadline is not
its key's current one is skipped (and discarded) when it reaches the top. So setting is
O(log n), the earliest deadline (:meth:`peek`) is amortised O(log n), and :meth:`pop_due`
hands out only the keys that are due, each once. Stale entries are bounded: when they
outnumber the valid ones the heap is rebuilt from ``_current`` (O(n), amortised O(1) per set).

The queue knows nothing about SAs: the engine recomputes the deadlines of the SAs a call
touched and sets them here; whoever pops a key re-checks the SA's real timers.
"""

from __future__ import annotations

import heapq

__all__ = ["DeadlineQueue"]


class DeadlineQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._current: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._current)

    def get(self, key: int) -> float | None:
        return self._current.get(key)

    def set(self, key: int, deadline: float | None) -> None:
        """Record ``key``'s deadline (None: it has none)."""
        if deadline is None:
            self._current.pop(key, None)
            return
        if self._current.get(key) == deadline:
            return
        self._current[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 2 * len(self._current) + 64:
            self._heap = [(d, k) for k, d in self._current.items()]
            heapq.heapify(self._heap)

    def discard(self, key: int) -> None:
        self._current.pop(key, None)

    def peek(self) -> float | None:
        """The earliest deadline, or None."""
        heap = self._heap
        while heap:
            deadline, key = heap[0]
            if self._current.get(key) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> list[int]:
        """The keys whose deadline is ``now`` or earlier, removed from the queue (their owner
        sets them again)."""
        heap, due = self._heap, []
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if self._current.get(key) == deadline:
                del self._current[key]
                due.append(key)
        return due
