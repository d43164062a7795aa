"""IKE_AUTH: identities, certificates and AUTH (RFC 7296 §1.2, §2.15, §3.5-3.8).

Initiator: sends IDi (and IDr when the peer's identity is configured), our certificate and
CERTREQs for our CAs when certificates are used, AUTH and INITIAL_CONTACT; then checks the
responder's IDr and AUTH. Responder: picks, among the connections that fit the addresses,
the first whose remote identity matches IDi, whose local identity matches IDr (if sent)
and whose authentication class fits the AUTH method; verifies AUTH; answers with its own
IDr, CERT and AUTH. A failed check is AUTHENTICATION_FAILED, and the reason (received vs
configured identities, certificate problems) goes into the log and the close event.

Reauthentication (RFC 7296 §2.8.3): the new IKE SA of a reauthentication sends no
INITIAL_CONTACT (the old SA with the peer stays until the new one has taken over). The
responder takes an IKE_AUTH without INITIAL_CONTACT from a peer with which an established SA
of the same connection and identity exists for a reauthentication of that SA: it links the
two (``reauth_of``) and installs the new Child SAs inbound only, until the old SA is deleted.
A responder whose connection has a ``reauth_time`` announces it in its last IKE_AUTH response
as AUTH_LIFETIME (RFC 4478 §3); an initiator that gets one reauthenticates before it runs out.

The IKE SA is established when this task completes; the Child SA negotiated in the same
exchange is ``child_create``'s business.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyipsec.crypto import x509 as certs
from pyipsec.errors import AuthenticationFailed, InvalidSyntax, PyIpsecError
from pyipsec.iana.ikev2 import AuthMethod, CertEncoding, NotifyType, PayloadType
from pyipsec.ike.auth.methods import (
    build_auth,
    id_payload_for,
    local_identity,
    method_fits,
    signed_octets,
    verify_peer_auth,
)
from pyipsec.ike.config import AuthClass, ConnectionConfig, Identity, SendCert
from pyipsec.ike.eap.base import EapOutcome
from pyipsec.ike.eap.mschapv2 import MsChapV2Peer
from pyipsec.ike.events import CloseCause, IkeSaEstablished, SaProgress
from pyipsec.ike.keymat import psk_auth, verify_psk_auth
from pyipsec.ike.proposal import select
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.ike.state import IkeEvent, IkeSaState
from pyipsec.ike.task import Task, TaskStatus
from pyipsec.ike.tasks.common import describe_ours, raise_peer_error
from pyipsec.ike.tasks.ike_mobike import address_notifies, read_address_list
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.auth import Authentication
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.cert import Certificate, CertificateRequest
from pyipsec.wire.payloads.eap import EapPayload
from pyipsec.wire.payloads.ident import Identification
from pyipsec.wire.payloads.notify import Notify

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["IkeAuthTask"]


def _wall(sa: IkeSa) -> datetime:
    return datetime.fromtimestamp(sa.ctx.wall_clock(), UTC)


def _certreq(conn: ConnectionConfig) -> CertificateRequest | None:
    if not conn.send_certreq or conn.remote.auth is not AuthClass.PUBKEY or not conn.remote.cacerts:
        return None
    hashes = b"".join(certs.ca_key_hash(certs.load_certificate(der)) for der in conn.remote.cacerts)
    return CertificateRequest(CertEncoding.X509_CERTIFICATE_SIGNATURE, hashes)


def _established(sa: IkeSa) -> None:
    assert sa.proposal is not None
    sa.apply(IkeEvent.AUTHENTICATED)
    sa.established_at = sa.ctx.now
    sa.schedule_lifetimes()
    sa.log.info(
        "IKE SA established: %s - %s, %s%s",
        sa.local_id,
        sa.remote_id,
        format_chosen(sa.proposal),
        ", UDP-encapsulated" if sa.use_encap else "",
    )
    sa.events.append(
        IkeSaEstablished(
            sa.sa_id,
            sa.name,
            sa.spi_i,
            sa.spi_r,
            sa.initiator,
            sa.local,
            sa.remote,
            str(sa.local_id),
            str(sa.remote_id),
            sa.proposal,
            reauth_of=sa.reauth_of,
        )
    )


def _responder_reauth(sa: IkeSa) -> None:
    """The peer authenticated without INITIAL_CONTACT and has another established SA of this
    connection with us: this SA reauthenticates that one. Its Child SAs carry no outbound
    traffic until the old SA is deleted (make-before-break: the initiator may not yet have the
    inbound half when our response is on its way)."""
    if sa.initiator or sa.initial_contact:
        return
    old = next(
        (
            o
            for o in sa.ctx.sas()
            if sa.same_peer(o)
            and not o.original_initiator
            and o.state in (IkeSaState.ESTABLISHED, IkeSaState.REKEYING, IkeSaState.REAUTHENTICATING)
        ),
        None,
    )
    if old is None:
        return
    sa.reauth_of = old.sa_id
    old.reauth_by = sa.sa_id
    if old.state is IkeSaState.ESTABLISHED:  # (while REKEYING, the rekeyed SA takes it over)
        old.apply(IkeEvent.REAUTH_START)
    sa.log.info("the peer reauthenticates IKE SA #%d", old.sa_id)
    for child in sa.children.values():
        child.outbound_active = False


class IkeAuthTask(Task):
    """IKE_AUTH in one round (PSK, certificates) or several (EAP, RFC 7296 §2.16).

    With EAP the initiator sends no AUTH at first; the responder answers with its own
    (certificate) AUTH and the first EAP request; EAP messages go back and forth; after
    EAP-Success both sides send AUTH computed with the EAP MSK in place of a PSK. The
    responder keeps the first request (``sa.auth_first_request``): its CP and Child SA
    requests are answered in the last round, once the peer is authenticated.
    """

    def __init__(self) -> None:
        self._out: list[Payload] = []  # responder: what build_r sends
        self._eap_failed = False
        # initiator state across rounds
        self._round = 0
        self._next: list[Payload] = []
        self._idr: Identification | None = None
        self._idi: Identification | None = None
        self._eap_failure = False

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        if self._round > 0:
            req.extend(self._next)  # an EAP response, or the MSK AUTH after EAP-Success
            return
        conn = sa.connection
        assert conn is not None
        sa.local_id = local_identity(conn.local, sa)
        sa.remote_id = conn.remote.identity
        idi = id_payload_for(sa.local_id, PayloadType.IDi)
        self._idi = idi
        req.append(idi)
        if conn.local.auth is not AuthClass.EAP_MSCHAPV2:
            auth, cert_payloads = build_auth(sa, conn.local, idi)
            if conn.send_cert is not SendCert.NEVER:
                req.extend(cert_payloads)
        if sa.reauth_of is None:  # a reauthentication keeps the old SA until it takes over
            req.append(Notify.of(NotifyType.INITIAL_CONTACT))
        if conn.mobike:
            req.append(Notify.of(NotifyType.MOBIKE_SUPPORTED))
            req.extend(address_notifies(sa))  # our other addresses (RFC 4555 §3.4)
        certreq = _certreq(conn)
        if certreq is not None:
            req.append(certreq)
        if not conn.remote.identity.is_any:
            req.append(id_payload_for(conn.remote.identity, PayloadType.IDr))
        if conn.local.auth is not AuthClass.EAP_MSCHAPV2:
            req.append(auth)

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        conn = sa.connection
        assert conn is not None
        if resp.find(Authentication) is None:
            raise_peer_error(resp, ignore=_CHILD_ERRORS)
        # else the responder authenticated itself: an error Notify beside its AUTH (a CP failure)
        # leaves the IKE SA established (RFC 7296 §3.10.1); it is raised once AUTH verified, so
        # that we end the SA with a Delete
        self._round += 1
        if self._idr is None:  # the first response: the gateway identifies and authenticates itself
            idr = next((i for i in resp.find_all(Identification) if i.payload_type is PayloadType.IDr), None)
            if idr is None:
                raise InvalidSyntax("IKE_AUTH response lacks IDr")
            peer = Identity.from_payload(idr)
            if not conn.remote.identity.matches(peer):
                raise AuthenticationFailed(
                    f"responder identified as {peer}, but {conn.remote.identity} is configured"
                )
            sa.remote_id = peer
            self._idr = idr
            verify_peer_auth(sa, conn.remote, resp, idr, _wall(sa))
            sa.peer_mobike = conn.mobike and resp.notify(NotifyType.MOBIKE_SUPPORTED) is not None
            if sa.peer_mobike:
                read_address_list(sa, resp)
            how = "certificate" if conn.remote.auth is AuthClass.PUBKEY else "pre-shared key"
            sa.events.append(SaProgress(sa.sa_id, sa.name, "IKE_AUTH", f"{peer} authenticated by {how}"))
            if conn.local.auth is not AuthClass.EAP_MSCHAPV2:
                return self._done(sa, resp)
            return self._eap_step(sa, conn, resp)
        if sa.eap_peer is not None and sa.eap_peer.outcome is EapOutcome.SUCCESS:
            # the last round: the responder's AUTH over the MSK (RFC 7296 §2.16)
            auth = resp.find(Authentication)
            if auth is None:
                raise AuthenticationFailed("gateway sent no AUTH after EAP-Success")
            assert sa.prf is not None
            octets = signed_octets(sa, ours=False, id_payload=self._idr)
            if not verify_psk_auth(sa.prf, sa.eap_peer.msk, octets, auth.data):
                raise AuthenticationFailed("gateway's EAP (MSK) AUTH does not verify")
            return self._done(sa, resp)
        return self._eap_step(sa, conn, resp)

    def _eap_step(self, sa: IkeSa, conn: ConnectionConfig, resp: Message) -> TaskStatus:
        eap = resp.find(EapPayload)
        if eap is None:
            raise AuthenticationFailed("gateway sent no EAP request (EAP is configured for us)")
        if sa.eap_peer is None:
            user = conn.local.eap_identity or str(sa.local_id)
            password = sa.ctx.creds.eap_password(user)
            if password is None:
                raise AuthenticationFailed(f"no EAP password for {user}")
            sa.eap_peer = MsChapV2Peer(user, password, rng=sa.ctx.rng)
        peer = sa.eap_peer  # (its outcome changes in process())
        if self._eap_failure:
            raise AuthenticationFailed(f"EAP authentication failed: {peer.reason}")
        answer = peer.process(eap.message)
        if peer.outcome is EapOutcome.FAILURE:
            if answer is None:
                raise AuthenticationFailed(f"EAP authentication failed: {peer.reason}")
            self._eap_failure = True  # acknowledge the MS-CHAPv2 Failure, then expect EAP-Failure
            self._next = [EapPayload(answer)]
            return TaskStatus.NEED_MORE
        if peer.outcome is EapOutcome.SUCCESS:
            user = conn.local.eap_identity or str(sa.local_id)
            sa.events.append(SaProgress(sa.sa_id, sa.name, "EAP", f"EAP-MSCHAPv2 as {user}: accepted"))
            assert sa.prf is not None and self._idi is not None
            octets = signed_octets(sa, ours=True, id_payload=self._idi)
            data = psk_auth(sa.prf, sa.eap_peer.msk, octets)
            self._next = [Authentication(AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, data)]
        else:
            if answer is None:
                raise AuthenticationFailed("EAP conversation ended without Success")
            self._next = [EapPayload(answer)]
        return TaskStatus.NEED_MORE

    def _done(self, sa: IkeSa, resp: Message) -> TaskStatus:
        sa.auth_complete = True
        _established(sa)
        lifetime = resp.notify(NotifyType.AUTH_LIFETIME)
        if lifetime is not None:  # RFC 4478 §3: reauthenticate before it runs out
            try:
                seconds = lifetime.lifetime_seconds()
            except PyIpsecError as exc:  # a malformed status notify does not fail the SA
                sa.log.info("ignoring a malformed AUTH_LIFETIME: %s", exc)
            else:
                sa.log.info("the gateway wants reauthentication within %d s", seconds)
                sa.reauth_soon(0.9 * seconds)
        raise_peer_error(resp, ignore=_CHILD_ERRORS)
        return TaskStatus.DONE

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        if sa.state is not IkeSaState.CONNECTING:
            raise InvalidSyntax("IKE_AUTH on an SA that is not connecting")
        if sa.auth_first_request is None:
            self._first_round(sa, req)
        elif sa.eap_server is not None:
            self._eap_round(sa, req)
        else:
            raise InvalidSyntax("unexpected IKE_AUTH request")

    def _eap_round(self, sa: IkeSa, req: Message) -> None:
        assert sa.eap_server is not None
        if sa.eap_server.outcome is EapOutcome.SUCCESS:
            self._msk_round(sa, req)
            return
        eap = req.find(EapPayload)
        if eap is None or sa.eap_server.outcome is not EapOutcome.CONTINUE:
            raise InvalidSyntax("IKE_AUTH request in an EAP conversation lacks the EAP payload")
        server = sa.eap_server  # (its outcome changes in process())
        answer = server.process(eap.message)
        sa.eap_identity = server.identity or sa.eap_identity
        if server.outcome is EapOutcome.FAILURE:
            self._eap_failed = True
            sa.log.info("EAP authentication of %s failed: %s", sa.eap_identity or "?", server.reason)
        self._out = [EapPayload(answer)]

    def _first_round(self, sa: IkeSa, req: Message) -> None:
        ids = req.find_all(Identification)
        idi = next((i for i in ids if i.payload_type is PayloadType.IDi), None)
        idr = next((i for i in ids if i.payload_type is PayloadType.IDr), None)
        auth = req.find(Authentication)
        if idi is None:
            raise InvalidSyntax("IKE_AUTH request lacks IDi")
        peer = Identity.from_payload(idi)
        wanted_local = Identity.from_payload(idr) if idr is not None else None
        conn = self._pick_connection(sa, peer, wanted_local, auth)
        sa.set_connection(conn)
        sa.remote_id = peer
        sa.local_id = local_identity(conn.local, sa)
        sa.auth_first_request = req
        sa.initial_contact = req.notify(NotifyType.INITIAL_CONTACT) is not None
        sa.peer_mobike = conn.mobike and req.notify(NotifyType.MOBIKE_SUPPORTED) is not None
        mobike: list[Payload] = []
        if sa.peer_mobike:  # with our other addresses (RFC 4555 §3.4)
            read_address_list(sa, req)
            mobike = [Notify.of(NotifyType.MOBIKE_SUPPORTED), *address_notifies(sa)]
        idr_out = id_payload_for(sa.local_id, PayloadType.IDr)
        sa.our_id_payload = idr_out
        sa.peer_id_payload = idi
        if auth is not None:
            verify_peer_auth(sa, conn.remote, req, idi, _wall(sa))
            sa.auth_complete = True
            our_auth, certs_out = build_auth(sa, conn.local, idr_out)
            self._out = [idr_out, *self._certs(conn, certs_out), our_auth, *mobike]
            return
        # EAP (RFC 7296 §2.16): we authenticate with our certificate now, the peer by EAP
        if sa.ctx.eap_server is None:
            raise AuthenticationFailed(
                "peer wants EAP authentication, but no EAP server (user store) is set up"
            )
        sa.eap_server = sa.ctx.eap_server()
        our_auth, certs_out = build_auth(sa, conn.local, idr_out)
        self._out = [
            idr_out,
            *self._certs(conn, certs_out),
            our_auth,
            *mobike,
            EapPayload(sa.eap_server.start()),
        ]

    def _msk_round(self, sa: IkeSa, req: Message) -> None:
        assert sa.eap_server is not None and sa.prf is not None and sa.peer_id_payload is not None
        auth = req.find(Authentication)
        if auth is None:
            raise AuthenticationFailed("peer sent no AUTH after EAP-Success")
        octets = signed_octets(sa, ours=False, id_payload=sa.peer_id_payload)
        if not verify_psk_auth(sa.prf, sa.eap_server.msk, octets, auth.data):
            raise AuthenticationFailed(f"EAP (MSK) AUTH of {sa.eap_identity or sa.remote_id} does not verify")
        sa.auth_complete = True
        assert sa.our_id_payload is not None
        ours = signed_octets(sa, ours=True, id_payload=sa.our_id_payload)
        self._out = [
            Authentication(
                AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, psk_auth(sa.prf, sa.eap_server.msk, ours)
            )
        ]

    @staticmethod
    def _certs(conn: ConnectionConfig, certs_out: list[Certificate]) -> list[Certificate]:
        return [] if conn.send_cert is SendCert.NEVER else certs_out

    def _pick_connection(
        self, sa: IkeSa, peer: Identity, wanted_local: Identity | None, auth: Authentication | None
    ) -> ConnectionConfig:
        assert sa.proposal is not None
        ike_offer = [sa.proposal.to_wire(b"")]
        for conn in sa.candidates:
            if not conn.remote.identity.matches(peer):
                continue
            if (
                wanted_local is not None
                and not conn.local.identity.is_any
                and not local_identity(conn.local, sa).matches(wanted_local)
            ):
                continue
            if auth is None:
                if conn.remote.auth is not AuthClass.EAP_MSCHAPV2:
                    continue
            elif not method_fits(conn.remote.auth, auth.method):
                continue
            if select(conn.proposals, ike_offer) is None:
                continue
            return conn
        configured = "; ".join(
            f"{c.name}: remote {c.remote.identity} ({c.remote.auth.value}), local {c.local.identity}, "
            f"proposals {describe_ours(c.proposals)}"
            for c in sa.candidates
        )
        method = auth.method.name if auth is not None else "EAP"
        raise AuthenticationFailed(
            f"no connection for peer identity {peer} (asked for {wanted_local or 'any'}, "
            f"auth {method}); configured: {configured or 'none for this address'}"
        )

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        resp.extend(self._out)
        if sa.auth_complete:
            conn = sa.connection
            if conn is not None and conn.reauth_time > 0:
                resp.append(Notify.auth_lifetime(max(1, int(conn.reauth_time))))
            _responder_reauth(sa)
            _established(sa)

    def after_response(self, sa: IkeSa) -> None:
        if self._eap_failed:
            reason = sa.eap_server.reason if sa.eap_server is not None else "EAP failed"
            who = sa.eap_identity or sa.remote_id
            sa.close(CloseCause.FAILED, f"EAP authentication of {who} failed: {reason}")


# Errors about the Child SA that leave the IKE SA up (RFC 7296 §2.21.2). CP failures are not
# among them: a road warrior without its virtual IP has no use for the IKE SA.
_CHILD_ERRORS = (
    NotifyType.NO_PROPOSAL_CHOSEN,
    NotifyType.TS_UNACCEPTABLE,
    NotifyType.SINGLE_PAIR_REQUIRED,
    NotifyType.INVALID_SELECTORS,
)
