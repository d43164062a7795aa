"""Redirect, drain and failover in the daemon (RFC 5685; the engine part is ``ike.redirect``).

Theory of operation
-------------------
:class:`Redirects` is the runtime's policy for moving clients between gateways. It is fed every
engine event (:meth:`Redirects.observe`) and answers three questions.

Gateway — where a new IKE_SA_INIT goes (:meth:`Redirects.init_target`, installed as the
engine's ``redirect_init`` hook, asked only for clients that announced redirect support):
nowhere while serving normally; the drain target while draining (``pyipsec drain --to GW``:
new clients are turned away too); with ``[settings.redirect] rule = "static"`` always its
``target``; with ``rule = "least-loaded"`` the gateway of ``gateways`` with the fewest live
SAs when it has fewer than this one (ties stay here), the figures coming from a
:class:`GatewayLoad` — the shared PostgreSQL store's live leases per ``gateway_id`` when the
gateway has one (:class:`StoreLoad`: refreshed in the background, a decision never waits for
the database), else the JSON ``load_file`` (:class:`FileLoad`); this gateway's own figure is the
source's, if it has one under its name, else its own count of established IKE SAs it serves.
Established SAs are moved with :meth:`Redirects.redirect_sas` (``pyipsec redirect``,
``drain``): an INFORMATIONAL REDIRECT, then the SA is deleted after ``timeout`` seconds if the
client has not left by itself.

Client — a redirect the engine reports (``IkeSaRedirected``): at most
``ike.redirect.REDIRECT_LIMIT`` per connection in ``REDIRECT_PERIOD`` seconds (a loop between
gateways ends with a clear error and no reconnect); an FQDN gateway is resolved first
(``resolve``: the event loop's resolver, never blocking it); then a new IKE SA goes to the
gateway with REDIRECTED_FROM and the virtual IPs of the old SA asked back. After an
INFORMATIONAL redirect the old SA stays until the new one is established, then it is deleted
(make-before-break); after an IKE_SA_INIT redirect it is already closed.

Failover — which peer address a (re)connection uses (:meth:`Redirects.initiate_args`): a
connection with several concrete ``remote_addrs`` entries moves on to the next one (round
robin) whenever an SA of it ends because the peer stopped answering (DPD, retransmissions),
so ``dpd_action``/``close_action = restart`` reconnects to the next gateway; the virtual IPs it
last had are asked back there (a shared lease store then returns them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Protocol

from pyipsec.config.model import Config
from pyipsec.config.redirect import RedirectRule, RedirectSettings
from pyipsec.control.protocol import JsonValue
from pyipsec.daemon.clock import Clock, TimerHandle
from pyipsec.daemon.progress import Waiters
from pyipsec.daemon.reconnect import Reconnect
from pyipsec.daemon.sharedstore import SharedStore
from pyipsec.errors import UsageError
from pyipsec.ike.engine import IkeEngine, Output
from pyipsec.ike.events import (
    CloseCause,
    Event,
    IkeSaClosed,
    IkeSaEstablished,
    IkeSaRedirected,
    VirtualIpAssigned,
)
from pyipsec.ike.redirect import RedirectLimiter
from pyipsec.net.addr import Endpoint, IPAddress
from pyipsec.store.sqlite import StoreError

__all__ = ["FileLoad", "GatewayLoad", "RedirectHost", "Redirects", "Resolver", "check_gateway"]

_log = logging.getLogger("pyipsec.daemon")

_ANY = ("%any", "0.0.0.0", "::")

#: resolve(name, then): call ``then`` with an address for ``name`` (None: it does not resolve)
Resolver = Callable[[str, Callable[[str | None], None]], None]


class GatewayLoad(Protocol):
    """Live IKE SAs (or leases) per gateway of the service, read without waiting."""

    def gateway_load(self) -> Mapping[str, int]: ...


#: How often the shared store's figures are refreshed (at most; only while decisions ask).
LOAD_REFRESH = 5.0


class StoreLoad:
    """The shared store's figures (``SharedStore.gateway_load``: live leases per gateway id, a
    query on the store's worker thread), refreshed in the background at most every ``every``
    seconds when a decision asks; a decision reads the last figures and never waits for the
    database. None until the first answer, none while the store is down (then nobody is
    redirected by load: better served here than sent by stale figures)."""

    def __init__(
        self, fetch: Callable[[], Awaitable[Mapping[str, int]]], clock: Clock, *, every: float = LOAD_REFRESH
    ) -> None:
        self.fetch = fetch
        self.clock = clock
        self.every = every
        self.figures: dict[str, int] = {}
        self._next = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def gateway_load(self) -> Mapping[str, int]:
        now = self.clock.now()
        if self._task is None and now >= self._next:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self.figures
            self._next = now + self.every
            self._task = loop.create_task(self._refresh())
        return self.figures

    async def _refresh(self) -> None:
        try:
            self.figures = dict(await self.fetch())
        except StoreError as exc:
            _log.debug("redirect: no load figures from the store: %s", exc)
            self.figures = {}
        finally:
            self._task = None


@dataclass(frozen=True)
class FileLoad:
    """Load figures from a JSON object ``{"gateway": count}`` (re-read at each decision)."""

    path: Path

    def gateway_load(self) -> Mapping[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            _log.warning("redirect load_file %s unusable: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            _log.warning("redirect load_file %s: not a JSON object", self.path)
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}


class RedirectHost(Protocol):
    """What :class:`Redirects` needs of the runtime."""

    config: Config
    engine: IkeEngine
    clock: Clock
    reconnect: Reconnect
    waiters: Waiters

    def apply(self, out: Output) -> None: ...

    def start_sa(
        self,
        name: str,
        *,
        remote: Endpoint | None = None,
        redirected_from: str = "",
        vips: tuple[IPAddress, ...] = (),
    ) -> tuple[int, Output]: ...


_DNS_NAME = re.compile(
    r"^(?=.{1,253}\.?$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
)


def check_gateway(gateway: str) -> str:
    """A gateway REDIRECT can name: an IP address or a DNS name (UsageError otherwise)."""
    try:
        ip_address(gateway)
    except ValueError:
        if not _DNS_NAME.match(gateway):
            raise UsageError(f"bad gateway {gateway!r}: give an IP address or a DNS name") from None
    return gateway


def _loop_resolver(name: str, then: Callable[[str | None], None]) -> None:
    """Resolve on the running event loop's resolver (in its executor), never blocking it."""

    async def lookup() -> None:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            _log.warning("cannot resolve redirect gateway %s: %s", name, exc)
            then(None)
            return
        then(str(infos[0][4][0]) if infos else None)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        then(None)
        return
    asyncio.ensure_future(lookup())  # noqa: RUF006 - it reports through ``then``


