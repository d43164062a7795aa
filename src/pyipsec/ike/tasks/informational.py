"""INFORMATIONAL requests from the peer (RFC 7296 §1.4): Deletes, notifications, MOBIKE.

:class:`InformationalResponder` answers every INFORMATIONAL request. A Delete of the IKE SA
closes it once the (empty) response is on its way — as "rekeyed" when a rekey replaced it,
as redundant when it lost a rekey collision (``ike_rekey``). Deletes of Child SAs are
answered with Deletes for our matching inbound SPIs; a Child SA deleted after a rekey hands
the traffic to its successor. Error notifications are logged (one during IKE_AUTH means the
peer gave up on the SA, §2.21.2); an empty request is simply answered (liveness, §1.4).
MOBIKE (RFC 4555, see ``ike_mobike``): a COOKIE2 is copied into the response, a new
ADDITIONAL_IP*_ADDRESS list replaces the peer's, and UPDATE_SA_ADDRESSES moves the SA
(original responder only), followed by a return routability check of a peer address not
seen answering before. A REDIRECT (RFC 5685 §5, ``ike.redirect``) on an SA we initiated is
reported as an authenticated ``IkeSaRedirected``: the host follows it, the SA stays until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyipsec.errors import DecodeError
from pyipsec.iana.ikev2 import NotifyType, ProtocolId
from pyipsec.ike.events import CloseCause, IkeSaRedirected
from pyipsec.ike.state import ChildSaState, IkeSaState
from pyipsec.ike.task import Task
from pyipsec.ike.tasks.ike_mobike import apply_nat_detection, nat_notifies, read_address_list
from pyipsec.ike.tasks.ike_rekey import REDUNDANT, adopt_peer_rekey
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.sa import ChildSa, IkeSa

__all__ = ["InformationalResponder"]


def _collided(sa: IkeSa, child: ChildSa) -> bool:
    """Whether ``child`` is the peer's side of a rekey collision still being resolved."""
    return any(c.peer_rekey is not None and c.peer_rekey[2] is child for c in sa.children.values())


class InformationalResponder(Task):
    def __init__(self) -> None:
        self.delete_ike = False
        self.deleted: list[bytes] = []
        self.peer_failed: NotifyType | None = None
        self.mobike_moved = False
        self.cookie2: bytes | None = None  # echoed in our response (RFC 4555 §3.5)

    def process_r(self, sa: IkeSa, req: Message) -> None:
        cookie2 = req.notify(NotifyType.COOKIE2)
        if cookie2 is not None:
            self.cookie2 = cookie2.data
        if req.notify(NotifyType.UPDATE_SA_ADDRESSES) is not None:
            self._update_addresses(sa, req)
        if sa.peer_mobike:
            read_address_list(sa, req)  # the peer's new address list (RFC 4555 §3.6)
        for n in req.notifies():
            if n.is_error:
                sa.log.info("peer reports %s", n.notify_type.name, extra={"event": "peer_error"})
                if sa.state is IkeSaState.CONNECTING:
                    self.peer_failed = n.notify_type  # it gave up on the SA (RFC 7296 §2.21.2)
        redirect = req.notify(NotifyType.REDIRECT)
        if redirect is not None:
            self._redirect(sa, redirect)
        for d in req.find_all(Delete):
            if d.protocol is ProtocolId.IKE:
                self.delete_ike = True
            elif d.protocol in (ProtocolId.ESP, ProtocolId.AH):
                for spi in d.spis:
                    self._delete_child(sa, spi)

    def _redirect(self, sa: IkeSa, notify: Notify) -> None:
        conn = sa.connection
        ours = sa.original_initiator and conn is not None and conn.redirect
        if not ours or sa.state is not IkeSaState.ESTABLISHED:
            sa.log.info("ignoring a REDIRECT: we do not follow redirects on this SA")
            return
        try:
            gateway = str(notify.redirect_data().gateway)
        except DecodeError as exc:
            sa.log.info("ignoring a malformed REDIRECT: %s", exc)
            return
        sa.log.info("gateway redirects us to %s", gateway, extra={"event": "redirected"})
        sa.emit(IkeSaRedirected(sa.sa_id, sa.name, gateway, str(sa.remote.ip), True, sa.virtual_ips))

    def _delete_child(self, sa: IkeSa, spi: bytes) -> None:
        child = sa.child_by_spi_out(spi)
        if child is None:
            sa.log.debug("peer deletes unknown Child SA %s", spi.hex())
            return
        self.deleted.append(child.spi_in)
        successor = child.successor
        if successor is None and child.peer_rekey is not None:
            # both sides rekeyed it and ours is still in flight: the peer deletes the old SA
            # only once its rekey is complete, so its new SA takes over
            successor = child.successor = child.peer_rekey[2]
        if successor is not None:
            reason = "rekeyed by peer"
        elif child.state is ChildSaState.REDUNDANT or _collided(sa, child):
            reason = "redundant after a rekey collision (deleted by peer)"
        else:
            reason = "deleted by peer"
        sa.remove_child(child, reason)
        if successor is not None:
            sa.activate(successor)

    def _update_addresses(self, sa: IkeSa, req: Message) -> None:
        """MOBIKE responder (RFC 4555 §3.5): move to where this authenticated request came from."""
        if not sa.peer_mobike or sa.original_initiator or sa.arrived is None:
            sa.log.info("ignoring UPDATE_SA_ADDRESSES: MOBIKE was not negotiated")
            return
        sa.local, sa.remote = sa.arrived
        apply_nat_detection(sa, req)
        sa.log.info("MOBIKE: peer moved; IKE SA and Child SAs now %s - %s", sa.local, sa.remote)
        self.mobike_moved = True

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        if self.cookie2 is not None:
            resp.append(Notify.of(NotifyType.COOKIE2, self.cookie2))  # copied as is (RFC 4555 §3.5)
        if self.mobike_moved:
            resp.extend(nat_notifies(sa))
            sa.addresses_changed()
        if self.deleted and not self.delete_ike:
            resp.append(Delete(ProtocolId.ESP, tuple(self.deleted)))

    def after_response(self, sa: IkeSa) -> None:
        if self.mobike_moved and sa.remote.ip not in sa.verified_remote:
            # the peer moved to an address never seen answering: check it (RFC 4555 §3.5, §5.2)
            sa.ctx.followups.check_return_routability(sa)
        if self.peer_failed is not None:
            # A client that is refused by EAP often gives up with this notify instead of ending
            # the EAP conversation (strongSwan does): keep the refusal's reason in ours.
            eap = sa.eap_server
            cause = f" after EAP: {eap.reason}" if eap is not None and eap.reason else ""
            sa.close(CloseCause.FAILED, f"the peer gave up: {self.peer_failed.name}{cause}", self.peer_failed)
        elif self.delete_ike:
            if sa.peer_rekey is not None:
                # the peer won a rekey collision before our own rekey's response came (§2.8.2)
                adopt_peer_rekey(sa)
            if sa.state is IkeSaState.REKEYED:
                sa.close(CloseCause.REKEYED, "rekeyed")
            elif sa.state in (IkeSaState.PENDING, IkeSaState.REDUNDANT):
                sa.close(CloseCause.REDUNDANT, REDUNDANT)
            elif sa.cp_failed:
                sa.close(CloseCause.PEER, f"deleted by peer (it got no virtual IP: {sa.cp_failed})")
            else:
                sa.close(CloseCause.PEER, "deleted by peer")
