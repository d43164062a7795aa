"""The daemon's time: one injected clock for every wait (DESIGN.md §1, §8).

Theory of operation
-------------------
Everything in the daemon that waits asks a :class:`Clock`: the engine's single deadline,
data-plane barriers, the linger of a rekeyed Child SA, reconnect back-off, the MOBIKE address
checks and the timeouts of ``up``, ``down`` and ``status``. A clock tells the monotonic time
and calls a function at a time; the handle it returns cancels the call. :class:`LoopClock`, the
production clock, is the running asyncio loop's (``loop.time()``, ``loop.call_at``). Tests pass
a virtual clock (``tests/support/clock.py``) that fires due callbacks in order as the test
advances time, so no daemon test sleeps.

Coroutines (the control commands) wait on futures that callbacks resolve; :func:`wait_until`
bounds such a wait by clock time instead of ``asyncio.wait_for``'s loop time, so a virtual
clock governs those timeouts too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["Clock", "LoopClock", "TimerHandle", "sleep", "wait_until"]

_T = TypeVar("_T")


class TimerHandle(Protocol):
    def cancel(self) -> None: ...

    def when(self) -> float: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle: ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle: ...


class LoopClock:
    """The running asyncio loop's monotonic clock (looked up on first use)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    def call_at(self, when: float, callback: Callable[[], object]) -> TimerHandle:
        return self.loop.call_at(when, callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return self.loop.call_later(delay, callback)


async def wait_until(clock: Clock, futures: Sequence[asyncio.Future[_T]], timeout: float) -> None:
    """Wait until every one of ``futures`` is done, for at most ``timeout`` seconds of ``clock``."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check(_: object = None) -> None:
        if not gate.done() and all(f.done() for f in futures):
            gate.set_result(None)

    def expire() -> None:
        if not gate.done():
            gate.set_result(None)

    for f in futures:
        f.add_done_callback(check)
    handle = clock.call_later(timeout, expire)
    check()
    try:
        await gate
    finally:
        handle.cancel()


async def sleep(clock: Clock, delay: float) -> None:
    """``asyncio.sleep`` on ``clock``."""
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await wait_until(clock, (never,), delay)
