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
half-open: then a stateless COOKIE is demanded first (§2.6). Half-open SAs expire after
``half_open_timeout``. The engine's timers (one deadline: :meth:`next_deadline`) start
Child SA rekeys and deletes at their soft and hard lifetimes, IKE rekeys, reauthentication
(``tasks.ike_reauth``), DPD, NAT keepalives, and retransmissions (the task manager's).

The runtime needs nothing but this module's API: :meth:`initiate` returns the new SA's id,
:meth:`list_sas` describes every SA (``ike.info``), :meth:`handle_signal` takes the data
plane's lifetime signals, and the events say why an SA went (``CloseCause``) and what
replaced a Child SA.
"""

from __future__ import annotations

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
from pyipsec.ike.events import ChildSaSignal, CloseCause, Event, NatKeepalive, SignalKind
from pyipsec.ike.info import IkeSaInfo, describe
from pyipsec.ike.lookups import Answer
from pyipsec.ike.manager import TaskManager
from pyipsec.ike.pools import AddressPools, MemoryPools
from pyipsec.ike.sa import ChildSa, EngineContext, IkeSa
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


class Output(NamedTuple):
    datagrams: tuple[Datagram, ...]
    events: tuple[Event, ...]


class EngineStats:
    def __init__(self) -> None:
        self.malformed = 0
        self.unknown_spi = 0
        self.cookies_sent = 0
        self.half_open_expired = 0


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
        )
        self._sas: dict[bytes, IkeSa] = {}  # by our SPI
        self._half_open: dict[tuple[bytes, Endpoint], IkeSa] = {}
        self._cookies = CookieJar(rng)
        self.stats = EngineStats()
        self._out: list[Datagram] = []

    # -- queries --------------------------------------------------------------------------------

    @property
    def config(self) -> EngineConfig:
        return self.ctx.config

    def sas(self) -> list[IkeSa]:
        """Every IKE SA, oldest first (the objects themselves: for tests and the engine's own use;
        the daemon reads :meth:`list_sas`)."""
        return sorted({id(s): s for s in self._sas.values()}.values(), key=lambda s: s.sa_id)

    def sa(self, sa_id: int) -> IkeSa | None:
        return next((s for s in self._sas.values() if s.sa_id == sa_id), None)

    def list_sas(self, connection: str | None = None) -> list[IkeSaInfo]:
        """A snapshot of every IKE SA (of ``connection``) and its Child SAs, like swanctl --list-sas."""
        return [describe(sa) for sa in self.sas() if connection is None or sa.name == connection]

    def next_deadline(self) -> float | None:
        deadlines = [d for s in self.sas() if (d := self._sa_deadline(s)) is not None]
        return min(deadlines, default=None)

    def _sa_deadline(self, sa: IkeSa) -> float | None:
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

    def reconfigure(self, config: EngineConfig) -> None:
        """New configuration for new SAs; existing SAs keep theirs."""
        self.ctx.config = config

    def initiate(
        self, connection: str, now: float, *, local: Endpoint | None = None, remote: Endpoint | None = None
    ) -> tuple[int, Output]:
        """Start an IKE SA for ``connection`` (with its first child, if it has children); returns
        the new SA's id and what to send."""
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
        self._sas[sa.spi_i] = sa
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
        found = next(
            ((sa, c) for sa in self.sas() for c in sa.children.values() if c.spi_in == signal.spi_in), None
        )
        if found is None or not found[0].active or found[1].state is not ChildSaState.INSTALLED:
            return self._drain()
        sa, child = found
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
        for sa in self.sas():
            half_open = not sa.initiator and sa.state is IkeSaState.CONNECTING
            if half_open and now >= sa.created_at + self.config.half_open_timeout:
                self.stats.half_open_expired += 1
                self.tasks.close(sa, CloseCause.TIMEOUT, "half-open SA expired")
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
            sa.events.append(NatKeepalive(sa.sa_id, sa.local, sa.remote))
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
        ignored."""
        self.ctx.now = now
        sa_id = self.tasks.waiting_sa(ticket)
        sa = self.sa(sa_id) if sa_id is not None else None
        if sa is None:
            _log.debug("ignoring the answer to lookup %d: its IKE SA is gone", ticket)
            return self._drain()
        self._guarded(sa, lambda: self.tasks.answer(sa, ticket, answer))
        if sa.initial_contact and sa.active:
            self._initial_contact(sa)
        return self._drain()

    def _initial_contact(self, sa: IkeSa) -> None:
        """The peer restarted: its older SAs with us are stale, drop them silently (RFC 7296 §2.4)."""
        sa.initial_contact = False
        for other in self.sas():
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
        candidates = tuple(
            c
            for c in self.config.connections.values()
            if c.matches_addresses(str(dgram.local.ip), str(dgram.remote.ip))
        )
        if self._half_open_count() >= self.config.cookie_threshold and not self._cookie_ok(msg, dgram):
            self._send_cookie(msg, dgram)
            return
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
        self._sas[sa.spi_r] = sa
        self._half_open[key] = sa
        self._guarded(sa, lambda: self.tasks.receive(sa, msg, now))

    def _half_open_count(self) -> int:
        return sum(1 for s in self._sas.values() if not s.initiator and s.state is IkeSaState.CONNECTING)

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
        self.stats.cookies_sent += 1
        cookie = self._cookies.make(nonce.data, dgram.remote.ip.packed, msg.spi_i)
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

    def _new_spi(self) -> bytes:
        while True:
            spi = self.ctx.rng.random_bytes(8)
            if spi != _ZERO_SPI and spi not in self._sas:
                return spi

    def _drain(self) -> Output:
        """Collect what the SAs produced; forget closed SAs (after their reauthentication
        bookkeeping: a failed one leaves the old SA to try again, a finished one lets the new
        SA's Child SAs send)."""
        sas = list({id(s): s for s in self._sas.values()}.values())
        for sa in sas:
            if sa.state is IkeSaState.CLOSED:
                ike_reauth.closed(sa)
        out, self._out = self._out, []
        events: list[Event] = []
        for sa in sas:
            sent = self.tasks.take_outbox(sa)
            if sent:
                out.extend(sent)
                sa.last_sent = self.ctx.now
            if sa.events:
                events.extend(sa.events)
                sa.events.clear()
            if sa.state is IkeSaState.CLOSED:
                self._forget(sa)
        return Output(tuple(out), tuple(events))

    def _register(self, sa: IkeSa) -> None:
        """An IKE SA created by a rekey joins the SPI table."""
        self._sas[sa.our_spi] = sa

    def _forget(self, sa: IkeSa) -> None:
        for table_key in [k for k, v in self._sas.items() if v is sa]:
            del self._sas[table_key]
        for ho_key in [k for k, v in self._half_open.items() if v is sa]:
            del self._half_open[ho_key]
        self.tasks.forget(sa)


def _first_concrete(addrs: tuple[str, ...], key: str, conn: ConnectionConfig) -> str:
    for a in addrs:
        if a not in ("%any", "0.0.0.0", "::"):
            return a
    raise UsageError(f"connection {conn.name!r} needs a concrete {key} entry to initiate")
