"""The attacker of the flood benchmark: IKE_SA_INIT requests at a fixed rate that echo COOKIEs.

Run by ``bench/bench_flood.py`` inside the attacker's network namespace (``python
bench/flood_attacker.py --gateway ADDR --sources FIRST:COUNT ...``); not a test and never aimed
at anything but the benchmark's own namespaces.

Theory of operation
-------------------
:class:`InitBuilder` makes well-formed IKE_SA_INIT requests with pyipsec's own wire codec
(``pyipsec.wire``): a fresh SPIi and nonce each, the SA payload of the given IKE proposals, a KE
payload for the first proposal's first group with a valid public value (taken round-robin from a
small pool made once at start: the gateway does the full key exchange for each, the attacker
pays for a few), and the two NAT_DETECTION hashes of the real addresses and ports (RFC 7296
§2.23). :func:`echo_with_cookie` is the initiator's answer to a COOKIE (RFC 7296 §2.6): the same
request, same SPIi and payloads, with N(COOKIE) as the *first* payload. :func:`classify` sorts a
gateway answer: a COOKIE demand, a full IKE_SA_INIT response (a half-open SA now exists on the
gateway; we never send IKE_AUTH, so it stays half-open until it times out), an error notify, or
something else.

:class:`Flood` runs one process, single-threaded, with one non-blocking UDP socket bound to
each source address (port 500, as a real initiator) and an ``epoll`` over them. New requests
leave on a fixed schedule (``rate`` per second, source addresses in turn); answers are read as
they come. With echoing on, a COOKIE answer is resent at once with the cookie (the requests
waiting for one are kept for :data:`PENDING_TTL` seconds, then forgotten). A send the kernel
refuses (full buffer) is counted, not retried. If the process falls behind its schedule it
sends at most :data:`MAX_BURST` requests at once and reports the rate it achieved; the
orchestrator shows that beside the nominal rate.

The process prints ``ready`` on standard output once its sockets are bound and its key pool is
made, floods for ``--duration`` seconds, then prints one JSON line of counters (:class:`FloodStats`).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import select
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _p in (REPO / "src", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from pyipsec.crypto.rand import OsRandom  # noqa: E402
from pyipsec.crypto.registry import REGISTRY  # noqa: E402
from pyipsec.errors import DecodeError  # noqa: E402
from pyipsec.iana.ikev2 import ExchangeType, NotifyType, ProtocolId  # noqa: E402
from pyipsec.iana.transforms import KeId  # noqa: E402
from pyipsec.ike.proposal import ProposalSpec  # noqa: E402
from pyipsec.ike.proposal_text import parse_proposals  # noqa: E402
from pyipsec.ike.tasks.common import nat_hash  # noqa: E402
from pyipsec.net.addr import Endpoint  # noqa: E402
from pyipsec.wire.message import Message, decode_message, encode_message  # noqa: E402
from pyipsec.wire.payloads.base import Payload  # noqa: E402
from pyipsec.wire.payloads.ke import KeyExchange  # noqa: E402
from pyipsec.wire.payloads.nonce import Nonce  # noqa: E402
from pyipsec.wire.payloads.notify import Notify  # noqa: E402
from pyipsec.wire.payloads.sa import SecurityAssociation  # noqa: E402

__all__ = [
    "DEFAULT_PROPOSAL",
    "MAX_BURST",
    "PENDING_TTL",
    "Answer",
    "Flood",
    "FloodStats",
    "InitBuilder",
    "classify",
    "echo_with_cookie",
    "source_addresses",
]

DEFAULT_PROPOSAL = "aes256gcm16-prfsha256-ecp256"  # what the benchmark's gateway accepts first
PENDING_TTL = 60.0  # seconds a request waits for its COOKIE answer (a loaded gateway answers late)
MAX_BURST = 50  # requests sent at once when behind schedule
KE_POOL = 16  # distinct public values, reused round-robin
NONCE_LEN = 32
_ZERO_SPI = bytes(8)


def source_addresses(first: str, count: int) -> list[str]:
    """``count`` consecutive IPv4 addresses from ``first``, skipping those ending in .0 or .255."""
    out: list[str] = []
    addr = ipaddress.IPv4Address(first)
    while len(out) < count:
        if addr.packed[-1] not in (0, 255):
            out.append(str(addr))
        addr += 1
    return out


class InitBuilder:
    """Well-formed IKE_SA_INIT requests to ``gateway`` (see the module docstring)."""

    def __init__(
        self,
        gateway: Endpoint,
        proposals: Sequence[ProposalSpec],
        *,
        ke_pool: int = KE_POOL,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not proposals or not proposals[0].ke:
            raise ValueError("the first proposal must name a key exchange group")
        self.gateway = gateway
        self.group: KeId = proposals[0].ke[0]
        self._sa = SecurityAssociation(tuple(p.to_wire(n) for n, p in enumerate(proposals, 1)))
        self._random = random_bytes
        rng = OsRandom()
        spec = REGISTRY.ke(self.group)
        self._publics = [spec.initiate(rng).public for _ in range(max(1, ke_pool))]
        self._next = 0

    def payloads(self, spi_i: bytes, source: Endpoint) -> tuple[Payload, ...]:
        """SA, KE, Ni, N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP)."""
        public = self._publics[self._next % len(self._publics)]
        self._next += 1
        return (
            self._sa,
            KeyExchange(self.group, public),
            Nonce(self._random(NONCE_LEN)),
            Notify.nat_detection_source_ip(nat_hash(spi_i, _ZERO_SPI, source)),
            Notify.nat_detection_destination_ip(nat_hash(spi_i, _ZERO_SPI, self.gateway)),
        )

    def request(self, source: Endpoint, spi_i: bytes | None = None) -> Message:
        """A new IKE_SA_INIT request from ``source`` (a fresh SPIi unless one is given)."""
        spi = spi_i if spi_i is not None else self._random(8)
        return _init(spi, self.payloads(spi, source))


def _init(spi_i: bytes, payloads: tuple[Payload, ...]) -> Message:
    return Message(
        spi_i,
        _ZERO_SPI,
        exchange_type=ExchangeType.IKE_SA_INIT,
        message_id=0,
        is_initiator=True,
        is_response=False,
        payloads=payloads,
    )


def echo_with_cookie(request: Message, cookie: bytes) -> Message:
    """``request`` again with N(COOKIE) first and every other payload unchanged (RFC 7296 §2.6);
    a COOKIE the request already carried is replaced."""
    rest = tuple(
        p for p in request.payloads if not (isinstance(p, Notify) and p.notify_type == NotifyType.COOKIE)
    )
    return _init(request.spi_i, (Notify.cookie(cookie), *rest))


@dataclass(frozen=True, slots=True)
class Answer:
    """What a gateway datagram means to the attacker (``kind``: cookie, init, error, other)."""

    kind: str
    spi_i: bytes = b""
    cookie: bytes = b""
    error: str = ""


def classify(data: bytes) -> Answer:
    """Sort one datagram from the gateway (see the module docstring); never raises."""
    try:
        msg = decode_message(data)
    except (DecodeError, ValueError):
        return Answer("other")
    if msg.exchange_type != ExchangeType.IKE_SA_INIT or not msg.is_response:
        return Answer("other", msg.spi_i)
    cookie = msg.notify(NotifyType.COOKIE)
    if cookie is not None:
        try:
            return Answer("cookie", msg.spi_i, cookie=cookie.cookie_data())
        except DecodeError:
            return Answer("other", msg.spi_i)
    if msg.find(SecurityAssociation) is not None and msg.find(KeyExchange) is not None:
        return Answer("init", msg.spi_i)
    err = next((n for n in msg.notifies() if n.is_error), None)
    if err is not None:
        return Answer("error", msg.spi_i, error=err.notify_type.name)
    return Answer("other", msg.spi_i)


@dataclass
class FloodStats:
    """The attacker's counters (one JSON line at the end)."""

    rate_wanted: float = 0.0
    sources: int = 0
    cookie_echo: bool = True
    seconds: float = 0.0
    sent: int = 0  # new IKE_SA_INIT requests
    rate_achieved: float = 0.0  # sent / seconds
    echoes_sent: int = 0  # requests resent with a COOKIE
    send_refused: int = 0  # EAGAIN / ENOBUFS: the kernel took nothing
    behind_max: float = 0.0  # the furthest behind schedule the sender ever was, seconds
    answers: int = 0
    cookies: int = 0  # COOKIE demands received
    inits: int = 0  # full IKE_SA_INIT responses: half-open SAs made on the gateway
    errors: dict[str, int] = field(default_factory=dict)
    other: int = 0
    cookie_unmatched: int = 0  # a COOKIE for a request no longer pending
    cpu_seconds: float = 0.0  # the attacker's own CPU (user + system)


