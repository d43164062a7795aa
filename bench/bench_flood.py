"""Flood benchmark: a pyipsec gateway daemon under a cookie-answering IKE_SA_INIT flood (issue 16).

Run as root: ``.venv/bin/python bench/bench_flood.py [--rate 500] [--sources 500] [--duration 20]
[--no-cookie-echo] [--setting key=value ...] [--json]`` (or ``make bench-flood ARGS="..."``).

Not a test: it measures, and shows the issue's targets beside the figures (a legitimate client
establishes in ≤ 1 s, control commands answer in ≤ 100 ms, the gateway's RSS grows ≤ 50 MB, an
established tunnel loses nothing). The exit status is 0 whether or not the targets are met, 1 if
the benchmark itself could not run.

Theory of operation
-------------------
Topology (``tests.support.netns`` and ``tests.support.roadwarrior``): a gateway namespace ``gw``
with a LAN host behind it; namespaces with a veth link each to ``gw``: ``steady`` and
``probe0`` … ``probe<N-1>`` (pyipsec road-warrior daemons, one per legitimate try: a
certificate-authenticated gateway, EAP-MSCHAPv2 users, a virtual IP each; the probes run without
a data plane of their own, they only negotiate) and ``atk``, the attacker. ``atk``'s veth
carries ``--sources`` /32 addresses from 10.99.0.1 on, and ``gw`` routes 10.99.0.0/16 back to
it. Every address lives inside these namespaces; everything (processes, namespaces, veths) is
removed at the end, also on failure, Ctrl-C or SIGTERM (the ``Topology`` context manager, and
its ``atexit`` hook).

Sequence:

1. Start the gateway (log level ``--log-level``, default ``info``; extra ``[settings]`` keys from
   ``--setting``), connect ``steady`` (its time is the *idle* establish time), and time one idle
   ``up``/``down`` of ``probe0``.
2. Start a sequence-numbered UDP stream, ``--stream-pps`` datagrams/s from ``steady``'s virtual
   IP through the tunnel to the LAN host, and the samplers (threads of this process):

   * control latency: every 100 ms a new request (``--control-cmd``, default ``stats``) on the
     gateway's control socket, open-loop (a stalled daemon delays no later sample's start),
     latency measured from the moment the request was due;
   * every second: the half-open IKE SA count (a ``half_open`` key of ``stats`` if the daemon
     reports one, otherwise the responder SAs in state CONNECTING of a ``status``, read without
     the CLI's 1 MiB line limit) and that ``status``'s latency;
   * every 0.5 s: RSS and CPU time of the gateway's processes (the daemon and every descendant:
     the data plane), and the kernel's receive-buffer drops on the gateway's UDP sockets.

   Two seconds of that without a flood give the idle figures.
3. Start the attacker (``bench/flood_attacker.py`` in ``atk``: ``--rate`` new IKE_SA_INIT/s
   from the source addresses in turn, COOKIEs echoed unless ``--no-cookie-echo``) for
   ``--duration`` seconds. Meanwhile the probes connect, one each, at times spread evenly over
   the flood (``up``, timed by the control call, at most ``--up-timeout``; a slow try delays no
   other).
4. After the flood: two more seconds of stream, then the loss count (sequence numbers that never
   arrived; the longest run of them gives the longest outage), and the gateway's counters.

Figures: legitimate establish time p50/max (and how many tries failed), control latency
p50/p99/max, ``status`` latency max, half-open SAs max, RSS growth (peak during the flood minus
the value just before it), gateway CPU (mean and peak over 1 s, in cores), kernel UDP drops,
stream loss, and the attacker's own achieved rate and counters. ``--json`` prints all of it as
one JSON document on standard output (progress goes to standard error either way).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO / "src", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.flood_attacker import source_addresses  # noqa: E402
from tests.support import roadwarrior as rw  # noqa: E402
from tests.support.netns import Namespace, Topology  # noqa: E402
from tests.support.pyipsecd import PyIpsecDaemon  # noqa: E402
from tests.support.survive import in_namespace  # noqa: E402

from pyipsec.control.protocol import encode_line  # noqa: E402

ATTACKER = REPO / "bench" / "flood_attacker.py"
ATTACK_NET = "10.99.0.0/16"
FIRST_SOURCE = "10.99.0.1"
STREAM_PORT = 5301
PASSWORD = "flood-bench-password-{}-0123456789"  # noqa: S105 - per user (formatted with its name)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# The issue's targets (issue 16): name -> (limit, unit)
TARGET_CONNECT_S = 1.0
TARGET_CONTROL_MS = 100.0
TARGET_RSS_MB = 50.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _pct(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1, nearest rank) of ``values``; None if empty."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# --- the gateway's control socket, without the CLI's line limit --------------------------------


def control(path: Path, cmd: str, timeout: float = 30.0) -> Any:
    """One control request; the ``result`` (RuntimeError on an error reply or no answer)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(encode_line({"id": 1, "cmd": cmd, "args": {}}))
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError(f"{cmd}: the daemon closed the connection")
            buf += chunk
    resp = json.loads(buf)
    if resp.get("ok") is not True:
        raise RuntimeError(f"{cmd}: {resp.get('error')}")
    return resp.get("result")


