"""AUTH payload signatures: RSA, ECDSA and EdDSA (RFC 7296 §3.8, RFC 4754, RFC 7427, RFC 8420).

Theory of operation: the IKE layer computes the octets to sign (RFC 7296 §2.15) and hands
them here with the authentication method. Three wire forms exist:

- method 1, *RSA Digital Signature*: RSASSA-PKCS1-v1_5 with SHA-1 (RFC 7296 §3.8; legacy);
- methods 9/10/11, *ECDSA with SHA-256 on P-256 / SHA-384 on P-384 / SHA-512 on P-521*
  (RFC 4754 §3, §7): the signature is the fixed-length concatenation r ‖ s;
- method 14, *Digital Signature* (RFC 7427 §3): one octet giving the length of a DER
  AlgorithmIdentifier, that AlgorithmIdentifier, then the signature as the algorithm
  defines it — PKCS#1 v1.5 or RSASSA-PSS with SHA-256/384/512, ECDSA (DER
  ``Ecdsa-Sig-Value``), or Ed25519/Ed448 with the "identity" hash (RFC 8420).

We send the AlgorithmIdentifiers of RFC 7427 Appendix A as constant blobs. For RSASSA-PSS
we send the DER form (trailerField left at its default, as in the RFC's erratum and as
strongSwan and libreswan send it) with salt length = hash length; on receipt the PSS
parameters are parsed, so the RFC's original A.4.3 encoding, which spells the default
trailerField out, verifies too. Every failure to verify — malformed data, an algorithm that
does not fit the key, a hash the caller did not announce, a bad signature — raises
:class:`~pyipsec.errors.AuthenticationFailed` with the reason.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pyipsec.errors import AuthenticationFailed, UnsupportedAlgorithm
from pyipsec.iana.ikev2 import AuthMethod, HashAlgorithm

__all__ = [
    "ALGID_ECDSA_SHA256",
    "ALGID_ECDSA_SHA384",
    "ALGID_ECDSA_SHA512",
    "ALGID_ED448",
    "ALGID_ED25519",
    "ALGID_RSA_PSS_SHA256",
    "ALGID_RSA_PSS_SHA384",
    "ALGID_RSA_PSS_SHA512",
    "ALGID_SHA256_WITH_RSA",
    "ALGID_SHA384_WITH_RSA",
    "ALGID_SHA512_WITH_RSA",
    "SIGNATURE_HASHES",
    "SignatureAlgorithm",
    "SignatureScheme",
    "SigningKey",
    "VerifyingKey",
    "parse_algorithm_identifier",
    "preferred_hash",
    "sign_auth",
    "verify_auth",
]

SigningKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
VerifyingKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

# --- RFC 7427 Appendix A AlgorithmIdentifiers (DER) ----------------------------------------
ALGID_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")  # A.1.2
ALGID_SHA384_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010c0500")  # A.1.3
ALGID_SHA512_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010d0500")  # A.1.4
ALGID_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")  # A.3.2
ALGID_ECDSA_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")  # A.3.3
ALGID_ECDSA_SHA512 = bytes.fromhex("300a06082a8648ce3d040304")  # A.3.4


# A.4.3 as corrected by the RFC's erratum (DER: the default trailerField is left out):
# RSASSA-PSS { [0] sha-2 hash, [1] MGF1 with that hash, [2] saltLength = hash length }.
ALGID_RSA_PSS_SHA256 = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402010500"
    "a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120"
)
ALGID_RSA_PSS_SHA384 = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402020500"
    "a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130"
)
ALGID_RSA_PSS_SHA512 = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402030500"
    "a11c301a06092a864886f70d010108300d06096086480165030402030500a203020140"
)
ALGID_ED25519 = bytes.fromhex("300506032b6570")  # RFC 8420 §2 (id-Ed25519, RFC 8410)
ALGID_ED448 = bytes.fromhex("300506032b6571")

# Object identifiers (content octets only).
_OID_RSA_PKCS1 = {
    bytes.fromhex("2a864886f70d01010b"): HashAlgorithm.SHA2_256,
    bytes.fromhex("2a864886f70d01010c"): HashAlgorithm.SHA2_384,
    bytes.fromhex("2a864886f70d01010d"): HashAlgorithm.SHA2_512,
}
_OID_ECDSA = {
    bytes.fromhex("2a8648ce3d040302"): HashAlgorithm.SHA2_256,
    bytes.fromhex("2a8648ce3d040303"): HashAlgorithm.SHA2_384,
    bytes.fromhex("2a8648ce3d040304"): HashAlgorithm.SHA2_512,
}
_OID_RSA_PSS = bytes.fromhex("2a864886f70d01010a")
_OID_MGF1 = bytes.fromhex("2a864886f70d010108")
_OID_HASH = {
    bytes.fromhex("2b0e03021a"): HashAlgorithm.SHA1,
    bytes.fromhex("608648016503040201"): HashAlgorithm.SHA2_256,
    bytes.fromhex("608648016503040202"): HashAlgorithm.SHA2_384,
    bytes.fromhex("608648016503040203"): HashAlgorithm.SHA2_512,
}
_OID_ED25519 = bytes.fromhex("2b6570")
_OID_ED448 = bytes.fromhex("2b6571")

SIGNATURE_HASHES: tuple[HashAlgorithm, ...] = (
    HashAlgorithm.SHA2_256,
    HashAlgorithm.SHA2_384,
    HashAlgorithm.SHA2_512,
    HashAlgorithm.IDENTITY,
)
"""What we announce in SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) and accept by default."""

_HASHES: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.SHA1: hashes.SHA1,
    HashAlgorithm.SHA2_256: hashes.SHA256,
    HashAlgorithm.SHA2_384: hashes.SHA384,
    HashAlgorithm.SHA2_512: hashes.SHA512,
}
_HASH_LEN = {
    HashAlgorithm.SHA1: 20,
    HashAlgorithm.SHA2_256: 32,
    HashAlgorithm.SHA2_384: 48,
    HashAlgorithm.SHA2_512: 64,
}

# RFC 4754 §3: method → (curve name, hash, length of r and of s).
_RFC4754: dict[AuthMethod, tuple[str, HashAlgorithm, int]] = {
    AuthMethod.ECDSA_SHA_256_P256: ("secp256r1", HashAlgorithm.SHA2_256, 32),
    AuthMethod.ECDSA_SHA_384_P384: ("secp384r1", HashAlgorithm.SHA2_384, 48),
    AuthMethod.ECDSA_SHA_512_P521: ("secp521r1", HashAlgorithm.SHA2_512, 66),
}


SignatureScheme = Literal["pkcs1", "pss", "ecdsa", "ed25519", "ed448"]


@dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    """What an RFC 7427 AlgorithmIdentifier names: the scheme, its hash and (PSS) salt length."""

    scheme: SignatureScheme
    hash_alg: HashAlgorithm
    salt_len: int | None = None


# --- a minimal DER reader, enough for AlgorithmIdentifiers ---------------------------------


class _DerError(ValueError):
    pass


def _der_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, contents, next position) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise _DerError("truncated DER element")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 2 or pos + n > len(data):
            raise _DerError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise _DerError("truncated DER contents")
    return tag, data[pos : pos + length], pos + length


def _der_elements(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        tag, value, pos = _der_tlv(data, pos)
        out.append((tag, value))
    return out


def _algid(data: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """An AlgorithmIdentifier's OID and its parameter elements (whole input must be consumed)."""
    tag, body, end = _der_tlv(data, 0)
    if end != len(data):
        raise _DerError("trailing bytes after the AlgorithmIdentifier")
    return _algid_parts(tag, body)


