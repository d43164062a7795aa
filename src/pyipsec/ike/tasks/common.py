"""Helpers shared by the tasks: peer error notifies, proposal descriptions, NAT-D hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyipsec.errors import (
    AuthenticationFailed,
    ChildSaNotFound,
    FailedCpRequired,
    IkeError,
    InternalAddressFailure,
    InvalidSyntax,
    NoProposalChosen,
    SinglePairRequired,
    TemporaryFailure,
    TsUnacceptable,
)
from pyipsec.iana.ikev2 import NotifyType
from pyipsec.ike.proposal import ProposalSpec
from pyipsec.ike.proposal_text import format_proposal
from pyipsec.net.addr import Endpoint
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import Proposal

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = [
    "PeerError",
    "describe_offer",
    "describe_ours",
    "nat_detection_notifies",
    "nat_hash",
    "nearest_mismatch",
    "peer_error",
    "raise_peer_error",
    "read_nat_detection",
]

_BY_NOTIFY: dict[NotifyType, type[IkeError]] = {
    NotifyType.NO_PROPOSAL_CHOSEN: NoProposalChosen,
    NotifyType.AUTHENTICATION_FAILED: AuthenticationFailed,
    NotifyType.TS_UNACCEPTABLE: TsUnacceptable,
    NotifyType.SINGLE_PAIR_REQUIRED: SinglePairRequired,
    NotifyType.INTERNAL_ADDRESS_FAILURE: InternalAddressFailure,
    NotifyType.FAILED_CP_REQUIRED: FailedCpRequired,
    NotifyType.TEMPORARY_FAILURE: TemporaryFailure,
    NotifyType.CHILD_SA_NOT_FOUND: ChildSaNotFound,
    NotifyType.INVALID_SYNTAX: InvalidSyntax,
}


# What a person can do when the peer answers with one of these (our side of the story: the peer's
# own log says exactly what it did not like)
_HINTS: dict[NotifyType, str] = {
    NotifyType.NO_PROPOSAL_CHOSEN: "it accepts none of our proposals; compare our proposals with the peer's",
    NotifyType.AUTHENTICATION_FAILED: (
        "it rejected our identity or credentials; check local.id and the pre-shared key, "
        "certificate or EAP password the peer expects for it"
    ),
    NotifyType.TS_UNACCEPTABLE: (
        "its traffic selectors do not cover ours; compare local_ts/remote_ts with the peer's"
    ),
    NotifyType.SINGLE_PAIR_REQUIRED: (
        "it accepts one address pair only; narrow local_ts/remote_ts to single addresses"
    ),
    NotifyType.INTERNAL_ADDRESS_FAILURE: (
        "it has no virtual IP for us (its pool is exhausted or not configured)"
    ),
    NotifyType.FAILED_CP_REQUIRED: "it requires us to ask for a virtual IP; set vips",
}


def _answered(notify_type: NotifyType) -> str:
    hint = _HINTS.get(notify_type)
    return f"peer answered {notify_type.name}" + (f" — {hint}" if hint else "")


class PeerError(IkeError):
    """The peer answered with an error Notify we have no dedicated class for."""

    def __init__(self, notify_type: NotifyType) -> None:
        super().__init__(f"peer answered {notify_type.name} ({int(notify_type)})")
        self.notify_type = notify_type


def peer_error(msg: Message, *, ignore: Sequence[NotifyType] = ()) -> IkeError | None:
    """The error a response's first error Notify stands for (RFC 7296 §2.21), if any."""
    for n in msg.notifies():
        if n.is_error and n.notify_type not in ignore:
            cls = _BY_NOTIFY.get(n.notify_type)
            if cls is None:
                return PeerError(n.notify_type)
            return cls(_answered(n.notify_type))
    return None


def raise_peer_error(msg: Message, *, ignore: Sequence[NotifyType] = ()) -> None:
    """Raise the error a response's first error Notify stands for (RFC 7296 §2.21)."""
    error = peer_error(msg, ignore=ignore)
    if error is not None:
        raise error


def describe_ours(specs: Sequence[ProposalSpec]) -> str:
    return ", ".join(format_proposal(s) for s in specs) or "(none)"


def describe_offer(offered: Sequence[Proposal]) -> str:
    out: list[str] = []
    for p in offered:
        try:
            out.append(format_proposal(ProposalSpec.from_wire(p)))
        except (ValueError, KeyError):
            out.append(f"proposal #{p.number} ({len(p.transforms)} transforms)")
    return ", ".join(out) or "(none)"


_TYPE_WORDS = (
    ("encr", "encryption"),
    ("integ", "integrity"),
    ("prf", "PRF"),
    ("ke", "key exchange"),
    ("esn", "ESN"),
)


def nearest_mismatch(ours: Sequence[ProposalSpec], offered: Sequence[Proposal]) -> str:
    """Which of our proposals came closest to one the peer offered, and what differs.

    Closeness counts the transform types on which the two share an algorithm; the result
    names the types that share none, e.g. "closest: ours aes256-sha256-modp2048 vs peer
    aes256-sha256-ecp256 (no common key exchange)".
    """
    best: tuple[int, str] | None = None
    for spec in ours:
        for p in offered:
            try:
                peer = ProposalSpec.from_wire(p)
            except (ValueError, KeyError):
                continue
            differ = [
                word
                for attr, word in _TYPE_WORDS
                if (getattr(spec, attr) or getattr(peer, attr))
                and not set(getattr(spec, attr)) & set(getattr(peer, attr))
            ]
            score = len(_TYPE_WORDS) - len(differ)
            if best is None or score > best[0]:
                text = f"closest: ours {format_proposal(spec)} vs peer {format_proposal(peer)}"
                best = (score, f"{text} (no common {', '.join(differ)})" if differ else text)
    return best[1] if best else ""


def nat_hash(spi_i: bytes, spi_r: bytes, endpoint: Endpoint) -> bytes:
    """NAT_DETECTION_*_IP data: SHA-1(SPIi | SPIr | IP | Port) (RFC 7296 §2.23)."""
    return hashlib.sha1(spi_i + spi_r + endpoint.packed, usedforsecurity=False).digest()


def nat_detection_notifies(sa: IkeSa, spi_r: bytes) -> list[Payload]:
    """NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for our endpoints (RFC 7296 §2.23), in
    IKE_SA_INIT (``spi_r`` zero in the request) and MOBIKE updates (RFC 4555 §3.5). With
    forced encapsulation a source hash that cannot match fakes a NAT (§2.23 allows this)."""
    conn = sa.connection
    src = (
        sa.ctx.rng.random_bytes(20)
        if conn is not None and conn.encap
        else nat_hash(sa.spi_i, spi_r, sa.local)
    )
    return [
        Notify.nat_detection_source_ip(src),
        Notify.nat_detection_destination_ip(nat_hash(sa.spi_i, spi_r, sa.remote)),
    ]


def read_nat_detection(sa: IkeSa, msg: Message, spi_r: bytes) -> None:
    """Whether there is a NAT in front of the peer or of us, from the peer's NAT-D hashes;
    forced encapsulation counts as a NAT here."""
    src = msg.notify(NotifyType.NAT_DETECTION_SOURCE_IP)
    dst = msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP)
    if src is not None and dst is not None:
        sa.nat_remote = src.nat_hash() != nat_hash(sa.spi_i, spi_r, sa.remote)
        sa.nat_local = dst.nat_hash() != nat_hash(sa.spi_i, spi_r, sa.local)
    conn = sa.connection
    if conn is not None and conn.encap:
        sa.nat_local = True
