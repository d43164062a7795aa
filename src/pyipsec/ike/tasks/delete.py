"""INFORMATIONAL requests we send: Deletes, liveness checks, a last notice (RFC 7296 §1.4).

:class:`IkeDeleteTask` sends a Delete with protocol IKE; the SA closes when the response
arrives, or when none ever does (its answer may be what was lost). :class:`ChildDeleteTask`
lists our inbound SPI; the peer answers with its own, and the Child SA is gone. A Delete the
host asked for (``successors``) that waited in the queue while the Child SA was rekeyed
deletes what replaced it as well (or the peer's pending rekey of it): the host meant the
tunnel, not one SPI of it. A Child SA
that lost a rekey collision meanwhile (REDUNDANT) keeps its state: the peer deletes it too.
:class:`LivenessTask` is an empty request the peer must answer (DPD). :class:`NoticeTask`
carries a final message sent once, unawaited, when we close an SA on our own: a Delete, or
the error that ended the SA while it was being set up (§2.21.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyipsec.errors import IkeError
from pyipsec.iana.ikev2 import ProtocolId
from pyipsec.ike.events import CloseCause
from pyipsec.ike.state import ChildEvent, ChildSaState, IkeSaState
from pyipsec.ike.task import Task, TaskStatus, Unanswered
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.sa import ChildSa, IkeSa

__all__ = ["ChildDeleteTask", "IkeDeleteTask", "LivenessTask", "NoticeTask", "last_notice"]


class IkeDeleteTask(Task):
    def __init__(self, cause: CloseCause = CloseCause.LOCAL, reason: str = "deleted locally") -> None:
        self.cause = cause
        self.reason = reason

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.append(Delete(ProtocolId.IKE, ()))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        sa.close(self.cause, self.reason)
        return TaskStatus.DONE

    def unanswered(self, sa: IkeSa) -> Unanswered:
        return Unanswered(self.cause, self.reason)  # the Delete takes effect all the same


class ChildDeleteTask(Task):
    def __init__(self, child: ChildSa, reason: str = "deleted locally", *, successors: bool = False) -> None:
        self.child = child
        self.reason = reason
        self.successors = successors
        self.children = [child]

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        while self.successors:  # rekeyed while this Delete was queued: its successors go too
            last = self.children[-1]
            nxt = last.successor if last.state in (ChildSaState.REKEYED, ChildSaState.CLOSED) else None
            if nxt is None and last.peer_rekey is not None:  # the peer's rekey, pending
                nxt = last.peer_rekey[2]
            if nxt is None or nxt in self.children:
                break
            self.children.append(nxt)
        for child in self.children:
            if child.state in (ChildSaState.INSTALLED, ChildSaState.REKEYING, ChildSaState.REKEYED):
                child.apply(ChildEvent.DELETE)
        spis = tuple(c.spi_in for c in self.children if c.state is not ChildSaState.CLOSED)
        if spis:  # (else an empty request: what it was for is gone already)
            req.append(Delete(ProtocolId.ESP, spis))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        for child in self.children:
            sa.remove_child(child, self.reason)
        return TaskStatus.DONE


class LivenessTask(Task):
    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        pass

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        return TaskStatus.DONE


class NoticeTask(Task):
    def __init__(self, payloads: list[Payload]) -> None:
        self.payloads = payloads

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.extend(self.payloads)

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:  # pragma: no cover - never awaited
        return TaskStatus.DONE


def last_notice(sa: IkeSa, error: Exception | None) -> NoticeTask:
    """What we send once before closing on our own: a Delete, or the error (§2.21.2)."""
    if sa.state is not IkeSaState.CONNECTING or error is None or not isinstance(error, IkeError):
        return NoticeTask([Delete(ProtocolId.IKE, ())])
    return NoticeTask([Notify.from_error(error)])
