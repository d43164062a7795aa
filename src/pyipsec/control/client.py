"""The CLI's side of the control socket: one blocking request/response."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

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

    def call(self, cmd: str, **args: JsonValue) -> JsonValue:
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
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise DaemonUnavailable("the daemon closed the control connection")
                buf += chunk
                if len(buf) > MAX_LINE:
                    raise ControlError("BadResponse", "control response too long")
        resp = decode_line(buf)
        if resp.get("ok") is True:
            return resp.get("result")
        err = resp.get("error")
        if isinstance(err, dict):
            raise ControlError(str(err.get("type")), str(err.get("message")))
        raise ControlError("BadResponse", "malformed control response")
