"""Which EAP method runs for an authentication round, and the RADIUS relay (RFC 3579).

The IKE_AUTH task asks here for the EAP side of a round:

- gateway (:func:`eap_server_for`): ``eap-mschapv2`` (and ``eap``) — MS-CHAPv2 against the
  gateway's users (the engine's ``eap_server`` factory: ``[secrets.eap*]`` and the store);
  ``eap-tls`` — EAP-TLS with the gateway's certificate, the client's certificate checked
  against the round's CAs; ``eap-radius`` — :class:`RelayedEap`, which passes every EAP
  message to the AAA server through a lookup (:class:`~pyipsec.ike.lookups.EapRelay`);
- client (:func:`eap_peer_for`): ``eap-mschapv2`` with the password of ``[secrets.eap*]``,
  ``eap-tls`` with the round's certificate and key, ``eap``: whichever of those the gateway
  asks for (:class:`~pyipsec.ike.eap.choose.EapMethodPeer` answers a Nak for the others).

:class:`RelayedEap` keeps what a relay conversation needs between rounds: our own
EAP-Request/Identity comes first (as strongSwan's eap-radius does by default), the peer's
identity becomes the RADIUS User-Name, and each Access-Challenge's State goes back with the
next Access-Request. Access-Accept carries the MSK (MS-MPPE keys) and possibly addresses for
the peer (Framed-IP-Address, Framed-IPv6-Prefix/Address) and a session timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from pyipsec.crypto.x509 import load_certificate
from pyipsec.errors import AuthenticationFailed, DecodeError
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.config import AuthClass, AuthConfig, ConnectionConfig
from pyipsec.ike.eap.base import EapOutcome, EapPeer, EapServer, eap_failure
from pyipsec.ike.eap.choose import EapMethodPeer
from pyipsec.ike.eap.mschapv2 import MsChapV2Peer
from pyipsec.ike.eap.tls import EapTlsPeer, EapTlsServer
from pyipsec.ike.lookups import EapRelay, EapRelayAnswer, RelayResult
from pyipsec.wire.payloads.eap import EapMessage

if TYPE_CHECKING:
    from pyipsec.crypto.sig import SigningKey
    from pyipsec.ike.sa import IkeSa

__all__ = ["RelayedEap", "eap_peer_for", "eap_server_for", "is_mutual", "method_name"]

_NAMES = {
    AuthClass.EAP_MSCHAPV2: "EAP-MSCHAPv2",
    AuthClass.EAP_TLS: "EAP-TLS",
    AuthClass.EAP_RADIUS: "EAP-RADIUS",
    AuthClass.EAP: "EAP",
}


def method_name(auth: AuthClass) -> str:
    return _NAMES.get(auth, auth.value)


def is_mutual(peer: EapPeer) -> bool:
    """Whether the EAP method authenticated the server too (EAP-TLS: its certificate was
    verified in the handshake), so that it may stand alone (EAP-only, RFC 5998)."""
    if isinstance(peer, EapMethodPeer):
        inner = peer.delegate
        return inner is not None and is_mutual(inner)
    return isinstance(peer, EapTlsPeer)


def _our_key(sa: IkeSa, cert_der: bytes) -> SigningKey:
    spki = (
        load_certificate(cert_der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key = sa.ctx.creds.private_key_for(spki)
    if key is None:
        raise AuthenticationFailed("no private key for our EAP-TLS certificate")
    return key


def eap_server_for(sa: IkeSa, conn: ConnectionConfig, peer: AuthConfig) -> EapServer | RelayedEap:
    """The gateway's EAP conversation for the peer's round ``peer``."""
    if peer.auth is AuthClass.EAP_RADIUS:
        return RelayedEap(sa)
    if peer.auth is AuthClass.EAP_TLS:
        ours = next((r for r in conn.local_rounds if r.certs), None)
        if ours is None:
            raise AuthenticationFailed("EAP-TLS needs a certificate of ours (local.certs)")
        if not peer.cacerts:
            raise AuthenticationFailed("EAP-TLS needs CA certificates for the clients (remote.cacerts)")
        return EapTlsServer(
            cert=ours.certs[0],
            key=_our_key(sa, ours.certs[0]),
            chain=ours.certs[1:],
            ca_certs=peer.cacerts,
            rng=sa.ctx.rng,
        )
    if sa.ctx.eap_server is None:
        raise AuthenticationFailed("peer wants EAP authentication, but no EAP server (user store) is set up")
    return sa.ctx.eap_server()


def eap_peer_for(sa: IkeSa, conn: ConnectionConfig, ours: AuthConfig) -> EapPeer:
    """The client's EAP conversation for our round ``ours``."""
    user = ours.eap_identity or str(ours.identity if not ours.identity.is_any else sa.local_id)
    server_name = None if conn.remote.identity.is_any else str(conn.remote.identity)
    cacerts = next((r.cacerts for r in conn.remote_rounds if r.cacerts), ())

    def mschapv2() -> EapPeer:
        password = sa.ctx.creds.eap_password(user)
        if password is None:
            raise AuthenticationFailed(f"no EAP password for {user}")
        return MsChapV2Peer(user, password, rng=sa.ctx.rng)

    def tls() -> EapPeer:
        if not ours.certs:
            raise AuthenticationFailed("EAP-TLS needs our certificate (local.certs)")
        if not cacerts:
            raise AuthenticationFailed("EAP-TLS needs the gateway's CA (remote.cacerts)")
        return EapTlsPeer(
            user,
            cert=ours.certs[0],
            key=_our_key(sa, ours.certs[0]),
            chain=ours.certs[1:],
            ca_certs=cacerts,
            server_name=server_name,
            rng=sa.ctx.rng,
        )

    if ours.auth is AuthClass.EAP_TLS:
        return tls()
    if ours.auth is AuthClass.EAP:
        methods = {}
        if sa.ctx.creds.eap_password(user) is not None:
            methods[EapType.MSCHAPV2] = mschapv2
        if ours.certs and cacerts:
            methods[EapType.TLS] = tls
        if not methods:
            raise AuthenticationFailed(
                f"auth = eap, but neither an EAP password for {user} nor a certificate"
            )
        return EapMethodPeer(user, methods)
    return mschapv2()


