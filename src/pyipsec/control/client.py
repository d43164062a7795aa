"""The CLI's side of the control socket: one blocking request/response."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pyipsec.control.protocol import MAX_LINE, JsonValue, decode_line, encode_line
from pyipsec.errors import PyIpsecError

__all__ = ["ControlClient", "ControlError", "DaemonUnavailable"]

DEFAULT_SOCKET = Path("/run/pyipsec/control.sock")


class DaemonUnavailable(PyIpsecError):
    """Nothing listens on the control socket."""


class ControlError(PyIpsecError):
    """The daemon answered with an error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ControlClient:
    _ids = itertools.count(1)

    def __init__(self, path: Path = DEFAULT_SOCKET, *, timeout: float = 60.0) -> None:
        self.path = path
        self.timeout = timeout

    def call(
        self,
        cmd: str,
        *,
        on_progress: Callable[[dict[str, JsonValue]], None] | None = None,
        **args: JsonValue,
    ) -> JsonValue:
        """Send one command; progress lines the daemon sends first go to ``on_progress``."""
        req_id = next(self._ids)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonUnavailable(
                    f"no pyipsec daemon at {self.path} ({exc.strerror}); "
                    "start one with `pyipsec daemon CONFIG`"
                ) from None
            except PermissionError:
                raise DaemonUnavailable(
                    f"no permission to use {self.path} (the control socket is root-only)"
                ) from None
            sock.sendall(encode_line({"id": req_id, "cmd": cmd, "args": dict(args)}))
            with sock.makefile("rb") as reader:
                buf = self._read_response(reader, on_progress)
        resp = decode_line(buf)
        if resp.get("ok") is True:
            return resp.get("result")
        err = resp.get("error")
        if isinstance(err, dict):
            raise ControlError(str(err.get("type")), str(err.get("message")))
        raise ControlError("BadResponse", "malformed control response")

    @staticmethod
    def _read_response(reader: BinaryIO, on_progress: Callable[[dict[str, JsonValue]], None] | None) -> bytes:
        """The response line; progress lines before it go to ``on_progress``."""
        while True:
            line = reader.readline(MAX_LINE + 1)
            if not line:
                raise DaemonUnavailable("the daemon closed the control connection")
            if len(line) > MAX_LINE:
                raise ControlError("BadResponse", "control response too long")
            msg = decode_line(line)
            progress = msg.get("progress")
            if isinstance(progress, dict) and "ok" not in msg:
                if on_progress is not None:
                    on_progress(progress)
                continue
            return line
