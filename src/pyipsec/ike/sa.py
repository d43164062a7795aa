"""``IkeSa`` and ``ChildSa``: what one IKE SA knows between messages — state, no I/O.

Tasks (``ike.tasks``) read and write these objects; the task manager (``ike.manager``) moves
their messages; the engine owns the tables. Every lifecycle change goes through
``apply(event)`` and the tables of ``ike.state``. Relations between SAs are data: a rekey's
``successor`` (Child SA) and the peer's pending rekey in a collision (``peer_rekey``), a
reauthentication's ``reauth_of`` / ``reauth_by`` (IKE SA ids, RFC 7296 §2.8.3).

What one call into the engine produced for the outside world collects in ``events``, which
the engine drains; closing an SA (:meth:`IkeSa.close`) reports its Child SAs and itself as
gone, with what replaced them. Sending a last notice to the peer first is the task manager's
business, not the SA's.

Reauthentication (make-before-break): the original initiator builds a whole new IKE SA to the
same peer; the new SA's ``reauth_of`` names the old one, the old SA's ``reauth_by`` the new one
while it is under way (the old SA is REAUTHENTICATING); the responder recognises a
reauthentication (same connection and peer identity, no INITIAL_CONTACT) and links the two
the same way. ``reauth_children`` are the Child SA names the new SA must recreate.

Logging: ``IkeSa.log`` prefixes every line with the connection, the SA's unique id, its SPIs
and the peer, so that a log line always says which SA it is about. The same facts ride on every
record as attributes (``sa``, ``sa_id``, ``peer``; :data:`LOG_FIELDS`), with an ``event`` name
on the lifecycle lines (``extra={"event": ...}``: established, closed, rekeyed, failed, …), for
structured logs (the daemon's ``log_format = "json"``). Keys and secrets never go into a log
line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyipsec.crypto.rand import RandomSource
from pyipsec.crypto.registry import REGISTRY, AeadSpec, CipherSpec, IntegSpec, KeInitiator, PrfSpec
from pyipsec.iana.ikev2 import HashAlgorithm, NotifyType
from pyipsec.iana.transforms import KeId
from pyipsec.ike.config import ChildConfig, ConnectionConfig, EngineConfig, Identity, PoolConfig
from pyipsec.ike.credentials import CredentialStore
from pyipsec.ike.events import (
    ChildSaAddressesChanged,
    ChildSaOutboundActivated,
    ChildSaRemoved,
    CloseCause,
    Event,
    IkeKeysDerived,
    IkeSaClosed,
    Replacement,
)
from pyipsec.ike.fragment import FragmentBudget
from pyipsec.ike.keymat import IkeKeys
from pyipsec.ike.pools import AddressPools, MemoryPools
from pyipsec.ike.proposal import ChosenProposal
from pyipsec.ike.state import (
    IKE_ACTIVE,
    ChildEvent,
    ChildSaState,
    IkeEvent,
    IkeSaState,
    child_next,
    ike_next,
)
from pyipsec.ike.task import Followups
from pyipsec.net.addr import Endpoint, IPAddress
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.ts import TrafficSelector

if TYPE_CHECKING:
    from pyipsec.ike.eap.base import EapPeer, EapServer

__all__ = ["LOG_FIELDS", "ChildSa", "EngineContext", "IkeSa", "SaLogAdapter"]

_log = logging.getLogger("pyipsec.ike")

#: Child SA states that carry traffic: installed, or installed and being rekeyed by us.
_LIVE = frozenset((ChildSaState.INSTALLED, ChildSaState.REKEYING))


@dataclass(slots=True)
class EngineContext:
    """What every SA of one engine shares: configuration, credentials, randomness, and the
    engine's services (set by the engine when it is built)."""

    config: EngineConfig
    creds: CredentialStore
    rng: RandomSource
    followups: Followups
    wall_clock: Callable[[], float] = field(default=lambda: 0.0)  # seconds since the epoch (X.509)
    pools: AddressPools = field(default_factory=MemoryPools)
    eap_server: Callable[[], EapServer] | None = None  # a fresh EAP server conversation per IKE SA
    next_sa_id: int = 1
    next_child_id: int = 1
    now: float = 0.0  # the time of the call being processed, set by the engine
    new_ike_spi: Callable[[], bytes] = field(default=lambda: b"")  # a fresh SPI unique in the engine
    sas: Callable[[], list[IkeSa]] = field(default=lambda: [])  # every IKE SA of the engine
    # the other SAs of an SA's connection and peer (``IkeSa.same_peer``), oldest first: the engine's
    # peer index, so that a new, rekeyed or closing SA finds its siblings without a scan
    peers: Callable[[IkeSa], list[IkeSa]] = field(default=lambda sa: [])
    # the engine's hook: this SA changed (state, a timer, an event, a message queued or sent), so
    # its deadline, output and events are looked at again when the call ends (see IkeSa.touch)
    touched: Callable[[IkeSa], None] = field(default=lambda sa: None)
    # IKE fragments held for reassembly by all SAs (RFC 7383; ike.fragment)
    fragments: FragmentBudget = field(default_factory=lambda: FragmentBudget(4 * 1024 * 1024))
    # MOBIKE (RFC 4555 §3.6): our usable local addresses as the daemon last reported them;
    # None until it does (then we announce no list at all rather than a wrong one)
    local_addresses: tuple[IPAddress, ...] | None = None
    # Redirect (RFC 5685, ike.redirect): the gateway a new IKE_SA_INIT from ``remote`` to
    # ``local`` is sent to instead, or None to serve it here (the daemon's redirect policy)
    redirect_init: Callable[[Endpoint, Endpoint], str | None] | None = None

    def new_sa_id(self) -> int:
        self.next_sa_id += 1
        return self.next_sa_id - 1

    def new_child_id(self) -> int:
        self.next_child_id += 1
        return self.next_child_id - 1


