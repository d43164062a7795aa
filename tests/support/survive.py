"""Helpers for the "tunnels that survive" tests: load generators, rekey drivers, impaired paths.

Theory of operation
-------------------
The survival tests keep traffic running through a tunnel while something happens to the SAs or
to the path (rekeys, loss, a black hole, a NAT rebinding), then look at what the traffic saw.

* :func:`iperf3_udp` runs a UDP ``iperf3`` between two inner addresses (server in one namespace,
  client in the other, both bound to their inner address so the packets go through the tunnel)
  and returns the receiver's counts as a :class:`UdpReport`: iperf3 numbers every datagram, so
  ``lost`` and ``out_of_order`` are exact.
* :class:`TcpTransfer` streams random bytes over one TCP connection for a given time, paced so
  that the transfer spans the events under test, and compares SHA-256 digests of what was sent
  and what arrived.
* :class:`Schedule` runs callables (``rekey`` calls to pyipsec or charon) at fixed offsets in a
  background thread while the load runs, recording what each returned or raised.
* :func:`in_namespace` runs a function in a thread that has joined a network namespace
  (``setns(2)`` changes only the calling thread), so sockets it creates live there: this is how
  a :class:`~tests.support.relay.UdpRelay` runs *inside* a middle namespace while the test
  changes its impairments on the fly.
* :func:`lossy_path` builds client – mid – server with one relay per IKE port (500 and 4500) in
  ``mid``, which does not forward IP: everything between client and server goes through the
  relays, so their impairments apply to IKE and to ESP-in-UDP alike. To the server the relays
  look like a NAT (datagrams come from ``mid``'s outside address), so both sides float to 4500.
* :func:`pyipsec_site` writes a pyipsec site-to-site configuration with the knobs these tests
  turn (rekey times, DPD, retransmission, fragmentation).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support.netns import Link, Namespace, Topology
from tests.support.relay import Direction, Impairment, UdpRelay

__all__ = [
    "PSK",
    "CLIENT_ID",
    "SERVER_ID",
    "LossyPath",
    "Schedule",
    "TcpTransfer",
    "UdpReport",
    "deepen_tun_queue",
    "in_namespace",
    "iperf3_udp",
    "log_count",
    "lossy_path",
    "pyipsec_site",
    "require_tool",
]

T = TypeVar("T")

PSK = "survive-psk-0123456789abcdef"
CLIENT_ID, SERVER_ID = "moon.pyipsec.test", "sun.pyipsec.test"
_CLONE_NEWNET = 0x40000000


# --- network namespaces from a thread ---------------------------------------------------------


def in_namespace(ns: Namespace, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has entered ``ns``'s network namespace; return its result.

    Only that thread changes namespace (``setns(2)`` acts on the calling thread); sockets it
    creates stay in ``ns`` for their whole life, whichever thread uses them later.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {ns.name}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    worker = threading.Thread(target=run, name=f"netns-{ns.name}")
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]


# --- lossy path ----------------------------------------------------------------------------------


@dataclass
class LossyPath:
    """client – mid – server; relays in ``mid`` for UDP 500 and 4500 (see the module docstring).

    The client initiates to :attr:`relay_addr`; the server sees the client at :attr:`nat_addr`.
    """

    topology: Topology
    client: Namespace
    mid: Namespace
    server: Namespace
    inside: Link
    outside: Link
    relays: dict[int, UdpRelay] = field(default_factory=dict)

    @property
    def relay_addr(self) -> str:
        return self.inside.a_addr

    @property
    def server_addr(self) -> str:
        return self.outside.b_addr

    @property
    def nat_addr(self) -> str:
        return self.outside.a_addr

    def impair(self, forward: Impairment, backward: Impairment | None = None) -> None:
        """Set the impairment of both relays (``backward`` defaults to ``forward``)."""
        for relay in self.relays.values():
            relay.impairments = {Direction.FORWARD: forward, Direction.BACKWARD: backward or forward}

    def stats(self) -> dict[str, int]:
        """Datagrams received and dropped by the relays, summed over ports and directions."""
        total = {"received": 0, "dropped": 0, "sent": 0}
        for relay in self.relays.values():
            for st in relay.stats.values():
                total["received"] += st.received
                total["dropped"] += st.dropped
                total["sent"] += st.sent
        return total

    def close(self) -> None:
        relays, self.relays = self.relays, {}
        for relay in relays.values():
            relay.stop()


def lossy_path(topology: Topology, impairment: Impairment | None = None, *, seed: int = 7) -> LossyPath:
    """Build the lossy topology and start its relays (stopped by :meth:`LossyPath.close`)."""
    impairment = impairment or Impairment()
    client = topology.namespace("client")
    mid = topology.namespace("mid")
    server = topology.namespace("server")
    inside = topology.link(mid, client)
    outside = topology.link(mid, server)
    path = LossyPath(topology, client, mid, server, inside, outside)
    try:
        for port in (500, 4500):

            def make(port: int = port) -> UdpRelay:
                return UdpRelay(
                    (outside.b_addr, port),
                    listen=(inside.a_addr, port),
                    source=(outside.a_addr, 0),
                    forward=impairment,
                    backward=impairment,
                    seed=seed * 10000 + port,
                )

            path.relays[port] = in_namespace(mid, make).start()
    except BaseException:
        path.close()
        raise
    return path


# --- load ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UdpReport:
    """What the iperf3 receiver counted (``raw``: iperf3's whole JSON ``end.sum``)."""

    packets: int
    lost: int
    out_of_order: int
    seconds: float
    bits_per_second: float
    raw: Mapping[str, object]


def iperf3_udp(
    client: Namespace,
    server: Namespace,
    *,
    dst: str,
    src: str,
    bitrate: str = "50M",
    seconds: float = 10.0,
    length: int = 1200,
    port: int = 5202,
    window: str = "4M",
) -> UdpReport:
    """A UDP iperf3 run from ``src`` (in ``client``) to ``dst`` (in ``server``).

    ``window`` sizes both sockets' buffers, so that a receiver briefly starved of CPU (the data
    planes are busy processes on the same machine) does not drop in its own socket.
    """
    require_tool("iperf3")
    srv = server.popen(["iperf3", "-s", "-1", "-B", dst, "-p", str(port)])
    try:
        out = None
        for _ in range(50):  # the server needs a moment to listen
            proc = client.run(
                [
                    "iperf3",
                    "-c",
                    dst,
                    "-B",
                    src,
                    "-p",
                    str(port),
                    "-u",
                    "-b",
                    bitrate,
                    "-t",
                    str(seconds),
                    "-l",
                    str(length),
                    "-w",
                    window,
                    "--json",
                ],
                check=False,
                timeout=seconds + 30,
            )
            doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
            error = str(doc.get("error", ""))
            if proc.returncode == 0 and not error:
                out = doc
                break
            if "refused" not in error:
                raise AssertionError(f"iperf3 failed: {error or proc.stderr}")
            time.sleep(0.1)
        if out is None:
            raise AssertionError("iperf3 could not connect to its server through the tunnel")
    finally:
        try:
            srv.wait(10)
        except Exception:
            srv.kill()
            srv.wait(5)
    s = out.get("end", {}).get("sum")
    if not isinstance(s, dict):
        raise AssertionError(f"iperf3 reported no totals: {out.get('error') or json.dumps(out)[-2000:]}")
    return UdpReport(
        packets=int(s["packets"]),
        lost=int(s["lost_packets"]),
        out_of_order=int(s.get("out_of_order", 0)),
        seconds=float(s["seconds"]),
        bits_per_second=float(s["bits_per_second"]),
        raw=s,
    )


class TcpTransfer:
    """Stream ``rate`` bytes/s of random data over one TCP connection for ``seconds``; check it.

    :meth:`start` begins the transfer in the background; :meth:`finish` waits for it and raises
    ``AssertionError`` unless every byte arrived intact (SHA-256 on both ends).
    """

    def __init__(
        self,
        sender: Namespace,
        receiver: Namespace,
        *,
        dst: str,
        tmp: Path,
        seconds: float = 8.0,
        rate: int = 2 * 1024 * 1024,
        port: int = 5301,
    ) -> None:
        self.sender, self.receiver, self.dst, self.port = sender, receiver, dst, port
        self.seconds, self.rate = seconds, rate
        tmp.mkdir(parents=True, exist_ok=True)
        self.src = tmp / "tcp-sent.bin"
        self.out = tmp / "tcp-received.bin"
        self.data = os.urandom(int(seconds * rate))
        self.src.write_bytes(self.data)
        self._server: subprocess.Popen[bytes] | None = None
        self._client: subprocess.Popen[bytes] | None = None

    def start(self) -> TcpTransfer:
        self._server = self.receiver.popen(
            [
                "python3",
                "-c",
                "import socket\n"
                "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('{self.dst}', {self.port})); s.listen(1); s.settimeout(30); c,_=s.accept()\n"
                "c.settimeout(60)\n"
                f"f=open('{self.out}','wb')\n"
                "while True:\n  b=c.recv(65536)\n  if not b: break\n  f.write(b)\n"
                "f.close()",
            ],
        )
        chunk = max(1, self.rate // 20)
        self._client = self.sender.popen(
            [
                "python3",
                "-c",
                "import socket,time\n"
                "for i in range(100):\n"
                "  try:\n"
                f"    s=socket.create_connection(('{self.dst}', {self.port}), timeout=5); break\n"
                "  except OSError: time.sleep(0.1)\n"
                "s.settimeout(60)\n"
                f"data=open('{self.src}','rb').read(); t0=time.monotonic()\n"
                f"for i in range(0, len(data), {chunk}):\n"
                f"  s.sendall(data[i:i+{chunk}])\n"
                f"  d=t0+(i+{chunk})/{self.rate}-time.monotonic()\n"
                "  if d>0: time.sleep(d)\n"
                "s.close()",
            ],
        )
        return self

    def finish(self, timeout: float = 90.0) -> None:
        client, server = self._client, self._server
        assert client is not None and server is not None
        crc = client.wait(timeout)
        src = server.wait(timeout)
        err = client.stderr.read().decode(errors="replace") if client.stderr else ""
        assert crc == 0 and src == 0, f"TCP transfer failed (sender {crc}, receiver {src}): {err[-2000:]}"
        got = self.out.read_bytes()
        assert len(got) == len(self.data), f"received {len(got)} of {len(self.data)} bytes"
        assert hashlib.sha256(got).digest() == hashlib.sha256(self.data).digest(), "content differs"


class Schedule:
    """Run ``(offset, label, action)`` steps in a background thread, ``offset`` s after :meth:`start`.

    Each step's result (or the exception it raised) is kept in :attr:`results` as
    ``(label, ok, value)``; :meth:`join` waits for all steps.
    """

    def __init__(self, steps: Sequence[tuple[float, str, Callable[[], object]]]) -> None:
        self.steps = sorted(steps, key=lambda s: s[0])
        self.results: list[tuple[str, bool, object]] = []
        self._thread = threading.Thread(target=self._run, name="survive-schedule", daemon=True)
        self._stop = threading.Event()

    def start(self) -> Schedule:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        for offset, label, action in self.steps:
            if self._stop.wait(max(0.0, self._t0 + offset - time.monotonic())):
                return
            try:
                self.results.append((label, True, action()))
            except Exception as exc:
                self.results.append((label, False, exc))

    def join(self, timeout: float = 60.0) -> list[tuple[str, bool, object]]:
        self._thread.join(timeout)
        return self.results

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def failures(self) -> list[tuple[str, object]]:
        return [(label, value) for label, ok, value in self.results if not ok]


# --- configuration and logs ------------------------------------------------------------------


def pyipsec_site(
    *,
    local: str,
    remote: str,
    local_ts: str,
    remote_ts: str,
    initiator: bool,
    ike: str = "aes256gcm16-prfsha256-ecp256",
    esp: str = "aes256gcm16",
    child: Mapping[str, object] | None = None,
    conn: Mapping[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
    auth: Mapping[str, Mapping[str, object]] | None = None,
    secrets: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """A pyipsec configuration with one connection ``site`` and its child ``net``.

    The initiator is ``moon`` and the responder ``sun`` (PSK unless ``auth`` gives the
    ``local``/``remote`` rounds and ``secrets`` the private key); ``child``, ``conn`` and
    ``settings`` add keys to those sections.
    """
    me, peer = (CLIENT_ID, SERVER_ID) if initiator else (SERVER_ID, CLIENT_ID)
    children = {
        "net": {"local_ts": [local_ts], "remote_ts": [remote_ts], "esp_proposals": [esp], **(child or {})}
    }
    connection: dict[str, object] = {
        "local_addrs": [local],
        "remote_addrs": [remote],
        "proposals": [ike],
        "local": {"auth": "psk", "id": me},
        "remote": {"auth": "psk", "id": peer},
        **(conn or {}),
        "children": children,
    }
    if auth is not None:
        connection["local"], connection["remote"] = auth["local"], auth["remote"]
    return {
        "settings": {"log_level": "debug", **(settings or {})},
        "connections": {"site": connection},
        "secrets": dict(secrets) if secrets is not None else {"ike-site": {"id": [me, peer], "secret": PSK}},
    }


def deepen_tun_queue(ns: Namespace, ifname: str = "pyi0", qlen: int = 10000) -> None:
    """Lengthen a TUN device's transmit queue (default 1000 packets).

    The kernel drops what does not fit in a TUN queue while the data plane that reads it is off
    the CPU; on a busy test machine a 50 Mbit/s UDP burst overflows 1000 packets in a fraction
    of a second. A longer queue keeps such scheduling hiccups from showing up as tunnel loss.
    """
    ns.run(["ip", "link", "set", ifname, "txqueuelen", str(qlen)])


def require_tool(name: str) -> None:
    """Skip the test when ``name`` is not installed (fail under ``CI=true``, like the root tiers)."""
    if shutil.which(name) is not None:
        return
    reason = f"{name} is missing (bash scripts/install-deps.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def log_count(text: str, needle: str) -> int:
    """How many lines of ``text`` contain ``needle``."""
    return sum(needle in line for line in text.splitlines())
