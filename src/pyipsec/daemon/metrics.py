"""Prometheus metrics of the daemon and their HTTP endpoint (``[settings] metrics``).

Theory of operation
-------------------
:class:`Metrics` owns a ``CollectorRegistry`` of its own (never the process-wide default), in
two halves:

* counters fed from the engine's events: the runtime hands every event to :meth:`Metrics.observe`
  (one hook line in ``Runtime._event``) and every finished lookup to :meth:`Metrics.lookup_done`
  (``daemon.lookups``). A handshake is an IKE SA set up by IKE_SA_INIT and IKE_AUTH (a
  reauthentication is one; an IKE SA rekey is not): it succeeds with ``IkeSaEstablished`` and
  fails with an ``IkeSaClosed`` of an SA that never was established, by the error Notify that
  ended it (``AUTHENTICATION_FAILED``, ``NO_PROPOSAL_CHOSEN``, …) or else by its close cause
  (``timeout``, ``abandoned`` half-open SAs, ``local``, …). Child SAs refused while the IKE SA
  lives on (``TS_UNACCEPTABLE`` …) are ``ChildSaFailed``. An IKE SA sent to another gateway in
  IKE_SA_INIT (RFC 5685, ``daemon.redirect``) is no failure: its result is ``redirected``, on
  the gateway and on the client. A DPD failure is an established IKE SA
  closed because the peer stopped answering (``CloseCause.TIMEOUT``).
* a collector that reads the daemon's state when scraped: IKE SAs by state and connection,
  installed Child SAs, pool addresses used and free, the engine's and the UDP sockets' counters,
  the data plane's drops by reason, and bytes and packets per connection.

The engine is single-threaded asyncio, so nothing here runs on another thread: the endpoint
(:class:`MetricsEndpoint`) is an asyncio server on the daemon's loop. A scrape first fetches
the data plane's counters behind a barrier, at most ``COUNTERS_TIMEOUT`` (the ``status``
command's code path, ``Commands.counters``), then renders the registry in the loop thread.

Per-connection traffic must only grow, but the data plane counts per Child SA and forgets an SA
when it is removed. So the last counters seen of each Child SA (at a scrape, or the data
plane's latest report when its ``ChildSaRemoved`` arrives) are kept; once the SA is gone from
the data plane's report they are added to its connection's retired total. Traffic that an SA
carries after the last report before its removal is not counted.

The endpoint answers ``GET /metrics`` (and ``HEAD``) with the text exposition format (or
OpenMetrics when the scraper asks for it), 404 for other paths, 405 for other methods, 400 for
what is not HTTP, 431 for a request head beyond :data:`MAX_REQUEST`, and hangs up on clients
that send nothing for :data:`REQUEST_TIMEOUT`; one request per connection, at most
:data:`MAX_CLIENTS` connections at once. The listening socket is bound by
:meth:`MetricsEndpoint.open` before the daemon starts anything else, so an address in use or
not ours refuses the start with one line naming ``settings.metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pyipsec.config.model import Config
from pyipsec.config.values import HostPort
from pyipsec.daemon.commands import Commands
from pyipsec.daemon.host import IkePorts
from pyipsec.daemon.initqueue import InitQueue
from pyipsec.daemon.sink import CounterMap, DataplaneSink
from pyipsec.errors import ConfigError
from pyipsec.ike.engine import IkeEngine
from pyipsec.ike.events import (
    ChildSaFailed,
    ChildSaInstalled,
    ChildSaRemoved,
    CloseCause,
    Event,
    IkeSaClosed,
    IkeSaEstablished,
)
from pyipsec.ike.info import IkeSaInfo
from pyipsec.ike.lookups import Answer, EapRelay, EapRelayAnswer, Lookup, RevocationAnswer

__all__ = [
    "DROP_REASONS",
    "MAX_CLIENTS",
    "MAX_REQUEST",
    "REQUEST_TIMEOUT",
    "Metrics",
    "MetricsEndpoint",
    "MetricsSource",
]

_log = logging.getLogger("pyipsec.daemon")

#: the longest request head (request line and headers) the endpoint reads
MAX_REQUEST = 8192
#: how long a client may take to send its request
REQUEST_TIMEOUT = 10.0
#: connections served at once; more are closed at once (a scraper needs one)
MAX_CLIENTS = 16

#: the data plane's drop counters (``DataplaneSink.totals``) → the ``reason`` label
DROP_REASONS = {
    "replay_drops": "replay",
    "integrity_failures": "icv",
    "unknown_spi": "no_sa",
    "no_policy": "no_policy",  # outbound: no policy for the packet
    "policy_drops": "policy",  # inbound: outside the Child SA's traffic selectors
    "pad_errors": "padding",
    "esp_malformed": "malformed_esp",
    "malformed": "malformed",
    "expired": "expired",
    "seq_exhausted": "seq_exhausted",
    "no_route": "no_route",
}

#: the engine's drops of IKE datagrams (``EngineStats``) → the ``reason`` label
_IKE_DROPS = {
    "malformed": "malformed",
    "unknown_spi": "unknown_spi",
    "init_blocked": "init_blocked",
    "init_over_limit": "init_over_limit",
}

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class MetricsSource(Protocol):
    """What the metrics read of the runtime."""

    config: Config
    engine: IkeEngine
    sink: DataplaneSink
    ports: IkePorts
    inits: InitQueue
    commands: Commands


class Metrics:
    def __init__(self, daemon: MetricsSource) -> None:
        self.d = daemon
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.handshakes = Counter(
            "pyipsec_ike_handshakes",
            "IKE SAs set up by IKE_SA_INIT and IKE_AUTH (reauthentications too), by outcome",
            ("connection", "result"),
            registry=r,
        )
        self.handshake_failures = Counter(
            "pyipsec_ike_handshake_failures",
            "Failed IKE handshakes by reason: the error Notify, else the close cause",
            ("reason",),
            registry=r,
        )
        self.child_failures = Counter(
            "pyipsec_child_sa_failures",
            "Child SAs refused or failed while their IKE SA lives on, by error Notify",
            ("connection", "reason"),
            registry=r,
        )
        self.rekeys = Counter(
            "pyipsec_rekeys", "Completed rekeys: ike, child, and reauth(entications)", ("kind",), registry=r
        )
        for kind in ("ike", "child", "reauth"):
            self.rekeys.labels(kind)
        self.dpd_failures = Counter(
            "pyipsec_dpd_failures",
            "Established IKE SAs closed because the peer stopped answering (DPD or another request)",
            registry=r,
        )
        self.radius_latency = Histogram(
            "pyipsec_radius_request_duration_seconds",
            "Time from relaying an EAP message to RADIUS to its answer (retransmissions included)",
            ("result",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.revocation_latency = Histogram(
            "pyipsec_revocation_check_duration_seconds",
            "Time to check a peer certificate's revocation (OCSP, CRL)",
            ("result",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._conn_of: dict[bytes, str] = {}  # live Child SAs: inbound SPI → connection
        self._last: dict[bytes, tuple[str, dict[str, int]]] = {}  # last counters seen, by SPI
        self._gone: set[bytes] = set()  # removed Child SAs whose last counters are not retired yet
        self._retired: dict[str, dict[str, int]] = {}  # traffic of removed Child SAs, by connection
        r.register(_StateCollector(self))

    # -- events ---------------------------------------------------------------------------------

    def observe(self, e: Event) -> None:
        """Count one engine event (the runtime calls this for every event it applies)."""
        if isinstance(e, IkeSaEstablished):
            if e.rekeyed_from is not None:
                self.rekeys.labels("ike").inc()
            else:
                self.handshakes.labels(e.connection, "established").inc()
                if e.reauth_of is not None:
                    self.rekeys.labels("reauth").inc()
        elif isinstance(e, IkeSaClosed):
            if e.cause.replaced:
                return
            if e.cause is CloseCause.REDIRECTED and not e.established:
                self.handshakes.labels(e.connection, "redirected").inc()
            elif not e.established:
                reason = e.error.name if e.error is not None else e.cause.value
                self.handshakes.labels(e.connection, "failed").inc()
                self.handshake_failures.labels(reason).inc()
            elif e.cause is CloseCause.TIMEOUT:
                self.dpd_failures.inc()
        elif isinstance(e, ChildSaFailed):
            reason = e.error.name if e.error is not None else "failed"
            self.child_failures.labels(e.connection, reason).inc()
        elif isinstance(e, ChildSaInstalled):
            self._conn_of[e.spec.spi_in] = e.connection
            if e.replaces is not None:
                self.rekeys.labels("child").inc()
        elif isinstance(e, ChildSaRemoved):
            conn = self._conn_of.pop(e.spi_in, e.connection)
            latest = self.d.sink.counters()
            if e.spi_in in latest:
                self._seen(e.spi_in, conn, latest[e.spi_in])
            self._gone.add(e.spi_in)
            self._sweep(latest)

    def lookup_done(self, lookup: Lookup, answer: Answer, seconds: float) -> None:
        """A lookup took ``seconds`` (``daemon.lookups``)."""
        if isinstance(lookup, EapRelay) and isinstance(answer, EapRelayAnswer):
            self.radius_latency.labels(answer.result.value).observe(seconds)
        elif isinstance(answer, RevocationAnswer):
            self.revocation_latency.labels("good" if answer.ok else "refused").observe(seconds)

    # -- traffic --------------------------------------------------------------------------------

    def _seen(self, spi: bytes, conn: str, counters: dict[str, int]) -> None:
        old = self._last.get(spi)
        if old is not None:  # counters only grow; a stale report must not take any back
            counters = {k: max(v, old[1].get(k, 0)) for k, v in counters.items()}
        self._last[spi] = (conn, counters)

    def update_traffic(self, counters: CounterMap) -> None:
        """Take the data plane's counters: remember each Child SA's, retire those it dropped."""
        for spi, c in counters.items():
            conn = self._conn_of.get(spi) or (self._last[spi][0] if spi in self._last else None)
            if conn is not None:
                self._seen(spi, conn, c)
        self._sweep(counters)

    def _sweep(self, latest: CounterMap) -> None:
        """Removed Child SAs the data plane no longer reports: their last counters are final."""
        for spi in [s for s in self._gone if s not in latest]:
            self._gone.discard(spi)
            last = self._last.pop(spi, None)
            if last is None:
                continue
            total = self._retired.setdefault(last[0], {})
            for k, v in last[1].items():
                total[k] = total.get(k, 0) + v

    def traffic(self) -> dict[str, dict[str, int]]:
        """Counters per connection: retired Child SAs plus the last seen of the others."""
        out = {conn: dict(c) for conn, c in self._retired.items()}
        for conn, c in self._last.values():
            total = out.setdefault(conn, {})
            for k, v in c.items():
                total[k] = total.get(k, 0) + v
        return out

    # -- scraping -------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch the data plane's counters (behind a barrier, bounded as ``status`` does)."""
        self.update_traffic(await self.d.commands.counters())

    async def scrape(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (in the format ``accept`` asks for) and its Content-Type."""
        await self.refresh()
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _StateCollector(Collector):
    """Gauges and counters read from the daemon at scrape time (in the loop thread)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        d = self.m.d
        sas = d.engine.list_sas()
        ike = GaugeMetricFamily(
            "pyipsec_ike_sas", "IKE SAs by state and connection", labels=("connection", "state")
        )
        by_state: dict[tuple[str, str], int] = {}
        children: dict[str, int] = {name: 0 for name in d.config.connections}
        for sa in sas:
            key = (sa.connection, sa.state.name.lower())
            by_state[key] = by_state.get(key, 0) + 1
            children[sa.connection] = children.get(sa.connection, 0) + len(sa.children)
        for (conn, state), n in sorted(by_state.items()):
            ike.add_metric((conn, state), n)
        yield ike
        child = GaugeMetricFamily("pyipsec_child_sas", "Child SAs by connection", labels=("connection",))
        for conn, n in sorted(children.items()):
            child.add_metric((conn,), n)
        yield child
        yield GaugeMetricFamily(
            "pyipsec_ike_half_open_sas",
            "Responder IKE SAs between IKE_SA_INIT and IKE_AUTH",
            value=d.engine.half_open,
        )
        yield self._pools(sas)
        yield from self._traffic()
        drops = CounterMetricFamily(
            "pyipsec_dataplane_drops", "Packets the data plane dropped, by reason", labels=("reason",)
        )
        totals = d.sink.totals()
        for name, reason in DROP_REASONS.items():
            drops.add_metric((reason,), totals.get(name, 0))
        yield drops
        es = d.engine.stats
        ike_drops = CounterMetricFamily(
            "pyipsec_ike_datagrams_dropped", "IKE datagrams the daemon dropped, by reason", labels=("reason",)
        )
        for attr, reason in _IKE_DROPS.items():
            ike_drops.add_metric((reason,), getattr(es, attr))
        ike_drops.add_metric(("init_queue_full",), d.inits.dropped)
        yield ike_drops
        yield CounterMetricFamily(
            "pyipsec_ike_cookies_sent", "IKE_SA_INIT requests answered with a COOKIE", value=es.cookies_sent
        )
        half_open = CounterMetricFamily(
            "pyipsec_ike_half_open_closed", "Half-open IKE SAs given up, by reason", labels=("reason",)
        )
        half_open.add_metric(("expired",), es.half_open_expired)
        half_open.add_metric(("evicted",), es.half_open_evicted)
        yield half_open
        udp = CounterMetricFamily(
            "pyipsec_ike_udp_datagrams",
            "IKE datagrams on the daemon's own UDP sockets",
            labels=("direction",),
        )
        udp.add_metric(("received",), d.ports.stats.received)
        udp.add_metric(("sent",), d.ports.stats.sent)
        yield udp

    def _pools(self, sas: Iterable[IkeSaInfo]) -> Metric:
        """Addresses of each pool leased to live IKE SAs' peers, and free."""
        fam = GaugeMetricFamily(
            "pyipsec_pool_addresses",
            "Virtual-IP pool addresses by state (used, free)",
            labels=("pool", "state"),
        )
        leased = {
            ip
            for sa in sas
            if not sa.original_initiator  # a client's own virtual IPs come from the gateway's pool
            for ip in sa.virtual_ips
        }
        for name, pool in sorted(self.m.d.engine.config.pools.items()):
            first, last = int(pool.first), int(pool.last)
            used = sum(1 for ip in leased if ip.version == pool.version and first <= int(ip) <= last)
            size = last - first + 1
            fam.add_metric((name, "used"), used)
            fam.add_metric((name, "free"), size - used)
        return fam

    def _traffic(self) -> Iterator[Metric]:
        traffic = self.m.traffic()
        for what in ("bytes", "packets"):
            fam = CounterMetricFamily(
                f"pyipsec_child_{what}",
                f"ESP {what} of the Child SAs of each connection (removed ones included), by direction",
                labels=("connection", "direction"),
            )
            for conn, c in sorted(traffic.items()):
                for direction in ("in", "out"):
                    fam.add_metric((conn, direction), c.get(f"{what}_{direction}", 0))
            yield fam


class MetricsEndpoint:
    """The HTTP endpoint on the daemon's event loop (module docstring)."""

    def __init__(self, metrics: Metrics, where: HostPort) -> None:
        self.metrics = metrics
        self.where = where
        self._sock: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port listened on (as bound: ``0`` in the setting picks a free one in tests)."""
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    def open(self) -> None:
        """Bind the listening socket; an address in use or not ours is a ``ConfigError``."""
        family = socket.AF_INET6 if self.where.host.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((str(self.where.host), self.where.port))
            sock.listen(64)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            why = {
                errno.EADDRINUSE: "the port is in use",
                errno.EADDRNOTAVAIL: "no interface has that address",
                errno.EACCES: "permission denied",
            }.get(exc.errno or 0, exc.strerror or str(exc))
            raise ConfigError(f"settings.metrics: cannot listen on {self.where}: {why}") from None
        self._sock = sock

    async def start(self) -> None:
        """Serve on the running loop (binding first, if :meth:`open` was not called)."""
        if self._sock is None:
            self.open()
        self._server = await asyncio.start_server(self._client, sock=self._sock, limit=MAX_REQUEST)
        _log.info("metrics endpoint http://%s/metrics", self.where)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif self._sock is not None:
            self._sock.close()
        self._sock = None
        for task in list(self._clients):
            task.cancel()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= MAX_CLIENTS or task is None:
            writer.close()
            return
        self._clients.add(task)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            except (asyncio.LimitOverrunError, ValueError):
                writer.write(_response(431, "Request Header Fields Too Large", b"request head too large\n"))
            except (asyncio.IncompleteReadError, TimeoutError):
                return  # hung up or said nothing: nobody to answer
            else:
                writer.write(await self.respond(head))
            with contextlib.suppress(OSError):
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            self._clients.discard(task)

    async def respond(self, head: bytes) -> bytes:
        """The whole HTTP response to a request head (request line and headers)."""
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError:
            return _response(400, "Bad Request", b"not an HTTP request\n")
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _response(400, "Bad Request", b"not an HTTP/1.x request\n")
        method, target, _version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                return _response(400, "Bad Request", b"malformed header\n")
            headers[name.lower()] = value.strip()
        if target.split("?", 1)[0] != "/metrics":
            return _response(404, "Not Found", b"only /metrics is here\n")
        if method not in ("GET", "HEAD"):
            return _response(
                405, "Method Not Allowed", b"GET or HEAD only\n", extra=(("Allow", "GET, HEAD"),)
            )
        try:
            body, content_type = await self.metrics.scrape(headers.get("accept", ""))
        except Exception:  # a bug must cost one scrape, not the daemon
            _log.exception("rendering the metrics failed")
            return _response(500, "Internal Server Error", b"rendering the metrics failed\n")
        return _response(200, "OK", body, content_type=content_type, head_only=method == "HEAD")


def _response(
    status: int,
    phrase: str,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    extra: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
) -> bytes:
    fields = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in extra),
    ]
    return ("\r\n".join(fields) + "\r\n\r\n").encode("ascii") + (b"" if head_only else body)
