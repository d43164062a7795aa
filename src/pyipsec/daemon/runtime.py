"""The daemon's runtime: one asyncio loop feeding the engine (DESIGN.md §1, §4).

Datagrams (UDP 500 from our own sockets; the NAT-T port from the data-plane process, which
owns it) and the single timer go into the :class:`IkeEngine`; what comes out is sent and
applied. Child SA events drive the data plane (install, activate outbound, remove); a
client's virtual IPs and DNS servers go onto the host; control-socket callers waiting for an
SA wake up (``up`` returns when its SA is up or has failed). Connections that must stay up
(``start_action = start``, ``dpd_action = restart``, ``close_action = start``) are re-initiated
with back-off when their SA goes for any reason but a local ``down``.

Reauthentication (make-before-break, RFC 7296 §2.8.3) needs nothing special from the data
plane: the new IKE SA's Child SAs are installed (the newest policy of equal selectors wins in
the SPD; a responder's start inbound-only and are activated when the old SA goes), and the old
SA's Child SAs are removed when it is deleted, lingering for inbound like rekeyed ones (see
:meth:`Runtime._replaced`). Virtual IPs, routes and DNS stay while any SA of the connection
lives, and the old SA's deletion is no reason to reconnect, as the new SA is up by then.

The clock is the loop's monotonic time; the engine's wall clock (certificates) is ``time.time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Protocol

from pyipsec.config.model import CloseAction, Config, DpdAction, StartAction
from pyipsec.control.protocol import JsonValue
from pyipsec.control.server import ControlServer, Progress
from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.daemon.build import build_engine_config
from pyipsec.daemon.status import ike_sa_status
from pyipsec.errors import PyIpsecError, UsageError
from pyipsec.ike.config import PoolConfig
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.engine import IkeEngine, Output
from pyipsec.ike.events import (
    ChildSaAddressesChanged,
    ChildSaFailed,
    ChildSaInstalled,
    ChildSaOutboundActivated,
    ChildSaRemoved,
    ChildSaSignal,
    Event,
    IkeSaClosed,
    IkeSaEstablished,
    NatKeepalive,
    Replacement,
    SaProgress,
    SignalKind,
    VirtualIpAssigned,
)
from pyipsec.ike.pools import MemoryPools
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.io.addrs import list_local_addresses
from pyipsec.io.hostnet import HostNetwork
from pyipsec.io.udp import UdpPorts
from pyipsec.net.addr import Datagram, Endpoint, IPAddress
from pyipsec.store.sqlite import SqliteStore

__all__ = [
    "BARRIER_TIMEOUT",
    "REKEY_LINGER",
    "DataplaneSink",
    "NullDataplane",
    "Runtime",
    "StorePools",
    "mobike_path",
    "route_source",
]

_log = logging.getLogger("pyipsec.daemon")

RECONNECT_MIN, RECONNECT_MAX = 1.0, 60.0
#: How long a Child SA replaced by a rekey keeps decrypting inbound ESP after its Delete.
REKEY_LINGER = 2.0
#: The longest IKE datagrams wait for the data plane to confirm the SA updates before them.
BARRIER_TIMEOUT = 0.5
ADDRESS_CHECK = 2.0  # seconds between checks of the path to MOBIKE peers
_ANY_ADDRS = ("%any", "0.0.0.0", "::")


# a data-plane barrier: done (with the counters) once earlier updates are applied
Barrier = asyncio.Future[dict[bytes, dict[str, int]]]


def _resolve(fut: Barrier) -> None:
    """Give up waiting for a barrier (the data plane did not answer in time)."""
    if not fut.done():
        fut.set_result({})


def route_source(remote: str) -> str | None:
    """The local address the routing table uses towards ``remote`` (no packet is sent), or None."""
    family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((remote, 500))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def mobike_path(
    local: IPAddress,
    remote: IPAddress,
    peer_addresses: Sequence[IPAddress],
    source_for: Callable[[str], str | None],
) -> tuple[str, IPAddress | None] | None:
    """Where a MOBIKE initiator should move (RFC 4555 §3.8, a simple policy), or None to stay.

    The peer's current address first: if the route to it now leaves from another local
    address, move there (same peer address: ``None`` in the result). With no route to it at
    all, the first of the peer's additional addresses we have a route to.
    """
    src = source_for(str(remote))
    if src is not None:
        return None if src == str(local) else (src, None)
    for alt in peer_addresses:
        src = source_for(str(alt))
        if src is not None:
            return src, alt
    return None


class DataplaneSink(Protocol):
    """Where Child SA events go: the data-plane process, or a recording sink without one."""

    def install(self, event: ChildSaInstalled) -> None: ...

    def activate(self, spi_in: bytes) -> None: ...

    def retire(self, spi_in: bytes) -> None:
        """Stop sending on the child, keep receiving on it (until :meth:`remove`)."""

    def remove(self, spi_in: bytes) -> None: ...

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None: ...

    def counters(self) -> dict[bytes, dict[str, int]]: ...

    async def fetch_counters(self) -> dict[bytes, dict[str, int]]: ...

    def barrier(self) -> Barrier | None:
        """A future resolved once every update sent so far is applied; None: applied already."""

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None: ...

    def close(self) -> None: ...


class NullDataplane:
    """No data plane (``dataplane = false``): Child SAs are negotiated and only recorded."""

    def __init__(self) -> None:
        self.installed: dict[bytes, ChildSaInstalled] = {}

    def install(self, event: ChildSaInstalled) -> None:
        self.installed[event.spec.spi_in] = event

    def activate(self, spi_in: bytes) -> None:
        pass

    def retire(self, spi_in: bytes) -> None:
        pass

    def remove(self, spi_in: bytes) -> None:
        self.installed.pop(spi_in, None)

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None:
        pass

    def counters(self) -> dict[bytes, dict[str, int]]:
        return {}

    async def fetch_counters(self) -> dict[bytes, dict[str, int]]:
        return {}

    def barrier(self) -> Barrier | None:
        return None  # nothing to wait for

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None:
        pass  # no ESP, so no NAT mapping to keep

    def close(self) -> None:
        pass


class StorePools:
    """Virtual-IP leases kept in the SQLite store, so they survive daemon restarts."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def acquire(self, pool: PoolConfig, identity: str) -> IPv4Address | IPv6Address:
        return self.store.lease(pool.name, (pool.first, pool.last), identity, time.time())

    def release(self, pool: PoolConfig, address: IPv4Address | IPv6Address) -> None:
        self.store.release(pool.name, address, time.time())