#: The record attributes an SA's log lines carry (module docstring): its connection name, unique
#: id, the peer's address and port, and what happened (only on lifecycle lines).
LOG_FIELDS = ("sa", "sa_id", "peer", "event")


class SaLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Puts ``prefix`` (which SA a line is about) in front of every line, and ``fields`` on
    every record (a call's own ``extra=`` adds to them)."""

    def __init__(self, logger: logging.Logger, prefix: str = "") -> None:
        super().__init__(logger, None)
        self.prefix = prefix
        self.fields: dict[str, object] = {}

    def process(self, msg: str, kwargs: MutableMapping[str, Any]) -> tuple[str, MutableMapping[str, Any]]:
        extra = kwargs.get("extra")
        kwargs["extra"] = {**self.fields, **extra} if extra else self.fields
        return f"{self.prefix} {msg}", kwargs


# What an IKE SA's deadline is computed from (``IkeEngine._sa_deadline``), and the relations that
# reauthentication follows: setting one of these marks the SA touched (``IkeSa.__setattr__``).
_IKE_WATCHED = frozenset(
    {
        "state",
        "initiator",
        "created_at",
        "rekey_at",
        "dpd_at",
        "reauth_at",
        "redundant_at",
        "last_sent",
        "nat_local",
        "reauth_of",
        "reauth_by",
    }
)
_CHILD_WATCHED = frozenset({"state", "rekey_at", "expire_at", "owner"})


class ChildSa:
    """One negotiated (or negotiating) Child SA pair: our inbound SPI and the peer's.

    Its lifetimes and state are part of its IKE SA's deadline: setting them touches the owner."""

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name in _CHILD_WATCHED:
            owner = self.__dict__.get("owner")
            if owner is not None:
                owner.touch()

    def __init__(self, *, child_id: int, config: ChildConfig, spi_in: bytes) -> None:
        self.child_id = child_id
        self.config = config
        self.state = ChildSaState.CREATING
        self.spi_in = spi_in
        self.spi_out = b""
        self.proposal: ChosenProposal | None = None
        self.local_ts: tuple[TrafficSelector, ...] = ()
        self.remote_ts: tuple[TrafficSelector, ...] = ()
        self.mode = config.mode
        self.installed_at = 0.0
        self.rekey_at: float | None = None  # soft lifetime (with jitter): start a rekey
        self.expire_at: float | None = None  # hard lifetime: delete
        self.successor: ChildSa | None = None  # the Child SA that replaces this one (rekey)
        # the peer's rekey of this Child SA while ours is in flight: (Ni, Nr, its new Child SA)
        self.peer_rekey: tuple[bytes, bytes, ChildSa] | None = None
        self.outbound_active = True  # False: only the inbound half is used yet (make-before-break)
        self.owner: IkeSa | None = None  # the IKE SA whose ``children`` holds this one

    @property
    def name(self) -> str:
        return self.config.name

    def apply(self, event: ChildEvent) -> None:
        self.state = child_next(self.state, event)


class IkeSa:
    """One IKE SA, from its first message to its deletion.

    The engine does per call only the work of the SAs that call touched (DESIGN.md §1): an SA
    tells it with :meth:`touch`, which runs whenever the SA changes state or a timer
    (``__setattr__`` on the watched attributes), emits an event (:meth:`emit`, the only way
    to add one), or its exchanger queues or sends a message. Code that changes what decides an
    SA's deadline must go through one of these."""

    # attributes in slots, not a __dict__: thousands of half-open SAs each save about 1 KB
    __slots__ = (
        "__weakref__",  # (tests check that nothing keeps a closed SA alive)
        "announced_addresses",
        "arrived",
        "auth_complete",
        "auth_first_request",
        "candidates",
        "children",
        "close_reason",
        "connection",
        "cookie",
        "cp_failed",
        "created_at",
        "ctx",
        "dpd_at",
        "eap_identity",
        "eap_messages",
        "eap_only",
        "eap_peer",
        "eap_server",
        "encr",
        "established_at",
        "events",
        "first_child",
        "framed_addresses",
        "init_request",
        "init_response",
        "initial_contact",
        "initiator",
        "integ",
        "ke",
        "ke_group",
        "ke_tried",
        "keys",
        "last_sent",
        "leases",
        "local",
        "local_id",
        "log",
        "nat_local",
        "nat_remote",
        "nonce_i",
        "nonce_r",
        "original_initiator",
        "our_id_payload",
        "peer_addresses",
        "peer_addresses_known",
        "peer_fragmentation",
        "peer_hashes",
        "peer_id_payload",
        "peer_mobike",
        "peer_multiple_auth",
        "peer_redirect",
        "peer_rekey",
        "peer_round",
        "peer_rounds_done",
        "prf",
        "proposal",
        "reauth_at",
        "reauth_by",
        "reauth_children",
        "reauth_of",
        "redirected_from",
        "redundant_at",
        "rekey_at",
        "remote",
        "remote_id",
        "sa_id",
        "shared_secret",
        "spi_i",
        "spi_r",
        "state",
        "verified_remote",
        "vips_asked",
        "vips_requested",
        "virtual_ips",
    )

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name in _IKE_WATCHED:
            self.ctx.touched(self)

    def touch(self) -> None:
        """This SA changed: the engine recomputes its deadline and collects its output."""
        self.ctx.touched(self)

    def emit(self, event: Event) -> None:
        """Report ``event`` to the outside world (drained by the engine at the end of the call)."""
        self.events.append(event)
        self.ctx.touched(self)

    def __init__(
        self,
        ctx: EngineContext,
        *,
        initiator: bool,
        local: Endpoint,
        remote: Endpoint,
        spi_i: bytes,
        spi_r: bytes,
        connection: ConnectionConfig | None,
        candidates: tuple[ConnectionConfig, ...],
        now: float,
    ) -> None:
        self.ctx = ctx
        self.sa_id = ctx.new_sa_id()
        self.initiator = initiator  # our role in this SA's messages and keys (RFC 7296 §2.18)
        # the role in the connection: who set it up with IKE_SA_INIT (the client of a road
        # warrior). A rekey started by the responder swaps ``initiator`` in the new SA but keeps
        # this (like strongSwan's COND_ORIGINAL_INITIATOR): it decides who reauthenticates, who
        # moves the SA with MOBIKE, who follows the other's NAT mapping, who holds virtual IPs.
        self.original_initiator = initiator
        self.local = local
        self.remote = remote
        self.spi_i = spi_i
        self.spi_r = spi_r
        self.connection = connection
        self.candidates = candidates  # responder: connections that fit the addresses
        self.state = IkeSaState.CREATED
        self.created_at = now
        self.established_at: float | None = None

        # IKE_SA_INIT
        self.proposal: ChosenProposal | None = None
        self.ke_group = KeId.NONE
        self.ke: KeInitiator | None = None
        self.ke_tried: tuple[KeId, ...] = ()
        self.nonce_i = b""
        self.nonce_r = b""
        self.init_request = b""
        self.init_response = b""
        self.cookie = b""
        self.shared_secret = b""
        self.keys: IkeKeys | None = None
        self.prf: PrfSpec | None = None
        self.encr: CipherSpec | AeadSpec | None = None
        self.integ: IntegSpec | None = None
        self.nat_local = False  # we are behind a NAT
        self.nat_remote = False  # the peer is behind a NAT (or fakes one)
        self.peer_fragmentation = False
        self.peer_hashes: tuple[HashAlgorithm, ...] = ()

        # IKE_AUTH
        self.local_id = Identity.any()
        self.remote_id = Identity.any()
        self.children: dict[int, ChildSa] = {}
        self.first_child: ChildConfig | None = None
        self.initial_contact = False  # the peer said it has no other SA with us (RFC 7296 §2.4)

        # timers, as absolute times (None: not scheduled)
        self.rekey_at: float | None = None  # IKE SA soft lifetime
        self.dpd_at: float | None = None  # next liveness check when the peer has been quiet
        # initiator: start a reauthentication; responder: delete the SA if not reauthenticated by then
        self.reauth_at: float | None = None
        self.redundant_at: float | None = None  # REDUNDANT: delete it ourselves if the peer does not
        self.last_sent = now  # for NAT keepalives: anything we send keeps the mapping alive

        # relations to other IKE SAs (by id or object; see the module docstring)
        self.reauth_of: int | None = None  # this SA reauthenticates (replaces) that one
        self.reauth_by: int | None = None  # the SA reauthenticating this one is under way
        self.reauth_children: tuple[str, ...] = ()  # Child SAs the new SA must recreate
        self.peer_rekey: tuple[bytes, bytes, IkeSa] | None = None  # (Ni, Nr, new SA): collision

        self.arrived: tuple[Endpoint, Endpoint] | None = None  # (local, remote) of the message in hand
        self.peer_mobike = False
        # MOBIKE address lists (RFC 4555 §3.6): the peer's ADDITIONAL_IP*_ADDRESS list (its
        # current address not included); whether it sent a list (or NO_ADDITIONAL_ADDRESSES) at all;
        # the list we last announced; peer addresses known to reach it (return routability, §3.5)
        self.peer_addresses: tuple[IPAddress, ...] = ()
        self.peer_addresses_known = False
        self.announced_addresses: tuple[IPAddress, ...] | None = None
        self.verified_remote: tuple[IPAddress, ...] = (remote.ip,)

        # IKE_AUTH in several rounds (EAP, RFC 7296 §2.16; several authentications, RFC 4739)
        self.auth_first_request: Message | None = None  # responder: carries the CP and Child SA requests
        self.auth_complete = False  # the peer is authenticated (responder: in this request)
        self.peer_multiple_auth = False  # initiator: the responder announced RFC 4739
        self.peer_round = 0  # responder: the peer's authentication round under way (0-based)
        self.peer_rounds_done = 0  # responder: the peer's rounds completed
        self.eap_only = False  # responder: EAP authenticates us too (RFC 5998), no AUTH of ours
        self.framed_addresses: tuple[IPAddress, ...] = ()  # responder: addresses RADIUS assigned
        self.eap_server: EapServer | None = None
        self.eap_peer: EapPeer | None = None
        self.eap_messages = 0  # EAP messages of the peer so far (both roles; capped, ike_auth)
        self.eap_identity = ""
        self.our_id_payload: Identification | None = None  # responder: IDr as sent (for the MSK AUTH)
        self.peer_id_payload: Identification | None = None  # responder: IDi as received

        # Configuration payload (RFC 7296 §2.19)
        self.vips_requested: tuple[int, ...] = ()  # initiator: IP versions asked for
        self.vips_asked: tuple[IPAddress, ...] = ()  # initiator: addresses to ask back (reauth)
        self.virtual_ips: tuple[IPAddress, ...] = ()  # initiator: assigned to us; responder: to the peer
        self.leases: list[tuple[PoolConfig, IPAddress]] = []  # responder: to release when the SA goes
        self.cp_failed = ""  # responder: why the peer got no virtual IP, if it asked for one in vain

        # Redirect (RFC 5685, ike.redirect)
        self.peer_redirect = False  # responder: the peer announced that it follows redirects
        self.redirected_from = ""  # initiator: the gateway that sent us here (REDIRECTED_FROM)

        self.events: list[Event] = []
        self.close_reason = ""
        self.log = SaLogAdapter(_log)
        self.update_log_prefix()

    # -- identity and logging -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.connection.name if self.connection else "?"

    @property
    def our_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    @property
    def was_established(self) -> bool:
        return self.established_at is not None

    def update_log_prefix(self) -> None:
        self.log.prefix = f"{self.name}[{self.sa_id}] {self.spi_i.hex()}_i {self.spi_r.hex()}_r {self.remote}"
        self.log.fields = {"sa": self.name, "sa_id": self.sa_id, "peer": str(self.remote)}

    def set_connection(self, conn: ConnectionConfig) -> None:
        self.connection = conn
        self.update_log_prefix()

    def set_spi_r(self, spi_r: bytes) -> None:
        self.spi_r = spi_r
        self.update_log_prefix()

    # -- state --------------------------------------------------------------------------------

    def apply(self, event: IkeEvent) -> None:
        """Move the lifecycle on (``ike.state``); an illegal move raises ``IllegalTransition``."""
        self.state = ike_next(self.state, event)

    @property
    def active(self) -> bool:
        """Established and carrying its Child SAs (also while rekeying or reauthenticating)."""
        return self.state in IKE_ACTIVE

    @property
    def nat_detected(self) -> bool:
        return self.nat_local or self.nat_remote

    @property
    def use_encap(self) -> bool:
        """UDP encapsulation for ESP and IKE on the NAT-T port (RFC 3948, RFC 7296 §2.23)."""
        return self.nat_detected

    def float_to_nat_t(self) -> None:
        """Move IKE to the NAT-T port (RFC 7296 §2.23; always with MOBIKE, RFC 4555 §3.3)."""
        port = self.ctx.config.nat_t_port
        if self.local.port != port:
            self.local = self.local.with_port(port)
        if self.original_initiator and self.remote.port != port:
            self.remote = self.remote.with_port(port)
            self.update_log_prefix()

    def verify_remote(self, ip: IPAddress) -> None:
        """MOBIKE: ``ip`` is known to reach the peer (return routability, RFC 4555 §3.5)."""
        if ip not in self.verified_remote:
            self.verified_remote = (*self.verified_remote, ip)

    def new_spi_in(self) -> bytes:
        """A fresh ESP SPI for one of our inbound Child SAs (never 0..255, RFC 4303 §2.1)."""
        used = {c.spi_in for c in self.children.values()}
        while True:
            spi = self.ctx.rng.random_bytes(4)
            if int.from_bytes(spi, "big") > 255 and spi not in used:
                return spi

    def child_by_spi_out(self, spi: bytes) -> ChildSa | None:
        return next((c for c in self.children.values() if c.spi_out == spi), None)

    def schedule_lifetimes(self) -> None:
        """IKE rekey (with jitter, like the Child SAs) and the first DPD, from now."""
        conn, now = self.connection, self.ctx.now
        if conn is None:
            return
        if conn.rekey_time > 0:
            jitter = conn.rekey_time / 10 * int.from_bytes(self.ctx.rng.random_bytes(2), "big") / 65535
            self.rekey_at = now + conn.rekey_time - jitter
        if conn.reauth_time > 0 and self.reauth_at is None:  # (a rekey keeps it)
            if self.original_initiator:
                self.reauth_soon(conn.reauth_time)
            else:  # RFC 4478 §3: the peer was told (AUTH_LIFETIME); a grace period, then we delete
                self.reauth_at = now + conn.reauth_time + max(30.0, conn.reauth_time / 10)
        self.heard(now)

    def reauth_soon(self, within: float) -> None:
        """Reauthenticate before ``within`` seconds from now are over: at their end less up to
        a tenth (jitter, like the rekey times), never later than already scheduled."""
        jitter = within / 10 * int.from_bytes(self.ctx.rng.random_bytes(2), "big") / 65535
        at = self.ctx.now + within - jitter
        if self.reauth_at is None or at < self.reauth_at:
            self.reauth_at = at

    # what a rekeyed IKE SA takes over from the one it replaces (RFC 7296 §2.18: only keys, SPIs
    # and nonces are new); an attribute added to the peer's or the connection's state belongs here
    _INHERITED = (
        "nat_local",
        "nat_remote",
        "peer_fragmentation",
        "peer_hashes",
        "peer_mobike",
        "peer_redirect",
        "local_id",
        "remote_id",
        "virtual_ips",
        "vips_requested",
        "eap_identity",
        "reauth_at",  # reauthentication is due by the authentication's age, a rekey keeps it
        "peer_addresses",  # MOBIKE: what the peer told us, and what we told it (RFC 4555 §3.6)
        "peer_addresses_known",
        "announced_addresses",
        "verified_remote",
        "original_initiator",  # the client role survives a rekey the gateway started
    )

    def same_peer(self, other: IkeSa) -> bool:
        """Whether ``other`` is another SA of this connection with the same peer: the same IKE
        identity and, behind it, the same EAP user (many clients may share one IKE identity)."""
        return (
            other is not self
            and other.name == self.name
            and other.remote_id == self.remote_id
            and other.eap_identity == self.eap_identity
        )

    def inherit(self, old: IkeSa) -> None:
        """Take over the peer's and the connection's state from the SA this one rekeys."""
        for attr in self._INHERITED:
            setattr(self, attr, getattr(old, attr))

    def heard(self, now: float) -> None:
        """An authenticated message arrived: the peer is alive; push DPD back."""
        conn = self.connection
        if conn is not None and conn.dpd_delay > 0 and self.state in IKE_ACTIVE:
            self.dpd_at = now + conn.dpd_delay

    def set_keys(self, keys: IkeKeys) -> None:
        """Key the SA; with ``export_ike_keys`` the host hears of the keys (``IkeKeysDerived``)."""
        self.keys = keys
        if self.ctx.config.export_ike_keys:
            assert self.proposal is not None
            self.emit(IkeKeysDerived(self.sa_id, self.name, self.spi_i, self.spi_r, self.proposal, keys))

    def setup_crypto(self) -> None:
        """Look up the transforms of the chosen IKE proposal."""
        assert self.proposal is not None and self.proposal.prf is not None and self.proposal.encr is not None
        self.prf = REGISTRY.prf(self.proposal.prf)
        ident, bits = self.proposal.encr
        self.encr = REGISTRY.encr(ident, bits)
        self.integ = REGISTRY.integ(self.proposal.integ) if self.proposal.integ else None

    def addresses_changed(self) -> None:
        """Report the SA's (new) endpoints for every Child SA in the data plane (MOBIKE, NAT)."""
        self.update_log_prefix()  # the prefix names the peer's address
        for child in self.children.values():
            if child.state in (ChildSaState.INSTALLED, ChildSaState.REKEYING, ChildSaState.REKEYED):
                self.emit(
                    ChildSaAddressesChanged(
                        self.sa_id,
                        self.name,
                        child.child_id,
                        child.spi_in,
                        self.local,
                        self.remote,
                        self.use_encap,
                    )
                )

    def activate(self, child: ChildSa) -> None:
        """Switch outbound traffic to ``child`` (make-before-break, RFC 7296 §2.8). A child we
        are rekeying ourselves already is live too: it carries the traffic until its own
        successor takes over."""
        if child.outbound_active or child.state not in _LIVE:
            return
        child.outbound_active = True
        self.emit(ChildSaOutboundActivated(self.sa_id, self.name, child.child_id, child.spi_out))

    # -- ending ---------------------------------------------------------------------------------

    def replacement_for(self, child: ChildSa) -> Replacement:
        """What takes over from ``child`` as it goes: another installed Child SA of the same name
        on this IKE SA (a rekey) or on a live IKE SA of the same connection and peer (a
        reauthentication, whose new IKE SA is up before the old one goes)."""

        def heir(sa: IkeSa) -> bool:
            return sa.active and any(
                c is not child and c.name == child.name and c.state in _LIVE for c in sa.children.values()
            )

        if heir(self):
            return Replacement.REKEY
        if any(self.same_peer(other) and heir(other) for other in self.ctx.peers(self)):
            return Replacement.REAUTH
        return Replacement.NONE

    def _removed(self, child: ChildSa, reason: str) -> None:
        """Report ``child`` gone from the data plane, with what replaced it."""
        replaced_by = self.replacement_for(child)
        self.emit(
            ChildSaRemoved(
                self.sa_id,
                self.name,
                child.name,
                child.child_id,
                child.spi_in,
                child.spi_out,
                reason,
                replaced_by,
            )
        )

    def remove_child(self, child: ChildSa, reason: str) -> None:
        """A Child SA is gone (deleted by either side): report it, forget it."""
        if child.state is not ChildSaState.CLOSED:
            self._removed(child, reason)
            child.apply(ChildEvent.CLOSE)
        self.children.pop(child.child_id, None)
        if child.owner is not None:  # it may have moved to a new IKE SA (rekey) meanwhile
            child.owner.children.pop(child.child_id, None)
        self.log.info(
            "Child SA %s{%d} deleted: %s",
            child.name,
            child.child_id,
            reason,
            extra={"event": "child_deleted", "child": child.name, "child_id": child.child_id},
        )

    def close(self, cause: CloseCause, reason: str, error: NotifyType | None = None) -> None:
        """The SA is gone now: report its Child SAs and itself, give its leases back;
        ``error`` is the error Notify that ended it, if one did."""
        if self.state is IkeSaState.CLOSED:
            return
        self.close_reason = reason
        for child in self.children.values():
            if child.state is ChildSaState.CLOSED:
                continue
            if child.state is not ChildSaState.CREATING:  # it is in the data plane
                self._removed(child, reason)
            child.apply(ChildEvent.CLOSE)
        self.apply(IkeEvent.CLOSE)
        for pool, addr in self.leases:
            self.ctx.pools.release(pool, addr)
        self.leases.clear()
        self.emit(IkeSaClosed(self.sa_id, self.name, cause, reason, self.was_established, error))
        # an unauthenticated peer must not be able to write the log at will (a flood's SAs)
        level = logging.DEBUG if cause is CloseCause.ABANDONED else logging.INFO
        self.log.log(level, "IKE SA closed: %s", reason, extra={"event": "ike_closed", "cause": cause.value})
