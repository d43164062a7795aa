"""Garbage as CRL or OCSP bodies never raises out of the checker (hypothesis)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from pyipsec.revocation import CertStatus, RevocationChecker, RevocationPolicy
from tests.unit.revocation._pki import (
    CRL_URI,
    OCSP_URI,
    Clock,
    FakeFetcher,
    make_ca,
    make_crl,
    make_leaf,
    make_response,
)

CA = make_ca()
LEAF = make_leaf(CA, "alice", ocsp_uris=[OCSP_URI], crl_uris=[CRL_URI])
GOOD_OCSP = make_response(LEAF, CA)
GOOD_CRL = make_crl(CA)


def _bodies() -> st.SearchStrategy[bytes]:
    def mutate(base: bytes) -> st.SearchStrategy[bytes]:
        return st.tuples(st.integers(0, len(base) - 1), st.binary(min_size=1, max_size=4)).map(
            lambda t: base[: t[0]] + t[1] + base[t[0] + len(t[1]) :]
        )

    return st.one_of(st.binary(max_size=300), mutate(GOOD_OCSP), mutate(GOOD_CRL), st.just(GOOD_CRL[:40]))


@settings(max_examples=150, deadline=None)
@given(ocsp_body=_bodies(), crl_body=_bodies())
def test_garbage_never_raises(ocsp_body: bytes, crl_body: bytes) -> None:
    fetcher = FakeFetcher()
    fetcher.serve(OCSP_URI, ocsp_body)
    fetcher.serve(CRL_URI, crl_body)
    checker = RevocationChecker(fetcher=fetcher, now=Clock())
    verdict = asyncio.run(checker.check([LEAF.der], CA.der, RevocationPolicy.STRICT))
    assert "\n" not in verdict.reason
    assert "internal error" not in verdict.reason, verdict.reason
    if verdict.status is CertStatus.UNKNOWN:
        assert not verdict.ok
