"""Which tasks answer a request: chosen by exchange type and SA state (DESIGN.md §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyipsec.errors import InvalidSyntax, TemporaryFailure
from pyipsec.iana.ikev2 import ExchangeType, ProtocolId
from pyipsec.ike.state import IkeSaState
from pyipsec.ike.tasks.base import Task, TaskStatus
from pyipsec.ike.tasks.child_create import ChildCreateTask
from pyipsec.ike.tasks.ike_auth import IkeAuthTask
from pyipsec.ike.tasks.ike_config import IkeConfigTask
from pyipsec.ike.tasks.ike_init import IkeInitTask
from pyipsec.ike.tasks.ike_rekey import IkeRekeyTask
from pyipsec.ike.tasks.informational import InformationalResponder
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.sa import SecurityAssociation

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["responder_tasks"]


class _Reject:
    """Answers a request we cannot serve with one error Notify."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:  # pragma: no cover - responder only
        raise AssertionError("responder-only task")

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:  # pragma: no cover
        raise AssertionError("responder-only task")

    def process_r(self, sa: IkeSa, req: Message) -> None:
        raise self.error

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:  # pragma: no cover - process_r raised
        raise AssertionError("unreachable")


def responder_tasks(sa: IkeSa, req: Message) -> list[Task]:
    ex = req.exchange_type
    if ex is ExchangeType.IKE_SA_INIT:
        return [IkeInitTask()]
    if ex is ExchangeType.IKE_AUTH:
        return [IkeAuthTask(), IkeConfigTask(), ChildCreateTask(in_ike_auth=True)]
    if ex is ExchangeType.INFORMATIONAL:
        return [InformationalResponder()]
    if ex is ExchangeType.CREATE_CHILD_SA:
        if sa.state not in (IkeSaState.ESTABLISHED, IkeSaState.REKEYING):
            # REKEYING: our rekey of this IKE SA is in flight, the SA still serves (RFC 7296 §2.8)
            return [_Reject(TemporaryFailure(f"IKE SA is {sa.state.name}, not established"))]
        sa_payload = req.find(SecurityAssociation)
        if sa_payload is not None and any(p.protocol is ProtocolId.IKE for p in sa_payload.proposals):
            return [IkeRekeyTask()]
        return [ChildCreateTask(in_ike_auth=False)]  # a new Child SA, or a rekey (REKEY_SA)
    return [_Reject(InvalidSyntax(f"unsupported exchange {ex.name}"))]
