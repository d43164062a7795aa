"""The task manager: runs the exchanges of every IKE SA (strongSwan's ``task_manager_v2``).

Theory of operation. The engine decides *which* SA does *what* and *when* (an API call, a
timer); the task manager runs it: it assembles each request from the tasks that serve it
(:meth:`TaskManager.connect`, :meth:`rekey_child`, :meth:`delete_ike`, …), queues it on the
SA's :class:`~pyipsec.ike.exchanger.Exchanger` and sends one at a time; it answers the peer's
requests with the tasks its responder table picks (:data:`RESPONDER_TASKS`: exchange type ×
SA state); it retransmits, and closes an SA whose peer never answers.

Initiating (:meth:`_send_request`): every task of the exchange adds its payloads
(``build_i``); the response goes to every task (``process_i``), which may ask for another
round (NEED_MORE: EAP) or a rebuilt request (RETRY: COOKIE, INVALID_KE_PAYLOAD), or ignore an
unauthenticated error answer (IGNORE: the request stays in flight, RFC 7296 §2.21.1). An error
that answered :data:`ERROR_TRANSMISSIONS` different transmissions of the request, with no valid
response within :data:`ERROR_GRACE` after the last, is the peer's real answer: a forger racing
the peer loses to the valid response that follows its forgery, and a user whose proposals the
gateway refuses learns it after the first retransmission (5 s) rather than after the whole
schedule (2 min). What the tasks queue while a response is processed waits until it is done.

Responding (:meth:`_on_request`): a request whose (decrypted) payloads are out of place or
repeated (``wire.rules``) is answered INVALID_SYNTAX, one with an unknown critical payload
UNSUPPORTED_CRITICAL_PAYLOAD (§2.5); otherwise ``process_r`` on every task,
then ``build_r``; the response is cached for retransmitted requests; then ``after_response``.
An error answer to IKE_SA_INIT (unauthenticated) is not sent if it would be larger than the
request (no amplification). Errors are the single
boundary of DESIGN.md §7: an ``IkeError`` from a responder task becomes its Notify in the
response (and ends an SA that is still being set up); from an initiator task it closes the SA,
with a last INFORMATIONAL where RFC 7296 §2.21 asks for one (:meth:`fail`).

A task may suspend an exchange for a lookup with I/O (:class:`~pyipsec.ike.task.Suspend`: a
RADIUS round trip, a revocation check): the manager parks it — no response, retransmitted
requests dropped, nothing else started on that SA — and resumes it with the host's answer
(:meth:`answer`; :mod:`pyipsec.ike.lookups`).

Tasks reach the manager only through :class:`~pyipsec.ike.task.Followups`, which it
implements: a Delete, a return routability check, a new IKE SA made by a rekey
(:meth:`adopt`), queued requests that move to the SA replacing theirs (:meth:`migrate`).

Adding an exchange: write its task(s) in ``ike.tasks``; add a method here that queues an
:class:`Exchange` with them (initiator) and/or an entry in :data:`RESPONDER_TASKS`
(responder); call the method from the engine where it decides to start it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from pyipsec.errors import IkeError, InvalidSyntax, PyIpsecError, TemporaryFailure, UnsupportedCriticalPayload
from pyipsec.iana.ikev2 import ExchangeType, NotifyType, ProtocolId
from pyipsec.ike.config import ChildConfig
from pyipsec.ike.events import CloseCause, LookupNeeded
from pyipsec.ike.exchanger import Exchanger, InFlight
from pyipsec.ike.lookups import Answer, LeaseAnswer
from pyipsec.ike.redirect import Redirect, RedirectTask
from pyipsec.ike.sa import ChildSa, EngineContext, IkeSa
from pyipsec.ike.state import ChildEvent, IkeEvent, IkeSaState
from pyipsec.ike.task import Exchange, QueueItem, Step, Suspend, Task, TaskStatus, Unanswered
from pyipsec.ike.tasks.child_create import ChildCreateTask
from pyipsec.ike.tasks.delete import ChildDeleteTask, IkeDeleteTask, LivenessTask, last_notice
from pyipsec.ike.tasks.ike_auth import IkeAuthTask
from pyipsec.ike.tasks.ike_config import IkeConfigTask
from pyipsec.ike.tasks.ike_init import IkeInitTask
from pyipsec.ike.tasks.ike_mobike import (
    AddressListTask,
    ReturnRoutabilityTask,
    UpdateSaAddressesTask,
    follow_peer,
)
from pyipsec.ike.tasks.ike_rekey import IkeRekeyTask
from pyipsec.ike.tasks.informational import InformationalResponder
from pyipsec.net.addr import Datagram
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import SecurityAssociation
from pyipsec.wire.rules import MessageKind, check_payloads

__all__ = ["ERROR_GRACE", "ERROR_TRANSMISSIONS", "MESSAGE_ID_REKEY", "RESPONDER_TASKS", "TaskManager"]

_MAX_MESSAGE_ID = 0xFFFFFFFF
MESSAGE_ID_REKEY = _MAX_MESSAGE_ID - 0xFFFF
#: An unauthenticated error answering this many transmissions of a request ends it, unless a
#: valid response follows within ERROR_GRACE seconds (module docstring).
ERROR_TRANSMISSIONS, ERROR_GRACE = 2, 1.0
"""From this message ID on (ours or the peer's), an established IKE SA is rekeyed."""

_S = IkeSaState
_LIVE = frozenset({_S.ESTABLISHED, _S.REKEYING, _S.REAUTHENTICATING, _S.PENDING, _S.REDUNDANT})


def _create_child_sa(req: Message) -> list[Task]:
    """CREATE_CHILD_SA: an IKE proposal rekeys the IKE SA; else a new Child SA or a rekey."""
    sa_payload = req.find(SecurityAssociation)
    if sa_payload is not None and any(p.protocol is ProtocolId.IKE for p in sa_payload.proposals):
        return [IkeRekeyTask()]
    return [ChildCreateTask(in_ike_auth=False)]


_SERVES: Mapping[ExchangeType, tuple[frozenset[IkeSaState], Callable[[Message], list[Task]]]] = {
    ExchangeType.IKE_SA_INIT: (frozenset({_S.CONNECTING}), lambda req: [IkeInitTask()]),
    ExchangeType.IKE_AUTH: (
        frozenset({_S.CONNECTING}),
        lambda req: [IkeAuthTask(), IkeConfigTask(), ChildCreateTask(in_ike_auth=True)],
    ),
    # an SA that is rekeyed or being deleted answers TEMPORARY_FAILURE (RFC 7296 §2.25)
    ExchangeType.CREATE_CHILD_SA: (_LIVE, _create_child_sa),
    ExchangeType.INFORMATIONAL: (frozenset(IkeSaState) - {_S.CLOSED}, lambda req: [InformationalResponder()]),
}

RESPONDER_TASKS: Mapping[tuple[ExchangeType, IkeSaState], Callable[[Message], list[Task]]] = {
    (exchange, state): tasks for exchange, (states, tasks) in _SERVES.items() for state in states
}
"""Which tasks answer a request: by exchange type and the SA's state."""


@dataclass(frozen=True, slots=True)
class _Parked:
    """Where an exchange stands while it waits for a lookup: the message being processed, its
    tasks, the one that suspended (``index``) and, for a response, the statuses so far."""

    index: int
    exchange: Exchange | None  # ours (a response being processed), None: the peer's request
    message: Message
    tasks: list[Task]
    statuses: list[TaskStatus]
    ticket: int = 0


class _Refuse(Task):
    """Answers a request the table has no tasks for with one error Notify."""

    def __init__(self, error: IkeError) -> None:
        self.error = error

    def process_r(self, sa: IkeSa, req: Message) -> None:
        raise self.error


def _responders(sa: IkeSa, req: Message) -> list[Task]:
    tasks = RESPONDER_TASKS.get((req.exchange_type, sa.state))
    if tasks is not None:
        return tasks(req)
    if req.exchange_type is ExchangeType.CREATE_CHILD_SA:
        return [_Refuse(TemporaryFailure(f"IKE SA is {sa.state.name}, not established"))]
    if req.exchange_type in _SERVES:
        return [_Refuse(InvalidSyntax(f"{req.exchange_type.name} on an SA that is {sa.state.name}"))]
    return [_Refuse(InvalidSyntax(f"unsupported exchange {req.exchange_type.name}"))]


def _as_ike_error(exc: PyIpsecError) -> IkeError:
    """Input-caused errors without a Notify of their own (a bad KE value, an unusable
    algorithm) are reported to the peer as INVALID_SYNTAX, keeping their message."""
    return exc if isinstance(exc, IkeError) else InvalidSyntax(f"{type(exc).__name__}: {exc}")


class TaskManager:
    """Runs the exchanges of every IKE SA of one engine; ``register`` adds an IKE SA made by a
    rekey to the engine's tables."""

    def __init__(self, register: Callable[[IkeSa], None]) -> None:
        self._register = register
        self._exchangers: dict[int, Exchanger] = {}
        self._parked: dict[int, _Parked] = {}  # by SA id: exchanges waiting for a lookup
        self._tickets: dict[int, int] = {}  # lookup ticket → SA id
        self._next_ticket = 0

    def exchanger(self, sa: IkeSa) -> Exchanger:
        ex = self._exchangers.get(sa.sa_id)
        if ex is None:
            ex = self._exchangers[sa.sa_id] = Exchanger(sa)
        return ex

    def forget(self, sa: IkeSa) -> None:
        ex = self._exchangers.pop(sa.sa_id, None)
        if ex is not None:
            ex.release()
        at = self._parked.pop(sa.sa_id, None)
        if at is not None:
            self._tickets.pop(at.ticket, None)

    def deadline(self, sa: IkeSa) -> float | None:
        ex = self._exchangers.get(sa.sa_id)
        fl = ex.inflight if ex is not None else None
        return fl.deadline if fl is not None else None

    def busy(self, sa: IkeSa) -> bool:
        ex = self._exchangers.get(sa.sa_id)
        return ex is not None and ex.busy()

    def has_outbox(self, sa: IkeSa) -> bool:
        ex = self._exchangers.get(sa.sa_id)
        return ex is not None and bool(ex.outbox)

    def take_outbox(self, sa: IkeSa) -> list[Datagram]:
        ex = self._exchangers.get(sa.sa_id)
        if ex is None or not ex.outbox:
            return []
        out, ex.outbox = ex.outbox, []
        return out

    # -- what the engine starts -----------------------------------------------------------------

    def connect(self, sa: IkeSa, children: Sequence[ChildConfig], then: Step | None = None) -> None:
        """A new IKE SA as original initiator: IKE_SA_INIT, IKE_AUTH with the first Child SA,
        CREATE_CHILD_SA for each further one, then ``then``."""
        first = children[0] if children else None
        sa.first_child = first
        self.queue(sa, Exchange(ExchangeType.IKE_SA_INIT, [IkeInitTask()]))
        auth: list[Task] = [IkeAuthTask(), IkeConfigTask(), ChildCreateTask(in_ike_auth=True, config=first)]
        self.queue(sa, Exchange(ExchangeType.IKE_AUTH, auth))
        for cfg in children[1:]:
            self.create_child(sa, cfg)
        if then is not None:
            self.queue(sa, then)

    def create_child(self, sa: IkeSa, cfg: ChildConfig) -> None:
        self.queue(
            sa, Exchange(ExchangeType.CREATE_CHILD_SA, [ChildCreateTask(in_ike_auth=False, config=cfg)])
        )

    def rekey_child(self, sa: IkeSa, child: ChildSa) -> None:
        sa.log.info(
            "rekeying Child SA %s{%d}",
            child.name,
            child.child_id,
            extra={"event": "child_rekey", "child": child.name, "child_id": child.child_id},
        )
        child.apply(ChildEvent.REKEY_START)
        task = ChildCreateTask(in_ike_auth=False, rekey=child)
        self.queue(sa, Exchange(ExchangeType.CREATE_CHILD_SA, [task]))

    def rekey_ike(self, sa: IkeSa) -> None:
        sa.log.info("rekeying the IKE SA", extra={"event": "ike_rekey"})
        sa.apply(IkeEvent.REKEY_START)
        self.queue(sa, Exchange(ExchangeType.CREATE_CHILD_SA, [IkeRekeyTask()]))

    def redirect(self, sa: IkeSa, gateway: str) -> None:
        """Send the client of this established SA to ``gateway`` (RFC 5685 §5, ike.redirect)."""
        self.queue(sa, Exchange(ExchangeType.INFORMATIONAL, [RedirectTask(gateway)], label="redirect"))

    def check_liveness(self, sa: IkeSa) -> None:
        self.queue(sa, Exchange(ExchangeType.INFORMATIONAL, [LivenessTask()]))

    def move(self, sa: IkeSa, now: float) -> None:
        """MOBIKE: tell the peer our new addresses (``sa.local``/``sa.remote`` are set)."""
        fl = self.exchanger(sa).inflight
        if fl is not None:  # retransmit the request in flight from the new address too
            fl.deadline = now
        task = UpdateSaAddressesTask(sa)
        self.queue(sa, Exchange(ExchangeType.INFORMATIONAL, [task], label="MOBIKE update"))

    def announce_addresses(self, sa: IkeSa) -> None:
        """MOBIKE: our address list changed (RFC 4555 §3.6)."""
        self.queue(sa, Exchange(ExchangeType.INFORMATIONAL, [AddressListTask(sa)], label="MOBIKE addresses"))

    # -- Followups: what tasks ask for --------------------------------------------------------------

    def delete_ike(self, sa: IkeSa, cause: CloseCause, reason: str) -> None:
        """Delete the IKE SA (what was queued on it is dropped). An SA that still serves is
        DELETING from now on; a REKEYED or REDUNDANT one stays what it is."""
        if sa.state in (_S.ESTABLISHED, _S.REKEYING, _S.REAUTHENTICATING):
            sa.apply(IkeEvent.DELETE)
        self.exchanger(sa).queue.clear()
        self.queue(sa, Exchange(ExchangeType.INFORMATIONAL, [IkeDeleteTask(cause, reason)]))

    def delete_child(self, sa: IkeSa, child: ChildSa, reason: str, *, successors: bool = False) -> None:
        """Delete ``child``; with ``successors`` (the host's request) also what replaces it by the
        time the Delete is sent."""
        task = ChildDeleteTask(child, reason, successors=successors)
        self.queue(sa, Exchange(ExchangeType.INFORMATIONAL, [task]))

    def check_return_routability(self, sa: IkeSa) -> None:
        sa.log.info("MOBIKE: checking return routability of %s", sa.remote.ip)
        self.queue(sa, Exchange(ExchangeType.INFORMATIONAL, [ReturnRoutabilityTask(sa)]))

    def adopt(self, sa: IkeSa) -> None:
        self._register(sa)

    def migrate(self, old: IkeSa, new: IkeSa) -> None:
        src, dst = self.exchanger(old), self.exchanger(new)
        dst.queue.extend(src.queue)
        src.queue.clear()
        self.kick(new)

    def in_flight(self, sa: IkeSa) -> Exchange | None:
        fl = self.exchanger(sa).inflight
        return fl.exchange if fl is not None else None

    # -- queue ----------------------------------------------------------------------------------

    def queue(self, sa: IkeSa, item: QueueItem) -> None:
        self.exchanger(sa).queue.append(item)
        self.kick(sa)

    def kick(self, sa: IkeSa) -> None:
        """Start the next queued exchange unless one is in flight (window size 1); first an IKE
        rekey if the message IDs of either direction near 2^32 (RFC 7296 §2.2: the SA "MUST be
        closed or rekeyed"; the new SA counts from 0 again)."""
        ex = self.exchanger(sa)
        if (
            max(ex.next_out, ex.next_in) >= MESSAGE_ID_REKEY
            and sa.state is _S.ESTABLISHED
            and ex.inflight is None
            and not ex.in_response
            and sa.sa_id not in self._parked
        ):
            sa.log.info("message IDs near 2^32: rekeying the IKE SA")
            sa.apply(IkeEvent.REKEY_START)
            ex.queue.insert(0, Exchange(ExchangeType.CREATE_CHILD_SA, [IkeRekeyTask()]))
        while (
            ex.inflight is None
            and not ex.in_response
            and sa.sa_id not in self._parked
            and ex.queue
            and sa.state is not _S.CLOSED
        ):
            item = ex.queue.pop(0)
            if isinstance(item, Step):
                item.run(sa)
            else:
                self._send_request(sa, item)

    def _send_request(self, sa: IkeSa, exchange: Exchange) -> None:
        ex = self.exchanger(sa)
        if ex.next_out > _MAX_MESSAGE_ID:  # the rekey above did not happen in time
            self.close(sa, CloseCause.FAILED, "message IDs exhausted (2^32 requests sent)")
            return
        payloads: list[Payload] = []
        for task in exchange.tasks:
            task.build_i(sa, payloads)
        packets = ex.encode(exchange.exchange_type, ex.next_out, response=False, payloads=payloads)
        if exchange.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_request = packets[0]
        ex.send(packets)
        if exchange.fire_and_forget:
            ex.next_out += 1
            return
        policy = sa.ctx.config.retransmit
        deadline = sa.ctx.now + policy.interval(0, _rand01(sa))
        ex.inflight = InFlight(exchange, ex.next_out, packets, 0, deadline)
        sa.log.debug(
            "sending %s request %d%s (%d bytes in %d datagrams)",
            exchange.exchange_type.name,
            ex.next_out,
            f" ({exchange.label})" if exchange.label else "",
            sum(map(len, packets)),
            len(packets),
        )

    # -- retransmission -------------------------------------------------------------------------

    def on_timer(self, sa: IkeSa, now: float) -> None:
        ex = self.exchanger(sa)
        fl = ex.inflight
        if fl is None or now < fl.deadline:
            return
        policy = sa.ctx.config.retransmit
        if len(fl.errored) >= ERROR_TRANSMISSIONS:
            how = _unanswered(sa, fl)
            if how is not None:  # the error stands: it is the peer's answer
                ex.inflight = None
                ex.queue.clear()
                self.close(sa, how.cause, how.reason, notify=how.error)
                return
        fl.attempt += 1
        if any(task.on_timeout(sa, fl.attempt) for task in fl.exchange.tasks):
            ex.inflight = None
            self._send_request(sa, fl.exchange)
            return
        name = fl.exchange.exchange_type.name
        if policy.exhausted(fl.attempt):
            sa.log.info(
                "giving up on %s request %d after %d retransmissions",
                name,
                fl.message_id,
                policy.tries,
                extra={"event": "timeout"},
            )
            ex.inflight = None
            ex.queue.clear()
            how = _unanswered(sa, fl)
            if how is not None:  # a Delete of the IKE SA takes effect unanswered too
                self.close(sa, how.cause, how.reason, notify=how.error)
            else:
                reason = (
                    f"peer not responding: {name} request unanswered after {policy.tries} retransmissions"
                    + _TIMEOUT_HINTS.get(fl.exchange.exchange_type, "")
                )
                self.close(sa, CloseCause.TIMEOUT, reason)
            return
        sa.log.debug("retransmit %d of %s request %d", fl.attempt, name, fl.message_id)
        ex.send(fl.packets)
        fl.deadline = now + policy.interval(fl.attempt, _rand01(sa))

    # -- receiving ------------------------------------------------------------------------------

    def receive(self, sa: IkeSa, msg: Message, now: float) -> None:
        if msg.is_response:
            self._on_response(sa, msg, now)
        else:
            self._on_request(sa, msg, now)

    def _on_response(self, sa: IkeSa, msg: Message, now: float) -> None:
        ex = self.exchanger(sa)
        if not ex.expected_response(msg):
            return
        plain = ex.open(msg)
        if plain is None:
            return
        sa.heard(now)
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_response = msg.raw
        waiting = ex.inflight
        assert waiting is not None
        exchange = waiting.exchange
        ex.inflight = None
        self._process_response(sa, _Parked(0, exchange, plain, exchange.tasks, []), None, waiting)

    def _process_response(
        self, sa: IkeSa, at: _Parked, answer: Answer | None, waiting: InFlight | None = None
    ) -> None:
        """Give the response to the exchange's tasks from ``at.index`` on (the first of them
        resumes with ``answer`` if given), then act on their statuses. ``waiting`` is the
        request it answers: IGNORE puts it back in flight."""
        ex = self.exchanger(sa)
        exchange = at.exchange
        assert exchange is not None
        statuses = at.statuses
        ex.in_response = True
        try:
            try:
                for index in range(at.index, len(at.tasks)):
                    task = at.tasks[index]
                    if answer is not None and index == at.index:
                        statuses.append(task.resume(sa, answer))
                    else:
                        statuses.append(task.process_i(sa, at.message))
            except PyIpsecError as exc:
                raise _as_ike_error(exc) from exc
            finally:
                ex.in_response = False
        except Suspend as wait:
            self._park(sa, replace(at, index=index), wait)
            return
        except IkeError as exc:
            ex.next_out += 1
            if not isinstance(exc, Redirect):  # (not a failure; ike_init logged it)
                sa.log.info(
                    "%s failed: %s", exchange.exchange_type.name, exc, extra={"event": "exchange_failed"}
                )
            self.fail(sa, exc, during=exchange.exchange_type)
            return
        if TaskStatus.IGNORE in statuses and waiting is not None:
            # an unauthenticated error answer: wait on (RFC 7296 §2.21.1); once it answered
            # earlier transmissions too, for ERROR_GRACE more at most (module docstring)
            waiting.errored.add(waiting.attempt)
            if len(waiting.errored) >= ERROR_TRANSMISSIONS:
                waiting.deadline = min(waiting.deadline, sa.ctx.now + ERROR_GRACE)
            ex.inflight = waiting
            return
        if TaskStatus.RETRY in statuses:
            # a new request (INVALID_KE_PAYLOAD, COOKIE); only IKE_SA_INIT keeps message ID 0
            sa.log.debug("retrying %s", exchange.exchange_type.name)
            if exchange.exchange_type is not ExchangeType.IKE_SA_INIT:
                ex.next_out += 1
            self._send_request(sa, exchange)
            return
        ex.next_out += 1
        if TaskStatus.NEED_MORE in statuses:
            self._send_request(sa, exchange)
            return
        self.kick(sa)

    def _on_request(self, sa: IkeSa, msg: Message, now: float) -> None:
        ex = self.exchanger(sa)
        if ex.retransmitted_request(msg) or not ex.expected_request(msg):
            return
        if sa.sa_id in self._parked:  # the request waits for a lookup: its retransmission too
            sa.log.debug("request %d waits for a lookup; dropping its retransmission", msg.message_id)
            return
        refusal: IkeError | None = None
        try:
            plain = ex.open(msg)
        except UnsupportedCriticalPayload as exc:  # RFC 7296 §2.5: rejected, and answered so
            plain, refusal = msg.with_payloads(()), exc
        if plain is None:
            return
        sa.heard(now)
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_request = msg.raw
        elif refusal is None:
            follow_peer(sa)
        try:
            if refusal is not None:
                raise refusal
            check_payloads(MessageKind.of(plain), plain.payloads)  # out of place, or repeated
            tasks = _responders(sa, plain)
        except InvalidSyntax as exc:
            tasks = [_Refuse(exc)]
        self._respond(sa, _Parked(0, None, plain, tasks, []), None)

    def _respond(self, sa: IkeSa, at: _Parked, answer: Answer | None) -> None:
        """``process_r`` on the tasks from ``at.index`` on (the first resumes with ``answer`` if
        given), then ``build_r`` on all of them; send and cache the response."""
        ex = self.exchanger(sa)
        msg, tasks = at.message, at.tasks
        payloads: list[Payload] = []
        fatal: IkeError | None = None
        try:
            try:
                for index in range(at.index, len(tasks)):
                    if answer is not None and index == at.index:
                        tasks[index].resume(sa, answer)
                    else:
                        tasks[index].process_r(sa, msg)
                for task in tasks:
                    task.build_r(sa, payloads)
            except PyIpsecError as exc:
                raise _as_ike_error(exc) from exc
        except Suspend as wait:
            self._park(sa, replace(at, index=index), wait)
            return
        except IkeError as exc:
            sa.log.info(
                "answering %s request %d with %s: %s",
                msg.exchange_type.name,
                msg.message_id,
                exc.notify.name,
                exc,
                extra={"event": "request_refused"},
            )
            payloads = [Notify.from_error(exc)]
            fatal = exc
        packets = ex.encode(msg.exchange_type, msg.message_id, response=True, payloads=payloads)
        if msg.exchange_type is ExchangeType.IKE_SA_INIT:
            sa.init_response = packets[0]
            if fatal is not None and len(packets[0]) > len(msg.raw):
                packets = []  # an unauthenticated error answer is never larger than the request
        ex.cached = (msg.message_id, msg.exchange_type, packets)
        ex.next_in += 1
        ex.send(packets, sa.arrived)  # to where it came from (RFC 7296 §2.11)
        if (
            fatal is not None
            and sa.state in (_S.CREATED, _S.CONNECTING)
            and not isinstance(fatal, TemporaryFailure)
        ):
            # an error while setting up ends the SA; on an established (or rekeyed, or closing)
            # SA the error answers just this request (e.g. TEMPORARY_FAILURE, §2.25), and so
            # does TEMPORARY_FAILURE to a CREATE_CHILD_SA that overtook the last IKE_AUTH
            # response (the peer is established and rekeys at once; it retries later)
            self.fail(sa, fatal, during=msg.exchange_type, notify_peer=False)
        for task in tasks:
            task.after_response(sa)

    # -- lookups (ike.lookups) ------------------------------------------------------------------

    def _park(self, sa: IkeSa, at: _Parked, wait: Suspend) -> None:
        self._next_ticket += 1
        ticket = self._next_ticket
        self._parked[sa.sa_id] = replace(at, ticket=ticket)
        self._tickets[ticket] = sa.sa_id
        sa.log.debug("waiting for %s (ticket %d)", type(wait.lookup).__name__, ticket)
        sa.emit(LookupNeeded(sa.sa_id, ticket, wait.lookup))

    def waiting_sa(self, ticket: int) -> int | None:
        """The IKE SA whose exchange waits for ``ticket``, if it still does."""
        return self._tickets.get(ticket)

    def answer(self, sa: IkeSa, ticket: int, answer: Answer) -> None:
        """The host's answer to a lookup: the parked exchange carries on."""
        self._tickets.pop(ticket, None)
        at = self._parked.get(sa.sa_id)
        if at is None or at.ticket != ticket or sa.state is _S.CLOSED:
            self.unused(sa.ctx, answer)
            return
        del self._parked[sa.sa_id]
        if at.exchange is not None:
            self._process_response(sa, at, answer)
        else:
            self._respond(sa, at, answer)
        self.kick(sa)

    @staticmethod
    def unused(ctx: EngineContext, answer: Answer) -> None:
        """An answer nobody waits for any more: an address leased for it goes back to its pool."""
        if isinstance(answer, LeaseAnswer) and answer.address is not None:
            pool = ctx.config.pools.get(answer.pool)
            if pool is not None:
                ctx.pools.release(pool, answer.address)

    # -- ending ---------------------------------------------------------------------------------

    def fail(self, sa: IkeSa, exc: Exception, *, during: ExchangeType, notify_peer: bool = True) -> None:
        """Close the SA because ``exc`` happened in the exchange ``during``.

        The reason names the exchange, the Notify type for protocol errors, and the detail:
        "IKE_AUTH failed: AUTHENTICATION_FAILED: peer identity ... is not confirmed by ...".
        """
        detail = str(exc)
        if isinstance(exc, IkeError):
            detail = (
                f"{exc.notify.name}: {detail}" if detail and detail != exc.notify.name else exc.notify.name
            )
        if isinstance(exc, Redirect):  # not a failure: the peer was sent elsewhere (ike.redirect)
            self.close(sa, CloseCause.REDIRECTED, f"{during.name}: {exc}", error=exc)
            return
        self.close(
            sa, CloseCause.FAILED, f"{during.name} failed: {detail}", notify_peer=notify_peer, error=exc
        )

    def close(
        self,
        sa: IkeSa,
        cause: CloseCause,
        reason: str,
        *,
        notify_peer: bool = False,
        error: Exception | None = None,
        notify: NotifyType | None = None,
    ) -> None:
        """Tear the SA down now. With ``notify_peer`` and keys in place, a last INFORMATIONAL
        goes out first (a Delete for an established SA, the error Notify otherwise), sent once
        and not awaited. The closing event names the error Notify: ``notify``, else ``error``'s."""
        if sa.state is _S.CLOSED:
            return
        at = self._parked.pop(sa.sa_id, None)
        if at is not None:
            self._tickets.pop(at.ticket, None)
        ex = self.exchanger(sa)
        ex.inflight = None
        ex.queue.clear()
        if notify_peer and sa.keys is not None:
            notice = Exchange(ExchangeType.INFORMATIONAL, [last_notice(sa, error)], fire_and_forget=True)
            self._send_request(sa, notice)
        sa.close(cause, reason, notify or (error.notify if isinstance(error, IkeError) else None))


# What to check when a peer never answered (appended to the close reason)
_TIMEOUT_HINTS = {
    ExchangeType.IKE_SA_INIT: (
        " — check that the peer's address is reachable and UDP 500 and 4500 are open to it"
    ),
    ExchangeType.IKE_AUTH: (
        " — large IKE_AUTH messages (certificates) may be dropped on the way: "
        "check UDP 4500 and IP fragments, or lower ike_fragment_size"
    ),
}


def _rand01(sa: IkeSa) -> float:
    return int.from_bytes(sa.ctx.rng.random_bytes(2), "big") / 65535.0


def _unanswered(sa: IkeSa, fl: InFlight) -> Unanswered | None:
    """How the first task that has a say ends ``sa`` when ``fl`` goes unanswered, if one does."""
    return next((u for task in fl.exchange.tasks if (u := task.unanswered(sa)) is not None), None)
