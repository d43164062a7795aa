"""MOBIKE (RFC 4555): moving an IKE SA and its Child SAs to new addresses.

Theory of operation.

*Negotiation (§3.4).* Both sides announce MOBIKE_SUPPORTED in IKE_AUTH, together with
their other usable addresses: one ADDITIONAL_IP4_ADDRESS / ADDITIONAL_IP6_ADDRESS per
address (the address the IKE SA uses is not listed), or NO_ADDITIONAL_ADDRESSES when there
is none. The daemon tells the engine its addresses (``IkeEngine.set_local_addresses``);
until it has, no list is sent at all. When the set changes, an INFORMATIONAL carrying the
new list goes to every MOBIKE peer (§3.6; for the responder this is the only way to tell).
The peer's latest list replaces the previous one (``IkeSa.peer_addresses``).

*Moving (§3.5).* Only the original initiator decides about addresses (§3.1): when its
path changes it sends, from the new address, an INFORMATIONAL request with
UPDATE_SA_ADDRESSES, fresh NAT_DETECTION_* hashes and a fresh random COOKIE2
(:class:`UpdateSaAddressesTask`). The responder — acting only on this authenticated
request, never on a bare source-address change — moves the IKE SA and all Child SAs to the
addresses the request came from and answers with its own NAT-D hashes and our COOKIE2
echoed; both sides then report the new endpoints of every Child SA
(``ChildSaAddressesChanged``) so that the data plane switches at once. With MOBIKE, IKE
runs on the NAT-T port from IKE_AUTH on (§3.3), so a NAT appearing later is handled.

*COOKIE2 (RFC 4555 §3.5, §4.2.5).* Every INFORMATIONAL request we send for MOBIKE carries
16 unpredictable octets from the engine's RandomSource; a responder copies COOKIE2 into
its response (we do in every INFORMATIONAL response, which also answers strongSwan's own
checks). A response whose COOKIE2 is missing or differs is not accepted: the update is not applied (no
``ChildSaAddressesChanged``) and, as RFC 4555 requires on a mismatch, the IKE SA closes
(with a Delete).

*Path choice (§3.8), a simple policy.* The update goes to the peer's current address
first. If two transmissions go unanswered there, the request (same message ID, same
COOKIE2, NAT-D recomputed) is re-sent to each of the peer's additional addresses of the
same IP version in the order it listed them, with the full retransmission schedule on the
last one; the address that answers becomes the peer's address. The daemon also falls back
to the list when it has no route to the current peer address at all.

*Return routability (§3.5, §5.2).* The responder to an update that moved the peer to an
address it has not seen answer before (neither the IKE SA's original address nor one
verified earlier) sends an INFORMATIONAL with COOKIE2 to the new address
(:class:`ReturnRoutabilityTask`); the echo marks the address verified, a mismatch or no
answer at all closes the IKE SA. What we do not do: hold back ESP to the new address until
the check completes — the request that moved us was authenticated, so only the peer itself
could misdirect the traffic (the residual risk §5.2.1 describes); and we do not test paths
in parallel or pick among several local addresses (the daemon's routing table does).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from pyipsec.errors import InvalidSyntax
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.task import Task, TaskStatus
from pyipsec.ike.tasks.common import nat_detection_notifies, read_nat_detection
from pyipsec.net.addr import Endpoint, IPAddress
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = [
    "COOKIE2_SIZE",
    "PATH_TRIES",
    "AddressListTask",
    "ReturnRoutabilityTask",
    "UpdateSaAddressesTask",
    "address_notifies",
    "apply_nat_detection",
    "check_cookie2",
    "follow_peer",
    "nat_notifies",
    "new_cookie2",
    "read_address_list",
    "wanted_addresses",
]

COOKIE2_SIZE = 16
"""Octets of COOKIE2 data we send (RFC 4555 allows 8..64)."""
PATH_TRIES = 2
"""Transmissions of an update to one peer address before trying its next address (§3.8)."""

_ADDRESS_NOTIFIES = (
    NotifyType.ADDITIONAL_IP4_ADDRESS,
    NotifyType.ADDITIONAL_IP6_ADDRESS,
    NotifyType.NO_ADDITIONAL_ADDRESSES,
)


def nat_notifies(sa: IkeSa) -> list[Payload]:
    return nat_detection_notifies(sa, sa.spi_r)


def apply_nat_detection(sa: IkeSa, msg: Message) -> None:
    read_nat_detection(sa, msg, sa.spi_r)


def follow_peer(sa: IkeSa) -> None:
    """After an authenticated request: follow the initiator to the NAT-T port (RFC 7296 §2.23),
    and, with a NAT in front of it, to a new NAT mapping (the Child SAs follow too)."""
    if sa.original_initiator or sa.arrived is None:
        return
    local, remote = sa.arrived
    floated = local.port == sa.ctx.config.nat_t_port and sa.local != local
    if floated:
        sa.local = local
    if remote != sa.remote and (floated or sa.nat_remote):
        sa.log.info("peer moved from %s to %s", sa.remote, remote)
        sa.remote = remote
        if sa.active:
            sa.addresses_changed()


# -- COOKIE2 -------------------------------------------------------------------------------------


def new_cookie2(sa: IkeSa) -> bytes:
    """Fresh, unpredictable COOKIE2 data (RFC 4555: 8..64 octets) from the engine's RandomSource."""
    return sa.ctx.rng.random_bytes(COOKIE2_SIZE)


