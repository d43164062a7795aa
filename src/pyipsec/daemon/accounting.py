"""RADIUS accounting for IKE SAs authenticated through RADIUS (RFC 2866; ``[radius] accounting``).

One accounting session per IKE SA whose peer the RADIUS server accepted
(:class:`~pyipsec.daemon.lookups.Accepted`): Accounting-Request Start when the SA is
established, Interim-Update every ``interim_interval`` seconds, Stop when it closes — with the
octets and packets of its Child SAs (``in`` is what the gateway received from the client), the
session time and the cause. The session id is the one the Access-Requests carried
(Acct-Session-Id), the Class attributes of the Access-Accept are echoed (RFC 2865 §5.25).

A session follows its IKE SA through rekeys (``IkeSaEstablished.rekeyed_from``) and
reauthentications (``reauth_of``); only a close that nothing replaces stops it. Counters of a
Child SA are read from the data plane just before it is removed (:meth:`child_removed` is
given them), so the Stop carries what the tunnel really moved; the Stop waits until those last
counters are in.

A session the gateway sends elsewhere (``pyipsec redirect``, ``drain``: :meth:`redirected`,
called by ``daemon.redirect``) stops here with Acct-Terminate-Cause NAS-Request whoever
deletes the old SA — the client does, once it is up on the other gateway, which starts its
own session there: Start and Stop come from the gateway that holds the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from pyipsec.daemon.clock import Clock, TimerHandle
from pyipsec.daemon.lookups import Accepted
from pyipsec.ike.events import CloseCause, IkeSaClosed, IkeSaEstablished
from pyipsec.net.addr import IPAddress
from pyipsec.radius import AccountingRecord, AcctStatus, RadiusClient, TerminateCause

__all__ = ["Accounting", "terminate_cause"]

_log = logging.getLogger("pyipsec.daemon")

_CAUSES = {
    CloseCause.PEER: TerminateCause.USER_REQUEST,  # the client said goodbye
    CloseCause.LOCAL: TerminateCause.ADMIN_RESET,  # `pyipsec down`, shutdown
    CloseCause.TIMEOUT: TerminateCause.LOST_CARRIER,  # DPD: the client is gone
    CloseCause.REAUTH_OVERDUE: TerminateCause.SESSION_TIMEOUT,
    CloseCause.INITIAL_CONTACT: TerminateCause.USER_REQUEST,  # the client started afresh
    CloseCause.FAILED: TerminateCause.NAS_ERROR,
    CloseCause.INTERNAL_ERROR: TerminateCause.NAS_ERROR,
}


def terminate_cause(cause: CloseCause) -> TerminateCause:
    return _CAUSES.get(cause, TerminateCause.NAS_REQUEST)


Counters = dict[str, int]


@dataclass
class _Session:
    accepted: Accepted
    started: float
    vips: tuple[IPAddress, ...] = ()
    children: set[bytes] = field(default_factory=set)  # inbound SPIs of live Child SAs
    pending: set[bytes] = field(default_factory=set)  # removed, last counters not yet in
    totals: Counters = field(default_factory=dict)  # of the Child SAs already removed
    stop: IkeSaClosed | None = None
    interim: TimerHandle | None = None
    redirected: bool = False  # the gateway sent the client elsewhere (RFC 5685)


class Accounting:
    def __init__(
        self,
        client: RadiusClient,
        clock: Clock,
        counters: Callable[[Callable[[dict[bytes, Counters]], None]], None],
        *,
        interim_interval: float = 0.0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._fetch = counters  # the data plane's fresh counters (a barrier), then the callback
        self._interim = interim_interval
        self._sessions: dict[int, _Session] = {}  # by IKE SA id
        self._by_child: dict[bytes, int] = {}
        self._tasks: set[asyncio.Task[bool]] = set()

    # -- what the runtime tells us --------------------------------------------------------------

    def established(
        self, e: IkeSaEstablished, accepted: Accepted | None, vips: tuple[IPAddress, ...]
    ) -> None:
        moved_from = e.rekeyed_from if e.rekeyed_from is not None else e.reauth_of
        if moved_from is not None and moved_from in self._sessions:
            self._sessions[e.sa_id] = self._sessions.pop(moved_from)
            for spi, sa_id in list(self._by_child.items()):
                if sa_id == moved_from:
                    self._by_child[spi] = e.sa_id
            return
        if accepted is None:
            return
        session = _Session(accepted, self._clock.now(), vips)
        self._sessions[e.sa_id] = session
        self._send(self._record(session, AcctStatus.START, {}))
        self._arm(e.sa_id, session)

    def child_installed(self, sa_id: int, spi_in: bytes) -> None:
        session = self._sessions.get(sa_id)
        if session is not None:
            session.children.add(spi_in)
            self._by_child[spi_in] = sa_id

    def wants_counters(self, spi_in: bytes) -> bool:
        """Whether a Child SA about to be removed belongs to an accounting session."""
        return spi_in in self._by_child

    def child_removed(self, spi_in: bytes, counters: Counters | None) -> None:
        """The Child SA's last counters (None: the data plane did not answer in time)."""
        sa_id = self._by_child.pop(spi_in, None)
        session = self._sessions.get(sa_id) if sa_id is not None else None
        if session is None:
            return
        session.children.discard(spi_in)
        session.pending.discard(spi_in)
        for key, value in (counters or {}).items():
            session.totals[key] = session.totals.get(key, 0) + value
        assert sa_id is not None
        self._maybe_stop(sa_id, session)

    def child_removing(self, spi_in: bytes) -> None:
        sa_id = self._by_child.get(spi_in)
        session = self._sessions.get(sa_id) if sa_id is not None else None
        if session is not None:
            session.pending.add(spi_in)

    def closed(self, e: IkeSaClosed) -> None:
        session = self._sessions.get(e.sa_id)
        if session is None or e.cause.replaced:
            return
        session.stop = e
        self._maybe_stop(e.sa_id, session)

    def redirected(self, sa_id: int) -> None:
        """The gateway redirected the client of IKE SA ``sa_id``: its Stop is a NAS-Request."""
        session = self._sessions.get(sa_id)
        if session is not None:
            session.redirected = True

    def close(self) -> None:
        for session in self._sessions.values():
            if session.interim is not None:
                session.interim.cancel()

    # -- records --------------------------------------------------------------------------------

    def _maybe_stop(self, sa_id: int, session: _Session) -> None:
        if session.stop is None or session.pending or session.children:
            return
        del self._sessions[sa_id]
        if session.interim is not None:
            session.interim.cancel()
        cause = TerminateCause.NAS_REQUEST if session.redirected else terminate_cause(session.stop.cause)
        self._send(self._record(session, AcctStatus.STOP, session.totals, cause))

    def _arm(self, sa_id: int, session: _Session) -> None:
        if self._interim > 0:
            session.interim = self._clock.call_later(self._interim, lambda: self._interim_update(sa_id))

    def _interim_update(self, sa_id: int) -> None:
        session = self._sessions.get(sa_id)
        if session is None or session.stop is not None:
            return

        def send(counters: dict[bytes, Counters]) -> None:
            now = dict(session.totals)
            for spi in session.children:
                for key, value in counters.get(spi, {}).items():
                    now[key] = now.get(key, 0) + value
            self._send(self._record(session, AcctStatus.INTERIM, now))

        self._fetch(send)
        self._arm(sa_id, session)

    def _record(
        self, session: _Session, status: AcctStatus, counters: Counters, cause: TerminateCause | None = None
    ) -> AccountingRecord:
        a = session.accepted
        v4 = next((v for v in session.vips if isinstance(v, IPv4Address)), None)
        return AccountingRecord(
            status=status,
            session=a.session,
            user=a.user,
            classes=a.answer.classes,
            framed_ipv4=v4,
            framed_ipv6_prefix=a.answer.framed_ipv6_prefix,
            calling_station=a.calling_station,
            called_station=a.called_station,
            nas_port=a.nas_port,
            in_octets=counters.get("bytes_in", 0),
            out_octets=counters.get("bytes_out", 0),
            in_packets=counters.get("packets_in", 0),
            out_packets=counters.get("packets_out", 0),
            session_time=0 if status is AcctStatus.START else int(self._clock.now() - session.started),
            terminate_cause=cause,
        )

    def _send(self, record: AccountingRecord) -> None:
        task = asyncio.ensure_future(self._client.account(record))
        self._tasks.add(task)

        def done(t: asyncio.Task[bool]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is None and not t.result():
                _log.warning(
                    "RADIUS accounting %s for %s (session %s) was not answered",
                    record.status.name,
                    record.user,
                    record.session,
                )

        task.add_done_callback(done)
