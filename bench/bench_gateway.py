"""Gateway benchmark: many road warriors on a pyipsec gateway and on a strongSwan gateway, one run (issue 13).

Run as root: ``.venv/bin/python bench/bench_gateway.py [--clients 1000] [--hold 300] [--rates 10,50,100]
[--main-rate 50] [--wave-seconds 10] [--only pyipsec|strongswan] [--json FILE]`` (or ``make bench-gateway
ARGS="..."``). The exit status is 0 whether or not the targets are met, 1 if the benchmark could not run.

Theory of operation
-------------------
The site is ``tests.support.gateway_load``: a gateway namespace with a PSK and an EAP-MSCHAPv2
connection (one address each), a pool, and a client namespace with one source address per client.
The same sequence runs against each gateway in turn, in the same namespaces:

1. start the gateway (pyipsec: the real CLI, ``python -m pyipsec daemon``, with its data plane;
   strongSwan: charon 5.9.8 with kernel-libipsec, loaded over vici with the same connections,
   proposals, pool, PSKs and EAP passwords) and wait 2 s: its idle RSS is the *baseline*;
2. for each rate of ``--rates`` other than ``--main-rate``: a *wave* of ``rate × --wave-seconds``
   clients (at most ``--clients``) arriving at that rate through ``bench/loadgen.py``, no hold,
   all deleted at the end: set-up p50/p99 and set-ups per second sustained at that rate;
3. the *main* wave: ``--clients`` clients at ``--main-rate``, held ``--hold`` seconds. From 5 s
   into the hold (the last set-ups' work done) to its end, the gateway's CPU time (utime + stime
   of all its processes, /proc/PID/stat) over the wall time is the *idle CPU*; RSS (all its
   processes: pyipsec's daemon and its data-plane process; charon) is sampled at the same time;
   the gateway's own view (``pyipsec status`` over the control socket; vici ``list-sas``) counts
   its established IKE SAs and installed Child SAs. Memory per SA is RSS ÷ SAs, and the marginal
   (RSS − baseline) ÷ SAs. At the end of the hold the load generator deletes every client at once:
   the time until the last delete is answered is the *delete-all time*.

Everything (namespaces, daemons) is removed at the end, also on failure or Ctrl-C. The machine
load average is recorded: other work on the same cores shows up in every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO / "src", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from bench.bench_flood import control, process_tree, rss_and_cpu, udp_drops  # noqa: E402
from bench.loadgen import auth_of, client_names, password_of  # noqa: E402
from tests.support import gateway_load as gl  # noqa: E402
from tests.support import roadwarrior as rw  # noqa: E402
from tests.support.netns import Topology  # noqa: E402
from tests.support.pyipsecd import PyIpsecDaemon  # noqa: E402
from tests.support.strongswan import Charon  # noqa: E402

LOADGEN = REPO / "bench" / "loadgen.py"
TARGET_P99_S = 2.0
TARGET_IDLE_CPU = 0.05
SETTLE_S = 5.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Gateway:
    """What the benchmark needs of a running gateway: its processes and its SA count."""

    def __init__(self, name: str, pid: int, count: Any) -> None:
        self.name, self.pid, self._count = name, pid, count

    def resources(self) -> tuple[int, float]:
        return rss_and_cpu(process_tree(self.pid))

    def rss_by_process(self) -> dict[str, float]:
        """RSS in MB of each of the gateway's processes (``PID name``)."""
        out: dict[str, float] = {}
        for pid in process_tree(self.pid):
            rss, _ = rss_and_cpu([pid])
            with contextlib.suppress(OSError):
                out[f"{pid} {Path(f'/proc/{pid}/comm').read_text().strip()}"] = round(rss / 2**20, 1)
        return out

    def udp_drops(self) -> int:
        """Datagrams the kernel dropped on the gateway's IKE sockets (receive buffer full)."""
        return udp_drops(self.pid)

    def sa_count(self) -> tuple[int, int]:
        result: tuple[int, int] = self._count()
        return result


def pyipsec_counts(d: PyIpsecDaemon) -> tuple[int, int]:
    status = control(d.socket, "status", timeout=120)  # (a thousand SAs: past the CLI's line limit)
    sas = [s for s in status["ike_sas"] if isinstance(s, dict)]
    ike = [s for s in sas if s["state"] == "ESTABLISHED"]
    child = sum(
        1
        for s in ike
        if isinstance(s["children"], list)
        for c in s["children"]
        if isinstance(c, dict) and c["state"] == "INSTALLED"
    )
    return len(ike), child


