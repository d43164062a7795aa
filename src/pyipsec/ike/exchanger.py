"""Message mechanics of one IKE SA: message IDs, retransmission, the response cache.

Theory of operation (RFC 7296 §2.1-2.3): each side numbers its own requests 0, 1, 2, …; a
response carries the request's ID. We keep one request in flight (window size 1) and queue
further exchanges. A request is retransmitted on the ``RetransmitPolicy`` schedule until its
response arrives or the tries run out (the SA then closes: the peer is unreachable).

As responder we process the request whose ID is the next expected one, and keep the
response: a retransmitted request (the previous ID) is answered from that cache without
being processed again; any other ID is dropped. Everything after IKE_SA_INIT is protected
(``ike.protect``); a message that fails its integrity check is dropped silently, since
unauthenticated input must not change state (RFC 7296 §2.21).

The exchanger knows nothing of what the payloads mean: the tasks of an :class:`Exchange`
build and process them. ``IkeError`` from a responder task becomes an error Notify in the
response; from an initiator task it closes the SA with the error as the reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyipsec.errors import DecodeError, IkeError, IntegrityError, InvalidSyntax, PyIpsecError
from pyipsec.iana.ikev2 import ExchangeType
from pyipsec.ike.fragment import Reassembler
from pyipsec.ike.protect import SkProtector
from pyipsec.ike.state import IkeSaState
from pyipsec.ike.tasks.base import Task, TaskStatus
from pyipsec.net.addr import Datagram
from pyipsec.wire.message import Message, encode_message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sk import EncryptedFragment

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["Exchange", "Exchanger"]


@dataclass(slots=True)
class Exchange:
    """One request/response pair we initiate, and the tasks that fill and read it."""

    exchange_type: ExchangeType
    tasks: list[Task]
    on_done: Callable[[], None] | None = None
    label: str = ""
    fire_and_forget: bool = False  # send once, expect nothing (a last notice before closing)
    # called with the attempt number when a retransmission is due; True: the request is rebuilt
    # (same message ID) and sent afresh, e.g. to another peer address (MOBIKE, RFC 4555 §3.8)
    on_timeout: Callable[[int], bool] | None = None


@dataclass(slots=True)
class _InFlight:
    exchange: Exchange
    message_id: int
    packets: list[bytes] = field(default_factory=list)
    attempt: int = 0
    deadline: float = 0.0


class Exchanger:
    def __init__(self, sa: IkeSa) -> None:
        self.sa = sa
        self.next_out = 0
        self.next_in = 0
        self.queue: deque[Exchange] = deque()
        self.inflight: _InFlight | None = None
        self.cached: tuple[int, list[bytes]] | None = None
        self.protect_out: SkProtector | None = None
        self.protect_in: SkProtector | None = None
        self.dropped = 0  # messages dropped (bad ICV, unexpected IDs, malformed plaintext)
        self.reassembly = {False: Reassembler(), True: Reassembler()}  # requests / responses
        self._in_response = False  # tasks may queue exchanges while a response is processed

    # -- keys --------------------------------------------------------------------------------

    def enable_protection(self) -> None:
        sa = self.sa
        assert sa.encr is not None and sa.keys is not None
        self.protect_out, self.protect_in = SkProtector.pair(
            sa.encr, sa.integ, sa.keys, initiator=sa.initiator
        )

    # -- initiating ----------------------------------------------------------------------------

    def start(self, exchange: Exchange, now: float) -> None:
        self.queue.append(exchange)
        self.kick(now)

    def busy(self) -> bool:
        return self.inflight is not None or bool(self.queue)

    def kick(self, now: float) -> None:
        if (
            self.inflight is not None
            or self._in_response
            or not self.queue
            or self.sa.state is IkeSaState.CLOSED
        ):
            return
        self._send_request(self.queue.popleft(), now)

    def _send_request(self, ex: Exchange, now: float) -> None:
        sa = self.sa
        payloads: list[Payload] = []
        for task in ex.tasks:
            task.build_i(sa, payloads)
        packets = self._encode(ex.exchange_type, self.next_out, response=False, payloads=payloads)
        if ex.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_request = packets[0]
        sa.outbox.extend(Datagram(sa.local, sa.remote, p) for p in packets)
        if ex.fire_and_forget:
            self.next_out += 1
            return
        policy = sa.ctx.config.retransmit
        self.inflight = _InFlight(ex, self.next_out, packets, 0, now + policy.interval(0, self._rand01()))
        sa.log.debug(
            "sending %s request %d (%d bytes in %d datagrams)",
            ex.exchange_type.name,
            self.next_out,
            sum(map(len, packets)),
            len(packets),
        )

    def _rand01(self) -> float:
        return int.from_bytes(self.sa.ctx.rng.random_bytes(2), "big") / 65535.0

    # -- timers ---------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        return self.inflight.deadline if self.inflight is not None else None

    def on_timer(self, now: float) -> None:
        fl = self.inflight
        if fl is None or now < fl.deadline:
            return
        sa = self.sa
        policy = sa.ctx.config.retransmit
        fl.attempt += 1
        if fl.exchange.on_timeout is not None and fl.exchange.on_timeout(fl.attempt):
            self.inflight = None
            self._send_request(fl.exchange, now)
            return
        if policy.exhausted(fl.attempt):
            sa.log.info(
                "giving up on %s request %d after %d retransmissions",
                fl.exchange.exchange_type.name,
                fl.message_id,
                policy.tries,
            )
            self.inflight = None
            self.queue.clear()
            # a Delete of the IKE SA takes effect unanswered too (its answer may be what was lost)
            deleting = [r for t in fl.exchange.tasks if (r := getattr(t, "unanswered_reason", None))]
            sa.close(
                deleting[0]
                if deleting
                else f"peer not responding: {fl.exchange.exchange_type.name} request unanswered after "
                f"{policy.tries} retransmissions",
                notify_peer=False,
            )
            return
        sa.log.debug(
            "retransmit %d of %s request %d", fl.attempt, fl.exchange.exchange_type.name, fl.message_id
        )
        for packet in fl.packets:
            sa.outbox.append(Datagram(sa.local, sa.remote, packet))
        fl.deadline = now + policy.interval(fl.attempt, self._rand01())

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, msg: Message, now: float) -> None:
        if msg.is_response:
            self._on_response(msg, now)
        else:
            self._on_request(msg, now)

    def _open(self, msg: Message) -> Message | None:
        """The message with its SK payload decrypted, or None if it must be dropped."""
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            return msg
        if self.protect_in is None:
            self.dropped += 1
            self.sa.log.debug("dropping %s: no keys yet", msg.exchange_type.name)
            return None
        try:
            last = msg.payloads[-1] if msg.payloads else None
            if isinstance(last, EncryptedFragment):
                piece = self.protect_in.unprotect_fragment(msg)
                whole = self.reassembly[msg.is_response].add(msg.message_id, piece)
                if whole is None:
                    return None  # waiting for more fragments
                inner = whole
            else:
                inner = self.protect_in.unprotect(msg)
        except (IntegrityError, DecodeError, ValueError) as exc:
            self.dropped += 1
            self.sa.log.info(
                "dropping %s %s %d: %s",
                msg.exchange_type.name,
                "response" if msg.is_response else "request",
                msg.message_id,
                exc,
            )
            return None
        return msg.with_payloads(inner)

    def _on_response(self, msg: Message, now: float) -> None:
        sa = self.sa
        fl = self.inflight
        if fl is None or msg.message_id != fl.message_id or msg.exchange_type != fl.exchange.exchange_type:
            self.dropped += 1
            sa.log.debug("dropping unexpected %s response %d", msg.exchange_type.name, msg.message_id)
            return
        plain = self._open(msg)
        if plain is None:
            return
        sa.heard(now)
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_response = msg.raw
        ex = fl.exchange
        self.inflight = None
        statuses: list[TaskStatus] = []
        self._in_response = True
        try:
            try:
                for task in ex.tasks:
                    statuses.append(task.process_i(sa, plain))
            except PyIpsecError as exc:
                raise _as_ike_error(exc) from exc
            finally:
                self._in_response = False
        except IkeError as exc:
            self.next_out += 1
            sa.log.info("%s failed: %s", ex.exchange_type.name, exc)
            sa.fail(exc, during=ex.exchange_type)
            return
        if TaskStatus.RETRY in statuses:
            # a new request (INVALID_KE_PAYLOAD, COOKIE); only IKE_SA_INIT keeps message ID 0
            sa.log.debug("retrying %s", ex.exchange_type.name)
            if ex.exchange_type is not ExchangeType.IKE_SA_INIT:
                self.next_out += 1
            self._send_request(ex, now)
            return
        self.next_out += 1
        if TaskStatus.NEED_MORE in statuses:
            self._send_request(ex, now)
            return
        if ex.on_done is not None:
            ex.on_done()
        self.kick(now)

    def _on_request(self, msg: Message, now: float) -> None:
        sa = self.sa
        if (
            self.cached is not None
            and msg.message_id == self.cached[0]
            and msg.message_id + 1 == self.next_in
        ):
            sa.log.debug(
                "retransmitted %s request %d: resending our response", msg.exchange_type.name, msg.message_id
            )
            local, remote = sa.arrived or (sa.local, sa.remote)  # to where it came from (RFC 7296 §2.11)
            for packet in self.cached[1]:
                sa.outbox.append(Datagram(local, remote, packet))
            return
        if msg.message_id != self.next_in:
            self.dropped += 1
            sa.log.debug(
                "dropping %s request %d: expected %d", msg.exchange_type.name, msg.message_id, self.next_in
            )
            return
        plain = self._open(msg)
        if plain is None:
            return
        sa.heard(now)
        if msg.exchange_type is not ExchangeType.IKE_SA_INIT:
            sa.follow_peer()
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_request = msg.raw
        from pyipsec.ike.tasks.responder import responder_tasks  # noqa: PLC0415 - tasks import us

        tasks = responder_tasks(sa, plain)
        payloads: list[Payload] = []
        fatal: IkeError | None = None
        try:
            try:
                for task in tasks:
                    task.process_r(sa, plain)
                for task in tasks:
                    task.build_r(sa, payloads)
            except PyIpsecError as exc:
                raise _as_ike_error(exc) from exc
        except IkeError as exc:
            sa.log.info(
                "answering %s request %d with %s: %s",
                msg.exchange_type.name,
                msg.message_id,
                exc.notify.name,
                exc,
            )
            payloads = [Notify.from_error(exc)]
            fatal = exc
        packets = self._encode(msg.exchange_type, msg.message_id, response=True, payloads=payloads)
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_response = packets[0]
        self.cached = (msg.message_id, packets)
        self.next_in += 1
        local, remote = sa.arrived or (sa.local, sa.remote)  # to where it came from (RFC 7296 §2.11)
        sa.outbox.extend(Datagram(local, remote, p) for p in packets)
        if fatal is not None and sa.state in (IkeSaState.CREATED, IkeSaState.CONNECTING):
            # an error while setting up ends the SA; on an established (or rekeyed, or closing)
            # SA the error answers just this request (e.g. TEMPORARY_FAILURE, §2.25)
            sa.fail(fatal, during=msg.exchange_type, notify_peer=False)
        for task in tasks:
            done = getattr(task, "after_response", None)
            if done is not None:
                done(sa, now)

    # -- encoding ---------------------------------------------------------------------------

    def _encode(
        self, exchange: ExchangeType, message_id: int, *, response: bool, payloads: list[Payload]
    ) -> list[bytes]:
        """The datagrams of one message: one, or SKF fragments when it is too large (RFC 7383)."""
        sa = self.sa
        header = Message(
            sa.spi_i,
            sa.spi_r,
            exchange_type=exchange,
            message_id=message_id,
            is_initiator=sa.initiator,
            is_response=response,
        )
        if exchange is ExchangeType.IKE_SA_INIT:
            return [encode_message(header.with_payloads(payloads))]
        assert self.protect_out is not None, "protected exchange before keys exist"
        packet = self.protect_out.protect(header, payloads, sa.ctx.rng)
        limit = sa.ctx.config.fragment_size
        fragmenting = sa.peer_fragmentation and sa.connection is not None and sa.connection.fragmentation
        if not fragmenting or len(packet) <= limit:
            return [packet]
        # A fragment's size counts the whole UDP payload, the non-ESP marker included.
        marker = 4 if sa.local.port == sa.ctx.config.nat_t_port else 0
        frags = self.protect_out.protect_fragments(
            header, payloads, sa.ctx.rng, max_message_len=limit - marker
        )
        return list(frags)


def _as_ike_error(exc: PyIpsecError) -> IkeError:
    """Input-caused errors without a Notify of their own (a bad KE value, an unusable
    algorithm) are reported to the peer as INVALID_SYNTAX, keeping their message."""
    return exc if isinstance(exc, IkeError) else InvalidSyntax(f"{type(exc).__name__}: {exc}")
