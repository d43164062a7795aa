"""IKE_SA_INIT: proposals, key exchange, nonces, NAT detection (RFC 7296 §1.2, §2.23).

Initiator: offers every configured IKE proposal, a KE payload for the first proposal's
first group (or the group a responder asked for with INVALID_KE_PAYLOAD, §1.3), a nonce,
the NAT_DETECTION_* hashes and our capabilities. A COOKIE answer makes us resend the same
request with the cookie first (§2.6); INVALID_KE_PAYLOAD makes us resend with the wanted
group if we offered it (both keep message ID 0). Any other error answer — or an
INVALID_KE_PAYLOAD for a group we did not offer (a downgrade attempt) — is unauthenticated, so
it does not end the SA at once: the request stays in flight and is retransmitted until a valid
response arrives; when the error answers a retransmission too (``manager.ERROR_TRANSMISSIONS``),
or nothing else comes, the SA is closed naming that error (§2.21.1).

Responder: chooses the first of our proposals the peer offers (preferring the group the
peer already sent a KE payload for), answers INVALID_KE_PAYLOAD when that payload is for
another group, and NO_PROPOSAL_CHOSEN — naming both sides' proposals in the log — when
nothing fits.

Both sides then derive SKEYSEED and the SK_* keys (``ike.keymat``). A NAT found by the
hashes (or faked with ``encap``, as strongSwan's libipsec backend always does) moves IKE
and ESP to the NAT-T port with UDP encapsulation.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from pyipsec.crypto.registry import REGISTRY
from pyipsec.crypto.x509 import ca_key_hash, load_certificate
from pyipsec.errors import (
    IkeError,
    InvalidKePayload,
    InvalidKeyExchange,
    InvalidSyntax,
    NoProposalChosen,
    UnsupportedAlgorithm,
)
from pyipsec.iana.ikev2 import CertEncoding, NotifyType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.ike.auth.methods import ANNOUNCED_HASHES
from pyipsec.ike.events import CloseCause, IkeSaRedirected, SaProgress
from pyipsec.ike.keymat import derive_ike_keys, skeyseed
from pyipsec.ike.proposal import ProposalSpec, select
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.ike.redirect import Redirect, RedirectRefused, peer_supports, redirect_allowed
from pyipsec.ike.task import Task, TaskStatus, Unanswered
from pyipsec.ike.tasks.common import (
    describe_offer,
    describe_ours,
    nat_detection_notifies,
    nearest_mismatch,
    peer_error,
    read_nat_detection,
)
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.cert import CertificateRequest
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sa import SecurityAssociation

if TYPE_CHECKING:
    from pyipsec.crypto.rand import RandomSource
    from pyipsec.crypto.registry import KeInitiator
    from pyipsec.ike.config import ConnectionConfig
    from pyipsec.ike.sa import IkeSa

__all__ = ["NONCE_LEN", "IkeInitTask", "ke_complete", "ke_respond", "prefer_group"]

NONCE_LEN = 32  # at least half the PRF key size, RFC 7296 §2.10
MAX_COOKIE_RETRIES = 3
_ZERO_SPI = bytes(8)


# Bad peer values (RFC 6989) and unusable groups; the registry raises nothing else.
_KE_ERRORS: tuple[type[Exception], ...] = (InvalidKeyExchange, UnsupportedAlgorithm, ValueError)


def ke_complete(ke: KeInitiator, data: bytes) -> bytes:
    """Our key exchange finished with the responder's public value (RFC 6989 checks included);
    a bad value is the peer's protocol error, not ours."""
    try:
        return ke.complete(data)
    except _KE_ERRORS as exc:
        raise InvalidSyntax(f"responder's key exchange value is invalid: {exc}") from None


def ke_respond(group: KeId, data: bytes, rng: RandomSource) -> tuple[bytes, bytes]:
    """Our public value and the shared secret for the initiator's public value ``data``."""
    try:
        return REGISTRY.ke(group).respond(data, rng)
    except _KE_ERRORS as exc:
        raise InvalidSyntax(f"peer's key exchange value is invalid: {exc}") from None


