"""What an exchange may need from outside the engine: lookups with I/O, and their answers.

The engine is sans-I/O, but some answers live elsewhere: a RADIUS server decides on an EAP
conversation (RFC 3579), an OCSP responder or a CRL on a certificate (RFC 6960, RFC 5280). A
task that needs one raises :class:`~pyipsec.ike.task.Suspend` with a :class:`Lookup`; the task
manager parks the exchange (no response is sent, retransmissions of the request are dropped,
nothing else runs on that SA) and the engine emits
:class:`~pyipsec.ike.events.LookupNeeded` with a ticket. The host does the I/O and hands the
answer back with ``IkeEngine.answer(ticket, answer, now)``; the task resumes where it stopped.
An answer for an SA that is gone meanwhile is ignored. The host always answers — a lookup
that fails (a RADIUS server that is down, an OCSP responder that does not answer) is an answer
too, saying so; the half-open timeout ends an SA whose answer never comes.

The shared store (PostgreSQL, several gateways) is I/O too: with ``ike.pools.LookupPools`` a
virtual IP is a :class:`LeaseQuery` answered by a :class:`LeaseAnswer`, and with
``ike.eap.LookupUsers`` an EAP-MSCHAPv2 account is a :class:`UserQuery` answered by a
:class:`UserAnswer`. An address leased for an SA that is gone by the time the answer comes is
given back to the pool by the engine (``IkeEngine.answer``), so no lease is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv6Address, IPv6Network

__all__ = [
    "Answer",
    "EapRelay",
    "EapRelayAnswer",
    "LeaseAnswer",
    "LeaseQuery",
    "Lookup",
    "RelayResult",
    "RevocationAnswer",
    "RevocationQuery",
    "UserAnswer",
    "UserQuery",
]


class Lookup:
    """Base of the things a task may ask the host for."""


@dataclass(frozen=True, slots=True)
class EapRelay(Lookup):
    """Pass one EAP message of the peer to the AAA server (``auth = "eap-radius"``)."""

    user: str  # the peer's EAP identity (RADIUS User-Name)
    eap: bytes  # the EAP-Response, whole
    state: bytes | None  # RADIUS State of the last Access-Challenge
    session: str  # one per IKE SA (Acct-Session-Id)
    calling_station: str  # the peer's address ("192.0.2.1[4500]")
    called_station: str  # our address
    nas_port: int  # the IKE SA's number


class RelayResult(Enum):
    CHALLENGE = "challenge"  # another EAP round
    ACCEPT = "accept"
    REJECT = "reject"
    TIMEOUT = "timeout"  # no AAA server answered


@dataclass(frozen=True, slots=True)
class EapRelayAnswer:
    result: RelayResult
    eap: bytes = b""  # the EAP message to send to the peer (Request, Success or Failure)
    state: bytes | None = None
    msk: bytes = field(default=b"", repr=False)
    framed_ipv4: IPv4Address | None = None
    framed_ipv6: IPv6Address | None = None
    framed_ipv6_prefix: IPv6Network | None = None
    classes: tuple[bytes, ...] = ()
    session_timeout: int | None = None
    server: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RevocationQuery(Lookup):
    """Is any certificate of this validated chain revoked? (``remote.revocation``)"""

    chain: tuple[bytes, ...]  # DER, end entity first, without the trust anchor
    anchor: bytes  # DER of the trust anchor the chain ends at
    policy: str  # "strict", "ifuri" or "relaxed" (swanctl's remote.revocation)


@dataclass(frozen=True, slots=True)
class RevocationAnswer:
    ok: bool
    reason: str = ""  # why not, or what was checked ("serial 0x1f revoked per CRL http://…")
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseQuery(Lookup):
    """Lease an address of ``pool`` (``first``-``last``) to ``identity`` (a responder's CFG_REQUEST)."""

    pool: str
    first: IPv4Address | IPv6Address
    last: IPv4Address | IPv6Address
    identity: str
    requested: IPv4Address | IPv6Address | None = None  # the address the peer asks for, in the pool


@dataclass(frozen=True, slots=True)
class LeaseAnswer:
    """The leased ``address`` of ``pool``, or None and why not (exhausted, store unavailable)."""

    pool: str
    address: IPv4Address | IPv6Address | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class UserQuery(Lookup):
    """The NT hashes of these EAP-MSCHAPv2 account names (the name as given, then without
    its ``DOMAIN\\`` prefix)."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserAnswer:
    """``nt_hashes``: name to NT hash for the accounts that exist; ``error``: the store could
    not be asked (the login then fails with this reason, it is not a wrong password)."""

    nt_hashes: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    error: str = ""


Answer = EapRelayAnswer | RevocationAnswer | LeaseAnswer | UserAnswer