@dataclass
class _Failover:
    index: int = 0  # the remote_addrs entry in use
    vips: tuple[IPAddress, ...] = ()  # the virtual IPs we last had


@dataclass
class Redirects:
    host: RedirectHost
    resolve: Resolver = _loop_resolver
    load: GatewayLoad | None = None  # the shared store's figures; else ``load_file``'s
    draining: str | None = None  # drain target: every new client goes there too
    limiter: RedirectLimiter = field(default_factory=RedirectLimiter)
    _replacing: dict[int, int] = field(default_factory=dict)  # new SA id → the SA it replaces
    _leave_by: dict[int, TimerHandle] = field(default_factory=dict)  # redirected SA → its deadline
    _failover: dict[str, _Failover] = field(default_factory=dict)
    stopped_loops: list[str] = field(default_factory=list)  # connections whose redirect loop was cut
    store_id: str | None = None  # this gateway's id in the shared store's figures

    def __post_init__(self) -> None:
        self.host.engine.ctx.redirect_init = self.init_target
        store = getattr(self.host, "store", None)
        if self.load is None and isinstance(store, SharedStore):  # a shared store counts for all
            self.load = StoreLoad(store.gateway_load, self.host.clock)
            self.store_id = store.store.gateway_id

    @property
    def settings(self) -> RedirectSettings | None:
        return self.host.config.settings.redirect

    # -- gateway ----------------------------------------------------------------------------------

    def init_target(self, local: Endpoint, remote: Endpoint) -> str | None:
        """Where a new IKE_SA_INIT from ``remote`` is sent (None: served here)."""
        if self.draining is not None:
            return self.draining
        s = self.settings
        if s is None or s.rule is RedirectRule.NONE:
            return None
        if s.rule is RedirectRule.STATIC:
            return s.target
        return self._least_loaded(s, local)

    def _least_loaded(self, s: RedirectSettings, local: Endpoint) -> str | None:
        me = s.self_name or self.store_id or str(local.ip)
        source = self.load or (FileLoad(s.load_file) if s.load_file is not None else None)
        loads = dict(source.gateway_load()) if source is not None else {}
        loads.setdefault(me, self.host.engine.served())  # for each IKE_SA_INIT: no list_sas()
        own = loads[me]
        others = [(loads[g], i, g) for i, g in enumerate(s.gateways) if g != me and g in loads]
        if not others:
            return None
        load, _, best = min(others)
        return best if load < own else None

    def redirect_sas(self, sa_ids: list[int], gateway: str) -> dict[str, JsonValue]:
        """Send the clients of these established SAs to ``gateway``; each SA is deleted after
        ``timeout`` seconds if its client has not left by then."""
        check_gateway(gateway)
        timeout = self.settings.timeout if self.settings is not None else 30.0
        done: list[JsonValue] = []
        skipped: list[JsonValue] = []
        for sa_id in sa_ids:
            try:
                out = self.host.engine.redirect(sa_id, gateway, self.host.clock.now())
            except UsageError as exc:
                skipped.append({"sa_id": sa_id, "reason": str(exc)})
                continue
            self.host.apply(out)
            done.append(sa_id)
            accounting = getattr(self.host, "accounting", None)  # RADIUS: the Stop's cause
            if accounting is not None:
                accounting.redirected(sa_id)
            old = self._leave_by.pop(sa_id, None)
            if old is not None:
                old.cancel()
            self._leave_by[sa_id] = self.host.clock.call_later(
                timeout, functools.partial(self._overdue, sa_id)
            )
        return {"redirected": done, "skipped": skipped, "to": gateway}

    def _overdue(self, sa_id: int) -> None:
        self._leave_by.pop(sa_id, None)
        if self.host.engine.sa(sa_id) is None:
            return
        _log.info("IKE SA #%d: the redirected client did not leave in time, deleting it", sa_id)
        with contextlib.suppress(UsageError):
            self.host.apply(self.host.engine.terminate(sa_id, self.host.clock.now()))

    def drain(self, gateway: str | None) -> dict[str, JsonValue]:
        """Redirect every client (and every new one) to ``gateway``; None ends the drain."""
        if gateway is None:
            self.draining = None
            _log.info("drain ended: serving new clients again")
            return {"draining": None, "redirected": [], "skipped": []}
        self.draining = check_gateway(gateway)
        _log.info("draining: every client goes to %s", gateway, extra={"event": "drain"})
        ids = [sa.sa_id for sa in self.host.engine.list_sas() if sa.established and not sa.original_initiator]
        result = self.redirect_sas(ids, gateway)
        result["draining"] = gateway
        return result

    # -- client -----------------------------------------------------------------------------------

    def initiate_args(self, name: str) -> tuple[Endpoint | None, tuple[IPAddress, ...]]:
        """The peer to (re)connect ``name`` to — the remote_addrs entry failover is at — and
        the virtual IPs to ask back."""
        conn = self.host.engine.config.connections.get(name)
        f = self._failover.get(name)
        if conn is None or f is None:
            return None, ()
        concrete = [a for a in conn.remote_addrs if a not in _ANY]
        if len(concrete) < 2:
            return None, f.vips
        return Endpoint.parse(concrete[f.index % len(concrete)], conn.remote_port), f.vips

    def observe(self, e: Event) -> None:
        """Every engine event passes here (after the runtime applied it)."""
        if isinstance(e, IkeSaRedirected):
            self._follow(e)
        elif isinstance(e, VirtualIpAssigned):
            self._failover.setdefault(e.connection, _Failover()).vips = e.addresses
        elif isinstance(e, IkeSaEstablished):
            old = self._replacing.pop(e.sa_id, None)
            if old is not None and self.host.engine.sa(old) is not None:
                _log.info("%s: IKE SA #%d replaces #%d after a redirect", e.connection, e.sa_id, old)
                with contextlib.suppress(UsageError):
                    self.host.apply(self.host.engine.terminate(old, self.host.clock.now()))
        elif isinstance(e, IkeSaClosed):
            self._closed(e)

    def _closed(self, e: IkeSaClosed) -> None:
        handle = self._leave_by.pop(e.sa_id, None)
        if handle is not None:
            handle.cancel()
        if self._replacing.pop(e.sa_id, None) is not None and e.cause is not CloseCause.REDIRECTED:
            _log.warning("%s: the IKE SA to the redirect target failed: %s", e.connection, e.reason)
        if e.cause is CloseCause.TIMEOUT:
            conn = self.host.engine.config.connections.get(e.connection)
            if conn is not None and sum(a not in _ANY for a in conn.remote_addrs) > 1:
                f = self._failover.setdefault(e.connection, _Failover())
                f.index += 1
                endpoint, _ = self.initiate_args(e.connection)
                _log.info("%s: the gateway stopped answering; next: %s", e.connection, endpoint)

    def _follow(self, e: IkeSaRedirected) -> None:
        now = self.host.clock.now()
        if not self.limiter.allow(e.connection, now):
            why = (
                f"not following the redirect to {e.gateway}: more than {self.limiter.limit} "
                f"redirects in {self.limiter.period:.0f} s (a redirect loop?)"
            )
            _log.error("%s: %s", e.connection, why, extra={"sa": e.connection, "event": "redirect_loop"})
            self._not_followed(e, why)
            self.stopped_loops.append(e.connection)
            self.host.reconnect.down_requested(e.connection)  # the loop ends here, no reconnect
            return
        try:
            ip_address(e.gateway)
        except ValueError:
            self.resolve(e.gateway, lambda addr: self._start(e, addr))
            return
        self._start(e, e.gateway)

    def _not_followed(self, e: IkeSaRedirected, why: str) -> None:
        if not e.authenticated:
            self.host.waiters.redirected(e.sa_id, None, why)

    def _start(self, e: IkeSaRedirected, addr: str | None) -> None:
        if addr is None:
            why = f"redirect gateway {e.gateway} does not resolve"
            _log.error("%s: %s", e.connection, why)
            self._not_followed(e, why)
            return
        conn = self.host.engine.config.connections.get(e.connection)
        if conn is None:
            return
        try:
            new_id, out = self.host.start_sa(
                e.connection,
                remote=Endpoint.parse(addr, conn.remote_port),
                redirected_from=e.redirected_from,
                vips=e.virtual_ips,
            )
        except (UsageError, ValueError) as exc:
            why = f"cannot follow the redirect to {e.gateway}: {exc}"
            _log.error("%s: %s", e.connection, why)
            self._not_followed(e, why)
            return
        if e.authenticated:
            self._replacing[new_id] = e.sa_id
        else:
            replaced = self._replacing.pop(e.sa_id, None)  # a replacement redirected on: it goes on
            if replaced is not None:
                self._replacing[new_id] = replaced
            self.host.waiters.redirected(e.sa_id, new_id, f"{e.redirected_from} sends us to {e.gateway}")
        self.host.apply(out)
