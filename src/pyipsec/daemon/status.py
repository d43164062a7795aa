"""The daemon's view of its SAs as JSON-ready dictionaries (``status``, ``status --json``)."""

from __future__ import annotations

from pyipsec.config.proposals import format_proposal
from pyipsec.control.protocol import JsonValue
from pyipsec.ike.sa import ChildSa, IkeSa

__all__ = ["child_status", "ike_sa_status"]


def _in(at: float | None, now: float) -> int | None:
    """Whole seconds from ``now`` until ``at`` (None: not scheduled)."""
    return None if at is None else max(0, round(at - now))


def child_status(child: ChildSa, sa: IkeSa, now: float | None = None) -> dict[str, JsonValue]:
    now = sa.ctx.now if now is None else now
    return {
        "id": child.child_id,
        "name": child.name,
        "state": child.state.name,
        "mode": child.mode.value.upper(),
        "protocol": "ESP",
        "encap": sa.use_encap,
        "spi_in": child.spi_in.hex(),
        "spi_out": child.spi_out.hex(),
        "proposal": format_proposal(child.proposal.to_spec()) if child.proposal else None,
        "local_ts": [str(t) for t in child.local_ts],
        "remote_ts": [str(t) for t in child.remote_ts],
        # like swanctl's "rekeying in", "expires in" (volume limits are the data plane's)
        "rekey_in": None if child.rekeying or child.successor else _in(child.rekey_at, now),
        "expires_in": _in(child.expire_at, now),
    }


def ike_sa_status(sa: IkeSa, now: float) -> dict[str, JsonValue]:
    return {
        "id": sa.sa_id,
        "name": sa.name,
        "state": sa.state.name,
        "version": 2,
        "initiator": sa.initiator,  # in this SA's messages; rekeys by the peer swap it (§2.18)
        "original_initiator": sa.original_initiator,  # the client of the connection
        "local": str(sa.local),
        "remote": str(sa.remote),
        "local_id": str(sa.local_id),
        "remote_id": str(sa.remote_id),
        "spi_i": sa.spi_i.hex(),
        "spi_r": sa.spi_r.hex(),
        "nat_local": sa.nat_local,
        "nat_remote": sa.nat_remote,
        "encap": sa.use_encap,
        "virtual_ips": [str(a) for a in sa.virtual_ips],
        "mobike": sa.peer_mobike,
        # the peer's ADDITIONAL_IP*_ADDRESS list (RFC 4555 §3.6); None if it sent none
        "peer_additional_addresses": [str(a) for a in sa.peer_addresses] if sa.peer_addresses_known else None,
        "proposal": format_proposal(sa.proposal.to_spec()) if sa.proposal else None,
        "established_seconds": round(now - sa.established_at) if sa.was_established else None,
        "rekey_in": None if sa.rekeying else _in(sa.rekey_at, now),
        # the client reauthenticates then; a gateway deletes the SA then unless reauthenticated
        "reauth_in": _in(sa.reauth_at, now),
        "children": [child_status(c, sa, now) for c in sa.children.values()],
    }
