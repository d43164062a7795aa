"""The control API: newline-delimited JSON over a UNIX socket (DESIGN.md §6).

Request: ``{"id": 7, "cmd": "status", "args": {...}}``. Response: ``{"id": 7, "ok": true,
"result": ...}`` or ``{"id": 7, "ok": false, "error": {"type": "...", "message": "..."}}``.
Commands: ``status``, ``up`` (args ``name``, ``timeout``), ``down`` (``name`` or ``sa_id``),
``rekey`` (``name``, ``ike``), ``connections``, ``stats``.
"""

from __future__ import annotations

import json
from typing import TypeAlias

__all__ = ["COMMANDS", "JsonValue", "decode_line", "encode_line", "error_response", "ok_response"]

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

COMMANDS = frozenset({"status", "up", "down", "rekey", "connections", "stats"})
MAX_LINE = 1 << 20


def encode_line(obj: dict[str, JsonValue]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def decode_line(line: bytes) -> dict[str, JsonValue]:
    """Parse one request or response line; ValueError if it is not a JSON object."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("a control message is a JSON object")
    return obj


def ok_response(req_id: JsonValue, result: JsonValue) -> dict[str, JsonValue]:
    return {"id": req_id, "ok": True, "result": result}


def error_response(req_id: JsonValue, kind: str, message: str) -> dict[str, JsonValue]:
    return {"id": req_id, "ok": False, "error": {"type": kind, "message": message}}
