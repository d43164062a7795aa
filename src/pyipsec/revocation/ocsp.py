"""OCSP (RFC 6960): building a request and verifying the response.

Theory of operation
-------------------
:func:`build_request` asks about one certificate: a CertID with SHA-1 hashes of the issuer's
name and key (what most responders expect, RFC 6960 §4.1.1 and RFC 5019 §2.1.1) and a random
nonce extension (§4.4.1) against replayed answers. It is POSTed as
``application/ocsp-request`` (Appendix A.1).

:func:`evaluate_response` accepts an answer only if (§3.2, §4.2.2.2):

1. it parses and its responseStatus is ``successful``;
2. it is signed by the CA that issued the certificate, or by a *delegated responder*: a
   certificate found in the response, named by its ResponderID, issued directly by that CA,
   valid now and carrying the extended key usage id-kp-OCSPSigning (we do not check the
   responder certificate's own revocation status, as id-pkix-ocsp-nocheck suggests);
3. one of its SingleResponses carries our CertID (serial, and the issuer name and key hashes
   under the hash algorithm that response uses);
4. its nonce equals ours if the responder echoed one — a different nonce is rejected, a missing
   nonce is accepted with a warning (responders that pre-sign answers, RFC 5019, send none);
5. thisUpdate is not in the future and nextUpdate, if present, not in the past (each with
   ``skew``).

Anything else raises :class:`OcspError` with a one-line reason. A valid ``unknown`` answer is
an :class:`OcspAnswer` with status UNKNOWN: the responder does not know the certificate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from pyipsec.errors import PyIpsecError
from pyipsec.revocation.verdict import CertStatus

__all__ = [
    "NONCE_SIZE",
    "OCSP_REQUEST_TYPE",
    "OcspAnswer",
    "OcspError",
    "build_request",
    "evaluate_response",
]

OCSP_REQUEST_TYPE: Final = "application/ocsp-request"
NONCE_SIZE: Final = 16
"""Octets of the request nonce (RFC 8954 asks for at least 1, at most 32; 16 is customary)."""

_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class OcspError(PyIpsecError):
    """An OCSP response that cannot be used; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """A verified answer about one certificate."""

    status: CertStatus
    this_update: datetime
    next_update: datetime | None
    revoked_at: datetime | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()


def build_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes) -> bytes:
    """A DER OCSPRequest for ``cert`` (SHA-1 CertID) with ``nonce``."""
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 - the CertID hash responders expect
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return request.public_bytes(serialization.Encoding.DER)


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (what CertID and ResponderID hash)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING }: the last TLV, minus the
    # unused-bits octet.
    return _last_bit_string(spki)


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _last_bit_string(spki: bytes) -> bytes:
    _, pos = _der_length(spki, 1)  # inside the outer SEQUENCE
    alg_len, alg_body = _der_length(spki, pos + 1)
    pos = alg_body + alg_len
    bits_len, bits_body = _der_length(spki, pos + 1)
    return spki[bits_body + 1 : bits_body + bits_len]


def _hash(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).digest()


def _verify_signature(
    key: object,
    signature: bytes,
    data: bytes,
    algorithm: hashes.HashAlgorithm | None,
    oid: x509.ObjectIdentifier,
) -> None:
    if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        if oid == SignatureAlgorithmOID.RSASSA_PSS:
            pad: padding.AsymmetricPadding = padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO)
        else:
            pad = padding.PKCS1v15()
        key.verify(signature, data, pad, algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        raise OcspError(f"unsupported signature key {type(key).__name__}")


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    return _key_bits(a) == _key_bits(b)


def _names_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == cert.subject
    key_hash = response.responder_key_hash
    return key_hash is not None and key_hash == _hash("sha1", _key_bits(cert))


def _delegation_problem(responder: x509.Certificate, issuer: x509.Certificate, now: datetime) -> str | None:
    name = responder.subject.rfc4514_string()
    if responder.issuer != issuer.subject:
        return f"the responder certificate {name} is not issued by {issuer.subject.rfc4514_string()}"
    try:
        responder.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return f"the responder certificate {name} is not signed by {issuer.subject.rfc4514_string()}"
    try:
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        return f"the responder certificate {name} lacks the extended key usage OCSPSigning"
    if not responder.not_valid_before_utc <= now <= responder.not_valid_after_utc:
        return f"the responder certificate {name} is not valid now"
    return None


def _check_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> None:
    """Raise unless the response is signed by ``issuer`` or a responder it delegated to."""
    candidates = [issuer, *response.certificates]
    named = [c for c in candidates if _names_responder(response, c)]
    if not named:
        raise OcspError(
            "signed by a responder that is neither the issuing CA nor a certificate in the response"
        )
    problems: list[str] = []
    for signer in named:
        if not (signer.subject == issuer.subject and _same_key(signer, issuer)):
            problem = _delegation_problem(signer, issuer, now)
            if problem is not None:
                problems.append(problem)
                continue
        try:
            _verify_signature(
                signer.public_key(),
                response.signature,
                response.tbs_response_bytes,
                response.signature_hash_algorithm,
                response.signature_algorithm_oid,
            )
        except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
            problems.append(f"bad signature by {signer.subject.rfc4514_string()}")
            continue
        return
    raise OcspError(problems[0])


def _single_response(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    name_der = issuer.subject.public_bytes()
    key_bits = _key_bits(issuer)
    for single in response.responses:
        if single.serial_number != cert.serial_number:
            continue
        hash_name = single.hash_algorithm.name
        if hash_name not in _HASHES:
            continue
        if single.issuer_name_hash == _hash(hash_name, name_der) and single.issuer_key_hash == _hash(
            hash_name, key_bits
        ):
            return single
    raise OcspError(f"the response does not carry the CertID of serial {cert.serial_number:#x}")


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes) -> tuple[str, ...]:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return ("the OCSP responder did not echo the request nonce (replay protection missing)",)
    if echoed != nonce:
        raise OcspError("the response nonce does not match the request (a replayed response?)")
    return ()


def evaluate_response(
    data: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes,
    now: datetime,
    skew: timedelta,
) -> OcspAnswer:
    """Verify a DER OCSPResponse about ``cert`` (issued by ``issuer``); raise :class:`OcspError`."""
    try:
        response = ocsp.load_der_ocsp_response(data)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise OcspError(f"the responder answered {response.response_status.name.lower()}")
        _check_signer(response, issuer, now)
        single = _single_response(response, cert, issuer)
        warnings = _check_nonce(response, nonce)
        this_update, next_update = single.this_update_utc, single.next_update_utc
        if this_update > now + skew:
            raise OcspError(f"thisUpdate {this_update:%Y-%m-%d %H:%M:%S} UTC is in the future")
        if next_update is not None and now > next_update + skew:
            raise OcspError(f"the response expired: nextUpdate was {next_update:%Y-%m-%d %H:%M:%S} UTC")
        status = single.certificate_status
        if status is ocsp.OCSPCertStatus.GOOD:
            return OcspAnswer(CertStatus.GOOD, this_update, next_update, warnings=warnings)
        if status is ocsp.OCSPCertStatus.REVOKED:
            reason = single.revocation_reason
            return OcspAnswer(
                CertStatus.REVOKED,
                this_update,
                next_update,
                revoked_at=single.revocation_time_utc,
                reason=reason.value if reason is not None else None,
                warnings=warnings,
            )
        return OcspAnswer(CertStatus.UNKNOWN, this_update, next_update, warnings=warnings)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        text = str(exc).strip().splitlines()
        raise OcspError(f"malformed OCSP response ({text[0] if text else type(exc).__name__})") from None
