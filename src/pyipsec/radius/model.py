"""The RADIUS client's settings, answers, accounting records and counters (frozen dataclasses).

Theory of operation: everything the gateway hands to :class:`~pyipsec.radius.client.RadiusClient`
or gets back from it is a plain, immutable value, so the daemon can build the settings from its
configuration section and pass answers to the IKE engine without sharing state with the client.
Secrets (the shared secret, the MSK) are left out of every ``repr``.

The enumerations carry the RFC numbers: :class:`AcctStatus` is Acct-Status-Type (RFC 2866 §5.1,
Interim-Update from RFC 2869 §2.1), :class:`TerminateCause` is Acct-Terminate-Cause (RFC 2866
§5.10).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Network

__all__ = [
    "AccountingRecord",
    "AcctStatus",
    "EapRelayAnswer",
    "RadiusAnswerKind",
    "RadiusServer",
    "RadiusSettings",
    "RadiusStats",
    "ServerStats",
    "TerminateCause",
]

_MAX_COUNT = 2**64 - 1  # Acct-*-Octets with Acct-*-Gigawords give 64 bits (RFC 2869 §5.1, §5.2)


@dataclass(frozen=True, slots=True)
class RadiusServer:
    """One RADIUS server: ``address`` is an IPv4 or IPv6 literal; the secret never shows in reprs."""

    name: str
    address: str
    auth_port: int = 1812
    acct_port: int = 1813
    secret: bytes = field(kw_only=True, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a RADIUS server needs a name")
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ValueError(f"RADIUS server {self.name}: {self.address!r} is not an IP address") from None
        for port in (self.auth_port, self.acct_port):
            if not 0 < port < 65536:
                raise ValueError(f"RADIUS server {self.name}: port {port} out of range")
        if not isinstance(self.secret, bytes) or not self.secret:
            raise ValueError(f"RADIUS server {self.name}: the shared secret must be non-empty bytes")

    @property
    def label(self) -> str:
        """``name (address)`` for log lines and reasons."""
        return f"{self.name} ({self.address})"


@dataclass(frozen=True, slots=True)
class RadiusSettings:
    """The servers in order of preference and the retransmission policy.

    Each request is sent up to ``tries`` times to one server, ``timeout`` seconds apart, before
    the client fails over to the next server. ``nas_ip`` is sent as NAS-IP(v6)-Address and used
    as the source address; without it the source address the kernel picks is sent.
    """

    servers: tuple[RadiusServer, ...]
    timeout: float = 2.0
    tries: int = 3
    nas_identifier: str = "pyipsec"
    nas_ip: str | None = None

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("RADIUS needs at least one server")
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise ValueError(f"RADIUS server names must be unique: {names}")
        if not self.timeout > 0:
            raise ValueError("the RADIUS timeout must be positive")
        if self.tries < 1:
            raise ValueError("RADIUS tries must be at least 1 per server")
        if not self.nas_identifier or len(self.nas_identifier.encode()) > 253:
            raise ValueError("the NAS-Identifier must have 1 to 253 octets")
        if self.nas_ip is not None:
            ipaddress.ip_address(self.nas_ip)


class RadiusAnswerKind(Enum):
    """What came back for one relayed EAP message."""

    CHALLENGE = "challenge"  # Access-Challenge: relay ``eap`` to the client, echo ``state``
    ACCEPT = "accept"  # Access-Accept: EAP-Success in ``eap``, the MSK in ``msk``
    REJECT = "reject"  # Access-Reject: EAP-Failure in ``eap`` (if the server sent one)
    TIMEOUT = "timeout"  # no server answered (``reason`` names them)


@dataclass(frozen=True, slots=True)
class EapRelayAnswer:
    """The verified answer to one Access-Request; the MSK is left out of the ``repr``."""

    kind: RadiusAnswerKind
    eap: bytes = b""
    state: bytes | None = None
    msk: bytes = field(default=b"", repr=False)
    framed_ipv4: IPv4Address | None = None
    framed_ipv6: IPv6Address | None = None
    framed_ipv6_prefix: IPv6Network | None = None
    classes: tuple[bytes, ...] = ()
    session_timeout: int | None = None
    reply_message: str = ""
    server: str = ""
    reason: str = ""


class AcctStatus(IntEnum):
    """Acct-Status-Type (RFC 2866 §5.1; Interim-Update RFC 2869 §2.1)."""

    START = 1
    STOP = 2
    INTERIM = 3


class TerminateCause(IntEnum):
    """Acct-Terminate-Cause (RFC 2866 §5.10)."""

    USER_REQUEST = 1
    LOST_CARRIER = 2
    LOST_SERVICE = 3
    IDLE_TIMEOUT = 4
    SESSION_TIMEOUT = 5
    ADMIN_RESET = 6
    ADMIN_REBOOT = 7
    PORT_ERROR = 8
    NAS_ERROR = 9
    NAS_REQUEST = 10
    NAS_REBOOT = 11
    PORT_UNNEEDED = 12
    PORT_PREEMPTED = 13
    PORT_SUSPENDED = 14
    SERVICE_UNAVAILABLE = 15
    CALLBACK = 16
    USER_ERROR = 17
    HOST_REQUEST = 18


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    """One Accounting-Request's content (RFC 2866 §5).

    ``in_*`` count what the NAS received from the client (Acct-Input-*), ``out_*`` what it sent
    to it. Counters, session time and cause are sent only in INTERIM and STOP records (RFC 2866
    §5.3 ff.), the terminate cause only in STOP.
    """

    status: AcctStatus
    session: str
    user: str
    classes: tuple[bytes, ...] = ()
    framed_ipv4: IPv4Address | None = None
    framed_ipv6_prefix: IPv6Network | None = None
    calling_station: str = ""
    called_station: str = ""
    nas_port: int = 0
    in_octets: int = 0
    out_octets: int = 0
    in_packets: int = 0
    out_packets: int = 0
    session_time: int = 0
    terminate_cause: TerminateCause | None = None

    def __post_init__(self) -> None:
        for label, value in (
            ("in_octets", self.in_octets),
            ("out_octets", self.out_octets),
            ("in_packets", self.in_packets),
            ("out_packets", self.out_packets),
        ):
            if not 0 <= value <= _MAX_COUNT:
                raise ValueError(f"{label} {value} is outside 0..2**64-1")
        if self.in_packets >= 2**32 or self.out_packets >= 2**32:
            raise ValueError("packet counts above 2**32-1 cannot be sent (no Gigawords for packets)")
        if not 0 <= self.session_time < 2**32 or not 0 <= self.nas_port < 2**32:
            raise ValueError("session_time and nas_port are 32-bit unsigned integers")


@dataclass(frozen=True, slots=True)
class ServerStats:
    """Counters of one server (authentication and accounting together)."""

    name: str
    requests: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    bad_authenticator: int = 0
    malformed: int = 0
    unexpected: int = 0
    answers: int = 0


@dataclass(frozen=True, slots=True)
class RadiusStats:
    """A snapshot of every server's counters, in configured order."""

    servers: tuple[ServerStats, ...]

    def server(self, name: str) -> ServerStats:
        for s in self.servers:
            if s.name == name:
                return s
        raise KeyError(name)