def _no_progress(event: dict[str, JsonValue]) -> None:
    pass


@dataclass
class _Waiter:
    """A control caller waiting for the outcome of one IKE SA (and told each step on the way)."""

    sa_id: int
    want_child: bool
    future: asyncio.Future[JsonValue]
    progress: Progress = _no_progress
    tun: str = ""
    children: list[JsonValue] = field(default_factory=list)
    vips: list[JsonValue] = field(default_factory=list)
    dns: list[JsonValue] = field(default_factory=list)
    summary: dict[str, JsonValue] = field(default_factory=dict)

    def _step(self, phase: str, detail: str) -> None:
        self.progress({"phase": phase, "detail": detail})

    def feed(self, e: Event) -> None:
        if self.future.done():
            return
        if isinstance(e, SaProgress):
            self._step(e.phase, e.detail)
        elif isinstance(e, VirtualIpAssigned):
            self.vips += [str(a) for a in e.addresses]
            self.dns += [str(a) for a in e.dns]
            self._step("CP", f"virtual IP {', '.join(map(str, e.addresses))}")
            if e.dns:
                domains = f" (search {' '.join(e.domains)})" if e.domains else ""
                self._step("DNS", f"{', '.join(map(str, e.dns))}{domains}")
        elif isinstance(e, IkeSaEstablished):
            self.summary.update(
                remote=str(e.remote), remote_id=e.remote_id, proposal=format_chosen(e.proposal)
            )
            self._step("IKE SA", f"established with {e.remote_id} at {e.remote}")
            if not self.want_child:
                self._done(True, "established")
        elif isinstance(e, ChildSaInstalled):
            self.children.append(e.child)
            local = [str(t) for t in e.spec.local_ts]
            remote = [str(t) for t in e.spec.remote_ts]
            how = "ESP in UDP 4500" if e.spec.encap else "ESP"
            proposal = format_chosen(e.proposal)
            self._step("CHILD SA", f"{e.child}: {' '.join(local)} === {' '.join(remote)}, {proposal}, {how}")
            if self.tun:
                self._step("routes", f"{' '.join(remote)} via {self.tun}")
            self.summary.update(child_proposal=proposal, local_ts=list(local), remote_ts=list(remote))
            self._done(True, "established")
        elif isinstance(e, ChildSaFailed):
            self._done(False, f"IKE SA established, but Child SA {e.child} failed: {e.reason}")
        elif isinstance(e, IkeSaClosed):
            self._done(False, e.reason)

    def _done(self, ok: bool, message: str) -> None:
        self.future.set_result(
            {
                "sa_id": self.sa_id,
                "ok": ok,
                "message": message,
                "children": self.children,
                "virtual_ips": self.vips,
                "dns": self.dns,
                **self.summary,
            }
        )


