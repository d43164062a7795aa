"""Tunnel throughput benchmark: plain veth vs the pyipsec data plane vs strongSwan kernel-libipsec.

Run as root: ``.venv/bin/python bench/bench_dataplane.py [--duration 5] [--only NAME ...]``.

Two network namespaces joined by a veth pair (``tests.support.netns``); inner addresses
10.232.1.1 and 10.232.2.1 live on ``lo``. For every path it runs, one after the other:

* iperf3 TCP, one stream, and four streams (``-P 4``), receiver throughput in Gbit/s;
* iperf3 UDP with 64-byte payloads at full speed: packets per second *delivered* (sent − lost);

each ``--repeat`` times (default 3), reporting the median,
and reads ``/proc/stat`` around each run to report the machine's busy cores (user + system +
softirq, all processes: senders, receivers, data planes, kernel) per Gbit/s.

Paths: ``veth`` (no tunnel: the ceiling); ``pyipsec-*``: two ``DataplaneHandle.spawn`` data
planes with static Child SAs (ESP in UDP 4500, default offloads: UDP GSO/GRO and coalesced
TUN writes; ``--variants`` adds TUN TSO with segmentation in Python) for AES-256-GCM and
AES-256-CBC/HMAC-SHA2-256; ``swan-*``: two strongSwan charons (Debian 5.9.8, kernel-libipsec,
PSK, the same ESP proposals) through ``tests.support.strongswan``. Ratios against the libipsec
tunnel of the same cipher, measured in the same run, are printed at the end. Every namespace,
process, TUN device and rule is removed at exit. Not a test: figures are noisy (±10-30%);
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.netns import Namespace, Topology, TwoHosts, two_hosts  # noqa: E402
from tests.support.strongswan import Charon, psk_connection  # noqa: E402

from pyipsec.childsa import ChildSaSpec, EspMode  # noqa: E402
from pyipsec.dataplane.channel import DataplaneHandle  # noqa: E402
from pyipsec.iana.transforms import EncrId, IntegId  # noqa: E402
from pyipsec.net.addr import Endpoint  # noqa: E402
from pyipsec.wire.payloads.ts import TrafficSelector  # noqa: E402

L_IN, R_IN = "10.232.1.1", "10.232.2.1"
REPEAT = 1  # set from --repeat
PSK = "bench-psk-0123456789abcdef0123456789"
CIPHERS = {
    "gcm": (EncrId.ENCR_AES_GCM_16, 256, IntegId.NONE, 36, 0, "aes256gcm16"),
    "cbc": (EncrId.ENCR_AES_CBC, 256, IntegId.AUTH_HMAC_SHA2_256_128, 32, 32, "aes256-sha256"),
}


@dataclass
class Result:
    path: str
    tcp1: float = 0.0  # Gbit/s
    tcp4: float = 0.0
    udp_pps: float = 0.0
    cpu1: float = 0.0  # busy cores during the 1-stream run
    cpu4: float = 0.0


def _cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


def _iperf(ns: Namespace, args: list[str], duration: float) -> tuple[dict[str, object], float]:
    """Run an iperf3 client; return its JSON and the busy cores meanwhile."""
    b0, t0 = _cpu()
    out = ns.run(["iperf3", "-J", "-t", str(duration), *args], check=False, timeout=duration + 60)
    b1, t1 = _cpu()
    ncpu = os.cpu_count() or 1
    cores = (b1 - b0) / max(1, t1 - t0) * ncpu
    try:
        data = json.loads(out.stdout)
    except ValueError:
        data = {"error": out.stderr or out.stdout}
    return data, cores


def _measure(path: str, h: TwoHosts, dst: str, src: str, duration: float, repeat: int = 1) -> Result:
    """Each test ``repeat`` times; the median of each figure is kept (the runs are noisy)."""
    server = h.right.popen(["iperf3", "-s", "-B", dst])
    time.sleep(0.5)
    r = Result(path)
    try:
        for streams in (1, 4):
            runs: list[tuple[float, float]] = []
            for _ in range(repeat):
                data, cores = _iperf(h.left, ["-c", dst, "-B", src, "-P", str(streams)], duration)
                end = data.get("end")
                got = end.get("sum_received") if isinstance(end, dict) else None
                if not isinstance(got, dict):
                    print(f"  {path}: TCP -P {streams} failed: {data.get('error')}", flush=True)
                    continue
                runs.append((float(got["bits_per_second"]) / 1e9, cores))
            if runs:
                gbps, cores = sorted(runs)[len(runs) // 2]
                if streams == 1:
                    r.tcp1, r.cpu1 = gbps, cores
                else:
                    r.tcp4, r.cpu4 = gbps, cores
        rates: list[float] = []
        for _ in range(repeat):
            data, _ = _iperf(h.left, ["-c", dst, "-B", src, "-u", "-l", "64", "-b", "0"], duration)
            end = data.get("end")
            s = end.get("sum") if isinstance(end, dict) else None
            if isinstance(s, dict) and "packets" in s:
                rates.append((int(s["packets"]) - int(s["lost_packets"])) / float(s["seconds"]))
            else:
                print(f"  {path}: UDP failed: {data.get('error')}", flush=True)
        if rates:
            r.udp_pps = sorted(rates)[len(rates) // 2]
    finally:
        server.terminate()
        server.wait(timeout=5)
    print(
        f"  {path:<16} TCP x1 {r.tcp1:6.2f} Gbit/s ({r.cpu1:4.2f} cores)  TCP x4 {r.tcp4:6.2f} Gbit/s "
        f"({r.cpu4:4.2f} cores)  UDP-64 {r.udp_pps / 1000:7.1f} kpps",
        flush=True,
    )
    return r


@contextmanager
def _hosts() -> Iterator[TwoHosts]:
    with Topology() as topo:
        h = two_hosts(topo)
        h.left.add_address("lo", f"{L_IN}/32")
        h.right.add_address("lo", f"{R_IN}/32")
        yield h


def _specs(cipher: str, h: TwoHosts) -> tuple[ChildSaSpec, ChildSaSpec]:
    encr, bits, integ, ek, ik, _ = CIPHERS[cipher]
    k = {n: os.urandom(ek if n[0] == "e" else ik) for n in ("e1", "i1", "e2", "i2")}

    def spec(si: bytes, so: bytes, kin: str, kout: str, lin: str, rin: str, lo: str, ro: str) -> ChildSaSpec:
        return ChildSaSpec(
            spi_in=si,
            spi_out=so,
            encr=encr,
            encr_key_bits=bits,
            integ=integ,
            encr_key_in=k["e" + kin],
            integ_key_in=k["i" + kin],
            encr_key_out=k["e" + kout],
            integ_key_out=k["i" + kout],
            esn=False,
            mode=EspMode.TUNNEL,
            local_ts=(TrafficSelector.from_network(lin),),
            remote_ts=(TrafficSelector.from_network(rin),),
            local=Endpoint(ip_address(lo), 4500),
            remote=Endpoint(ip_address(ro), 4500),
            encap=True,
            replay_window=1024,
        )

    a, b = h.link.a_addr, h.link.b_addr
    return (
        spec(b"\xa0\0\0\1", b"\xb0\0\0\1", "2", "1", L_IN, R_IN, a, b),
        spec(b"\xb0\0\0\1", b"\xa0\0\0\1", "1", "2", R_IN, L_IN, b, a),
    )


def run_veth(duration: float) -> Result:
    with _hosts() as h:
        return _measure("veth", h, h.link.b_addr, h.link.a_addr, duration, REPEAT)


def run_pyipsec(cipher: str, duration: float, env: dict[str, str] | None = None, tag: str = "") -> Result:
    with _hosts() as h:
        old = {k: os.environ.get(k) for k in env or {}}
        os.environ.update(env or {})
        handles = []
        try:
            for ns in (h.left, h.right):
                handles.append(DataplaneHandle.spawn(netns=ns.name, log_level="warning"))
            sl, sr = _specs(cipher, h)
            handles[0].install_child(sl)
            handles[1].install_child(sr)
            if not h.left.wait_ping(R_IN, timeout=5):
                raise RuntimeError("pyipsec tunnel does not pass ping")
            return _measure(f"pyipsec-{cipher}{tag}", h, R_IN, L_IN, duration, REPEAT)
        finally:
            for hd in handles:
                hd.close()
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run_swan(cipher: str, duration: float) -> Result:
    esp = CIPHERS[cipher][5]
    with _hosts() as h, tempfile.TemporaryDirectory(prefix="pyi-bench-") as tmp:
        charons = [
            Charon(h.left, Path(tmp) / "l", name="left", log_level=0),
            Charon(h.right, Path(tmp) / "r", name="right", log_level=0),
        ]
        try:
            for c in charons:
                c.start()
                c.load_shared(PSK, owners=["left@bench", "right@bench"], id="psk")
            for c, (la, ra, lid, rid, lts, rts) in zip(
                charons,
                (
                    (h.link.a_addr, h.link.b_addr, "left@bench", "right@bench", L_IN, R_IN),
                    (h.link.b_addr, h.link.a_addr, "right@bench", "left@bench", R_IN, L_IN),
                ),
                strict=True,
            ):
                conn = psk_connection(
                    local_addr=la,
                    remote_addr=ra,
                    local_id=lid,
                    remote_id=rid,
                    local_ts=[f"{lts}/32"],
                    remote_ts=[f"{rts}/32"],
                    esp_proposals=[esp],
                )
                c.load_conn({"site": conn})
            charons[0].initiate(child="net", ike="site")
            charons[0].wait_for_sa("site", child="net")
            if not h.left.wait_ping(R_IN, timeout=5):
                raise RuntimeError("strongSwan tunnel does not pass ping")
            return _measure(f"swan-{cipher}", h, R_IN, L_IN, duration, REPEAT)
        finally:
            for c in charons:
                c.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per iperf3 run")
    ap.add_argument(
        "--only", nargs="*", default=None, help="veth pyipsec-gcm pyipsec-cbc swan-gcm swan-cbc ..."
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per test; the median is reported")
    ap.add_argument("--variants", action="store_true", help="also pyipsec-gcm with TUN TSO")
    args = ap.parse_args()
    global REPEAT  # noqa: PLW0603
    REPEAT = max(1, args.repeat)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    d = args.duration
    plan: dict[str, Callable[[], Result]] = {
        "veth": lambda: run_veth(d),
        "pyipsec-gcm": lambda: run_pyipsec("gcm", d),
        "pyipsec-cbc": lambda: run_pyipsec("cbc", d),
        "swan-gcm": lambda: run_swan("gcm", d),
        "swan-cbc": lambda: run_swan("cbc", d),
    }
    if args.variants:
        plan["pyipsec-gcm-tso"] = lambda: run_pyipsec("gcm", d, {"PYIPSEC_DP_TSO": "on"}, "-tso")
    results: dict[str, Result] = {}
    print(f"{os.cpu_count()} cores, {d:.0f} s per run, median of {REPEAT}", flush=True)
    for name, fn in plan.items():
        if args.only and name not in args.only:
            continue
        try:
            results[name] = fn()
        except Exception as exc:
            print(f"  {name}: failed: {exc}", flush=True)
    print("\nsummary (ratios against strongSwan kernel-libipsec with the same cipher, same run):")
    print(f"{'path':<20}{'TCP x1':>10}{'ratio':>8}{'TCP x4':>10}{'ratio':>8}{'UDP-64 kpps':>13}{'ratio':>8}"
          f"{'cores/Gbit/s':>14}")  # fmt: skip
    for name, r in results.items():
        cipher = "gcm" if "gcm" in name else "cbc" if "cbc" in name else None
        ref = results.get(f"swan-{cipher}") if cipher else None

        def ratio(v: float, base: float | None) -> str:
            return f"{v / base:7.2f}x" if base else f"{'':>8}"

        per = r.cpu1 / r.tcp1 if r.tcp1 else 0.0
        print(
            f"{name:<20}{r.tcp1:10.2f}{ratio(r.tcp1, ref.tcp1 if ref else None)}"
            f"{r.tcp4:10.2f}{ratio(r.tcp4, ref.tcp4 if ref else None)}"
            f"{r.udp_pps / 1000:13.1f}{ratio(r.udp_pps, ref.udp_pps if ref else None)}{per:14.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
