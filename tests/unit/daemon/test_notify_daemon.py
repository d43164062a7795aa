"""``pyipsec daemon`` started as systemd starts a ``Type=notify`` service: READY=1 once its control
socket answers, watchdog pings from its loop, STOPPING=1 on SIGTERM.

The daemon runs without a data plane on loopback ports of its own, so the test needs no root
and no namespace; the listener plays systemd's notification socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyipsec.control.client import ControlClient, DaemonUnavailable
from tests.support.pyipsecd import to_toml

PSK = "0x" + "5e" * 32


def _free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def gateway_config(tmp_path: Path, **settings: object) -> Path:
    port, nat_t = _free_udp_ports(2)
    cfg = {
        "settings": {
            "listen": ["127.0.0.1"],
            "port": port,
            "port_nat_t": nat_t,
            "dataplane": False,
            "users": str(tmp_path / "users.db"),
            "control_socket": str(tmp_path / "control.sock"),
            **settings,
        },
        "connections": {
            "office": {
                "local_addrs": ["127.0.0.1"],
                "remote_addrs": ["127.0.0.2"],
                "local": {"auth": "psk", "id": "gw.example.org"},
                "remote": {"auth": "psk", "id": "client.example.org"},
                "children": {"net": {"local_ts": ["10.1.0.0/16"], "remote_ts": ["10.2.0.0/16"]}},
            }
        },
        "secrets": {"ike-office": {"id": ["gw.example.org", "client.example.org"], "secret": PSK}},
    }
    path = tmp_path / "pyipsec.toml"
    path.write_text(to_toml(cfg))
    return path


class Systemd:
    """The notification socket of a service manager, and the messages that reached it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, list[str]]] = []

    def wait_for(self, line: str, timeout: float) -> float:
        """Read until a message holds ``line``; its arrival time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            now = time.monotonic()
            self.messages.append((now, data.decode().splitlines()))
            if line in self.messages[-1][1]:
                return now
        raise AssertionError(f"no {line} within {timeout} s; got {self.messages}")


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    s = Systemd(tmp_path / "notify.sock")
    yield s
    s.sock.close()


def test_the_daemon_notifies_ready_pings_the_watchdog_and_says_stopping(
    tmp_path: Path, systemd: Systemd
) -> None:
    config = gateway_config(tmp_path)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(systemd.path),
        "WATCHDOG_USEC": "400000",  # a ping every 0.2 s
    }
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyipsec", "daemon", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        systemd.wait_for("READY=1", timeout=30)
        ready = next(m for _, m in systemd.messages if "READY=1" in m)
        assert "STATUS=0 IKE SAs up (0 in all), 0 Child SAs" in ready
        # READY=1 came once the control socket answers
        assert ControlClient(tmp_path / "control.sock", timeout=5).call("connections")
        first = systemd.wait_for("WATCHDOG=1", timeout=5)
        systemd.wait_for("WATCHDOG=1", timeout=5)
        third = systemd.wait_for("WATCHDOG=1", timeout=5)
        assert third > first  # pinging on, not a burst at start
        proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1", timeout=10)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
    lines = [line for _, m in systemd.messages for line in m]
    assert lines.index("READY=1") < lines.index("WATCHDOG=1") < lines.index("STOPPING=1")
    assert not any(line.startswith("READY=1") for line in lines[lines.index("STOPPING=1") :])
    assert PSK not in (tmp_path / "daemon.log").read_text()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_daemon_without_notify_socket_runs_as_before(tmp_path: Path, log_format: str) -> None:
    """No NOTIFY_SOCKET (a shell, a test harness): nothing about systemd in the log; with
    ``log_format = "json"`` every line the daemon writes is one JSON object."""
    config = gateway_config(tmp_path, log_format=log_format)
    env = {
        k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM")
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyipsec", "daemon", str(config), "--log-level", "debug"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        client = ControlClient(tmp_path / "control.sock", timeout=5)
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                assert client.call("connections")
                break
            except DaemonUnavailable:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0
    text = out.decode()
    assert "systemd" not in text and "pyipsec daemon started" in text and PSK not in text
    if log_format == "json":
        lines = [json.loads(line) for line in text.splitlines()]
        assert any(o["message"] == "pyipsec daemon started with 1 connections" for o in lines)
        assert all(o.keys() >= {"time", "level", "logger", "message"} for o in lines)
