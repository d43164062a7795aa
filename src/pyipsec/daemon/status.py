"""The daemon's view of its SAs as JSON-ready dictionaries (``status``, ``status --json``)."""

from __future__ import annotations

from pyipsec.control.protocol import JsonValue
from pyipsec.ike.info import ChildSaInfo, IkeSaInfo
from pyipsec.ike.proposal import ChosenProposal
from pyipsec.ike.proposal_text import format_chosen

__all__ = ["child_status", "ike_sa_status"]


def _in(at: float | None, now: float) -> int | None:
    """Whole seconds from ``now`` until ``at`` (None: not scheduled)."""
    return None if at is None else max(0, round(at - now))


def _proposal(chosen: ChosenProposal | None) -> str | None:
    return format_chosen(chosen) if chosen is not None else None


def child_status(child: ChildSaInfo, sa: IkeSaInfo, now: float) -> dict[str, JsonValue]:
    return {
        "id": child.child_id,
        "name": child.name,
        "state": child.state.name,
        "mode": child.mode.value.upper(),
        "protocol": "ESP",
        "encap": sa.encap,
        "spi_in": child.spi_in.hex(),
        "spi_out": child.spi_out.hex(),
        "proposal": _proposal(child.proposal),
        "local_ts": [str(t) for t in child.local_ts],
        "remote_ts": [str(t) for t in child.remote_ts],
        # like swanctl's "rekeying in", "expires in" (volume limits are the data plane's)
        "rekey_in": _in(child.rekey_at, now),
        "expires_in": _in(child.expire_at, now),
    }


def ike_sa_status(sa: IkeSaInfo, now: float) -> dict[str, JsonValue]:
    return {
        "id": sa.sa_id,
        "name": sa.connection,
        "state": sa.state.name,
        "version": 2,
        "initiator": sa.initiator,  # in this SA's messages; rekeys by the peer swap it (§2.18)
        "original_initiator": sa.original_initiator,  # the client of the connection
        "local": str(sa.local),
        "remote": str(sa.remote),
        "local_id": sa.local_id,
        "remote_id": sa.remote_id,
        "spi_i": sa.spi_i.hex(),
        "spi_r": sa.spi_r.hex(),
        "nat_local": sa.nat_local,
        "nat_remote": sa.nat_remote,
        "encap": sa.encap,
        "virtual_ips": [str(a) for a in sa.virtual_ips],
        "mobike": sa.mobike,
        # the peer's ADDITIONAL_IP*_ADDRESS list (RFC 4555 §3.6); None if it sent none
        "peer_additional_addresses": None
        if sa.peer_addresses is None
        else [str(a) for a in sa.peer_addresses],
        "proposal": _proposal(sa.proposal),
        "established_seconds": None if sa.established_at is None else round(now - sa.established_at),
        "rekey_in": _in(sa.rekey_at, now),
        # the client reauthenticates then; a gateway deletes the SA then unless reauthenticated
        "reauth_in": _in(sa.reauth_at, now),
        "children": [child_status(c, sa, now) for c in sa.children],
    }
