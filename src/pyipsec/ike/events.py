"""What the engine tells the outside world, and what the data plane tells it: frozen records.

The runtime applies ``ChildSaInstalled`` / ``ChildSaRemoved`` to the data plane and shows
the others in logs and ``status``; it needs nothing else from the engine. Outcomes are typed:
an IKE SA closes with a :class:`CloseCause` and the error Notify that ended it, if one did (a
failed Child SA names its Notify too: metrics count failures by it), a removed Child SA says
what (if anything) replaced it, proposals travel as data (the edge formats them). Keys travel
only inside the Child SA's :class:`~pyipsec.childsa.ChildSaSpec` and, only when the host asked
for them (``EngineConfig.export_ike_keys``, for a Wireshark key log), in
:class:`IkeKeysDerived`; both exclude them from ``repr`` so that logging an event never leaks
them.

:class:`ChildSaSignal` goes the other way: the data plane's report that a Child SA reached a
volume lifetime or is running out of sequence numbers (``IkeEngine.handle_signal``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pyipsec.childsa import ChildSaSpec
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.keymat import IkeKeys
from pyipsec.ike.lookups import Lookup
from pyipsec.ike.proposal import ChosenProposal
from pyipsec.net.addr import Endpoint

__all__ = [
    "ChildSaAddressesChanged",
    "ChildSaSignal",
    "CloseCause",
    "Replacement",
    "SignalKind",
    "ChildSaFailed",
    "ChildSaInstalled",
    "ChildSaOutboundActivated",
    "ChildSaRemoved",
    "Event",
    "IkeSaClosed",
    "IkeKeysDerived",
    "IkeSaRedirected",
    "IkeSaEstablished",
    "LookupNeeded",
    "NatKeepalive",
    "SaProgress",
    "VirtualIpAssigned",
]


class CloseCause(Enum):
    """Why an IKE SA closed; ``IkeSaClosed.reason`` says it in words."""

    LOCAL = "local"  # deleted on our own request (down, shutdown)
    PEER = "peer"  # deleted by the peer
    REKEYED = "rekeyed"  # replaced by a new IKE SA (RFC 7296 §2.8)
    REDUNDANT = "redundant"  # the loser of a rekey collision (§2.8.2)
    REAUTHENTICATED = "reauthenticated"  # replaced by a new IKE SA of ours (§2.8.3)
    INITIAL_CONTACT = "initial-contact"  # the peer restarted and said so (§2.4)
    REAUTH_OVERDUE = "reauth-overdue"  # the peer did not reauthenticate in time (RFC 4478)
    FAILED = "failed"  # an exchange failed (authentication, proposals, addresses, …)
    TIMEOUT = "timeout"  # the peer stopped answering (or never finished setting up)
    # a half-open responder SA that never got an IKE_AUTH: expired, or made room at the cap
    # (a flood makes thousands: counted in EngineStats, logged at debug level only)
    ABANDONED = "abandoned"
    INTERNAL_ERROR = "internal-error"  # a bug: logged with its traceback
    REDIRECTED = "redirected"  # the gateway sent us elsewhere (RFC 5685; ike.redirect)

    @property
    def replaced(self) -> bool:
        """Whether another IKE SA took this one's place (its Child SAs live on there)."""
        return self in (CloseCause.REKEYED, CloseCause.REDUNDANT, CloseCause.REAUTHENTICATED)


class Replacement(Enum):
    """What took the place of a removed Child SA."""

    NONE = "none"
    REKEY = "rekey"  # a new Child SA of the same IKE SA (RFC 7296 §2.8)
    REAUTH = "reauth"  # a Child SA of the IKE SA that reauthenticated this one (§2.8.3)


class SignalKind(Enum):
    SOFT_LIFETIME = "soft_lifetime"  # rekey now (volume limit, RFC 4301 §4.4.2.1)
    HARD_LIFETIME = "hard_lifetime"  # delete now
    SEQ_EXHAUSTING = "seq_exhausting"  # the sequence number runs out soon (RFC 4303 §3.3.3): rekey


@dataclass(frozen=True, slots=True)
class ChildSaSignal:
    """The data plane's report about the Child SA whose inbound SPI is ``spi_in``."""

    spi_in: bytes
    kind: SignalKind


@dataclass(frozen=True, slots=True)
class IkeSaEstablished:
    sa_id: int
    connection: str
    spi_i: bytes
    spi_r: bytes
    initiator: bool
    local: Endpoint
    remote: Endpoint
    local_id: str
    remote_id: str
    proposal: ChosenProposal
    rekeyed_from: int | None = None  # the IKE SA this one replaces (rekey, RFC 7296 §1.3.2)
    reauth_of: int | None = None  # the IKE SA this one replaces (reauthentication, RFC 7296 §2.8.3)