def _algid_parts(tag: int, body: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    if tag != 0x30:
        raise _DerError("AlgorithmIdentifier is not a SEQUENCE")
    elements = _der_elements(body)
    if not elements or elements[0][0] != 0x06:
        raise _DerError("AlgorithmIdentifier without an OID")
    return elements[0][1], elements[1:]


def _der_int(value: bytes) -> int:
    if not value or (value[0] & 0x80):
        raise _DerError("bad INTEGER")
    return int.from_bytes(value, "big")


def _hash_algid(tag: int, body: bytes) -> HashAlgorithm:
    oid, params = _algid_parts(tag, body)
    if oid not in _OID_HASH or params not in ([], [(0x05, b"")]):
        raise _DerError("unknown hash AlgorithmIdentifier")
    return _OID_HASH[oid]


def _one(value: bytes) -> tuple[int, bytes]:
    elements = _der_elements(value)
    if len(elements) != 1:
        raise _DerError("expected exactly one element in an explicit tag")
    return elements[0]


def _pss_params(params: list[tuple[int, bytes]]) -> SignatureAlgorithm:
    # RFC 8017 A.2.3 RSASSA-PSS-params; absent fields take their defaults (SHA-1, MGF1-SHA-1, 20, 1).
    if not params:
        fields: list[tuple[int, bytes]] = []
    elif len(params) == 1 and params[0][0] == 0x30:
        fields = _der_elements(params[0][1])
    else:
        raise _DerError("RSASSA-PSS parameters are not a SEQUENCE")
    hash_alg, mgf_hash, salt_len, trailer = HashAlgorithm.SHA1, HashAlgorithm.SHA1, 20, 1
    last = -1
    for tag, value in fields:
        index = tag - 0xA0
        if not 0 <= index <= 3 or index <= last:
            raise _DerError("unexpected field in RSASSA-PSS parameters")
        last = index
        inner_tag, inner = _one(value)
        if index == 0:
            hash_alg = _hash_algid(inner_tag, inner)
        elif index == 1:
            oid, mgf_params = _algid_parts(inner_tag, inner)
            if oid != _OID_MGF1 or len(mgf_params) != 1:
                raise _DerError("mask generation function is not MGF1")
            mgf_hash = _hash_algid(*mgf_params[0])
        else:
            if inner_tag != 0x02:
                raise _DerError("bad INTEGER field in RSASSA-PSS parameters")
            if index == 2:
                salt_len = _der_int(inner)
            else:
                trailer = _der_int(inner)
    if mgf_hash != hash_alg or trailer != 1:
        raise _DerError("unsupported RSASSA-PSS parameters (MGF1 hash differs, or trailerField is not 1)")
    return SignatureAlgorithm("pss", hash_alg, salt_len)


def parse_algorithm_identifier(data: bytes) -> SignatureAlgorithm:
    """The signature algorithm an RFC 7427 AlgorithmIdentifier names; ValueError if unsupported."""
    oid, params = _algid(data)
    if oid in _OID_RSA_PKCS1:
        if params not in ([], [(0x05, b"")]):
            raise _DerError("sha*WithRSAEncryption parameters must be NULL")
        return SignatureAlgorithm("pkcs1", _OID_RSA_PKCS1[oid])
    if oid in _OID_ECDSA:
        if params:
            raise _DerError("ecdsa-with-SHA* takes no parameters")
        return SignatureAlgorithm("ecdsa", _OID_ECDSA[oid])
    if oid == _OID_RSA_PSS:
        return _pss_params(params)
    if oid in (_OID_ED25519, _OID_ED448):
        if params:
            raise _DerError("EdDSA takes no parameters")
        return SignatureAlgorithm("ed25519" if oid == _OID_ED25519 else "ed448", HashAlgorithm.IDENTITY)
    raise _DerError(f"unsupported signature algorithm OID {oid.hex()}")


# --- signing --------------------------------------------------------------------------------


def _hash(alg: HashAlgorithm) -> hashes.HashAlgorithm:
    try:
        return _HASHES[alg]()
    except KeyError:
        raise UnsupportedAlgorithm(f"hash {alg!r} is not usable for signatures") from None


def preferred_hash(
    key: SigningKey | VerifyingKey, peer_hashes: Collection[HashAlgorithm]
) -> HashAlgorithm | None:
    """The hash to use with ``key`` for method 14 given the peer's SIGNATURE_HASH_ALGORITHMS.

    EdDSA needs IDENTITY; ECDSA prefers the hash matching its curve; RSA prefers SHA-256.
    None if nothing fits.
    """
    eddsa = (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey, ed448.Ed448PrivateKey, ed448.Ed448PublicKey)
    if isinstance(key, eddsa):
        order: tuple[HashAlgorithm, ...] = (HashAlgorithm.IDENTITY,)
    elif isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        first = {384: HashAlgorithm.SHA2_384, 521: HashAlgorithm.SHA2_512}.get(
            key.curve.key_size, HashAlgorithm.SHA2_256
        )
        order = (first, *(h for h in SIGNATURE_HASHES[:3] if h != first))
    else:
        order = SIGNATURE_HASHES[:3]
    return next((h for h in order if h in peer_hashes), None)


_PKCS1_ALGIDS = {
    HashAlgorithm.SHA2_256: ALGID_SHA256_WITH_RSA,
    HashAlgorithm.SHA2_384: ALGID_SHA384_WITH_RSA,
    HashAlgorithm.SHA2_512: ALGID_SHA512_WITH_RSA,
}
_PSS_ALGIDS = {
    HashAlgorithm.SHA2_256: ALGID_RSA_PSS_SHA256,
    HashAlgorithm.SHA2_384: ALGID_RSA_PSS_SHA384,
    HashAlgorithm.SHA2_512: ALGID_RSA_PSS_SHA512,
}
_ECDSA_ALGIDS = {
    HashAlgorithm.SHA2_256: ALGID_ECDSA_SHA256,
    HashAlgorithm.SHA2_384: ALGID_ECDSA_SHA384,
    HashAlgorithm.SHA2_512: ALGID_ECDSA_SHA512,
}


def _sign_rfc7427(key: SigningKey, octets: bytes, hash_alg: HashAlgorithm | None, rsa_pss: bool) -> bytes:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        if hash_alg not in (None, HashAlgorithm.IDENTITY):
            raise UnsupportedAlgorithm(f"EdDSA signs with the identity hash, not {hash_alg!r} (RFC 8420)")
        algid = ALGID_ED25519 if isinstance(key, ed25519.Ed25519PrivateKey) else ALGID_ED448
        sig = key.sign(octets)
    else:
        if hash_alg is None:
            hash_alg = preferred_hash(key, SIGNATURE_HASHES)
        table = (
            _ECDSA_ALGIDS
            if isinstance(key, ec.EllipticCurvePrivateKey)
            else _PSS_ALGIDS
            if rsa_pss
            else _PKCS1_ALGIDS
        )
        if hash_alg not in table:
            raise UnsupportedAlgorithm(f"hash {hash_alg!r} is not supported with this key in method 14")
        algid = table[hash_alg]
        if isinstance(key, ec.EllipticCurvePrivateKey):
            sig = key.sign(octets, ec.ECDSA(_hash(hash_alg)))
        elif rsa_pss:
            pss = padding.PSS(mgf=padding.MGF1(_hash(hash_alg)), salt_length=_HASH_LEN[hash_alg])
            sig = key.sign(octets, pss, _hash(hash_alg))
        else:
            sig = key.sign(octets, padding.PKCS1v15(), _hash(hash_alg))
    return bytes([len(algid)]) + algid + sig


def sign_auth(
    private_key: SigningKey,
    method: AuthMethod,
    octets: bytes,
    hash_alg: HashAlgorithm | None = None,
    *,
    rsa_pss: bool = False,
) -> bytes:
    """The Authentication Data for ``method`` over ``octets`` (RFC 7296 §2.15).

    ``hash_alg`` matters for method 14 only (None: :func:`preferred_hash` of our own list;
    EdDSA uses IDENTITY); ``rsa_pss`` picks RSASSA-PSS over PKCS#1 v1.5 there.
    Raises UnsupportedAlgorithm if the key, method and hash do not go together.
    """
    if method == AuthMethod.DIGITAL_SIGNATURE:
        return _sign_rfc7427(private_key, octets, hash_alg, rsa_pss)
    if method == AuthMethod.RSA_DIGITAL_SIGNATURE:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise UnsupportedAlgorithm("method 1 (RSA Digital Signature) needs an RSA key")
        if hash_alg not in (None, HashAlgorithm.SHA1):
            raise UnsupportedAlgorithm("method 1 (RSA Digital Signature) signs with SHA-1 only")
        return private_key.sign(octets, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - RFC 7296 §3.8
    if method in _RFC4754:
        curve, fixed_hash, n = _RFC4754[method]
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != curve:
            raise UnsupportedAlgorithm(f"method {int(method)} ({method.name}) needs a {curve} key")
        if hash_alg not in (None, fixed_hash):
            raise UnsupportedAlgorithm(
                f"method {int(method)} ({method.name}) fixes the hash to {fixed_hash.name}"
            )
        r, s = decode_dss_signature(private_key.sign(octets, ec.ECDSA(_hash(fixed_hash))))
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")
    raise UnsupportedAlgorithm(f"authentication method {method!r} is not a signature method")


# --- verification ---------------------------------------------------------------------------


def _verify_rfc7427(
    key: VerifyingKey, auth_data: bytes, octets: bytes, acceptable_hashes: Collection[HashAlgorithm]
) -> None:
    if not auth_data or len(auth_data) < 1 + auth_data[0]:
        raise AuthenticationFailed("method 14 AUTH data is shorter than its AlgorithmIdentifier length")
    algid, sig = auth_data[1 : 1 + auth_data[0]], auth_data[1 + auth_data[0] :]
    try:
        alg = parse_algorithm_identifier(algid)
    except ValueError as exc:
        raise AuthenticationFailed(f"method 14 AlgorithmIdentifier not accepted: {exc}") from None
    if alg.hash_alg not in acceptable_hashes:
        raise AuthenticationFailed(f"peer signed with hash {alg.hash_alg.name}, which we did not announce")
    try:
        if (alg.scheme == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey)) or (
            alg.scheme == "ed448" and isinstance(key, ed448.Ed448PublicKey)
        ):
            key.verify(sig, octets)
        elif alg.scheme == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, octets, ec.ECDSA(_hash(alg.hash_alg)))
        elif alg.scheme == "pkcs1" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, octets, padding.PKCS1v15(), _hash(alg.hash_alg))
        elif alg.scheme == "pss" and isinstance(key, rsa.RSAPublicKey):
            assert alg.salt_len is not None
            pss = padding.PSS(mgf=padding.MGF1(_hash(alg.hash_alg)), salt_length=alg.salt_len)
            key.verify(sig, octets, pss, _hash(alg.hash_alg))
        else:
            raise AuthenticationFailed(
                f"signature algorithm {alg.scheme} does not fit the peer's {type(key).__name__}"
            )
    except (InvalidSignature, ValueError):
        raise AuthenticationFailed(f"{alg.scheme}/{alg.hash_alg.name} signature does not verify") from None
    except UnsupportedAlgorithm as exc:
        raise AuthenticationFailed(str(exc)) from None


