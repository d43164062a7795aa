"""The policy matrix: strict / ifuri / relaxed × good / revoked / unknown / unreachable / no URI.

Semantics of swanctl's ``remote.revocation`` (see pyipsec.revocation.verdict): strict wants every
certificate known good; ifuri fails on revoked, or when a URI exists but gave no status; relaxed
fails only on revoked.
"""

from __future__ import annotations

import asyncio

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from pyipsec.revocation import CertCheck, CertStatus, RevocationChecker, RevocationPolicy, decide
from tests.unit.revocation._pki import OCSP_URI, Clock, FakeFetcher, make_ca, make_leaf, make_response

CA = make_ca()
WITH_URI = make_leaf(CA, "alice", ocsp_uris=[OCSP_URI])
NO_URI = make_leaf(CA, "bob")

STRICT, IFURI, RELAXED = RevocationPolicy.STRICT, RevocationPolicy.IFURI, RevocationPolicy.RELAXED

MATRIX = {
    # case: (strict, ifuri, relaxed) -> ok?
    "good": (True, True, True),
    "revoked": (False, False, False),
    "unknown": (False, False, True),
    "unreachable": (False, False, True),
    "no-uri": (False, True, True),
}


def _checker(case: str) -> tuple[RevocationChecker, bytes]:
    fetcher = FakeFetcher()
    status = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }.get(case)
    if status is not None:
        fetcher.ocsp(
            OCSP_URI,
            lambda nonce: make_response(
                WITH_URI, CA, status, nonce=nonce, reason=x509.ReasonFlags.key_compromise
            ),
        )
    leaf = NO_URI if case == "no-uri" else WITH_URI
    return RevocationChecker(fetcher=fetcher, now=Clock()), leaf.der


@pytest.mark.parametrize("case", list(MATRIX))
@pytest.mark.parametrize("policy", [STRICT, IFURI, RELAXED])
def test_policy_matrix(case: str, policy: RevocationPolicy) -> None:
    checker, leaf = _checker(case)
    verdict = asyncio.run(checker.check([leaf], CA.der, policy))
    expected_ok = MATRIX[case][[STRICT, IFURI, RELAXED].index(policy)]
    assert verdict.ok is expected_ok, verdict.reason
    expected_status = {"good": CertStatus.GOOD, "revoked": CertStatus.REVOKED}.get(case, CertStatus.UNKNOWN)
    assert verdict.status is expected_status
    cert = x509.load_der_x509_certificate(leaf)
    assert verdict.serial == cert.serial_number
    assert verdict.subject == cert.subject.rfc4514_string()
    assert f"{cert.serial_number:#x}" in verdict.reason
    assert "\n" not in verdict.reason
    if case in ("good", "revoked"):
        assert verdict.source == f"OCSP {OCSP_URI}"
    if case == "revoked":
        assert "keyCompromise" in verdict.reason and f"per OCSP {OCSP_URI}" in verdict.reason
    if case == "unreachable":
        assert "connection refused" in verdict.reason or any(
            "connection refused" in w for w in verdict.warnings
        )
    if verdict.ok and expected_status is CertStatus.UNKNOWN:
        assert verdict.warnings, "an accepted unknown status must leave a warning"


def test_default_policy_value_is_relaxed_name() -> None:
    assert RevocationPolicy("relaxed") is RevocationPolicy.RELAXED
    assert [p.value for p in RevocationPolicy] == ["strict", "ifuri", "relaxed"]


def test_strict_applies_to_every_certificate_of_the_chain() -> None:
    root = make_ca("Root")
    sub = make_leaf(root, "Sub CA", ekus=(), ca_cert=True)
    leaf_cert = make_leaf(sub, "carol", ocsp_uris=[OCSP_URI])
    fetcher = FakeFetcher()
    fetcher.ocsp(OCSP_URI, lambda nonce: make_response(leaf_cert, sub, nonce=nonce))
    checker = RevocationChecker(fetcher=fetcher, now=Clock())
    strict = asyncio.run(checker.check([leaf_cert.der, sub.der], root.der, STRICT))
    assert not strict.ok
    assert strict.subject == "CN=Sub CA" and strict.status is CertStatus.UNKNOWN
    relaxed = asyncio.run(checker.check([leaf_cert.der, sub.der], root.der, RELAXED))
    assert relaxed.ok and relaxed.subject == "CN=carol"


def test_revoked_intermediate_fails_every_policy() -> None:
    root = make_ca("Root")
    sub = make_leaf(root, "Sub CA", ekus=(), ca_cert=True, ocsp_uris=["http://root-ocsp/"])
    leaf_cert = make_leaf(sub, "dave")
    fetcher = FakeFetcher()
    fetcher.ocsp(
        "http://root-ocsp/", lambda nonce: make_response(sub, root, ocsp.OCSPCertStatus.REVOKED, nonce=nonce)
    )
    checker = RevocationChecker(fetcher=fetcher, now=Clock())
    for policy in RevocationPolicy:
        verdict = asyncio.run(checker.check([leaf_cert.der, sub.der], root.der, policy))
        assert not verdict.ok and verdict.status is CertStatus.REVOKED and verdict.subject == "CN=Sub CA"


def test_configured_responder_counts_as_a_uri_for_ifuri() -> None:
    checker = RevocationChecker(fetcher=FakeFetcher(), now=Clock(), ocsp_responders=["http://down/"])
    verdict = asyncio.run(checker.check([NO_URI.der], CA.der, IFURI))
    assert not verdict.ok and "http://down/" in verdict.reason


def test_garbage_certificate_is_unknown_not_an_exception() -> None:
    checker = RevocationChecker(fetcher=FakeFetcher(), now=Clock())
    assert not asyncio.run(checker.check([b"\x30\x03\x02\x01\x01"], CA.der, STRICT)).ok
    verdict = asyncio.run(checker.check([b"junk"], CA.der, RELAXED))
    assert verdict.ok and verdict.status is CertStatus.UNKNOWN
    assert not asyncio.run(checker.check([], CA.der, IFURI)).ok


def test_decide_needs_a_check() -> None:
    with pytest.raises(ValueError, match="at least one"):
        decide(RELAXED, [])
    good = CertCheck(1, "CN=x", CertStatus.GOOD, source="CRL /x")
    assert decide(STRICT, [good]).reason == "certificate serial 0x1 (CN=x) is good per CRL /x"
