"""Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18).

The initiator of the rekey offers the connection's IKE proposals with a fresh 8-octet SPI,
a nonce and a KE payload (for the group the current SA uses, if still offered). The new
IKE SA's keys come from SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), computed with the
old SA's PRF, and prf+ over the new nonces and SPIs. The side that initiated the rekey is
the new SA's original initiator. Child SAs move over to the new SA unchanged; the old SA is
then deleted by the rekey initiator (its responder just waits for that Delete).

A rekey request that arrives while our own is in flight is answered TEMPORARY_FAILURE, so
that at most one new SA results; both sides retry after a random delay (a simplification of
the nonce rule of §2.8.1, which would let both complete and delete one).
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
from pyipsec.iana.ikev2 import ExchangeType, NotifyType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.ike.keymat import derive_ike_keys, rekey_skeyseed
from pyipsec.ike.proposal import select
from pyipsec.ike.state import IkeSaState
from pyipsec.ike.tasks.base import TaskStatus
from pyipsec.ike.tasks.common import describe_offer, raise_peer_error
from pyipsec.ike.tasks.ike_init import KE_ERRORS, NONCE_LEN, prefer_group
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.sa import SecurityAssociation

if TYPE_CHECKING:
    from pyipsec.crypto.registry import KeInitiator
    from pyipsec.ike.proposal import ChosenProposal
    from pyipsec.ike.sa import IkeSa

__all__ = ["IkeRekeyTask"]


class IkeRekeyTask:
    def __init__(self) -> None:
        self.spi = b""
        self.nonce = b""
        self.group = KeId.NONE
        self.ke: KeInitiator | None = None
        self.tried: set[KeId] = set()
        self._resp: list[Payload] = []

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
        invalid_ke = resp.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None:
            wanted = invalid_ke.wanted_group()
            if wanted in {g for p in conn.proposals for g in p.ke} and wanted not in self.tried:
                self.group, self.ke = wanted, None
                return TaskStatus.RETRY
        if resp.notify(NotifyType.TEMPORARY_FAILURE) is not None:
            sa.rekeying = False
            sa.rekey_at = sa.ctx.now + 10 + 20 * int.from_bytes(sa.ctx.rng.random_bytes(1), "big") / 255
            sa.log.info("peer declined the IKE rekey for now (TEMPORARY_FAILURE), retrying later")
            return TaskStatus.DONE
        try:
            raise_peer_error(resp)
            sa_payload, nonce, ke = resp.find(SecurityAssociation), resp.find(Nonce), resp.find(KeyExchange)
            if sa_payload is None or nonce is None or ke is None or len(sa_payload.proposals) != 1:
                raise InvalidSyntax("IKE rekey response lacks SA, Nonce or KE")
            chosen = select(conn.proposals, sa_payload.proposals)
            if chosen is None or chosen.protocol is not ProtocolId.IKE or len(chosen.spi) != 8:
                raise NoProposalChosen(f"responder chose {describe_offer(sa_payload.proposals)}")
            if ke.group != chosen.ke or ke.group != self.group or self.ke is None:
                raise InvalidSyntax("IKE rekey response: KE payload does not match the chosen group")
            try:
                g_ir = self.ke.complete(ke.data)
            except KE_ERRORS as exc:
                raise InvalidSyntax(f"responder's key exchange value is invalid: {exc}") from None
        except Exception:
            sa.rekeying = False
            raise
        _make_new_sa(
            sa,
            chosen,
            initiator=True,
            spi_i=self.spi,
            spi_r=chosen.spi,
            ni=self.nonce,
            nr=nonce.data,
            g_ir=g_ir,
            group=ke.group,
        )
        return TaskStatus.DONE

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        conn = sa.connection
        assert conn is not None
        if sa.rekeying:
            raise TemporaryFailure("an IKE rekey of ours is in progress")
        sa_payload, nonce, ke = req.find(SecurityAssociation), req.find(Nonce), req.find(KeyExchange)
        if sa_payload is None or nonce is None or ke is None:
            raise InvalidSyntax("IKE rekey request lacks SA, Nonce or KE")
        offered = [p for p in sa_payload.proposals if p.protocol is ProtocolId.IKE and len(p.spi) == 8]
        chosen = select([prefer_group(p, ke.group) for p in conn.proposals], offered)
        if chosen is None:
            raise NoProposalChosen(f"no acceptable IKE rekey proposal in {describe_offer(offered)}")
        if chosen.ke != ke.group:
            raise InvalidKePayload(int(chosen.ke or 0))
        try:
            public, g_ir = REGISTRY.ke(ke.group).respond(ke.data, sa.ctx.rng)
        except KE_ERRORS as exc:
            raise InvalidSyntax(f"peer's key exchange value is invalid: {exc}") from None
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

    def after_response(self, sa: IkeSa, now: float) -> None:
        pending = getattr(self, "_pending", None)
        if pending is None:
            return
        chosen, ni, g_ir, group = pending
        _make_new_sa(
            sa,
            chosen,
            initiator=False,
            spi_i=chosen.spi,
            spi_r=self.spi,
            ni=ni,
            nr=self.nonce,
            g_ir=g_ir,
            group=group,
        )


def _make_new_sa(
    old: IkeSa,
    chosen: ChosenProposal,
    *,
    initiator: bool,
    spi_i: bytes,
    spi_r: bytes,
    ni: bytes,
    nr: bytes,
    g_ir: bytes,
    group: KeId,
) -> None:
    """Create the new IKE SA, move the children to it, and retire the old one (§2.18)."""
    from pyipsec.ike.events import IkeSaEstablished  # noqa: PLC0415
    from pyipsec.ike.exchanger import Exchange  # noqa: PLC0415
    from pyipsec.ike.sa import IkeSa  # noqa: PLC0415
    from pyipsec.ike.tasks.informational import IkeDeleteTask  # noqa: PLC0415

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
    new.keys = derive_ike_keys(new.prf, new.encr, new.integ, seed, ni=ni, nr=nr, spi_i=spi_i, spi_r=spi_r)
    new.exchanger.enable_protection()
    for attr in (
        "nat_local",
        "nat_remote",
        "peer_fragmentation",
        "peer_hashes",
        "local_id",
        "remote_id",
        "virtual_ips",
        "vips_requested",
        "eap_identity",
    ):
        setattr(new, attr, getattr(old, attr))
    new.leases, old.leases = old.leases, []
    new.children, old.children = old.children, {}
    for child in new.children.values():
        child.owner = new
    new.auth_complete = True
    new.state = IkeSaState.CONNECTING
    new.set_state(IkeSaState.ESTABLISHED)
    new.was_established = True
    new.established_at = old.ctx.now
    new.schedule_lifetimes()
    old.ctx.adopt(new)
    old.rekeying = False
    old.set_state(IkeSaState.REKEYING)
    old.set_state(IkeSaState.REKEYED)
    old.replaced_by = new.sa_id
    old.log.info("IKE SA rekeyed, replaced by #%d", new.sa_id)
    new.events.append(
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
            format_chosen(chosen),
            rekeyed_from=old.sa_id,
        )
    )
    if initiator:
        old.exchanger.start(Exchange(ExchangeType.INFORMATIONAL, [IkeDeleteTask("rekeyed")]), old.ctx.now)


def format_chosen(chosen: ChosenProposal) -> str:
    from pyipsec.config.proposals import format_proposal  # noqa: PLC0415

    return format_proposal(chosen.to_spec())
