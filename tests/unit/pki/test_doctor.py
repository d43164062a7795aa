"""pyipsec.pki.doctor: each rule names the client(s) that reject a broken gateway certificate.

Certificates are built here to break one rule each (tests.support.pki, or openssl for SHA-1,
which ``cryptography`` no longer signs with); a certificate from pyipsec's own CA passes.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyipsec.pki.ca import create_ca, issue_gateway
from pyipsec.pki.doctor import Client, Diagnosis, Verdict, diagnose
from pyipsec.pki.keys import KeySpec
from tests.support.pki import EKU_IKE_INTERMEDIATE, NOW, Issued, make_ca, make_end_entity

SERVER_EKUS = (ExtendedKeyUsageOID.SERVER_AUTH, EKU_IKE_INTERMEDIATE)
NAME = "vpn.example.test"


def _gateway(ca: Issued, **kwargs: object) -> x509.Certificate:
    options: dict[str, object] = {"dns": [NAME], "eku": SERVER_EKUS}
    options.update(kwargs)
    return make_end_entity(ca, NAME, **options).cert  # type: ignore[arg-type]


def _verdicts(d: Diagnosis) -> dict[Client, Verdict]:
    return {r.client: r.verdict for r in d.results}


def _rules(d: Diagnosis, client: Client) -> set[str]:
    return {f.rule for f in d.result(client).findings if f.verdict == Verdict.REJECTS}


def _rejecting(d: Diagnosis) -> set[Client]:
    return {c for c, v in _verdicts(d).items() if v == Verdict.REJECTS}


@pytest.fixture
def ca() -> Issued:
    return make_ca()


def test_a_gateway_certificate_from_the_builtin_ca_passes_every_client() -> None:
    for spec in (KeySpec("ecdsa", 256), KeySpec("ecdsa", 384)):
        authority = create_ca("Doctor CA", now=NOW, key_spec=spec)
        for name in ("vpn.example.test", "192.0.2.10", "2001:db8::10"):
            gw = issue_gateway(authority, [name], now=NOW, key_spec=spec)
            d = diagnose(gw.certificate, now=NOW, ca=authority.certificate, name=name)
            assert _verdicts(d) == dict.fromkeys(Client, Verdict.OK), d.as_json()
            assert not d.rejected


def test_the_name_defaults_to_the_first_subject_alt_name(ca: Issued) -> None:
    d = diagnose(_gateway(ca, dns=["a.example.test", "b.example.test"]), now=NOW)
    assert d.name == "a.example.test" and not d.rejected


def test_no_extended_key_usage_is_rejected_by_windows_and_apple(ca: Issued) -> None:
    for eku in (None, [ExtendedKeyUsageOID.CLIENT_AUTH]):
        d = diagnose(_gateway(ca, eku=eku), now=NOW, ca=ca.cert, name=NAME)
        assert _rejecting(d) == {Client.WINDOWS, Client.APPLE}, d.as_json()
        assert _rules(d, Client.WINDOWS) == {"no-server-auth"}
        assert "serverAuth" in d.result(Client.APPLE).findings[0].reason
        assert d.rejected


def test_missing_ike_intermediate_is_only_a_warning_for_older_macos(ca: Issued) -> None:
    d = diagnose(_gateway(ca, eku=[ExtendedKeyUsageOID.SERVER_AUTH]), now=NOW, name=NAME)
    assert not d.rejected
    assert _verdicts(d)[Client.APPLE] == Verdict.WARNING
    assert [f.rule for f in d.result(Client.APPLE).findings] == ["no-ike-intermediate"]


def _openssl_sha1_cert(tmp: Path) -> x509.Certificate:
    cert = tmp / "sha1.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-sha1",
            "-subj", f"/CN={NAME}", "-addext", f"subjectAltName=DNS:{NAME}",
            "-addext", "extendedKeyUsage=serverAuth,1.3.6.1.5.5.8.2.2",
            "-days", "60", "-nodes", "-keyout", str(tmp / "sha1-key.pem"), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return x509.load_pem_x509_certificate(cert.read_bytes())


def test_a_sha1_signature_is_rejected_by_apple(tmp_path: Path) -> None:
    cert = _openssl_sha1_cert(tmp_path)
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha1"
    d = diagnose(cert, now=cert.not_valid_before_utc + timedelta(days=1), name=NAME)
    assert _rejecting(d) == {Client.APPLE}
    assert _rules(d, Client.APPLE) == {"sha1-signature"}
    assert "SHA1" in d.result(Client.APPLE).findings[0].reason
    for other in (Client.WINDOWS, Client.ANDROID, Client.STRONGSWAN):
        assert _verdicts(d)[other] == Verdict.WARNING


def test_an_rsa_1024_key_is_rejected_by_apple(ca: Issued) -> None:
    d = diagnose(_gateway(ca, key="rsa1024"), now=NOW, ca=ca.cert, name=NAME)
    assert _rejecting(d) == {Client.APPLE}
    assert _rules(d, Client.APPLE) == {"rsa-too-small"}
    assert "RSA 1024" in d.result(Client.APPLE).findings[0].reason
    assert _verdicts(d)[Client.WINDOWS] == Verdict.WARNING


def test_an_rsa_1024_ca_is_rejected_by_apple() -> None:
    weak = make_ca(key="rsa1024")
    d = diagnose(_gateway(weak), now=NOW, ca=weak.cert, name=NAME)
    assert _rejecting(d) == {Client.APPLE}
    assert "CA certificate has an RSA 1024 key" in d.result(Client.APPLE).findings[0].reason


@pytest.mark.parametrize(
    ("start", "end", "rule"),
    [
        (-400, -1, "expired"),
        (1, 400, "not-yet-valid"),
    ],
)
def test_outside_its_validity_every_client_rejects_it(ca: Issued, start: int, end: int, rule: str) -> None:
    cert = _gateway(ca, not_before=NOW + timedelta(days=start), not_after=NOW + timedelta(days=end))
    d = diagnose(cert, now=NOW, ca=ca.cert, name=NAME)
    assert _rejecting(d) == set(Client)
    assert all(_rules(d, c) == {rule} for c in Client)


def test_expiring_within_30_days_is_a_warning_for_every_client(ca: Issued) -> None:
    cert = _gateway(ca, not_before=NOW - timedelta(days=300), not_after=NOW + timedelta(days=10))
    d = diagnose(cert, now=NOW, name=NAME)
    assert not d.rejected
    assert _verdicts(d) == dict.fromkeys(Client, Verdict.WARNING)
    assert "expires in 10 days" in d.result(Client.WINDOWS).findings[0].reason


def test_longer_than_825_days_is_an_apple_warning_not_a_rejection(ca: Issued) -> None:
    cert = _gateway(ca, not_before=NOW - timedelta(days=10), not_after=NOW + timedelta(days=900))
    d = diagnose(cert, now=NOW, name=NAME)
    assert _verdicts(d)[Client.APPLE] == Verdict.WARNING and not d.rejected
    assert [f.rule for f in d.result(Client.APPLE).findings] == ["validity-over-825-days"]


def test_a_name_not_in_the_certificate_is_rejected_by_every_client(ca: Issued) -> None:
    d = diagnose(_gateway(ca), now=NOW, name="other.example.test")
    assert _rejecting(d) == set(Client)
    assert all(_rules(d, c) == {"name-mismatch"} for c in Client)
    assert "other.example.test" in d.result(Client.WINDOWS).findings[0].reason


def test_without_subject_alt_name_only_windows_accepts_the_cn(ca: Issued) -> None:
    d = diagnose(_gateway(ca, dns=[]), now=NOW, name=NAME)
    assert _rejecting(d) == {Client.APPLE, Client.ANDROID, Client.STRONGSWAN}
    assert _rules(d, Client.APPLE) == {"no-san"}
    assert _verdicts(d)[Client.WINDOWS] == Verdict.OK


def test_an_address_only_as_ip_entry_is_rejected_by_windows(ca: Issued) -> None:
    d = diagnose(_gateway(ca, dns=[], ips=["192.0.2.10"]), now=NOW, name="192.0.2.10")
    assert _rejecting(d) == {Client.WINDOWS}
    assert "13801" in d.result(Client.WINDOWS).findings[0].reason


def test_an_address_only_as_dns_entry_is_rejected_by_strongswan_and_android(ca: Issued) -> None:
    d = diagnose(_gateway(ca, dns=["192.0.2.10"]), now=NOW, name="192.0.2.10")
    assert _rejecting(d) == {Client.ANDROID, Client.STRONGSWAN}
    assert "iPAddress" in d.result(Client.STRONGSWAN).findings[0].reason


def test_a_certificate_of_another_ca_is_rejected_by_every_client(ca: Issued) -> None:
    other = make_ca("another CA")
    d = diagnose(_gateway(ca), now=NOW, ca=other.cert, name=NAME)
    assert _rejecting(d) == set(Client)
    assert all(_rules(d, c) == {"wrong-ca"} for c in Client)
    assert "another CA" in d.result(Client.APPLE).findings[0].reason


def test_a_forged_signature_under_the_right_issuer_name_is_rejected(ca: Issued) -> None:
    impostor = make_ca()  # same subject, another key
    cert = _gateway(ca, signer=impostor.key)
    d = diagnose(cert, now=NOW, ca=ca.cert, name=NAME)
    assert all(_rules(d, c) == {"bad-signature"} for c in Client)


def test_json_lists_every_client_with_its_findings(ca: Issued) -> None:
    d = diagnose(_gateway(ca, eku=None), now=NOW, name=NAME)
    data = d.as_json()
    assert data["rejected"] is True and data["name"] == NAME
    clients = data["clients"]
    assert isinstance(clients, dict) and set(clients) == {c.value for c in Client}
    assert clients["windows"]["verdict"] == "rejects"
    assert clients["windows"]["findings"][0]["rule"] == "no-server-auth"
    assert clients["android"] == {"verdict": "ok", "findings": []}
