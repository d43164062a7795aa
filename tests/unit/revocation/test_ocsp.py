"""OCSP responses (RFC 6960 §3.2, §4.2.2.2, §4.4.1) verified against responses built here."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyipsec.revocation import CertStatus, RevocationChecker, RevocationPolicy, RevocationVerdict
from pyipsec.revocation.ocsp import OcspAnswer, OcspError, build_request, evaluate_response
from tests.unit.revocation._pki import (
    CRL_URI,
    OCSP_URI,
    T0,
    Clock,
    FakeFetcher,
    make_ca,
    make_crl,
    make_leaf,
    make_response,
    nonce_of,
)

CA = make_ca()
OTHER = make_ca("Other CA")
LEAF = make_leaf(CA, "alice", ocsp_uris=[OCSP_URI])
SIBLING = make_leaf(CA, "bob")
RESPONDER = make_leaf(CA, "OCSP responder", ekus=(ExtendedKeyUsageOID.OCSP_SIGNING,))
NO_EKU_RESPONDER = make_leaf(CA, "not a responder", ekus=(ExtendedKeyUsageOID.CLIENT_AUTH,))
FOREIGN_RESPONDER = make_leaf(OTHER, "foreign responder", ekus=(ExtendedKeyUsageOID.OCSP_SIGNING,))
NONCE = bytes(range(16))
SKEW = timedelta(minutes=5)


def _evaluate(data: bytes, *, now: datetime = T0) -> OcspAnswer:
    return evaluate_response(data, LEAF.cert, CA.cert, nonce=NONCE, now=now, skew=SKEW)


def test_request_has_sha1_certid_and_nonce() -> None:
    der = build_request(LEAF.cert, CA.cert, NONCE)
    request = ocsp.load_der_ocsp_request(der)
    assert request.serial_number == LEAF.cert.serial_number
    assert request.hash_algorithm.name == "sha1"
    assert nonce_of(der) == NONCE


def test_ca_signed_good() -> None:
    answer = _evaluate(make_response(LEAF, CA, nonce=NONCE))
    assert answer.status is CertStatus.GOOD and answer.warnings == ()
    assert answer.next_update == T0 + timedelta(hours=1)


def test_ca_signed_revoked_with_reason() -> None:
    answer = _evaluate(
        make_response(LEAF, CA, ocsp.OCSPCertStatus.REVOKED, nonce=NONCE, reason=x509.ReasonFlags.superseded)
    )
    assert answer.status is CertStatus.REVOKED and answer.reason == "superseded"
    assert answer.revoked_at == T0 - timedelta(hours=2)


def test_unknown_answer() -> None:
    assert (
        _evaluate(make_response(LEAF, CA, ocsp.OCSPCertStatus.UNKNOWN, nonce=NONCE)).status
        is CertStatus.UNKNOWN
    )


def test_delegated_responder_with_eku() -> None:
    data = make_response(LEAF, CA, nonce=NONCE, signer=RESPONDER, include_signer=True)
    assert _evaluate(data).status is CertStatus.GOOD


def test_delegated_responder_without_eku() -> None:
    data = make_response(LEAF, CA, nonce=NONCE, signer=NO_EKU_RESPONDER, include_signer=True)
    with pytest.raises(OcspError, match="OCSPSigning"):
        _evaluate(data)


def test_responder_of_another_ca() -> None:
    data = make_response(LEAF, CA, nonce=NONCE, signer=FOREIGN_RESPONDER, include_signer=True)
    with pytest.raises(OcspError, match="not issued by CN=Test CA"):
        _evaluate(data)


def test_responder_certificate_missing_from_response() -> None:
    data = make_response(LEAF, CA, nonce=NONCE, signer=RESPONDER, include_signer=False)
    with pytest.raises(OcspError, match="neither the issuing CA"):
        _evaluate(data)


def test_signed_by_a_stranger_claiming_the_ca_name() -> None:
    impostor = make_ca("Test CA")  # same name, different key
    data = make_response(LEAF, CA, nonce=NONCE, signer=impostor, include_signer=True)
    with pytest.raises(OcspError):
        _evaluate(data)


def test_wrong_certid() -> None:
    data = make_response(LEAF, CA, nonce=NONCE, cert_for_id=SIBLING.cert)
    with pytest.raises(OcspError, match="CertID"):
        _evaluate(data)


def test_wrong_nonce() -> None:
    with pytest.raises(OcspError, match="nonce"):
        _evaluate(make_response(LEAF, CA, nonce=b"\xff" * 16))


def test_missing_nonce_is_accepted_with_a_warning() -> None:
    answer = _evaluate(make_response(LEAF, CA))
    assert answer.status is CertStatus.GOOD
    assert any("nonce" in w for w in answer.warnings)


def test_expired_next_update() -> None:
    data = make_response(
        LEAF, CA, nonce=NONCE, this_update=T0 - timedelta(hours=3), next_update=T0 - timedelta(hours=1)
    )
    with pytest.raises(OcspError, match="expired"):
        _evaluate(data)
    assert _evaluate(data, now=T0 - timedelta(hours=1) + SKEW).status is CertStatus.GOOD


def test_future_this_update() -> None:
    data = make_response(
        LEAF, CA, nonce=NONCE, this_update=T0 + timedelta(hours=1), next_update=T0 + timedelta(hours=2)
    )
    with pytest.raises(OcspError, match="future"):
        _evaluate(data)


@pytest.mark.parametrize(
    "status",
    [
        ocsp.OCSPResponseStatus.TRY_LATER,
        ocsp.OCSPResponseStatus.UNAUTHORIZED,
        ocsp.OCSPResponseStatus.INTERNAL_ERROR,
    ],
)
def test_unsuccessful_status(status: ocsp.OCSPResponseStatus) -> None:
    data = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
    with pytest.raises(OcspError, match=status.name.lower()):
        _evaluate(data)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x03\x0a\x01\x00"])
def test_garbage(data: bytes) -> None:
    with pytest.raises(OcspError):
        _evaluate(data)


# --- through the checker -------------------------------------------------------------------


def _verdict(checker: RevocationChecker, policy: str = "strict") -> RevocationVerdict:
    return asyncio.run(checker.check([LEAF.der], CA.der, RevocationPolicy(policy)))


def test_checker_sends_a_fresh_nonce_and_reports_mismatch() -> None:
    fetcher = FakeFetcher()
    nonces: list[bytes | None] = []

    def answer(nonce: bytes | None) -> bytes:
        nonces.append(nonce)
        return make_response(LEAF, CA, nonce=b"\x00" * 16)

    fetcher.ocsp(OCSP_URI, answer)
    verdict = _verdict(RevocationChecker(fetcher=fetcher, now=Clock()))
    assert not verdict.ok and "nonce does not match" in verdict.reason
    assert nonces and nonces[0] is not None and len(nonces[0]) == 16


def test_checker_injected_rng_makes_the_nonce() -> None:
    fetcher = FakeFetcher()
    fetcher.ocsp(OCSP_URI, lambda nonce: make_response(LEAF, CA, nonce=nonce))
    checker = RevocationChecker(fetcher=fetcher, now=Clock(), rng=lambda n: b"\x42" * n)
    assert _verdict(checker).ok


def test_missing_nonce_warning_reaches_the_verdict() -> None:
    fetcher = FakeFetcher()
    fetcher.ocsp(OCSP_URI, lambda _nonce: make_response(LEAF, CA))
    verdict = _verdict(RevocationChecker(fetcher=fetcher, now=Clock()))
    assert verdict.ok and any("nonce" in w and OCSP_URI in w for w in verdict.warnings)


def test_ocsp_cached_until_next_update() -> None:
    fetcher = FakeFetcher()
    fetcher.ocsp(
        OCSP_URI, lambda nonce: make_response(LEAF, CA, nonce=nonce, next_update=T0 + timedelta(minutes=30))
    )
    clock = Clock()
    checker = RevocationChecker(fetcher=fetcher, now=clock)
    assert _verdict(checker).ok
    fetcher.ocsp(OCSP_URI, lambda nonce: make_response(LEAF, CA, ocsp.OCSPCertStatus.REVOKED, nonce=nonce))
    clock.now = T0 + timedelta(minutes=29)
    assert _verdict(checker).ok and len(fetcher.calls) == 1
    clock.now = T0 + timedelta(minutes=31)
    assert _verdict(checker).status is CertStatus.REVOKED and len(fetcher.calls) == 2
    checker.clear_cache()
    assert _verdict(checker).status is CertStatus.REVOKED and len(fetcher.calls) == 3


def test_without_next_update_cached_for_the_default_lifetime() -> None:
    fetcher = FakeFetcher()
    fetcher.ocsp(OCSP_URI, lambda nonce: make_response(LEAF, CA, nonce=nonce, next_update=None))
    clock = Clock()
    checker = RevocationChecker(fetcher=fetcher, now=clock, ocsp_lifetime=timedelta(minutes=2))
    assert _verdict(checker).ok
    clock.now = T0 + timedelta(minutes=1)
    assert _verdict(checker).ok and len(fetcher.calls) == 1
    clock.now = T0 + timedelta(minutes=3)
    assert _verdict(checker).ok and len(fetcher.calls) == 2


def test_failures_are_not_cached() -> None:
    fetcher = FakeFetcher()
    checker = RevocationChecker(fetcher=fetcher, now=Clock())
    assert not _verdict(checker).ok
    fetcher.ocsp(OCSP_URI, lambda nonce: make_response(LEAF, CA, nonce=nonce))
    assert _verdict(checker).ok


def test_ocsp_unknown_falls_back_to_crl() -> None:
    leaf = make_leaf(CA, "erin", ocsp_uris=[OCSP_URI], crl_uris=[CRL_URI])
    fetcher = FakeFetcher()
    fetcher.ocsp(OCSP_URI, lambda nonce: make_response(leaf, CA, ocsp.OCSPCertStatus.UNKNOWN, nonce=nonce))
    fetcher.serve(CRL_URI, make_crl(CA, [(leaf.cert.serial_number, None)]))
    verdict = asyncio.run(
        RevocationChecker(fetcher=fetcher, now=Clock()).check([leaf.der], CA.der, RevocationPolicy.RELAXED)
    )
    assert not verdict.ok and verdict.status is CertStatus.REVOKED and verdict.source == f"CRL {CRL_URI}"
    assert verdict.reason.endswith(
        f"revoked at {(T0 - timedelta(hours=2)):%Y-%m-%d %H:%M:%S} UTC per CRL {CRL_URI}"
    )
