"""Load generator: many IKEv2 road warriors from one process, through one ``IkeEngine`` (issue 13).

Run inside a namespace whose interface carries the source addresses (``bench/bench_gateway.py``
does it all): ``python bench/loadgen.py --gateway-psk A --gateway-eap B --first-source 10.98.0.1
--clients 100 --rate 50 --concurrency 200 --hold 20 --ca ca.pem --lan 10.1.2.0/24 --json-out r.json``.

Theory of operation
-------------------
Every client is a connection of its own in one engine configuration (``user0001`` …, made with
the same TOML model and ``daemon.build`` as the daemon's): even-numbered clients authenticate with
a PSK of their own (:func:`psk_of`) to ``--gateway-psk``, odd-numbered ones with EAP-MSCHAPv2
(password :func:`password_of`, the gateway's certificate checked against ``--ca``) to
``--gateway-eap`` (``--auth psk`` or ``eap`` makes them all alike). Each asks for a virtual IP and
one tunnel-mode Child SA to ``--lan``, and initiates from its own source address
(``--first-source`` on, skipping .0 and .255; the addresses must exist in the namespace): the
gateway's per-address half-open limits see one client per address, as with real users. One pair
of UDP sockets (500 and 4500, IP_PKTINFO picks the source address: ``pyipsec.io.udp``) carries
everything; the engine answers DPD, sends NAT keepalives and rekeys as a daemon would. There is
no data plane: ESP that reaches the sockets is counted, not decrypted.

:class:`Arrivals` starts client ``i`` at ``i / rate`` seconds, but never more than
``concurrency`` in set-up at once (a start held back by the cap is late, and its lateness is
recorded). A client's *set-up time* runs from its IKE_SA_INIT being sent to its first Child SA
installed; a failure records the engine's close reason. Once every client is established or
failed (or ``--setup-timeout`` passed) the clients are *held* for ``--hold`` seconds; an IKE SA
that closes in that time without being replaced (rekey, reauthentication) makes its client
*lost*. Then all are terminated at once and the time until the last delete is answered (or
timed out) is the *delete-all time*.

Progress goes to standard output as JSON lines (``{"phase": "holding", ...}``), so a benchmark
can sample the gateway during the hold; the full result (:func:`summarize`) is written to
``--json-out`` and printed as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

from pyipsec.config.load import parse_config  # noqa: E402
from pyipsec.daemon.build import build_engine_config  # noqa: E402
from pyipsec.ike.engine import IkeEngine, Output  # noqa: E402
from pyipsec.ike.events import ChildSaInstalled, IkeSaClosed, IkeSaEstablished, VirtualIpAssigned  # noqa: E402
from pyipsec.io.udp import UdpPorts  # noqa: E402
from pyipsec.net.addr import Datagram, Endpoint  # noqa: E402

__all__ = [
    "GATEWAY_ID",
    "Arrivals",
    "Client",
    "LoadGen",
    "client_config",
    "client_names",
    "password_of",
    "percentile",
    "psk_of",
    "source_addresses",
    "summarize",
]

GATEWAY_ID = "vpn.pyipsec.test"
IKE_PROPOSAL = "aes256gcm16-prfsha256-ecp256"
ESP_PROPOSAL = "aes256gcm16"


def client_names(count: int) -> list[str]:
    """``user0001`` … (four digits at least)."""
    return [f"user{i + 1:04d}" for i in range(count)]


def psk_of(name: str) -> str:
    """The pre-shared key of PSK user ``name`` (the bench puts the same into the gateway)."""
    return f"loadgen-psk-{name}-0123456789abcdef"


def password_of(name: str) -> str:
    """The EAP-MSCHAPv2 password of user ``name``."""
    return f"loadgen-pw-{name}-0123456789"


def auth_of(index: int, mode: str) -> str:
    """``psk`` or ``eap`` for client ``index`` (``mode`` ``mixed``: even PSK, odd EAP)."""
    if mode == "mixed":
        return "psk" if index % 2 == 0 else "eap"
    return mode


def source_addresses(first: str, count: int) -> list[str]:
    """``count`` consecutive IPv4 addresses from ``first``, skipping those ending in .0 or .255."""
    out: list[str] = []
    addr = IPv4Address(first)
    while len(out) < count:
        if addr.packed[-1] not in (0, 255):
            out.append(str(addr))
        addr += 1
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank (the smallest value with at least
    ``q`` of the values at or below it); None if empty."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, -(-round(q * len(s) * 1e9) // int(1e9)))  # ceil(q·n) without float noise
    return s[min(len(s), rank) - 1]


class Arrivals:
    """Start times: client ``i`` is due at ``t0 + i / rate``, at most ``concurrency`` in set-up."""

    def __init__(self, count: int, rate: float, concurrency: int, t0: float) -> None:
        if count < 0 or rate <= 0 or concurrency < 1:
            raise ValueError("count ≥ 0, rate > 0 and concurrency ≥ 1")
        self.count, self.rate, self.concurrency, self.t0 = count, rate, concurrency, t0
        self.next = 0

    def due_at(self, index: int) -> float:
        return self.t0 + index / self.rate

    def ready(self, now: float, in_setup: int) -> list[int]:
        """The clients to start now (in order), given ``in_setup`` clients still setting up."""
        out: list[int] = []
        while (
            self.next < self.count
            and self.due_at(self.next) <= now
            and in_setup + len(out) < self.concurrency
        ):
            out.append(self.next)
            self.next += 1
        return out

    def next_due(self) -> float | None:
        """When the next client is due (None: all started); it may still wait for the cap."""
        return self.due_at(self.next) if self.next < self.count else None

    @property
    def done(self) -> bool:
        return self.next >= self.count


@dataclass
class Client:
    """One simulated road warrior and what happened to it."""

    index: int
    name: str
    auth: str
    source: str
    due: float = 0.0
    started: float | None = None
    installed: float | None = None
    failure: str | None = None
    lost: str | None = None
    sa_id: int | None = None
    vip: str | None = None
    deleted: float | None = None

    @property
    def setup_time(self) -> float | None:
        if self.started is None or self.installed is None:
            return None
        return self.installed - self.started

    @property
    def in_setup(self) -> bool:
        return self.started is not None and self.installed is None and self.failure is None


def client_config(
    clients: Sequence[Client],
    *,
    gateway_psk: str,
    gateway_eap: str,
    ca: Path | None,
    lan: str,
    dpd_delay: int = 0,
    child_rekey: int | None = None,
    retransmit_timeout: float = 2.0,
    retransmit_tries: int = 4,
) -> dict[str, Any]:
    """The pyipsec configuration (as parsed TOML) of all ``clients``: one connection each."""
    conns: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for c in clients:
        child: dict[str, Any] = {"remote_ts": [lan], "esp_proposals": [ESP_PROPOSAL]}
        if child_rekey is not None:
            child.update(rekey_time=child_rekey, life_time=child_rekey * 11 // 10)
        conn: dict[str, Any] = {
            "proposals": [IKE_PROPOSAL],
            "vips": ["0.0.0.0"],
            "mobike": False,
            "dpd_delay": dpd_delay,
            "children": {"net": child},
        }
        if c.auth == "psk":
            conn["remote_addrs"] = [gateway_psk]
            conn["local"] = {"auth": "psk", "id": c.name}
            conn["remote"] = {"auth": "psk", "id": GATEWAY_ID}
            secrets[f"ike-{c.name}"] = {"id": [c.name], "secret": psk_of(c.name)}
        else:
            if ca is None:
                raise ValueError("EAP clients need the gateway's CA certificate (--ca)")
            conn["remote_addrs"] = [gateway_eap]
            conn["local"] = {"auth": "eap-mschapv2", "id": c.name, "eap_id": c.name}
            conn["remote"] = {"auth": "pubkey", "id": GATEWAY_ID, "cacerts": [str(ca)]}
            secrets[f"eap-{c.name}"] = {"id": [c.name], "secret": password_of(c.name)}
        conns[c.name] = conn
    settings = {
        "dataplane": False,
        "retransmit_timeout": retransmit_timeout,
        "retransmit_tries": retransmit_tries,
        "log_level": "warning",
    }
    return {"settings": settings, "connections": conns, "secrets": secrets}


def summarize(clients: Sequence[Client], *, label: str = "") -> dict[str, Any]:
    """Figures of one run: set-up times (ms), failures by reason, sustained set-ups per second
    (established clients over the time from the first start to the last installation), lost
    clients and the delete-all figures."""
    ok = [c for c in clients if c.setup_time is not None]
    times = [c.setup_time * 1000 for c in ok if c.setup_time is not None]
    started = [c.started for c in clients if c.started is not None]
    span = (max(c.installed for c in ok if c.installed is not None) - min(started)) if ok and started else 0.0
    late = [(c.started - c.due) * 1000 for c in clients if c.started is not None]
    deleted = [c.deleted for c in clients if c.deleted is not None]
    return {
        "label": label,
        "clients": len(clients),
        "by_auth": dict(Counter(c.auth for c in clients)),
        "started": len(started),
        "established": len(ok),
        "failed": sum(1 for c in clients if c.failure is not None),
        "failures": dict(Counter(c.failure for c in clients if c.failure is not None).most_common()),
        "setup_ms": {
            "p50": _r(percentile(times, 0.5)),
            "p90": _r(percentile(times, 0.9)),
            "p99": _r(percentile(times, 0.99)),
            "max": _r(max(times) if times else None),
        },
        "start_late_ms_max": _r(max(late) if late else None),
        "setups_per_s": _r(len(ok) / span if span > 0 else None, 2),
        "lost": sum(1 for c in clients if c.lost is not None),
        "lost_reasons": dict(Counter(c.lost for c in clients if c.lost is not None).most_common()),
        "vips_distinct": len({c.vip for c in clients if c.vip is not None}),
        "deleted": len(deleted),
    }


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v, nd)


class LoadGen:
    """The clients, their engine, and the bookkeeping of the engine's events (no I/O here:
    :meth:`apply` returns the datagrams to send)."""

    def __init__(self, engine: IkeEngine, clients: Sequence[Client], gateways: dict[str, Endpoint]) -> None:
        self.engine = engine
        self.clients = list(clients)
        self.gateways = gateways
        self.by_sa: dict[int, Client] = {}
        self.holding = False
        self.deleting = False
        self._setting_up: set[int] = set()  # indices of the clients in set-up

    @property
    def in_setup(self) -> int:
        return len(self._setting_up)

    def give_up(self, reason: str) -> None:
        """Every client still setting up fails with ``reason``."""
        for index in self._setting_up:
            self.clients[index].failure = reason
        self._setting_up.clear()

    def start(self, client: Client, now: float) -> list[Datagram]:
        client.started = now
        self._setting_up.add(client.index)
        local = Endpoint(ip_address(client.source), 500)
        sa_id, out = self.engine.initiate(client.name, now, local=local, remote=self.gateways[client.auth])
        client.sa_id = sa_id
        self.by_sa[sa_id] = client
        return self.apply(out, now)

    def apply(self, out: Output, now: float) -> list[Datagram]:
        for ev in out.events:
            if isinstance(ev, IkeSaEstablished):
                old = ev.rekeyed_from if ev.rekeyed_from is not None else ev.reauth_of
                client = self.by_sa.get(old) if old is not None else None
                if client is not None:
                    self.by_sa[ev.sa_id] = client
                    client.sa_id = ev.sa_id
            elif isinstance(ev, ChildSaInstalled):
                client = self.by_sa.get(ev.sa_id)
                if client is not None and client.installed is None:
                    client.installed = now
                    self._setting_up.discard(client.index)
            elif isinstance(ev, VirtualIpAssigned):
                client = self.by_sa.get(ev.sa_id)
                if client is not None and ev.addresses:
                    client.vip = str(ev.addresses[0])
            elif isinstance(ev, IkeSaClosed):
                client = self.by_sa.pop(ev.sa_id, None)
                if client is None or ev.cause.replaced:
                    continue
                if self.deleting:
                    client.deleted = now
                elif client.installed is None:
                    client.failure = client.failure or f"{ev.cause.value}: {ev.reason}"
                    self._setting_up.discard(client.index)
                elif client.sa_id == ev.sa_id and client.lost is None:
                    client.lost = f"{ev.cause.value}: {ev.reason}"
        return list(out.datagrams)

    def terminate_all(self, now: float) -> list[Datagram]:
        self.deleting = True
        out: list[Datagram] = []
        for sa_id in list(self.by_sa):
            with contextlib.suppress(Exception):  # an SA going anyway
                out += self.apply(self.engine.terminate(sa_id, now), now)
        return out


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    names = client_names(args.clients)
    sources = source_addresses(args.first_source, args.clients)
    clients = [
        Client(i, n, auth_of(i, args.auth), s) for i, (n, s) in enumerate(zip(names, sources, strict=True))
    ]
    cfg = parse_config(
        client_config(
            clients,
            gateway_psk=args.gateway_psk,
            gateway_eap=args.gateway_eap,
            ca=args.ca,
            lan=args.lan,
            dpd_delay=args.dpd,
            child_rekey=args.child_rekey,
        )
    )
    engine_cfg, creds = build_engine_config(cfg)
    engine = IkeEngine(engine_cfg, creds)
    gateways = {
        "psk": Endpoint(ip_address(args.gateway_psk), 500),
        "eap": Endpoint(ip_address(args.gateway_eap), 500),
    }
    gen = LoadGen(engine, clients, gateways)
    cpu0 = time.process_time()
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def send(dgrams: Sequence[Datagram]) -> None:
        for d in dgrams:
            ports.send(d)

    def on_ike(d: Datagram) -> None:
        send(gen.apply(engine.receive_datagram(d, time.monotonic()), time.monotonic()))
        wake.set()

    ports = UdpPorts(on_ike, listen=(IPv4Address(0),))
    ports.open(loop)
    try:
        t0 = time.monotonic() + 0.2
        arrivals = Arrivals(len(clients), args.rate, args.concurrency, t0)
        for c in clients:
            c.due = arrivals.due_at(c.index)
        _emit(phase="starting", clients=len(clients), rate=args.rate)
        setup_deadline = t0 + len(clients) / args.rate + args.setup_timeout
        hold_end: float | None = None
        delete_deadline: float | None = None
        t_delete = 0.0
        while True:
            now = time.monotonic()
            if not gen.holding:
                for i in arrivals.ready(now, gen.in_setup):
                    send(gen.start(clients[i], now))
            send(gen.apply(engine.handle_timer(now), now))
            if not gen.holding and arrivals.done and (gen.in_setup == 0 or now >= setup_deadline):
                gen.give_up("set-up timeout")
                gen.holding = True
                hold_end = now + args.hold
                s = summarize(clients)
                _emit(phase="holding", established=s["established"], failed=s["failed"], hold=args.hold)
            if gen.holding and not gen.deleting and hold_end is not None and now >= hold_end:
                up = sum(1 for c in clients if c.installed is not None and c.lost is None)
                _emit(phase="deleting", up=up)
                t_delete = now
                delete_deadline = now + args.delete_timeout
                send(gen.terminate_all(now))
            if gen.deleting and (not gen.by_sa or (delete_deadline is not None and now >= delete_deadline)):
                break
            deadlines = [d for d in (engine.next_deadline(), arrivals.next_due(), hold_end) if d is not None]
            timeout = min([*deadlines, now + 0.5]) - time.monotonic()
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, timeout))
        end = time.monotonic()
    finally:
        ports.close()
    result = summarize(clients, label=args.label)
    last_delete = max((c.deleted for c in clients if c.deleted is not None), default=None)
    result.update(
        hold_s=args.hold,
        delete_all_s=_r(last_delete - t_delete if last_delete is not None else None, 3),
        delete_unanswered=len(gen.by_sa),
        run_s=_r(end - t0, 1),
        loadgen_cpu_s=_r(time.process_time() - cpu0, 1),
        udp={"received": ports.stats.received, "sent": ports.stats.sent, "esp": ports.stats.esp,
             "keepalives": ports.stats.keepalives, "send_errors": ports.stats.send_errors},
        engine=engine.stats.as_dict(),
        rate=args.rate,
        concurrency=args.concurrency,
        auth=args.auth,
        per_client=[
            {"name": c.name, "auth": c.auth, "source": c.source, "vip": c.vip,
             "setup_ms": _r(c.setup_time * 1000 if c.setup_time is not None else None),
             "failure": c.failure, "lost": c.lost}
            for c in clients
        ] if args.per_client else None,
    )  # fmt: skip
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway-psk", required=True, help="the gateway address PSK clients connect to")
    ap.add_argument("--gateway-eap", required=True, help="the gateway address EAP clients connect to")
    ap.add_argument("--ca", type=Path, help="the CA certificate of the gateway (EAP clients)")
    ap.add_argument("--lan", required=True, help="the network behind the gateway (remote_ts)")
    ap.add_argument("--first-source", required=True, help="the first client source address")
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--auth", choices=("mixed", "psk", "eap"), default="mixed")
    ap.add_argument("--rate", type=float, default=50.0, help="new clients per second")
    ap.add_argument("--concurrency", type=int, default=1000, help="clients in set-up at most")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds to hold the clients")
    ap.add_argument("--setup-timeout", type=float, default=60.0, help="seconds after the last start")
    ap.add_argument("--delete-timeout", type=float, default=60.0)
    ap.add_argument("--dpd", type=int, default=0, help="the clients' dpd_delay (0: off)")
    ap.add_argument("--child-rekey", type=int, help="the clients' Child SA rekey_time (seconds)")
    ap.add_argument("--label", default="")
    ap.add_argument("--per-client", action="store_true", help="include every client in the JSON")
    ap.add_argument("--json-out", type=Path, help="write the result here too")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.rate <= 0 or args.concurrency < 1 or args.hold < 0:
        ap.error("--clients ≥ 1, --rate > 0, --concurrency ≥ 1, --hold ≥ 0")
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    result = asyncio.run(_run(args))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2))
    _emit(phase="done", result=result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