def charon_counts(c: Charon) -> tuple[int, int]:
    sas = [s for s in c.list_sas() if s.state == "ESTABLISHED"]
    return len(sas), sum(1 for s in sas for ch in s.children if ch.state == "INSTALLED")


def run_wave(
    site: gl.LoadSite,
    tmp: Path,
    *,
    label: str,
    clients: int,
    rate: float,
    hold: float,
    ca: Path,
    gateway: Gateway | None = None,
) -> dict[str, Any]:
    """One load-generator run; with ``gateway``: its UDP drops, and a sample during the hold."""
    out = tmp / f"{label}.json"
    drops0 = gateway.udp_drops() if gateway is not None else 0
    argv = [
        sys.executable, str(LOADGEN), "--gateway-psk", site.gw_psk, "--gateway-eap", site.gw_eap,
        "--ca", str(ca), "--lan", site.lan_net, "--first-source", gl.FIRST_SOURCE,
        "--clients", str(clients), "--rate", str(rate), "--hold", str(hold), "--label", label,
        "--json-out", str(out),
    ]  # fmt: skip
    proc = site.cl.popen(argv)
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    sample: dict[str, Any] = {}
    hold_t: float | None = None
    timer: threading.Timer | None = None
    result: dict[str, Any] | None = None

    def take(start: tuple[int, float], t_start: float) -> None:
        rss, cpu = gateway.resources()  # type: ignore[union-attr]
        dt = time.monotonic() - t_start
        ike, child = gateway.sa_count()  # type: ignore[union-attr]
        sample.update(
            idle_cpu=round((cpu - start[1]) / dt, 4),
            idle_window_s=round(dt, 1),
            rss=rss,
            rss_by_process_mb=gateway.rss_by_process(),  # type: ignore[union-attr]
            gateway_ike_sas=ike,
            gateway_child_sas=child,
        )

    for raw in proc.stdout:
        line = json.loads(raw)
        phase = line.get("phase")
        if phase == "holding":
            hold_t = time.monotonic()
            log(f"  [{label}] holding: {line['established']} up, {line['failed']} failed")
            if gateway is not None and hold > SETTLE_S + 5:
                time.sleep(SETTLE_S)
                start = gateway.resources()
                t_start = time.monotonic()
                timer = threading.Timer(max(1.0, hold - SETTLE_S - 2.0), take, args=(start, t_start))
                timer.start()
        elif phase == "deleting":
            log(
                f"  [{label}] deleting ({line['up']} up after "
                f"{time.monotonic() - (hold_t or 0):.0f} s of hold)"
            )
        elif phase == "done":
            result = line["result"]
    proc.wait(timeout=60)
    if timer is not None:
        timer.join()
    drain.join(timeout=5)
    if result is None:
        raise RuntimeError(f"loadgen {label} failed ({proc.returncode}): {b''.join(errors).decode()[-2000:]}")
    result.pop("per_client", None)
    if gateway is not None:
        sample["udp_drops_in_wave"] = gateway.udp_drops() - drops0
    result["gateway_sample"] = sample
    log(
        f"  [{label}] {result['established']}/{result['clients']} up, p50 {result['setup_ms']['p50']} ms, "
        f"p99 {result['setup_ms']['p99']} ms, {result['setups_per_s']}/s, lost {result['lost']}, "
        f"delete-all {result['delete_all_s']} s, failures {result['failures']}"
    )
    return result


def measure(site: gl.LoadSite, tmp: Path, gw: Gateway, args: argparse.Namespace, ca: Path) -> dict[str, Any]:
    time.sleep(2.0)
    base_rss, _ = gw.resources()
    waves: dict[str, Any] = {}
    for rate in args.rate_list:
        if rate == args.main_rate:
            continue
        n = max(1, min(args.clients, round(rate * args.wave_seconds)))
        log(f"{gw.name}: wave of {n} clients at {rate:g}/s")
        waves[f"{rate:g}"] = run_wave(
            site, tmp, label=f"{gw.name}-{rate:g}", clients=n, rate=rate, hold=0, ca=ca, gateway=gw
        )
        time.sleep(2.0)
    log(f"{gw.name}: main wave, {args.clients} clients at {args.main_rate:g}/s, held {args.hold:g} s")
    main = run_wave(
        site, tmp, label=f"{gw.name}-main", clients=args.clients, rate=args.main_rate, hold=args.hold,
        ca=ca, gateway=gw,
    )  # fmt: skip
    waves[f"{args.main_rate:g}"] = main
    s = main["gateway_sample"]
    sas = s.get("gateway_ike_sas") or 0
    return {
        "baseline_rss_mb": round(base_rss / 2**20, 1),
        "waves": waves,
        "main": main,
        "rss_mb": round(s["rss"] / 2**20, 1) if "rss" in s else None,
        "kb_per_sa": round(s["rss"] / 1024 / sas, 1) if sas and "rss" in s else None,
        "kb_per_sa_marginal": round((s["rss"] - base_rss) / 1024 / sas, 1) if sas and "rss" in s else None,
        "idle_cpu": s.get("idle_cpu"),
        "gateway_ike_sas": s.get("gateway_ike_sas"),
        "gateway_child_sas": s.get("gateway_child_sas"),
    }


