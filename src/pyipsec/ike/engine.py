"""``IkeEngine``: the sans-I/O IKEv2 core (DESIGN.md §1, §3).

Datagrams, timer ticks and API calls go in, each with the monotonic time ``now``;
datagrams to send and events come out as an :class:`Output`. The engine owns the SA
tables and routes each message by SPI: a request from an original initiator is looked up
by our responder SPI (IKE_SA_INIT requests, which carry SPIr = 0, by the initiator's SPI
and address, so retransmissions find their half-open SA), a message to us as original
initiator by our initiator SPI.

New IKE_SA_INIT requests create responder SAs, unless more than ``cookie_threshold`` are
half-open: then a stateless COOKIE is demanded first (RFC 7296 §2.6). Half-open SAs
expire after ``half_open_timeout``. Messages that do not decode, or that arrive for an
unknown SPI, are dropped and counted (there is nobody to answer, §2.21).

Reauthentication (RFC 7296 §2.8.3, make-before-break as strongSwan's ``make_before_break``):
when an original initiator's ``reauth_at`` comes (``reauth_time`` with jitter, or sooner
after an AUTH_LIFETIME, RFC 4478), or on :meth:`IkeEngine.reauthenticate`, a new IKE SA to
the same peer runs IKE_SA_INIT and IKE_AUTH with fresh authentication, without
INITIAL_CONTACT and asking for the virtual IPs the old SA holds. It recreates the old SA's
Child SAs (one per child config: the first in IKE_AUTH, the others with CREATE_CHILD_SA);
when all are installed, the old IKE SA is deleted (its Child SAs with it). The new SA's
``reauth_of`` and its ``IkeSaEstablished.reauth_of`` name the old SA; the old SA's
``reauth_by`` names the new one while it is under way (and keeps the old SA from starting
an IKE rekey or another reauthentication). If the new SA fails (or lacks a Child SA, and is
deleted), the old one stays and tries again 10-30 s later; the reason is logged. On the
responder the new SA's Child SAs send nothing until the old SA is gone (``ike_auth``). A
responder with a ``reauth_time`` deletes an SA that was not reauthenticated within it and a
grace period (a tenth of it, at least 30 s): the peer was told with AUTH_LIFETIME.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from pyipsec.crypto.rand import OS_RANDOM, RandomSource
from pyipsec.errors import DecodeError, UsageError
from pyipsec.iana.ikev2 import ExchangeType, NotifyType
from pyipsec.ike.config import ChildConfig, ConnectionConfig, EngineConfig
from pyipsec.ike.cookies import CookieJar
from pyipsec.ike.credentials import CredentialStore
from pyipsec.ike.events import Event, NatKeepalive
from pyipsec.ike.exchanger import Exchange
from pyipsec.ike.pools import AddressPools, MemoryPools
from pyipsec.ike.sa import ChildSa, EngineContext, IkeSa
from pyipsec.ike.state import ChildSaState, IkeSaState
from pyipsec.ike.tasks.child_create import ChildCreateTask
from pyipsec.ike.tasks.ike_auth import IkeAuthTask
from pyipsec.ike.tasks.ike_config import IkeConfigTask
from pyipsec.ike.tasks.ike_init import IkeInitTask
from pyipsec.ike.tasks.ike_rekey import REDUNDANT
from pyipsec.ike.tasks.informational import ChildDeleteTask, IkeDeleteTask, LivenessTask, activate
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
        self.ctx = EngineContext(
            config=config,
            creds=creds,
            rng=rng,
            wall_clock=wall_clock,
            pools=pools or MemoryPools(),
            eap_server=eap_server,
        )
        self.ctx.adopt = self._adopt
        self.ctx.new_ike_spi = self._new_spi
        self.ctx.sas = self.sas
        self._sas: dict[bytes, IkeSa] = {}  # by our SPI
        self._half_open: dict[tuple[bytes, Endpoint], IkeSa] = {}
        self._cookies = CookieJar(rng)
        self.stats = EngineStats()
        self._out: list[Datagram] = []
        self._events: list[Event] = []

    # -- queries --------------------------------------------------------------------------------

    @property
    def config(self) -> EngineConfig:
        return self.ctx.config

    def sas(self) -> list[IkeSa]:
        return sorted({id(s): s for s in self._sas.values()}.values(), key=lambda s: s.sa_id)

    def sa(self, sa_id: int) -> IkeSa | None:
        return next((s for s in self._sas.values() if s.sa_id == sa_id), None)

    def next_deadline(self) -> float | None:
        deadlines = [d for s in self.sas() if (d := self._sa_deadline(s)) is not None]
        return min(deadlines, default=None)

    def _sa_deadline(self, sa: IkeSa) -> float | None:
        times = [sa.exchanger.deadline()]
        if not sa.initiator and sa.state is IkeSaState.CONNECTING:
            times.append(sa.created_at + self.config.half_open_timeout)
        if sa.state is IkeSaState.ESTABLISHED:
            busy = sa.rekeying or sa.reauth_by is not None  # (a reauthentication defers the rekey)
            times += [
                None if busy else sa.rekey_at,
                sa.dpd_at,
                self._keepalive_at(sa),
                sa.redundant_at,
                None if busy else sa.reauth_at,
            ]
            for c in sa.children.values():
                if c.state is ChildSaState.INSTALLED:
                    times += [c.expire_at, None if c.rekeying or c.successor else c.rekey_at]
        return min((t for t in times if t is not None), default=None)

    # -- API -------------------------------------------------------------------------------------

    def reconfigure(self, config: EngineConfig) -> None:
        """New configuration for new SAs; existing SAs keep theirs."""
        self.ctx.config = config

    def initiate(
        self, connection: str, now: float, *, local: Endpoint | None = None, remote: Endpoint | None = None
    ) -> Output:
        """Start an IKE SA for ``connection`` (with its first child, if it has children)."""
        self.ctx.now = now
        conn = self.config.connections.get(connection)
        if conn is None:
            raise UsageError(f"no connection named {connection!r}")
        if local is None or remote is None:
            local = local or Endpoint.parse(
                _first_concrete(conn.local_addrs, "local_addrs", conn), conn.local_port
            )
            remote = remote or Endpoint.parse(
                _first_concrete(conn.remote_addrs, "remote_addrs", conn), conn.remote_port
            )
        self._start(conn, local, remote, conn.children[0] if conn.children else None, now)
        return self._drain()

    def _start(
        self,
        conn: ConnectionConfig,
        local: Endpoint,
        remote: Endpoint,
        first_child: ChildConfig | None,
        now: float,
        *,
        reauth_of: IkeSa | None = None,
        more_children: tuple[ChildConfig, ...] = (),
    ) -> IkeSa:
        """A new IKE SA as original initiator: IKE_SA_INIT, then IKE_AUTH with ``first_child``."""
        sa = IkeSa(
            self.ctx,
            initiator=True,
            local=local,
            remote=remote,
            spi_i=self._new_spi(),
            spi_r=_ZERO_SPI,
            connection=conn,
            candidates=(conn,),
            now=now,
        )
        sa.set_state(IkeSaState.CONNECTING)
        sa.first_child = first_child
        if reauth_of is not None:
            sa.reauth_of = reauth_of.sa_id
            sa.vips_asked = reauth_of.virtual_ips
            sa.reauth_children = tuple(c.name for c in (first_child, *more_children) if c is not None)
            reauth_of.reauth_by = sa.sa_id
        self._sas[sa.spi_i] = sa
        sa.log.info(
            "initiating IKE SA to %s%s", remote, f" to reauthenticate #{reauth_of.sa_id}" if reauth_of else ""
        )

        def auth_step() -> None:
            if sa.nat_detected or conn.mobike:  # with MOBIKE, IKE always uses the NAT-T port (RFC 4555 §3.3)
                sa.float_to_nat_t()
            sa.exchanger.start(
                Exchange(
                    ExchangeType.IKE_AUTH,
                    [
                        IkeAuthTask(),
                        IkeConfigTask(),
                        ChildCreateTask(in_ike_auth=True, config=sa.first_child),
                    ],
                    on_done=None if reauth_of is None else lambda: self._reauth_children(sa, more_children),
                ),
                self.ctx.now,
            )

        sa.exchanger.start(Exchange(ExchangeType.IKE_SA_INIT, [IkeInitTask()], on_done=auth_step), now)
        return sa

    # -- reauthentication (RFC 7296 §2.8.3) -----------------------------------------------------

    def reauthenticate(self, sa_id: int, now: float) -> Output:
        """Reauthenticate the IKE SA now: a new IKE SA replaces it, make-before-break."""
        self.ctx.now = now
        sa = self._established(sa_id)
        if not sa.original_initiator:
            raise UsageError(f"IKE SA #{sa_id}: only the original initiator reauthenticates")
        if sa.reauth_by is not None:
            raise UsageError(f"IKE SA #{sa_id} is being reauthenticated already (by #{sa.reauth_by})")
        self._reauth(sa, now)
        return self._drain()

    def _reauth(self, old: IkeSa, now: float) -> None:
        conn = old.connection
        assert conn is not None
        configs: list[ChildConfig] = []
        for child in sorted(old.children.values(), key=lambda c: c.child_id):
            live = child.state in (ChildSaState.INSTALLED, ChildSaState.REKEYING, ChildSaState.REKEYED)
            if live and all(c.name != child.name for c in configs):
                configs.append(child.config)
        old.reauth_at = None
        old.log.info(
            "reauthenticating: a new IKE SA with %s", ", ".join(c.name for c in configs) or "no Child SA"
        )
        local = old.local.with_port(conn.local_port)
        remote = old.remote.with_port(conn.remote_port)
        first = configs[0] if configs else None
        self._start(conn, local, remote, first, now, reauth_of=old, more_children=tuple(configs[1:]))

    def _reauth_overdue(self, sa: IkeSa, now: float) -> None:
        """Responder: the peer did not reauthenticate within the AUTH_LIFETIME we sent it (and a
        grace period): delete the SA (RFC 4478 §3)."""
        sa.reauth_at = None
        reason = "the peer did not reauthenticate in time (AUTH_LIFETIME, RFC 4478)"
        sa.log.info("%s: deleting the IKE SA", reason)
        sa.set_state(IkeSaState.DELETING)
        sa.exchanger.queue.clear()
        sa.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [IkeDeleteTask(reason)]), now)

    def _reauth_children(self, new: IkeSa, more: tuple[ChildConfig, ...]) -> None:
        """IKE_AUTH of a reauthentication is done: the further Child SAs, then the switch."""
        if new.state is not IkeSaState.ESTABLISHED:
            return
        now = self.ctx.now
        for n, cfg in enumerate(more):
            last = n == len(more) - 1
            new.exchanger.start(
                Exchange(
                    ExchangeType.CREATE_CHILD_SA,
                    [ChildCreateTask(in_ike_auth=False, config=cfg)],
                    on_done=(lambda: self._reauth_complete(new)) if last else None,
                ),
                now,
            )
        if not more:
            self._reauth_complete(new)

    def _reauthenticated(self, new: IkeSa) -> IkeSa | None:
        """The live SA that ``new`` reauthenticates (it may have been rekeyed meanwhile)."""
        return next((s for s in self.sas() if s is not new and s.reauth_by == new.sa_id), None)

    def _reauth_complete(self, new: IkeSa) -> None:
        if new.state is not IkeSaState.ESTABLISHED or new.reauth_done:
            return
        now = self.ctx.now
        installed = {c.name for c in new.children.values() if c.state is ChildSaState.INSTALLED}
        missing = [name for name in new.reauth_children if name not in installed]
        if missing:
            reason = f"reauthentication incomplete: Child SA {', '.join(missing)} not recreated"
            new.log.warning("%s; deleting this IKE SA, the old one stays", reason)
            new.set_state(IkeSaState.DELETING)
            new.exchanger.queue.clear()
            new.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [IkeDeleteTask(reason)]), now)
            return
        new.reauth_done = True
        old = self._reauthenticated(new)
        if old is None:
            new.log.info("reauthentication complete (the old IKE SA is gone already)")
            return
        old.reauth_by = None
        if old.state is not IkeSaState.ESTABLISHED:
            return
        new.log.info("reauthentication complete: deleting IKE SA #%d", old.sa_id)
        old.set_state(IkeSaState.DELETING)
        old.exchanger.queue.clear()
        old.exchanger.start(
            Exchange(ExchangeType.INFORMATIONAL, [IkeDeleteTask(f"reauthenticated as IKE SA #{new.sa_id}")]),
            now,
        )

    def _reauth_bookkeeping(self) -> None:
        """Before closed SAs are forgotten: a failed reauthentication leaves the old SA to try
        again later; a reauthenticated SA that is gone lets the new SA's Child SAs send."""
        closed = {id(s): s for s in self._sas.values() if s.state is IkeSaState.CLOSED}.values()
        for sa in closed:
            if sa.reauth_of is not None and not sa.reauth_done:
                sa.reauth_done = True
                old = self._reauthenticated(sa)
                if old is not None:
                    old.reauth_by = None
                    if old.original_initiator and old.state is IkeSaState.ESTABLISHED:
                        delay = 10 + 20 * int.from_bytes(self.ctx.rng.random_bytes(1), "big") / 255
                        old.reauth_at = self.ctx.now + delay
                        old.log.warning(
                            "reauthentication failed (%s); this IKE SA stays, retrying in %.0f s",
                            sa.close_reason,
                            delay,
                        )
            for new in self.sas():
                if new.reauth_of == sa.sa_id and new.state is IkeSaState.ESTABLISHED and not new.reauth_done:
                    new.reauth_done = True
                    for child in new.children.values():
                        activate(new, child)

    def initiate_child(self, sa_id: int, child: str, now: float) -> Output:
        """A further Child SA on an established IKE SA (CREATE_CHILD_SA)."""
        self.ctx.now = now
        sa = self._established(sa_id)
        assert sa.connection is not None
        cfg = sa.connection.child(child)
        if cfg is None:
            raise UsageError(f"connection {sa.name!r} has no child {child!r}")
        sa.exchanger.start(
            Exchange(ExchangeType.CREATE_CHILD_SA, [ChildCreateTask(in_ike_auth=False, config=cfg)]), now
        )
        return self._drain()

    def terminate(self, sa_id: int, now: float) -> Output:
        """Delete an IKE SA (and its children) with an INFORMATIONAL exchange."""
        self.ctx.now = now
        sa = self.sa(sa_id)
        if sa is None:
            raise UsageError(f"no IKE SA #{sa_id}")
        if sa.state is IkeSaState.ESTABLISHED:
            sa.set_state(IkeSaState.DELETING)
            sa.exchanger.queue.clear()
            sa.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [IkeDeleteTask()]), now)
        else:
            sa.close("deleted locally before it was established")
        return self._drain()

    def terminate_child(self, sa_id: int, child_id: int, now: float) -> Output:
        self.ctx.now = now
        sa = self._established(sa_id)
        child = sa.children.get(child_id)
        if child is None or child.state is not ChildSaState.INSTALLED:
            raise UsageError(f"no installed Child SA #{child_id} on IKE SA #{sa_id}")
        sa.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [ChildDeleteTask(child)]), now)
        return self._drain()

    def check_liveness(self, sa_id: int, now: float) -> Output:
        """An empty INFORMATIONAL request; the SA closes if the peer never answers (DPD)."""
        self.ctx.now = now
        sa = self._established(sa_id)
        sa.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [LivenessTask()]), now)
        return self._drain()

    def _established(self, sa_id: int) -> IkeSa:
        sa = self.sa(sa_id)
        if sa is None or sa.state is not IkeSaState.ESTABLISHED:
            raise UsageError(f"no established IKE SA #{sa_id}")
        return sa

    # -- input ------------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> Output:
        self.ctx.now = now
        self._cookies.rotate_if_due(now)
        for sa in self.sas():
            half_open = not sa.initiator and sa.state is IkeSaState.CONNECTING
            if half_open and now >= sa.created_at + self.config.half_open_timeout:
                self.stats.half_open_expired += 1
                sa.close("half-open SA expired")
                continue
            self._guarded(sa, lambda sa=sa: sa.exchanger.on_timer(now))  # type: ignore[misc]
            if sa.state is IkeSaState.ESTABLISHED:
                self._guarded(sa, lambda sa=sa: self._lifetimes(sa, now))  # type: ignore[misc]
        return self._drain()

    def _lifetimes(self, sa: IkeSa, now: float) -> None:
        """Rekey Child SAs at their soft lifetime, delete them at the hard one; DPD; IKE rekey."""
        for child in list(sa.children.values()):
            if child.state is not ChildSaState.INSTALLED:
                continue
            if child.expire_at is not None and now >= child.expire_at:
                sa.log.info("Child SA %s{%d} reached its hard lifetime", child.name, child.child_id)
                child.expire_at = None
                sa.exchanger.start(
                    Exchange(ExchangeType.INFORMATIONAL, [ChildDeleteTask(child, "hard lifetime expired")]),
                    now,
                )
            elif (
                child.rekey_at is not None
                and now >= child.rekey_at
                and not child.rekeying
                and not child.successor
            ):
                self._rekey_child(sa, child, now)
        reauth_busy = sa.reauth_by is not None
        if sa.rekey_at is not None and now >= sa.rekey_at and not sa.rekeying and not reauth_busy:
            self._rekey_ike(sa, now)
        if sa.reauth_at is not None and now >= sa.reauth_at and not sa.rekeying and not reauth_busy:
            if sa.original_initiator:
                self._reauth(sa, now)
            else:
                self._reauth_overdue(sa, now)
        if sa.redundant_at is not None and now >= sa.redundant_at:
            # the peer never deleted its redundant SA (it may never have finished it): a last
            # Delete, not awaited (tasks/ike_rekey.py)
            sa.redundant_at = None
            sa.close(REDUNDANT, notify_peer=True)
        keepalive_at = self._keepalive_at(sa)
        if keepalive_at is not None and now >= keepalive_at:
            sa.last_sent = now
            sa.events.append(NatKeepalive(sa.sa_id, sa.local, sa.remote))
        if sa.dpd_at is not None and now >= sa.dpd_at:
            sa.dpd_at = None
            if not sa.exchanger.busy():
                sa.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [LivenessTask()]), now)

    def _keepalive_at(self, sa: IkeSa) -> float | None:
        interval = self.config.keepalive_interval
        return sa.last_sent + interval if sa.nat_local and interval > 0 else None

    def _rekey_child(self, sa: IkeSa, child: ChildSa, now: float) -> None:
        sa.log.info("rekeying Child SA %s{%d}", child.name, child.child_id)
        child.rekeying = True
        sa.exchanger.start(
            Exchange(ExchangeType.CREATE_CHILD_SA, [ChildCreateTask(in_ike_auth=False, rekey=child)]), now
        )

    def rekey_child(self, sa_id: int, child_id: int, now: float) -> Output:
        """Rekey one Child SA now (CREATE_CHILD_SA with REKEY_SA)."""
        sa = self._established(sa_id)
        child = sa.children.get(child_id)
        if child is None or child.state is not ChildSaState.INSTALLED or child.successor is not None:
            raise UsageError(f"no installed Child SA #{child_id} on IKE SA #{sa_id}")
        self.ctx.now = now
        self._rekey_child(sa, child, now)
        return self._drain()

    def _rekey_ike(self, sa: IkeSa, now: float) -> None:
        from pyipsec.ike.tasks.ike_rekey import IkeRekeyTask  # noqa: PLC0415

        sa.log.info("rekeying the IKE SA")
        sa.rekeying = True
        sa.exchanger.start(Exchange(ExchangeType.CREATE_CHILD_SA, [IkeRekeyTask()]), now)

    def rekey_ike(self, sa_id: int, now: float) -> Output:
        """Rekey the IKE SA now (CREATE_CHILD_SA with an IKE proposal, RFC 7296 §1.3.2)."""
        sa = self._established(sa_id)
        self.ctx.now = now
        self._rekey_ike(sa, now)
        return self._drain()

    @staticmethod
    def _guarded(sa: IkeSa, step: Callable[[], None]) -> None:
        """Run one step of one SA; a bug (any unexpected exception) closes only that SA (DESIGN.md §7)."""
        try:
            step()
        except Exception as exc:
            sa.log.exception("internal error, closing this IKE SA")
            sa.close(f"internal error: {type(exc).__name__}: {exc}")

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
        self._guarded(sa, lambda: sa.exchanger.receive(msg, now))
        if sa.initial_contact and sa.state is IkeSaState.ESTABLISHED:
            self._initial_contact(sa)
        return self._drain()

    def update_sa_address(
        self, sa_id: int, local: Endpoint, now: float, *, remote: IPAddress | None = None
    ) -> Output:
        """MOBIKE (RFC 4555 §3.5): our address changed; move the IKE SA and its Child SAs to
        ``local`` (and to the peer's address ``remote``, one of its additional addresses, when
        its current one is unreachable). The UPDATE_SA_ADDRESSES request carries COOKIE2 and,
        unanswered, falls back to the peer's additional addresses (§3.8)."""
        self.ctx.now = now
        sa = self._established(sa_id)
        if not sa.original_initiator or not sa.peer_mobike:
            raise UsageError(
                f"IKE SA #{sa_id} cannot move: "
                f"{'not the original initiator' if not sa.original_initiator else 'no MOBIKE'}"
            )
        from pyipsec.ike.tasks.ike_mobike import update_exchange  # noqa: PLC0415

        sa.local = local.with_port(self.config.nat_t_port)
        sa.remote = Endpoint(remote or sa.remote.ip, self.config.nat_t_port)
        sa.log.info("MOBIKE: moving to %s - %s", sa.local, sa.remote)
        if sa.exchanger.inflight is not None:  # retransmit the request in flight from the new address too
            sa.exchanger.inflight.deadline = now
        sa.exchanger.start(update_exchange(sa), now)
        return self._drain()

    def set_local_addresses(self, addrs: Sequence[IPAddress], now: float) -> Output:
        """MOBIKE (RFC 4555 §3.6): the daemon reports our usable local addresses. Each established
        MOBIKE SA whose announced list of additional addresses (all but the one it uses) differs
        gets an INFORMATIONAL with the new list; new SAs announce it in IKE_AUTH."""
        self.ctx.now = now
        self.ctx.local_addresses = tuple(dict.fromkeys(addrs))
        from pyipsec.ike.tasks.ike_mobike import AddressListTask, wanted_addresses  # noqa: PLC0415

        for sa in self.sas():
            if sa.state is not IkeSaState.ESTABLISHED or not sa.peer_mobike:
                continue
            if wanted_addresses(sa) == sa.announced_addresses:
                continue
            if sa.original_initiator and sa.local.ip not in self.ctx.local_addresses:
                continue  # it has to move: its UPDATE_SA_ADDRESSES will carry the new list
            sa.log.info("MOBIKE: our addresses changed, telling the peer")
            self._guarded(
                sa,
                lambda sa=sa: sa.exchanger.start(  # type: ignore[misc]
                    Exchange(ExchangeType.INFORMATIONAL, [AddressListTask(sa)], label="MOBIKE addresses"), now
                ),
            )
        return self._drain()

    def _initial_contact(self, sa: IkeSa) -> None:
        """The peer restarted: its older SAs with us are stale, drop them silently (RFC 7296 §2.4)."""
        sa.initial_contact = False
        for other in self.sas():
            if sa.same_peer(other) and other.was_established:
                other.close(f"replaced by IKE SA #{sa.sa_id}: the peer sent INITIAL_CONTACT")

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
            existing.exchanger.receive(msg, now)  # a retransmission: answered from the cache
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
        sa.set_state(IkeSaState.CONNECTING)
        self._sas[sa.spi_r] = sa
        self._half_open[key] = sa
        self._guarded(sa, lambda: sa.exchanger.receive(msg, now))

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
        self._reauth_bookkeeping()
        out, events = self._out, self._events
        self._out, self._events = [], []
        for sa in list(self._sas.values()):
            if sa.outbox:
                out.extend(sa.outbox)
                sa.outbox.clear()
                sa.last_sent = self.ctx.now
            if sa.events:
                events.extend(sa.events)
                sa.events.clear()
            if sa.state is IkeSaState.CLOSED:
                self._forget(sa)
        return Output(tuple(out), tuple(events))

    def _adopt(self, sa: IkeSa) -> None:
        """Register an IKE SA created by a rekey."""
        self._sas[sa.our_spi] = sa

    def _forget(self, sa: IkeSa) -> None:
        for table_key in [k for k, v in self._sas.items() if v is sa]:
            del self._sas[table_key]
        for ho_key in [k for k, v in self._half_open.items() if v is sa]:
            del self._half_open[ho_key]


def _first_concrete(addrs: tuple[str, ...], key: str, conn: ConnectionConfig) -> str:
    for a in addrs:
        if a not in ("%any", "0.0.0.0", "::"):
            return a
    raise UsageError(f"connection {conn.name!r} needs a concrete {key} entry to initiate")