@dataclass(frozen=True, slots=True)
class IkeKeysDerived:
    """IKE SA ``sa_id`` has its keys (after IKE_SA_INIT, or the CREATE_CHILD_SA that rekeyed
    another IKE SA). Emitted only with ``EngineConfig.export_ike_keys`` (``save_keys``): the
    host writes them for Wireshark. ``keys`` is excluded from ``repr``."""

    sa_id: int
    connection: str
    spi_i: bytes
    spi_r: bytes
    proposal: ChosenProposal
    keys: IkeKeys = field(repr=False)


@dataclass(frozen=True, slots=True)
class IkeSaClosed:
    sa_id: int
    connection: str
    cause: CloseCause
    reason: str  # the cause in words, with the detail (e.g. the error the peer answered)
    established: bool  # False: the SA failed before it was established
    # the error Notify that ended it, ours or the peer's (AUTHENTICATION_FAILED, …), if one did
    error: NotifyType | None = None


@dataclass(frozen=True, slots=True)
class IkeSaRedirected:
    """The gateway of IKE SA ``sa_id`` sends us to ``gateway`` (an IP address or an FQDN):
    in its IKE_SA_INIT response (``authenticated`` False: the SA is closed) or in an
    INFORMATIONAL request of the established SA (True: the SA lives until the new one is up)."""

    sa_id: int
    connection: str
    gateway: str
    redirected_from: str  # the gateway that redirected us (its address)
    authenticated: bool
    virtual_ips: tuple[IPv4Address | IPv6Address, ...] = ()  # ours on the old SA, to ask back on the new one


@dataclass(frozen=True, slots=True)
class ChildSaInstalled:
    """A new Child SA. With ``spec.outbound_active`` False only its inbound half is to be used
    yet (the responder of a rekey, make-before-break); :class:`ChildSaOutboundActivated` follows."""

    sa_id: int
    connection: str
    child: str
    child_id: int
    proposal: ChosenProposal
    spec: ChildSaSpec
    replaces: int | None = None  # child_id of the Child SA this one rekeys


@dataclass(frozen=True, slots=True)
class ChildSaOutboundActivated:
    """Send on this Child SA from now on (the peer has switched to it)."""

    sa_id: int
    connection: str
    child_id: int
    spi_out: bytes


@dataclass(frozen=True, slots=True)
class ChildSaRemoved:
    sa_id: int
    connection: str
    child: str
    child_id: int
    spi_in: bytes
    spi_out: bytes
    reason: str
    replaced_by: Replacement = Replacement.NONE


@dataclass(frozen=True, slots=True)
class ChildSaFailed:
    """A Child SA could not be set up (``child`` is empty when the responder found no child
    configuration for the request)."""

    sa_id: int
    connection: str
    child: str
    reason: str
    error: NotifyType | None = None  # the error Notify (TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN, …)


@dataclass(frozen=True, slots=True)
class VirtualIpAssigned:
    """The gateway gave us inner addresses and DNS settings (initiator side, RFC 7296 §2.19)."""

    sa_id: int
    connection: str
    addresses: tuple[IPv4Address | IPv6Address, ...]
    dns: tuple[IPv4Address | IPv6Address, ...]
    domains: tuple[str, ...]
    subnets: tuple[IPv4Network | IPv6Network, ...]


@dataclass(frozen=True, slots=True)
class ChildSaAddressesChanged:
    """The Child SA's ESP now goes between these endpoints (MOBIKE, RFC 4555), in UDP when ``encap``."""

    sa_id: int
    connection: str
    child_id: int
    spi_in: bytes
    local: Endpoint
    remote: Endpoint
    encap: bool


@dataclass(frozen=True, slots=True)
class SaProgress:
    """A step of bringing an IKE SA up, for people watching (``pyipsec up``)."""

    sa_id: int
    connection: str
    phase: str  # IKE_SA_INIT, IKE_AUTH, EAP
    detail: str


@dataclass(frozen=True, slots=True)
class LookupNeeded:
    """An exchange of IKE SA ``sa_id`` waits for ``lookup`` (I/O for the host: RADIUS, OCSP,
    CRLs); answer it with ``IkeEngine.answer(ticket, …)`` (:mod:`pyipsec.ike.lookups`)."""

    sa_id: int
    ticket: int
    lookup: Lookup


@dataclass(frozen=True, slots=True)
class NatKeepalive:
    """Send a NAT keepalive (the single octet 0xFF on the NAT-T port, RFC 3948 §2.3) now."""

    sa_id: int
    local: Endpoint
    remote: Endpoint


Event = (
    IkeSaEstablished
    | IkeKeysDerived
    | IkeSaClosed
    | ChildSaInstalled
    | ChildSaOutboundActivated
    | ChildSaRemoved
    | ChildSaFailed
    | VirtualIpAssigned
    | NatKeepalive
    | SaProgress
    | ChildSaAddressesChanged
    | LookupNeeded
    | IkeSaRedirected
)
