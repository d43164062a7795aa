"""IKE SA and Child SA states and their legal transitions — the only place that defines them.

An illegal move is a bug in the engine, not bad input, so :func:`transition` raises
``IllegalTransition`` (a ``RuntimeError``) rather than a protocol error.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import TypeVar

__all__ = ["ChildSaState", "IkeSaState", "IllegalTransition", "transition"]


class IkeSaState(Enum):
    CREATED = auto()  # object exists, nothing sent or received yet
    CONNECTING = auto()  # IKE_SA_INIT / IKE_AUTH in progress
    ESTABLISHED = auto()
    REKEYING = auto()  # a CREATE_CHILD_SA rekey of this IKE SA is in flight
    REKEYED = auto()  # replaced by a new IKE SA, waiting for its delete
    DELETING = auto()  # our Delete is in flight
    CLOSED = auto()


class ChildSaState(Enum):
    CREATING = auto()
    INSTALLED = auto()
    REKEYING = auto()
    REKEYED = auto()
    DELETING = auto()
    CLOSED = auto()


_IKE: dict[IkeSaState, frozenset[IkeSaState]] = {
    IkeSaState.CREATED: frozenset({IkeSaState.CONNECTING, IkeSaState.CLOSED}),
    IkeSaState.CONNECTING: frozenset({IkeSaState.ESTABLISHED, IkeSaState.DELETING, IkeSaState.CLOSED}),
    IkeSaState.ESTABLISHED: frozenset(
        {IkeSaState.REKEYING, IkeSaState.REKEYED, IkeSaState.DELETING, IkeSaState.CLOSED}
    ),
    IkeSaState.REKEYING: frozenset(
        {IkeSaState.ESTABLISHED, IkeSaState.REKEYED, IkeSaState.DELETING, IkeSaState.CLOSED}
    ),
    IkeSaState.REKEYED: frozenset({IkeSaState.DELETING, IkeSaState.CLOSED}),  # waits for its Delete
    IkeSaState.DELETING: frozenset({IkeSaState.CLOSED}),
    IkeSaState.CLOSED: frozenset(),
}

_CHILD: dict[ChildSaState, frozenset[ChildSaState]] = {
    ChildSaState.CREATING: frozenset({ChildSaState.INSTALLED, ChildSaState.CLOSED}),
    ChildSaState.INSTALLED: frozenset(
        {ChildSaState.REKEYING, ChildSaState.REKEYED, ChildSaState.DELETING, ChildSaState.CLOSED}
    ),
    ChildSaState.REKEYING: frozenset(
        {ChildSaState.INSTALLED, ChildSaState.REKEYED, ChildSaState.DELETING, ChildSaState.CLOSED}
    ),
    ChildSaState.REKEYED: frozenset(
        {ChildSaState.DELETING, ChildSaState.CLOSED}
    ),  # replaced, awaiting Delete
    ChildSaState.DELETING: frozenset({ChildSaState.CLOSED}),
    ChildSaState.CLOSED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """The engine tried a state change its tables do not allow (a bug)."""


S = TypeVar("S", IkeSaState, ChildSaState)


def transition(current: S, new: S) -> S:
    """Return ``new`` if ``current -> new`` is legal (or a no-op), else raise."""
    if current is new:
        return new
    table: dict[S, frozenset[S]] = _IKE if isinstance(current, IkeSaState) else _CHILD
    if new not in table[current]:
        raise IllegalTransition(f"{type(current).__name__}: {current.name} -> {new.name}")
    return new