def verify_auth(
    public_key: VerifyingKey,
    method: AuthMethod,
    auth_data: bytes,
    octets: bytes,
    acceptable_hashes: Collection[HashAlgorithm] = SIGNATURE_HASHES,
) -> None:
    """Check the peer's Authentication Data; raise AuthenticationFailed saying why not.

    ``acceptable_hashes`` limits method 14 to the hashes we announced (RFC 7427 §4); the
    older methods fix their hash themselves.
    """
    if method == AuthMethod.DIGITAL_SIGNATURE:
        _verify_rfc7427(public_key, auth_data, octets, acceptable_hashes)
        return
    if method == AuthMethod.RSA_DIGITAL_SIGNATURE:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise AuthenticationFailed("method 1 (RSA Digital Signature) but the peer's key is not RSA")
        try:
            public_key.verify(auth_data, octets, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
        except (InvalidSignature, ValueError):
            raise AuthenticationFailed("RSA (method 1) signature does not verify") from None
        return
    if method in _RFC4754:
        curve, fixed_hash, n = _RFC4754[method]
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != curve:
            raise AuthenticationFailed(
                f"method {int(method)} ({method.name}) but the peer's key is not {curve}"
            )
        if len(auth_data) != 2 * n:
            raise AuthenticationFailed(
                f"method {int(method)} signature is {len(auth_data)} octets, not {2 * n}"
            )
        der = encode_dss_signature(int.from_bytes(auth_data[:n], "big"), int.from_bytes(auth_data[n:], "big"))
        try:
            public_key.verify(der, octets, ec.ECDSA(_hash(fixed_hash)))
        except (InvalidSignature, ValueError):
            raise AuthenticationFailed(f"ECDSA (method {int(method)}) signature does not verify") from None
        return
    raise AuthenticationFailed(f"authentication method {method!r} is not a signature method we support")
