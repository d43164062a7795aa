"""The task protocol (DESIGN.md §3): one concern of one exchange.

An exchange runs a list of tasks. As initiator the exchanger calls ``build_i`` on each to
fill the request and ``process_i`` on each with the (decrypted) response; as responder
``process_r`` on each with the request, then ``build_r`` on each to fill the response.
Tasks never build datagrams. Failures raise ``IkeError``.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import TYPE_CHECKING, Protocol

from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["Task", "TaskStatus"]


class TaskStatus(Enum):
    DONE = auto()
    NEED_MORE = auto()  # another round of the same exchange type (EAP, several auth rounds)
    RETRY = auto()  # resend this request rebuilt, same message ID (COOKIE, INVALID_KE_PAYLOAD)


class Task(Protocol):
    def build_i(self, sa: IkeSa, req: list[Payload]) -> None: ...

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus: ...

    def process_r(self, sa: IkeSa, req: Message) -> None: ...

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None: ...
