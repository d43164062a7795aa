"""Which tasks answer a request: chosen by exchange type and SA state (DESIGN.md §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyipsec.errors import InvalidSyntax, TemporaryFailure
from pyipsec.iana.ikev2 import ExchangeType, NotifyType, ProtocolId
from pyipsec.ike.state import IkeSaState
from pyipsec.ike.tasks.base import Task
from pyipsec.ike.tasks.child_create import ChildCreateTask
from pyipsec.ike.tasks.ike_auth import IkeAuthTask
from pyipsec.ike.tasks.ike_init import IkeInitTask
from pyipsec.ike.tasks.informational import InformationalResponder
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.sa import SecurityAssociation

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["responder_tasks"]


class _Reject:
    """Answers a request we cannot serve with one error Notify."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def build_i(self, sa: IkeSa, req: list[object]) -> None:  # pragma: no cover
        raise AssertionError

    def process_i(self, sa: IkeSa, resp: Message) -> object:  # pragma: no cover
        raise AssertionError

    def process_r(self, sa: IkeSa, req: Message) -> None:
        raise self.error

    def build_r(self, sa: IkeSa, resp: list[object]) -> None:  # pragma: no cover
        raise AssertionError


def responder_tasks(sa: IkeSa, req: Message) -> list[Task]:
    ex = req.exchange_type
    if ex is ExchangeType.IKE_SA_INIT:
        return [IkeInitTask()]
    if ex is ExchangeType.IKE_AUTH:
        return [IkeAuthTask(), ChildCreateTask(in_ike_auth=True)]
    if ex is ExchangeType.INFORMATIONAL:
        return [InformationalResponder()]
    if ex is ExchangeType.CREATE_CHILD_SA:
        if sa.state is not IkeSaState.ESTABLISHED:
            return [_Reject(TemporaryFailure("IKE SA is not established"))]  # type: ignore[list-item]
        sa_payload = req.find(SecurityAssociation)
        rekey = req.notify(NotifyType.REKEY_SA) is not None
        if rekey or (
            sa_payload is not None and any(p.protocol is ProtocolId.IKE for p in sa_payload.proposals)
        ):
            # Rekeying arrives with its own issue; until then the peer keeps its SAs and retries later.
            return [_Reject(TemporaryFailure("rekeying is not supported yet"))]  # type: ignore[list-item]
        return [ChildCreateTask(in_ike_auth=False)]
    return [_Reject(InvalidSyntax(f"unsupported exchange {ex.name}"))]  # type: ignore[list-item]
