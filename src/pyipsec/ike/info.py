"""Snapshots of IKE SAs and Child SAs for the outside world (``IkeEngine.list_sas``).

The daemon shows and acts on SAs through these frozen records only (``status``, ``up``,
``rekey``, MOBIKE path checks), never through the engine's live objects. Times are the
engine's monotonic clock (absolute; None: not scheduled). Keys are not part of a snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.childsa import EspMode
from pyipsec.ike.proposal import ChosenProposal
from pyipsec.ike.sa import ChildSa, IkeSa
from pyipsec.ike.state import ChildSaState, IkeSaState
from pyipsec.net.addr import Endpoint, IPAddress
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = ["ChildSaInfo", "IkeSaInfo", "describe"]


@dataclass(frozen=True, slots=True)
class ChildSaInfo:
    child_id: int
    name: str
    state: ChildSaState
    mode: EspMode
    spi_in: bytes
    spi_out: bytes
    proposal: ChosenProposal | None
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    outbound_active: bool
    rekey_at: float | None  # None while it is rekeyed or being rekeyed
    expire_at: float | None


@dataclass(frozen=True, slots=True)
class IkeSaInfo:
    sa_id: int
    connection: str
    state: IkeSaState
    initiator: bool  # in this SA's messages; rekeys by the peer swap it (RFC 7296 §2.18)
    original_initiator: bool  # the client of the connection
    local: Endpoint
    remote: Endpoint
    local_id: str
    remote_id: str
    spi_i: bytes
    spi_r: bytes
    nat_local: bool
    nat_remote: bool
    encap: bool
    virtual_ips: tuple[IPAddress, ...]
    mobike: bool
    peer_addresses: tuple[IPAddress, ...] | None  # the peer's ADDITIONAL_IP*_ADDRESS list, if sent
    proposal: ChosenProposal | None
    established_at: float | None
    rekey_at: float | None  # None while the SA is being rekeyed or reauthenticated
    reauth_at: float | None  # initiator: reauthenticate then; responder: delete unless reauthenticated
    children: tuple[ChildSaInfo, ...]

    @property
    def established(self) -> bool:
        """Up and carrying its Child SAs (also while rekeying or reauthenticating)."""
        return self.state in (IkeSaState.ESTABLISHED, IkeSaState.REKEYING, IkeSaState.REAUTHENTICATING)

    @property
    def connecting(self) -> bool:
        return self.state in (IkeSaState.CREATED, IkeSaState.CONNECTING)

    @property
    def reauthenticating(self) -> bool:
        return self.state is IkeSaState.REAUTHENTICATING

    @property
    def can_move(self) -> bool:
        """Whether we may move it to other addresses (MOBIKE, RFC 4555 §3.1)."""
        return self.established and self.original_initiator and self.mobike


def _child(c: ChildSa) -> ChildSaInfo:
    return ChildSaInfo(
        child_id=c.child_id,
        name=c.name,
        state=c.state,
        mode=c.mode,
        spi_in=c.spi_in,
        spi_out=c.spi_out,
        proposal=c.proposal,
        local_ts=c.local_ts,
        remote_ts=c.remote_ts,
        outbound_active=c.outbound_active,
        rekey_at=c.rekey_at if c.state is ChildSaState.INSTALLED else None,
        expire_at=c.expire_at,
    )


def describe(sa: IkeSa) -> IkeSaInfo:
    return IkeSaInfo(
        sa_id=sa.sa_id,
        connection=sa.name,
        state=sa.state,
        initiator=sa.initiator,
        original_initiator=sa.original_initiator,
        local=sa.local,
        remote=sa.remote,
        local_id=str(sa.local_id),
        remote_id=str(sa.remote_id),
        spi_i=sa.spi_i,
        spi_r=sa.spi_r,
        nat_local=sa.nat_local,
        nat_remote=sa.nat_remote,
        encap=sa.use_encap,
        virtual_ips=sa.virtual_ips,
        mobike=sa.peer_mobike,
        peer_addresses=sa.peer_addresses if sa.peer_addresses_known else None,
        proposal=sa.proposal,
        established_at=sa.established_at,
        rekey_at=sa.rekey_at if sa.state is IkeSaState.ESTABLISHED else None,
        reauth_at=sa.reauth_at,
        children=tuple(_child(c) for c in sa.children.values()),
    )