@dataclass
class _Reconnect:
    attempt: int = 0
    handle: asyncio.TimerHandle | None = None
    last_reason: str = ""
    next_at: float = 0.0


class Runtime:
    def __init__(self, config: Config, *, control_path: Path | None = None) -> None:
        self.config = config
        s = config.settings
        engine_config, creds = build_engine_config(config)
        self.store: SqliteStore | None = None
        if config.pools or any(c.remote.auth.is_eap for c in config.connections.values()):
            self.store = SqliteStore(s.users)
            self.store.release_all()  # no SA survives a restart; identities keep their addresses
        store = self.store
        self.engine = IkeEngine(
            engine_config,
            creds,
            pools=StorePools(store) if store is not None else MemoryPools(),
            eap_server=(lambda: MsChapV2Server(store, rng=OS_RANDOM)) if store is not None else None,
        )
        self.control_path = control_path or s.control_socket
        self.dataplane: DataplaneSink = NullDataplane()
        self._send_nat_t: Callable[[Datagram], None] | None = None  # IKE on 4500: the data plane's
        self.hostnet = HostNetwork(s.tun, resolv_conf=s.resolv_conf)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[_Waiter] = []
        # datagrams waiting for a data-plane barrier (or queued behind ones that do), in order
        self._held: deque[tuple[Barrier | None, tuple[Datagram, ...]]] = deque()
        self._stop = asyncio.Event()
        self._children: dict[int, bytes] = {}  # child_id -> our inbound SPI
        self._spi_owner: dict[bytes, int] = {}  # inbound SPI -> child id (its IKE SA may change)
        self._sa_peer: dict[int, tuple[str, str]] = {}  # IKE SA id -> (connection, peer identity)
        self._local_addrs: tuple[IPAddress, ...] | None = None  # as last reported to the engine (MOBIKE)
        # started with the daemon, and restarted whenever their SA goes
        self._start_at_boot = {
            name
            for name, c in config.connections.items()
            if any(ch.start_action == StartAction.START for ch in c.children.values())
        }
        # restarted when their SA goes (DPD, peer delete), once they have been up
        self._restartable = self._start_at_boot | {
            name
            for name, c in config.connections.items()
            if any(
                ch.dpd_action == DpdAction.RESTART or ch.close_action == CloseAction.START
                for ch in c.children.values()
            )
        }
        self._keep_up = set(self._start_at_boot)
        self._reconnect: dict[str, _Reconnect] = {}
        self._down_requested: set[str] = set()
        self.udp = UdpPorts(
            self._on_datagram,
            port=s.port,
            nat_t_port=s.port_nat_t,
            listen=s.listen,
            bind_nat_t=not s.dataplane,
        )
        self.control = ControlServer(self.control_path, self.handle_command)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.config.settings.dataplane:
            self._start_dataplane()
        self.udp.open(self._loop)
        await self.control.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self._stop.set)
        _log.info("pyipsec daemon started with %d connections", len(self.config.connections))
        self._refresh_addresses()  # before IKE_AUTH, which announces them (RFC 4555 §3.4)
        for name in sorted(self._start_at_boot):
            self._initiate(name)
        self._loop.call_later(ADDRESS_CHECK, self._check_addresses)
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()

    def _start_dataplane(self) -> None:
        from pyipsec.daemon.dpsink import ProcessDataplane  # noqa: PLC0415 - only with a data plane

        assert self._loop is not None
        s = self.config.settings
        sink = ProcessDataplane.spawn(
            s, on_ike=self._on_datagram, on_signal=self._on_sa_signal, on_exit=self.stop
        )
        self._loop.add_reader(sink.fileno(), sink.readable)
        self.dataplane = sink
        self._send_nat_t = sink.send_ike  # the data plane owns UDP 4500

    def stop(self) -> None:
        self._stop.set()

    async def _shutdown(self) -> None:
        _log.info("shutting down: deleting %d IKE SAs", len(self.engine.list_sas()))
        self._keep_up.clear()
        for r in self._reconnect.values():
            if r.handle is not None:
                r.handle.cancel()
        for sa in self.engine.list_sas():
            with contextlib.suppress(UsageError):
                self._apply(self.engine.terminate(sa.sa_id, self._now()))
        await asyncio.sleep(0.2)  # let the Deletes leave
        if self._timer is not None:
            self._timer.cancel()
        self.hostnet.restore()
        self.dataplane.close()
        await self.control.close()
        self.udp.close()
        if self.store is not None:
            self.store.close()

    # -- engine plumbing --------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _on_datagram(self, d: Datagram) -> None:
        self._apply(self.engine.receive_datagram(d, self._now()))

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.engine.handle_timer(self._now()))

    def _on_sa_signal(self, spi_in: bytes, kind: str) -> None:
        try:
            signal = ChildSaSignal(spi_in, SignalKind(kind))
        except ValueError:
            _log.warning("unknown data-plane signal %r for SPI %s", kind, spi_in.hex())
            return
        self._apply(self.engine.handle_signal(signal, self._now()))

    def _apply(self, out: Output) -> None:
        """Apply the events, then send the datagrams: a message that lets the peer use a new
        Child SA (the CREATE_CHILD_SA or IKE_AUTH response, the Delete of the SA it replaces)
        must leave only once the data plane holds that SA (make-before-break)."""
        sync = False
        retiring: list[bytes] = []
        for e in out.events:
            try:
                self._event(e, retiring)
            except (PyIpsecError, OSError) as exc:
                _log.error("applying %s failed: %s", type(e).__name__, exc)
            sync = sync or isinstance(e, ChildSaInstalled | ChildSaOutboundActivated)
        # replaced Child SAs stop sending only after the batch's activations, so that the data
        # plane never sees a moment without an outbound SA for their selectors
        for spi_in in retiring:
            self.dataplane.retire(spi_in)
        self._send(out.datagrams, sync=sync)
        self._rearm()

    def _send(self, datagrams: tuple[Datagram, ...], *, sync: bool) -> None:
        """Send now, or behind a data-plane barrier (see :meth:`_apply`), keeping the order.

        IKE on the NAT-T port goes through the data plane's channel, after the SA updates sent
        just before; IKE on port 500 leaves from our own socket, so with SA updates in the same
        batch it waits until the data plane has confirmed them (at most :data:`BARRIER_TIMEOUT`).
        """
        if not datagrams:
            return
        nat_t = self.config.settings.port_nat_t
        fut = self.dataplane.barrier() if sync and any(d.local.port != nat_t for d in datagrams) else None
        if fut is not None:
            assert self._loop is not None
            self._held.append((fut, datagrams))
            fut.add_done_callback(lambda _f: self._release())
            self._loop.call_later(BARRIER_TIMEOUT, _resolve, fut)
            return
        if self._held:
            self._held.append((None, datagrams))
            return
        for d in datagrams:
            self._send_one(d)

    def _release(self) -> None:
        while self._held and (self._held[0][0] is None or self._held[0][0].done()):
            for d in self._held.popleft()[1]:
                self._send_one(d)

    def _send_one(self, d: Datagram) -> None:
        if self._send_nat_t is not None and d.local.port == self.config.settings.port_nat_t:
            self._send_nat_t(d)
        else:
            self.udp.send(d)

    def _rearm(self) -> None:
        assert self._loop is not None
        deadline = self.engine.next_deadline()
        if self._timer is not None:
            if deadline is not None and abs(self._timer.when() - deadline) < 1e-3:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _event(self, e: Event, retiring: list[bytes]) -> None:
        """Apply one engine event; replaced Child SAs to retire go into ``retiring``."""
        if isinstance(e, ChildSaInstalled):
            self._children[e.child_id] = e.spec.spi_in
            self._spi_owner[e.spec.spi_in] = e.child_id
            self.dataplane.install(e)
        elif isinstance(e, ChildSaOutboundActivated):
            spi_in = self._children.get(e.child_id)
            if spi_in is not None:
                self.dataplane.activate(spi_in)
        elif isinstance(e, ChildSaRemoved):
            self._children.pop(e.child_id, None)
            self._spi_owner.pop(e.spi_in, None)
            if e.replaced_by is not Replacement.NONE:
                # ESP the peer sent on this SA just before switching may still be queued in
                # our sockets or on the wire: keep the SA for inbound a little longer, but send
                # on it no more (the peer has deleted it; a redundant SA of a rekey collision
                # is even the newest one and would otherwise keep the outbound traffic).
                assert self._loop is not None
                retiring.append(e.spi_in)
                self._loop.call_later(REKEY_LINGER, self.dataplane.remove, e.spi_in)
            else:
                self.dataplane.remove(e.spi_in)
        elif isinstance(e, VirtualIpAssigned):
            for addr in e.addresses:
                self.hostnet.add_address(addr)
            self.hostnet.set_dns(e.dns, e.domains)
        elif isinstance(e, ChildSaAddressesChanged):
            self.dataplane.update_endpoints(e.spi_in, e.local, e.remote, e.encap)
        elif isinstance(e, NatKeepalive):
            self.dataplane.send_keepalive(e.local, e.remote)
        elif isinstance(e, IkeSaEstablished):
            self._sa_peer[e.sa_id] = (e.connection, e.remote_id)
            if e.reauth_of is not None:
                _log.info("%s: IKE SA #%d reauthenticates #%d", e.connection, e.sa_id, e.reauth_of)
            self._reconnect.pop(e.connection, None)
            if e.connection in self._restartable:
                self._keep_up.add(e.connection)
        elif isinstance(e, IkeSaClosed):
            self._closed(e)
            self._sa_peer.pop(e.sa_id, None)
        for w in self._waiters:
            if w.sa_id == e.sa_id:
                w.feed(e)
        self._waiters = [w for w in self._waiters if not w.future.done()]

    def _closed(self, e: IkeSaClosed) -> None:
        if e.cause.replaced:
            return
        remaining = self.engine.list_sas(e.connection)
        if not any(sa.original_initiator for sa in remaining):
            self.hostnet.restore()
        if e.connection in self._down_requested:
            self._down_requested.discard(e.connection)
            return
        if e.connection in self._keep_up and not remaining:
            self._schedule_reconnect(e.connection, e.reason)

    def _refresh_addresses(self) -> None:
        """MOBIKE: tell the engine our usable addresses whenever they change; it announces them
        to MOBIKE peers (ADDITIONAL_IP*_ADDRESS, RFC 4555 §3.6)."""
        if not any(c.mobike for c in self.engine.config.connections.values()):
            return
        try:
            addrs = list_local_addresses(exclude_ifaces=(self.config.settings.tun,))
        except Exception as exc:  # netlink unavailable: keep the last list
            _log.debug("cannot list local addresses: %s", exc)
            return
        if addrs != self._local_addrs:
            _log.info("local addresses: %s", ", ".join(map(str, addrs)) or "none")
            self._local_addrs = addrs
            self._apply(self.engine.set_local_addresses(addrs, self._now()))

    def _check_addresses(self) -> None:
        """MOBIKE initiator: when the route to a peer now leaves from another local address
        (Wi-Fi gone, mobile data up), move the IKE SA there (RFC 4555); with no route to the
        peer's address at all, move to the first of its additional addresses we have a route
        to (§3.8)."""
        assert self._loop is not None
        self._refresh_addresses()
        for sa in self.engine.list_sas():
            if not sa.can_move:
                continue
            target = mobike_path(sa.local.ip, sa.remote.ip, sa.peer_addresses or (), route_source)
            if target is None:
                continue
            src, remote = target
            with contextlib.suppress(UsageError):
                self._apply(
                    self.engine.update_sa_address(
                        sa.sa_id, Endpoint.parse(src, sa.local.port), self._now(), remote=remote
                    )
                )
        self._loop.call_later(ADDRESS_CHECK, self._check_addresses)

    def _schedule_reconnect(self, name: str, reason: str) -> None:
        assert self._loop is not None
        r = self._reconnect.setdefault(name, _Reconnect())
        delay = min(RECONNECT_MAX, RECONNECT_MIN * 2**r.attempt)
        r.attempt += 1
        r.last_reason = reason
        r.next_at = self._now() + delay
        _log.info("%s: reconnecting in %.0f s (attempt %d) after: %s", name, delay, r.attempt, reason)
        if r.handle is not None:
            r.handle.cancel()
        r.handle = self._loop.call_later(delay, self._initiate, name)

    def _initiate(self, name: str) -> None:
        r = self._reconnect.get(name)
        if r is not None:
            r.handle = None
        try:
            self._apply(self._engine_initiate(name)[1])
        except UsageError as exc:
            _log.error("cannot start %s: %s", name, exc)

    def _engine_initiate(self, name: str) -> tuple[int, Output]:
        """``engine.initiate``; without a concrete ``local_addrs`` (a road warrior), the source
        address is the one the routing table picks for the peer, as strongSwan does."""
        conn = self.engine.config.connections.get(name)
        local: Endpoint | None = None
        if conn is not None and not any(a not in _ANY_ADDRS for a in conn.local_addrs):
            remote = next((a for a in conn.remote_addrs if a not in _ANY_ADDRS), None)
            src = route_source(remote) if remote is not None else None
            if src is not None:
                local = Endpoint.parse(src, conn.local_port)
        return self.engine.initiate(name, self._now(), local=local)

    # -- control ----------------------------------------------------------------------------------

    async def handle_command(
        self, cmd: str, args: dict[str, JsonValue], progress: Progress = _no_progress
    ) -> JsonValue:
        now = self._now()
        if cmd == "status":
            counters = await self._counters()
            sas: list[JsonValue] = []
            for sa in self.engine.list_sas():
                st = ike_sa_status(sa, now)
                for child in st["children"] if isinstance(st["children"], list) else []:
                    if isinstance(child, dict):
                        c = counters.get(bytes.fromhex(str(child["spi_in"])))
                        traffic: dict[str, JsonValue] = dict(c.items()) if c else {}
                        child["traffic"] = traffic
                sas.append(st)
            reconnecting: dict[str, JsonValue] = {
                name: {
                    "attempt": r.attempt,
                    "next_in": round(max(0.0, r.next_at - now), 1),
                    "reason": r.last_reason,
                }
                for name, r in self._reconnect.items()
            }
            return {"ike_sas": sas, "reconnecting": reconnecting}
        if cmd == "connections":
            names: list[JsonValue] = list(sorted(self.config.connections))
            return {"connections": names}
        if cmd == "stats":
            es = self.engine.stats
            return {
                "malformed": es.malformed,
                "unknown_spi": es.unknown_spi,
                "cookies_sent": es.cookies_sent,
                "half_open_expired": es.half_open_expired,
                "udp_received": self.udp.stats.received,
                "udp_sent": self.udp.stats.sent,
            }
        if cmd == "rekey":
            return self._rekey(args)
        if cmd == "up":
            return await self._up(args, progress)
        if cmd == "down":
            return await self._down(args)
        raise UsageError(f"unknown command {cmd!r}")

    def _rekey(self, args: dict[str, JsonValue]) -> JsonValue:
        """Rekey the IKE SA (``ike``: true) or every Child SA of the IKE SAs of ``name``; with
        ``reauth``: true, reauthenticate the IKE SAs we initiated (make-before-break)."""
        name, ike = args.get("name"), args.get("ike") is True
        targets = [sa for sa in self.engine.list_sas() if sa.connection == name and sa.established]
        if not targets:
            raise UsageError(f"no established IKE SA for {name!r}")
        started: list[JsonValue] = []
        if args.get("reauth") is True:
            ours = [sa for sa in targets if sa.original_initiator and not sa.reauthenticating]
            if not ours:
                raise UsageError(f"no IKE SA of {name!r} that we initiated and that is not reauthenticating")
            for sa in ours:
                self._apply(self.engine.reauthenticate(sa.sa_id, self._now()))
                started.append(sa.sa_id)
            return {"reauthenticating": started}
        for sa in targets:
            if ike:
                with contextlib.suppress(UsageError):  # e.g. already being rekeyed
                    self._apply(self.engine.rekey_ike(sa.sa_id, self._now()))
                    started.append(sa.sa_id)
                continue
            for child in sa.children:
                with contextlib.suppress(UsageError):
                    self._apply(self.engine.rekey_child(sa.sa_id, child.child_id, self._now()))
                    started.append(child.child_id)
        return {"rekeying": started}

    async def _counters(self) -> dict[bytes, dict[str, int]]:
        return await self.dataplane.fetch_counters()

    async def _up(self, args: dict[str, JsonValue], progress: Progress = _no_progress) -> JsonValue:
        name = args.get("name")
        if not isinstance(name, str):
            raise UsageError("up needs a connection name")
        timeout = args.get("timeout", 30.0)
        self._down_requested.discard(name)
        conn = self.engine.config.connections.get(name)
        if conn is None:
            raise UsageError(f"no connection named {name!r}")
        assert self._loop is not None
        mine = [sa for sa in self.engine.list_sas(name) if sa.original_initiator]
        up = next((sa for sa in mine if sa.established), None)
        if up is not None:  # already up (e.g. started with the daemon): report it
            return {
                "sa_id": up.sa_id,
                "ok": True,
                "message": "already established",
                "children": [c.name for c in up.children],
                "virtual_ips": [str(a) for a in up.virtual_ips],
                "dns": [],
            }
        connecting = next((sa for sa in mine if sa.connecting), None)
        out = None
        if connecting is None:
            sa_id, out = self._engine_initiate(name)
        else:
            sa_id = connecting.sa_id
        tun = self.config.settings.tun if self.config.settings.dataplane else ""
        waiter = _Waiter(sa_id, bool(conn.children), self._loop.create_future(), progress, tun)
        self._waiters.append(waiter)
        if out is not None:
            self._apply(out)
        try:
            return await asyncio.wait_for(
                waiter.future, float(timeout) if isinstance(timeout, int | float) else 30.0
            )
        except TimeoutError:
            return {"sa_id": sa_id, "ok": False, "message": f"no result within {timeout} s", "children": []}

    async def _down(self, args: dict[str, JsonValue]) -> JsonValue:
        name, sa_id = args.get("name"), args.get("sa_id")
        targets = [
            sa
            for sa in self.engine.list_sas()
            if (isinstance(sa_id, int) and sa.sa_id == sa_id)
            or (isinstance(name, str) and sa.connection == name)
        ]
        if isinstance(name, str):
            r = self._reconnect.pop(name, None)
            if r is not None and r.handle is not None:
                r.handle.cancel()
        if not targets:
            if isinstance(name, str) and name in self.config.connections:
                return {"closed": []}
            raise UsageError(f"no IKE SA matches {name if name is not None else sa_id!r}")
        assert self._loop is not None
        waiters = [_Waiter(sa.sa_id, False, self._loop.create_future()) for sa in targets]
        self._waiters.extend(waiters)
        for sa in targets:
            self._down_requested.add(sa.connection)
            self._apply(self.engine.terminate(sa.sa_id, self._now()))
        done, _ = await asyncio.wait([w.future for w in waiters], timeout=30.0)
        closed: list[JsonValue] = [w.sa_id for w in waiters if w.future in done]
        return {"closed": closed}