def prefer_group(spec: ProposalSpec, group: KeId) -> ProposalSpec:
    if group in spec.ke:
        return replace(spec, ke=(group, *(g for g in spec.ke if g != group)))
    return spec


class IkeInitTask(Task):
    def __init__(self) -> None:
        self.cookie_retries = 0
        self._public = b""
        self.peer_error: IkeError | None = None  # the last unauthenticated error answer, ignored

    def _ignore(self, sa: IkeSa, error: IkeError) -> TaskStatus:
        """An error answer to IKE_SA_INIT is unauthenticated: anyone on the path can forge one
        (RFC 7296 §2.21.1). Keep waiting for a valid response; if none comes before the
        request times out, the SA fails with this error (:meth:`unanswered`)."""
        self.peer_error = error
        sa.log.info("ignoring an unauthenticated IKE_SA_INIT answer for now: %s", error)
        return TaskStatus.IGNORE

    def unanswered(self, sa: IkeSa) -> Unanswered | None:
        error = self.peer_error
        if error is None:
            return None
        detail = f"{error.notify.name}: {error}" if str(error) != error.notify.name else error.notify.name
        return Unanswered(
            CloseCause.FAILED,
            f"IKE_SA_INIT failed: {detail} (an unauthenticated answer, and no valid one came)",
            error.notify,
        )

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        conn = sa.connection
        assert conn is not None
        if sa.ke is None:
            if sa.ke_group is KeId.NONE:
                sa.ke_group = next((g for p in conn.proposals for g in p.ke), KeId.NONE)
            sa.ke = REGISTRY.ke(sa.ke_group).initiate(sa.ctx.rng)
            sa.ke_tried = (*sa.ke_tried, sa.ke_group)
        if not sa.nonce_i:
            sa.nonce_i = sa.ctx.rng.random_bytes(NONCE_LEN)
        if sa.cookie:
            req.append(Notify.cookie(sa.cookie))
        req.append(SecurityAssociation(tuple(p.to_wire(n) for n, p in enumerate(conn.proposals, 1))))
        req.append(KeyExchange(sa.ke_group, sa.ke.public))
        req.append(Nonce(sa.nonce_i))
        _append_common(sa, req, spi_r=_ZERO_SPI)
        if conn.redirect:  # RFC 5685 §3; REDIRECTED_FROM says it too (ike.redirect)
            if sa.redirected_from:
                req.append(Notify.redirected_from(sa.redirected_from))
            else:
                req.append(Notify.of(NotifyType.REDIRECT_SUPPORTED))

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        conn = sa.connection
        assert conn is not None
        redirect = resp.notify(NotifyType.REDIRECT)
        if redirect is not None and conn.redirect:
            return self._redirected(sa, conn, redirect)
        cookie = resp.notify(NotifyType.COOKIE)
        if cookie is not None:
            self.cookie_retries += 1
            if self.cookie_retries > MAX_COOKIE_RETRIES:
                raise InvalidSyntax("responder keeps demanding COOKIEs")
            sa.cookie = cookie.cookie_data()
            sa.log.info("responder demands a COOKIE, retrying")
            return TaskStatus.RETRY
        invalid_ke = resp.notify(NotifyType.INVALID_KE_PAYLOAD)
        if invalid_ke is not None:
            wanted = invalid_ke.wanted_group()
            offered = {g for p in conn.proposals for g in p.ke}
            if wanted in offered and wanted not in sa.ke_tried:
                sa.log.info(
                    "responder wants key exchange %s instead of %s, retrying", wanted.name, sa.ke_group.name
                )
                sa.ke_group, sa.ke = wanted, None
                return TaskStatus.RETRY
            return self._ignore(
                sa,
                InvalidKePayload(
                    wanted, f"responder wants {wanted.name}, which we did not offer or already tried"
                ),
            )
        error = peer_error(resp)
        if error is not None:
            return self._ignore(sa, error)

        sa_payload = resp.find(SecurityAssociation)
        ke = resp.find(KeyExchange)
        nonce = resp.find(Nonce)
        if sa_payload is None or ke is None or nonce is None:
            raise InvalidSyntax("IKE_SA_INIT response lacks SA, KE or Nonce")
        if len(sa_payload.proposals) != 1:
            raise InvalidSyntax(f"responder chose {len(sa_payload.proposals)} proposals instead of one")
        chosen = select(conn.proposals, sa_payload.proposals)
        if chosen is None or chosen.protocol is not ProtocolId.IKE:
            raise NoProposalChosen(
                f"responder chose {describe_offer(sa_payload.proposals)}, which we did not offer "
                f"(we offered {describe_ours(conn.proposals)})"
            )
        if chosen.ke != ke.group or ke.group != sa.ke_group:
            raise InvalidSyntax(
                f"responder's KE payload is for {ke.group.name}, the proposal says {chosen.ke}"
            )
        if resp.spi_r == _ZERO_SPI:
            raise InvalidSyntax("responder's SPI is zero")
        sa.set_spi_r(resp.spi_r)
        sa.proposal = chosen
        sa.nonce_r = nonce.data
        assert sa.ke is not None
        sa.shared_secret = ke_complete(sa.ke, ke.data)
        _read_common(sa, resp)
        _derive_keys(sa)
        nat = (
            f", NAT {'here' if sa.nat_local else 'at the peer'}: UDP {sa.ctx.config.nat_t_port}"
            if sa.nat_detected
            else ""
        )
        sa.emit(SaProgress(sa.sa_id, sa.name, "IKE_SA_INIT", f"{format_chosen(chosen)}{nat}"))
        if sa.nat_detected or conn.mobike:  # with MOBIKE, IKE always uses the NAT-T port (RFC 4555 §3.3)
            sa.float_to_nat_t()
        return TaskStatus.DONE

    def _redirected(self, sa: IkeSa, conn: ConnectionConfig, notify: Notify) -> TaskStatus:
        """An unauthenticated REDIRECT (RFC 5685 §3, §9): followed only when it echoes our
        nonce and names a gateway the connection trusts (``ike.redirect``)."""
        data = notify.redirect_data()
        gateway = str(data.gateway)
        if data.nonce != sa.nonce_i:
            return self._ignore(sa, RedirectRefused(f"a redirect to {gateway} without our nonce"))
        if not redirect_allowed(conn, gateway):
            sa.log.warning(
                "refusing an unauthenticated redirect to %s: not in remote_addrs or redirect_allow",
                gateway,
                extra={"event": "redirect_refused"},
            )
            return self._ignore(
                sa,
                RedirectRefused(
                    f"refused an unauthenticated redirect to {gateway} "
                    "(not in the connection's remote_addrs or redirect_allow)"
                ),
            )
        sa.log.info("gateway redirects us to %s", gateway, extra={"event": "redirected"})
        sa.emit(IkeSaRedirected(sa.sa_id, sa.name, gateway, str(sa.remote.ip), False, sa.vips_asked))
        raise Redirect(gateway, b"")  # closes the SA as REDIRECTED (manager.fail)

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        sa_payload = req.find(SecurityAssociation)
        ke = req.find(KeyExchange)
        nonce = req.find(Nonce)
        if sa_payload is None or ke is None or nonce is None:
            raise InvalidSyntax("IKE_SA_INIT request lacks SA, KE or Nonce")
        sa.peer_redirect = peer_supports(req)
        hook = sa.ctx.redirect_init
        if sa.peer_redirect and hook is not None:
            gateway = hook(sa.local, sa.remote)
            if gateway is not None:  # before any key exchange work (RFC 5685 §3)
                raise Redirect(gateway, nonce.data)
        offered = [p for p in sa_payload.proposals if p.protocol is ProtocolId.IKE]
        for conn in sa.candidates:
            local = [prefer_group(p, ke.group) for p in conn.proposals]
            chosen = select(local, offered)
            if chosen is not None:
                break
        else:
            ours = "; ".join(f"{c.name}: {describe_ours(c.proposals)}" for c in sa.candidates)
            near = nearest_mismatch([p for c in sa.candidates for p in c.proposals], offered)
            raise NoProposalChosen(
                f"no acceptable IKE proposal: peer offered {describe_offer(offered)}; "
                f"we accept {ours or '(no connection for this address)'}" + (f"; {near}" if near else "")
            )
        sa.set_connection(conn)
        if chosen.ke is None or chosen.ke != ke.group:
            sa.log.info(
                "peer sent KE for %s, we chose %s: answering INVALID_KE_PAYLOAD",
                ke.group.name,
                chosen.ke.name if chosen.ke else None,
            )
            raise InvalidKePayload(int(chosen.ke or KeId.NONE))
        sa.proposal = chosen
        sa.ke_group = ke.group
        sa.nonce_i = nonce.data
        sa.nonce_r = sa.ctx.rng.random_bytes(NONCE_LEN)
        public, sa.shared_secret = ke_respond(ke.group, ke.data, sa.ctx.rng)
        self._public = public
        _read_common(sa, req)
        _derive_keys(sa)

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        assert sa.proposal is not None
        resp.append(SecurityAssociation((sa.proposal.to_wire(b""),)))
        resp.append(KeyExchange(sa.ke_group, self._public))
        resp.append(Nonce(sa.nonce_r))
        _append_common(sa, resp, spi_r=sa.spi_r)
        resp.append(Notify.of(NotifyType.MULTIPLE_AUTH_SUPPORTED))  # RFC 4739 §3.1: in our response
        conn = sa.connection
        if conn is not None and conn.send_certreq and conn.remote.cacerts:
            hashes = b"".join(ca_key_hash(load_certificate(der)) for der in conn.remote.cacerts)
            resp.append(CertificateRequest(CertEncoding.X509_CERTIFICATE_SIGNATURE, hashes))


