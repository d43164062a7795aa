"""The lifecycle of IKE SAs and Child SAs: states, the events that move them, one table each.

Every state change of an :class:`~pyipsec.ike.sa.IkeSa` or :class:`~pyipsec.ike.sa.ChildSa`
goes through :func:`ike_next` / :func:`child_next` (``sa.apply(event)``), so the tables below
are the whole truth about which moves exist (h11's ``_state.py`` is the model). A move the
table does not hold is a bug in the engine, not bad input: it raises
:class:`IllegalTransition` (a ``RuntimeError``), and the engine closes that one SA.

IKE SA::

    CREATED ──CONNECT──▶ CONNECTING ──AUTHENTICATED──▶ ESTABLISHED ◀──REKEY_END── REKEYING
       │ REKEY_MADE ────────────────────────────────────▶ │  ▲  │ ──REKEY_START──▶   │
       │ REKEY_COLLIDED ▶ PENDING ──ADOPTED───────────────┘  │  └─REAUTH_START─▶ REAUTHENTICATING
       │                     └─SUPERSEDED─▶ REDUNDANT        └────REAUTH_END────────────┘
       ESTABLISHED / REKEYING / REAUTHENTICATING ──REPLACED──▶ REKEYED
       ESTABLISHED / REKEYING / REAUTHENTICATING ──DELETE──▶ DELETING;   any ──CLOSE──▶ CLOSED

- PENDING: the SA the peer made by rekeying ours while our own rekey of it was in flight (a
  collision, RFC 7296 §2.8.2); it is ADOPTED if the peer's rekey wins, else SUPERSEDED:
  REDUNDANT, waiting for the peer to delete it.
- REKEYING: our CREATE_CHILD_SA rekey of this IKE SA is in flight.
- REAUTHENTICATING: a new IKE SA that replaces this one by reauthentication is under way
  (RFC 7296 §2.8.3; ``reauth_by`` names it); REAUTH_END when it fails.
- REKEYED: replaced by a new IKE SA (ours or the peer's rekey); waits for its Delete (ours or
  the peer's, whichever comes first: a REKEYED or REDUNDANT SA that we delete keeps its state,
  so that it closes as what it is).

Child SA::

    CREATING ──INSTALL──▶ INSTALLED ──REKEY_START──▶ REKEYING ──REKEY_END──▶ INSTALLED
                              │ ──SUPERSEDED──▶ REDUNDANT
    INSTALLED / REKEYING ──REPLACED──▶ REKEYED
    INSTALLED / REKEYING / REKEYED ──DELETE──▶ DELETING;  any ──CLOSE──▶ CLOSED

- REDUNDANT: the peer's new Child SA from a rekey collision we won (RFC 7296 §2.8.1): the
  peer deletes it.
- REKEYED: replaced by a new Child SA (``successor``); deleted next.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, auto

__all__ = [
    "CHILD_TABLE",
    "IKE_ACTIVE",
    "IKE_TABLE",
    "ChildEvent",
    "ChildSaState",
    "IkeEvent",
    "IkeSaState",
    "IllegalTransition",
    "child_next",
    "ike_next",
]


class IkeSaState(Enum):
    CREATED = auto()  # the object exists, nothing sent or received yet
    CONNECTING = auto()  # IKE_SA_INIT / IKE_AUTH in progress
    ESTABLISHED = auto()
    PENDING = auto()  # made by the peer's rekey during ours, not yet adopted (collision)
    REKEYING = auto()  # our rekey of this IKE SA is in flight
    REAUTHENTICATING = auto()  # the IKE SA that replaces this one by reauthentication is under way
    REKEYED = auto()  # replaced by a new IKE SA, waiting for its Delete
    REDUNDANT = auto()  # the loser of a rekey collision, waiting for the peer's Delete
    DELETING = auto()  # our Delete is in flight
    CLOSED = auto()


class IkeEvent(Enum):
    CONNECT = auto()  # IKE_SA_INIT sent or received
    AUTHENTICATED = auto()  # IKE_AUTH complete
    REKEY_MADE = auto()  # keyed by a rekey of another IKE SA (RFC 7296 §2.18)
    REKEY_COLLIDED = auto()  # ... while our own rekey of that SA is in flight (§2.8.2)
    ADOPTED = auto()  # the collision is settled in favour of this SA
    SUPERSEDED = auto()  # the collision is settled against this SA
    REKEY_START = auto()
    REKEY_END = auto()  # our rekey ended without replacing the SA (declined, to be retried)
    REAUTH_START = auto()
    REAUTH_END = auto()  # the reauthentication failed; this SA stays
    REPLACED = auto()  # a new IKE SA took over (rekey)
    DELETE = auto()  # our Delete is sent
    CLOSE = auto()


class ChildSaState(Enum):
    CREATING = auto()
    INSTALLED = auto()
    REKEYING = auto()  # our CREATE_CHILD_SA rekey of this Child SA is in flight
    REKEYED = auto()  # replaced by ``successor``, waiting for its Delete
    REDUNDANT = auto()  # the peer's new SA from a rekey collision we won: the peer deletes it
    DELETING = auto()  # our Delete is in flight
    CLOSED = auto()


class ChildEvent(Enum):
    INSTALL = auto()
    REKEY_START = auto()
    REKEY_END = auto()  # our rekey failed (retried soon)
    REPLACED = auto()
    SUPERSEDED = auto()
    DELETE = auto()
    CLOSE = auto()


_S, _E = IkeSaState, IkeEvent
_ENDS = {_E.DELETE: _S.DELETING, _E.CLOSE: _S.CLOSED}

IKE_TABLE: Mapping[IkeSaState, Mapping[IkeEvent, IkeSaState]] = {
    _S.CREATED: {
        _E.CONNECT: _S.CONNECTING,
        _E.REKEY_MADE: _S.ESTABLISHED,
        _E.REKEY_COLLIDED: _S.PENDING,
        _E.CLOSE: _S.CLOSED,
    },
    _S.CONNECTING: {_E.AUTHENTICATED: _S.ESTABLISHED, _E.CLOSE: _S.CLOSED},
    _S.ESTABLISHED: {
        _E.REKEY_START: _S.REKEYING,
        _E.REAUTH_START: _S.REAUTHENTICATING,
        _E.REPLACED: _S.REKEYED,
        **_ENDS,
    },
    _S.PENDING: {_E.ADOPTED: _S.ESTABLISHED, _E.SUPERSEDED: _S.REDUNDANT, _E.CLOSE: _S.CLOSED},
    _S.REKEYING: {_E.REKEY_END: _S.ESTABLISHED, _E.REPLACED: _S.REKEYED, **_ENDS},
    _S.REAUTHENTICATING: {_E.REAUTH_END: _S.ESTABLISHED, _E.REPLACED: _S.REKEYED, **_ENDS},
    _S.REKEYED: {_E.CLOSE: _S.CLOSED},
    _S.REDUNDANT: {_E.CLOSE: _S.CLOSED},
    _S.DELETING: {_E.CLOSE: _S.CLOSED},
    _S.CLOSED: {},
}

_C, _CE = ChildSaState, ChildEvent
CHILD_TABLE: Mapping[ChildSaState, Mapping[ChildEvent, ChildSaState]] = {
    _C.CREATING: {_CE.INSTALL: _C.INSTALLED, _CE.CLOSE: _C.CLOSED},
    _C.INSTALLED: {
        _CE.REKEY_START: _C.REKEYING,
        _CE.REPLACED: _C.REKEYED,
        _CE.SUPERSEDED: _C.REDUNDANT,
        _CE.DELETE: _C.DELETING,
        _CE.CLOSE: _C.CLOSED,
    },
    _C.REKEYING: {
        _CE.REKEY_END: _C.INSTALLED,
        _CE.REPLACED: _C.REKEYED,
        _CE.DELETE: _C.DELETING,
        _CE.CLOSE: _C.CLOSED,
    },
    _C.REKEYED: {_CE.DELETE: _C.DELETING, _CE.CLOSE: _C.CLOSED},
    _C.REDUNDANT: {_CE.CLOSE: _C.CLOSED},
    _C.DELETING: {_CE.CLOSE: _C.CLOSED},
    _C.CLOSED: {},
}

IKE_ACTIVE = frozenset({_S.ESTABLISHED, _S.REKEYING, _S.REAUTHENTICATING})
"""States of an IKE SA that carries its Child SAs and runs its own timers (rekey, DPD, …)."""


class IllegalTransition(RuntimeError):
    """The engine tried a state change its tables do not allow (a bug)."""


def ike_next(state: IkeSaState, event: IkeEvent) -> IkeSaState:
    """The state ``event`` moves an IKE SA in ``state`` to; raises if the table has no such move."""
    new = IKE_TABLE[state].get(event)
    if new is None:
        raise IllegalTransition(f"IKE SA: {event.name} in state {state.name}")
    return new


def child_next(state: ChildSaState, event: ChildEvent) -> ChildSaState:
    """The state ``event`` moves a Child SA in ``state`` to; raises if the table has no such move."""
    new = CHILD_TABLE[state].get(event)
    if new is None:
        raise IllegalTransition(f"Child SA: {event.name} in state {state.name}")
    return new
