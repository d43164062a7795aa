"""``IkeEngine``: the sans-I/O IKEv2 core (DESIGN.md §1, §3).

Datagrams, timer ticks, data-plane signals and API calls go in, each with the monotonic time
``now``; datagrams to send and events come out as an :class:`Output`. The engine decides
*which* IKE SA does *what* and *when*; the task manager (``ike.manager``) runs the exchanges,
the tasks (``ike.tasks``) give them meaning, the SAs (``ike.sa``) hold the state.

Where a datagram goes: :meth:`IkeEngine.receive_datagram` decodes the header and routes it by
SPI — a request from an original initiator by our responder SPI (IKE_SA_INIT requests, which
carry SPIr = 0, by the initiator's SPI and address, so retransmissions find their half-open
SA), a message to us as original initiator by our initiator SPI — to
``TaskManager.receive``, which drops, answers from its cache, or hands it to the tasks.
Messages that do not decode, or that arrive for an unknown SPI, are dropped and counted
(there is nobody to answer, RFC 7296 §2.21).

New IKE_SA_INIT requests create responder SAs, unless more than ``cookie_threshold`` are
half-open (or ``cookie_threshold_ip`` from the request's source address): then a stateless
COOKIE is demanded first (§2.6). A request with a valid cookie is still dropped (counted in
:class:`EngineStats`, no state, no answer) when its source address has ``block_threshold``
half-open SAs (strongSwan's ``block_threshold``). When ``init_limit_half_open`` SAs are
half-open in all, the oldest half-open SA that has not begun IKE_AUTH makes room for it
(counted as evicted; RFC 8019 §4: shorter retention under attack); only when there is none is
the request dropped. Without eviction, an attacker who echoes cookies from a few hundred
addresses fills the cap for ``half_open_timeout`` and locks legitimate clients out; with it,
a half-open SA lives as long as the flood takes to renew the cap's worth (2 s at 500/s with
the default 1000), and a real client sends its IKE_AUTH within one round trip. Half-open SAs
expire after ``half_open_timeout``. The engine's timers (one deadline: :meth:`next_deadline`) start
Child SA rekeys and deletes at their soft and hard lifetimes, IKE rekeys, reauthentication
(``tasks.ike_reauth``), DPD, NAT keepalives, and retransmissions (the task manager's).

Work per call does not grow with the number of SAs (a cookie-answering flood makes thousands;
a gateway holds thousands of established ones). An SA reports every change that matters
outside it (a new state, a timer, an event, a message queued or sent) with ``IkeSa.touch``
(``ike.sa``), which lands in the engine's *touched* set; at the end of each call
(:meth:`_drain`) only the touched SAs are looked at: their datagrams and events collected,
their deadline recomputed into a heap (``ike.deadlines``), closed ones forgotten by their own
table keys. :meth:`next_deadline` is the heap's top, :meth:`handle_timer` visits only the SAs
whose deadline has come (and re-checks their real timers). The number of half-open SAs, in
all and per source address, is kept up to date by the same hook, and so is ``ike.saindex``: the
SAs by peer (an SA's siblings for reauthentication, INITIAL_CONTACT, a moving virtual IP), by
connection (:meth:`has_sas`) and the Child SAs by inbound SPI (:meth:`handle_signal`). Once an SA
is established its IKE_SA_INIT messages (signed in IKE_AUTH) are dropped. ``EngineStats`` counts the
deadlines computed and the SAs visited by timers, so tests can check the work per event.

The runtime needs nothing but this module's API: :meth:`initiate` returns the new SA's id,
:meth:`list_sas` describes every SA (``ike.info``), :meth:`handle_signal` takes the data
plane's lifetime signals, and the events say why an SA went (``CloseCause``) and what
replaced a Child SA.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.errors import DecodeError, UsageError
from pyipsec.iana.ikev2 import ExchangeType, NotifyType
from pyipsec.ike.config import ConnectionConfig, EngineConfig
from pyipsec.ike.cookies import CookieJar
from pyipsec.ike.credentials import CredentialStore
from pyipsec.ike.deadlines import DeadlineQueue
from pyipsec.ike.events import ChildSaSignal, CloseCause, Event, NatKeepalive, SignalKind
from pyipsec.ike.fragment import FragmentBudget
from pyipsec.ike.info import IkeSaInfo, describe
from pyipsec.ike.lookups import Answer
from pyipsec.ike.manager import TaskManager
from pyipsec.ike.pools import AddressPools, MemoryPools
from pyipsec.ike.sa import ChildSa, EngineContext, IkeSa
from pyipsec.ike.saindex import SaIndex
from pyipsec.ike.state import ChildSaState, IkeEvent, IkeSaState
from pyipsec.ike.task import Step
from pyipsec.ike.tasks import ike_reauth
from pyipsec.ike.tasks.ike_mobike import wanted_addresses
from pyipsec.ike.tasks.ike_rekey import REDUNDANT
from pyipsec.net.addr import Datagram, Endpoint, IPAddress
from pyipsec.wire.message import Message, decode_message, encode_message
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.eap.base import EapServer

__all__ = ["EngineStats", "IkeEngine", "Output"]

_log = logging.getLogger("pyipsec.ike")

_ZERO_SPI = bytes(8)
#: At the half-open cap, how many of the oldest half-open SAs are looked at for one to evict
#: (those in IKE_AUTH, e.g. waiting for RADIUS, are kept).
EVICT_SCAN = 16
_HEADER_LEN, _NOTIFY_LEN = 28, 8  # IKE header; Notify payload without data


class Output(NamedTuple):
    datagrams: tuple[Datagram, ...]
    events: tuple[Event, ...]


class EngineStats:
    def __init__(self) -> None:
        self.malformed = 0
        self.unknown_spi = 0
        self.cookies_sent = 0
        self.half_open_expired = 0
        self.init_blocked = 0  # IKE_SA_INITs dropped: their source has block_threshold half-open SAs
        self.init_over_limit = 0  # IKE_SA_INITs dropped: init_limit_half_open SAs are half-open
        self.half_open_evicted = 0  # half-open SAs closed to make room for a new IKE_SA_INIT
        # work counters (for tests of the work per event, not for operators)
        self.deadlines_computed = 0  # SAs whose deadline was (re)computed
        self.timer_visits = 0  # SAs visited by handle_timer

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class IkeEngine:
    def __init__(
        self,
        config: EngineConfig,
        creds: CredentialStore,
        *,
        rng: RandomSource = OS_RANDOM,
        wall_clock: Callable[[], float] = time.time,
        pools: AddressPools | None = None,
        eap_server: Callable[[], EapServer] | None = None,
    ) -> None:
        self.tasks = TaskManager(register=self._register)
        self.ctx = EngineContext(
            config=config,
            creds=creds,
            rng=rng,
            followups=self.tasks,
            wall_clock=wall_clock,
            pools=pools or MemoryPools(),
            eap_server=eap_server,
            new_ike_spi=self._new_spi,
            sas=self.sas,
            peers=self.peers,
            touched=self._touched,
            fragments=FragmentBudget(config.fragment_budget),
        )
        self._sas: dict[bytes, IkeSa] = {}  # by our SPI
        self._by_id: dict[int, IkeSa] = {}  # every registered SA
        self._keys: dict[int, tuple[bytes, ...]] = {}  # SA id → its keys in ``_sas``
        self._half_open: dict[tuple[bytes, Endpoint], IkeSa] = {}  # IKE_SA_INIT (SPIi, source) → SA
        self._init_key: dict[int, tuple[bytes, Endpoint]] = {}  # SA id → its key in ``_half_open``
        self._half_open_src: dict[int, IPAddress] = {}  # half-open responder SAs → source address
        self._half_open_per_src: dict[IPAddress, int] = {}
        self._dirty: dict[int, IkeSa] = {}  # touched since the last drain
        # by peer, by connection, Child SAs by inbound SPI: kept exact by the touch hook
        self._index = SaIndex()
        self._timers = DeadlineQueue()  # SA id → its next deadline
        self._cookies = CookieJar(rng, clock=lambda: self.ctx.now)
        self.stats = EngineStats()
        self._out: list[Datagram] = []
        self._blocked_logged = -1.0  # when the last "blocked" line was logged (rate limit)

    # -- queries --------------------------------------------------------------------------------

    @property
    def config(self) -> EngineConfig:
        return self.ctx.config

    def sas(self) -> list[IkeSa]:
        """Every IKE SA, oldest first (the objects themselves: for tests and the engine's own use;
        the daemon reads :meth:`list_sas`)."""
        return sorted(self._by_id.values(), key=lambda s: s.sa_id)

    def sa(self, sa_id: int) -> IkeSa | None:
        return self._by_id.get(sa_id)

    @property
    def fragments(self) -> FragmentBudget:
        """IKE fragments held for reassembly by all SAs: bytes used, the limit, drops."""
        return self.ctx.fragments

    @property
    def sa_count(self) -> int:
        return len(self._by_id)

    @property
    def half_open(self) -> int:
        """Responder SAs between the first IKE_SA_INIT and the end of IKE_AUTH."""
        return len(self._half_open_src)

    def half_open_from(self, ip: IPAddress) -> int:
        return self._half_open_per_src.get(ip, 0)

    def peers(self, sa: IkeSa) -> list[IkeSa]:
        """The other SAs of ``sa``'s connection with the same peer (``IkeSa.same_peer``), oldest
        first; from the peer index, without looking at the others."""
        return self._index.peers(sa)

    def has_sas(self, connection: str, *, original_initiator: bool | None = None) -> bool:
        """Whether ``connection`` has any IKE SA (as original initiator or not, if given): O(1),
        for the runtime's "was that the last one?" on every closed SA."""
        return self._index.has(connection, original_initiator)

    def served(self) -> int:
        """Responder IKE SAs past IKE_AUTH (up, rekeying or closing): a gateway's load as a
        redirect policy compares it, from the SA index, without listing the SAs."""
        return self._index.count(original_initiator=False) - self.half_open

    def list_sas(self, connection: str | None = None) -> list[IkeSaInfo]:
        """A snapshot of every IKE SA (of ``connection``) and its Child SAs, like swanctl --list-sas."""
        return [describe(sa) for sa in self.sas() if connection is None or sa.name == connection]

    def next_deadline(self) -> float | None:
        self._refresh_deadlines()
        return self._timers.peek()

    def _refresh_deadlines(self) -> None:
        """Deadlines of SAs touched outside a call (a test setting a timer): recompute them,
        leaving the SAs touched for the next drain."""
        for sa in self._dirty.values():
            if self._by_id.get(sa.sa_id) is sa and sa.state is not IkeSaState.CLOSED:
                self._timers.set(sa.sa_id, self._sa_deadline(sa))

    def _sa_deadline(self, sa: IkeSa) -> float | None:
        self.stats.deadlines_computed += 1
        times = [self.tasks.deadline(sa)]
        if not sa.initiator and sa.state is IkeSaState.CONNECTING:
            times.append(sa.created_at + self.config.half_open_timeout)
        if sa.state is IkeSaState.REDUNDANT:
            times.append(sa.redundant_at)
        if sa.active:
            idle = sa.state is IkeSaState.ESTABLISHED  # (a rekey or reauthentication defers the other)
            times += [
                sa.rekey_at if idle else None,
                sa.reauth_at if idle else None,
                sa.dpd_at,
                self._keepalive_at(sa),
            ]
            for c in sa.children.values():
                if c.state is ChildSaState.INSTALLED:
                    times += [c.expire_at, c.rekey_at]
                elif c.state is ChildSaState.REKEYING:
                    times.append(c.expire_at)
        return min((t for t in times if t is not None), default=None)

    # -- API: starting and ending -----------------------------------------------------------------

    def reconfigure(
        self,
        config: EngineConfig,
        *,
        creds: CredentialStore | None = None,
        pools: AddressPools | None = None,
        eap_server: Callable[[], EapServer] | None = None,
    ) -> None:
        """New configuration for new SAs; existing SAs keep theirs (but the engine's timeouts
        and keepalive interval apply to all: every deadline is recomputed, O(n) once). A reload
        (``daemon.reload``) also gives new ``creds``, ``pools`` and an ``eap_server``: the
        authentications and leases that start from now on use them."""
        self.ctx.config = config
        if creds is not None:
            self.ctx.creds = creds
        if pools is not None:
            self.ctx.pools = pools
        if eap_server is not None:
            self.ctx.eap_server = eap_server
        self.ctx.fragments.limit = config.fragment_budget
        for sa in self._by_id.values():
            self._timers.set(sa.sa_id, self._sa_deadline(sa))

    def initiate(
        self,
        connection: str,
        now: float,
        *,
        local: Endpoint | None = None,
        remote: Endpoint | None = None,
        redirected_from: str = "",
        vips: tuple[IPAddress, ...] = (),
    ) -> tuple[int, Output]:
        """Start an IKE SA for ``connection`` (with its first child, if it has children); returns
        the new SA's id and what to send. ``redirected_from``: the gateway that redirected us
        here (RFC 5685); ``vips``: virtual IPs to ask back (a redirect, a failover)."""
        self.ctx.now = now
        conn = self.config.connections.get(connection)
        if conn is None:
            raise UsageError(f"no connection named {connection!r}")
        local = local or Endpoint.parse(
            _first_concrete(conn.local_addrs, "local_addrs", conn), conn.local_port
        )
        remote = remote or Endpoint.parse(
            _first_concrete(conn.remote_addrs, "remote_addrs", conn), conn.remote_port
        )
        sa = self._new_initiator(conn, local, remote)
        sa.redirected_from = redirected_from
        sa.vips_asked = vips
        sa.log.info("initiating IKE SA to %s", remote)
        self._guarded(sa, lambda: self.tasks.connect(sa, conn.children[:1]))
        return sa.sa_id, self._drain()

    def _new_initiator(self, conn: ConnectionConfig, local: Endpoint, remote: Endpoint) -> IkeSa:
        """A new IKE SA as original initiator, registered, CONNECTING."""
        sa = IkeSa(
            self.ctx,
            initiator=True,
            local=local,
            remote=remote,
            spi_i=self._new_spi(),
            spi_r=_ZERO_SPI,
            connection=conn,
            candidates=(conn,),
            now=self.ctx.now,
        )
        sa.apply(IkeEvent.CONNECT)
        self._add(sa, sa.spi_i)
        return sa

    def reauthenticate(self, sa_id: int, now: float) -> Output:
        """Reauthenticate the IKE SA now: a new IKE SA replaces it, make-before-break."""
        self.ctx.now = now
        sa = self._active(sa_id)
        if not sa.original_initiator:
            raise UsageError(f"IKE SA #{sa_id}: only the original initiator reauthenticates")
        if sa.state is not IkeSaState.ESTABLISHED:
            raise UsageError(f"IKE SA #{sa_id} is {sa.state.name} (being replaced already)")
        self._reauth(sa)
        return self._drain()

    def _reauth(self, old: IkeSa) -> None:
        conn = old.connection
        assert conn is not None
        configs, local, remote = ike_reauth.plan(old)
        new = self._new_initiator(conn, local, remote)
        ike_reauth.link(old, new, configs)
        new.log.info("initiating IKE SA to %s to reauthenticate #%d", remote, old.sa_id)
        self._guarded(new, lambda: self.tasks.connect(new, configs, then=Step(ike_reauth.complete)))

    def initiate_child(self, sa_id: int, child: str, now: float) -> Output:
        """A further Child SA on an established IKE SA (CREATE_CHILD_SA)."""
        self.ctx.now = now
        sa = self._active(sa_id)
        assert sa.connection is not None
        cfg = sa.connection.child(child)
        if cfg is None:
            raise UsageError(f"connection {sa.name!r} has no child {child!r}")
        self._guarded(sa, lambda: self.tasks.create_child(sa, cfg))
        return self._drain()

    def terminate(self, sa_id: int, now: float) -> Output:
        """Delete an IKE SA (and its children) with an INFORMATIONAL exchange."""
        self.ctx.now = now
        sa = self.sa(sa_id)
        if sa is None:
            raise UsageError(f"no IKE SA #{sa_id}")
        if sa.active:
            self._guarded(sa, lambda: self.tasks.delete_ike(sa, CloseCause.LOCAL, "deleted locally"))
        elif sa.state is not IkeSaState.DELETING:
            self.tasks.close(sa, CloseCause.LOCAL, "deleted locally before it was established")
        return self._drain()

    def terminate_child(self, sa_id: int, child_id: int, now: float) -> Output:
        self.ctx.now = now
        sa = self._active(sa_id)
        child = self._installed(sa, child_id)
        self._guarded(sa, lambda: self.tasks.delete_child(sa, child, "deleted locally", successors=True))
        return self._drain()

    def redirect(self, sa_id: int, gateway: str, now: float) -> Output:
        """Send the client of an established IKE SA to ``gateway`` (RFC 5685 §5). Only a
        client that announced redirect support gets it (UsageError otherwise)."""
        self.ctx.now = now
        sa = self._active(sa_id)
        if sa.original_initiator or not sa.peer_redirect:
            raise UsageError(f"IKE SA #{sa_id}: the peer did not announce REDIRECT_SUPPORTED")
        self._guarded(sa, lambda: self.tasks.redirect(sa, gateway))
        return self._drain()

    def check_liveness(self, sa_id: int, now: float) -> Output:
        """An empty INFORMATIONAL request; the SA closes if the peer never answers (DPD)."""
        self.ctx.now = now
        sa = self._active(sa_id)
        self._guarded(sa, lambda: self.tasks.check_liveness(sa))
        return self._drain()

    def rekey_child(self, sa_id: int, child_id: int, now: float) -> Output:
        """Rekey one Child SA now (CREATE_CHILD_SA with REKEY_SA)."""
        self.ctx.now = now
        sa = self._active(sa_id)
        child = self._installed(sa, child_id)
        self._guarded(sa, lambda: self.tasks.rekey_child(sa, child))
        return self._drain()

    def rekey_ike(self, sa_id: int, now: float) -> Output:
        """Rekey the IKE SA now (CREATE_CHILD_SA with an IKE proposal, RFC 7296 §1.3.2)."""
        self.ctx.now = now
        sa = self._active(sa_id)
        if sa.state is not IkeSaState.ESTABLISHED:
            raise UsageError(f"IKE SA #{sa_id} is {sa.state.name}")
        self._guarded(sa, lambda: self.tasks.rekey_ike(sa))
        return self._drain()

    def _active(self, sa_id: int) -> IkeSa:
        sa = self.sa(sa_id)
        if sa is None or not sa.active:
            raise UsageError(f"no established IKE SA #{sa_id}")
        return sa

    @staticmethod
    def _installed(sa: IkeSa, child_id: int) -> ChildSa:
        child = sa.children.get(child_id)
        if child is None or child.state is not ChildSaState.INSTALLED:
            raise UsageError(f"no installed Child SA #{child_id} on IKE SA #{sa.sa_id}")
        return child

    # -- API: the data plane and the host -------------------------------------------------------

    def handle_signal(self, signal: ChildSaSignal, now: float) -> Output:
        """The data plane says a Child SA reached a volume lifetime or runs out of sequence
        numbers: rekey it (soft), or delete it (hard). A Child SA that is being rekeyed or
        deleted already, or is gone, needs nothing more."""
        self.ctx.now = now
        sa = self._index.owner_of(signal.spi_in)
        child = next((c for c in sa.children.values() if c.spi_in == signal.spi_in), None) if sa else None
        if sa is None or child is None or not sa.active or child.state is not ChildSaState.INSTALLED:
            return self._drain()
        what = signal.kind.value.replace("_", " ")
        sa.log.info("Child SA %s{%d}: %s reached in the data plane", child.name, child.child_id, what)
        if signal.kind is SignalKind.HARD_LIFETIME:
            self._guarded(sa, lambda: self.tasks.delete_child(sa, child, "hard lifetime expired"))
        else:
            self._guarded(sa, lambda: self.tasks.rekey_child(sa, child))
        return self._drain()

    def update_sa_address(
        self, sa_id: int, local: Endpoint, now: float, *, remote: IPAddress | None = None
    ) -> Output:
        """MOBIKE (RFC 4555 §3.5): our address changed; move the IKE SA and its Child SAs to
        ``local`` (and to the peer's address ``remote``, one of its additional addresses, when
        its current one is unreachable). The UPDATE_SA_ADDRESSES request carries COOKIE2 and,
        unanswered, falls back to the peer's additional addresses (§3.8)."""
        self.ctx.now = now
        sa = self._active(sa_id)
        if not sa.original_initiator or not sa.peer_mobike:
            raise UsageError(
                f"IKE SA #{sa_id} cannot move: "
                f"{'not the original initiator' if not sa.original_initiator else 'no MOBIKE'}"
            )
        sa.local = local.with_port(self.config.nat_t_port)
        sa.remote = Endpoint(remote or sa.remote.ip, self.config.nat_t_port)
        sa.log.info("MOBIKE: moving to %s - %s", sa.local, sa.remote)
        self._guarded(sa, lambda: self.tasks.move(sa, now))
        return self._drain()

    def set_local_addresses(self, addrs: Sequence[IPAddress], now: float) -> Output:
        """MOBIKE (RFC 4555 §3.6): the daemon reports our usable local addresses. Each established
        MOBIKE SA whose announced list of additional addresses (all but the one it uses) differs
        gets an INFORMATIONAL with the new list; new SAs announce it in IKE_AUTH."""
        self.ctx.now = now
        self.ctx.local_addresses = tuple(dict.fromkeys(addrs))
        for sa in self.sas():
            if not sa.active or not sa.peer_mobike:
                continue
            if wanted_addresses(sa) == sa.announced_addresses:
                continue
            if sa.original_initiator and sa.local.ip not in self.ctx.local_addresses:
                continue  # it has to move: its UPDATE_SA_ADDRESSES will carry the new list
            sa.log.info("MOBIKE: our addresses changed, telling the peer")
            self._guarded(sa, lambda sa=sa: self.tasks.announce_addresses(sa))  # type: ignore[misc]
        return self._drain()

    # -- input ------------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> Output:
        self.ctx.now = now
        self._cookies.rotate_if_due(now)
        self._refresh_deadlines()
        due = [sa for k in self._timers.pop_due(now) if (sa := self._by_id.get(k)) is not None]
        for sa in sorted(due, key=lambda s: s.sa_id):
            self.stats.timer_visits += 1
            sa.touch()  # its deadline is recomputed whatever happens
            half_open = not sa.initiator and sa.state is IkeSaState.CONNECTING
            if half_open and now >= sa.created_at + self.config.half_open_timeout:
                self.stats.half_open_expired += 1
                cause = CloseCause.ABANDONED if self._before_auth(sa) else CloseCause.TIMEOUT
                self.tasks.close(sa, cause, "half-open SA expired")
                continue
            self._guarded(sa, lambda sa=sa: self.tasks.on_timer(sa, now))  # type: ignore[misc]
            if sa.active or sa.state is IkeSaState.REDUNDANT:
                self._guarded(sa, lambda sa=sa: self._lifetimes(sa, now))  # type: ignore[misc]
        return self._drain()

    def _lifetimes(self, sa: IkeSa, now: float) -> None:
        """Rekey Child SAs at their soft lifetime, delete them at the hard one; IKE rekey,
        reauthentication, DPD, NAT keepalives; a redundant SA the peer never deleted."""
        if sa.state is IkeSaState.REDUNDANT:
            if sa.redundant_at is not None and now >= sa.redundant_at:
                # the peer never deleted its redundant SA (it may never have finished it): a last
                # Delete, not awaited (tasks/ike_rekey.py)
                sa.redundant_at = None
                self.tasks.close(sa, CloseCause.REDUNDANT, REDUNDANT, notify_peer=True)
            return
        for child in list(sa.children.values()):
            expiring = child.state in (ChildSaState.INSTALLED, ChildSaState.REKEYING)
            if expiring and child.expire_at is not None and now >= child.expire_at:
                sa.log.info("Child SA %s{%d} reached its hard lifetime", child.name, child.child_id)
                child.expire_at = None
                self.tasks.delete_child(sa, child, "hard lifetime expired")
            elif (
                child.state is ChildSaState.INSTALLED and child.rekey_at is not None and now >= child.rekey_at
            ):
                self.tasks.rekey_child(sa, child)
        if sa.state is IkeSaState.ESTABLISHED and sa.rekey_at is not None and now >= sa.rekey_at:
            self.tasks.rekey_ike(sa)
        if sa.state is IkeSaState.ESTABLISHED and sa.reauth_at is not None and now >= sa.reauth_at:
            if sa.original_initiator:
                self._reauth(sa)
            else:
                ike_reauth.overdue(sa)
        keepalive_at = self._keepalive_at(sa)
        if keepalive_at is not None and now >= keepalive_at:
            sa.last_sent = now
            sa.emit(NatKeepalive(sa.sa_id, sa.local, sa.remote))
        if sa.dpd_at is not None and now >= sa.dpd_at:
            sa.dpd_at = None
            if not self.tasks.busy(sa):
                self.tasks.check_liveness(sa)

    def _keepalive_at(self, sa: IkeSa) -> float | None:
        interval = self.config.keepalive_interval
        return sa.last_sent + interval if sa.nat_local and interval > 0 else None

    def _guarded(self, sa: IkeSa, step: Callable[[], None]) -> None:
        """Run one step of one SA; a bug (any unexpected exception) closes only that SA (DESIGN.md §7)."""
        try:
            step()
        except Exception as exc:
            sa.log.exception("internal error, closing this IKE SA")
            self.tasks.close(sa, CloseCause.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")

    def receive_datagram(self, dgram: Datagram, now: float) -> Output:
        self.ctx.now = now
        try:
            msg = decode_message(dgram.payload)
        except DecodeError as exc:
            self.stats.malformed += 1
            _log.debug("drop: %s", f"malformed IKE message from {dgram.remote}: {exc}")
            return self._drain()
        if msg.is_initiator:  # the sender is the original initiator: we are the responder
            if msg.exchange_type is ExchangeType.IKE_SA_INIT and msg.spi_r == _ZERO_SPI:
                if msg.is_response or msg.spi_i == _ZERO_SPI:  # no state for these (RFC 7296 §3.1)
                    self.stats.malformed += 1
                    return self._drain()
                self._on_init_request(msg, dgram, now)
                return self._drain()
            sa = self._sas.get(msg.spi_r)
            if sa is None or sa.initiator or sa.spi_i != msg.spi_i:
                return self._unknown(msg, dgram)
        else:
            sa = self._sas.get(msg.spi_i)
            if sa is None or not sa.initiator:
                return self._unknown(msg, dgram)
            if sa.spi_r not in (_ZERO_SPI, msg.spi_r):
                return self._unknown(msg, dgram)
        sa.arrived = (dgram.local, dgram.remote)  # acted upon only once the message authenticates
        self._guarded(sa, lambda: self.tasks.receive(sa, msg, now))
        if sa.initial_contact and sa.active:
            self._initial_contact(sa)
        return self._drain()

    def answer(self, ticket: int, answer: Answer, now: float) -> Output:
        """The answer to a :class:`~pyipsec.ike.events.LookupNeeded`: the exchange that waits
        for it carries on. An answer for an SA that is gone (or a ticket answered twice) is
        ignored, except that an address leased for it goes back to its pool."""
        self.ctx.now = now
        sa_id = self.tasks.waiting_sa(ticket)
        sa = self.sa(sa_id) if sa_id is not None else None
        if sa is None:
            _log.debug("ignoring the answer to lookup %d: its IKE SA is gone", ticket)
            self.tasks.unused(self.ctx, answer)
            return self._drain()
        self._guarded(sa, lambda: self.tasks.answer(sa, ticket, answer))
        if sa.initial_contact and sa.active:
            self._initial_contact(sa)
        return self._drain()

    def _initial_contact(self, sa: IkeSa) -> None:
        """The peer restarted: its older SAs with us are stale, drop them silently (RFC 7296 §2.4)."""
        sa.initial_contact = False
        for other in self.peers(sa):
            if sa.same_peer(other) and other.was_established:
                reason = f"replaced by IKE SA #{sa.sa_id}: the peer sent INITIAL_CONTACT"
                self.tasks.close(other, CloseCause.INITIAL_CONTACT, reason)

    def _unknown(self, msg: Message, dgram: Datagram) -> Output:
        self.stats.unknown_spi += 1
        _log.debug(
            "drop: %s",
            f"{msg.exchange_type.name} for unknown IKE SA {msg.spi_i.hex()}_i {msg.spi_r.hex()}_r "
            f"from {dgram.remote}",
        )
        return self._drain()

    def _on_init_request(self, msg: Message, dgram: Datagram, now: float) -> None:
        key = (msg.spi_i, dgram.remote)
        existing = self._half_open.get(key)
        if existing is not None and existing.state is not IkeSaState.CLOSED:
            self.tasks.receive(existing, msg, now)  # a retransmission: answered from the cache
            return
        config, src = self.config, dgram.remote.ip
        crowded = (
            self.half_open >= config.cookie_threshold
            or self.half_open_from(src) >= config.cookie_threshold_ip
        )
        if crowded and not self._cookie_ok(msg, dgram):
            self._send_cookie(msg, dgram)
            return
        if self.half_open_from(src) >= config.block_threshold:
            self.stats.init_blocked += 1
            self._log_dropped(now, f"{src} has {config.block_threshold} half-open IKE SAs (block_threshold)")
            return
        if self.half_open >= config.init_limit_half_open and not self._evict_half_open():
            self.stats.init_over_limit += 1
            self._log_dropped(now, f"{self.half_open} IKE SAs are half-open (init_limit_half_open)")
            return
        candidates = tuple(
            c
            for c in config.connections.values()
            if c.matches_addresses(str(dgram.local.ip), str(dgram.remote.ip))
        )
        sa = IkeSa(
            self.ctx,
            initiator=False,
            local=dgram.local,
            remote=dgram.remote,
            spi_i=msg.spi_i,
            spi_r=self._new_spi(),
            connection=candidates[0] if candidates else None,
            candidates=candidates,
            now=now,
        )
        sa.apply(IkeEvent.CONNECT)
        self._half_open[key] = sa
        self._init_key[sa.sa_id] = key
        self._add(sa, sa.spi_r)
        self._guarded(sa, lambda: self.tasks.receive(sa, msg, now))

    def _evict_half_open(self) -> bool:
        """Close the oldest half-open SA that has not begun IKE_AUTH (among the oldest
        :data:`EVICT_SCAN`), silently; False if there is none."""
        for sa_id in itertools.islice(self._half_open_src, EVICT_SCAN):
            sa = self._by_id[sa_id]
            if self._before_auth(sa):
                self.stats.half_open_evicted += 1
                reason = "half-open SA evicted: init_limit_half_open reached"
                self.tasks.close(sa, CloseCause.ABANDONED, reason)
                return True
        return False

    def _before_auth(self, sa: IkeSa) -> bool:
        """A half-open SA that has taken only its IKE_SA_INIT (message 0): no IKE_AUTH yet."""
        return self.tasks.exchanger(sa).next_in <= 1

    def _log_dropped(self, now: float, why: str) -> None:
        """One line per second at most for dropped IKE_SA_INITs (a flood must not flood the log)."""
        if now - self._blocked_logged < 1.0:
            return
        self._blocked_logged = now
        stats = self.stats
        _log.warning(
            "dropping IKE_SA_INIT requests: %s (%d by source, %d by the global limit so far)",
            why,
            stats.init_blocked,
            stats.init_over_limit,
        )

    def _cookie_ok(self, msg: Message, dgram: Datagram) -> bool:
        cookie = msg.payloads[0] if msg.payloads else None
        nonce = msg.find(Nonce)
        if not isinstance(cookie, Notify) or cookie.notify_type is not NotifyType.COOKIE or nonce is None:
            return False
        return self._cookies.check(cookie.data, nonce.data, dgram.remote.ip.packed, msg.spi_i)

    def _send_cookie(self, msg: Message, dgram: Datagram) -> None:
        nonce = msg.find(Nonce)
        if nonce is None:
            self.stats.malformed += 1
            return
        cookie = self._cookies.make(nonce.data, dgram.remote.ip.packed, msg.spi_i)
        if len(dgram.payload) < _HEADER_LEN + _NOTIFY_LEN + len(cookie):  # never more out than in
            self.stats.malformed += 1
            return
        self.stats.cookies_sent += 1
        reply = Message(
            msg.spi_i,
            _ZERO_SPI,
            exchange_type=ExchangeType.IKE_SA_INIT,
            message_id=0,
            is_initiator=False,
            is_response=True,
            payloads=(Notify.cookie(cookie),),
        )
        self._out.append(Datagram(dgram.local, dgram.remote, encode_message(reply)))

    # -- plumbing ---------------------------------------------------------------------------------

    def _touched(self, sa: IkeSa) -> None:
        """``IkeSa.touch``: remember the SA for the drain; keep the half-open counts exact."""
        if self._by_id.get(sa.sa_id) is not sa:
            return  # not (yet) ours: a rekey's new SA is registered when it is adopted
        self._dirty[sa.sa_id] = sa
        self._index.touched(sa)
        half_open = not sa.initiator and sa.state is IkeSaState.CONNECTING
        if half_open != (sa.sa_id in self._half_open_src):
            if half_open:
                self._half_open_src[sa.sa_id] = src = sa.remote.ip
                self._half_open_per_src[src] = self._half_open_per_src.get(src, 0) + 1
            else:
                self._release_half_open(sa.sa_id)

    def _release_half_open(self, sa_id: int) -> None:
        src = self._half_open_src.pop(sa_id, None)
        if src is None:
            return
        left = self._half_open_per_src[src] - 1
        if left:
            self._half_open_per_src[src] = left
        else:
            del self._half_open_per_src[src]

    def _add(self, sa: IkeSa, spi: bytes) -> None:
        """Register ``sa`` under ``spi`` in the SPI table."""
        self._sas[spi] = sa
        self._by_id[sa.sa_id] = sa
        self._keys[sa.sa_id] = (*self._keys.get(sa.sa_id, ()), spi)
        sa.touch()

    def _new_spi(self) -> bytes:
        while True:
            spi = self.ctx.rng.random_bytes(8)
            if spi != _ZERO_SPI and spi not in self._sas:
                return spi

    def _drain(self) -> Output:
        """Collect what the touched SAs produced, recompute their deadlines; forget closed SAs
        (after their reauthentication bookkeeping: a failed one leaves the old SA to try again,
        a finished one lets the new SA's Child SAs send; that bookkeeping may touch others)."""
        touched: dict[int, IkeSa] = {}
        while self._dirty:
            batch, self._dirty = self._dirty, {}
            for sa_id, sa in batch.items():
                if sa_id not in touched and sa.state is IkeSaState.CLOSED:
                    ike_reauth.closed(sa)
            touched.update(batch)
        out, self._out = self._out, []
        events: list[Event] = []
        for sa in sorted(touched.values(), key=lambda s: s.sa_id):
            if self._by_id.get(sa.sa_id) is not sa:
                continue
            sent = self.tasks.take_outbox(sa)
            if sent:
                out.extend(sent)
                sa.last_sent = self.ctx.now
            if sa.events:
                events.extend(sa.events)
                sa.events.clear()
            if sa.state is IkeSaState.CLOSED:
                self._forget(sa)
            else:
                self._timers.set(sa.sa_id, self._sa_deadline(sa))
                self._index.drained(sa)
                if sa.state is IkeSaState.ESTABLISHED and (sa.init_request or sa.init_response):
                    # the IKE_SA_INIT messages were signed in IKE_AUTH, which is over (its last
                    # response is cached as bytes): no need to keep them for the SA's lifetime
                    sa.init_request = sa.init_response = b""
        self._dirty.clear()  # (``last_sent`` above touched them again)
        return Output(tuple(out), tuple(events))

    def _register(self, sa: IkeSa) -> None:
        """An IKE SA created by a rekey joins the SPI table."""
        self._add(sa, sa.our_spi)

    def _forget(self, sa: IkeSa) -> None:
        """Remove a closed SA from every table, by its own keys."""
        for spi in self._keys.pop(sa.sa_id, ()):
            if self._sas.get(spi) is sa:
                del self._sas[spi]
        key = self._init_key.pop(sa.sa_id, None)
        if key is not None and self._half_open.get(key) is sa:
            del self._half_open[key]
        del self._by_id[sa.sa_id]
        self._index.forget(sa)
        self._release_half_open(sa.sa_id)
        self._timers.discard(sa.sa_id)
        self._dirty.pop(sa.sa_id, None)
        self.tasks.forget(sa)

    def audit(self) -> list[str]:
        """Check the incremental bookkeeping against a full scan (O(n): for tests): every SA's
        recorded deadline is its real one, nothing is left undrained, the half-open counts
        are right. Returns what is wrong."""
        wrong: list[str] = []
        for sa in self._by_id.values():
            real, recorded = self._sa_deadline(sa), self._timers.get(sa.sa_id)
            if sa.sa_id not in self._dirty and real != recorded:
                wrong.append(f"IKE SA #{sa.sa_id} ({sa.state.name}): deadline {recorded}, really {real}")
            if sa.events or self.tasks.has_outbox(sa):
                wrong.append(f"IKE SA #{sa.sa_id}: undrained events or datagrams")
        half_open = {
            s.sa_id for s in self._by_id.values() if not s.initiator and s.state is IkeSaState.CONNECTING
        }
        if half_open != set(self._half_open_src):
            wrong.append(f"half-open SAs {sorted(half_open)}, counted {sorted(self._half_open_src)}")
        if set(self._sas.values()) - set(self._by_id.values()):
            wrong.append("an SA in the SPI table is not registered")
        wrong += self._index.audit(self._by_id.values())
        return wrong


def _first_concrete(addrs: tuple[str, ...], key: str, conn: ConnectionConfig) -> str:
    for a in addrs:
        if a not in ("%any", "0.0.0.0", "::"):
            return a
    raise UsageError(f"connection {conn.name!r} needs a concrete {key} entry to initiate")
