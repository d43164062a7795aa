"""IKE_AUTH: identities, certificates and AUTH (RFC 7296 §1.2, §2.15, §3.5-3.8).

Initiator: sends IDi (and IDr when the peer's identity is configured), our certificate and
CERTREQs for our CAs when certificates are used, AUTH and INITIAL_CONTACT; then checks the
responder's IDr and AUTH. Responder: picks, among the connections that fit the addresses,
the first whose remote identity matches IDi, whose local identity matches IDr (if sent)
and whose authentication class fits the AUTH method; verifies AUTH; answers with its own
IDr, CERT and AUTH. A failed check is AUTHENTICATION_FAILED, and the reason (received vs
configured identities, certificate problems) goes into the log and the close event.

Reauthentication (RFC 7296 §2.8.3): the new IKE SA of a reauthentication sends no
INITIAL_CONTACT (the old SA with the peer stays until the new one has taken over; nor does one
that follows a redirect, RFC 5685, whose old SA may be with the same gateway). The
responder takes an IKE_AUTH without INITIAL_CONTACT from a peer with which an established SA
of the same connection and identity exists for a reauthentication of that SA: it links the
two (``reauth_of``) and installs the new Child SAs inbound only, until the old SA is deleted.
A responder whose connection has a ``reauth_time`` announces it in its last IKE_AUTH response
as AUTH_LIFETIME (RFC 4478 §3); an initiator that gets one reauthenticates before it runs out.

Several authentication rounds (RFC 4739; swanctl's ``local-2``/``remote-2``): both sides
announce MULTIPLE_AUTH_SUPPORTED (the responder in IKE_SA_INIT, the initiator in its first
IKE_AUTH); a round that is followed by another carries ANOTHER_AUTH_FOLLOWS beside its AUTH
(for EAP: beside the final MSK AUTH). A later round starts with the initiator's IDi for that
round; its AUTH (or the MSK AUTH after its EAP) covers that round's IDi. The responder
authenticates itself in one round. It answers the Child SA and CP requests of the first
request once every configured round of the peer is done.

EAP-only authentication (RFC 5998): an initiator with an EAP round that also configures the
gateway as authenticated by EAP (``remote.auth = "eap-tls"``) sends EAP_ONLY_AUTHENTICATION; a
gateway whose own ``local.auth`` is an EAP method then sends no AUTH (and no certificate)
before EAP, and authenticates only with the MSK AUTH at the end. The initiator accepts that
only for a mutual method (EAP-TLS, where it verified the gateway's certificate in TLS).

Lookups: a certificate round whose ``revocation`` policy wants a check (or whose chain names a
CRL or OCSP URI) suspends for a :class:`~pyipsec.ike.lookups.RevocationQuery`; an
``eap-radius`` round suspends for each EAP message (:class:`~pyipsec.ike.lookups.EapRelay`).
The task resumes where it stopped (:meth:`IkeAuthTask.resume`).

The IKE SA is established when this task completes; the Child SA negotiated in the same
exchange is ``child_create``'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID

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
from pyipsec.ike.config import AuthClass, AuthConfig, ConnectionConfig, Identity, SendCert
from pyipsec.ike.eap.base import EapOutcome, EapServer, TakesAnswers
from pyipsec.ike.events import CloseCause, IkeSaEstablished, SaProgress
from pyipsec.ike.keymat import psk_auth, verify_psk_auth
from pyipsec.ike.lookups import Answer, EapRelayAnswer, RevocationAnswer, RevocationQuery, UserAnswer
from pyipsec.ike.proposal import select
from pyipsec.ike.proposal_text import format_chosen
from pyipsec.ike.state import IkeEvent, IkeSaState
from pyipsec.ike.task import Suspend, Task, TaskStatus
from pyipsec.ike.tasks.common import describe_ours, raise_peer_error
from pyipsec.ike.tasks.eap_methods import RelayedEap, eap_peer_for, eap_server_for, is_mutual, method_name
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

__all__ = ["MAX_EAP_MESSAGES", "IkeAuthTask"]

MAX_EAP_MESSAGES = 50
"""EAP messages one side takes from the other on one IKE SA before it gives up (both roles): a
peer that bounces EAP forever (Identity loops, endless fragments) ends with AUTHENTICATION_FAILED
instead of holding a half-open SA (RELIABILITY.md §5 B8)."""


def _count_eap(sa: IkeSa) -> None:
    sa.eap_messages += 1
    if sa.eap_messages > MAX_EAP_MESSAGES:
        raise AuthenticationFailed(f"EAP did not finish within {MAX_EAP_MESSAGES} messages")


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
        extra={"event": "ike_established"},
    )
    sa.emit(
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
            for o in sa.ctx.peers(sa)
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
    """IKE_AUTH in one round (PSK, certificates), several (EAP, RFC 7296 §2.16) or several
    authentications (RFC 4739).

    With EAP the initiator sends no AUTH at first; the responder answers with its own
    (certificate) AUTH — unless EAP-only — and the first EAP request; EAP messages go back and
    forth; after EAP-Success both sides send AUTH computed with the EAP MSK in place of a PSK.
    The responder keeps the first request (``sa.auth_first_request``): its CP and Child SA
    requests are answered in the last round, once the peer is authenticated. Responder state
    that outlives one request lives on the SA (a new task answers each request).
    """

    def __init__(self) -> None:
        # responder: what build_r sends; whether EAP failed; what follows a revocation check
        self._out: list[Payload] = []
        self._eap_failed = False
        self._then: Callable[[], TaskStatus] | None = None
        self._eap_message = b""  # the EAP message a user lookup suspended (eap.lookupusers)
        # initiator state across rounds
        self._round = 0  # index into the connection's local rounds
        self._round_started = False
        self._next: list[Payload] = []
        self._idr: Identification | None = None
        self._idi: Identification | None = None  # this round's IDi (the MSK AUTH covers it)
        self._eap_only = False  # the gateway sent no AUTH: EAP authenticates it (RFC 5998)
        self._eap_failure = False

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        if self._round_started:
            req.extend(self._next)  # an EAP response, or the MSK AUTH after EAP-Success
            return
        self._round_started = True
        conn = sa.connection
        assert conn is not None
        ours = conn.local_rounds[self._round]
        first = self._round == 0
        identity = local_identity(ours, sa)
        if first:
            sa.local_id = identity
            sa.remote_id = conn.remote.identity
        idi = id_payload_for(identity, PayloadType.IDi)
        self._idi = idi
        req.append(idi)
        auth: Authentication | None = None
        if not ours.auth.is_eap:
            auth, cert_payloads = build_auth(sa, ours, idi)
            if conn.send_cert is not SendCert.NEVER:
                req.extend(cert_payloads)
        if first:
            # a reauthentication keeps the old SA until it takes over; so does a redirect (the
            # old gateway may be this one again, after a chain of redirects: ike.redirect)
            if sa.reauth_of is None and not sa.redirected_from:
                req.append(Notify.of(NotifyType.INITIAL_CONTACT))
            if conn.mobike:
                req.append(Notify.of(NotifyType.MOBIKE_SUPPORTED))
                req.extend(address_notifies(sa))  # our other addresses (RFC 4555 §3.4)
            certreq = _certreq(conn)
            if certreq is not None:
                req.append(certreq)
            if not conn.remote.identity.is_any:
                req.append(id_payload_for(conn.remote.identity, PayloadType.IDr))
            req.append(Notify.of(NotifyType.MULTIPLE_AUTH_SUPPORTED))  # RFC 4739 §3.1
            if ours.auth.is_eap and conn.remote.auth.is_eap:
                req.append(Notify.of(NotifyType.EAP_ONLY_AUTHENTICATION))  # RFC 5998 §4
        if auth is not None:
            req.append(auth)
            req.extend(self._another_follows(sa, conn))

    def _another_follows(self, sa: IkeSa, conn: ConnectionConfig) -> list[Payload]:
        """ANOTHER_AUTH_FOLLOWS, if a round of ours follows this one and the peer supports it."""
        if self._round + 1 < len(conn.local_rounds) and sa.peer_multiple_auth:
            return [Notify.of(NotifyType.ANOTHER_AUTH_FOLLOWS)]
        return []

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        conn = sa.connection
        assert conn is not None
        if resp.find(Authentication) is None:
            raise_peer_error(resp, ignore=_CHILD_ERRORS)
        # else the responder authenticated itself: an error Notify beside its AUTH (a CP failure)
        # leaves the IKE SA established (RFC 7296 §3.10.1); it is raised once AUTH verified, so
        # that we end the SA with a Delete
        if self._idr is not None:
            return self._our_round(sa, conn, resp)
        # the first response: the gateway identifies (and authenticates) itself
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
        sa.peer_mobike = conn.mobike and resp.notify(NotifyType.MOBIKE_SUPPORTED) is not None
        if sa.peer_mobike:
            read_address_list(sa, resp)
        if resp.find(Authentication) is None:  # EAP-only (RFC 5998): EAP must authenticate it
            if not (conn.local_rounds[0].auth.is_eap and conn.remote.auth.is_eap):
                raise AuthenticationFailed(
                    f"the gateway sent no AUTH (EAP-only authentication), but remote.auth = "
                    f"{conn.remote.auth.value} is configured"
                )
            self._eap_only = True
            sa.log.info("the gateway authenticates by EAP only (RFC 5998)")
            return self._our_round(sa, conn, resp)
        chain = verify_peer_auth(sa, conn.remote, resp, idr, _wall(sa))
        how = "certificate" if conn.remote.auth is AuthClass.PUBKEY else "pre-shared key"
        sa.emit(SaProgress(sa.sa_id, sa.name, "IKE_AUTH", f"{peer} authenticated by {how}"))
        return self._revocation_then(sa, conn.remote, chain, lambda: self._our_round(sa, conn, resp))

    def _our_round(self, sa: IkeSa, conn: ConnectionConfig, resp: Message) -> TaskStatus:
        """The response in our current round: a signature or PSK round is over (the gateway
        would have refused it); an EAP round takes its next step."""
        ours = conn.local_rounds[self._round]
        if not ours.auth.is_eap:
            return self._round_done(sa, conn, resp)
        peer = sa.eap_peer
        if peer is not None and peer.outcome is EapOutcome.SUCCESS:
            # the round's last response: the gateway's AUTH over the MSK (RFC 7296 §2.16)
            auth = resp.find(Authentication)
            if auth is None:
                raise AuthenticationFailed("gateway sent no AUTH after EAP-Success")
            assert sa.prf is not None and self._idr is not None
            octets = signed_octets(sa, ours=False, id_payload=self._idr)
            if not verify_psk_auth(sa.prf, peer.msk, octets, auth.data):
                raise AuthenticationFailed("gateway's EAP (MSK) AUTH does not verify")
            if self._eap_only:
                if not is_mutual(peer):
                    raise AuthenticationFailed("EAP-only authentication needs a mutual EAP method (EAP-TLS)")
                sa.emit(SaProgress(sa.sa_id, sa.name, "IKE_AUTH", f"{sa.remote_id} authenticated by EAP-TLS"))
            return self._round_done(sa, conn, resp)
        return self._eap_step(sa, conn, ours, resp)

    def _round_done(self, sa: IkeSa, conn: ConnectionConfig, resp: Message) -> TaskStatus:
        if self._round + 1 < len(conn.local_rounds):
            if not sa.peer_multiple_auth:
                raise AuthenticationFailed(
                    f"{len(conn.local_rounds)} authentication rounds are configured, but the gateway "
                    "does not support several (no MULTIPLE_AUTH_SUPPORTED, RFC 4739)"
                )
            self._round += 1
            self._round_started = False
            sa.eap_peer = None
            return TaskStatus.NEED_MORE
        return self._done(sa, resp)

    def _eap_step(self, sa: IkeSa, conn: ConnectionConfig, ours: AuthConfig, resp: Message) -> TaskStatus:
        eap = resp.find(EapPayload)
        if eap is None:
            raise AuthenticationFailed("gateway sent no EAP request (EAP is configured for us)")
        if sa.eap_peer is None:
            sa.eap_peer = eap_peer_for(sa, conn, ours)
        peer = sa.eap_peer  # (its outcome changes in process())
        if self._eap_failure:
            raise AuthenticationFailed(f"EAP authentication failed: {peer.reason}")
        _count_eap(sa)
        answer = peer.process(eap.message)
        if peer.outcome is EapOutcome.FAILURE:
            if answer is None:
                raise AuthenticationFailed(f"EAP authentication failed: {peer.reason}")
            self._eap_failure = True  # acknowledge the MS-CHAPv2 Failure, then expect EAP-Failure
            self._next = [EapPayload(answer)]
            return TaskStatus.NEED_MORE
        if peer.outcome is EapOutcome.SUCCESS:
            user = ours.eap_identity or str(self._idi_identity())
            detail = f"{method_name(ours.auth)} as {user}: accepted"
            sa.emit(SaProgress(sa.sa_id, sa.name, "EAP", detail))
            assert sa.prf is not None and self._idi is not None
            octets = signed_octets(sa, ours=True, id_payload=self._idi)
            data = psk_auth(sa.prf, peer.msk, octets)
            self._next = [
                Authentication(AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, data),
                *self._another_follows(sa, conn),
            ]
        else:
            if answer is None:
                raise AuthenticationFailed("EAP conversation ended without Success")
            self._next = [EapPayload(answer)]
        return TaskStatus.NEED_MORE

    def _idi_identity(self) -> Identity:
        assert self._idi is not None
        return Identity.from_payload(self._idi)

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

    # -- either side: lookups -------------------------------------------------------------------

    def _revocation_then(
        self,
        sa: IkeSa,
        auth: AuthConfig,
        chain: certs.ValidatedChain | None,
        then: Callable[[], TaskStatus],
    ) -> TaskStatus:
        """``then()`` now, or once a revocation check of ``chain`` says it is fine."""
        query = _revocation_query(sa, auth, chain)
        if query is None:
            return then()
        self._then = then
        raise Suspend(query)

    def resume(self, sa: IkeSa, answer: Answer) -> TaskStatus:
        if isinstance(answer, RevocationAnswer):
            for warning in answer.warnings:
                sa.log.warning("revocation check: %s", warning)
            if not answer.ok:
                raise AuthenticationFailed(answer.reason or "certificate revoked")
            if answer.reason:
                sa.log.info("revocation check: %s", answer.reason)
            then, self._then = self._then, None
            assert then is not None
            return then()
        server = sa.eap_server
        if isinstance(answer, UserAnswer):  # our EAP server's user store asked the host
            assert isinstance(server, TakesAnswers) and not isinstance(server, RelayedEap)
            server.take(answer)
            self._eap_answered(sa, server, server.process(self._eap_message))
            return TaskStatus.DONE
        assert isinstance(server, RelayedEap) and isinstance(answer, EapRelayAnswer)
        self._eap_answered(sa, server, server.take(answer))
        if server.accepted is not None:
            framed = (server.accepted.framed_ipv4, server.accepted.framed_ipv6)
            sa.framed_addresses = tuple(a for a in framed if a is not None)
        return TaskStatus.DONE

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        if sa.state is not IkeSaState.CONNECTING:
            raise InvalidSyntax("IKE_AUTH on an SA that is not connecting")
        if sa.auth_first_request is None:
            self._first_request(sa, req)
        elif sa.eap_server is not None:
            self._eap_round(sa, req)
        elif any(i.payload_type is PayloadType.IDi for i in req.find_all(Identification)):
            self._next_round(sa, req)
        else:
            raise InvalidSyntax("unexpected IKE_AUTH request")

    def _first_request(self, sa: IkeSa, req: Message) -> None:
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
            chain = verify_peer_auth(sa, conn.remote, req, idi, _wall(sa))

            def verified() -> TaskStatus:
                our_auth, certs_out = build_auth(sa, conn.local, idr_out)
                self._out = [idr_out, *self._certs(conn, certs_out), our_auth, *mobike]
                _peer_round_done(sa, conn, req)
                return TaskStatus.DONE

            self._revocation_then(sa, conn.remote, chain, verified)
            return
        # EAP (RFC 7296 §2.16): we authenticate with our certificate now — or, EAP-only
        # (RFC 5998), by the EAP method itself — and the peer by EAP
        sa.eap_only = conn.local.auth.is_eap
        if sa.eap_only and req.notify(NotifyType.EAP_ONLY_AUTHENTICATION) is None:
            raise AuthenticationFailed(
                f"local.auth = {conn.local.auth.value} (EAP-only, RFC 5998) is configured, but the peer "
                "does not support EAP-only authentication"
            )
        sa.eap_server = eap_server_for(sa, conn, conn.remote)
        ours: list[Payload] = [idr_out]
        if not sa.eap_only:
            our_auth, certs_out = build_auth(sa, conn.local, idr_out)
            ours += [*self._certs(conn, certs_out), our_auth]
        self._out = [*ours, *mobike, EapPayload(sa.eap_server.start())]

    def _next_round(self, sa: IkeSa, req: Message) -> None:
        """The first request of the peer's next authentication round (RFC 4739)."""
        conn = sa.connection
        assert conn is not None
        rounds = conn.remote_rounds
        if sa.peer_round >= len(rounds) or sa.peer_rounds_done != sa.peer_round:
            raise InvalidSyntax("unexpected IKE_AUTH request")
        cfg = rounds[sa.peer_round]
        idi = next(i for i in req.find_all(Identification) if i.payload_type is PayloadType.IDi)
        peer = Identity.from_payload(idi)
        number = sa.peer_round + 1
        if not cfg.identity.matches(peer):
            raise AuthenticationFailed(
                f"authentication round {number}: peer identity {peer} does not match {cfg.identity}"
            )
        sa.peer_id_payload = idi
        auth = req.find(Authentication)
        if auth is None:
            if not cfg.auth.is_eap:
                raise AuthenticationFailed(
                    f"authentication round {number}: {cfg.auth.value} is configured, the peer wants EAP"
                )
            sa.eap_server = eap_server_for(sa, conn, cfg)
            self._out = [EapPayload(sa.eap_server.start())]
            return
        if cfg.auth.is_eap:
            raise AuthenticationFailed(
                f"authentication round {number}: {cfg.auth.value} is configured, the peer sent AUTH"
            )
        first_id, sa.remote_id = sa.remote_id, peer  # the round's identity signs (and names) it
        try:
            chain = verify_peer_auth(sa, cfg, req, idi, _wall(sa))
        finally:
            sa.remote_id = first_id

        def verified() -> TaskStatus:
            _peer_round_done(sa, conn, req)
            return TaskStatus.DONE

        self._revocation_then(sa, cfg, chain, verified)

    def _eap_round(self, sa: IkeSa, req: Message) -> None:
        server = sa.eap_server
        assert server is not None
        if server.outcome is EapOutcome.SUCCESS:
            self._msk_round(sa, req)
            return
        eap = req.find(EapPayload)
        if eap is None or server.outcome is not EapOutcome.CONTINUE:
            raise InvalidSyntax("IKE_AUTH request in an EAP conversation lacks the EAP payload")
        _count_eap(sa)
        if isinstance(server, RelayedEap):
            raise Suspend(server.relay(eap.message))  # resume() takes the AAA server's answer
        self._eap_message = eap.message  # a user lookup may suspend: resume() processes it again
        self._eap_answered(sa, server, server.process(eap.message))

    def _eap_answered(self, sa: IkeSa, server: EapServer, answer: bytes) -> None:
        sa.eap_identity = server.identity or sa.eap_identity
        if server.outcome is EapOutcome.FAILURE:
            self._eap_failed = True
            sa.log.info(
                "EAP authentication of %s failed: %s",
                sa.eap_identity or "?",
                server.reason,
                extra={"event": "eap_failed"},
            )
        self._out = [EapPayload(answer)]

    def _msk_round(self, sa: IkeSa, req: Message) -> None:
        server, conn = sa.eap_server, sa.connection
        assert server is not None and conn is not None
        assert sa.prf is not None and sa.peer_id_payload is not None and sa.our_id_payload is not None
        auth = req.find(Authentication)
        if auth is None:
            raise AuthenticationFailed("peer sent no AUTH after EAP-Success")
        octets = signed_octets(sa, ours=False, id_payload=sa.peer_id_payload)
        if not verify_psk_auth(sa.prf, server.msk, octets, auth.data):
            raise AuthenticationFailed(f"EAP (MSK) AUTH of {sa.eap_identity or sa.remote_id} does not verify")
        ours = signed_octets(sa, ours=True, id_payload=sa.our_id_payload)
        self._out = [
            Authentication(AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, psk_auth(sa.prf, server.msk, ours))
        ]
        _peer_round_done(sa, conn, req)

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
                if not conn.remote.auth.is_eap:
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
            # the peer failed to authenticate, as with a wrong AUTH (the EAP-Failure said so)
            sa.close(
                CloseCause.FAILED,
                f"EAP authentication of {who} failed: {reason}",
                NotifyType.AUTHENTICATION_FAILED,
            )