def _append_common(sa: IkeSa, out: list[Payload], *, spi_r: bytes) -> None:
    """NAT-D hashes and capability notifies, the same in request and response."""
    conn = sa.connection
    assert conn is not None
    out.extend(nat_detection_notifies(sa, spi_r))
    if conn.fragmentation:
        out.append(Notify.of(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
    if conn.signature_hashes:
        out.append(Notify.signature_hash_algorithms(ANNOUNCED_HASHES))


def _read_common(sa: IkeSa, msg: Message) -> None:
    read_nat_detection(sa, msg, msg.spi_r if msg.is_response else _ZERO_SPI)
    if sa.nat_detected:  # (a responder says it again once the SA is established)
        sa.log.log(
            logging.INFO if sa.initiator else logging.DEBUG,
            "NAT detected (%s), using UDP encapsulation on port %d",
            "local" if sa.nat_local else "remote",
            sa.ctx.config.nat_t_port,
        )
    sa.peer_fragmentation = msg.notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED) is not None
    sha = msg.notify(NotifyType.SIGNATURE_HASH_ALGORITHMS)
    sa.peer_hashes = sha.hash_algorithms() if sha is not None else ()
    if msg.is_response:  # RFC 4739 §3.1: the responder announces several authentication rounds
        sa.peer_multiple_auth = msg.notify(NotifyType.MULTIPLE_AUTH_SUPPORTED) is not None


def _derive_keys(sa: IkeSa) -> None:
    sa.setup_crypto()
    assert sa.prf is not None and sa.encr is not None
    seed = skeyseed(sa.prf, sa.nonce_i, sa.nonce_r, sa.shared_secret)
    sa.set_keys(
        derive_ike_keys(
            sa.prf, sa.encr, sa.integ, seed, ni=sa.nonce_i, nr=sa.nonce_r, spi_i=sa.spi_i, spi_r=sa.spi_r
        )
    )
    # the DH secret and private key have done their work (SKEYSEED): not kept, neither for
    # memory (a half-open SA holds only what IKE_AUTH needs) nor as a secret lying around
    sa.shared_secret, sa.ke = b"", None
