"""pyipsec's own daemon as a test peer in a network namespace, driven over its control socket.

``PyIpsecDaemon`` writes a TOML configuration (from a plain dict) into its own directory,
starts ``python -m pyipsec daemon`` inside the namespace, waits until the control socket
answers, and stops the process on teardown. UNIX sockets live in the file system, so the
test talks to a daemon in any network namespace directly.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from pyipsec.control.client import ControlClient, DaemonUnavailable
from pyipsec.control.protocol import JsonValue
from tests.support.netns import Namespace

__all__ = ["PyIpsecDaemon", "to_toml"]

TomlValue = str | int | float | bool | Sequence[str] | Mapping[str, "TomlValue"]


def _scalar(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def to_toml(tree: Mapping[str, object], prefix: str = "") -> str:
    """A small TOML writer for nested tables of scalars and lists (tests only)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, object]]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_scalar(value)}")
    out = ""
    if prefix and lines:
        out += f"[{prefix}]\n"
    out += "".join(line + "\n" for line in lines)
    for key, sub in tables:
        name = f"{prefix}.{key}" if prefix else key
        if not any(isinstance(v, Mapping) for v in sub.values()) or any(
            not isinstance(v, Mapping) for v in sub.values()
        ):
            out += "\n"
        out += to_toml(sub, name)
    return out


class PyIpsecDaemon:
    def __init__(
        self,
        ns: Namespace,
        base: Path,
        config: Mapping[str, object],
        *,
        name: str = "pyipsec",
        log_level: str = "debug",
    ) -> None:
        self.ns = ns
        self.log_level = log_level
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "control.sock"
        self.config_path = self.dir / "pyipsec.toml"
        self.log_path = self.dir / "daemon.log"
        self.config_path.write_text(to_toml(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = ControlClient(self.socket, timeout=60)

    def start(self, *, timeout: float = 40.0) -> PyIpsecDaemon:
        log = self.log_path.open("wb")
        self.proc = self.ns.popen(
            [
                sys.executable,
                "-m",
                "pyipsec",
                "daemon",
                str(self.config_path),
                "--socket",
                str(self.socket),
                "--log-level",
                self.log_level,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pyipsec daemon exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                self.client.call("connections")
                return self
            except DaemonUnavailable:
                time.sleep(0.05)
        raise RuntimeError(f"pyipsec daemon did not answer within {timeout} s:\n{self.log_text()}")

    def call(self, cmd: str, **args: JsonValue) -> JsonValue:
        return self.client.call(cmd, **args)

    def status(self) -> list[dict[str, JsonValue]]:
        result = self.call("status")
        assert isinstance(result, dict)
        sas = result["ike_sas"]
        assert isinstance(sas, list)
        return [s for s in sas if isinstance(s, dict)]

    def wait_for(
        self, pred: Callable[[list[dict[str, JsonValue]]], bool], *, timeout: float = 15.0
    ) -> list[dict[str, JsonValue]]:
        deadline = time.monotonic() + timeout
        sas = self.status()
        while not pred(sas):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting on pyipsec status: {sas}\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
            sas = self.status()
        return sas

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextlib.contextmanager
def running(daemon: PyIpsecDaemon) -> Iterator[PyIpsecDaemon]:
    try:
        yield daemon.start()
    finally:
        daemon.stop()


@pytest.fixture
def pyipsec_factory(
    tmp_path: Path, debug_logs: Callable[[Path], None]
) -> Iterator[Callable[..., PyIpsecDaemon]]:
    started: list[PyIpsecDaemon] = []

    def make(ns: Namespace, config: Mapping[str, object], *, name: str = "pyipsec") -> PyIpsecDaemon:
        d = PyIpsecDaemon(ns, tmp_path, config, name=name)
        debug_logs(d.log_path)
        started.append(d.start())
        return d

    try:
        yield make
    finally:
        for d in reversed(started):
            d.stop()
