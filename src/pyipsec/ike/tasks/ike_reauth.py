"""Reauthentication: a new IKE SA replaces an old one, make-before-break (RFC 7296 §2.8.3).

Theory of operation (strongSwan's ``make_before_break`` is the model). When an original
initiator's ``reauth_at`` comes (``reauth_time`` with jitter, or sooner after an
AUTH_LIFETIME, RFC 4478), or on ``IkeEngine.reauthenticate``, the engine builds a new IKE SA
to the same peer (:func:`link`: the old SA is REAUTHENTICATING, ``reauth_by`` names the new
one, whose ``reauth_of`` names the old one). The task manager runs IKE_SA_INIT and IKE_AUTH
on it with fresh authentication, without INITIAL_CONTACT and asking for the virtual IPs the
old SA holds, recreating the old SA's Child SAs (one per child config: the first in
IKE_AUTH, the others with CREATE_CHILD_SA), then the step :func:`complete`: when every Child
SA is there, the old IKE SA is deleted (its Child SAs with it); when one is missing, the new
SA is deleted and the old one stays.

When the new SA closes before it took over (:func:`closed`), the old SA goes back to
ESTABLISHED and, on the original initiator, tries again 10-30 s later; the reason is logged.
The responder recognises a reauthentication in IKE_AUTH (``ike_auth``) and links the two SAs
the same way; the new SA's Child SAs send nothing until the old SA is gone (:func:`closed`
activates them). A responder with a ``reauth_time`` deletes an SA that was not
reauthenticated within it and a grace period (:func:`overdue`; the peer was told with
AUTH_LIFETIME).
"""

from __future__ import annotations

from pyipsec.ike.config import ChildConfig
from pyipsec.ike.events import CloseCause
from pyipsec.ike.sa import IkeSa
from pyipsec.ike.state import ChildSaState, IkeEvent, IkeSaState
from pyipsec.net.addr import Endpoint

__all__ = ["RETRY_MIN", "RETRY_SPREAD", "closed", "complete", "link", "overdue", "plan"]

RETRY_MIN, RETRY_SPREAD = 10.0, 20.0  # seconds before a failed reauthentication is tried again


def plan(old: IkeSa) -> tuple[list[ChildConfig], Endpoint, Endpoint]:
    """The Child SAs to recreate (one per config, in order) and the addresses for the new SA."""
    conn = old.connection
    assert conn is not None
    configs: list[ChildConfig] = []
    for child in sorted(old.children.values(), key=lambda c: c.child_id):
        live = child.state in (ChildSaState.INSTALLED, ChildSaState.REKEYING, ChildSaState.REKEYED)
        if live and all(c.name != child.name for c in configs):
            configs.append(child.config)
    old.log.info(
        "reauthenticating: a new IKE SA with %s", ", ".join(c.name for c in configs) or "no Child SA"
    )
    return configs, old.local.with_port(conn.local_port), old.remote.with_port(conn.remote_port)


def link(old: IkeSa, new: IkeSa, configs: list[ChildConfig]) -> None:
    """``new`` reauthenticates ``old`` (initiator side)."""
    old.reauth_at = None
    old.apply(IkeEvent.REAUTH_START)
    old.reauth_by = new.sa_id
    new.reauth_of = old.sa_id
    new.vips_asked = old.virtual_ips
    new.reauth_children = tuple(c.name for c in configs)


def target(new: IkeSa) -> IkeSa | None:
    """The live SA that ``new`` reauthenticates (it may have been rekeyed meanwhile)."""
    return next((s for s in new.ctx.sas() if s is not new and s.reauth_by == new.sa_id), None)


def complete(new: IkeSa) -> None:
    """The step after the new SA's exchanges: take over, or give up if a Child SA is missing."""
    if new.state is not IkeSaState.ESTABLISHED:
        return  # it failed (or is going): ``closed`` handles that
    installed = {c.name for c in new.children.values() if c.state is ChildSaState.INSTALLED}
    missing = [name for name in new.reauth_children if name not in installed]
    if missing:
        reason = f"reauthentication incomplete: Child SA {', '.join(missing)} not recreated"
        new.log.warning("%s; deleting this IKE SA, the old one stays", reason)
        new.ctx.followups.delete_ike(new, CloseCause.FAILED, reason)
        return
    old = target(new)
    if old is None:
        new.log.info("reauthentication complete (the old IKE SA is gone already)")
        return
    old.reauth_by = None
    if old.state is not IkeSaState.REAUTHENTICATING:
        return
    new.log.info(
        "reauthentication complete: deleting IKE SA #%d", old.sa_id, extra={"event": "ike_reauthenticated"}
    )
    new.ctx.followups.delete_ike(old, CloseCause.REAUTHENTICATED, f"reauthenticated as IKE SA #{new.sa_id}")


def closed(sa: IkeSa) -> None:
    """``sa`` is gone: a reauthentication it was making failed, or one that replaced it may
    now send on its Child SAs."""
    if sa.reauth_of is not None:
        old = target(sa)
        if old is not None:  # it never took over
            old.reauth_by = None
            if old.state is IkeSaState.REAUTHENTICATING:
                old.apply(IkeEvent.REAUTH_END)
            if old.original_initiator and old.state is IkeSaState.ESTABLISHED:
                ctx = old.ctx
                delay = RETRY_MIN + RETRY_SPREAD * int.from_bytes(ctx.rng.random_bytes(1), "big") / 255
                old.reauth_at = ctx.now + delay
                old.log.warning(
                    "reauthentication failed (%s); this IKE SA stays, retrying in %.0f s",
                    sa.close_reason,
                    delay,
                )
    if not sa.was_established:
        return  # (a half-open SA was never reauthenticated: no need to look at every SA)
    for new in sa.ctx.peers(sa):  # (a reauthentication is an SA of the same connection and peer)
        if new.reauth_of == sa.sa_id and new.active:
            for child in new.children.values():
                new.activate(child)


def overdue(sa: IkeSa) -> None:
    """Responder: the peer did not reauthenticate within the AUTH_LIFETIME we sent it (and a
    grace period): delete the SA (RFC 4478 §3)."""
    sa.reauth_at = None
    reason = "the peer did not reauthenticate in time (AUTH_LIFETIME, RFC 4478)"
    sa.log.info("%s: deleting the IKE SA", reason)
    sa.ctx.followups.delete_ike(sa, CloseCause.REAUTH_OVERDUE, reason)