def half_open_of(stats: Any, status: Any | None) -> int | None:
    """Half-open IKE SAs: ``stats``' own count if it has one, else the responder SAs still
    CONNECTING in ``status`` (None if neither says)."""
    if isinstance(stats, dict):
        for key in ("half_open", "half_open_sas"):
            if isinstance(stats.get(key), int):
                return int(stats[key])
    if isinstance(status, dict) and isinstance(status.get("ike_sas"), list):
        return sum(
            1
            for sa in status["ike_sas"]
            if isinstance(sa, dict) and sa.get("state") == "CONNECTING" and not sa.get("original_initiator")
        )
    return None


# --- the gateway's processes -------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def rss_and_cpu(pids: Sequence[int]) -> tuple[int, float]:
    """Total RSS (bytes) and CPU time (user + system, seconds) of ``pids``."""
    rss, ticks = 0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        rss += rss_pages * PAGE
    return rss, ticks / CLK_TCK


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores; everything but idle and iowait):
    the other processes sharing the cores explain a starved gateway."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


def run_delay(pids: Sequence[int]) -> float:
    """Seconds the threads of ``pids`` have spent runnable but waiting for a CPU (the second
    field of /proc/PID/task/TID/schedstat): a gateway starved by other processes shows here."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(task.read_text().split()[1])
    return total / 1e9


def udp_drops(pid: int, ports: Sequence[int] = (500, 4500)) -> int:
    """Receive drops the kernel counted on the UDP sockets bound to ``ports`` in ``pid``'s
    network namespace (the last column of /proc/PID/net/udp and udp6)."""
    total = 0
    for name in ("udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 12 and int(cols[1].rsplit(":", 1)[1], 16) in ports:
                total += int(cols[-1])
    return total


# --- samplers ------------------------------------------------------------------------------------


@dataclass
class Samples:
    """What the sampler threads record; times are ``time.monotonic()`` values (made relative to
    the flood's start by :meth:`Samples.relative`)."""

    control: list[tuple[float, float | None]] = field(default_factory=list)  # (due, latency or None)
    status: list[tuple[float, float | None, int | None]] = field(default_factory=list)  # due, lat, half
    resources: list[tuple[float, int, float, int]] = field(default_factory=list)  # t, rss, cpu, drops
    # t, busy CPU seconds of the machine (all cores), seconds the gateway's threads waited for a CPU
    machine: list[tuple[float, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def relative(self, t0: float) -> Samples:
        """The same samples with times in seconds since ``t0`` (negative: before it)."""
        return Samples(
            control=[(t - t0, lat) for t, lat in self.control],
            status=[(t - t0, lat, h) for t, lat, h in self.status],
            resources=[(t - t0, rss, cpu, d) for t, rss, cpu, d in self.resources],
            machine=[(t - t0, busy, wait) for t, busy, wait in self.machine],
            errors=list(self.errors),
        )


class Samplers:
    """The control-latency, status and resource samplers (see the module docstring)."""

    def __init__(self, gw: PyIpsecDaemon, control_cmd: str) -> None:
        assert gw.proc is not None
        self.gw = gw
        self.pid = gw.proc.pid
        self.cmd = control_cmd
        self.samples = Samples()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="control")
        self._threads = [
            threading.Thread(target=self._control_loop, daemon=True),
            threading.Thread(target=self._status_loop, daemon=True),
            threading.Thread(target=self._resource_loop, daemon=True),
        ]
        self._lock = threading.Lock()

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _one_control(self, due: float) -> None:
        try:
            control(self.gw.socket, self.cmd, timeout=60)
            lat: float | None = time.monotonic() - due
        except Exception as exc:
            lat = None
            with self._lock:
                self.samples.errors.append(f"control {self.cmd}: {exc}")
        with self._lock:
            self.samples.control.append((due, lat))

    def _control_loop(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one_control, due)
            due += 0.1
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            due = time.monotonic()
            half: int | None = None
            lat: float | None = None
            try:
                stats = control(self.gw.socket, "stats", timeout=60)
                half = half_open_of(stats, None)
                if half is None:
                    t = time.monotonic()
                    status = control(self.gw.socket, "status", timeout=60)
                    lat = time.monotonic() - t
                    half = half_open_of(None, status)
            except Exception as exc:
                with self._lock:
                    self.samples.errors.append(f"status: {exc}")
            with self._lock:
                self.samples.status.append((due, lat, half))
            self._stop.wait(max(0.0, due + 1.0 - time.monotonic()))

    def _resource_loop(self) -> None:
        while not self._stop.is_set():
            due = time.monotonic()
            pids = process_tree(self.pid)
            rss, cpu = rss_and_cpu(pids)
            drops = udp_drops(self.pid)
            busy, wait = machine_busy(), run_delay(pids)
            with self._lock:
                self.samples.resources.append((due, rss, cpu, drops))
                self.samples.machine.append((due, busy, wait))
            self._stop.wait(max(0.0, due + 0.5 - time.monotonic()))


# --- the sequence-numbered stream through the tunnel --------------------------------------------


class Stream:
    """``pps`` datagrams/s, each with a 64-bit sequence number, from ``src`` (in ``sender``) to
    ``dst``:STREAM_PORT (in ``receiver``); the receiver records which numbers arrived."""

    def __init__(self, sender: Namespace, src: str, receiver: Namespace, dst: str, pps: float) -> None:
        def rx() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((dst, STREAM_PORT))
            s.settimeout(0.2)
            return s

        def tx() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((src, 0))
            return s

        self._rx = in_namespace(receiver, rx)
        self._tx = in_namespace(sender, tx)
        self._dst = (dst, STREAM_PORT)
        self.pps = pps
        self.sent = 0
        self.send_errors = 0
        self.seen: set[int] = set()
        self.duplicates = 0
        self._stop_tx = threading.Event()
        self._stop_rx = threading.Event()
        self._threads = [
            threading.Thread(target=self._send_loop, daemon=True),
            threading.Thread(target=self._recv_loop, daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _send_loop(self) -> None:
        due = time.monotonic()
        pad = bytes(56)
        while not self._stop_tx.is_set():
            try:
                self._tx.sendto(struct.pack("!Q", self.sent) + pad, self._dst)
            except OSError:
                self.send_errors += 1  # still a datagram the tunnel did not carry
            self.sent += 1
            due += 1.0 / self.pps
            self._stop_tx.wait(max(0.0, due - time.monotonic()))

    def _recv_loop(self) -> None:
        while not self._stop_rx.is_set():
            try:
                data = self._rx.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) >= 8:
                seq = struct.unpack("!Q", data[:8])[0]
                if seq in self.seen:
                    self.duplicates += 1
                self.seen.add(seq)

    def stop(self) -> dict[str, Any]:
        """Stop sending, wait a second for stragglers, stop receiving; the loss figures."""
        self._stop_tx.set()
        self._threads[0].join(timeout=5)
        time.sleep(1.0)
        self._stop_rx.set()
        self._threads[1].join(timeout=5)
        self._tx.close()
        self._rx.close()
        missing = [s for s in range(self.sent) if s not in self.seen]
        longest = run = 0
        prev = -2
        for s in missing:
            run = run + 1 if s == prev + 1 else 1
            longest = max(longest, run)
            prev = s
        return {
            "pps": self.pps,
            "sent": self.sent,
            "received": len(self.seen),
            "lost": len(missing),
            "duplicates": self.duplicates,
            "longest_outage_s": round(longest / self.pps, 3),
        }


# --- set-up --------------------------------------------------------------------------------------


def parse_settings(pairs: Sequence[str]) -> dict[str, object]:
    """``key=value`` pairs as TOML values (``5``, ``1.5``, ``true``, ``"x"``); a value that is
    not valid TOML is taken as a string."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--setting wants key=value, got {pair!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


@dataclass
class Site:
    topology: Topology
    site: rw.GatewaySite
    gw: PyIpsecDaemon
    steady: PyIpsecDaemon
    probes: list[PyIpsecDaemon]
    steady_ns: Namespace
    atk: Namespace
    gw_addr_for_atk: str


def _up(client: PyIpsecDaemon, timeout: float) -> tuple[float, bool, str]:
    """``up vpn`` on ``client``: (seconds, ok, message)."""
    t = time.monotonic()
    try:
        result = client.call("up", name="vpn", timeout=timeout)
    except Exception as exc:
        return time.monotonic() - t, False, str(exc)
    dt = time.monotonic() - t
    ok = isinstance(result, dict) and result.get("ok") is True
    msg = str(result.get("message", "")) if isinstance(result, dict) else repr(result)
    return dt, ok, msg


def _down(client: PyIpsecDaemon) -> None:
    with contextlib.suppress(Exception):
        client.call("down", name="vpn")


@contextlib.contextmanager
def build_site(args: argparse.Namespace, tmp: Path) -> Iterator[Site]:
    with Topology() as topo:
        site = rw.gateway_site(topo)
        steady_ns, steady_link = site.add_client("steady")
        probe_sites = [site.add_client(f"probe{k}") for k in range(args.tries)]
        atk, atk_link = site.add_client("atk")
        batch = "".join(
            f"addr add {a}/32 dev {atk_link.b_if}\n"
            for a in source_addresses(FIRST_SOURCE, args.sources)  # exactly what the attacker binds
        )
        atk.run(["ip", "-batch", "-"], input=batch, timeout=120)
        site.gw.run(["ip", "-4", "route", "add", ATTACK_NET, "via", atk_link.b_addr])

        pki = rw.make_pki(tmp / "pki")
        db = tmp / "gateway" / "users.db"
        users = ["steady", *(f"probe{k}" for k in range(args.tries))]
        rw.add_users(db, {u: PASSWORD.format(u) for u in users}, cli=False)
        settings = {"log_level": args.log_level, **parse_settings(args.setting)}
        gw_cfg = rw.gateway_config(pki, lan_net=site.lan_net, users_db=db, settings=settings)
        gw = PyIpsecDaemon(site.gw, tmp, gw_cfg, name="gateway", log_level=args.log_level)
        clients = []
        for (ns, link), user in zip(((steady_ns, steady_link), *probe_sites), users, strict=True):
            cfg = rw.client_config(
                tmp / user,
                ca_cert=pki.ca_cert,
                gateway=link.a_addr,
                user=user,
                password=PASSWORD.format(user),
                lan_net=site.lan_net,
            )
            # the probes only negotiate (no data plane of their own): lighter on a busy machine
            cfg["settings"].update(log_level="info", dataplane=user == "steady")  # type: ignore[attr-defined]
            clients.append(PyIpsecDaemon(ns, tmp, cfg, name=user, log_level="info"))
        gw.start()
        rw.start_all(clients)
        try:
            yield Site(topo, site, gw, clients[0], clients[1:], steady_ns, atk, atk_link.a_addr)
        finally:
            for d in (*clients, gw):
                with contextlib.suppress(Exception):
                    d.stop()


# --- the run -------------------------------------------------------------------------------------


def _lat_summary(values: Sequence[float | None]) -> dict[str, Any]:
    ok = [v * 1000 for v in values if v is not None]
    return {
        "n": len(values),
        "failed": sum(1 for v in values if v is None),
        "p50_ms": _round(_pct(ok, 0.5)),
        "p99_ms": _round(_pct(ok, 0.99)),
        "max_ms": _round(max(ok) if ok else None),
    }


def _round(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(v, nd)


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "config": {
            "rate": args.rate,
            "sources": args.sources,
            "duration_s": args.duration,
            "cookie_echo": not args.no_cookie_echo,
            "gateway_log_level": args.log_level,
            "settings": parse_settings(args.setting),
            "control_cmd": args.control_cmd,
            "tries": args.tries,
            "stream_pps": args.stream_pps,
            "cores": os.cpu_count(),
            "git": _git_rev(),
        }
    }
    with tempfile.TemporaryDirectory(prefix="pyi-flood-") as tmpdir, build_site(args, Path(tmpdir)) as s:
        log("steady client: up")
        dt, ok, msg = _up(s.steady, 30)
        if not ok:
            raise RuntimeError(f"the steady client did not connect: {msg}\n{s.gw.log_text()[-3000:]}")
        vips = rw.tun_addresses(s.steady_ns)
        if not vips or not rw.ping_from(s.steady_ns, vips[0], s.site.lan_host):
            raise RuntimeError("no traffic through the steady client's tunnel")
        idle_steady = dt
        log(f"  connected in {dt:.3f} s, VIP {vips[0]}")
        dt, ok, msg = _up(s.probes[0], 30)
        if not ok:
            raise RuntimeError(f"the probe client did not connect: {msg}")
        idle_probe = dt
        _down(s.probes[0])
        log(f"probe client idle up: {dt:.3f} s")

        stream = Stream(s.steady_ns, vips[0], s.site.lan, s.site.lan_host, args.stream_pps)
        samplers = Samplers(s.gw, args.control_cmd)
        stats_before = control(s.gw.socket, "stats")
        stream.start()
        samplers.start()
        time.sleep(2.0)  # idle figures

        argv = [
            sys.executable,
            str(ATTACKER),
            "--gateway",
            s.gw_addr_for_atk,
            "--first-source",
            FIRST_SOURCE,
            "--sources",
            str(args.sources),
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
        ]
        if args.no_cookie_echo:
            argv.append("--no-cookie-echo")
        attacker = s.atk.popen(argv)
        assert attacker.stdout is not None
        line = attacker.stdout.readline().decode().strip()
        if line != "ready":
            err = attacker.stderr.read().decode() if attacker.stderr else ""
            raise RuntimeError(f"the attacker did not start: {line} {err}")
        flood_start = time.monotonic()
        load_at_start = [round(x, 2) for x in os.getloadavg()]
        log(f"flood: {args.rate:g}/s from {args.sources} addresses for {args.duration:g} s")

        tries: list[dict[str, Any]] = [{} for _ in s.probes]
        aborted = threading.Event()

        def attempt(k: int) -> None:
            due = flood_start + args.duration * (k + 0.5) / len(s.probes)
            if aborted.wait(max(0.0, due - time.monotonic())):
                return
            at = time.monotonic() - flood_start
            dt, ok, msg = _up(s.probes[k], args.up_timeout)
            tries[k] = {"at_s": round(at, 2), "seconds": round(dt, 3), "ok": ok, "message": msg}
            if not aborted.is_set():
                log(f"  probe{k} up at {at:5.1f} s: {dt:.3f} s {'ok' if ok else 'FAILED: ' + msg}")

        workers = [threading.Thread(target=attempt, args=(k,), daemon=True) for k in range(len(s.probes))]
        for w in workers:
            w.start()
        try:
            for w in workers:
                w.join()
        finally:
            aborted.set()  # on an interruption: no try starts or reports after the teardown

        out, err = attacker.communicate(timeout=args.duration + 120)
        flood_end = time.monotonic()
        attack = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {"error": err.decode()}
        time.sleep(max(0.0, flood_start + args.duration + 2.0 - time.monotonic()))
        samplers.stop()
        tunnel = stream.stop()
        stats_after = control(s.gw.socket, "stats")
        steady_up = rw.established(s.steady.status())
        sas_after = len(control(s.gw.socket, "status")["ike_sas"])
        log(f"flood over after {flood_end - flood_start:.1f} s")

    sm = samplers.samples.relative(flood_start)
    dur = args.duration
    flood_ctl = [lat for t, lat in sm.control if 0 <= t < dur]
    idle_ctl = [lat for t, lat in sm.control if t < 0]
    status_lat = [lat for t, lat, _ in sm.status if 0 <= t < dur and lat is not None]
    halves = [h for t, _, h in sm.status if 0 <= t <= dur + 2 and h is not None]
    res = sm.resources
    before = [r for r in res if r[0] < 0]
    during = [r for r in res if 0 <= r[0] <= dur]
    base_rss = before[-1][1] if before else (during[0][1] if during else 0)
    peak_rss = max((r[1] for r in during), default=base_rss)
    cpu_mean = cpu_peak = machine = cpu_wait = 0.0
    drops = 0
    m_before = [m for m in sm.machine if m[0] < 0]
    m_during = [m for m in sm.machine if 0 <= m[0] <= dur]
    if m_before and m_during:
        span = max(1e-9, m_during[-1][0] - m_before[-1][0])
        machine = (m_during[-1][1] - m_before[-1][1]) / span
        cpu_wait = (m_during[-1][2] - m_before[-1][2]) / span
    if before and during:
        first, last = before[-1], during[-1]
        cpu_mean = (last[2] - first[2]) / max(1e-9, last[0] - first[0])
        drops = last[3] - first[3]
        seq = [before[-1], *during]
        for a, b in zip(seq, seq[2:], strict=False):  # 1 s windows
            cpu_peak = max(cpu_peak, (b[2] - a[2]) / max(1e-9, b[0] - a[0]))
    ok_tries = [t["seconds"] for t in tries if t["ok"]]
    connect = {
        "idle_steady_s": round(idle_steady, 3),
        "idle_probe_s": round(idle_probe, 3),
        "tries": tries,
        "ok": len(ok_tries),
        "p50_s": _round(statistics.median(ok_tries) if ok_tries else None, 3),
        "max_s": _round(max(t["seconds"] for t in tries) if tries else None, 3),
    }
    gw_counters = {
        k: (stats_after.get(k, 0) - stats_before.get(k, 0))
        for k in stats_after
        if isinstance(stats_after.get(k), int) and isinstance(stats_before.get(k), int)
    }
    report.update(
        {
            "attacker": attack,
            "legit_connect": connect,
            "control": {"idle": _lat_summary(idle_ctl), "flood": _lat_summary(flood_ctl)},
            "status_cmd_flood": {
                "n": len(status_lat),
                "p50_ms": _round(_pct([v * 1000 for v in status_lat], 0.5)),
                "max_ms": _round(max(status_lat) * 1000 if status_lat else None),
            },
            "half_open": {"max": max(halves) if halves else None, "last": halves[-1] if halves else None},
            "gateway": {
                "rss_before_mb": round(base_rss / 2**20, 1),
                "rss_peak_mb": round(peak_rss / 2**20, 1),
                "rss_growth_mb": round((peak_rss - base_rss) / 2**20, 1),
                "cpu_cores_mean": round(cpu_mean, 2),
                "cpu_cores_peak_1s": round(cpu_peak, 2),
                "cpu_wait_cores_mean": round(cpu_wait, 2),  # runnable, but no CPU free
                "machine_busy_cores": round(machine, 2),  # everything on the machine, attacker included
                "load_average_at_start": load_at_start,
                "udp_rcvbuf_drops": drops,
                # of the IKE datagrams that reached the gateway's sockets, the share the kernel dropped
                "udp_dropped_share": round(drops / max(1, drops + gw_counters.get("udp_received", 0)), 3),
                # only meaningful with many of them (RSS moves by a few MB on its own)
                "rss_per_half_open_kb": round((peak_rss - base_rss) / 1024 / max(halves), 1)
                if halves and max(halves) >= 100
                else None,
                "counters_delta": gw_counters,
                "ike_sas_after": sas_after,
            },
            "tunnel": {**tunnel, "steady_sa_established_after": steady_up},
            "sampler_errors": sm.errors[:20],
            "sampler_error_count": len(sm.errors),
        }
    )
    report["targets"] = targets(report)
    return report


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets beside the figures."""
    c = r["legit_connect"]
    ctl = r["control"]["flood"]
    t = r["tunnel"]
    all_ok = c["ok"] == len(c["tries"])
    connect_max = c["max_s"]
    ctl_max = ctl["max_ms"]
    return [
        {
            "what": "legitimate client establishes (max of tries)",
            "value": f"{connect_max} s ({c['ok']}/{len(c['tries'])} ok)",
            "target": f"≤ {TARGET_CONNECT_S:g} s",
            "met": all_ok and connect_max is not None and connect_max <= TARGET_CONNECT_S,
        },
        {
            "what": "control command latency (max)",
            "value": f"{ctl_max} ms ({ctl['failed']} failed)",
            "target": f"≤ {TARGET_CONTROL_MS:g} ms",
            "met": ctl["failed"] == 0 and ctl_max is not None and ctl_max <= TARGET_CONTROL_MS,
        },
        {
            "what": "gateway RSS growth",
            "value": f"{r['gateway']['rss_growth_mb']} MB",
            "target": f"≤ {TARGET_RSS_MB:g} MB",
            "met": r["gateway"]["rss_growth_mb"] <= TARGET_RSS_MB,
        },
        {
            "what": "established tunnel loss",
            "value": f"{t['lost']} of {t['sent']}",
            "target": "0",
            "met": t["lost"] == 0 and t["steady_sa_established_after"],
        },
    ]


def _git_rev() -> str:
    proc = subprocess.run(  # noqa: S603 - a fixed argv
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()


def print_table(r: dict[str, Any]) -> None:
    cfg, a, c = r["config"], r["attacker"], r["legit_connect"]
    ctl_i, ctl_f = r["control"]["idle"], r["control"]["flood"]
    g, t, st = r["gateway"], r["tunnel"], r["status_cmd_flood"]
    rows: list[tuple[str, str]] = [
        ("flood", f"{cfg['rate']:g}/s from {cfg['sources']} addresses, {cfg['duration_s']:g} s, "
                  f"cookie echo {'on' if cfg['cookie_echo'] else 'off'}, settings {cfg['settings']}"),
        ("attacker achieved", f"{a.get('rate_achieved', 0):.1f} new/s (sent {a.get('sent')}, "
                              f"echoes {a.get('echoes_sent')}, refused {a.get('send_refused')}, "
                              f"CPU {a.get('cpu_seconds', 0):.1f} s)"),
        ("attacker answers", f"cookies {a.get('cookies')}, full responses (half-open SAs made) "
                             f"{a.get('inits')}, errors {a.get('errors')}, other {a.get('other')}"),
        ("legit establish idle", f"{c['idle_steady_s']} s (steady), {c['idle_probe_s']} s (probe)"),
        ("legit establish flood", f"p50 {c['p50_s']} s, max {c['max_s']} s, {c['ok']}/{len(c['tries'])} ok: "
                                  + ", ".join(f"{x['seconds']}" for x in c["tries"])),
        (f"control '{cfg['control_cmd']}' idle", f"p50 {ctl_i['p50_ms']} ms, p99 {ctl_i['p99_ms']} ms, "
                                                 f"max {ctl_i['max_ms']} ms (n={ctl_i['n']})"),
        (f"control '{cfg['control_cmd']}' flood", f"p50 {ctl_f['p50_ms']} ms, p99 {ctl_f['p99_ms']} ms, "
                                                  f"max {ctl_f['max_ms']} ms (n={ctl_f['n']}, "
                                                  f"failed {ctl_f['failed']})"),
        ("'status' flood", f"p50 {st['p50_ms']} ms, max {st['max_ms']} ms (n={st['n']})"),
        ("half-open SAs", f"max {r['half_open']['max']}, at the end {r['half_open']['last']}"),
        ("gateway RSS", f"{g['rss_before_mb']} MB -> peak {g['rss_peak_mb']} MB "
                        f"(+{g['rss_growth_mb']} MB, {g['rss_per_half_open_kb']} KB per half-open SA)"),
        ("gateway CPU", f"mean {g['cpu_cores_mean']} cores, peak {g['cpu_cores_peak_1s']} (1 s); waiting for "
                        f"a CPU {g['cpu_wait_cores_mean']} (mean); machine {g['machine_busy_cores']} of "
                        f"{cfg['cores']} cores busy (load at start {g['load_average_at_start']})"),
        ("gateway UDP drops", f"{g['udp_rcvbuf_drops']} (kernel receive buffer, ports 500/4500): "
                              f"{100 * g['udp_dropped_share']:.0f} % of the datagrams that arrived"),
        ("gateway counters", ", ".join(f"{k} +{v}" for k, v in g["counters_delta"].items())),
        ("tunnel stream", f"{t['sent']} sent at {t['pps']:g}/s, {t['received']} received, lost {t['lost']}, "
                          f"longest outage {t['longest_outage_s']} s, steady SA up after: "
                          f"{t['steady_sa_established_after']}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    print(f"\npyipsec flood benchmark ({cfg['git']}, {cfg['cores']} cores)")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print("\ntargets (issue 16):")
    print(f"  {'':<46}{'measured':<28}{'target':<12}met")
    for x in r["targets"]:
        print(f"  {x['what']:<46}{x['value']:<28}{x['target']:<12}{'yes' if x['met'] else 'NO'}")
    if r["sampler_error_count"]:
        print(f"\n{r['sampler_error_count']} sampler errors, e.g. {r['sampler_errors'][:3]}")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the topology's cleanup


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=500.0, help="new IKE_SA_INIT requests per second")
    ap.add_argument("--sources", type=int, default=500, help="attacker source addresses")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of flood")
    ap.add_argument("--no-cookie-echo", action="store_true", help="the attacker ignores COOKIEs")
    ap.add_argument("--tries", type=int, default=5, help="legitimate connects spread over the flood")
    ap.add_argument("--up-timeout", type=float, default=30.0, help="seconds one legitimate up may take")
    ap.add_argument("--stream-pps", type=float, default=100.0, help="datagrams/s through the steady tunnel")
    ap.add_argument("--control-cmd", default="stats", help="the control command sampled every 100 ms")
    ap.add_argument("--log-level", default="info", help="the gateway daemon's log level")
    ap.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra [settings] key of the gateway (TOML value), repeatable",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        log("needs root (network namespaces)")
        return 2
    if not 1 <= args.sources <= 60000 or args.rate <= 0 or args.duration <= 0 or args.tries < 1:
        log("--sources 1..60000, --rate and --duration > 0, --tries ≥ 1")
        return 2
    # the daemons, the CLI and the attacker import this checkout's pyipsec
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        report = run(args)
    except KeyboardInterrupt:
        log("interrupted; everything removed")
        return 130
    except Exception as exc:  # the benchmark could not run: say why, in one message
        log(f"the benchmark failed: {type(exc).__name__}: {exc}")
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
