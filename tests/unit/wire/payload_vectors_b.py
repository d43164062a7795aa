"""Test helpers for the part-B payload tests: the hand-built vectors and the strongSwan captures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[2]
VECTORS = TESTS / "vectors" / "wire_payloads_b.json"
CAPTURES = TESTS / "captures"
IKE_HEADER_LEN = 28


def cases(*payloads: str) -> list[dict[str, Any]]:
    """The vector cases for the given payload names ("N", "TSi", "CP", ...)."""
    data = json.loads(VECTORS.read_text())
    return [c for c in data["cases"] if c["payload"] in payloads]


def body(case: dict[str, Any]) -> bytes:
    return bytes.fromhex(case["body_hex"].replace(" ", ""))


@dataclass(frozen=True)
class RawPayload:
    """One payload of a chain, split by hand (independently of wire.message)."""

    ptype: int
    next_type: int
    critical: bool
    body: bytes
    offset: int  # of the body, within the buffer walked


def walk_chain(first: int, data: bytes, offset: int = 0) -> list[RawPayload]:
    """Split a generic payload chain (RFC 7296 §3.2); stops after SK/SKF (46/53)."""
    out: list[RawPayload] = []
    ptype, pos = first, offset
    while ptype != 0:
        nxt, flags, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        out.append(RawPayload(ptype, nxt, bool(flags & 0x80), data[pos + 4 : pos + length], pos + 4))
        pos += length
        if ptype in (46, 53):
            break
        ptype = nxt
    return out


def capture_messages() -> list[tuple[str, dict[str, Any]]]:
    """(file stem, message) for every IKE message of every strongSwan capture."""
    out = []
    for path in sorted(CAPTURES.glob("strongswan-*.json")):
        for msg in json.loads(path.read_text())["ike_messages"]:
            out.append((path.stem, msg))
    return out


def ike_message_bytes(msg: dict[str, Any]) -> bytes:
    raw = bytes.fromhex(msg["udp_payload_hex"])
    return raw[4:] if msg["non_esp_marker"] else raw


def outer_payloads(msg: dict[str, Any]) -> list[RawPayload]:
    ike = ike_message_bytes(msg)
    return walk_chain(ike[16], ike, IKE_HEADER_LEN)


def inner_payloads(msg: dict[str, Any]) -> list[RawPayload]:
    """The decrypted payloads of an SK message (empty list for an empty one)."""
    first = outer_payloads(msg)[0].next_type
    return walk_chain(first, bytes.fromhex(msg["sk"]["decrypted_payloads_hex"]))
