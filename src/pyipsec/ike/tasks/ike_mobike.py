"""MOBIKE (RFC 4555): moving an IKE SA and its Child SAs to new addresses.

Both sides announce MOBIKE_SUPPORTED in IKE_AUTH. Only the original initiator decides
about addresses (RFC 4555 §3.1): when its path changes it sends, from the new address, an
INFORMATIONAL request with UPDATE_SA_ADDRESSES and fresh NAT_DETECTION_* hashes. The
responder — acting only on this authenticated request, never on a bare source-address
change — moves the IKE SA and all Child SAs to the addresses the request came from and
answers with its own NAT-D hashes; both sides then report the new endpoints of every Child
SA (``ChildSaAddressesChanged``) so that the data plane switches at once. With MOBIKE,
IKE runs on the NAT-T port from IKE_AUTH on (§3.3), so a NAT appearing later is handled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.events import ChildSaAddressesChanged
from pyipsec.ike.state import ChildSaState
from pyipsec.ike.tasks.base import TaskStatus
from pyipsec.ike.tasks.common import nat_hash
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["UpdateSaAddressesTask", "apply_nat_detection", "moved", "nat_notifies"]


def nat_notifies(sa: IkeSa) -> list[Payload]:
    return [
        Notify.nat_detection_source_ip(nat_hash(sa.spi_i, sa.spi_r, sa.local)),
        Notify.nat_detection_destination_ip(nat_hash(sa.spi_i, sa.spi_r, sa.remote)),
    ]


def apply_nat_detection(sa: IkeSa, msg: Message) -> None:
    src = msg.notify(NotifyType.NAT_DETECTION_SOURCE_IP)
    dst = msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
    if src is not None and dst is not None:
        sa.nat_remote = src.nat_hash() != nat_hash(sa.spi_i, sa.spi_r, sa.remote)
        sa.nat_local = dst.nat_hash() != nat_hash(sa.spi_i, sa.spi_r, sa.local)
        conn = sa.connection
        if conn is not None and conn.encap:
            sa.nat_local = True


def moved(sa: IkeSa) -> None:
    """Report the SA's (new) endpoints for every installed Child SA."""
    for child in sa.children.values():
        if child.state in (ChildSaState.INSTALLED, ChildSaState.REKEYED):
            sa.events.append(
                ChildSaAddressesChanged(
                    sa.sa_id, sa.name, child.child_id, child.spi_in, sa.local, sa.remote, sa.use_encap
                )
            )


class UpdateSaAddressesTask:
    """Initiator: tell the responder our new addresses (RFC 4555 §3.5)."""

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.append(Notify.of(NotifyType.UPDATE_SA_ADDRESSES))
        req.extend(nat_notifies(sa))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        apply_nat_detection(sa, resp)
        sa.log.info("MOBIKE: IKE SA and Child SAs moved to %s - %s", sa.local, sa.remote)
        moved(sa)
        return TaskStatus.DONE

    def process_r(self, sa: IkeSa, req: Message) -> None:  # pragma: no cover - initiator only
        raise AssertionError("initiator-only task")

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:  # pragma: no cover
        raise AssertionError("initiator-only task")
