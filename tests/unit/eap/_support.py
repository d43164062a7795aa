"""Shared helpers for the EAP tests: the RFC 2759 vectors, a dict-backed user store, packet builders."""

from __future__ import annotations

from typing import Any

from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap.mschapv2 import MsChapV2Packet
from pyipsec.ike.eap.mschapv2_crypto import nt_password_hash
from pyipsec.wire.payloads.eap import EapMessage
from tests.unit.crypto._support import ScriptedRandom, h, load_vectors

__all__ = ["VECTORS", "DictUsers", "ScriptedRandom", "h", "mschap", "request", "response"]

VECTORS: dict[str, Any] = load_vectors("rfc2759_mschapv2.json")


class DictUsers:
    """A UserStore (and FailureRecorder) over a dict of passwords."""

    def __init__(self, **passwords: str) -> None:
        self.hashes = {name: nt_password_hash(pw) for name, pw in passwords.items()}
        self.failures: list[str] = []
        self.lookups: list[str] = []

    def nt_hash(self, username: str) -> bytes | None:
        self.lookups.append(username)
        return self.hashes.get(username)

    def record_failure(self, username: str) -> None:
        self.failures.append(username)


def request(identifier: int, eap_type: int, data: bytes = b"") -> bytes:
    return EapMessage(EapCode.REQUEST, identifier, EapType(eap_type), data).encode()


def response(identifier: int, eap_type: int, data: bytes = b"") -> bytes:
    return EapMessage(EapCode.RESPONSE, identifier, EapType(eap_type), data).encode()


def mschap(opcode: int, ms_id: int, data: bytes = b"") -> bytes:
    """MS-CHAPv2 Type-Data with a full header (MS-Length consistent)."""
    return MsChapV2Packet(opcode, ms_id, data).encode()
