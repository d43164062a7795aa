"""Shared helpers for the EAP-TLS tests: certificates valid *now* (OpenSSL checks the system
time), server and peer factories, and a driver that runs a conversation in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.ike.eap import EapOutcome, EapTlsPeer, EapTlsServer
from pyipsec.ike.eap.base import EapPeer, EapServer
from tests.support.pki import Issued, KeyKind, make_ca, make_end_entity

__all__ = ["GATEWAY", "USER", "Pki", "Transcript", "peer", "pki", "run", "server", "valid_now"]

GATEWAY = "gw.example.test"
USER = "alice@example.test"


def valid_now(days: int = 30) -> dict[str, datetime]:
    """A validity window around the system time, which OpenSSL checks certificates against."""
    now = datetime.now(UTC)
    return {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=days)}


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    gateway: Issued
    client: Issued


@cache
def pki(key: KeyKind = "p256") -> Pki:
    """A root, one intermediate, and gateway and client certificates under the intermediate."""
    root = make_ca(f"EAP-TLS root {key}", key=key)
    inter = make_ca(f"EAP-TLS intermediate {key}", key=key, issuer=root)
    gateway = make_end_entity(inter, GATEWAY, key=key, dns=[GATEWAY], **valid_now())
    client = make_end_entity(inter, "alice", key=key, emails=[USER], **valid_now())
    return Pki(root, inter, gateway, client)


def server(p: Pki | None = None, **kwargs: Any) -> EapTlsServer:
    p = p or pki()
    args: dict[str, Any] = {
        "cert": p.gateway.der,
        "key": p.gateway.key,
        "chain": (p.intermediate.der,),
        "ca_certs": (p.root.der,),
        "rng": OS_RANDOM,
    }
    args.update(kwargs)
    return EapTlsServer(**args)


def peer(p: Pki | None = None, identity: str = USER, **kwargs: Any) -> EapTlsPeer:
    p = p or pki()
    args: dict[str, Any] = {
        "cert": p.client.der,
        "key": p.client.key,
        "chain": (p.intermediate.der,),
        "ca_certs": (p.root.der,),
        "server_name": GATEWAY,
        "rng": OS_RANDOM,
    }
    args.update(kwargs)
    return EapTlsPeer(identity, **args)


@dataclass
class Transcript:
    requests: list[bytes] = field(default_factory=list)
    responses: list[bytes] = field(default_factory=list)


def run(s: EapServer, p: EapPeer, *, limit: int = 5000) -> Transcript:
    """Run the conversation to its end; the packets of each direction in order."""
    t = Transcript()
    packet = s.start()
    for _ in range(limit):
        t.requests.append(packet)
        answer = p.process(packet)
        if answer is None:
            return t
        t.responses.append(answer)
        packet = s.process(answer)
        if s.outcome is not EapOutcome.CONTINUE:
            t.requests.append(packet)
            if p.outcome is EapOutcome.CONTINUE or packet[0] in (3, 4):
                try:
                    p.process(packet)
                except Exception:  # the peer may already have ended (it reports its own reason)
                    if p.outcome is EapOutcome.CONTINUE:
                        raise
            return t
    raise AssertionError("conversation did not end")
