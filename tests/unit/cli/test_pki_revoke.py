"""`pyipsec pki revoke`, `pyipsec pki crl` and the --crl-uri/--ocsp-uri options (CliRunner).

The CRL is also read back by ``openssl crl`` as an independent check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from pyipsec.pki.revoke import INDEX_FILE
from tests.unit.cli.test_pki import run


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    code, _, err = run("pki", "ca", "--cn", "Test CA", "--out", tmp_path / "ca", "--key", "ecdsa")
    assert code == 0, err
    return tmp_path / "ca"


def _client(ca_dir: Path, out: Path, name: str = "alice@example.org", *extra: str) -> x509.Certificate:
    code, stdout, err = run(
        "pki", "client", "--ca", ca_dir, "--name", name, "--out", out, "--key", "ecdsa", "--json", *extra
    )
    assert code == 0, err
    return x509.load_pem_x509_certificate(Path(json.loads(stdout)["certificate"]).read_bytes())


def test_client_and_gateway_carry_revocation_uris(ca_dir: Path, tmp_path: Path) -> None:
    cert = _client(
        ca_dir,
        tmp_path / "out",
        "alice@example.org",
        "--crl-uri",
        "http://ca.example/ca.crl",
        "--ocsp-uri",
        "http://ocsp.example:8080/",
    )
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in cdp for n in p.full_name or ()] == ["http://ca.example/ca.crl"]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, "http://ocsp.example:8080/")
    ]
    code, stdout, err = run(
        "pki", "gateway", "--ca-dir", ca_dir, "--name", "vpn.example.org", "--out", tmp_path / "gw",
        "--key", "ecdsa", "--crl-uri", "http://a/1.crl", "--crl-uri", "ldap://b/cn=CA", "--json",
    )  # fmt: skip
    assert code == 0, err
    gw = x509.load_pem_x509_certificate(Path(json.loads(stdout)["certificate"]).read_bytes())
    points = gw.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name or ()] == ["http://a/1.crl", "ldap://b/cn=CA"]
    with pytest.raises(x509.ExtensionNotFound):
        gw.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    info = json.loads(stdout)["info"]
    assert info["crl_uris"] == ["http://a/1.crl", "ldap://b/cn=CA"] and info["ocsp_uris"] == []
    code, text, _ = run("pki", "show", json.loads(stdout)["certificate"])
    assert code == 0 and "CRL:" in text and "http://a/1.crl, ldap://b/cn=CA" in text and "OCSP:" not in text


def test_no_uris_no_extensions(ca_dir: Path, tmp_path: Path) -> None:
    cert = _client(ca_dir, tmp_path / "out")
    for kind in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(kind)


@pytest.mark.parametrize("uri", ["ca.crl", "file:///etc/ca.crl", "http://", "http://ex ample/"])
def test_bad_uri_refused_before_writing(ca_dir: Path, tmp_path: Path, uri: str) -> None:
    code, _, err = run(
        "pki",
        "client",
        "--ca",
        ca_dir,
        "--name",
        "bob@example.org",
        "--out",
        tmp_path / "o",
        "--crl-uri",
        uri,
    )
    assert code == 1 and err.startswith("pyipsec: bad CRL URI")
    assert not (tmp_path / "o" / "bob@example.org-key.pem").exists()


def test_revoke_by_file_then_crl(ca_dir: Path, tmp_path: Path) -> None:
    cert = _client(ca_dir, tmp_path / "out")
    cert_file = next((tmp_path / "out").glob("*-cert.pem"))
    code, stdout, err = run(
        "pki", "revoke", "--ca-dir", ca_dir, cert_file, "--reason", "keycompromise", "--json"
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert result["serial"] == f"{cert.serial_number:x}" and result["reason"] == "keyCompromise"
    assert result["subject"] == "CN=alice@example.org" and result["index"] == str(ca_dir / INDEX_FILE)

    code, _, err = run("pki", "revoke", "--ca", ca_dir, cert_file)
    assert code == 1 and "already revoked" in err

    code, stdout, err = run("pki", "crl", "--ca-dir", ca_dir, "--json")
    assert code == 0, err
    first = json.loads(stdout)
    assert first["file"] == str(ca_dir / "ca.crl") and first["format"] == "der" and first["crl_number"] == 1
    assert [e["serial"] for e in first["revoked"]] == [f"{cert.serial_number:x}"]
    crl = x509.load_der_x509_crl((ca_dir / "ca.crl").read_bytes())
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca-cert.pem").read_bytes())
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(ca_cert.public_key()).digest
    assert crl.next_update_utc is not None and (crl.next_update_utc - crl.last_update_utc).days == 15

    # The number goes up each time; PEM by extension; --days.
    pem_out = tmp_path / "pub" / "ca.pem"
    pem_out.parent.mkdir()
    code, stdout, err = run("pki", "crl", "--ca", ca_dir, "--out", pem_out, "--days", "2")
    assert code == 0, err
    assert "wrote CRL number 2 (PEM, 1 revoked certificate)" in stdout
    second = x509.load_pem_x509_crl(pem_out.read_bytes())
    assert second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert second.next_update_utc is not None and (second.next_update_utc - second.last_update_utc).days == 2


def test_revoke_by_serial(ca_dir: Path) -> None:
    code, stdout, err = run("pki", "revoke", "--ca", ca_dir, "--serial", "1F:2A", "--reason", "superseded")
    assert code == 0, err
    assert "revoked serial 1f2a (superseded)" in stdout and "pyipsec pki crl" in stdout
    code, stdout, _ = run("pki", "revoke", "--ca", ca_dir, "--serial", "0xabc", "--json")
    assert code == 0 and "reason" not in json.loads(stdout)
    index = json.loads((ca_dir / INDEX_FILE).read_text())
    assert [e["serial"] for e in index["revoked"]] == ["1f2a", "abc"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "either CERT_FILE or --serial"),
        (("--serial", "zz"), "bad serial"),
        (("--serial", "0"), "positive"),
        (("--serial", "1", "x.pem"), "either CERT_FILE or --serial"),
    ],
)
def test_revoke_usage_errors(ca_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = run("pki", "revoke", "--ca", ca_dir, *args)
    assert code == 1 and message in err


def test_revoke_refuses_a_foreign_certificate(ca_dir: Path, tmp_path: Path) -> None:
    code, _, err = run("pki", "ca", "--cn", "Other CA", "--out", tmp_path / "other", "--key", "ecdsa")
    assert code == 0, err
    _client(tmp_path / "other", tmp_path / "out")
    foreign = next((tmp_path / "out").glob("*-cert.pem"))
    code, _, err = run("pki", "revoke", "--ca", ca_dir, foreign)
    assert code == 1 and "not by this CA" in err
    assert not (ca_dir / INDEX_FILE).exists()


def test_same_name_other_key_refused(ca_dir: Path, tmp_path: Path) -> None:
    code, _, err = run("pki", "ca", "--cn", "Test CA", "--out", tmp_path / "twin", "--key", "ecdsa")
    assert code == 0, err
    _client(tmp_path / "twin", tmp_path / "out")
    code, _, err = run("pki", "revoke", "--ca", ca_dir, next((tmp_path / "out").glob("*-cert.pem")))
    assert code == 1 and "not signed by this CA" in err


def test_corrupt_index_is_a_clear_error(ca_dir: Path) -> None:
    (ca_dir / INDEX_FILE).write_text("{not json")
    code, _, err = run("pki", "crl", "--ca", ca_dir)
    assert code == 1 and "not valid JSON" in err
    (ca_dir / INDEX_FILE).write_text('{"version": 1, "revoked": [{"serial": "xyz"}]}')
    code, _, err = run("pki", "revoke", "--ca", ca_dir, "--serial", "12")
    assert code == 1 and "bad revoked entry" in err


def test_crl_without_revocations_and_missing_ca(ca_dir: Path, tmp_path: Path) -> None:
    code, stdout, err = run("pki", "crl", "--ca", ca_dir)
    assert code == 0, err
    assert "0 revoked certificates" in stdout
    assert len(x509.load_der_x509_crl((ca_dir / "ca.crl").read_bytes())) == 0
    code, _, err = run("pki", "crl", "--ca", tmp_path / "nope")
    assert code == 1 and "does not exist" in err
    code, _, err = run("pki", "crl", "--ca", ca_dir, "--out", tmp_path / "no" / "dir.crl")
    assert code == 1 and "does not exist" in err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_reads_the_crl(ca_dir: Path, tmp_path: Path) -> None:
    cert = _client(ca_dir, tmp_path / "out")
    assert (
        run(
            "pki",
            "revoke",
            "--ca",
            ca_dir,
            "--serial",
            f"{cert.serial_number:x}",
            "--reason",
            "cessationOfOperation",
        )[0]
        == 0
    )
    out = tmp_path / "ca.pem"
    assert run("pki", "crl", "--ca", ca_dir, "--out", out)[0] == 0
    text = subprocess.run(
        ["openssl", "crl", "-in", str(out), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "Issuer: CN = Test CA" in text
    assert "X509v3 CRL Number" in text and "X509v3 Authority Key Identifier" in text
    assert f"{cert.serial_number:X}" in text.replace(":", "").upper()
    assert "Cessation Of Operation" in text
    assert "Next Update" in text
    verified = subprocess.run(
        ["openssl", "crl", "-in", str(out), "-noout", "-CAfile", str(ca_dir / "ca-cert.pem")],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert verified.returncode == 0 and "verify OK" in verified.stderr + verified.stdout
