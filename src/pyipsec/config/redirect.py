"""``[settings.redirect]``: how a gateway sends clients elsewhere (RFC 5685; ``daemon.redirect``).

Theory of operation: a frozen pydantic model, validated like the rest of the configuration
(errors name the key path, ``config.load``); kept in its own module so that ``config.model``
only gains one field. The keys:

- ``gateways`` — the other gateways of the service (IP addresses or names), in order;
- ``rule`` — what a new IKE_SA_INIT gets: ``none`` (served here, the default), ``static``
  (always redirected to ``target``: a gateway being emptied), ``least-loaded`` (redirected to
  the gateway of ``gateways`` with the fewest live SAs, when it has fewer than this one);
- ``target`` — the ``static`` rule's gateway;
- ``self`` — this gateway's own name in the load figures (default: the shared store's
  ``gateway_id`` with one, else the address the request came to);
- ``load_file`` — a JSON object ``{"gateway": live SAs}`` read for ``least-loaded`` (a shared
  store replaces it); this gateway's own figure, if the file or the store has none under
  its name, is its own count of live IKE SAs;
- ``timeout`` — seconds a redirected client (INFORMATIONAL) has to leave before its IKE SA is
  deleted (30).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RedirectRule", "RedirectSettings"]


class RedirectRule(StrEnum):
    NONE = "none"
    STATIC = "static"
    LEAST_LOADED = "least-loaded"


class RedirectSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    gateways: tuple[Annotated[str, Field(min_length=1, max_length=255)], ...] = ()
    rule: RedirectRule = RedirectRule.NONE
    target: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    self_name: Annotated[str | None, Field(min_length=1, alias="self")] = None
    load_file: Path | None = None
    timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0

    @model_validator(mode="after")
    def _complete(self) -> RedirectSettings:
        if self.rule is RedirectRule.STATIC and self.target is None:
            raise ValueError("rule = 'static' needs a target gateway (key 'target')")
        if self.rule is RedirectRule.LEAST_LOADED and not self.gateways:
            raise ValueError("rule = 'least-loaded' needs the other gateways (key 'gateways')")
        return self