def check_cookie2(sa: IkeSa, resp: Message, sent: bytes, what: str) -> bool:
    """Whether ``resp`` echoes the COOKIE2 we sent; logs a mismatch."""
    echo = resp.notify(NotifyType.COOKIE2)
    if echo is not None and hmac.compare_digest(echo.data, sent):
        return True
    sa.log.warning(
        "MOBIKE: %s response %s COOKIE2 we sent: not accepted",
        what,
        "lacks the" if echo is None else "does not echo the",
    )
    return False


# -- address lists -------------------------------------------------------------------------------


def wanted_addresses(sa: IkeSa) -> tuple[IPAddress, ...] | None:
    """The additional addresses to announce: our known addresses but the one in use; None if unknown."""
    addrs = sa.ctx.local_addresses
    if addrs is None:
        return None
    return tuple(dict.fromkeys(a for a in addrs if a != sa.local.ip))


def address_notifies(sa: IkeSa) -> list[Payload]:
    """ADDITIONAL_IP*_ADDRESS per address, or NO_ADDITIONAL_ADDRESSES (RFC 4555 §3.4, §3.6);
    nothing while the daemon has not told us our addresses. Records what was announced."""
    addrs = wanted_addresses(sa)
    if addrs is None:
        return []
    sa.announced_addresses = addrs
    if not addrs:
        return [Notify.of(NotifyType.NO_ADDITIONAL_ADDRESSES)]
    return [Notify.additional_address(a) for a in addrs]


def read_address_list(sa: IkeSa, msg: Message) -> bool:
    """Take the peer's address list from ``msg`` if it carries one (it replaces the old list,
    RFC 4555 §3.6); True if it did. Its own current address is never kept in the list."""
    notes = [n for n in msg.notifies() if n.notify_type in _ADDRESS_NOTIFIES]
    if not notes:
        return False
    addrs: list[IPAddress] = []
    for n in notes:
        if n.notify_type != NotifyType.NO_ADDITIONAL_ADDRESSES:
            addrs.append(n.address())
    sa.peer_addresses = tuple(dict.fromkeys(a for a in addrs if a != sa.remote.ip))
    sa.peer_addresses_known = True
    sa.log.info(
        "MOBIKE: peer's additional addresses: %s",
        ", ".join(map(str, sa.peer_addresses)) if sa.peer_addresses else "none",
    )
    return True


# -- tasks ---------------------------------------------------------------------------------------


class UpdateSaAddressesTask(Task):
    """Original initiator: tell the responder our new addresses (RFC 4555 §3.5), with COOKIE2;
    if the peer's current address does not answer, try its additional addresses (§3.8)."""

    def __init__(self, sa: IkeSa) -> None:
        self.cookie2 = new_cookie2(sa)
        version = sa.local.ip.version
        first = sa.remote.ip
        self.paths: list[IPAddress] = [
            first,
            *(a for a in sa.peer_addresses if a.version == version and a != first),
        ]
        self.path = 0

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.append(Notify.of(NotifyType.UPDATE_SA_ADDRESSES))
        req.append(Notify.cookie2(self.cookie2))
        req.extend(nat_notifies(sa))
        if wanted_addresses(sa) != sa.announced_addresses:
            req.extend(address_notifies(sa))

    def on_timeout(self, sa: IkeSa, attempt: int) -> bool:
        """After ``PATH_TRIES`` transmissions, move on to the next peer address."""
        if attempt < PATH_TRIES or self.path + 1 >= len(self.paths):
            return False
        self.path += 1
        addr = self.paths[self.path]
        sa.log.info("MOBIKE: no answer from %s, trying the peer's address %s", sa.remote.ip, addr)
        sa.remote = Endpoint(addr, sa.remote.port)
        return True

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        if not check_cookie2(sa, resp, self.cookie2, "UPDATE_SA_ADDRESSES"):
            raise InvalidSyntax("MOBIKE update failed: COOKIE2 mismatch in the response (RFC 4555)")
        if sa.arrived is not None:
            sa.remote = sa.arrived[1]
        sa.verify_remote(sa.remote.ip)
        read_address_list(sa, resp)
        apply_nat_detection(sa, resp)
        sa.log.info("MOBIKE: IKE SA and Child SAs moved to %s - %s", sa.local, sa.remote)
        sa.addresses_changed()
        return TaskStatus.DONE


class AddressListTask(Task):
    """Either side: our address set changed, send the new list (RFC 4555 §3.6), with COOKIE2."""

    def __init__(self, sa: IkeSa) -> None:
        self.cookie2 = new_cookie2(sa)

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.append(Notify.cookie2(self.cookie2))
        req.extend(address_notifies(sa))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        if not check_cookie2(sa, resp, self.cookie2, "address list"):
            raise InvalidSyntax("MOBIKE address list: COOKIE2 mismatch in the response (RFC 4555)")
        return TaskStatus.DONE


class ReturnRoutabilityTask(Task):
    """Responder after a move: check that the peer's new address answers (RFC 4555 §3.5, §5.2)."""

    def __init__(self, sa: IkeSa) -> None:
        self.cookie2 = new_cookie2(sa)
        self.addr = sa.remote.ip

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        req.append(Notify.cookie2(self.cookie2))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        if not check_cookie2(sa, resp, self.cookie2, "return routability check"):
            raise InvalidSyntax("MOBIKE return routability check failed: COOKIE2 mismatch")
        sa.verify_remote(self.addr)
        sa.log.info("MOBIKE: return routability of %s verified", self.addr)
        return TaskStatus.DONE
