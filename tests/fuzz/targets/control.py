"""Z10: bytes → the control server's request handling (``control.server``, one line).

The line goes through ``ControlServer._one``, the server's per-request path (size and depth
limits, JSON parsing, the ``cmd``/``args`` shape), to a handler that validates the arguments
with ``control.schema.parse_args`` exactly as the daemon's commands do. The coroutine is
driven by hand: nothing in it waits.

Contract: every line gets a JSON-encodable answer; ``InternalError`` (the server's catch-all
for a bug) never appears; ``ok`` answers only known commands with valid arguments, and valid
arguments survive a dump → validate round trip.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyipsec.control.protocol import COMMANDS, JsonValue, encode_line
from pyipsec.control.schema import parse_args
from pyipsec.control.server import ControlServer, Progress


async def _handler(cmd: str, args: dict[str, JsonValue], progress: Progress) -> JsonValue:
    parsed = parse_args(cmd, args)
    dumped = parsed.model_dump(mode="json")
    assert parse_args(cmd, dumped) == parsed, "validated arguments do not round-trip"
    return {"cmd": cmd, "args": dumped}


class _Writer:
    def write(self, data: bytes) -> None:
        json.loads(data)


_SERVER = ControlServer(Path("/nonexistent/fuzz.sock"), _handler)


def check(data: bytes) -> None:
    coro = _SERVER._one(data, _Writer())  # type: ignore[arg-type]
    try:
        coro.send(None)
    except StopIteration as stop:
        answer = stop.value
    else:
        coro.close()
        raise AssertionError("the request handling waited for something")
    line = encode_line(answer)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    if answer["ok"]:
        result = answer["result"]
        assert isinstance(result, dict) and result["cmd"] in COMMANDS
    else:
        error = answer["error"]
        assert isinstance(error, dict)
        assert error["type"] != "InternalError", f"a bug answered as InternalError: {error['message']}"
