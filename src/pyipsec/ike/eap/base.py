"""The seams between the IKE layer and an EAP method (RFC 3748; RFC 7296 §2.16).

Theory of operation: an EAP conversation is a strict lock-step of Requests from the
authenticator (our gateway, :class:`EapServer`) and Responses from the peer (the client,
:class:`EapPeer`), ended by one EAP-Success or EAP-Failure from the authenticator (RFC 3748
§4.2). Both sides here are pure state machines over whole EAP packets as bytes, exactly the
body of an IKEv2 EAP payload: no I/O, no clock; randomness comes from an injected
``RandomSource``. The IKE layer calls:

* gateway: ``start()`` for the first EAP payload (in the IKE_AUTH response without AUTH), then
  ``process(response)`` for each EAP payload the client sends, until ``outcome`` is final;
* client: ``process(request)`` for each EAP payload the gateway sends; a returned packet goes
  into the next IKE_AUTH request, ``None`` means there is nothing to answer.

A finished conversation is ``EapOutcome.SUCCESS`` with a 64-octet ``msk`` (RFC 5247), which
keys the final AUTH payloads (RFC 7296 §2.16), or ``EapOutcome.FAILURE`` with ``reason``, a
one-line explanation for the log (never sent to the peer). Hostile or malformed input never
raises: it ends the conversation with FAILURE (the gateway then returns an EAP-Failure packet).
:class:`~pyipsec.errors.EapError` is raised only for a misuse of the object, such as calling
``process`` again after the conversation ended.

Accounts are looked up through :class:`UserStore`, which the embedded SQLite store
(``pyipsec.store``) and test doubles implement; only the NT hash of a password is needed.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol, runtime_checkable

from pyipsec.iana.ikev2 import EapCode
from pyipsec.ike.lookups import Answer
from pyipsec.wire.payloads.eap import EapMessage

__all__ = [
    "MSK_LEN",
    "EapOutcome",
    "EapPeer",
    "EapServer",
    "FailureRecorder",
    "TakesAnswers",
    "UserStore",
    "eap_failure",
    "eap_success",
    "next_identifier",
]

MSK_LEN = 64
"""Octets of the Master Session Key every EAP method exports (RFC 3748 §7.10, RFC 5247)."""


class EapOutcome(Enum):
    """Where an EAP conversation stands."""

    CONTINUE = "continue"
    SUCCESS = "success"
    FAILURE = "failure"


@runtime_checkable
class UserStore(Protocol):
    """Where the gateway finds an account's NT password hash (MD4 of the UTF-16LE password)."""

    def nt_hash(self, username: str) -> bytes | None:
        """The 16-octet NT hash of ``username``'s password, or None for an unknown user."""
        ...


@runtime_checkable
class TakesAnswers(Protocol):
    """Optional extra of a :class:`UserStore` that suspends for a lookup (``eap.lookupusers``)."""

    def take(self, answer: Answer) -> None: ...


@runtime_checkable
class FailureRecorder(Protocol):
    """Optional extra of a :class:`UserStore`: count failed logins of an existing account."""

    def record_failure(self, username: str) -> None: ...


@runtime_checkable
class EapServer(Protocol):
    """The gateway's side of one whole EAP conversation, EAP-Identity included."""

    def start(self) -> bytes:
        """The first EAP message to send: an EAP-Request/Identity (RFC 3748 §5.1)."""
        ...

    def process(self, response: bytes) -> bytes:
        """A peer's EAP-Response in; the next EAP-Request, or the final EAP-Success or
        EAP-Failure (RFC 3748 §4.2) once ``outcome`` is no longer CONTINUE."""
        ...

    @property
    def outcome(self) -> EapOutcome: ...

    @property
    def identity(self) -> str | None:
        """The peer's identity: claimed (EAP-Identity) until SUCCESS, then the verified account."""
        ...

    @property
    def msk(self) -> bytes:
        """The 64-octet MSK after SUCCESS, else ``b""``."""
        ...

    @property
    def reason(self) -> str:
        """Why the conversation failed (empty unless FAILURE); for logs, never for the peer."""
        ...


@runtime_checkable
class EapPeer(Protocol):
    """The client's side of one EAP conversation."""

    def process(self, request: bytes) -> bytes | None:
        """An EAP-Request (or the final EAP-Success/Failure) in; the EAP-Response to send, or
        None when there is nothing to answer (after Success or Failure, or on a fatal error)."""
        ...

    @property
    def outcome(self) -> EapOutcome: ...

    @property
    def msk(self) -> bytes:
        """The 64-octet MSK after SUCCESS, else ``b""``."""
        ...

    @property
    def reason(self) -> str: ...


def eap_success(identifier: int) -> bytes:
    """An EAP-Success packet; its Identifier matches the Response it answers (RFC 3748 §4.2)."""
    return EapMessage(EapCode.SUCCESS, identifier).encode()


def eap_failure(identifier: int) -> bytes:
    """An EAP-Failure packet (RFC 3748 §4.2)."""
    return EapMessage(EapCode.FAILURE, identifier).encode()


def next_identifier(identifier: int) -> int:
    """The Identifier of the next new Request: a different value for each (RFC 3748 §4.1)."""
    return (identifier + 1) & 0xFF