class RelayedEap:
    """The gateway's side of an EAP conversation that a RADIUS server decides (``eap-radius``)."""

    def __init__(self, sa: IkeSa) -> None:
        self._sa = sa
        self._identifier = 0
        self._state: bytes | None = None
        self.identity: str | None = None
        self.outcome = EapOutcome.CONTINUE
        self.msk = b""
        self.reason = ""
        self.accepted: EapRelayAnswer | None = None

    def process(self, response: bytes) -> bytes:
        raise AssertionError("a relayed EAP conversation goes through relay() and take()")

    def start(self) -> bytes:
        """Our own EAP-Request/Identity (RFC 3748 §5.1)."""
        self._identifier = self._sa.ctx.rng.random_bytes(1)[0]
        return EapMessage(EapCode.REQUEST, self._identifier, EapType.IDENTITY).encode()

    def relay(self, response: bytes) -> EapRelay:
        """What to ask the AAA server about the peer's EAP-Response ``response``."""
        if self.identity is None:
            try:
                msg = EapMessage.decode(response)
            except (DecodeError, ValueError) as exc:
                raise AuthenticationFailed(f"malformed EAP-Response/Identity: {exc}") from None
            if msg.code is not EapCode.RESPONSE or msg.eap_type is not EapType.IDENTITY:
                raise AuthenticationFailed("the peer did not answer the EAP-Request/Identity")
            self.identity = msg.type_data.decode("utf-8", "replace")
        sa = self._sa
        local, remote = sa.local, sa.remote
        return EapRelay(
            user=self.identity,
            eap=response,
            state=self._state,
            session=f"{sa.spi_i.hex()}-{sa.spi_r.hex()}",
            calling_station=f"{remote.ip}[{remote.port}]",
            called_station=f"{local.ip}[{local.port}]",
            nas_port=sa.sa_id,
        )

    def take(self, answer: EapRelayAnswer) -> bytes:
        """The AAA server's answer; the EAP message for the peer."""
        result = answer.result
        if result is RelayResult.CHALLENGE and answer.eap:
            self._state = answer.state
            return answer.eap
        if result is RelayResult.ACCEPT and len(answer.msk) >= 32:
            self.outcome, self.msk, self.accepted = EapOutcome.SUCCESS, answer.msk, answer
            return answer.eap or EapMessage(EapCode.SUCCESS, self._identifier).encode()
        self.outcome = EapOutcome.FAILURE
        if result is RelayResult.ACCEPT:
            self.reason = f"RADIUS server {answer.server} accepted without MS-MPPE keys (no MSK)"
        elif result is RelayResult.CHALLENGE:
            self.reason = f"RADIUS server {answer.server} sent an Access-Challenge without EAP"
        else:
            self.reason = answer.reason or f"RADIUS {result.value}"
        return answer.eap if result is RelayResult.REJECT and answer.eap else eap_failure(self._identifier)
