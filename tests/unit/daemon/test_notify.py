"""systemd's notification protocol (``daemon.notify``) against real AF_UNIX datagram sockets.

A test binds the socket systemd would listen on (a path, or an abstract name), hands its name to
the notifier as ``NOTIFY_SOCKET`` and reads what arrives. Timers run on the virtual clock, except
in the test of a stalled loop, which needs a real asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyipsec.daemon.clock import LoopClock
from pyipsec.daemon.notify import ENV_VARS, STATUS_INTERVAL, Notifier, monotonic_usec
from tests.support.clock import FakeClock


class Listener:
    """The systemd end: a bound datagram socket whose messages are read as lists of lines."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def messages(self) -> list[list[str]]:
        out: list[list[str]] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[Listener, str]]:
    path = tmp_path / "notify.sock"
    lis = Listener(str(path))
    yield lis, str(path)
    lis.close()


def test_a_path_socket_hears_ready_status_reloading_and_stopping(listener: tuple[Listener, str]) -> None:
    lis, path = listener
    env = {"NOTIFY_SOCKET": path, "HOME": "/root"}
    n = Notifier.from_environment(FakeClock(), env)
    assert n.enabled and env == {"HOME": "/root"}  # the variables are gone for child processes
    n.ready("3 IKE SAs up")
    before = monotonic_usec()
    n.reloading()
    after = monotonic_usec()
    n.ready("4 IKE SAs up")
    n.stopping()
    ready, reloading, ready_again, stopping = lis.messages()
    assert ready == ["READY=1", "STATUS=3 IKE SAs up"]
    assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
    assert before <= int(reloading[1].removeprefix("MONOTONIC_USEC=")) <= after
    assert ready_again == ["READY=1", "STATUS=4 IKE SAs up"]
    assert stopping == ["STOPPING=1", "STATUS=stopping"]
    n.shutdown()


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"pyipsec-test-{uuid.uuid4().hex}"
    lis = Listener(b"\0" + name.encode())
    try:
        n = Notifier.from_environment(FakeClock(), {"NOTIFY_SOCKET": "@" + name})
        n.ready("up")
        n.status("multi\nline")
        assert lis.messages() == [["READY=1", "STATUS=up"], ["STATUS=multi line"]]
        n.shutdown()
    finally:
        lis.close()


def test_without_notify_socket_nothing_is_sent_and_no_timer_armed() -> None:
    clock = FakeClock()
    env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier.from_environment(clock, env)
    assert not n.enabled and n.watchdog is None and env == {}
    n.ready("x")
    n.start(lambda: "x")
    n.stopping()
    assert clock.pending() == []


def test_an_unsupported_notify_socket_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pyipsec.daemon"):
        n = Notifier.from_environment(
            FakeClock(), {"NOTIFY_SOCKET": "vsock:2:1234", "WATCHDOG_USEC": "1000000"}
        )
    assert not n.enabled and n.watchdog is None
    assert "ignoring NOTIFY_SOCKET='vsock:2:1234'" in caplog.text


def _ping_times(clock: FakeClock, lis: Listener, until: float, step: float = 0.5) -> list[float]:
    times: list[float] = []
    while clock.now() < until:
        clock.advance(step)
        times.extend(clock.now() for m in lis.messages() if m == ["WATCHDOG=1"])
    return times


def test_the_watchdog_pings_every_half_watchdog_usec(listener: tuple[Listener, str]) -> None:
    lis, path = listener
    clock = FakeClock()
    pid = 4242
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}
    n = Notifier.from_environment(clock, env, pid=pid)
    assert n.watchdog == 15.0
    n.start()
    assert lis.messages() == [["WATCHDOG=1"]]  # the first ping at once
    assert _ping_times(clock, lis, 61.0) == [15.0, 30.0, 45.0, 60.0]
    n.stopping()
    assert lis.messages() == [["STOPPING=1", "STATUS=stopping"]]
    assert _ping_times(clock, lis, 120.0) == []  # no ping after STOPPING
    n.shutdown()


@pytest.mark.parametrize(
    ("extra", "watchdog"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),  # no WATCHDOG_PID: it is for us
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_is_for_us_only_with_a_valid_interval(
    listener: tuple[Listener, str], extra: dict[str, str], watchdog: float | None
) -> None:
    lis, path = listener
    clock = FakeClock()
    env = {"NOTIFY_SOCKET": path, **extra}
    n = Notifier.from_environment(clock, env, pid=99)
    assert n.watchdog == watchdog and not any(v in env for v in ENV_VARS)
    n.start()
    assert bool(_ping_times(clock, lis, 5.0)) is (watchdog is not None)


def test_the_status_line_is_refreshed_only_when_it_changed(listener: tuple[Listener, str]) -> None:
    lis, path = listener
    clock = FakeClock()
    sas = [0]
    n = Notifier(path, clock)
    n.ready(f"{sas[0]} IKE SAs")
    n.start(lambda: f"{sas[0]} IKE SAs")
    clock.advance(STATUS_INTERVAL * 3)
    assert lis.messages() == [["READY=1", "STATUS=0 IKE SAs"]]
    sas[0] = 3
    clock.advance(STATUS_INTERVAL)
    assert lis.messages() == [["STATUS=3 IKE SAs"]]
    n.shutdown()
    assert clock.pending() == []


def test_a_socket_that_is_gone_is_reported_once_and_never_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    missing = str(tmp_path / "nobody-listens.sock")
    n = Notifier(missing, clock, watchdog=1.0)
    with caplog.at_level(logging.DEBUG, logger="pyipsec.daemon"):
        n.ready("x")
        n.start()
        clock.advance(5)
        n.stopping()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and missing in warnings[0].getMessage()
    assert "cannot notify systemd" in warnings[0].getMessage()
    n.shutdown()


def test_a_stalled_event_loop_stops_the_pings(listener: tuple[Listener, str]) -> None:
    """The pings come from the loop's own timers: while a callback blocks it, none leaves."""
    lis, path = listener
    lis.sock.setblocking(True)
    lis.sock.settimeout(0.2)
    arrivals: list[float] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                if lis.sock.recv(64) == b"WATCHDOG=1\n":
                    arrivals.append(time.monotonic())
            except TimeoutError:
                continue

    async def main() -> tuple[float, float]:
        n = Notifier.from_environment(
            LoopClock(), {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"}
        )  # a ping every 50 ms
        n.start()
        await asyncio.sleep(0.4)
        stall_start = time.monotonic()
        time.sleep(0.6)  # the loop is stuck (a blocking call in a callback)
        stall_end = time.monotonic()
        await asyncio.sleep(0.4)
        n.shutdown()
        return stall_start, stall_end

    thread = threading.Thread(target=receive)
    thread.start()
    try:
        stall_start, stall_end = asyncio.run(main())
    finally:
        done.set()
        thread.join()
    before = [t for t in arrivals if t < stall_start]
    # (a ping sent just before the stall may be read a little late by a busy machine)
    during = [t for t in arrivals if stall_start + 0.2 < t < stall_end]
    after = [t for t in arrivals if t > stall_end]
    assert len(before) >= 3 and len(after) >= 3  # it pinged before and resumed after
    assert during == []
