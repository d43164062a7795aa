"""EAP-MSCHAPv2 accounts behind I/O: the user lookup as an engine lookup (``ike.lookups``).

Theory of operation. :class:`~pyipsec.ike.eap.mschapv2.MsChapV2Server` asks its
:class:`~pyipsec.ike.eap.base.UserStore` for NT hashes synchronously, in the middle of
processing the peer's MS-CHAPv2 Response, and mutates nothing before it asks. A store on a
database server (the shared PostgreSQL store) must not be asked on the event loop, so
:class:`LookupUsers` answers from what it already knows — the accounts of the configuration,
then the answers it got for this conversation — and otherwise raises
:class:`~pyipsec.ike.task.Suspend` with a :class:`~pyipsec.ike.lookups.UserQuery` for the name
and its ``DOMAIN\\``-less form together. The exchange parks; the host asks the store; the
IKE_AUTH task hands the :class:`~pyipsec.ike.lookups.UserAnswer` to :meth:`LookupUsers.take`
(through the server's ``take_answer``) and processes the same EAP message again, which now
finds its answer. This is the smallest change that keeps the MS-CHAPv2 code synchronous and
the event loop free: one lookup per conversation, no second copy of the protocol.

A store that could not be asked (``UserAnswer.error``, e.g. "store unavailable: …") is not a
wrong password: the lookup raises AuthenticationFailed with that reason, the IKE SA fails
with it, and no failure is counted. Failed logins of the store's accounts go to
``record_failure`` (the host queues it); one instance serves one conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyipsec.errors import AuthenticationFailed
from pyipsec.ike.lookups import Answer, UserAnswer, UserQuery
from pyipsec.ike.task import Suspend

__all__ = ["LookupUsers"]


class LookupUsers:
    """A UserStore (with ``record_failure``) over configured NT hashes and host lookups."""

    def __init__(
        self,
        configured: Mapping[str, bytes],
        record_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._configured = configured
        self._record = record_failure
        self._known: dict[str, bytes | None] = {}
        self._asked: tuple[str, ...] = ()
        self._error = ""

    def nt_hash(self, username: str) -> bytes | None:
        if username in self._configured:
            return self._configured[username]
        if self._error:
            raise AuthenticationFailed(f"cannot look up EAP user {username!r}: {self._error}")
        if username in self._known:
            return self._known[username]
        names = [username]
        if "\\" in username and (bare := username.rpartition("\\")[2]):
            names.append(bare)
        self._asked = tuple(n for n in names if n not in self._configured)
        raise Suspend(UserQuery(self._asked))

    def take(self, answer: Answer) -> None:
        """The host's answer to our :class:`UserQuery` (any other answer is a host bug)."""
        if not isinstance(answer, UserAnswer):
            self._error = f"unexpected answer {type(answer).__name__} to a user lookup"
            return
        self._error = answer.error
        found = dict(answer.nt_hashes)
        for name in self._asked:  # a name asked for and not found is no account
            self._known[name] = found.get(name)
        self._asked = ()

    def record_failure(self, username: str) -> None:
        if username not in self._configured and self._record is not None:
            self._record(username)
