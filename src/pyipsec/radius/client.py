"""The asyncio RADIUS client: EAP relay (RFC 3579) and accounting (RFC 2866) with failover.

Theory of operation
-------------------
Each (server, port) gets one connected UDP socket (:class:`_Endpoint`), created on first use:
the kernel then delivers only datagrams from that server's address and port, and the endpoint
checks the source again. A request takes a free Identifier of its endpoint (at most 256 are
outstanding per socket, RFC 2865 §3; more requests wait) and registers a future under it; a
datagram is matched to the request by Identifier and verified by
:func:`~pyipsec.radius.codec.verify_reply` (Response Authenticator, Message-Authenticator).
Datagrams that fail are dropped and counted; the first authentication failure of a server is
logged once as a likely wrong shared secret.

One exchange (:meth:`RadiusClient._exchange`) sends a request to one server up to ``tries``
times, ``timeout`` seconds apart, with the same bytes (same Identifier and Request
Authenticator, RFC 5080 §2.2.1), then fails over to the next server with a fresh packet. A
server that did not answer is remembered as dead for ``dead_time`` seconds and tried after the
others meanwhile; one that answers is alive again. An EAP conversation stays with the server
that sent its Access-Challenge (its State means nothing to another server) unless that server
is dead. When no server answers, the EAP relay answers TIMEOUT naming the servers tried, and
accounting returns False.

Acct-Delay-Time (RFC 2866 §5.2) is the whole seconds since :meth:`RadiusClient.account` was
called, set when the packet for a server is built; retransmissions to one server are identical.

Nothing here logs a secret: shared secrets, MPPE keys and the MSK are never formatted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, fields
from typing import Any, cast

from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.radius.codec import (
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    AUTHENTICATOR_LEN,
    DropReason,
    ReplyDropped,
    RequestContext,
    VerifiedReply,
    answer_from_reply,
    build_access_request,
    build_accounting_request,
    verify_reply,
)
from pyipsec.radius.model import (
    AccountingRecord,
    EapRelayAnswer,
    RadiusAnswerKind,
    RadiusServer,
    RadiusSettings,
    RadiusStats,
    ServerStats,
)

__all__ = ["DEFAULT_DEAD_TIME", "RadiusClient"]

_log = logging.getLogger("pyipsec.radius")

DEFAULT_DEAD_TIME = 60.0
"""Seconds a server that did not answer is tried after the others."""

_STICKY_MAX = 4096  # State -> server of conversations in progress (oldest forgotten first)

Builder = Callable[[RadiusServer, int, str], tuple[bytes, RequestContext]]


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    bad_authenticator: int = 0
    malformed: int = 0
    unexpected: int = 0
    answers: int = 0


class _ServerState:
    """Liveness and counters of one configured server."""

    def __init__(self, server: RadiusServer, index: int) -> None:
        self.server = server
        self.index = index
        self.counters = _Counters()
        self.dead_until: float | None = None
        self.warned_secret = False

    def is_dead(self, now: float) -> bool:
        return self.dead_until is not None and now < self.dead_until

    def snapshot(self) -> ServerStats:
        values = {f.name: getattr(self.counters, f.name) for f in fields(_Counters)}
        return ServerStats(name=self.server.name, **values)


@dataclass(slots=True)
class _Waiter:
    request: RequestContext
    future: asyncio.Future[VerifiedReply]


class _Endpoint(asyncio.DatagramProtocol):
    """A connected UDP socket to one server port and the requests outstanding on it."""

    def __init__(self, state: _ServerState, port: int, on_drop: Callable[[_ServerState, ReplyDropped], None]):
        self.state = state
        self.peer = (ipaddress.ip_address(state.server.address), port)
        self.on_drop = on_drop
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, _Waiter] = {}
        self.slots = asyncio.Semaphore(256)
        self.next_id = 0
        self.local_ip = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local_ip = str(sockname[0]) if sockname else ""

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            source = (ipaddress.ip_address(addr[0]), addr[1])
        except (ValueError, IndexError):
            source = None
        if source != self.peer or len(data) < 2:
            self.on_drop(self.state, ReplyDropped(DropReason.UNEXPECTED, f"datagram from {addr}"))
            return
        waiter = self.pending.get(data[1])
        if waiter is None or waiter.future.done():
            self.on_drop(self.state, ReplyDropped(DropReason.UNEXPECTED, f"no request with id {data[1]}"))
            return
        result = verify_reply(data, waiter.request)
        if isinstance(result, ReplyDropped):
            self.on_drop(self.state, result)
            return
        waiter.future.set_result(result)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable, ...) are not authenticated: the timeout decides.
        _log.debug("RADIUS server %s: %s", self.state.server.label, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        for waiter in self.pending.values():
            if not waiter.future.done():
                waiter.future.set_exception(ConnectionError("RADIUS socket closed"))

    @contextlib.asynccontextmanager
    async def identifier(self) -> AsyncIterator[int]:
        """A free Identifier for the duration of one request."""
        async with self.slots:
            ident = self.next_id
            while ident in self.pending:
                ident = (ident + 1) % 256
            self.next_id = (ident + 1) % 256
            yield ident

    def send(self, packet: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packet)


class RadiusClient:
    """EAP relay and accounting against the servers of ``settings`` (see the module docstring)."""

    def __init__(
        self,
        settings: RadiusSettings,
        *,
        rng: RandomSource = OS_RANDOM,
        clock: Callable[[], float] = time.monotonic,
        dead_time: float = DEFAULT_DEAD_TIME,
    ) -> None:
        self._settings = settings
        self._rng = rng
        self._clock = clock
        self._dead_time = dead_time
        self._states = [_ServerState(s, i) for i, s in enumerate(settings.servers)]
        self._endpoints: dict[tuple[str, int], _Endpoint] = {}
        self._endpoint_lock = asyncio.Lock()
        self._sticky: OrderedDict[bytes, str] = OrderedDict()
        self._closed = False

    def __repr__(self) -> str:
        names = ", ".join(s.server.name for s in self._states)
        return f"RadiusClient(servers=[{names}])"

    @property
    def settings(self) -> RadiusSettings:
        return self._settings

    @property
    def stats(self) -> RadiusStats:
        """Counters per server, in configured order."""
        return RadiusStats(tuple(s.snapshot() for s in self._states))

    def close(self) -> None:
        """Close every socket; requests in flight end as TIMEOUT / False."""
        self._closed = True
        endpoints, self._endpoints = list(self._endpoints.values()), {}
        for ep in endpoints:
            if ep.transport is not None:
                ep.transport.close()

    # -- EAP relay ------------------------------------------------------------------------------

    async def eap(
        self,
        *,
        user: str,
        eap: bytes,
        state: bytes | None,
        session: str,
        calling_station: str,
        called_station: str,
        nas_port: int,
    ) -> EapRelayAnswer:
        """Relay one EAP packet in an Access-Request and return the verified answer.

        ``state`` is the State of the previous Access-Challenge of this conversation (None for the
        first message). Raises ValueError, before anything is sent, for values RADIUS cannot carry
        (an empty EAP packet, a User-Name or station id over 253 octets, a packet over 4096).
        """

        def build(server: RadiusServer, identifier: int, local_ip: str) -> tuple[bytes, RequestContext]:
            authenticator = self._rng.random_bytes(AUTHENTICATOR_LEN)
            raw = build_access_request(
                identifier=identifier,
                authenticator=authenticator,
                secret=server.secret,
                user=user,
                eap=eap,
                state=state,
                session=session,
                calling_station=calling_station,
                called_station=called_station,
                nas_port=nas_port,
                nas_identifier=self._settings.nas_identifier,
                nas_ip=self._settings.nas_ip or local_ip or None,
            )
            return raw, RequestContext(ACCESS_REQUEST, identifier, authenticator, server.secret)

        # Fail early on values no server could take, with a clear message.
        build(self._states[0].server, 0, "")
        preferred = self._sticky.pop(state, None) if state is not None else None
        result, tried = await self._exchange(preferred, accounting=False, build=build)
        if result is None:
            return EapRelayAnswer(kind=RadiusAnswerKind.TIMEOUT, reason=self._no_answer(tried))
        st, reply, request = result
        try:
            answer = answer_from_reply(reply, request, st.server.name)
        except ValueError as exc:
            st.counters.malformed += 1
            _log.warning("RADIUS server %s: malformed %s: %s", st.server.label, reply.code, exc)
            return EapRelayAnswer(
                kind=RadiusAnswerKind.REJECT,
                server=st.server.name,
                reason=f"malformed answer from {st.server.name}: {exc}",
            )
        if answer.kind is RadiusAnswerKind.CHALLENGE and answer.state is not None:
            self._sticky[answer.state] = st.server.name
            while len(self._sticky) > _STICKY_MAX:
                self._sticky.popitem(last=False)
        _log.debug("RADIUS %s for %r from %s", answer.kind.value, user, st.server.label)
        return answer

    # -- accounting -----------------------------------------------------------------------------

    async def account(self, record: AccountingRecord) -> bool:
        """Send one Accounting-Request; True once a server acknowledged it (RFC 2866 §4.2)."""
        started = self._clock()

        def build(server: RadiusServer, identifier: int, local_ip: str) -> tuple[bytes, RequestContext]:
            raw, authenticator = build_accounting_request(
                record,
                identifier=identifier,
                secret=server.secret,
                delay=int(self._clock() - started),
                nas_identifier=self._settings.nas_identifier,
                nas_ip=self._settings.nas_ip or local_ip or None,
            )
            return raw, RequestContext(ACCOUNTING_REQUEST, identifier, authenticator, server.secret)

        build(self._states[0].server, 0, "")
        result, tried = await self._exchange(None, accounting=True, build=build)
        if result is None:
            _log.warning(
                "RADIUS accounting %s for session %s lost: %s",
                record.status.name,
                record.session,
                self._no_answer(tried),
            )
            return False
        return True

    # -- the exchange with failover ---------------------------------------------------------------

    def _order(self, preferred: str | None) -> list[_ServerState]:
        now = self._clock()
        alive = [s for s in self._states if not s.is_dead(now)]
        dead = sorted((s for s in self._states if s.is_dead(now)), key=lambda s: (s.dead_until, s.index))
        alive.sort(key=lambda s: (s.server.name != preferred, s.index))
        return alive + dead

    @staticmethod
    def _no_answer(tried: list[str]) -> str:
        return "no answer from RADIUS server(s) " + ", ".join(tried) if tried else "RADIUS client closed"

    async def _endpoint(self, st: _ServerState, port: int) -> _Endpoint:
        key = (st.server.name, port)
        async with self._endpoint_lock:
            if self._closed:
                raise ConnectionError("RADIUS client closed")
            ep = self._endpoints.get(key)
            if ep is not None and ep.transport is not None and not ep.transport.is_closing():
                return ep
            address = ipaddress.ip_address(st.server.address)
            family = socket.AF_INET if address.version == 4 else socket.AF_INET6
            nas_ip = self._settings.nas_ip
            local = None
            if nas_ip is not None and ipaddress.ip_address(nas_ip).version == address.version:
                local = (nas_ip, 0)
            loop = asyncio.get_running_loop()
            _, ep = await loop.create_datagram_endpoint(
                lambda: _Endpoint(st, port, self._dropped),
                remote_addr=(str(address), port),
                local_addr=local,
                family=family,
            )
            self._endpoints[key] = ep
            return ep

    async def _exchange(
        self, preferred: str | None, *, accounting: bool, build: Builder
    ) -> tuple[tuple[_ServerState, VerifiedReply, RequestContext] | None, list[str]]:
        tried: list[str] = []
        for st in self._order(preferred):
            if self._closed:
                break
            port = st.server.acct_port if accounting else st.server.auth_port
            tried.append(f"{st.server.name} ({st.server.address}:{port})")
            try:
                ep = await self._endpoint(st, port)
            except OSError as exc:
                _log.warning("RADIUS server %s: cannot open a socket: %s", st.server.label, exc)
                self._mark_dead(st)
                continue
            async with ep.identifier() as identifier:
                raw, request = build(st.server, identifier, ep.local_ip)
                answered = await self._send(st, ep, raw, request)
            if answered is not None:
                st.counters.answers += 1
                st.dead_until = None
                return (st, answered, request), tried
            if self._closed:
                break
            st.counters.timeouts += 1
            self._mark_dead(st)
            _log.warning(
                "RADIUS server %s port %d: no answer after %d tries",
                st.server.label,
                port,
                self._settings.tries,
            )
        return None, tried

    async def _send(
        self, st: _ServerState, ep: _Endpoint, raw: bytes, request: RequestContext
    ) -> VerifiedReply | None:
        future: asyncio.Future[VerifiedReply] = asyncio.get_running_loop().create_future()
        ep.pending[request.identifier] = _Waiter(request, future)
        try:
            for attempt in range(self._settings.tries):
                if attempt:
                    st.counters.retransmissions += 1
                else:
                    st.counters.requests += 1
                ep.send(raw)
                await asyncio.wait((future,), timeout=self._settings.timeout)
                if future.done():
                    return None if future.exception() is not None else future.result()
            return None
        finally:
            del ep.pending[request.identifier]
            if not future.done():
                future.cancel()

    def _mark_dead(self, st: _ServerState) -> None:
        st.dead_until = self._clock() + self._dead_time

    def _dropped(self, st: _ServerState, drop: ReplyDropped) -> None:
        counters = st.counters
        if drop.reason is DropReason.BAD_AUTHENTICATOR:
            counters.bad_authenticator += 1
            if not st.warned_secret:
                st.warned_secret = True
                _log.warning(
                    "RADIUS server %s: reply dropped, %s; wrong shared secret?", st.server.label, drop.detail
                )
            return
        if drop.reason is DropReason.MISSING_MESSAGE_AUTHENTICATOR:
            counters.bad_authenticator += 1
        elif drop.reason is DropReason.MALFORMED:
            counters.malformed += 1
        else:
            counters.unexpected += 1
        _log.debug("RADIUS server %s: reply dropped, %s: %s", st.server.label, drop.reason.value, drop.detail)
