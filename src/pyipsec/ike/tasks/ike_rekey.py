"""Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.8, §2.18).

The initiator of the rekey offers the connection's IKE proposals with a fresh 8-octet SPI,
a nonce and a KE payload (for the group the current SA uses, if still offered). The new
IKE SA's keys come from SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), computed with the
old SA's PRF, and prf+ over the new nonces and SPIs. The side that initiated the rekey is
the new SA's original initiator. Child SAs move over to the new SA unchanged; the old SA is
then deleted by the rekey initiator (its responder just waits for that Delete).

Simultaneous rekeys (§2.8.2). When both peers rekey the same IKE SA at once, both requests
are answered as usual and both new SAs come into being; the peer's one is kept *pending*
on the old SA (``IkeSa.peer_rekey``: its nonces and the new SA) until our own rekey ends.
Then the new SA made with the lowest of the four nonces is redundant:

- ours lost: the Child SAs move to the peer's new SA, we delete our new SA (the Delete
  travels inside it) and wait for the peer to delete the old one;
- ours won: the Child SAs move to our new SA and we delete the old SA; the peer deletes
  its redundant SA. Should that Delete never come (the peer saw the old SA's Delete before
  its rekey response, so never finished its SA), we delete it after ``REDUNDANT_GRACE``.

If our rekey fails while the peer's is pending (TEMPORARY_FAILURE: the peer had already
finished its rekey when ours arrived), the peer's SA takes over; so it does when the
peer deletes the old SA before our response arrives. A rekey request for an SA that is
already rekeyed or being deleted is answered TEMPORARY_FAILURE (§2.25.2, by the task
manager's responder table), so is one that arrives while another request of ours is in
flight on the SA (its response would be lost with the old SA); our own rekey answered that
way is retried after a random delay. Requests we had queued on the old SA move to the new
one (task migration). An SA we delete while our rekey of it is in flight takes the new SAs of
its rekeys with it: the one the peer made answering ours, and the peer's own pending one.

States (``ike.state``): the old SA is REKEYING while our rekey is in flight and REKEYED once
replaced; the peer's new SA of a collision is PENDING until it is ADOPTED or SUPERSEDED
(REDUNDANT); the new SA is created ESTABLISHED (REKEY_MADE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyipsec.crypto.registry import REGISTRY
from pyipsec.errors import (
    InvalidKePayload,
    InvalidSyntax,
    NoProposalChosen,
    TemporaryFailure,
)
from pyipsec.iana.ikev2 import NotifyType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.ike.events import CloseCause, IkeSaEstablished
from pyipsec.ike.keymat import derive_ike_keys, rekey_skeyseed
from pyipsec.ike.proposal import ChosenProposal, select
from pyipsec.ike.sa import IkeSa
from pyipsec.ike.state import IkeEvent, IkeSaState
from pyipsec.ike.task import Task, TaskStatus
from pyipsec.ike.tasks.common import describe_offer, raise_peer_error
from pyipsec.ike.tasks.ike_init import NONCE_LEN, ke_complete, ke_respond, prefer_group
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.sa import SecurityAssociation

if TYPE_CHECKING:
    from pyipsec.crypto.registry import KeInitiator
    from pyipsec.ike.config import ConnectionConfig

__all__ = ["REDUNDANT", "REDUNDANT_GRACE", "IkeRekeyTask", "adopt_peer_rekey"]

REDUNDANT = "redundant after an IKE rekey collision"
REDUNDANT_GRACE = 30.0  # seconds the winner waits for the peer to delete its redundant SA


class IkeRekeyTask(Task):
    def __init__(self) -> None:
        self.spi = b""
        self.nonce = b""
        self.group = KeId.NONE
        self.ke: KeInitiator | None = None
        self.tried: set[KeId] = set()
        self._resp: list[Payload] = []
        self._pending: tuple[ChosenProposal, bytes, bytes, KeId] | None = None

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        conn = sa.connection
        assert conn is not None
        if not self.spi:
            self.spi = sa.ctx.new_ike_spi()
            self.nonce = sa.ctx.rng.random_bytes(NONCE_LEN)
        if self.ke is None:
            offered = [g for p in conn.proposals for g in p.ke]
            if self.group is KeId.NONE:
                self.group = sa.ke_group if sa.ke_group in offered else offered[0]
            self.ke = REGISTRY.ke(self.group).initiate(sa.ctx.rng)
            self.tried.add(self.group)
        req.append(
            SecurityAssociation(tuple(p.to_wire(n, self.spi) for n, p in enumerate(conn.proposals, 1)))
        )
        req.append(Nonce(self.nonce))
        req.append(KeyExchange(self.group, self.ke.public))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        conn = sa.connection
        assert conn is not None
        if sa.state is IkeSaState.DELETING:
            # we are deleting the SA: the new SAs of its rekeys must go as well, the one the peer
            # made for our request and the one its own rekey made (pending, a collision); else
            # the peer keeps them once the old SA's Delete arrives, which ends its rekey
            made: list[IkeSa] = []
            if resp.find(SecurityAssociation) is not None and not any(n.is_error for n in resp.notifies()):
                made.append(self._made(sa, conn, resp))
            if sa.peer_rekey is not None:
                made.append(sa.peer_rekey[2])
                sa.peer_rekey = None
            for new in made:
                new.log.info("deleting it: IKE SA #%d is being deleted", sa.sa_id)
                sa.ctx.followups.delete_ike(new, CloseCause.LOCAL, "deleted locally while being rekeyed")
            return TaskStatus.DONE
        if sa.state is not IkeSaState.REKEYING:
            # the peer's rekey took over (it deleted this SA)
            return TaskStatus.DONE
        invalid_ke = resp.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None:
            wanted = invalid_ke.wanted_group()
            if wanted in {g for p in conn.proposals for g in p.ke} and wanted not in self.tried:
                sa.log.info("peer wants %s for the IKE rekey, retrying with it", wanted.name)
                self.group, self.ke = wanted, None
                return TaskStatus.RETRY
        if resp.notify(NotifyType.TEMPORARY_FAILURE) is not None:
            if sa.peer_rekey is not None:
                sa.log.info("peer declined our IKE rekey (TEMPORARY_FAILURE); its own rekey takes over")
                adopt_peer_rekey(sa)
                return TaskStatus.DONE
            sa.apply(IkeEvent.REKEY_END)
            sa.rekey_at = sa.ctx.now + 10 + 20 * int.from_bytes(sa.ctx.rng.random_bytes(1), "big") / 255
            sa.log.info("peer declined the IKE rekey for now (TEMPORARY_FAILURE), retrying later")
            return TaskStatus.DONE
        raise_peer_error(resp)  # (the SA closes: a failed rekey ends it)
        ours = self._made(sa, conn, resp)
        peer = sa.peer_rekey
        if peer is not None and min(ours.nonce_i, ours.nonce_r) < min(peer[0], peer[1]):
            sa.log.info(
                "IKE rekey collision: ours (#%d) is redundant, #%d takes over", ours.sa_id, peer[2].sa_id
            )
            adopt_peer_rekey(sa)
            sa.ctx.followups.delete_ike(ours, CloseCause.REDUNDANT, REDUNDANT)
            return TaskStatus.DONE
        if peer is not None:
            sa.log.info("IKE rekey collision: ours (#%d) wins over #%d", ours.sa_id, peer[2].sa_id)
            theirs = peer[2]
            if theirs.state is IkeSaState.PENDING:
                theirs.apply(IkeEvent.SUPERSEDED)
                theirs.redundant_at = sa.ctx.now + REDUNDANT_GRACE
            sa.peer_rekey = None
        _take_over(sa, ours)
        sa.ctx.followups.delete_ike(sa, CloseCause.REKEYED, "rekeyed")
        return TaskStatus.DONE

    def _made(self, sa: IkeSa, conn: ConnectionConfig, resp: Message) -> IkeSa:
        """The new IKE SA of the peer's successful response (registered, ESTABLISHED)."""
        sa_payload, nonce, ke = resp.find(SecurityAssociation), resp.find(Nonce), resp.find(KeyExchange)
        if sa_payload is None or nonce is None or ke is None or len(sa_payload.proposals) != 1:
            raise InvalidSyntax("IKE rekey response lacks SA, Nonce or KE")
        chosen = select(conn.proposals, sa_payload.proposals)
        if chosen is None or chosen.protocol is not ProtocolId.IKE or len(chosen.spi) != 8:
            raise NoProposalChosen(f"responder chose {describe_offer(sa_payload.proposals)}")
        if ke.group != chosen.ke or ke.group != self.group or self.ke is None:
            raise InvalidSyntax("IKE rekey response: KE payload does not match the chosen group")
        g_ir = ke_complete(self.ke, ke.data)
        return _new_ike_sa(
            sa,
            chosen,
            IkeEvent.REKEY_MADE,
            initiator=True,
            spi_i=self.spi,
            spi_r=chosen.spi,
            ni=self.nonce,
            nr=nonce.data,
            g_ir=g_ir,
            group=ke.group,
        )

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        conn = sa.connection
        assert conn is not None
        inflight = sa.ctx.followups.in_flight(sa)
        if inflight is not None and not any(isinstance(t, IkeRekeyTask) for t in inflight.tasks):
            # its response would be lost with the old SA (§2.25.2; strongSwan declines too)
            raise TemporaryFailure(f"our {inflight.exchange_type.name} exchange is in progress")
        sa_payload, nonce, ke = req.find(SecurityAssociation), req.find(Nonce), req.find(KeyExchange)
        if sa_payload is None or nonce is None or ke is None:
            raise InvalidSyntax("IKE rekey request lacks SA, Nonce or KE")
        offered = [p for p in sa_payload.proposals if p.protocol is ProtocolId.IKE and len(p.spi) == 8]
        chosen = select([prefer_group(p, ke.group) for p in conn.proposals], offered)
        if chosen is None:
            raise NoProposalChosen(f"no acceptable IKE rekey proposal in {describe_offer(offered)}")
        if chosen.ke != ke.group:
            raise InvalidKePayload(int(chosen.ke or 0))
        public, g_ir = ke_respond(ke.group, ke.data, sa.ctx.rng)
        self.spi = sa.ctx.new_ike_spi()
        self.nonce = sa.ctx.rng.random_bytes(NONCE_LEN)
        self._resp = [
            SecurityAssociation((chosen.to_wire(self.spi),)),
            Nonce(self.nonce),
            KeyExchange(ke.group, public),
        ]
        self._pending = (chosen, nonce.data, g_ir, ke.group)

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        resp.extend(self._resp)

    def after_response(self, sa: IkeSa) -> None:
        if self._pending is None:
            return
        chosen, ni, g_ir, group = self._pending
        collision = sa.state is IkeSaState.REKEYING  # our own rekey of this SA is in flight
        theirs = _new_ike_sa(
            sa,
            chosen,
            IkeEvent.REKEY_COLLIDED if collision else IkeEvent.REKEY_MADE,
            initiator=False,
            spi_i=chosen.spi,
            spi_r=self.spi,
            ni=ni,
            nr=self.nonce,
            g_ir=g_ir,
            group=group,
        )
        if collision:  # decide when ours ends (§2.8.2)
            sa.log.info("IKE rekey collision: the peer rekeyed too, #%d pending", theirs.sa_id)
            sa.peer_rekey = (ni, self.nonce, theirs)
            return
        _take_over(sa, theirs)


