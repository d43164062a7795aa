"""The CA's revocation index and CRL issuing (pyipsec.pki.revoke), read back by the checker."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyipsec.pki.ca import Issued, issue_client
from pyipsec.pki.errors import PkiError
from pyipsec.pki.revoke import (
    INDEX_FILE,
    RevocationIndex,
    crl_bytes,
    issue_crl,
    load_index,
    parse_reason,
    parse_serial,
    revoke,
    save_index,
    write_atomic,
)
from pyipsec.revocation import CertStatus, RevocationChecker, RevocationPolicy


def test_parse_serial_and_reason() -> None:
    assert parse_serial("0x1F") == parse_serial("1f") == parse_serial("00:1F") == 0x1F
    assert parse_reason("KEYCOMPROMISE") is x509.ReasonFlags.key_compromise
    assert parse_reason(None) is None and parse_reason("unspecified") is None
    with pytest.raises(PkiError, match="unknown revocation reason"):
        parse_reason("removeFromCRL")


def test_index_round_trip(tmp_path: Path, now: datetime) -> None:
    assert load_index(tmp_path) == RevocationIndex()
    index, entry = revoke(
        RevocationIndex(), 0xABC, now=now, reason=x509.ReasonFlags.superseded, subject="CN=x"
    )
    index, _ = revoke(index, 0xDEF, now=now)
    save_index(tmp_path, RevocationIndex(7, index.entries))
    loaded = load_index(tmp_path)
    assert loaded.crl_number == 7 and loaded.entries == index.entries
    assert loaded.find(0xABC) == entry and loaded.find(1) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_FILE]  # no temporary files left


def test_write_atomic_replaces(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two" and oct(path.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(PkiError, match="is a directory"):
        write_atomic(tmp_path, b"x")


def test_crl_for_the_checker(ec_ca: Issued, now: datetime, tmp_path: Path) -> None:
    alice = issue_client(ec_ca, "alice@example.org", now=now)
    bob = issue_client(ec_ca, "bob@example.org", now=now)
    index, _ = revoke(RevocationIndex(), alice.certificate.serial_number, now=now)
    crl, updated = issue_crl(ec_ca, index, now=now, days=3)
    assert updated.crl_number == 1
    path = tmp_path / "ca.crl"
    data, fmt = crl_bytes(crl, path)
    assert fmt == "der"
    path.write_bytes(data)
    der = serialization.Encoding.DER
    checker = RevocationChecker(crl_files=[path], now=lambda: now + timedelta(hours=1))
    anchor = ec_ca.certificate.public_bytes(der)

    def status(cert: x509.Certificate) -> CertStatus:
        return asyncio.run(checker.check([cert.public_bytes(der)], anchor, RevocationPolicy.STRICT)).status

    assert status(alice.certificate) is CertStatus.REVOKED
    assert status(bob.certificate) is CertStatus.GOOD


def test_crl_days_and_expired_ca(ec_ca: Issued, now: datetime) -> None:
    with pytest.raises(PkiError, match="at least one day"):
        issue_crl(ec_ca, RevocationIndex(), now=now, days=0)
    with pytest.raises(PkiError, match="expired"):
        issue_crl(ec_ca, RevocationIndex(), now=now + timedelta(days=20 * 365))
