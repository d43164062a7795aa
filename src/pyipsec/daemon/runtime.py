"""The daemon's runtime: glue between the engine and the world (DESIGN.md §1, §3, §4).

Theory of operation
-------------------
Like aioquic's ``asyncio/protocol.py``, the runtime only moves things in and out. IKE datagrams
(from the IKE ports, and from the data plane, which owns the NAT-T port), the data plane's
lifetime signals, the one timer armed for the engine's ``next_deadline()``, and control
commands go into the :class:`IkeEngine`; every ``Output`` comes back through
:meth:`Runtime.apply`, which forwards its events and then sends its datagrams.

Events go to the data-plane sink (Child SAs installed, activated, removed, moved; NAT
keepalives), to the host (a client's virtual IPs and DNS, put back when its last SA goes), to
the ``up``/``down`` waiters (``daemon.progress``), to the reconnect policy
(``daemon.reconnect``), to redirect and failover (``daemon.redirect``) and to the metrics
(``daemon.metrics``, served when configured).
Control commands are ``daemon.commands``; the source-address choice, address watching and
MOBIKE moves are ``daemon.mobike``; :meth:`Runtime.reload` (the control command and SIGHUP)
re-reads the configuration file without dropping SAs (``daemon.reload``).

Make-before-break: a message that lets the peer use a new Child SA (the CREATE_CHILD_SA or
IKE_AUTH response, the Delete of the SA it replaces) must leave only once the data plane holds
that SA. So events are applied before datagrams are sent; IKE on the NAT-T port rides the data
plane's ordered channel behind the updates; IKE on port 500 (our own socket) waits for a
data-plane barrier (at most :data:`BARRIER_TIMEOUT`), and later datagrams queue behind it. A
Child SA replaced by a rekey or a reauthentication (``ChildSaRemoved.replaced_by``) stops sending
after the batch's activations and keeps decrypting for :data:`REKEY_LINGER` seconds.

Break only after the last packet arrived: the message that lets the peer remove its inbound half
of a Child SA we stop sending on (the Delete of a rekeyed Child SA, or of a reauthenticated IKE
SA, request or response) leaves :data:`RETIRE_DRAIN` seconds after the data plane confirmed the
switch. Packets sealed on the old SA just before the switch are still on the wire or in the
peer's ESP queue, and a peer may remove the old SA the moment it reads that message: charon
5.9.8 destroys a reauthenticated IKE SA's Child SAs when the Delete's response arrives, and its
kernel-libipsec then drops the ESP it had queued ("does not belong to an installed SA").

Lookups: an exchange that waits for I/O (a RADIUS round trip, a revocation check, a lease or
an EAP user from the shared PostgreSQL store, ``daemon.sharedstore``) reaches
``daemon.lookups`` as ``LookupNeeded``; its answer goes back into the engine. IKE SAs whose
peer a RADIUS server accepted are accounted for (``daemon.accounting``); their Child SAs'
last counters are read from the data plane before they are removed. With ``save_keys``, every
event also goes to ``daemon.savekeys``, which writes the keys it carries for Wireshark.

New IKE SAs wait, established ones do not (``daemon.initqueue``): IKE_SA_INIT requests queue
and are served a few per round of the event loop, other IKE datagrams go to the engine at once.

Reauthentication (RFC 7296 §2.8.3) needs nothing more: the new IKE SA's Child SAs are installed
(the newest policy of equal selectors wins), the old SA closes with a ``replaced`` cause, which
neither restores the host network nor reconnects.

Under systemd, :meth:`Runtime.run` tells it when the daemon is ready (ports open, control socket
listening), pings its watchdog from the event loop, refreshes a status line and says when it is
stopping (``daemon.notify``).

Everything outside the engine is injected, the production classes being the defaults: the
clock (``daemon.clock``), the IKE ports and host network (``daemon.host``), the data-plane sink
(``daemon.sink``, ``daemon.dpsink``) and the address source (``daemon.mobike``). Tests run
runtimes over a memory network under a virtual clock (``tests/support``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections import deque
from pathlib import Path

from pyipsec.config.model import Config
from pyipsec.control.protocol import JsonValue
from pyipsec.control.server import ControlServer
from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.daemon.accounting import Accounting
from pyipsec.daemon.build import build_engine, build_radius, build_revocation
from pyipsec.daemon.clock import Clock, LoopClock, TimerHandle, sleep
from pyipsec.daemon.commands import Commands
from pyipsec.daemon.dpsink import start_dataplane
from pyipsec.daemon.host import HostNet, IkePorts, PortFactory, udp_ports
from pyipsec.daemon.initqueue import InitQueue
from pyipsec.daemon.lookups import Lookups
from pyipsec.daemon.metrics import Metrics, MetricsEndpoint
from pyipsec.daemon.mobike import AddressSource, AddressWatcher, HostAddresses, initiator_source
from pyipsec.daemon.notify import Notifier
from pyipsec.daemon.progress import Waiters
from pyipsec.daemon.reconnect import Reconnect
from pyipsec.daemon.redirect import Redirects
from pyipsec.daemon.reload import reload_config
from pyipsec.daemon.savekeys import KeyLog
from pyipsec.daemon.sharedstore import SharedStore
from pyipsec.daemon.sink import DataplaneSink, NullDataplane, SinkFactory
from pyipsec.errors import PyIpsecError, UsageError
from pyipsec.ike.engine import Output
from pyipsec.ike.events import (
    ChildSaAddressesChanged,
    ChildSaInstalled,
    ChildSaOutboundActivated,
    ChildSaRemoved,
    ChildSaSignal,
    Event,
    IkeSaClosed,
    IkeSaEstablished,
    LookupNeeded,
    NatKeepalive,
    Replacement,
    VirtualIpAssigned,
)
from pyipsec.ike.lookups import Answer
from pyipsec.io.hostnet import HostNetwork
from pyipsec.net.addr import Datagram, Endpoint, IPAddress

__all__ = ["BARRIER_TIMEOUT", "REKEY_LINGER", "RETIRE_DRAIN", "SHUTDOWN_GRACE", "Runtime"]

_log = logging.getLogger("pyipsec.daemon")

#: How long a Child SA replaced by a rekey keeps decrypting inbound ESP after its Delete.
REKEY_LINGER = 2.0
#: The longest IKE datagrams wait for the data plane to confirm the SA updates before them.
BARRIER_TIMEOUT = 0.5
#: How long the message that retires an outbound SA waits after the switch (module docstring):
#: far longer than the queues between our data plane and the peer's take to drain, far shorter
#: than any retransmission timeout.
RETIRE_DRAIN = 0.25
#: How long shutdown lets the Deletes leave.
SHUTDOWN_GRACE = 0.2


class _Held:
    """Datagrams to send in order; not ``ready`` while they wait for a data-plane barrier."""

    __slots__ = ("datagrams", "ready", "timer")

    def __init__(self, datagrams: tuple[Datagram, ...]) -> None:
        self.datagrams = datagrams
        self.ready = True
        self.timer: TimerHandle | None = None


class Runtime:
    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        control_path: Path | None = None,
        clock: Clock | None = None,
        ports: PortFactory = udp_ports,
        dataplane: SinkFactory = start_dataplane,
        hostnet: HostNet | None = None,
        addresses: AddressSource | None = None,
        rng: RandomSource = OS_RANDOM,
        notifier: Notifier | None = None,
    ) -> None:
        s = config.settings
        self.config = config
        self.config_path = config_path  # what reload() re-reads (daemon.reload)
        self.engine, self.store = build_engine(config, rng=rng)
        self.clock: Clock = clock or LoopClock()
        self.notifier = notifier or Notifier.from_environment(self.clock)  # systemd (daemon.notify)
        self.ports: IkePorts = ports(s, self.datagram_received)
        self.sink: DataplaneSink = NullDataplane()  # until start()
        self._sink_factory = dataplane
        self.hostnet: HostNet = hostnet or HostNetwork(s.tun, resolv_conf=s.resolv_conf)
        self.addresses: AddressSource = addresses or HostAddresses(exclude_ifaces=(s.tun,))
        self.waiters = Waiters()
        self.reconnect = Reconnect(config, self.clock, self.initiate)
        self.redirects = Redirects(self)  # RFC 5685 redirect, drain, failover (daemon.redirect)
        self.mobike = AddressWatcher(self.engine, self.addresses, self.clock, self.apply)
        self.commands = Commands(self)
        self.control = ControlServer(control_path or s.control_socket, self.commands.handle)
        self._timer: TimerHandle | None = None
        self._held: deque[_Held] = deque()  # datagrams behind a barrier (or queued behind those)
        self._children: dict[int, bytes] = {}  # child_id -> our inbound SPI
        self._stop = asyncio.Event()
        self.inits = InitQueue(self.clock, self._receive)  # IKE_SA_INIT requests wait here
        self.metrics = Metrics(self)  # counted always, served with [settings] metrics (daemon.metrics)
        self.metrics_endpoint = MetricsEndpoint(self.metrics, s.metrics) if s.metrics is not None else None
        self.lookups = Lookups(
            self._answer,
            radius=build_radius(config),
            revocation=build_revocation(config),
            now=self.clock.now,
            timed=self.metrics.lookup_done,
            store=self.store if isinstance(self.store, SharedStore) else None,  # store.postgres
        )
        self.keylog = None if s.save_keys is None else KeyLog(s.save_keys)  # Wireshark keys
        self.accounting: Accounting | None = None
        if config.radius is not None and config.radius.accounting and self.lookups.radius is not None:
            self.accounting = Accounting(
                self.lookups.radius,
                self.clock,
                lambda done: self.sink.barrier(done),  # noqa: PLW0108 - the sink is replaced in start()
                interim_interval=float(config.radius.interim_interval),
            )

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the daemon until SIGINT/SIGTERM or :meth:`stop`."""
        if self.metrics_endpoint is not None:  # first: a port in use refuses the start (ConfigError)
            self.metrics_endpoint.open()
        self.start()
        await self.control.start()
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)  # the result is logged
        self.notifier.ready(self.status_text())
        self.notifier.start(self.status_text)
        try:
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            await self.shutdown()
            self.notifier.shutdown()

    def status_text(self) -> str:
        """One line for systemd's ``STATUS=``."""
        sas = self.engine.list_sas()
        up = [sa for sa in sas if sa.established]
        return f"{len(up)} IKE SAs up ({len(sas)} in all), {sum(len(sa.children) for sa in up)} Child SAs"

    def start(self) -> None:
        """Start the data plane, open the ports, start the connections that start with us."""
        self.sink = self._sink_factory(self.config.settings, self)
        self.ports.open()
        if isinstance(self.store, SharedStore):  # heartbeats; frees this gateway's old leases
            self.store.start()
        _log.info("pyipsec daemon started with %d connections", len(self.config.connections))
        self.mobike.start()  # our addresses first: IKE_AUTH announces them (RFC 4555 §3.4)
        for name in sorted(self.reconnect.at_boot):
            self.initiate(name)

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> dict[str, JsonValue]:
        """Re-read the configuration file without dropping SAs (``daemon.reload``): the one
        entry point of ``pyipsec reload`` and SIGHUP. The summary, or the errors of a refused file.
        systemd hears RELOADING=1 before and READY=1 after, also when the file is refused (the
        old configuration keeps running)."""
        self.notifier.reloading()
        try:
            return reload_config(self)
        finally:
            self.notifier.ready(self.status_text())

    async def shutdown(self) -> None:
        """Delete every IKE SA, let the Deletes leave, put the host back, close everything."""
        _log.info("shutting down: deleting %d IKE SAs", len(self.engine.list_sas()))
        self.reconnect.stop()
        self.mobike.stop()
        self.inits.close()
        for sa in self.engine.list_sas():
            with contextlib.suppress(UsageError):
                self.apply(self.engine.terminate(sa.sa_id, self.clock.now()))
        await sleep(self.clock, SHUTDOWN_GRACE)
        if self._timer is not None:
            self._timer.cancel()
        if self.accounting is not None:
            self.accounting.close()
        self.lookups.close()
        self.hostnet.restore()
        self.sink.close()
        await self.control.close()
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.close()
        self.ports.close()
        if self.store is not None:
            self.store.close()

    # -- in ---------------------------------------------------------------------------------------

    def datagram_received(self, d: Datagram) -> None:
        if not self.inits.offer(d):  # a new IKE SA waits its turn (daemon.initqueue)
            self._receive(d)

    def _receive(self, d: Datagram) -> None:
        self.apply(self.engine.receive_datagram(d, self.clock.now()))

    def signal_received(self, signal: ChildSaSignal) -> None:
        self.apply(self.engine.handle_signal(signal, self.clock.now()))

    def _answer(self, ticket: int, answer: Answer) -> None:
        self.apply(self.engine.answer(ticket, answer, self.clock.now()))

    def _on_timer(self) -> None:
        self._timer = None
        self.apply(self.engine.handle_timer(self.clock.now()))

    def start_sa(
        self,
        name: str,
        *,
        remote: Endpoint | None = None,
        redirected_from: str = "",
        vips: tuple[IPAddress, ...] = (),
    ) -> tuple[int, Output]:
        """``engine.initiate`` from the address the routing table picks for a road warrior; to
        the failover peer and with the old virtual IPs unless told (``daemon.redirect``)."""
        if remote is None:
            remote, vips = self.redirects.initiate_args(name)
        conn = self.engine.config.connections.get(name)
        to = str(remote.ip) if remote is not None else None
        local = initiator_source(conn, self.addresses.route_source, to) if conn is not None else None
        return self.engine.initiate(
            name, self.clock.now(), local=local, remote=remote, redirected_from=redirected_from, vips=vips
        )

    def initiate(self, name: str) -> None:
        try:
            self.apply(self.start_sa(name)[1])
        except UsageError as exc:
            _log.error("cannot start %s: %s", name, exc)

    # -- out --------------------------------------------------------------------------------------

    def apply(self, out: Output) -> None:
        """Apply the events, then send the datagrams (make-before-break, module docstring)."""
        sync = False
        retiring: list[bytes] = []
        for e in out.events:
            try:
                self._event(e, retiring)
            except (PyIpsecError, OSError) as exc:
                _log.error("applying %s failed: %s", type(e).__name__, exc)
            self.metrics.observe(e)
            sync = sync or isinstance(e, ChildSaInstalled | ChildSaOutboundActivated)
        # replaced Child SAs stop sending only after the batch's activations, so that the data
        # plane never sees a moment without an outbound SA for their selectors
        for spi_in in retiring:
            self.sink.retire(spi_in)
        self._send(out.datagrams, sync=sync, drain=bool(retiring))
        self._rearm()

    def _event(self, e: Event, retiring: list[bytes]) -> None:
        """Apply one engine event; replaced Child SAs to retire go into ``retiring``."""
        if self.keylog is not None:
            self.keylog.feed(e)
        if isinstance(e, ChildSaInstalled):
            self._children[e.child_id] = e.spec.spi_in
            self.sink.install(e)
            if self.accounting is not None:
                self.accounting.child_installed(e.sa_id, e.spec.spi_in)
        elif isinstance(e, ChildSaOutboundActivated):
            spi_in = self._children.get(e.child_id)
            if spi_in is not None:
                self.sink.activate(spi_in)
        elif isinstance(e, ChildSaRemoved):
            self._children.pop(e.child_id, None)
            if e.replaced_by is not Replacement.NONE:
                # ESP the peer sent on it just before switching may still be on the way: keep it
                # for inbound a little longer, but send on it no more (the peer has deleted it; a
                # rekey collision's redundant SA is even the newest and would keep the traffic)
                retiring.append(e.spi_in)
                self.clock.call_later(REKEY_LINGER, functools.partial(self._remove_child, e.spi_in))
            else:
                self._remove_child(e.spi_in)
        elif isinstance(e, VirtualIpAssigned):
            for addr in e.addresses:
                self.hostnet.add_address(addr)
            self.hostnet.set_dns(e.dns, e.domains)
        elif isinstance(e, ChildSaAddressesChanged):
            self.sink.update_endpoints(e.spi_in, e.local, e.remote, e.encap)
        elif isinstance(e, NatKeepalive):
            self.sink.send_keepalive(e.local, e.remote)
        elif isinstance(e, IkeSaEstablished):
            if e.reauth_of is not None:
                _log.info("%s: IKE SA #%d reauthenticates #%d", e.connection, e.sa_id, e.reauth_of)
            self.reconnect.established(e)
            accepted = self.lookups.accepted.pop(e.sa_id, None)
            if self.accounting is not None:
                vips = next((s.virtual_ips for s in self.engine.list_sas() if s.sa_id == e.sa_id), ())
                self.accounting.established(e, accepted, vips)
        elif isinstance(e, LookupNeeded):
            self.lookups.start(e.sa_id, e.ticket, e.lookup)
        elif isinstance(e, IkeSaClosed) and not e.cause.replaced:
            self.lookups.accepted.pop(e.sa_id, None)
            if self.accounting is not None:
                self.accounting.closed(e)
            if not self.engine.has_sas(e.connection, original_initiator=True):
                self.hostnet.restore()
            self.reconnect.closed(e, remaining=self.engine.has_sas(e.connection))
        self.redirects.observe(e)
        self.waiters.feed(e)

    def _remove_child(self, spi_in: bytes) -> None:
        """Remove a Child SA from the data plane; one that is accounted for gets its last
        counters read first (at most :data:`BARRIER_TIMEOUT` later, it goes without them)."""
        accounting = self.accounting
        if accounting is None or not accounting.wants_counters(spi_in):
            self.sink.remove(spi_in)
            return
        accounting.child_removing(spi_in)
        done = False

        def finish(counters: dict[bytes, dict[str, int]] | None) -> None:
            nonlocal done
            if done:
                return
            done = True
            accounting.child_removed(spi_in, None if counters is None else counters.get(spi_in))
            self.sink.remove(spi_in)

        self.sink.barrier(finish)
        self.clock.call_later(BARRIER_TIMEOUT, lambda: finish(None))

    def _send(self, datagrams: tuple[Datagram, ...], *, sync: bool, drain: bool = False) -> None:
        """Send now, or behind a data-plane barrier when SA updates precede datagrams that
        leave from our own sockets, or :data:`RETIRE_DRAIN` after the barrier when they retire
        an outbound SA; the order is kept (module docstring)."""
        if not datagrams:
            return
        held = _Held(datagrams)
        self._held.append(held)
        nat_t = self.config.settings.port_nat_t
        if drain:
            held.ready = False
            held.timer = self.clock.call_later(BARRIER_TIMEOUT + RETIRE_DRAIN, lambda: self._ready(held))
            self.sink.barrier(lambda _counters: self._drained_later(held), counters=False)
        elif sync and not all(d.local.port == nat_t and self.sink.owns_nat_t for d in datagrams):
            held.ready = False
            held.timer = self.clock.call_later(BARRIER_TIMEOUT, lambda: self._ready(held))
            self.sink.barrier(lambda _counters: self._ready(held), counters=False)
        self._release()

    def _drained_later(self, held: _Held) -> None:
        """The data plane switched: the held datagrams leave once the old SA's last packets arrived."""
        if held.ready:
            return
        if held.timer is not None:
            held.timer.cancel()
        held.timer = self.clock.call_later(RETIRE_DRAIN, lambda: self._ready(held))

    def _ready(self, held: _Held) -> None:
        held.ready = True
        if held.timer is not None:
            held.timer.cancel()
            held.timer = None
        self._release()

    def _release(self) -> None:
        while self._held and self._held[0].ready:
            for d in self._held.popleft().datagrams:
                if d.local.port == self.config.settings.port_nat_t and self.sink.owns_nat_t:
                    self.sink.send_ike(d)
                else:
                    self.ports.send(d)

    def _rearm(self) -> None:
        """One timer, at the engine's next deadline."""
        deadline = self.engine.next_deadline()
        if self._timer is not None:
            if deadline is not None and abs(self._timer.when() - deadline) < 1e-3:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self.clock.call_at(deadline, self._on_timer)