def adopt_peer_rekey(old: IkeSa) -> None:
    """The peer's new SA, pending since a rekey collision, replaces ``old`` (§2.8.2)."""
    if old.peer_rekey is None:
        return
    new = old.peer_rekey[2]
    old.peer_rekey = None
    if new.state is IkeSaState.PENDING:
        new.apply(IkeEvent.ADOPTED)
        _take_over(old, new)


def _new_ike_sa(
    old: IkeSa,
    chosen: ChosenProposal,
    made: IkeEvent,
    *,
    initiator: bool,
    spi_i: bytes,
    spi_r: bytes,
    ni: bytes,
    nr: bytes,
    g_ir: bytes,
    group: KeId,
) -> IkeSa:
    """The new IKE SA made by a rekey of ``old``: keyed (§2.18), ESTABLISHED (or PENDING, after
    ``made``), registered with the engine, still without Child SAs."""
    assert old.prf is not None and old.keys is not None
    new = IkeSa(
        old.ctx,
        initiator=initiator,
        local=old.local,
        remote=old.remote,
        spi_i=spi_i,
        spi_r=spi_r,
        connection=old.connection,
        candidates=old.candidates,
        now=old.ctx.now,
    )
    new.proposal = chosen
    new.ke_group = group
    new.nonce_i, new.nonce_r = ni, nr
    new.setup_crypto()
    assert new.prf is not None and new.encr is not None
    seed = rekey_skeyseed(old.prf, old.keys.sk_d, g_ir, ni, nr)  # the old SA's PRF (§2.18)
    new.set_keys(derive_ike_keys(new.prf, new.encr, new.integ, seed, ni=ni, nr=nr, spi_i=spi_i, spi_r=spi_r))
    new.inherit(old)
    new.auth_complete = True
    new.apply(made)
    new.established_at = old.ctx.now
    new.schedule_lifetimes()
    old.ctx.followups.adopt(new)
    return new


