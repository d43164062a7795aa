"""Redirect (RFC 5685): moving IKE clients from one gateway to another, both roles.

Theory of operation
-------------------
Support is announced in IKE_SA_INIT: an initiator whose connection follows redirects
(``ConnectionConfig.redirect``) sends REDIRECT_SUPPORTED, or REDIRECTED_FROM naming the
gateway that sent it here when it follows a redirect (the notify that says both, §3 and §8).
A responder only ever redirects peers that announced either (:func:`peer_supports`).

Gateway (responder):

* a new IKE_SA_INIT is offered to the engine's hook ``EngineContext.redirect_init`` (set by
  the daemon from ``[settings.redirect]``: a static target, the least-loaded gateway, a
  drain); a gateway it names is answered at once with ``N(REDIRECT, gateway, Ni)`` and
  nothing else, before any key exchange work (§3), and the half-open SA is dropped;
* an established IKE SA is moved by :class:`RedirectTask`, an INFORMATIONAL request with
  ``N(REDIRECT, gateway)`` (§5, no nonce: it is protected). The client leaves by itself; the
  daemon deletes the SA after a timeout if it does not.

Client (initiator):

* a REDIRECT in the IKE_SA_INIT response is unauthenticated (§9): it is acted upon only when
  its nonce echoes our Ni and the gateway it names is one the connection trusts —
  :func:`redirect_allowed`: an entry of its ``remote_addrs`` or of its ``redirect_allow``
  list. Otherwise it is ignored like any unauthenticated error answer (the request is
  retransmitted; if nothing valid comes the SA fails naming the refused redirect);
* a REDIRECT in an INFORMATIONAL request of an established SA is authenticated and is
  followed to any gateway;
* either way the engine only reports :class:`~pyipsec.ike.events.IkeSaRedirected`; the host
  resolves an FQDN, applies the loop limit (:class:`RedirectLimiter`: at most
  :data:`REDIRECT_LIMIT` redirects in :data:`REDIRECT_PERIOD` seconds, §7 leaves the number
  to us; strongSwan uses the same 5 in 5 minutes) and starts the new IKE SA with
  ``IkeEngine.initiate(..., redirected_from=..., vips=...)`` asking back the virtual IPs of
  the old SA (a shared lease store then gives them back). After an INFORMATIONAL redirect
  the old SA is deleted once the new one is up (make-before-break).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import TYPE_CHECKING

from pyipsec.errors import IkeError
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.task import Task, TaskStatus
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.config import ConnectionConfig
    from pyipsec.ike.sa import IkeSa
    from pyipsec.wire.payloads.base import Payload

__all__ = [
    "REDIRECT_LIMIT",
    "REDIRECT_PERIOD",
    "Redirect",
    "RedirectLimiter",
    "RedirectRefused",
    "RedirectTask",
    "peer_supports",
    "redirect_allowed",
]

#: At most this many redirects are followed in :data:`REDIRECT_PERIOD` seconds (RFC 5685 §7).
REDIRECT_LIMIT = 5
REDIRECT_PERIOD = 60.0


class Redirect(IkeError):
    """Our IKE_SA_INIT answer that sends the peer elsewhere: ``N(REDIRECT, gateway, Ni)``."""

    notify = NotifyType.REDIRECT

    def __init__(self, gateway: str, nonce: bytes) -> None:
        super().__init__(f"redirected to {gateway}")
        self.gateway = gateway
        self.nonce = nonce

    def notify_data(self) -> bytes:
        return Notify.redirect(self.gateway, self.nonce).data


class RedirectRefused(IkeError):
    """An unauthenticated REDIRECT we do not follow (the SA fails with it if nothing valid comes)."""

    notify = NotifyType.REDIRECT


def peer_supports(msg: Message) -> bool:
    """Whether the IKE_SA_INIT request announces redirect support (§3: either notify does)."""
    return (
        msg.notify(NotifyType.REDIRECT_SUPPORTED) is not None
        or msg.notify(NotifyType.REDIRECTED_FROM) is not None
    )


def redirect_allowed(conn: ConnectionConfig, gateway: str) -> bool:
    """Whether an unauthenticated redirect to ``gateway`` may be followed (module docstring)."""
    trusted = (*conn.remote_addrs, *conn.redirect_allow)
    try:
        wanted: object = ip_address(gateway)
    except ValueError:
        return gateway.lower().rstrip(".") in {t.lower().rstrip(".") for t in trusted}
    for t in trusted:
        try:
            if ip_address(t) == wanted:
                return True
        except ValueError:
            continue
    return False


class RedirectTask(Task):
    """INFORMATIONAL ``N(REDIRECT, gateway)`` to the client of an established SA (§5)."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        sa.log.info("redirecting the client to %s", self.gateway, extra={"event": "redirect"})
        req.append(Notify.redirect(self.gateway))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        return TaskStatus.DONE


@dataclass
class RedirectLimiter:
    """Redirects followed per connection in the last :data:`REDIRECT_PERIOD` seconds."""

    limit: int = REDIRECT_LIMIT
    period: float = REDIRECT_PERIOD
    _times: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, connection: str, now: float) -> bool:
        """Count one redirect of ``connection`` at ``now``; False once over the limit."""
        times = self._times.setdefault(connection, deque())
        while times and times[0] <= now - self.period:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True
