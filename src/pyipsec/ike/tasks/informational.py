"""INFORMATIONAL exchanges: Delete of IKE and Child SAs, liveness checks (RFC 7296 §1.4).

Initiator side: :class:`IkeDeleteTask` (Delete with protocol IKE; the SA closes when the
response arrives), :class:`ChildDeleteTask` (Delete listing our inbound SPI; the peer
answers with its own), :class:`LivenessTask` (an empty request: the peer must answer), and
:func:`last_notice`, a final message sent once when we close an SA on our own.

Responder side: :class:`InformationalResponder` handles every request: a Delete of the IKE
SA closes it once the (empty) response is sent; Deletes of Child SAs are answered with
Deletes for our matching inbound SPIs; notifications are logged; an empty request is
simply answered (§1.4). MOBIKE (RFC 4555, see ``ike_mobike``): a COOKIE2 is copied into the
response, a new ADDITIONAL_IP*_ADDRESS list replaces the peer's, and UPDATE_SA_ADDRESSES
moves the SA (original responder only), followed by a return routability check of a peer
address not seen answering before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyipsec.errors import IkeError
from pyipsec.iana.ikev2 import ExchangeType, NotifyType, ProtocolId
from pyipsec.ike.events import ChildSaOutboundActivated, ChildSaRemoved
from pyipsec.ike.exchanger import Exchange
from pyipsec.ike.sa import ChildSa
from pyipsec.ike.state import ChildSaState, IkeSaState
from pyipsec.ike.tasks.base import TaskStatus
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["ChildDeleteTask", "IkeDeleteTask", "InformationalResponder", "LivenessTask", "last_notice"]


def _remove_child(sa: IkeSa, child: ChildSa, reason: str) -> None:
    if child.state is not ChildSaState.CLOSED:
        sa.events.append(
            ChildSaRemoved(sa.sa_id, sa.name, child.name, child.child_id, child.spi_in, child.spi_out, reason)
        )
    child.state = ChildSaState.CLOSED
    sa.children.pop(child.child_id, None)
    if child.owner is not None:  # it may have moved to a new IKE SA (rekey) meanwhile
        child.owner.children.pop(child.child_id, None)
    sa.log.info("Child SA %s{%d} deleted: %s", child.name, child.child_id, reason)


def _collided(sa: IkeSa, child: ChildSa) -> bool:
    """Whether ``child`` is the peer's side of a rekey collision still being resolved."""
    return any(c.peer_rekey is not None and c.peer_rekey[2] is child for c in sa.children.values())


def activate(sa: IkeSa, child: ChildSa) -> None:
    """Switch outbound traffic to ``child`` (make-before-break, RFC 7296 §2.8)."""
    if child.outbound_active or child.state is not ChildSaState.INSTALLED:
        return
    child.outbound_active = True
    sa.events.append(ChildSaOutboundActivated(sa.sa_id, sa.name, child.child_id, child.spi_out))


class _NoResponderWork:
    def process_r(self, sa: IkeSa, req: Message) -> None:  # pragma: no cover - initiator-only task
        raise AssertionError("initiator-only task")

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:  # pragma: no cover
        raise AssertionError("initiator-only task")


class IkeDeleteTask(_NoResponderWork):
    def __init__(self, reason: str = "deleted locally") -> None:
        self.reason = reason
        self.unanswered_reason = reason  # the exchanger closes with it if no answer ever comes

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.append(Delete(ProtocolId.IKE, ()))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        sa.close(self.reason)
        return TaskStatus.DONE


class ChildDeleteTask(_NoResponderWork):
    def __init__(self, child: ChildSa, reason: str = "deleted locally") -> None:
        self.child = child
        self.reason = reason

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        self.child.set_state(ChildSaState.DELETING)
        req.append(Delete(ProtocolId.ESP, (self.child.spi_in,)))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        _remove_child(sa, self.child, self.reason)
        return TaskStatus.DONE


class LivenessTask(_NoResponderWork):
    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        pass

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        return TaskStatus.DONE


class _NoticeTask(_NoResponderWork):
    def __init__(self, payloads: list[Payload]) -> None:
        self.payloads = payloads

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.extend(self.payloads)

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:  # pragma: no cover - never awaited
        return TaskStatus.DONE


def last_notice(sa: IkeSa, error: Exception | None) -> Exchange:
    """The message we send once before closing on our own: a Delete, or the error (§2.21.2)."""
    if sa.state is IkeSaState.ESTABLISHED or error is None or not isinstance(error, IkeError):
        payloads: list[Payload] = [Delete(ProtocolId.IKE, ())]
    else:
        payloads = [Notify.from_error(error)]
    return Exchange(ExchangeType.INFORMATIONAL, [_NoticeTask(payloads)], fire_and_forget=True)


