"""CRLs (RFC 5280 §5, §6.3): verification, lookup, files, distribution points, caching."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from pyipsec.revocation import CertStatus, RevocationChecker, RevocationPolicy, RevocationVerdict
from pyipsec.revocation.crl import CrlError, crl_entry, parse_crl, usable_crl
from tests.unit.revocation._pki import CRL_URI, T0, Clock, FakeFetcher, make_ca, make_crl, make_leaf

CA = make_ca()
OTHER = make_ca("Other CA")
LEAF = make_leaf(CA, "alice", crl_uris=[CRL_URI])
PLAIN = make_leaf(CA, "bob")
SKEW = timedelta(minutes=5)
REVOKE_ALICE = [(LEAF.cert.serial_number, x509.ReasonFlags.key_compromise)]


def _check(checker: RevocationChecker, leaf: bytes = LEAF.der, policy: str = "strict") -> RevocationVerdict:
    return asyncio.run(checker.check([leaf], CA.der, RevocationPolicy(policy)))


@pytest.mark.parametrize("pem", [False, True])
def test_parse_and_lookup(pem: bool) -> None:
    crl = parse_crl(make_crl(CA, REVOKE_ALICE, pem=pem))
    usable_crl(crl, CA.cert, now=T0, skew=SKEW)
    entry = crl_entry(crl, LEAF.cert.serial_number)
    assert entry is not None and entry.reason == "keyCompromise"
    assert crl_entry(crl, PLAIN.cert.serial_number) is None


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"\x30\x00", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"]
)
def test_garbage_is_a_crl_error(data: bytes) -> None:
    with pytest.raises(CrlError, match="not a CRL"):
        parse_crl(data)


def test_wrong_signer() -> None:
    crl = parse_crl(make_crl(CA, signer=OTHER))
    with pytest.raises(CrlError, match="bad signature"):
        usable_crl(crl, CA.cert, now=T0, skew=SKEW)


def test_issuer_name_must_match() -> None:
    crl = parse_crl(make_crl(OTHER))
    with pytest.raises(CrlError, match="issued by CN=Other CA"):
        usable_crl(crl, CA.cert, now=T0, skew=SKEW)


def test_issuer_needs_crl_sign() -> None:
    no_sign = make_ca("No CRL signing", crl_sign=False)
    with pytest.raises(CrlError, match="cRLSign"):
        usable_crl(parse_crl(make_crl(no_sign)), no_sign.cert, now=T0, skew=SKEW)


def test_expired_is_stale() -> None:
    crl = parse_crl(make_crl(CA, this_update=T0 - timedelta(days=1), next_update=T0 - timedelta(hours=1)))
    with pytest.raises(CrlError, match="expired") as info:
        usable_crl(crl, CA.cert, now=T0, skew=SKEW)
    assert info.value.stale
    usable_crl(crl, CA.cert, now=T0 - timedelta(hours=1) + SKEW, skew=SKEW)  # within the skew


def test_future_this_update() -> None:
    crl = parse_crl(make_crl(CA, this_update=T0 + timedelta(hours=1)))
    with pytest.raises(CrlError, match="in the future") as info:
        usable_crl(crl, CA.cert, now=T0, skew=SKEW)
    assert not info.value.stale


def test_revoked_via_distribution_point() -> None:
    fetcher = FakeFetcher()
    fetcher.serve(CRL_URI, make_crl(CA, REVOKE_ALICE))
    verdict = _check(RevocationChecker(fetcher=fetcher, now=Clock()))
    assert not verdict.ok and verdict.status is CertStatus.REVOKED
    assert verdict.source == f"CRL {CRL_URI}"
    assert verdict.reason.startswith(
        f"certificate serial {LEAF.cert.serial_number:#x} (CN=alice) revoked at "
    )
    assert verdict.reason.endswith(f"(keyCompromise) per CRL {CRL_URI}")


def test_expired_crl_is_no_information_with_a_warning() -> None:
    fetcher = FakeFetcher()
    fetcher.serve(
        CRL_URI,
        make_crl(CA, REVOKE_ALICE, this_update=T0 - timedelta(days=8), next_update=T0 - timedelta(days=1)),
    )
    checker = RevocationChecker(fetcher=fetcher, now=Clock())
    relaxed = _check(checker, policy="relaxed")
    assert relaxed.ok and relaxed.status is CertStatus.UNKNOWN
    assert any("expired" in w for w in relaxed.warnings)
    assert not _check(checker, policy="ifuri").ok


def test_wrong_signer_crl_over_http_is_unknown() -> None:
    fetcher = FakeFetcher()
    fetcher.serve(CRL_URI, make_crl(CA, signer=OTHER))
    verdict = _check(RevocationChecker(fetcher=fetcher, now=Clock()))
    assert not verdict.ok and verdict.status is CertStatus.UNKNOWN and "bad signature" in verdict.reason


def test_distribution_point_cached_until_next_update() -> None:
    fetcher = FakeFetcher()
    fetcher.serve(CRL_URI, make_crl(CA, next_update=T0 + timedelta(hours=2)))
    clock = Clock()
    checker = RevocationChecker(fetcher=fetcher, now=clock)
    assert _check(checker).ok
    fetcher.serve(CRL_URI, make_crl(CA, REVOKE_ALICE, next_update=T0 + timedelta(days=1)))
    clock.now = T0 + timedelta(hours=1)
    assert _check(checker).ok and fetcher.calls == [CRL_URI]  # still the cached CRL
    clock.now = T0 + timedelta(hours=2, seconds=1)
    assert _check(checker).status is CertStatus.REVOKED and fetcher.calls == [CRL_URI, CRL_URI]


def test_file_crl_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "ca.crl"
    path.write_bytes(make_crl(CA, REVOKE_ALICE))
    checker = RevocationChecker(crl_files=[path], fetcher=FakeFetcher(), now=Clock())
    verdict = _check(checker, PLAIN.der)
    assert verdict.ok and verdict.source == f"CRL {path}"
    revoked = _check(checker)
    assert revoked.status is CertStatus.REVOKED and revoked.source == f"CRL {path}"
    # Replace the file (atomically, as `pyipsec pki crl` does): accepted again.
    tmp = tmp_path / "ca.crl.new"
    tmp.write_bytes(make_crl(CA, [], pem=True))
    os.replace(tmp, path)
    again = _check(checker)
    assert again.ok and again.status is CertStatus.GOOD


def test_file_rewritten_in_place_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "ca.crl"
    path.write_bytes(make_crl(CA))
    checker = RevocationChecker(crl_files=[path], fetcher=FakeFetcher(), now=Clock())
    assert _check(checker).ok
    path.write_bytes(make_crl(CA, REVOKE_ALICE))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert _check(checker).status is CertStatus.REVOKED


def test_crl_directory_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "junk.crl").write_bytes(b"not a crl")
    (tmp_path / "other.crl").write_bytes(make_crl(OTHER, [(LEAF.cert.serial_number, None)]))
    (tmp_path / "ca.crl").write_bytes(make_crl(CA))
    checker = RevocationChecker(
        crl_files=[tmp_path, tmp_path / "missing.crl"], fetcher=FakeFetcher(), now=Clock()
    )
    verdict = _check(checker)
    assert verdict.ok and verdict.source == f"CRL {tmp_path / 'ca.crl'}"
    assert any("junk.crl" in w and "not a CRL" in w for w in verdict.warnings)
    assert any("missing.crl" in w for w in verdict.warnings)


def test_stale_local_crl_counts_as_expected_information(tmp_path: Path) -> None:
    path = tmp_path / "ca.crl"
    path.write_bytes(make_crl(CA, this_update=T0 - timedelta(days=8), next_update=T0 - timedelta(days=1)))
    checker = RevocationChecker(crl_files=[path], fetcher=FakeFetcher(), now=Clock())
    assert not _check(checker, PLAIN.der, "ifuri").ok
    assert _check(checker, PLAIN.der, "relaxed").ok


def test_delta_crl_is_not_used() -> None:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(CA.cert.subject)
        .last_update(T0 - timedelta(hours=1))
        .next_update(T0 + timedelta(days=1))
        .add_extension(x509.DeltaCRLIndicator(1), critical=True)
    )
    crl = builder.sign(CA.key, hashes.SHA256())
    with pytest.raises(CrlError, match="delta"):
        usable_crl(crl, CA.cert, now=T0, skew=SKEW)


def test_concurrent_checks_share_one_download() -> None:
    other = make_leaf(CA, "carol", crl_uris=[CRL_URI])
    fetcher = FakeFetcher()
    fetcher.serve(CRL_URI, make_crl(CA, REVOKE_ALICE))
    checker = RevocationChecker(fetcher=fetcher, now=Clock())
    policy = RevocationPolicy.STRICT

    async def both() -> list[RevocationVerdict]:
        return list(
            await asyncio.gather(
                checker.check([LEAF.der], CA.der, policy), checker.check([other.der], CA.der, policy)
            )
        )

    first, second = asyncio.run(both())
    assert first.status is CertStatus.REVOKED and second.status is CertStatus.GOOD
    assert fetcher.calls == [CRL_URI]
