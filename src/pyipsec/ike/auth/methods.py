"""Building and verifying AUTH payloads: pre-shared keys and certificate signatures.

RFC 7296 §2.15: both sides sign (or MAC) their own first message, the peer's nonce and
prf(SK_p, ID'). With a PSK the AUTH value is prf(prf(PSK, "Key Pad for IKEv2"), octets);
with certificates it is a signature — RFC 7427 method 14 when the peer announced
SIGNATURE_HASH_ALGORITHMS, else the classic method for the key type (1 for RSA, 9-11 for
ECDSA). A peer's certificate must chain to one of the connection's CAs at the current
time and carry the peer's identity (RFC 4945 matching in ``crypto.x509``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from pyipsec.crypto import x509 as certs
from pyipsec.crypto.sig import SigningKey, preferred_hash, sign_auth, verify_auth
from pyipsec.errors import AuthenticationFailed, UnsupportedAlgorithm
from pyipsec.iana.ikev2 import AuthMethod, CertEncoding, HashAlgorithm, PayloadType
from pyipsec.ike.config import AuthClass, AuthConfig, Identity
from pyipsec.ike.keymat import auth_octets, psk_auth, verify_psk_auth
from pyipsec.wire.message import Message
from pyipsec.wire.payloads.auth import Authentication
from pyipsec.wire.payloads.cert import Certificate
from pyipsec.wire.payloads.ident import Identification

if TYPE_CHECKING:
    from pyipsec.ike.sa import IkeSa

__all__ = ["build_auth", "local_identity", "signed_octets", "verify_peer_auth"]

_SIGNATURE_METHODS = frozenset(
    {
        AuthMethod.RSA_DIGITAL_SIGNATURE,
        AuthMethod.ECDSA_SHA_256_P256,
        AuthMethod.ECDSA_SHA_384_P384,
        AuthMethod.ECDSA_SHA_512_P521,
        AuthMethod.DIGITAL_SIGNATURE,
    }
)
_CLASSIC_EC = {
    "secp256r1": AuthMethod.ECDSA_SHA_256_P256,
    "secp384r1": AuthMethod.ECDSA_SHA_384_P384,
    "secp521r1": AuthMethod.ECDSA_SHA_512_P521,
}
ANNOUNCED_HASHES = (
    HashAlgorithm.SHA2_256,
    HashAlgorithm.SHA2_384,
    HashAlgorithm.SHA2_512,
    HashAlgorithm.IDENTITY,
)


def method_fits(auth: AuthClass, method: AuthMethod) -> bool:
    if auth is AuthClass.PSK:
        return method is AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE
    if auth is AuthClass.PUBKEY:
        return method in _SIGNATURE_METHODS
    return False


def local_identity(auth: AuthConfig, sa: IkeSa) -> Identity:
    """Our identity: as configured, else the certificate's subject DN, else our IP address."""
    if not auth.identity.is_any:
        return auth.identity
    if auth.auth is AuthClass.PUBKEY and auth.certs:
        id_type, data = certs.identity_for_certificate(certs.load_certificate(auth.certs[0]))
        return Identity(id_type, data)
    return Identity.ip(str(sa.local.ip))


def signed_octets(sa: IkeSa, *, ours: bool, id_payload: Identification) -> bytes:
    """The octets one side's AUTH covers (RFC 7296 §2.15)."""
    assert sa.keys is not None and sa.prf is not None
    sender_is_initiator = sa.initiator == ours
    if sender_is_initiator:
        return auth_octets(sa.prf, sa.keys.sk_pi, sa.init_request, sa.nonce_r, id_payload.encode_body())
    return auth_octets(sa.prf, sa.keys.sk_pr, sa.init_response, sa.nonce_i, id_payload.encode_body())


def _psk(sa: IkeSa) -> bytes:
    secret = sa.ctx.creds.shared_key(sa.local_id, sa.remote_id)
    if secret is None:
        raise AuthenticationFailed(f"no pre-shared key found for {sa.local_id} - {sa.remote_id}")
    return secret


def _signing_key(auth: AuthConfig, sa: IkeSa) -> SigningKey:
    if not auth.certs:
        raise AuthenticationFailed("public-key authentication configured without a certificate")
    cert = certs.load_certificate(auth.certs[0])
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = sa.ctx.creds.private_key_for(spki)
    if key is None:
        raise AuthenticationFailed(f"no private key for our certificate {certs.describe(cert)}")
    return key


