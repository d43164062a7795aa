"""IKE_AUTH: identities, certificates and AUTH (RFC 7296 §1.2, §2.15, §3.5-3.8).

Initiator: sends IDi (and IDr when the peer's identity is configured), our certificate and
CERTREQs for our CAs when certificates are used, AUTH and INITIAL_CONTACT; then checks the
responder's IDr and AUTH. Responder: picks, among the connections that fit the addresses,
the first whose remote identity matches IDi, whose local identity matches IDr (if sent)
and whose authentication class fits the AUTH method; verifies AUTH; answers with its own
IDr, CERT and AUTH. A failed check is AUTHENTICATION_FAILED, and the reason (received vs
configured identities, certificate problems) goes into the log and the close event.

The IKE SA is established when this task completes; the Child SA negotiated in the same
exchange is ``child_create``'s business.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyipsec.crypto import x509 as certs
from pyipsec.errors import AuthenticationFailed, InvalidSyntax
from pyipsec.iana.ikev2 import CertEncoding, NotifyType, PayloadType
from pyipsec.ike.auth.methods import build_auth, id_payload_for, local_identity, method_fits, verify_peer_auth
from pyipsec.ike.config import AuthClass, ConnectionConfig, Identity, SendCert
from pyipsec.ike.events import IkeSaEstablished
from pyipsec.ike.proposal import select
from pyipsec.ike.state import IkeSaState
from pyipsec.ike.tasks.base import TaskStatus
from pyipsec.ike.tasks.common import describe_ours, raise_peer_error
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.auth import Authentication
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.cert import CertificateRequest
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
    from pyipsec.config.proposals import format_proposal  # noqa: PLC0415

    assert sa.proposal is not None
    sa.set_state(IkeSaState.ESTABLISHED)
    sa.was_established = True
    proposal = format_proposal(sa.proposal.to_spec())
    sa.log.info(
        "IKE SA established: %s - %s, %s%s",
        sa.local_id,
        sa.remote_id,
        proposal,
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
            proposal,
        )
    )


class IkeAuthTask:
    def __init__(self) -> None:
        self._resp_conn: ConnectionConfig | None = None

    # -- initiator ------------------------------------------------------------------------------

    def build_i(self, sa: IkeSa, req: list[Payload]) -> None:
        conn = sa.connection
        assert conn is not None
        sa.local_id = local_identity(conn.local, sa)
        sa.remote_id = conn.remote.identity
        idi = id_payload_for(sa.local_id, PayloadType.IDi)
        auth, cert_payloads = build_auth(sa, conn.local, idi)
        req.append(idi)
        if conn.send_cert is not SendCert.NEVER:
            req.extend(cert_payloads)
        req.append(Notify.of(NotifyType.INITIAL_CONTACT))
        certreq = _certreq(conn)
        if certreq is not None:
            req.append(certreq)
        if not conn.remote.identity.is_any:
            req.append(id_payload_for(conn.remote.identity, PayloadType.IDr))
        req.append(auth)

    def process_i(self, sa: IkeSa, resp: Message) -> TaskStatus:
        conn = sa.connection
        assert conn is not None
        raise_peer_error(resp, ignore=_CHILD_ERRORS)
        idr = resp.find_all(Identification)
        idr_payload = next((i for i in idr if i.payload_type is PayloadType.IDr), None)
        if idr_payload is None:
            raise InvalidSyntax("IKE_AUTH response lacks IDr")
        peer = Identity.from_payload(idr_payload)
        if not conn.remote.identity.matches(peer):
            raise AuthenticationFailed(
                f"responder identified as {peer}, but {conn.remote.identity} is configured"
            )
        sa.remote_id = peer
        verify_peer_auth(sa, conn.remote, resp, idr_payload, _wall(sa))
        _established(sa)
        return TaskStatus.DONE

    # -- responder ------------------------------------------------------------------------------

    def process_r(self, sa: IkeSa, req: Message) -> None:
        if sa.state is not IkeSaState.CONNECTING:
            raise InvalidSyntax("IKE_AUTH on an SA that is not connecting")
        ids = req.find_all(Identification)
        idi = next((i for i in ids if i.payload_type is PayloadType.IDi), None)
        idr = next((i for i in ids if i.payload_type is PayloadType.IDr), None)
        auth = req.find(Authentication)
        if idi is None or auth is None:
            raise InvalidSyntax("IKE_AUTH request lacks IDi or AUTH (EAP is not offered here)")
        peer = Identity.from_payload(idi)
        wanted_local = Identity.from_payload(idr) if idr is not None else None
        conn = self._pick_connection(sa, peer, wanted_local, auth)
        sa.set_connection(conn)
        sa.remote_id = peer
        sa.local_id = local_identity(conn.local, sa)
        verify_peer_auth(sa, conn.remote, req, idi, _wall(sa))
        sa.initial_contact = req.notify(NotifyType.INITIAL_CONTACT) is not None
        self._resp_conn = conn

    def _pick_connection(
        self, sa: IkeSa, peer: Identity, wanted_local: Identity | None, auth: Authentication
    ) -> ConnectionConfig:
        assert sa.proposal is not None
        ike_offer = [sa.proposal.to_wire(b"")]
        for conn in sa.candidates:
            if not conn.remote.identity.matches(peer):
                continue
            if (
                wanted_local is not None
                and not local_identity(conn.local, sa).matches(wanted_local)
                and not (conn.local.identity.is_any)
            ):
                continue
            if not method_fits(conn.remote.auth, auth.method):
                continue
            if select(conn.proposals, ike_offer) is None:
                continue
            return conn
        configured = "; ".join(
            f"{c.name}: remote {c.remote.identity} ({c.remote.auth.value}), local {c.local.identity}, "
            f"proposals {describe_ours(c.proposals)}"
            for c in sa.candidates
        )
        raise AuthenticationFailed(
            f"no connection for peer identity {peer} (asked for {wanted_local or 'any'}, "
            f"auth {auth.method.name}); configured: {configured or 'none for this address'}"
        )

    def build_r(self, sa: IkeSa, resp: list[Payload]) -> None:
        conn = self._resp_conn
        assert conn is not None
        idr = id_payload_for(sa.local_id, PayloadType.IDr)
        auth, cert_payloads = build_auth(sa, conn.local, idr)
        resp.append(idr)
        if conn.send_cert is not SendCert.NEVER:
            resp.extend(cert_payloads)
        resp.append(auth)
        _established(sa)


_CHILD_ERRORS = (
    NotifyType.NO_PROPOSAL_CHOSEN,
    NotifyType.TS_UNACCEPTABLE,
    NotifyType.SINGLE_PAIR_REQUIRED,
    NotifyType.INTERNAL_ADDRESS_FAILURE,
    NotifyType.FAILED_CP_REQUIRED,
    NotifyType.INVALID_SELECTORS,
)
