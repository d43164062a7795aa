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
MAX_DEPTH = 32  # nesting of arrays and objects; no command needs more than 3


def encode_line(obj: dict[str, JsonValue]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def decode_line(line: bytes) -> dict[str, JsonValue]:
    """Parse one request or response line; ValueError if it is not a JSON object, or nests
    deeper than :data:`MAX_DEPTH` (checked before parsing: the parser recurses)."""
    if len(line) > MAX_LINE:
        raise ValueError(f"longer than {MAX_LINE} bytes")
    if _depth_exceeds(line, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        obj = json.loads(line)
    except RecursionError:  # (the depth check above makes this unreachable; kept as a guard)
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(obj, dict):
        raise ValueError("a control message is a JSON object")
    return obj


def _depth_exceeds(line: bytes, limit: int) -> bool:
    """Whether the brackets of ``line`` (outside strings) nest deeper than ``limit``."""
    depth, in_string, escaped = 0, False, False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def ok_response(req_id: JsonValue, result: JsonValue) -> dict[str, JsonValue]:
    return {"id": req_id, "ok": True, "result": result}


def error_response(req_id: JsonValue, kind: str, message: str) -> dict[str, JsonValue]:
    return {"id": req_id, "ok": False, "error": {"type": kind, "message": message}}