def _take_over(old: IkeSa, new: IkeSa) -> None:
    """``new`` replaces ``old``: the Child SAs and leases move, ``old`` waits for its Delete."""
    new.leases, old.leases = old.leases, []
    new.children.update(old.children)
    old.children = {}
    for child in new.children.values():
        child.owner = new
    # requests we queued on the old SA go over the new one (the old one only says goodbye)
    old.ctx.followups.migrate(old, new)
    if old.state in (IkeSaState.ESTABLISHED, IkeSaState.REKEYING, IkeSaState.REAUTHENTICATING):
        old.apply(IkeEvent.REPLACED)
    # a reauthentication under way now replaces the new SA (RFC 7296 §2.8.3), not the old one
    new.reauth_by, old.reauth_by = old.reauth_by, None
    if new.reauth_by is not None and new.state is IkeSaState.ESTABLISHED:
        new.apply(IkeEvent.REAUTH_START)
    old.log.info("IKE SA rekeyed, replaced by #%d", new.sa_id, extra={"event": "ike_rekeyed"})
    assert new.proposal is not None
    new.emit(
        IkeSaEstablished(
            new.sa_id,
            new.name,
            new.spi_i,
            new.spi_r,
            new.initiator,
            new.local,
            new.remote,
            str(new.local_id),
            str(new.remote_id),
            new.proposal,
            rekeyed_from=old.sa_id,
        )
    )
