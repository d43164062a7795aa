"""``OpenIntEnum``: an ``IntEnum`` for open registries.

Values IANA has not assigned (or that we do not know yet) still decode: they become
pseudo-members named ``<ENUM>_<value>`` instead of raising ``ValueError``, so a codec
can carry them through untouched and the protocol layer decides what they mean.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Self

__all__ = ["OpenIntEnum"]


class OpenIntEnum(IntEnum):
    """IntEnum that keeps unassigned values as pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        pseudo = int.__new__(cls, value)
        pseudo._name_ = f"{cls.__name__.upper()}_{value}"
        pseudo._value_ = value
        return cls._value2member_map_.setdefault(value, pseudo)  # type: ignore[return-value]

    @property
    def is_assigned(self) -> bool:
        """True for a value named in the registry, False for a pseudo-member."""
        return self._name_ in type(self).__members__
