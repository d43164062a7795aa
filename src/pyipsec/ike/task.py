"""Tasks, exchanges and steps: the units the task manager runs (DESIGN.md §3).

Theory of operation (strongSwan's ``task_manager_v2`` is the model). Protocol logic lives in
tasks, one per concern (``ike.tasks``): IKE_AUTH, for example, runs the IKE_AUTH task, the
configuration-payload task and the Child SA task. An :class:`Exchange` is one request/response
pair we initiate: its exchange type and the tasks that fill the request and read the response.
The task manager (``ike.manager``) keeps a queue of them per IKE SA and runs one at a time
(window size 1, RFC 7296 §2.3). A :class:`Step` in that queue runs locally when its turn
comes, without a message ("the reauthentication's Child SAs are all there: delete the old SA").

The hooks of a :class:`Task`, in the order the manager calls them:

- initiator: ``build_i`` fills the request; ``process_i`` reads the response and returns
  :class:`TaskStatus` (DONE; NEED_MORE: another round of the same exchange type, e.g. EAP;
  RETRY: resend the request rebuilt, e.g. after COOKIE or INVALID_KE_PAYLOAD).
  ``on_timeout`` may send a retransmission elsewhere (MOBIKE path tests); ``unanswered`` says
  how to close the SA when the peer never answers.
- responder: ``process_r`` reads the request, then ``build_r`` fills the response;
  ``after_response`` runs once the response is on its way (close the SA after a Delete, …).
- either side: ``process_i``/``process_r`` may raise :class:`Suspend` with a
  :class:`~pyipsec.ike.lookups.Lookup` (a RADIUS round trip, a revocation check); the exchange
  waits until the host answers, then ``resume`` gets the answer and carries on in place of the
  rest of the hook (``ike.lookups`` explains the round trip).

Tasks read and write the :class:`~pyipsec.ike.sa.IkeSa` and raise ``IkeError`` for protocol
failures; they never build datagrams or touch message IDs. What they need done beyond their
own exchange — a Delete, a check of the peer's new address, a new IKE SA joining the engine —
they ask of the task manager through :class:`Followups` (``sa.ctx.followups``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import TYPE_CHECKING, Protocol

from pyipsec.iana.ikev2 import ExchangeType, NotifyType
from pyipsec.ike.events import CloseCause
from pyipsec.ike.lookups import Answer, Lookup
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload

if TYPE_CHECKING:
    from pyipsec.ike.sa import ChildSa, IkeSa

__all__ = ["Exchange", "Followups", "QueueItem", "Step", "Suspend", "Task", "TaskStatus", "Unanswered"]


class TaskStatus(Enum):
    DONE = auto()
    NEED_MORE = auto()  # another round of the same exchange type (EAP, several auth rounds)
    RETRY = auto()  # resend this request rebuilt, same message ID (COOKIE, INVALID_KE_PAYLOAD)
    # an unauthenticated answer not acted upon: the request stays in flight, retransmitted as
    # before, until a valid response comes or it times out (RFC 7296 §2.21.1)
    IGNORE = auto()


@dataclass(frozen=True, slots=True)
class Unanswered:
    """How the SA closes when a task's request is never answered."""

    cause: CloseCause
    reason: str
    error: NotifyType | None = None  # the error Notify behind it, if one is


class Suspend(Exception):
    """Raised by ``process_i``/``process_r``: wait for ``lookup`` to be answered, then ``resume``."""

    def __init__(self, lookup: Lookup) -> None:
        super().__init__(type(lookup).__name__)
        self.lookup = lookup


class Task:
    """One concern of one exchange. Each hook defaults to "nothing to do"; the hooks of a side
    a task does not serve raise (a task in the wrong table is a bug)."""

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        raise AssertionError(f"{type(self).__name__} is a responder task")

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        raise AssertionError(f"{type(self).__name__} is a responder task")

    def on_timeout(self, sa: IkeSa, attempt: int) -> bool:
        """A retransmission is due (``attempt`` ≥ 1); True: rebuild the request and send it
        afresh with the same message ID (e.g. to another peer address, RFC 4555 §3.8)."""
        return False

    def unanswered(self, sa: IkeSa) -> Unanswered | None:
        """How the SA closes if the request goes unanswered; None: "peer not responding"."""
        return None

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        raise AssertionError(f"{type(self).__name__} is an initiator task")

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        raise AssertionError(f"{type(self).__name__} is an initiator task")

    def after_response(self, sa: IkeSa) -> None:
        """The response is on its way: act on what the request asked for (close, follow up)."""

    # -- either side ----------------------------------------------------------------------------

    def resume(self, sa: IkeSa, answer: Answer) -> TaskStatus:
        """The answer to this task's :class:`Suspend` arrived: finish what ``process_i`` or
        ``process_r`` started (a responder returns DONE); may suspend again."""
        raise AssertionError(f"{type(self).__name__} never suspends")


@dataclass(slots=True)
class Exchange:
    """One request/response pair we initiate, and the tasks that fill and read it."""

    exchange_type: ExchangeType
    tasks: list[Task]
    label: str = ""  # what it is for, in the log ("MOBIKE update")
    fire_and_forget: bool = False  # send once, expect nothing (a last notice before closing)


@dataclass(slots=True)
class Step:
    """Work that waits in an SA's queue for the exchanges before it, then runs without a message."""

    run: Callable[[IkeSa], None]


QueueItem = Exchange | Step


class Followups(Protocol):
    """What a task may ask of the task manager beyond its own exchange."""

    def delete_ike(self, sa: IkeSa, cause: CloseCause, reason: str) -> None:
        """Delete ``sa`` with an INFORMATIONAL exchange; it closes with ``cause`` when answered."""

    def delete_child(self, sa: IkeSa, child: ChildSa, reason: str) -> None:
        """Delete one Child SA of ``sa`` (our inbound SPI in a Delete payload)."""

    def check_return_routability(self, sa: IkeSa) -> None:
        """MOBIKE responder: check that the peer answers at its new address (RFC 4555 §3.5)."""

    def adopt(self, sa: IkeSa) -> None:
        """A new IKE SA made by a rekey joins the engine (its SPI table and timers)."""

    def migrate(self, old: IkeSa, new: IkeSa) -> None:
        """Exchanges queued on ``old`` go over ``new``, which replaces it (task migration)."""

    def in_flight(self, sa: IkeSa) -> Exchange | None:
        """The exchange of ours on ``sa`` that waits for its response, if any."""