@contextlib.contextmanager
def pyipsec_gateway(
    site: gl.LoadSite, tmp: Path, pki: rw.Pki, users: list[str], args: argparse.Namespace
) -> Iterator[Gateway]:
    db = tmp / "gateway" / "users.db"
    eap = [u for i, u in enumerate(users) if auth_of(i, "mixed") == "eap"]
    psk = [u for i, u in enumerate(users) if auth_of(i, "mixed") == "psk"]
    rw.add_users(db, {u: password_of(u) for u in eap}, cli=False)
    cfg = gl.pyipsec_gateway_config(
        site, pki, users_db=db, psk_users=psk, settings={"log_level": args.log_level}
    )
    d = PyIpsecDaemon(site.gw, tmp, cfg, name="gateway", log_level=args.log_level)
    d.start(timeout=60)
    try:
        assert d.proc is not None
        yield Gateway("pyipsec", d.proc.pid, lambda: pyipsec_counts(d))
    finally:
        d.stop()


@contextlib.contextmanager
def strongswan_gateway(site: gl.LoadSite, tmp: Path, pki: rw.Pki, users: list[str]) -> Iterator[Gateway]:
    eap = [u for i, u in enumerate(users) if auth_of(i, "mixed") == "eap"]
    psk = [u for i, u in enumerate(users) if auth_of(i, "mixed") == "psk"]
    c = Charon(site.gw, tmp / "charon", log_level=1)
    c.start()
    try:
        gl.charon_gateway(c, site, pki, psk_users=psk, eap_users=eap)
        assert c.pid is not None
        yield Gateway("strongswan", c.pid, lambda: charon_counts(c))
    finally:
        c.stop(timeout=20)


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "config": {
            "clients": args.clients, "hold_s": args.hold, "rates": args.rate_list,
            "main_rate": args.main_rate,
            "wave_seconds": args.wave_seconds, "cores": os.cpu_count(), "git": _git_rev(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
    }  # fmt: skip
    users = client_names(args.clients)
    with tempfile.TemporaryDirectory(prefix="pyi-gwb-") as tmpdir, Topology() as topo:
        tmp = Path(tmpdir)
        site = gl.load_site(topo, args.clients)
        pki = rw.make_pki(tmp / "pki")
        if args.only in (None, "pyipsec"):
            with pyipsec_gateway(site, tmp, pki, users, args) as gw:
                report["pyipsec"] = measure(site, tmp, gw, args, pki.ca_cert)
        if args.only in (None, "strongswan"):
            with strongswan_gateway(site, tmp, pki, users) as gw:
                report["strongswan"] = measure(site, tmp, gw, args, pki.ca_cert)
    report["config"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["targets"] = targets(report, args)
    return report


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def targets(r: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    p = r.get("pyipsec")
    if p is None:
        return []
    s = r.get("strongswan")
    main = p["main"]
    p99 = p["waves"].get(f"{args.main_rate:g}", main)["setup_ms"]["p99"]
    out = [
        {
            "what": f"{args.clients} clients held {args.hold:g} s, none lost",
            "value": f"{main['established']} up, {main['lost']} lost, {main['failed']} failed",
            "met": main["established"] == args.clients and main["lost"] == 0,
        },
        {
            "what": f"p99 set-up at {args.main_rate:g}/s ≤ {TARGET_P99_S:g} s",
            "value": f"{p99} ms",
            "met": p99 is not None and p99 <= TARGET_P99_S * 1000,
        },
        {
            "what": f"idle CPU ≤ {100 * TARGET_IDLE_CPU:g} % of a core",
            "value": f"{100 * p['idle_cpu']:.2f} %" if p["idle_cpu"] is not None else "-",
            "met": p["idle_cpu"] is not None and p["idle_cpu"] <= TARGET_IDLE_CPU,
        },
        {
            "what": f"gateway holds {args.clients} IKE + Child SAs",
            "value": f"{p['gateway_ike_sas']} IKE, {p['gateway_child_sas']} Child",
            "met": p["gateway_ike_sas"] == args.clients and p["gateway_child_sas"] == args.clients,
        },
    ]
    if s is not None:
        out.append(
            {
                "what": "memory per SA (marginal) ≤ strongSwan's",
                "value": f"{p['kb_per_sa_marginal']} KB vs {s['kb_per_sa_marginal']} KB",
                "met": p["kb_per_sa_marginal"] is not None
                and s["kb_per_sa_marginal"] is not None
                and p["kb_per_sa_marginal"] <= s["kb_per_sa_marginal"],
            }
        )
    return out


def print_table(r: dict[str, Any], args: argparse.Namespace) -> None:
    p, s = r.get("pyipsec"), r.get("strongswan")
    cfg = r["config"]
    print(f"\npyipsec gateway benchmark ({cfg['git']}, {cfg['cores']} cores, "
          f"load {cfg['load_average_at_start']} → {cfg['load_average_at_end']})")  # fmt: skip
    rows: list[tuple[str, Any, Any, str]] = []

    def both(key: str, fn: Any) -> tuple[Any, Any]:
        return (fn(p) if p else None), (fn(s) if s else None)

    for rate in args.rate_list:
        k = f"{rate:g}"
        for what, f in (
            ("p50 set-up ms", lambda x, k=k: x["waves"][k]["setup_ms"]["p50"]),
            ("p99 set-up ms", lambda x, k=k: x["waves"][k]["setup_ms"]["p99"]),
            ("set-ups/s sustained", lambda x, k=k: x["waves"][k]["setups_per_s"]),
            (
                "established/clients",
                lambda x, k=k: f"{x['waves'][k]['established']}/{x['waves'][k]['clients']}",
            ),
        ):
            a, b = both(k, f)
            rows.append((f"{what} @ {k}/s", a, b, _ratio(a, b) if isinstance(a, float | int) else ""))
    for what, f in (
        ("lost during hold", lambda x: x["main"]["lost"]),
        ("gateway IKE/Child SAs", lambda x: f"{x['gateway_ike_sas']}/{x['gateway_child_sas']}"),
        ("RSS baseline MB", lambda x: x["baseline_rss_mb"]),
        ("RSS with clients MB", lambda x: x["rss_mb"]),
        ("KB per SA (RSS ÷ SAs)", lambda x: x["kb_per_sa"]),
        ("KB per SA (marginal)", lambda x: x["kb_per_sa_marginal"]),
        (
            "idle CPU % of a core",
            lambda x: round(100 * x["idle_cpu"], 2) if x["idle_cpu"] is not None else None,
        ),
        ("delete-all s", lambda x: x["main"]["delete_all_s"]),
    ):
        a, b = both("", f)
        rows.append((what, a, b, _ratio(a, b) if isinstance(a, float | int) else ""))
    print(f"  {'':<30}{'pyipsec':>14}{'strongSwan':>14}{'ratio':>8}")
    for what, a, b, ratio in rows:
        print(f"  {what:<30}{a!s:>14}{b!s:>14}{ratio:>8}")
    print("\ntargets (issue 13):")
    for t in r["targets"]:
        print(f"  {t['what']:<48}{t['value']:<32}{'yes' if t['met'] else 'NO'}")


def _git_rev() -> str:
    proc = subprocess.run(  # noqa: S603 - a fixed argv
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=300.0, help="seconds the main wave is held")
    ap.add_argument("--rates", default="10,50,100", help="arrival rates (new clients/s), comma-separated")
    ap.add_argument("--main-rate", type=float, default=50.0, help="the arrival rate of the main wave")
    ap.add_argument("--wave-seconds", type=float, default=10.0, help="length of the other rates' waves")
    ap.add_argument("--only", choices=("pyipsec", "strongswan"), help="measure one gateway")
    ap.add_argument("--log-level", default="info", help="the pyipsec gateway's log level")
    ap.add_argument("--json", type=Path, help="write the figures as JSON to this file")
    args = ap.parse_args(argv)
    try:
        args.rate_list = [float(x) for x in args.rates.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--rates wants numbers separated by commas, got {args.rates!r}")
    if args.main_rate not in args.rate_list:
        args.rate_list.append(args.main_rate)
    if os.geteuid() != 0:
        log("needs root (network namespaces)")
        return 2
    if args.clients < 1 or args.clients > 4000 or args.hold < 0 or any(x <= 0 for x in args.rate_list):
        log("--clients 1..4000, --hold ≥ 0, rates > 0")
        return 2
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        report = run(args)
    except KeyboardInterrupt:
        log("interrupted; everything removed")
        return 130
    except Exception as exc:
        log(f"the benchmark failed: {type(exc).__name__}: {exc}")
        return 1
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    print_table(report, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
