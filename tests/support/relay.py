"""A userspace UDP relay that impairs the link: seeded drop, duplicate, reorder and delay.

Theory of operation
-------------------
The kernel here has no netem, so lossy-link tests put this relay between two peers. It listens
on ``listen`` (the *front* socket); the first and every later datagram arriving there from some
address ``C`` (the client) is sent on from a second, *back* socket to ``target``; datagrams the
back socket receives from ``target`` go back to the most recent ``C`` from the front socket. So to
the client the relay looks like the server, and to the server like the client. One relay serves
one port pair (IKE on 500 and 4500 needs two relays).

Each direction has its own :class:`Impairment` and its own ``random.Random`` seeded from
``(seed, direction)``, and every datagram draws the same four numbers in the same order (drop,
duplicate, reorder, jitter), so the decisions for the k-th datagram of a direction depend only on
the seed and k: a run is reproducible. A datagram is

* dropped with probability ``drop``;
* otherwise sent ``delay + U(0, jitter)`` seconds after it arrived, twice with probability
  ``duplicate``;
* with probability ``reorder`` held back instead (if nothing is held already) and sent right
  after the next datagram of that direction, or after ``reorder_hold`` seconds if none comes.

One worker thread runs a ``selectors`` loop over the two sockets and a heap of scheduled sends;
a self-pipe wakes it for :meth:`UdpRelay.stop`. :func:`main` runs a relay as a process (for
example inside a network namespace: ``python -m tests.support.relay --listen 0.0.0.0:4500
--target 10.231.2.2:4500 --drop 0.1 --seed 1``), printing ``listening HOST PORT`` once ready.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import heapq
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Final

__all__ = [
    "Direction",
    "DirectionStats",
    "Impairment",
    "UdpRelay",
    "main",
    "parse_endpoint",
]

Address = tuple[str, int]
MAX_DATAGRAM: Final = 65535


class Direction(enum.Enum):
    FORWARD = "forward"  # client → target
    BACKWARD = "backward"  # target → client


@dataclass(frozen=True, slots=True)
class Impairment:
    """What happens to the datagrams of one direction (probabilities in [0, 1], times in s)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder_hold: float = 0.05

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, not {value}")
        for name in ("delay", "jitter", "reorder_hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(slots=True)
class DirectionStats:
    """Counters of one direction. ``sent`` counts duplicates; ``unroutable`` are backward
    datagrams that arrived before any client did."""

    received: int = 0
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    unroutable: int = 0


@dataclass(order=True, slots=True)
class _Scheduled:
    due: float
    seq: int
    direction: Direction = field(compare=False)
    data: bytes = field(compare=False)


@dataclass(slots=True)
class _Held:
    deadline: float
    data: bytes


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def parse_endpoint(text: str) -> Address:
    """``"127.0.0.1:500"`` or ``"[::1]:500"`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class UdpRelay:
    """Relay between a client (whoever sends to :attr:`address`) and ``target``."""

    def __init__(
        self,
        target: Address,
        *,
        listen: Address = ("127.0.0.1", 0),
        source: Address | None = None,
        forward: Impairment = Impairment(),
        backward: Impairment = Impairment(),
        seed: int = 0,
    ) -> None:
        self.target: Address = (target[0], target[1])
        self.impairments = {Direction.FORWARD: forward, Direction.BACKWARD: backward}
        self.stats = {d: DirectionStats() for d in Direction}
        self._rngs = {d: random.Random(f"{seed}:{d.value}") for d in Direction}
        self._held: dict[Direction, _Held | None] = dict.fromkeys(Direction)
        self._queue: list[_Scheduled] = []
        self._seq = 0
        self.client: Address | None = None

        self._front = socket.socket(_family(listen[0]), socket.SOCK_DGRAM)
        self._back = socket.socket(_family(target[0]), socket.SOCK_DGRAM)
        try:
            self._front.bind(listen)
            self._back.bind(source or (("::" if self._back.family == socket.AF_INET6 else "0.0.0.0"), 0))
        except OSError:
            self._front.close()
            self._back.close()
            raise
        for s in (self._front, self._back):
            s.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def address(self) -> Address:
        """Where clients send to (the bound front address)."""
        host, port = self._front.getsockname()[:2]
        return str(host), int(port)

    @property
    def source_address(self) -> Address:
        """The address the target sees the relayed datagrams come from."""
        host, port = self._back.getsockname()[:2]
        return str(host), int(port)

    def __enter__(self) -> UdpRelay:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> UdpRelay:
        if self._thread is not None:
            raise RuntimeError("relay already started")
        self._thread = threading.Thread(target=self._run, name=f"udp-relay-{self.address[1]}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the worker (datagrams still scheduled are discarded) and close the sockets."""
        if self._stopping:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for s in (self._front, self._back):
            s.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self.error is not None:
            raise RuntimeError("relay worker failed") from self.error

    def pending(self) -> int:
        """Datagrams scheduled or held but not yet sent."""
        return len(self._queue) + sum(h is not None for h in self._held.values())

    # -- worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(self._front, selectors.EVENT_READ, Direction.FORWARD)
                sel.register(self._back, selectors.EVENT_READ, Direction.BACKWARD)
                sel.register(self._wake_r, selectors.EVENT_READ, None)
                while not self._stopping:
                    for key, _ in sel.select(self._timeout(time.monotonic())):
                        if key.data is None:
                            return
                        self._receive(key.data)
                    self._flush(time.monotonic())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def _timeout(self, now: float) -> float | None:
        deadlines = [self._queue[0].due] if self._queue else []
        deadlines += [h.deadline for h in self._held.values() if h is not None]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _receive(self, direction: Direction) -> None:
        sock = self._front if direction is Direction.FORWARD else self._back
        while True:
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:  # ICMP unreachable from an earlier send
                continue
            if direction is Direction.FORWARD:
                self.client = (str(addr[0]), int(addr[1]))
            elif (str(addr[0]), int(addr[1])) != self.target:
                continue  # not from the target: not ours to relay
            self._admit(direction, data, time.monotonic())

    def _admit(self, direction: Direction, data: bytes, now: float) -> None:
        imp = self.impairments[direction]
        stats = self.stats[direction]
        rng = self._rngs[direction]
        stats.received += 1
        r_drop, r_dup, r_reorder, r_jitter = rng.random(), rng.random(), rng.random(), rng.random()
        if r_drop < imp.drop:
            stats.dropped += 1
            return
        if direction is Direction.BACKWARD and self.client is None:
            stats.unroutable += 1
            return
        copies = 2 if r_dup < imp.duplicate else 1
        stats.duplicated += copies - 1
        payload = data
        held = self._held[direction]
        if held is None and r_reorder < imp.reorder:
            stats.reordered += 1
            self._held[direction] = _Held(now + imp.reorder_hold, payload)
            # a duplicate of a held datagram is sent at its normal time
            if copies == 2:
                self._schedule(direction, now + imp.delay + r_jitter * imp.jitter, payload)
            return
        due = now + imp.delay + r_jitter * imp.jitter
        for _ in range(copies):
            self._schedule(direction, due, payload)
        if held is not None:
            self._held[direction] = None
            self._schedule(direction, due, held.data)  # same due, later seq: right after

    def _schedule(self, direction: Direction, due: float, data: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Scheduled(due, self._seq, direction, data))

    def _flush(self, now: float) -> None:
        for direction, held in self._held.items():
            if held is not None and held.deadline <= now:
                self._held[direction] = None
                imp = self.impairments[direction]
                self._schedule(direction, now + imp.delay, held.data)
        while self._queue and self._queue[0].due <= now:
            item = heapq.heappop(self._queue)
            self._send(item.direction, item.data)

    def _send(self, direction: Direction, data: bytes) -> None:
        if direction is Direction.FORWARD:
            sock, dest = self._back, self.target
        else:
            assert self.client is not None
            sock, dest = self._front, self.client
        try:
            sock.sendto(data, dest)
        except (BlockingIOError, ConnectionRefusedError):
            self.stats[direction].dropped += 1  # as a congested or closed link would
            return
        self.stats[direction].sent += 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one relay in the foreground until SIGTERM or SIGINT; impairments apply both ways."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.relay", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, type=parse_endpoint, help="HOST:PORT clients send to")
    parser.add_argument("--target", required=True, type=parse_endpoint, help="HOST:PORT to relay to")
    parser.add_argument("--source", type=parse_endpoint, help="HOST:PORT to send to the target from")
    parser.add_argument("--seed", type=int, default=0)
    for name in ("drop", "duplicate", "reorder", "delay", "jitter"):
        parser.add_argument(f"--{name}", type=float, default=0.0)
    args = parser.parse_args(argv)
    imp = Impairment(
        drop=args.drop, duplicate=args.duplicate, reorder=args.reorder, delay=args.delay, jitter=args.jitter
    )
    relay = UdpRelay(
        args.target, listen=args.listen, source=args.source, forward=imp, backward=imp, seed=args.seed
    )
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with relay:
        host, port = relay.address
        sys.stdout.write(f"listening {host} {port}\n")
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
        for d, stats in relay.stats.items():
            sys.stdout.write(f"{d.value} {stats}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
