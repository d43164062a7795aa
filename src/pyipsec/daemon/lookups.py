"""The daemon's answers to the engine's lookups: RADIUS and revocation checks (``ike.lookups``).

The engine emits :class:`~pyipsec.ike.events.LookupNeeded` when an exchange waits for I/O; the
runtime hands it to :meth:`Lookups.start`, which runs the lookup as an asyncio task and gives
the answer back through ``answer(ticket, answer)`` (the runtime's ``IkeEngine.answer``):

- :class:`~pyipsec.ike.lookups.EapRelay` → :meth:`pyipsec.radius.RadiusClient.eap`; its answer
  is translated field by field (the engine knows nothing of RADIUS). An Access-Accept is kept
  per IKE SA for accounting (the Class attributes to echo, the user);
- :class:`~pyipsec.ike.lookups.RevocationQuery` →
  :meth:`pyipsec.revocation.RevocationChecker.check`, whose verdict names the serial and the
  source in its reason;
- :class:`~pyipsec.ike.lookups.LeaseQuery` and :class:`~pyipsec.ike.lookups.UserQuery` →
  :meth:`pyipsec.daemon.sharedstore.SharedStore.resolve` (the PostgreSQL store's worker
  thread); without a shared store they are answered with a failure.

Each finished lookup is reported with its duration to ``timed`` (the metrics' RADIUS and
revocation latencies), measured on the runtime's clock.

A lookup always gets an answer: a RADIUS client refusing the input, or any unexpected error,
becomes a rejection with the reason (logged once here); the SA then fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyipsec.daemon.sharedstore import SharedStore
from pyipsec.ike.lookups import (
    Answer,
    EapRelay,
    EapRelayAnswer,
    LeaseAnswer,
    LeaseQuery,
    Lookup,
    RelayResult,
    RevocationAnswer,
    RevocationQuery,
    UserAnswer,
    UserQuery,
)
from pyipsec.radius import EapRelayAnswer as RadiusAnswer
from pyipsec.radius import RadiusAnswerKind, RadiusClient
from pyipsec.revocation import RevocationChecker, RevocationPolicy

__all__ = ["Accepted", "Lookups"]

_log = logging.getLogger("pyipsec.daemon")

_RESULTS = {
    RadiusAnswerKind.CHALLENGE: RelayResult.CHALLENGE,
    RadiusAnswerKind.ACCEPT: RelayResult.ACCEPT,
    RadiusAnswerKind.REJECT: RelayResult.REJECT,
    RadiusAnswerKind.TIMEOUT: RelayResult.TIMEOUT,
}


@dataclass(frozen=True, slots=True)
class Accepted:
    """An Access-Accept for one IKE SA: what accounting needs of it."""

    user: str
    session: str
    nas_port: int
    calling_station: str
    called_station: str
    answer: RadiusAnswer


class Lookups:
    def __init__(
        self,
        answer: Callable[[int, Answer], None],
        *,
        revocation: RevocationChecker,
        radius: RadiusClient | None = None,
        now: Callable[[], float] = time.monotonic,
        timed: Callable[[Lookup, Answer, float], None] | None = None,
        store: SharedStore | None = None,
    ) -> None:
        self._answer = answer
        self.store = store
        self._now = now
        self._timed = timed
        self.radius = radius
        self.revocation = revocation
        self.accepted: dict[int, Accepted] = {}  # by IKE SA id
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, sa_id: int, ticket: int, lookup: Lookup) -> None:
        task = asyncio.ensure_future(self._run(sa_id, ticket, lookup))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, sa_id: int, ticket: int, lookup: Lookup) -> None:
        started = self._now()
        try:
            answer = await self._resolve(sa_id, lookup)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a client must not leave the exchange waiting
            _log.exception("lookup %s for IKE SA #%d failed", type(lookup).__name__, sa_id)
            answer = _failed(lookup, f"internal error: {type(exc).__name__}: {exc}")
        if self._timed is not None:
            self._timed(lookup, answer, self._now() - started)
        self._answer(ticket, answer)

    async def _resolve(self, sa_id: int, lookup: Lookup) -> Answer:
        if isinstance(lookup, EapRelay):
            return await self._relay(sa_id, lookup)
        if isinstance(lookup, RevocationQuery):
            return await self._check(lookup)
        if isinstance(lookup, LeaseQuery | UserQuery) and self.store is not None:
            return await self.store.resolve(lookup)
        return _failed(lookup, f"no handler for {type(lookup).__name__}")

    async def _relay(self, sa_id: int, lookup: EapRelay) -> EapRelayAnswer:
        if self.radius is None:
            return EapRelayAnswer(RelayResult.TIMEOUT, reason="no RADIUS servers are configured ([radius])")
        try:
            got = await self.radius.eap(
                user=lookup.user,
                eap=lookup.eap,
                state=lookup.state,
                session=lookup.session,
                calling_station=lookup.calling_station,
                called_station=lookup.called_station,
                nas_port=lookup.nas_port,
            )
        except ValueError as exc:  # what RADIUS cannot carry (a 300-octet user name, …)
            return EapRelayAnswer(RelayResult.REJECT, reason=f"cannot relay to RADIUS: {exc}")
        if got.kind is RadiusAnswerKind.ACCEPT:
            self.accepted[sa_id] = Accepted(
                lookup.user,
                lookup.session,
                lookup.nas_port,
                lookup.calling_station,
                lookup.called_station,
                got,
            )
        reason = got.reason or (f"RADIUS {got.kind.value} from {got.server}" if got.server else "")
        if got.reply_message:
            reason += f" ({got.reply_message})"
        return EapRelayAnswer(
            _RESULTS[got.kind],
            got.eap,
            state=got.state,
            msk=got.msk,
            framed_ipv4=got.framed_ipv4,
            framed_ipv6=got.framed_ipv6,  # a Framed-IPv6-Prefix is no address (RFC 3162 §2.3)
            framed_ipv6_prefix=got.framed_ipv6_prefix,
            classes=got.classes,
            session_timeout=got.session_timeout,
            server=got.server,
            reason=reason,
        )

    async def _check(self, query: RevocationQuery) -> RevocationAnswer:
        verdict = await self.revocation.check(query.chain, query.anchor, RevocationPolicy(query.policy))
        return RevocationAnswer(verdict.ok, verdict.reason, verdict.warnings)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.radius is not None:
            self.radius.close()


def _failed(lookup: Lookup, reason: str) -> Answer:
    if isinstance(lookup, RevocationQuery):
        return RevocationAnswer(False, reason)
    if isinstance(lookup, LeaseQuery):
        return LeaseAnswer(lookup.pool, None, reason)
    if isinstance(lookup, UserQuery):
        return UserAnswer(error=reason)
    return EapRelayAnswer(RelayResult.REJECT, reason=reason)
