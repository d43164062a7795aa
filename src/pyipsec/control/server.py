"""The daemon's side of the control socket: one asyncio UNIX server, root-only (0600)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from pyipsec.control.protocol import (
    MAX_LINE,
    JsonValue,
    decode_line,
    encode_line,
    error_response,
    ok_response,
)
from pyipsec.errors import PyIpsecError

__all__ = ["ControlServer", "Handler", "Progress"]

_log = logging.getLogger(__name__)

Progress = Callable[[dict[str, JsonValue]], None]
Handler = Callable[[str, dict[str, JsonValue], Progress], Awaitable[JsonValue]]


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path), limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        _log.info("control socket %s", self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE: answer, then hang up (no resync)
                    writer.write(
                        encode_line(
                            error_response(None, "BadRequest", f"request longer than {MAX_LINE} bytes")
                        )
                    )
                    await writer.drain()
                    break
                if not line:
                    break
                writer.write(encode_line(await self._one(line, writer)))
                await writer.drain()
        except ConnectionError as exc:
            _log.debug("control client dropped: %s", exc)
        finally:
            writer.close()

    async def _one(self, line: bytes, writer: asyncio.StreamWriter) -> dict[str, JsonValue]:
        try:
            req = decode_line(line)
        except ValueError as exc:
            return error_response(None, "BadRequest", f"not a usable JSON object: {exc}")
        req_id = req.get("id")
        cmd, args = req.get("cmd"), req.get("args", {})
        if not isinstance(cmd, str) or not isinstance(args, dict):
            return error_response(req_id, "BadRequest", "need a string 'cmd' and an object 'args'")

        def progress(event: dict[str, JsonValue]) -> None:
            writer.write(encode_line({"id": req_id, "progress": event}))

        try:
            return ok_response(req_id, await self._handler(cmd, args, progress))
        except PyIpsecError as exc:
            return error_response(req_id, type(exc).__name__, str(exc))
        except Exception as exc:  # a bug: report it, keep serving
            _log.exception("control command %s failed", cmd)
            return error_response(req_id, "InternalError", f"{type(exc).__name__}: {exc}")