class Flood:
    """The flood loop over one socket per source address (see the module docstring)."""

    def __init__(
        self,
        builder: InitBuilder,
        sources: Sequence[str],
        *,
        rate: float,
        cookie_echo: bool = True,
        port: int = 500,
    ) -> None:
        self.builder = builder
        self.rate = rate
        self.cookie_echo = cookie_echo
        self.stats = FloodStats(rate_wanted=rate, sources=len(sources), cookie_echo=cookie_echo)
        self._socks: list[tuple[socket.socket, Endpoint]] = []
        self._by_fd: dict[int, tuple[socket.socket, Endpoint]] = {}
        self._epoll = select.epoll()
        gw = builder.gateway
        self._dest = (str(gw.ip), gw.port)
        for addr in sources:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
            s.setblocking(False)
            src = Endpoint.parse(addr, port)
            self._socks.append((s, src))
            self._by_fd[s.fileno()] = (s, src)
            self._epoll.register(s.fileno(), select.EPOLLIN)
        # SPIi -> (request, when sent): what a COOKIE answer is matched against
        self._pending: dict[bytes, tuple[Message, float]] = {}

    def close(self) -> None:
        self._epoll.close()
        for s, _ in self._socks:
            s.close()

    def _send(self, sock: socket.socket, msg: Message) -> bool:
        try:
            sock.sendto(encode_message(msg), self._dest)
        except (BlockingIOError, OSError):
            self.stats.send_refused += 1
            return False
        return True

    def _send_new(self, index: int, now: float) -> None:
        sock, src = self._socks[index % len(self._socks)]
        msg = self.builder.request(src)
        if self._send(sock, msg):
            self.stats.sent += 1
            if self.cookie_echo:
                self._pending[msg.spi_i] = (msg, now)

    def _receive(self, fd: int, now: float) -> None:
        sock, _ = self._by_fd[fd]
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error reported on the socket
                continue
            self.stats.answers += 1
            ans = classify(data)
            if ans.kind == "cookie":
                self.stats.cookies += 1
                pending = self._pending.get(ans.spi_i) if self.cookie_echo else None
                if pending is None:
                    if self.cookie_echo:
                        self.stats.cookie_unmatched += 1
                    continue
                echo = echo_with_cookie(pending[0], ans.cookie)
                self._pending[ans.spi_i] = (echo, now)
                if self._send(sock, echo):
                    self.stats.echoes_sent += 1
            elif ans.kind == "init":
                self.stats.inits += 1
                self._pending.pop(ans.spi_i, None)
            elif ans.kind == "error":
                self.stats.errors[ans.error] = self.stats.errors.get(ans.error, 0) + 1
                self._pending.pop(ans.spi_i, None)
            else:
                self.stats.other += 1

    def _expire(self, now: float) -> None:
        old = [spi for spi, (_, t) in self._pending.items() if now - t > PENDING_TTL]
        for spi in old:
            del self._pending[spi]

    def run(self, duration: float) -> FloodStats:
        """Flood for ``duration`` seconds; the counters."""
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic()
        end = start + duration
        interval = 1.0 / self.rate if self.rate > 0 else float("inf")
        next_send = start
        next_expire = start + 1.0
        index = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            burst = 0
            while next_send <= now and burst < MAX_BURST:
                self._send_new(index, now)
                index += 1
                burst += 1
                next_send += interval
            self.stats.behind_max = max(self.stats.behind_max, now - next_send)
            if now >= next_expire:
                self._expire(now)
                next_expire = now + 1.0
            timeout = max(0.0, min(next_send, end) - time.monotonic())
            for fd, _ in self._epoll.poll(timeout):
                self._receive(fd, time.monotonic())
        # a last look at answers already queued
        for fd, _ in self._epoll.poll(0.2):
            self._receive(fd, time.monotonic())
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        self.stats.seconds = duration
        self.stats.rate_achieved = self.stats.sent / duration if duration > 0 else 0.0
        self.stats.cpu_seconds = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return self.stats


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gateway", required=True, help="the gateway's IKE address")
    ap.add_argument("--port", type=int, default=500, help="the gateway's IKE port")
    ap.add_argument("--first-source", required=True, help="the first source address")
    ap.add_argument("--sources", type=int, default=500, help="number of source addresses")
    ap.add_argument("--rate", type=float, default=500.0, help="new IKE_SA_INIT requests per second")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds")
    ap.add_argument("--proposal", default=DEFAULT_PROPOSAL, help="IKE proposals offered (text)")
    ap.add_argument("--no-cookie-echo", action="store_true", help="never answer a COOKIE")
    args = ap.parse_args(argv)
    proposals = parse_proposals(args.proposal, protocol=ProtocolId.IKE, allow_legacy=True)
    builder = InitBuilder(Endpoint.parse(args.gateway, args.port), proposals)
    flood = Flood(
        builder,
        source_addresses(args.first_source, args.sources),
        rate=args.rate,
        cookie_echo=not args.no_cookie_echo,
    )
    try:
        print("ready", flush=True)
        stats = flood.run(args.duration)
    finally:
        flood.close()
    print(json.dumps(asdict(stats)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
