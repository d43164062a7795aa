"""The control commands the daemon answers (``control.protocol``; the CLI is their client).

Theory of operation
-------------------
:meth:`Commands.handle` is the control server's handler. Each command reads the engine
through its public API (``list_sas`` snapshots, ``stats``) and acts through it, handing every
``Output`` to the runtime's ``apply``:

* ``status`` — every IKE SA with its Child SAs (``daemon.status``), each child with the data
  plane's traffic counters (fetched behind a barrier, at most :data:`COUNTERS_TIMEOUT`), and the
  pending reconnects;
* ``connections``, ``stats`` — configured names; engine and UDP counters;
* ``rekey`` — the Child SAs, the IKE SA (``ike``) or a reauthentication (``reauth``);
* ``reload`` — re-read the configuration file (``daemon.reload``);
* ``redirect`` — send the clients of a connection or an IKE SA to another gateway, ``drain``
  — every client and every new one (``daemon.redirect``);
* ``up`` — initiate (unless an SA of ours is up or connecting) and wait for the outcome,
  streaming progress (``daemon.progress``); ``down`` — delete, wait until closed.

All waiting is on the runtime's clock (``daemon.clock.wait_until``). The JSON shapes of the
results are the control protocol's and do not change with the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from typing import Protocol

from pyipsec.config.model import Config
from pyipsec.control.protocol import JsonValue
from pyipsec.control.schema import (
    UP_TIMEOUT,
    DownArgs,
    DrainArgs,
    RedirectArgs,
    RekeyArgs,
    UpArgs,
    parse_args,
)
from pyipsec.control.server import Progress
from pyipsec.daemon.clock import Clock, wait_until
from pyipsec.daemon.host import IkePorts
from pyipsec.daemon.initqueue import InitQueue
from pyipsec.daemon.lookups import Lookups
from pyipsec.daemon.progress import Waiters, already_up, no_progress
from pyipsec.daemon.reconnect import Reconnect
from pyipsec.daemon.redirect import Redirects
from pyipsec.daemon.sink import CounterMap, DataplaneSink
from pyipsec.daemon.status import ike_sa_status
from pyipsec.errors import UsageError
from pyipsec.ike.engine import IkeEngine, Output

__all__ = ["COUNTERS_TIMEOUT", "DOWN_TIMEOUT", "UP_TIMEOUT", "Commands", "Daemon"]

COUNTERS_TIMEOUT = 1.0  # the longest ``status`` waits for the data plane's counters
DOWN_TIMEOUT = 30.0


class Daemon(Protocol):
    """What the commands need of the runtime."""

    config: Config
    engine: IkeEngine
    clock: Clock
    sink: DataplaneSink
    ports: IkePorts
    waiters: Waiters
    reconnect: Reconnect
    lookups: Lookups
    inits: InitQueue
    redirects: Redirects

    def apply(self, out: Output) -> None: ...

    def start_sa(self, name: str) -> tuple[int, Output]: ...

    def reload(self) -> dict[str, JsonValue]: ...


class Commands:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    async def handle(
        self, cmd: str, args: dict[str, JsonValue], progress: Progress = no_progress
    ) -> JsonValue:
        """Run one control command; its arguments are checked first (``control.schema``)."""
        typed = parse_args(cmd, args)
        if isinstance(typed, RekeyArgs):
            return self.rekey(typed)
        if isinstance(typed, UpArgs):
            return await self.up(typed, progress)
        if isinstance(typed, DownArgs):
            return await self.down(typed)
        if isinstance(typed, RedirectArgs):
            return self.redirect(typed)
        if isinstance(typed, DrainArgs):
            return self.d.redirects.drain(typed.to)
        if cmd == "status":
            return await self.status()
        if cmd == "reload":  # daemon.reload: the summary, or ok false and the errors
            return self.d.reload()
        if cmd == "connections":
            names: list[JsonValue] = list(sorted(self.d.config.connections))
            return {"connections": names}
        if cmd == "stats":
            es, udp = self.d.engine.stats, self.d.ports.stats
            await self.counters()  # fresh data-plane totals
            dataplane: dict[str, JsonValue] = dict(self.d.sink.totals().items())
            return {
                "dataplane": dataplane,
                "malformed": es.malformed,
                "unknown_spi": es.unknown_spi,
                "cookies_sent": es.cookies_sent,
                "half_open_expired": es.half_open_expired,
                "half_open": self.d.engine.half_open,
                "init_blocked": es.init_blocked,  # block_threshold
                "init_over_limit": es.init_over_limit,  # init_limit_half_open
                "half_open_evicted": es.half_open_evicted,  # made room at init_limit_half_open
                "ike_fragments_held": self.d.engine.fragments.used,
                "ike_fragments_over_budget": self.d.engine.fragments.dropped,  # ike_fragment_budget
                "init_queue": self.d.inits.waiting,  # IKE_SA_INITs waiting (daemon.initqueue)
                "init_queue_dropped": self.d.inits.dropped,
                "udp_received": udp.received,
                "udp_sent": udp.sent,
                "radius": self._radius_stats(),
            }
        raise AssertionError(f"command {cmd!r} has a schema but no handler")

    def _radius_stats(self) -> JsonValue:
        """Per RADIUS server: requests, retransmissions, timeouts, replies dropped, answers."""
        radius = self.d.lookups.radius
        if radius is None:
            return {}
        return {s.name: {k: v for k, v in asdict(s).items() if k != "name"} for s in radius.stats.servers}

    async def counters(self) -> CounterMap:
        """The data plane's counters, fresh if it answers within :data:`COUNTERS_TIMEOUT`."""
        fresh: asyncio.Future[CounterMap] = asyncio.get_running_loop().create_future()
        self.d.sink.barrier(lambda c: None if fresh.done() else fresh.set_result(c))
        await wait_until(self.d.clock, (fresh,), COUNTERS_TIMEOUT)
        return fresh.result() if fresh.done() else self.d.sink.counters()

    async def status(self) -> JsonValue:
        counters = await self.counters()
        now = self.d.clock.now()
        sas: list[JsonValue] = []
        for sa in self.d.engine.list_sas():
            st = ike_sa_status(sa, now)
            for child in st["children"] if isinstance(st["children"], list) else []:
                if isinstance(child, dict):
                    c = counters.get(bytes.fromhex(str(child["spi_in"])))
                    traffic: dict[str, JsonValue] = dict(c.items()) if c else {}
                    child["traffic"] = traffic
            sas.append(st)
        out: dict[str, JsonValue] = {"ike_sas": sas, "reconnecting": self.d.reconnect.status(now)}
        # the data plane's totals: drops by reason, of no SA and of every SA (removed ones too)
        out["dataplane"] = dict(self.d.sink.totals().items())
        radius = self.d.lookups.radius
        if radius is not None:  # per server: requests, retransmissions, timeouts, bad replies, …
            out["radius"] = {
                s.name: {k: v for k, v in asdict(s).items() if k != "name"} for s in radius.stats.servers
            }
        return out

    def rekey(self, args: RekeyArgs) -> JsonValue:
        """Rekey the IKE SA (``ike``: true) or every Child SA of the IKE SAs of ``name``; with
        ``reauth``: true, reauthenticate the IKE SAs we initiated (make-before-break)."""
        engine, now = self.d.engine, self.d.clock.now()
        name, ike = args.name, args.ike
        targets = [sa for sa in engine.list_sas() if sa.connection == name and sa.established]
        if not targets:
            raise UsageError(f"no established IKE SA for {name!r}")
        started: list[JsonValue] = []
        if args.reauth:
            ours = [sa for sa in targets if sa.original_initiator and not sa.reauthenticating]
            if not ours:
                raise UsageError(f"no IKE SA of {name!r} that we initiated and that is not reauthenticating")
            for sa in ours:
                self.d.apply(engine.reauthenticate(sa.sa_id, now))
                started.append(sa.sa_id)
            return {"reauthenticating": started}
        for sa in targets:
            if ike:
                with contextlib.suppress(UsageError):  # e.g. already being rekeyed
                    self.d.apply(engine.rekey_ike(sa.sa_id, now))
                    started.append(sa.sa_id)
                continue
            for child in sa.children:
                with contextlib.suppress(UsageError):
                    self.d.apply(engine.rekey_child(sa.sa_id, child.child_id, now))
                    started.append(child.child_id)
        return {"rekeying": started}

    async def up(self, args: UpArgs, progress: Progress = no_progress) -> JsonValue:
        name, timeout = args.name, args.timeout
        self.d.reconnect.up_requested(name)
        conn = self.d.engine.config.connections.get(name)
        if conn is None:
            raise UsageError(f"no connection named {name!r}")
        mine = [sa for sa in self.d.engine.list_sas(name) if sa.original_initiator]
        up = next((sa for sa in mine if sa.established), None)
        if up is not None:  # already up (e.g. started with the daemon): report it
            return already_up(up)
        connecting = next((sa for sa in mine if sa.connecting), None)
        out = None
        if connecting is None:
            sa_id, out = self.d.start_sa(name)
        else:
            sa_id = connecting.sa_id
        settings = self.d.config.settings
        tun = settings.tun if settings.dataplane else ""
        waiter = self.d.waiters.add(sa_id, want_child=bool(conn.children), progress=progress, tun=tun)
        if out is not None:
            self.d.apply(out)
        await wait_until(self.d.clock, (waiter.future,), timeout)
        if waiter.future.done():
            return waiter.future.result()
        waiter.future.cancel()
        return {"sa_id": sa_id, "ok": False, "message": f"no result within {timeout} s", "children": []}

    def redirect(self, args: RedirectArgs) -> JsonValue:
        """Redirect the established IKE SAs of ``name`` (the gateway's side) or IKE SA ``sa_id``."""
        if args.name is not None and args.name not in self.d.config.connections:
            raise UsageError(f"no connection named {args.name!r}")
        targets = [
            sa.sa_id
            for sa in self.d.engine.list_sas()
            if (sa.sa_id == args.sa_id or sa.connection == args.name) and sa.established
        ]
        if not targets and args.sa_id is not None:
            raise UsageError(f"no established IKE SA #{args.sa_id}")
        return self.d.redirects.redirect_sas(targets, args.to)

    async def down(self, args: DownArgs) -> JsonValue:
        name, sa_id = args.name, args.sa_id
        targets = [sa for sa in self.d.engine.list_sas() if sa.sa_id == sa_id or sa.connection == name]
        if name is not None:
            self.d.reconnect.cancel(name)
        if not targets:
            if name is not None and name in self.d.config.connections:
                return {"closed": []}
            raise UsageError(f"no IKE SA matches {name if name is not None else sa_id!r}")
        waiters = [self.d.waiters.add(sa.sa_id) for sa in targets]
        for sa in targets:
            self.d.reconnect.down_requested(sa.connection)
            self.d.apply(self.d.engine.terminate(sa.sa_id, self.d.clock.now()))
        await wait_until(self.d.clock, [w.future for w in waiters], DOWN_TIMEOUT)
        closed: list[JsonValue] = [w.sa_id for w in waiters if w.future.done()]
        return {"closed": closed}