def _peer_round_done(sa: IkeSa, conn: ConnectionConfig, req: Message) -> None:
    """Responder: the peer completed an authentication round; is another one coming (RFC 4739)?"""
    sa.peer_rounds_done += 1
    sa.eap_server = None
    needed = len(conn.remote_rounds)
    if req.notify(NotifyType.ANOTHER_AUTH_FOLLOWS) is not None:
        if sa.peer_rounds_done >= needed:
            raise AuthenticationFailed(
                f"the peer announced another authentication round, but {needed} "
                f"{'is' if needed == 1 else 'are'} configured"
            )
        sa.peer_round = sa.peer_rounds_done
        return
    if sa.peer_rounds_done < needed:
        raise AuthenticationFailed(
            f"{needed} authentication rounds are configured, but the peer completed "
            f"{sa.peer_rounds_done} (no ANOTHER_AUTH_FOLLOWS, RFC 4739)"
        )
    sa.auth_complete = True


def _has_revocation_uri(cert: x509.Certificate) -> bool:
    """Whether ``cert`` names a CRL distribution point or an OCSP responder."""
    for ext in cert.extensions:
        if isinstance(ext.value, x509.CRLDistributionPoints):
            return True
        if isinstance(ext.value, x509.AuthorityInformationAccess) and any(
            d.access_method == AuthorityInformationAccessOID.OCSP for d in ext.value
        ):
            return True
    return False


def _revocation_query(
    sa: IkeSa, auth: AuthConfig, chain: certs.ValidatedChain | None
) -> RevocationQuery | None:
    """What to ask about ``chain`` (None: nothing to check). ``relaxed`` only checks where there
    is a source: a URI in a certificate, or CRLs and responders the host was given."""
    if chain is None or len(chain.chain) < 2:
        return None
    checked = chain.chain[:-1]
    if auth.revocation == "relaxed" and not (
        sa.ctx.config.revocation_sources or any(_has_revocation_uri(c) for c in checked)
    ):
        return None
    der = serialization.Encoding.DER
    return RevocationQuery(
        chain=tuple(c.public_bytes(der) for c in checked),
        anchor=chain.chain[-1].public_bytes(der),
        policy=auth.revocation,
    )


# Errors about the Child SA that leave the IKE SA up (RFC 7296 §2.21.2). CP failures are not
# among them: a road warrior without its virtual IP has no use for the IKE SA.
_CHILD_ERRORS = (
    NotifyType.NO_PROPOSAL_CHOSEN,
    NotifyType.TS_UNACCEPTABLE,
    NotifyType.SINGLE_PAIR_REQUIRED,
    NotifyType.INVALID_SELECTORS,
)
