"""Child SA negotiation: in IKE_AUTH and in CREATE_CHILD_SA (RFC 7296 §1.3.1, §2.9, §2.17).

Initiator: offers the child's ESP proposals with our inbound SPI and the configured traffic
selectors (an empty list means "dynamic": our or the peer's IKE address). In
CREATE_CHILD_SA it adds a nonce and, with PFS, a KE payload for the first group. The reply
must choose one of our proposals and narrow the selectors to a subset of ours.

Responder: takes the first child config of the connection whose selectors intersect the
proposed ones and whose proposals match, and answers with the narrowed selectors. In
IKE_AUTH a child failure (TS_UNACCEPTABLE, NO_PROPOSAL_CHOSEN) is reported in the response
without failing the IKE SA (§2.21.2); in CREATE_CHILD_SA it is the response.

Keys: KEYMAT = prf+(SK_d, [g^ir |] Ni | Nr) with the nonces of the exchange that created
the child; the first half protects traffic from that exchange's initiator (§2.17).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pyipsec.childsa import ChildSaSpec, EspMode, Lifetimes
from pyipsec.crypto.registry import REGISTRY, AeadSpec
from pyipsec.errors import (
    ChildSaNotFound,
    IkeError,
    InvalidKePayload,
    InvalidSyntax,
    NoProposalChosen,
    TemporaryFailure,
    TsUnacceptable,
)
from pyipsec.iana.ikev2 import NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import EsnId, IntegId, KeId
from pyipsec.ike.config import ChildConfig
from pyipsec.ike.events import ChildSaFailed, ChildSaInstalled
from pyipsec.ike.keymat import derive_child_keys
from pyipsec.ike.narrow import covered_by, narrow, selectors_of
from pyipsec.ike.proposal import ChosenProposal, ProposalSpec, select
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.ike.sa import ChildSa
from pyipsec.ike.state import ChildEvent, ChildSaState
from pyipsec.ike.task import Task, TaskStatus
from pyipsec.ike.tasks.common import describe_offer, describe_ours, nearest_mismatch, raise_peer_error
from pyipsec.ike.tasks.ike_init import NONCE_LEN, ke_complete, ke_respond
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import SecurityAssociation
from pyipsec.wire.payloads.ts import TrafficSelector, TrafficSelectors

if TYPE_CHECKING:
    from pyipsec.crypto.registry import KeInitiator
    from pyipsec.ike.sa import IkeSa

__all__ = ["ChildCreateTask"]


def _dynamic(
    sa: IkeSa, configured: tuple[TrafficSelector, ...], *, local: bool
) -> tuple[TrafficSelector, ...]:
    """Configured selectors, or "dynamic": the side's virtual IP(s), else its IKE address.

    An initiator that asks for a virtual IP proposes the whole address space of each family
    it asked for, for the responder to narrow to the address it assigns (RFC 7296 §2.9).
    """
    if configured:
        return configured
    ours_virtual = local == sa.original_initiator  # the client's side is the one with virtual IPs
    if ours_virtual and sa.virtual_ips:
        return tuple(TrafficSelector.from_range(ip, ip) for ip in sa.virtual_ips)
    if local and sa.original_initiator and sa.vips_requested:
        return tuple(
            TrafficSelector.from_network("0.0.0.0/0" if v == 4 else "::/0") for v in sa.vips_requested
        )
    ip = sa.local.ip if local else sa.remote.ip
    return (TrafficSelector.from_range(ip, ip),)


def _without_ke(spec: ProposalSpec) -> ProposalSpec:
    return replace(spec, ke=())


class ChildCreateTask(Task):
    """One Child SA; ``in_ike_auth`` selects the IKE_AUTH flavour (no nonce, no KE)."""

    def __init__(
        self, *, in_ike_auth: bool, config: ChildConfig | None = None, rekey: ChildSa | None = None
    ) -> None:
        self.in_ike_auth = in_ike_auth
        self.config = config if rekey is None else rekey.config
        self.rekey = rekey  # initiator: the Child SA this exchange replaces (RFC 7296 §1.3.3)
        self.child: ChildSa | None = None
        self.error: IkeError | None = None
        self.nonce_i = b""
        self.nonce_r = b""
        self.ke: KeInitiator | None = None
        self.ke_group = KeId.NONE
        self.want_group = KeId.NONE  # the group the peer asked for with INVALID_KE_PAYLOAD
        self.tried: set[KeId] = set()
        self.g_ir: bytes | None = None
        self.ke_public = b""
        self.ts_i: tuple[TrafficSelector, ...] = ()
        self.ts_r: tuple[TrafficSelector, ...] = ()
        self.rekey_of: ChildSa | None = None  # responder: the Child SA the peer rekeys

    def _proposals(self, cfg: ChildConfig) -> tuple[ProposalSpec, ...]:
        return tuple(_without_ke(p) for p in cfg.esp_proposals) if self.in_ike_auth else cfg.esp_proposals

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        cfg = self.config
        if cfg is None or (self.child is not None and self.in_ike_auth):
            return  # childless IKE SA, or a later IKE_AUTH round (EAP): the request went in the first
        if self.child is None:
            self.child = ChildSa(child_id=sa.ctx.new_child_id(), config=cfg, spi_in=sa.new_spi_in())
            sa.children[self.child.child_id] = self.child
            self.child.owner = sa
        spi = self.child.spi_in
        proposals = self._proposals(cfg)
        if self.rekey is not None:
            req.append(Notify.rekey_sa(ProtocolId.ESP, self.rekey.spi_in))
        req.append(SecurityAssociation(tuple(p.to_wire(n, spi) for n, p in enumerate(proposals, 1))))
        if not self.in_ike_auth:
            self.nonce_i = sa.ctx.rng.random_bytes(NONCE_LEN)
            req.append(Nonce(self.nonce_i))
            group = self.want_group or next(
                (g for p in proposals for g in p.ke if g is not KeId.NONE), KeId.NONE
            )
            self.tried.add(group)
            if group is not KeId.NONE:
                if self.ke is None or self.ke_group != group:
                    self.ke_group = group
                    self.ke = REGISTRY.ke(group).initiate(sa.ctx.rng)
                req.append(KeyExchange(group, self.ke.public))
        if self.rekey is not None:
            self.ts_i, self.ts_r = self.rekey.local_ts, self.rekey.remote_ts
        else:
            self.ts_i = _dynamic(sa, cfg.local_ts, local=True)
            self.ts_r = _dynamic(sa, cfg.remote_ts, local=False)
        req.append(TrafficSelectors(PayloadType.TSi, self.ts_i))
        req.append(TrafficSelectors(PayloadType.TSr, self.ts_r))
        if cfg.mode is EspMode.TRANSPORT:
            req.append(Notify.of(NotifyType.USE_TRANSPORT_MODE))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        cfg, child = self.config, self.child
        if cfg is None or child is None or child.state is not ChildSaState.CREATING:
            return TaskStatus.DONE
        if self.in_ike_auth and not sa.auth_complete:
            return TaskStatus.DONE  # an EAP round: the Child SA comes with the last response
        invalid_ke = None if self.in_ike_auth else resp.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None:
            wanted = invalid_ke.wanted_group()
            if wanted in {g for p in self._proposals(cfg) for g in p.ke} and wanted not in self.tried:
                sa.log.info("peer wants %s for Child SA %s, retrying with it", wanted.name, cfg.name)
                self.want_group = wanted
                return TaskStatus.RETRY
        try:
            self._check_reply(sa, resp, cfg, child)
        except IkeError as exc:
            self._failed(sa, child, str(exc), exc.notify)
            if self.rekey is not None:
                # try again soon (a TEMPORARY_FAILURE while the peer rekeys the IKE SA, a collision),
                # well before the hard lifetime
                if self.rekey.state is ChildSaState.REKEYING:
                    self.rekey.apply(ChildEvent.REKEY_END)
                retry = 0.5 + int.from_bytes(sa.ctx.rng.random_bytes(1), "big") / 255
                self.rekey.rekey_at = sa.ctx.now + retry
            return TaskStatus.DONE
        self._install(sa, child, initiator=True)
        if self.rekey is not None:
            self._rekeyed(sa, self.rekey, child)
        return TaskStatus.DONE

    def _rekeyed(self, sa: IkeSa, old: ChildSa, new: ChildSa) -> None:
        """Our rekey of ``old`` completed: delete the old SA, or resolve a collision (§2.8.1)."""
        # the IKE SA may have been rekeyed meanwhile: what follows goes over its successor
        sa = new.owner if new.owner is not None else sa
        if old.peer_rekey is not None:
            # Both sides rekeyed ``old``. The new SA made with the lowest of the four nonces is
            # redundant; the side that made it deletes it. The other side deletes ``old``.
            p_ni, p_nr, theirs = old.peer_rekey
            if min(self.nonce_i, self.nonce_r) < min(p_ni, p_nr):
                sa.log.info("rekey collision on %s{%d}: ours is redundant", old.name, old.child_id)
                old.successor = theirs
                if old.state is ChildSaState.REKEYING:
                    old.apply(ChildEvent.REPLACED)
                if old.state is ChildSaState.CLOSED:
                    # the peer already deleted ``old``, so its rekey completed: its inbound half is in place
                    sa.activate(theirs)
                # else the peer may not have our response yet, hence not its inbound SA: switch when
                # it deletes ``old``, which it does once its rekey completed (InformationalResponder)
                sa.ctx.followups.delete_child(sa, new, "redundant after a rekey collision")
                return
            sa.log.info("rekey collision on %s{%d}: ours wins", old.name, old.child_id)
            if theirs.state is ChildSaState.INSTALLED:
                theirs.apply(ChildEvent.SUPERSEDED)
        old.successor = new
        if old.state in (ChildSaState.INSTALLED, ChildSaState.REKEYING):
            old.apply(ChildEvent.REPLACED)
        sa.ctx.followups.delete_child(sa, old, "rekeyed")

    def _check_reply(self, sa: IkeSa, resp: Message, cfg: ChildConfig, child: ChildSa) -> None:
        raise_peer_error(resp)
        sa_payload = resp.find(SecurityAssociation)
        tsi = next((t for t in resp.find_all(TrafficSelectors) if t.payload_type is PayloadType.TSi), None)
        tsr = next((t for t in resp.find_all(TrafficSelectors) if t.payload_type is PayloadType.TSr), None)
        if sa_payload is None or tsi is None or tsr is None:
            raise InvalidSyntax("Child SA reply lacks SA, TSi or TSr")
        if len(sa_payload.proposals) != 1:
            raise InvalidSyntax("responder chose more than one Child SA proposal")
        chosen = select(self._proposals(cfg), sa_payload.proposals)
        if chosen is None or chosen.protocol is not ProtocolId.ESP or len(chosen.spi) != 4:
            raise NoProposalChosen(
                f"responder chose {describe_offer(sa_payload.proposals)}, which we did not offer"
            )
        ts_i, ts_r = selectors_of(tsi.selectors), selectors_of(tsr.selectors)
        if not ts_i or not ts_r or not covered_by(ts_i, self.ts_i) or not covered_by(ts_r, self.ts_r):
            raise TsUnacceptable(
                f"responder narrowed to {_ts(ts_i)} === {_ts(ts_r)}, "
                f"outside our {_ts(self.ts_i)} === {_ts(self.ts_r)}"
            )
        transport = resp.notify(NotifyType.USE_TRANSPORT_MODE) is not None
        if transport != (cfg.mode is EspMode.TRANSPORT):
            raise NoProposalChosen(
                f"responder wants {'transport' if transport else 'tunnel'} mode, we {cfg.mode.value}"
            )
        if not self.in_ike_auth:
            nonce = resp.find(Nonce)
            if nonce is None:
                raise InvalidSyntax("CREATE_CHILD_SA response lacks a nonce")
            self.nonce_r = nonce.data
            if chosen.ke not in (None, KeId.NONE):
                ke = resp.find(KeyExchange)
                if ke is None or self.ke is None or ke.group != chosen.ke:
                    raise InvalidSyntax("CREATE_CHILD_SA response lacks the KE payload of the chosen group")
                self.g_ir = ke_complete(self.ke, ke.data)
        child.proposal = chosen
        child.spi_out = chosen.spi
        child.local_ts, child.remote_ts = ts_i, ts_r

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        if self.in_ike_auth:
            if not sa.auth_complete or sa.auth_first_request is None:
                return  # an EAP round: the Child SA is answered once the peer is authenticated
            if sa.cp_failed:
                return  # no address for the peer, so no Child SA for it either (RFC 7296 §3.15.4)
            req = sa.auth_first_request
        sa_payload = req.find(SecurityAssociation)
        if sa_payload is None and self.in_ike_auth:
            return  # childless (RFC 6023)
        try:
            self._select(sa, req)
        except IkeError as exc:
            sa.log.info("no Child SA: %s", exc, extra={"event": "child_refused"})
            if not self.in_ike_auth:
                raise
            self.error = exc
            sa.emit(ChildSaFailed(sa.sa_id, sa.name, "", str(exc), exc.notify))

    def _select(self, sa: IkeSa, req: Message) -> None:
        conn = sa.connection
        assert conn is not None
        sa_payload = req.find(SecurityAssociation)
        tsi = next((t for t in req.find_all(TrafficSelectors) if t.payload_type is PayloadType.TSi), None)
        tsr = next((t for t in req.find_all(TrafficSelectors) if t.payload_type is PayloadType.TSr), None)
        if sa_payload is None or tsi is None or tsr is None:
            raise InvalidSyntax("Child SA request lacks SA, TSi or TSr")
        offered = [p for p in sa_payload.proposals if p.protocol is ProtocolId.ESP and len(p.spi) == 4]
        proposed_i, proposed_r = selectors_of(tsi.selectors), selectors_of(tsr.selectors)
        transport = req.notify(NotifyType.USE_TRANSPORT_MODE) is not None
        ts_match = False
        candidates = conn.children
        rekey = req.notify(NotifyType.REKEY_SA)
        if rekey is not None and not self.in_ike_auth:
            old = sa.child_by_spi_out(rekey.spi)
            live = (ChildSaState.INSTALLED, ChildSaState.REKEYING, ChildSaState.REKEYED)
            if old is None or old.state not in live:
                raise ChildSaNotFound(f"peer rekeys Child SA {rekey.spi.hex()}, which we do not have")
            if old.successor is not None:  # REKEYED: being replaced already (RFC 7296 §2.25)
                raise TemporaryFailure(f"Child SA {old.name}{{{old.child_id}}} is already rekeyed")
            self.rekey_of = old
            candidates = (old.config,)
        for cfg in candidates:
            ts_i = narrow(proposed_i, _dynamic(sa, cfg.remote_ts, local=False))
            ts_r = narrow(proposed_r, _dynamic(sa, cfg.local_ts, local=True))
            if not ts_i or not ts_r:
                continue
            ts_match = True
            chosen = select(self._proposals(cfg), offered)
            if chosen is None:
                continue
            if transport != (cfg.mode is EspMode.TRANSPORT) and transport:
                continue
            self._accept(sa, req, cfg, chosen, ts_i, ts_r)
            return
        if not ts_match:
            wanted = "; ".join(f"{c.name}: {_ts(c.local_ts)} === {_ts(c.remote_ts)}" for c in conn.children)
            raise TsUnacceptable(
                f"peer proposed {_ts(proposed_i)} === {_ts(proposed_r)}; configured (local === remote): "
                f"{wanted or 'no children'}"
            )
        ours = "; ".join(f"{c.name}: {describe_ours(self._proposals(c))}" for c in conn.children)
        near = nearest_mismatch([p for c in conn.children for p in self._proposals(c)], offered)
        raise NoProposalChosen(
            f"no acceptable ESP proposal: peer offered {describe_offer(offered)}; we accept {ours}"
            + (f"; {near}" if near else "")
        )

    def _accept(
        self,
        sa: IkeSa,
        req: Message,
        cfg: ChildConfig,
        chosen: ChosenProposal,
        ts_i: tuple[TrafficSelector, ...],
        ts_r: tuple[TrafficSelector, ...],
    ) -> None:
        if not self.in_ike_auth:
            nonce = req.find(Nonce)
            if nonce is None:
                raise InvalidSyntax("CREATE_CHILD_SA request lacks a nonce")
            self.nonce_i = nonce.data
            self.nonce_r = sa.ctx.rng.random_bytes(NONCE_LEN)
            if chosen.ke not in (None, KeId.NONE):
                ke = req.find(KeyExchange)
                if ke is None or ke.group != chosen.ke:
                    raise InvalidKePayload(int(chosen.ke or 0))
                self.ke_group = ke.group
                self.ke_public, self.g_ir = ke_respond(ke.group, ke.data, sa.ctx.rng)
        child = ChildSa(child_id=sa.ctx.new_child_id(), config=cfg, spi_in=sa.new_spi_in())
        child.proposal = chosen
        child.spi_out = chosen.spi
        child.local_ts, child.remote_ts = ts_r, ts_i  # we are the responder: TSr is ours
        sa.children[child.child_id] = child
        child.owner = sa
        self.child = child
        self.config = cfg
        old = self.rekey_of
        if old is not None:
            child.outbound_active = False  # until the peer deletes the old SA (make-before-break)
            if old.state is ChildSaState.REKEYING:
                old.peer_rekey = (self.nonce_i, self.nonce_r, child)
            else:
                old.successor = child
                old.apply(ChildEvent.REPLACED)

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        if self.error is not None:
            resp.append(Notify.from_error(self.error))
            return
        child = self.child
        if child is None or child.proposal is None:
            return
        resp.append(SecurityAssociation((child.proposal.to_wire(child.spi_in),)))
        if not self.in_ike_auth:
            resp.append(Nonce(self.nonce_r))
            if self.g_ir is not None:
                resp.append(KeyExchange(self.ke_group, self.ke_public))
        resp.append(TrafficSelectors(PayloadType.TSi, child.remote_ts))
        resp.append(TrafficSelectors(PayloadType.TSr, child.local_ts))
        if child.mode is EspMode.TRANSPORT:
            resp.append(Notify.of(NotifyType.USE_TRANSPORT_MODE))
        self._install(sa, child, initiator=False)

    # -- both -----------------------------------------------------------------------------------

    def _failed(self, sa: IkeSa, child: ChildSa, reason: str, error: NotifyType) -> None:
        sa.log.info(
            "Child SA %s failed: %s", child.name, reason, extra={"event": "child_failed", "child": child.name}
        )
        child.apply(ChildEvent.CLOSE)
        sa.children.pop(child.child_id, None)
        sa.emit(ChildSaFailed(sa.sa_id, sa.name, child.name, reason, error))

    def _install(self, sa: IkeSa, child: ChildSa, *, initiator: bool) -> None:
        """Derive the keys (from the IKE SA the exchange ran over, ``sa``) and report the Child SA
        to the data plane (as one of the IKE SA that holds it now, ``home``: a rekey of the IKE
        SA may have moved it meanwhile)."""
        home = child.owner if child.owner is not None else sa
        chosen = child.proposal
        assert chosen is not None and chosen.encr is not None and sa.prf is not None and sa.keys is not None
        encr_id, bits = chosen.encr
        encr = REGISTRY.encr(encr_id, bits)
        integ_id = chosen.integ or IntegId.NONE
        integ = (
            REGISTRY.integ(integ_id)
            if integ_id is not IntegId.NONE and not isinstance(encr, AeadSpec)
            else None
        )
        ni, nr = (sa.nonce_i, sa.nonce_r) if self.in_ike_auth else (self.nonce_i, self.nonce_r)
        keys = derive_child_keys(sa.prf, sa.keys.sk_d, encr, integ, ni=ni, nr=nr, g_ir_new=self.g_ir)
        if initiator:
            e_out, a_out, e_in, a_in = keys.encr_i, keys.integ_i, keys.encr_r, keys.integ_r
        else:
            e_out, a_out, e_in, a_in = keys.encr_r, keys.integ_r, keys.encr_i, keys.integ_i
        spec = ChildSaSpec(
            spi_in=child.spi_in,
            spi_out=child.spi_out,
            encr=encr_id,
            encr_key_bits=encr.key_bits,
            integ=integ_id if integ is not None else IntegId.NONE,
            esn=chosen.esn is EsnId.EXTENDED_SEQUENCE_NUMBERS,
            mode=child.mode,
            local_ts=child.local_ts,
            remote_ts=child.remote_ts,
            local=sa.local,
            remote=sa.remote,
            encap=sa.use_encap,
            replay_window=child.config.replay_window,
            encr_key_in=e_in,
            integ_key_in=a_in,
            encr_key_out=e_out,
            integ_key_out=a_out,
            lifetimes=_volume_limits(sa, child.config),
            outbound_active=child.outbound_active,
        )
        child.apply(ChildEvent.INSTALL)
        _schedule(sa, child)
        home.log.info(
            "Child SA %s{%d} established: SPIs %s_i %s_o, %s, %s === %s",
            child.name,
            child.child_id,
            child.spi_in.hex(),
            child.spi_out.hex(),
            format_chosen(chosen),
            _ts(child.local_ts),
            _ts(child.remote_ts),
            extra={"event": "child_established", "child": child.name, "child_id": child.child_id},
        )
        replaced = self.rekey or self.rekey_of
        home.emit(
            ChildSaInstalled(
                home.sa_id,
                home.name,
                child.name,
                child.child_id,
                chosen,
                spec,
                replaces=replaced.child_id if replaced is not None else None,
            )
        )


def _schedule(sa: IkeSa, child: ChildSa) -> None:
    """Soft and hard lifetimes, the soft one with random jitter so both peers do not rekey
    at once by design: up to ``rand_time`` earlier (like strongSwan's; by default a tenth of the
    rekey time, which is also what the configuration's default, life_time - rekey_time, gives)."""
    now = sa.ctx.now
    child.installed_at = now
    cfg = child.config
    if cfg.rekey_time > 0:
        spread = cfg.rekey_time / 10 if cfg.rand_time is None else min(cfg.rand_time, cfg.rekey_time)
        jitter = spread * int.from_bytes(sa.ctx.rng.random_bytes(2), "big") / 65535
        child.rekey_at = now + cfg.rekey_time - jitter
    if cfg.life_time > 0:
        child.expire_at = now + max(cfg.life_time, cfg.rekey_time)


def _volume_limits(sa: IkeSa, cfg: ChildConfig) -> Lifetimes | None:
    """Soft (with up to 10 % random jitter, like the time limit) and hard limits by bytes and
    packets, for the data plane that counts them (None: no volume limit)."""

    def soft(limit: int) -> int | None:
        if limit <= 0:
            return None
        return limit - limit // 10 * int.from_bytes(sa.ctx.rng.random_bytes(2), "big") // 65535

    limits = Lifetimes(
        soft_bytes=soft(cfg.rekey_bytes),
        hard_bytes=cfg.life_bytes or None,
        soft_packets=soft(cfg.rekey_packets),
        hard_packets=cfg.life_packets or None,
    )
    return None if limits == Lifetimes() else limits


def _ts(selectors: tuple[TrafficSelector, ...] | list[TrafficSelector]) -> str:
    return " ".join(str(t) for t in selectors) or "dynamic"
