"""The daemon's runtime: one asyncio loop feeding the engine (DESIGN.md §1, §4).

Datagrams from the UDP ports and the single timer go into the :class:`IkeEngine`; what
comes out is sent and applied: events are logged, handed to the data-plane sink, and wake
control-socket callers waiting for them (``up`` returns when its SA is up or has failed).
The clock is the loop's monotonic time; the engine's wall clock (for certificates) is
``time.time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pyipsec.config.model import Config, StartAction
from pyipsec.control.protocol import JsonValue
from pyipsec.control.server import ControlServer
from pyipsec.daemon.build import build_engine_config
from pyipsec.daemon.status import ike_sa_status
from pyipsec.errors import UsageError
from pyipsec.ike.engine import IkeEngine, Output
from pyipsec.ike.events import (
    ChildSaFailed,
    ChildSaInstalled,
    ChildSaRemoved,
    Event,
    IkeSaClosed,
    IkeSaEstablished,
)
from pyipsec.io.udp import UdpPorts
from pyipsec.net.addr import Datagram

__all__ = ["DataplaneSink", "NullDataplane", "Runtime"]

_log = logging.getLogger("pyipsec.daemon")


class DataplaneSink(Protocol):
    """Where Child SA events go: the ESP data plane (a recording null sink until it exists)."""

    def install(self, event: ChildSaInstalled) -> None: ...

    def remove(self, event: ChildSaRemoved) -> None: ...

    def esp_datagram(self, d: Datagram) -> None: ...


class NullDataplane:
    def __init__(self) -> None:
        self.installed: dict[bytes, ChildSaInstalled] = {}
        self.esp_dropped = 0

    def install(self, event: ChildSaInstalled) -> None:
        self.installed[event.params.spi_in] = event

    def remove(self, event: ChildSaRemoved) -> None:
        self.installed.pop(event.spi_in, None)

    def esp_datagram(self, d: Datagram) -> None:
        self.esp_dropped += 1


@dataclass
class _Waiter:
    """A control caller waiting for the outcome of one IKE SA."""

    sa_id: int
    want_child: bool
    future: asyncio.Future[dict[str, JsonValue]]
    established: IkeSaEstablished | None = None
    children: list[str] = field(default_factory=list)

    def feed(self, e: Event) -> None:
        if self.future.done():
            return
        if isinstance(e, IkeSaEstablished):
            self.established = e
            if not self.want_child:
                self._done(True, "established")
        elif isinstance(e, ChildSaInstalled):
            self.children.append(e.child)
            self._done(True, "established")
        elif isinstance(e, ChildSaFailed):
            self._done(False, f"IKE SA established, but Child SA {e.child} failed: {e.reason}")
        elif isinstance(e, IkeSaClosed):
            self._done(False, e.reason)

    def _done(self, ok: bool, message: str) -> None:
        self.future.set_result(
            {"sa_id": self.sa_id, "ok": ok, "message": message, "children": list(self.children)}
        )


class Runtime:
    def __init__(
        self,
        config: Config,
        *,
        control_path: Path | None = None,
        dataplane: DataplaneSink | None = None,
        reload: Callable[[], Config] | None = None,
    ) -> None:
        self.config = config
        engine_config, creds = build_engine_config(config)
        self.engine = IkeEngine(engine_config, creds)
        self.control_path = control_path or config.settings.control_socket
        self.dataplane = dataplane or NullDataplane()
        self._reload = reload
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[_Waiter] = []
        self._stop = asyncio.Event()
        s = config.settings
        self.udp = UdpPorts(
            self._on_datagram,
            on_esp=self.dataplane.esp_datagram,
            port=s.port,
            nat_t_port=s.port_nat_t,
            listen=s.listen,
        )
        self.control = ControlServer(self.control_path, self.handle_command)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.udp.open(self._loop)
        await self.control.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self._stop.set)
        _log.info("pyipsec daemon started with %d connections", len(self.config.connections))
        self._start_actions()
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _shutdown(self) -> None:
        _log.info("shutting down: deleting %d IKE SAs", len(self.engine.sas()))
        for sa in self.engine.sas():
            with contextlib.suppress(UsageError):
                self._apply(self.engine.terminate(sa.sa_id, self._now()))
        await asyncio.sleep(0.2)  # let the Deletes leave
        if self._timer is not None:
            self._timer.cancel()
        await self.control.close()
        self.udp.close()

    def _start_actions(self) -> None:
        for name, conn in self.config.connections.items():
            if any(ch.start_action == StartAction.START for ch in conn.children.values()):
                try:
                    self._apply(self.engine.initiate(name, self._now()))
                except UsageError as exc:
                    _log.error("cannot start %s: %s", name, exc)

    # -- engine plumbing --------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _on_datagram(self, d: Datagram) -> None:
        self._apply(self.engine.receive_datagram(d, self._now()))

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.engine.handle_timer(self._now()))

    def _apply(self, out: Output) -> None:
        for d in out.datagrams:
            self.udp.send(d)
        for e in out.events:
            self._event(e)
        self._rearm()

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

    def _event(self, e: Event) -> None:
        if isinstance(e, ChildSaInstalled):
            self.dataplane.install(e)
        elif isinstance(e, ChildSaRemoved):
            self.dataplane.remove(e)
        for w in self._waiters:
            if w.sa_id == e.sa_id:
                w.feed(e)
        self._waiters = [w for w in self._waiters if not w.future.done()]

    # -- control ----------------------------------------------------------------------------------

    async def handle_command(self, cmd: str, args: dict[str, JsonValue]) -> JsonValue:
        now = self._now()
        if cmd == "status":
            return {"ike_sas": [ike_sa_status(sa, now) for sa in self.engine.sas()]}
        if cmd == "connections":
            names: list[JsonValue] = list(sorted(self.config.connections))
            return {"connections": names}
        if cmd == "stats":
            st = self.engine.stats
            return {
                "malformed": st.malformed,
                "unknown_spi": st.unknown_spi,
                "cookies_sent": st.cookies_sent,
                "half_open_expired": st.half_open_expired,
                "udp_received": self.udp.stats.received,
                "udp_sent": self.udp.stats.sent,
                "esp_received": self.udp.stats.esp,
            }
        if cmd == "up":
            return await self._up(args)
        if cmd == "down":
            return await self._down(args)
        raise UsageError(f"unknown command {cmd!r}")

    async def _up(self, args: dict[str, JsonValue]) -> JsonValue:
        name = args.get("name")
        if not isinstance(name, str):
            raise UsageError("up needs a connection name")
        timeout = args.get("timeout", 30.0)
        out = self.engine.initiate(name, self._now())
        sa_id = max(sa.sa_id for sa in self.engine.sas() if sa.name == name)
        conn = self.engine.config.connections[name]
        assert self._loop is not None
        waiter = _Waiter(sa_id, bool(conn.children), self._loop.create_future())
        self._waiters.append(waiter)
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
            for sa in self.engine.sas()
            if (isinstance(sa_id, int) and sa.sa_id == sa_id) or (isinstance(name, str) and sa.name == name)
        ]
        if not targets:
            raise UsageError(f"no IKE SA matches {name if name is not None else sa_id!r}")
        assert self._loop is not None
        waiters = [_Waiter(sa.sa_id, False, self._loop.create_future()) for sa in targets]
        self._waiters.extend(waiters)
        for sa in targets:
            self._apply(self.engine.terminate(sa.sa_id, self._now()))
        done, _ = await asyncio.wait([w.future for w in waiters], timeout=30.0)
        return {"closed": [w.sa_id for w in waiters if w.future in done]}
