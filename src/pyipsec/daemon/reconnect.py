"""Which connections stay up, and when to try again (reconnect policy).

Theory of operation
-------------------
A connection with a child of ``start_action = start`` is initiated when the daemon starts
(:attr:`Reconnect.at_boot`) and kept up from then on. One with ``dpd_action = restart`` or
``close_action = start`` is kept up once it has been established. When the last IKE SA of a
kept-up connection closes — the peer deleted it, DPD found it dead, setting it up failed —
it is initiated again after a back-off of 1 s, 2 s, 4 s … capped at :data:`RECONNECT_MAX`;
an established SA ends the series. Nothing is restarted:

* when the IKE SA was replaced (rekeyed, a collision's redundant SA, reauthenticated: the
  runtime does not even report those, ``CloseCause.replaced``), or another SA of the
  connection remains;
* after ``down`` (:meth:`Reconnect.down_requested`; ``up`` clears it) or at shutdown.

``status`` shows the pending attempts (:meth:`Reconnect.status`). A reload
(:meth:`Reconnect.reconfigure`, ``daemon.reload``) replaces the policy: a connection no longer
kept up (removed, or no longer ``start``/``restart``) is not reconnected any more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pyipsec.config.model import CloseAction, Config, DpdAction, StartAction
from pyipsec.control.protocol import JsonValue
from pyipsec.daemon.clock import Clock, TimerHandle
from pyipsec.ike.events import IkeSaClosed, IkeSaEstablished

__all__ = ["RECONNECT_MAX", "RECONNECT_MIN", "Reconnect"]

_log = logging.getLogger("pyipsec.daemon")

RECONNECT_MIN, RECONNECT_MAX = 1.0, 60.0


@dataclass
class _Attempts:
    attempt: int = 0
    handle: TimerHandle | None = None
    last_reason: str = ""
    next_at: float = 0.0


class Reconnect:
    def __init__(self, config: Config, clock: Clock, initiate: Callable[[str], None]) -> None:
        self.clock = clock
        self._initiate = initiate
        self._policy(config)
        self._keep_up = set(self.at_boot)
        self._pending: dict[str, _Attempts] = {}
        self._down: set[str] = set()

    def _policy(self, config: Config) -> None:
        conns = config.connections
        #: started with the daemon, and restarted whenever their SA goes
        self.at_boot = {
            name
            for name, c in conns.items()
            if any(ch.start_action == StartAction.START for ch in c.children.values())
        }
        # restarted when their SA goes (DPD, peer delete), once they have been up
        self._restartable = self.at_boot | {
            name
            for name, c in conns.items()
            if any(
                ch.dpd_action == DpdAction.RESTART or ch.close_action == CloseAction.START
                for ch in c.children.values()
            )
        }

    def reconfigure(self, config: Config) -> set[str]:
        """A reload: the policy of ``config`` from now on. Connections that are no longer kept
        up (removed, or no longer ``start``/``restart``) lose their pending attempts; returns
        the connections that start with the daemon and did not before (to be initiated)."""
        before = self.at_boot
        self._policy(config)
        self._keep_up = {n for n in self._keep_up if n in self._restartable} | self.at_boot
        for name in list(self._pending):
            if name not in self._keep_up:
                self.cancel(name)
        self._down &= set(config.connections)
        return self.at_boot - before

    def established(self, e: IkeSaEstablished) -> None:
        self.cancel(e.connection)
        if e.connection in self._restartable:
            self._keep_up.add(e.connection)

    def closed(self, e: IkeSaClosed, *, remaining: bool) -> None:
        """An IKE SA of the connection closed for good (not replaced); ``remaining``: others live."""
        if e.connection in self._down:
            self._down.discard(e.connection)
            return
        if e.connection in self._keep_up and not remaining:
            self._schedule(e.connection, e.reason)

    def up_requested(self, name: str) -> None:
        self._down.discard(name)

    def down_requested(self, name: str) -> None:
        """Its SA is being deleted on request: no reconnect for that."""
        self._down.add(name)

    def cancel(self, name: str) -> None:
        """Forget the pending attempts for ``name`` (its SA is up, or it was taken down)."""
        r = self._pending.pop(name, None)
        if r is not None and r.handle is not None:
            r.handle.cancel()

    def stop(self) -> None:
        """Shutdown: keep nothing up any more."""
        self._keep_up.clear()
        for name in list(self._pending):
            self.cancel(name)

    def status(self, now: float) -> dict[str, JsonValue]:
        return {
            name: {
                "attempt": r.attempt,
                "next_in": round(max(0.0, r.next_at - now), 1),
                "reason": r.last_reason,
            }
            for name, r in self._pending.items()
        }

    def _schedule(self, name: str, reason: str) -> None:
        r = self._pending.setdefault(name, _Attempts())
        delay = min(RECONNECT_MAX, RECONNECT_MIN * 2**r.attempt)
        r.attempt += 1
        r.last_reason = reason
        r.next_at = self.clock.now() + delay
        _log.info(
            "%s: reconnecting in %.0f s (attempt %d) after: %s",
            name,
            delay,
            r.attempt,
            reason,
            extra={"sa": name, "event": "reconnect"},
        )
        if r.handle is not None:
            r.handle.cancel()
        r.handle = self.clock.call_later(delay, lambda: self._fire(name))

    def _fire(self, name: str) -> None:
        r = self._pending.get(name)
        if r is not None:
            r.handle = None
        self._initiate(name)
