"""The arguments each control command takes, checked before the command runs.

Every command has a frozen pydantic model with strict types and no unknown keys: ``true`` is
not SA #1 (``bool`` is an ``int`` in Python, not in this API), ``"5"`` is not a timeout, a typo
in a key is an error rather than a silently ignored option. :func:`parse_args` turns a request's
``args`` object into the command's model or raises :class:`BadRequest` naming each problem
(``args.sa_id: Input should be a valid integer``), which the server answers as an error reply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pyipsec.errors import UsageError

__all__ = [
    "BadRequest",
    "CommandArgs",
    "DownArgs",
    "DrainArgs",
    "NoArgs",
    "RedirectArgs",
    "RekeyArgs",
    "SCHEMAS",
    "UP_TIMEOUT",
    "UpArgs",
    "parse_args",
]

UP_TIMEOUT = 30.0  # ``up`` without a ``timeout``
MAX_UP_TIMEOUT = 3600.0

Name = Annotated[str, Field(min_length=1, max_length=256)]


class BadRequest(UsageError):
    """A request the API cannot run: unknown command, wrong argument types, unknown keys."""


class CommandArgs(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class NoArgs(CommandArgs):
    """``status``, ``connections``, ``stats``, ``reload``."""


class UpArgs(CommandArgs):
    """``up``: the connection, and how long to wait for it (seconds)."""

    name: Name
    timeout: Annotated[float, Field(gt=0, le=MAX_UP_TIMEOUT)] = UP_TIMEOUT

    @model_validator(mode="after")
    def _finite(self) -> UpArgs:
        if not math.isfinite(self.timeout):
            raise ValueError("timeout must be a finite number of seconds")
        return self


class DownArgs(CommandArgs):
    """``down``: every IKE SA of connection ``name``, or IKE SA ``sa_id``."""

    name: Name | None = None
    sa_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> DownArgs:
        if (self.name is None) == (self.sa_id is None):
            raise ValueError("give exactly one of name and sa_id")
        return self


class RekeyArgs(CommandArgs):
    """``rekey``: the Child SAs of ``name``, its IKE SA (``ike``) or a reauthentication."""

    name: Name
    ike: bool = False
    reauth: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> RekeyArgs:
        if self.ike and self.reauth:
            raise ValueError("give at most one of ike and reauth")
        return self


Gateway = Annotated[str, Field(min_length=1, max_length=255)]


class RedirectArgs(CommandArgs):
    """``redirect``: the clients of connection ``name`` or of IKE SA ``sa_id`` go to ``to``."""

    name: Name | None = None
    sa_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    to: Gateway

    @model_validator(mode="after")
    def _one_target(self) -> RedirectArgs:
        if (self.name is None) == (self.sa_id is None):
            raise ValueError("give exactly one of name and sa_id")
        return self


class DrainArgs(CommandArgs):
    """``drain``: every client, and every new one, goes to ``to``; ``stop`` ends the drain."""

    to: Gateway | None = None
    stop: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> DrainArgs:
        if (self.to is None) != self.stop:
            raise ValueError("give either to (a gateway) or stop")
        return self


SCHEMAS: Mapping[str, type[CommandArgs]] = {
    "status": NoArgs,
    "connections": NoArgs,
    "stats": NoArgs,
    "up": UpArgs,
    "down": DownArgs,
    "rekey": RekeyArgs,
    "reload": NoArgs,
    "redirect": RedirectArgs,
    "drain": DrainArgs,
}


def parse_args(cmd: str, args: Mapping[str, object]) -> CommandArgs:
    """The typed arguments of ``cmd``; BadRequest naming every problem."""
    schema = SCHEMAS.get(cmd)
    if schema is None:
        raise BadRequest(f"unknown command {cmd!r} (known: {', '.join(sorted(SCHEMAS))})")
    try:
        return schema.model_validate(dict(args))
    except ValidationError as exc:
        problems = "; ".join(
            f"args.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise BadRequest(f"{cmd}: {problems}") from None