class InformationalResponder:
    def __init__(self) -> None:
        self.delete_ike = False
        self.deleted: list[bytes] = []
        self.peer_failed = ""
        self.mobike_moved = False
        self.cookie2: bytes | None = None  # echoed in our response (RFC 4555 §3.5)

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:  # pragma: no cover - responder-only
        raise AssertionError("responder-only task")

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:  # pragma: no cover
        raise AssertionError("responder-only task")

    def process_r(self, sa: IkeSa, req: Message) -> None:
        cookie2 = req.notify(NotifyType.COOKIE2)
        if cookie2 is not None:
            self.cookie2 = cookie2.data
        if req.notify(NotifyType.UPDATE_SA_ADDRESSES) is not None:
            self._update_addresses(sa, req)
        if sa.peer_mobike:
            from pyipsec.ike.tasks.ike_mobike import read_address_list  # noqa: PLC0415

            read_address_list(sa, req)  # the peer's new address list (RFC 4555 §3.6)
        for n in req.notifies():
            if n.is_error:
                sa.log.info("peer reports %s", n.notify_type.name)
                if sa.state is IkeSaState.CONNECTING:
                    self.peer_failed = n.notify_type.name  # it gave up on the SA (RFC 7296 §2.21.2)
        for d in req.find_all(Delete):
            if d.protocol is ProtocolId.IKE:
                self.delete_ike = True
            elif d.protocol in (ProtocolId.ESP, ProtocolId.AH):
                for spi in d.spis:
                    child = sa.child_by_spi_out(spi)
                    if child is None:
                        sa.log.debug("peer deletes unknown Child SA %s", spi.hex())
                        continue
                    self.deleted.append(child.spi_in)
                    successor = child.successor
                    if successor is None and child.peer_rekey is not None:
                        # both sides rekeyed it and ours is still in flight: the peer deletes
                        # the old SA only once its rekey is complete, so its new SA takes over
                        successor = child.successor = child.peer_rekey[2]
                    _remove_child(
                        sa,
                        child,
                        "rekeyed by peer"
                        if successor is not None
                        else "redundant after a rekey collision (deleted by peer)"
                        if child.redundant or _collided(sa, child)
                        else "deleted by peer",
                    )
                    if successor is not None:
                        activate(sa, successor)

    def _update_addresses(self, sa: IkeSa, req: Message) -> None:
        """MOBIKE responder (RFC 4555 §3.5): move to where this authenticated request came from."""
        from pyipsec.ike.tasks.ike_mobike import apply_nat_detection  # noqa: PLC0415

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
            from pyipsec.ike.tasks.ike_mobike import moved, nat_notifies  # noqa: PLC0415

            resp.extend(nat_notifies(sa))
            moved(sa)
        if self.deleted and not self.delete_ike:
            resp.append(Delete(ProtocolId.ESP, tuple(self.deleted)))

    def after_response(self, sa: IkeSa, now: float) -> None:
        if self.mobike_moved and sa.remote.ip not in sa.verified_remote:
            from pyipsec.ike.tasks.ike_mobike import ReturnRoutabilityTask  # noqa: PLC0415

            # the peer moved to an address never seen answering: check it (RFC 4555 §3.5, §5.2)
            sa.log.info("MOBIKE: checking return routability of %s", sa.remote.ip)
            sa.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [ReturnRoutabilityTask(sa)]), now)
        if self.peer_failed:
            # A client that is refused by EAP often gives up with this notify instead of ending
            # the EAP conversation (strongSwan does): keep the refusal's reason in ours.
            eap = sa.eap_server
            cause = f" after EAP: {eap.reason}" if eap is not None and eap.reason else ""
            sa.close(f"the peer gave up: {self.peer_failed}{cause}")
        elif self.delete_ike:
            from pyipsec.ike.tasks.ike_rekey import REDUNDANT, adopt_peer_rekey  # noqa: PLC0415

            if sa.peer_rekey is not None:
                # the peer won a rekey collision before our own rekey's response came (§2.8.2)
                adopt_peer_rekey(sa)
            if sa.state is IkeSaState.REKEYED:
                sa.close("rekeyed")
            elif sa.pending_rekey or sa.redundant_at is not None:
                sa.close(REDUNDANT)
            else:
                sa.close(
                    f"deleted by peer (it got no virtual IP: {sa.cp_failed})"
                    if sa.cp_failed
                    else "deleted by peer"
                )