def build_auth(
    sa: IkeSa, auth: AuthConfig, id_payload: Identification
) -> tuple[Authentication, list[Certificate]]:
    """Our AUTH payload (and the CERT payloads to send with it)."""
    assert sa.prf is not None
    octets = signed_octets(sa, ours=True, id_payload=id_payload)
    if auth.auth is AuthClass.PSK:
        data = psk_auth(sa.prf, _psk(sa), octets)
        return Authentication(AuthMethod.SHARED_KEY_MESSAGE_INTEGRITY_CODE, data), []
    if auth.auth is not AuthClass.PUBKEY:
        raise AuthenticationFailed(f"{auth.auth.value} authentication is not available yet")
    key = _signing_key(auth, sa)
    cert_payloads = [Certificate(CertEncoding.X509_CERTIFICATE_SIGNATURE, der) for der in auth.certs]
    try:
        if sa.peer_hashes:
            hash_alg = preferred_hash(key, sa.peer_hashes)
            if hash_alg is not None:
                data = sign_auth(key, AuthMethod.DIGITAL_SIGNATURE, octets, hash_alg, rsa_pss=auth.rsa_pss)
                return Authentication(AuthMethod.DIGITAL_SIGNATURE, data), cert_payloads
        method = _classic_method(key)
        return Authentication(method, sign_auth(key, method, octets)), cert_payloads
    except UnsupportedAlgorithm as exc:
        raise AuthenticationFailed(f"cannot sign with our key: {exc}") from None


def _classic_method(key: SigningKey) -> AuthMethod:
    if isinstance(key, rsa.RSAPrivateKey):
        return AuthMethod.RSA_DIGITAL_SIGNATURE
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CLASSIC_EC:
        return _CLASSIC_EC[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise AuthenticationFailed("EdDSA needs RFC 7427 signatures, which the peer did not announce")
    raise AuthenticationFailed(f"no classic IKE signature method for {type(key).__name__}")


def verify_peer_auth(
    sa: IkeSa, auth: AuthConfig, msg: Message, id_payload: Identification, now: datetime
) -> certs.ValidatedChain | None:
    """Check the peer's AUTH payload in ``msg``; raise AuthenticationFailed naming the cause.
    Returns the validated certificate chain (None for a pre-shared key)."""
    assert sa.prf is not None
    payload = msg.find(Authentication)
    if payload is None:
        raise AuthenticationFailed("the peer sent no AUTH payload")
    if not method_fits(auth.auth, payload.method):
        raise AuthenticationFailed(
            f"peer authenticated with {payload.method.name}, but {auth.auth.value} is configured"
        )
    octets = signed_octets(sa, ours=False, id_payload=id_payload)
    if auth.auth is AuthClass.PSK:
        if not verify_psk_auth(sa.prf, _psk(sa), octets, payload.data):
            raise AuthenticationFailed(
                f"pre-shared key AUTH of {sa.remote_id} does not verify "
                f"(wrong PSK? check that both sides hold the same secret for {sa.remote_id})"
            )
        return None
    received = [
        c.data for c in msg.find_all(Certificate) if c.encoding is CertEncoding.X509_CERTIFICATE_SIGNATURE
    ]
    if not received:
        raise AuthenticationFailed("peer sent no X.509 certificate")
    peer_certs = [certs.load_certificate(der, source="peer CERT payload") for der in received]
    trust = certs.TrustStore([certs.load_certificate(der) for der in auth.cacerts])
    chain = trust.verify_chain(
        peer_certs[0], peer_certs[1:], now, purpose="server" if sa.initiator else "client"
    )
    ident = sa.remote_id
    assert ident.id_type is not None
    if not certs.identity_matches_certificate(ident.id_type, ident.data, chain.end_entity):
        raise AuthenticationFailed(
            f"peer identity {ident} is not confirmed by its certificate {certs.describe(chain.end_entity)}"
        )
    verify_auth(chain.public_key, payload.method, payload.data, octets, ANNOUNCED_HASHES)
    return chain


def id_payload_for(identity: Identity, ptype: PayloadType) -> Identification:
    assert identity.id_type is not None
    return Identification(ptype, identity.id_type, data=identity.data)
