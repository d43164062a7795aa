"""`pyipsec pki ca|gateway|client|show` and `pyipsec user export` through click's CliRunner."""

from __future__ import annotations

import base64
import ipaddress
import json
import plistlib
import stat
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyipsec.cli.main import main
from pyipsec.crypto.x509 import TrustStore
from pyipsec.pki.ca import EKU_IKE_INTERMEDIATE

PLAIN_ENV: dict[str, str | None] = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}


def run(*args: str | Path, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner(env=PLAIN_ENV).invoke(main, [str(a) for a in args], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    code, _, err = run("pki", "ca", "--cn", "Test CA", "--out", tmp_path / "ca", "--key", "ecdsa")
    assert code == 0, err
    return tmp_path / "ca"


def test_ca(tmp_path: Path) -> None:
    out = tmp_path / "newca"
    code, stdout, stderr = run(
        "pki", "ca", "--cn", "pyipsec CA", "--out", out, "--key", "ecdsa", "--days", "30", "--json"
    )
    assert code == 0 and stderr == ""
    result = json.loads(stdout)
    assert result["certificate"] == str(out / "ca-cert.pem") and result["key"] == str(out / "ca-key.pem")
    assert result["info"]["subject"] == "CN=pyipsec CA" and result["info"]["ca"] is True
    assert result["info"]["public_key"] == "ECDSA P-256"
    assert _mode(out / "ca-key.pem") == 0o600 and _mode(out) == 0o700
    cert = _cert(out / "ca-cert.pem")
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30  # 30 days + the hour before now
    code, stdout, stderr = run("pki", "ca", "--cn", "pyipsec CA", "--out", out, "--key", "ecdsa")
    assert code == 1 and stdout == ""
    assert stderr == f"pyipsec: {out / 'ca-cert.pem'} already exists (use --force to replace it)\n"
    assert _cert(out / "ca-cert.pem") == cert


def test_gateway(tmp_path: Path, ca_dir: Path) -> None:
    code, stdout, stderr = run(
        "pki", "gateway", "--ca", ca_dir, "--name", "vpn.example.org", "--name", "203.0.113.5",
        "--out", tmp_path / "gw", "--key", "ecdsa384", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    result = json.loads(stdout)
    cert_path, key_path = Path(result["certificate"]), Path(result["key"])
    assert cert_path == tmp_path / "gw" / "vpn.example.org-cert.pem"
    assert key_path == tmp_path / "gw" / "vpn.example.org-key.pem" and _mode(key_path) == 0o600
    assert result["info"]["subject_alt_names"] == [
        {"type": "dns", "value": "vpn.example.org"},
        {"type": "dns", "value": "203.0.113.5"},
        {"type": "ip", "value": "203.0.113.5"},
    ]
    cert = _cert(cert_path)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, EKU_IKE_INTERMEDIATE]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["vpn.example.org", "203.0.113.5"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("203.0.113.5")]
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size == 384
    TrustStore([_cert(ca_dir / "ca-cert.pem")]).verify_chain(cert, [], datetime.now(UTC), purpose="server")


def test_default_keys_are_rsa_3072(tmp_path: Path) -> None:
    code, _, err = run("pki", "ca", "--cn", "RSA CA", "--out", tmp_path / "ca")
    assert code == 0, err
    code, stdout, err = run(
        "pki", "gateway", "--ca", tmp_path / "ca", "--name", "vpn.example.org", "--out", tmp_path
    )
    assert code == 0, err
    for path in (tmp_path / "ca" / "ca-cert.pem", tmp_path / "vpn.example.org-cert.pem"):
        key = _cert(path).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    assert f"private key: {tmp_path / 'vpn.example.org-key.pem'} (mode 0600)" in stdout
    assert "extendedKeyUsage: serverAuth, iKEIntermediate" in stdout


def test_client_with_pkcs12(tmp_path: Path, ca_dir: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    code, stdout, err = run(
        "pki", "client", "--ca", ca_dir, "--name", "alice@example.org", "--out", tmp_path / "c",
        "--key", "ecdsa", "--p12", "--password-file", pw, "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout)
    p12 = Path(result["pkcs12"])
    assert p12 == tmp_path / "c" / "alice@example.org.p12" and _mode(p12) == 0o600
    assert _mode(Path(result["key"])) == 0o600
    loaded = pkcs12.load_pkcs12(p12.read_bytes(), b"correct horse")
    assert loaded.cert is not None and loaded.cert.certificate == _cert(Path(result["certificate"]))
    assert [c.certificate for c in loaded.additional_certs] == [_cert(ca_dir / "ca-cert.pem")]
    assert result["info"]["subject_alt_names"] == [{"type": "email", "value": "alice@example.org"}]
    assert result["info"]["extended_key_usage"] == ["clientAuth"]


def test_client_prompts_for_the_pkcs12_password(tmp_path: Path, ca_dir: Path) -> None:
    args = (
        "pki",
        "client",
        "--ca",
        ca_dir,
        "--name",
        "bob.example.org",
        "--out",
        tmp_path,
        "--key",
        "ecdsa",
        "--p12",
    )
    code, stdout, _ = run(*args, stdin="s3cret\ns3cret\n")
    assert code == 0
    loaded = pkcs12.load_pkcs12((tmp_path / "bob.example.org.p12").read_bytes(), b"s3cret")
    assert loaded.key is not None
    assert f"PKCS#12:     {tmp_path / 'bob.example.org.p12'} (mode 0600)" in stdout
    code, _, err = run(*args, "--force", stdin="\n\n")  # click asks again for an empty password
    assert code == 1 and "Aborted!" in err
    assert pkcs12.load_pkcs12((tmp_path / "bob.example.org.p12").read_bytes(), b"s3cret").key is not None


def test_client_without_pkcs12(tmp_path: Path, ca_dir: Path) -> None:
    code, _, err = run(
        "pki", "client", "--ca", ca_dir, "--name", "carol@example.org", "--out", tmp_path, "--key", "ecdsa"
    )
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "carol@example.org-cert.pem",
        "carol@example.org-key.pem",
    ]


def test_show(tmp_path: Path, ca_dir: Path) -> None:
    run("pki", "gateway", "--ca", ca_dir, "--name", "vpn.example.org", "--out", tmp_path, "--key", "ecdsa")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        (tmp_path / "vpn.example.org-cert.pem").read_bytes() + (ca_dir / "ca-cert.pem").read_bytes()
    )
    code, stdout, _ = run("pki", "show", bundle)
    assert code == 0
    assert stdout.count("subject:") == 2 and "CA:               yes" in stdout
    assert "subjectAltName:   DNS:vpn.example.org" in stdout
    code, stdout, _ = run("pki", "show", "--json", bundle)
    assert code == 0
    result = json.loads(stdout)
    assert result["file"] == str(bundle)
    assert [c["subject"] for c in result["certificates"]] == ["CN=vpn.example.org", "CN=Test CA"]
    gw = _cert(tmp_path / "vpn.example.org-cert.pem")
    fingerprint = result["certificates"][0]["sha256_fingerprint"]
    assert fingerprint.replace(":", "").lower() == gw.fingerprint(hashes.SHA256()).hex()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pki", "gateway", "--ca", "{tmp}/nope", "--name", "vpn.example.org", "--out", "{tmp}/o"),
         "pyipsec: CA directory {tmp}/nope does not exist (create one with `pyipsec pki ca`)"),
        (("pki", "gateway", "--ca", "{ca}", "--name", "vpn..example.org", "--out", "{tmp}/o"),
         "pyipsec: bad gateway name 'vpn..example.org': not a DNS name"),
        (("pki", "gateway", "--ca", "{ca}", "--name", "*.example.org", "--out", "{tmp}/o"),
         "wildcards are not accepted"),
        (("pki", "client", "--ca", "{ca}", "--name", "alice smith", "--out", "{tmp}/o"),
         "pyipsec: bad client name 'alice smith'"),
        (("pki", "client", "--ca", "{ca}", "--name", "alice@example.org", "--out", "{tmp}/o",
          "--password-file", "{tmp}/pw"), "pyipsec: --password-file is for the PKCS#12 bundle: add --p12"),
        (("pki", "client", "--ca", "{ca}", "--name", "alice@example.org", "--out", "{tmp}/o", "--p12",
          "--password-file", "{tmp}/missing"), "pyipsec: password file {tmp}/missing not found"),
        (("pki", "client", "--ca", "{tmp}", "--name", "alice@example.org", "--out", "{tmp}/o"),
         "pyipsec: no CA in {tmp}: ca-cert.pem not found"),
        (("pki", "show", "{tmp}/nope.pem"), "pyipsec: certificate file {tmp}/nope.pem not found"),
        (("pki", "show", "{ca}/ca-key.pem"), "is not a PEM or DER X.509 certificate"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_exit_1(
    tmp_path: Path, ca_dir: Path, args: tuple[str, ...], message: str
) -> None:
    fill = {"tmp": str(tmp_path), "ca": str(ca_dir)}
    code, stdout, stderr = run(*(a.format(**fill) for a in args))
    assert code == 1
    assert stdout == ""
    assert message.format(**fill) in stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_empty_password_file(tmp_path: Path, ca_dir: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    code, _, err = run(
        "pki",
        "client",
        "--ca",
        ca_dir,
        "--name",
        "a@b.org",
        "--out",
        tmp_path,
        "--p12",
        "--password-file",
        tmp_path / "pw",
    )
    assert code == 1 and f"pyipsec: password file {tmp_path / 'pw'} is empty" in err


def test_existing_files_need_force(tmp_path: Path, ca_dir: Path) -> None:
    args = (
        "pki",
        "gateway",
        "--ca",
        ca_dir,
        "--name",
        "vpn.example.org",
        "--out",
        tmp_path,
        "--key",
        "ecdsa",
    )
    assert run(*args)[0] == 0
    first = (tmp_path / "vpn.example.org-cert.pem").read_bytes()
    code, _, err = run(*args)
    assert code == 1 and "already exists (use --force to replace it)" in err
    assert (tmp_path / "vpn.example.org-cert.pem").read_bytes() == first
    assert run(*args, "--force")[0] == 0
    assert (tmp_path / "vpn.example.org-cert.pem").read_bytes() != first
    assert _mode(tmp_path / "vpn.example.org-key.pem") == 0o600


def test_loose_ca_key_draws_a_warning(tmp_path: Path, ca_dir: Path) -> None:
    (ca_dir / "ca-key.pem").chmod(0o644)
    code, _, err = run(
        "pki", "gateway", "--ca", ca_dir, "--name", "gw.example.org", "--out", tmp_path, "--key", "ecdsa"
    )
    assert code == 0
    assert "pyipsec: warning: " in err and "(mode 644); chmod 600 it" in err


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("pki", "ca", "--out", tmp_path)[0] == 2  # --cn missing
    assert run("pki", "ca", "--cn", "x", "--out", tmp_path, "--key", "dsa")[0] == 2
    assert run("pki", "gateway", "--ca", tmp_path, "--out", tmp_path)[0] == 2  # --name missing
    assert (
        run("user", "export", "alice", "--gateway", "gw", "--ca", tmp_path, "--format", "nm", "--out", "x")[0]
        == 2
    )


# --- user export ------------------------------------------------------------------------------


def test_user_group_has_export_beside_the_account_commands() -> None:
    code, stdout, _ = run("user", "--help")
    assert code == 0
    assert "export" in stdout and "add" in stdout and "list" in stdout


@pytest.fixture
def gw_cert(tmp_path: Path, ca_dir: Path) -> Path:
    code, _, err = run(
        "pki", "gateway", "--ca", ca_dir, "--name", "vpn.example.org", "--name", "203.0.113.5",
        "--out", tmp_path / "gw", "--key", "ecdsa",
    )  # fmt: skip
    assert code == 0, err
    return tmp_path / "gw" / "vpn.example.org-cert.pem"


def _export(tmp_path: Path, ca: Path, fmt: str, out: str, *extra: str | Path) -> tuple[int, str, str]:
    return run("user", "export", "alice", "--gateway", "vpn.example.org", "--ca", ca, "--format", fmt,
               "--out", tmp_path / out, *extra)  # fmt: skip


def test_export_apple(tmp_path: Path, ca_dir: Path, gw_cert: Path) -> None:
    code, stdout, err = _export(tmp_path, ca_dir, "apple", "alice.mobileconfig", "--gateway-cert", gw_cert)
    assert code == 0, err
    assert stdout.startswith(
        f"wrote apple profile for alice (vpn.example.org, eap-mschapv2) to {tmp_path / 'alice.mobileconfig'}"
    )
    assert _mode(tmp_path / "alice.mobileconfig") == 0o644
    profile = plistlib.loads((tmp_path / "alice.mobileconfig").read_bytes())
    ikev2 = profile["PayloadContent"][1]["IKEv2"]
    assert ikev2["CertificateType"] == "ECDSA256" and "AuthPassword" not in ikev2
    assert ikev2["ServerCertificateIssuerCommonName"] == "Test CA"
    (tmp_path / "pw").write_text("open sesame\n")
    code, stdout, err = _export(
        tmp_path,
        ca_dir / "ca-cert.pem",
        "apple",
        "pw.mobileconfig",
        "--password-file",
        tmp_path / "pw",
        "--json",
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert result["contains_password"] is True and result["mode"] == "0600"
    assert _mode(tmp_path / "pw.mobileconfig") == 0o600
    ikev2 = plistlib.loads((tmp_path / "pw.mobileconfig").read_bytes())["PayloadContent"][1]["IKEv2"]
    assert ikev2["AuthPassword"] == "open sesame"
    assert "open sesame" not in stdout


def test_export_sswan_and_windows(tmp_path: Path, ca_dir: Path) -> None:
    assert _export(tmp_path, ca_dir, "sswan", "alice.sswan", "--ke-group", "20")[0] == 0
    data = json.loads((tmp_path / "alice.sswan").read_text())
    assert data["type"] == "ikev2-eap" and data["ike-proposal"] == "aes256gcm16-prfsha256-ecp384"
    assert _export(tmp_path, ca_dir, "windows", "alice.ps1")[0] == 0
    text = (tmp_path / "alice.ps1").read_text()
    assert "Add-VpnConnection" in text and "-DHGroup ECP256" in text
    code, _, err = _export(tmp_path, ca_dir, "windows", "x.ps1", "--ke-group", "21")
    assert code == 1 and "Windows clients cannot use key exchange group 21" in err
    (tmp_path / "pw").write_text("pw\n")
    for fmt in ("sswan", "windows"):
        code, _, err = _export(tmp_path, ca_dir, fmt, "y", "--password-file", tmp_path / "pw")
        assert code == 1 and f"the {fmt} profile cannot store a password" in err
    assert not (tmp_path / "x.ps1").exists() and not (tmp_path / "y").exists()


def test_export_pyipsec_passes_check(tmp_path: Path, ca_dir: Path, gw_cert: Path) -> None:
    (tmp_path / "pw").write_text("a long password for alice\n")
    code, stdout, err = _export(
        tmp_path,
        ca_dir,
        "pyipsec",
        "alice.toml",
        "--password-file",
        tmp_path / "pw",
        "--gateway-cert",
        gw_cert,
    )
    assert code == 0, err
    assert _mode(tmp_path / "alice.toml") == 0o600
    assert 'cacerts = ["ca/ca-cert.pem"]' in (tmp_path / "alice.toml").read_text()  # relative: portable
    code, stdout, err = run("check", tmp_path / "alice.toml")
    assert code == 0 and err == "", err
    assert "vpn-example-org: IKEv2" in stdout and "vips: 0.0.0.0" in stdout
    assert "a long password" not in stdout


def test_export_pyipsec_without_password(tmp_path: Path, ca_dir: Path) -> None:
    elsewhere = tmp_path / "profiles"
    elsewhere.mkdir()
    code, stdout, err = run(
        "user", "export", "alice", "--gateway", "203.0.113.5", "--ca", ca_dir, "--format", "pyipsec",
        "--out", elsewhere / "alice.toml", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout)
    assert result["contains_password"] is False and result["remote_id"] == "203.0.113.5"
    assert result["notes"] == [
        f"put alice's password into {elsewhere / 'alice.eap-secret'} (mode 0600) before starting it"
    ]
    text = (elsewhere / "alice.toml").read_text()
    assert f'cacerts = ["{ca_dir.resolve() / "ca-cert.pem"}"]' in text  # outside the profile's dir: absolute
    code, _, err = run("check", elsewhere / "alice.toml")
    assert code == 1 and "secrets.eap-alice.secret_file: cannot read" in err
    (elsewhere / "alice.eap-secret").write_text("a long password for alice\n")
    (elsewhere / "alice.eap-secret").chmod(0o600)
    code, _, err = run("check", elsewhere / "alice.toml")
    assert code == 0 and err == ""


def test_export_errors(tmp_path: Path, ca_dir: Path, gw_cert: Path) -> None:
    code, _, err = _export(
        tmp_path, ca_dir, "apple", "a", "--gateway-cert", gw_cert, "--remote-id", "gw.example.org"
    )
    assert code == 1 and "does not name the gateway identity 'gw.example.org'" in err
    code, _, err = _export(tmp_path, tmp_path / "nope.pem", "apple", "a")
    assert code == 1 and f"pyipsec: certificate file {tmp_path / 'nope.pem'} not found" in err
    code, _, err = run("user", "export", "bad user", "--gateway", "vpn.example.org", "--ca", ca_dir,
                       "--format", "apple", "--out", tmp_path / "a")  # fmt: skip
    assert code == 1 and "pyipsec: bad user name 'bad user'" in err
    code, _, err = _export(tmp_path, ca_dir, "apple", "missing/a")
    assert code == 1 and "does not exist" in err
    assert not (tmp_path / "a").exists()
    assert _export(tmp_path, ca_dir, "sswan", "a")[0] == 0
    code, _, err = _export(tmp_path, ca_dir, "sswan", "a")
    assert code == 1 and "already exists (use --force to replace it)" in err
    assert _export(tmp_path, ca_dir, "sswan", "a", "--force")[0] == 0


# --- user export for EAP-TLS and certificate then EAP ----------------------------------------


def _p12(
    data: bytes, password: bytes = b"bundle password"
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    assert key is not None and cert is not None
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    return cert, extra


def _client_sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


@pytest.fixture
def p12_pw(tmp_path: Path) -> Path:
    (tmp_path / "p12pw").write_text("bundle password\n")
    return tmp_path / "p12pw"


def test_export_eap_tls_issues_then_reuses_the_client_certificate(
    tmp_path: Path, ca_dir: Path, p12_pw: Path
) -> None:
    code, stdout, err = run(
        "user", "export", "alice@example.org", "--auth", "eap-tls", "--gateway", "vpn.example.org",
        "--ca", ca_dir, "--format", "apple", "--out", tmp_path / "alice.mobileconfig",
        "--p12-password-file", p12_pw, "--key", "ecdsa", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout)
    assert result["auth"] == "eap-tls" and result["certificate_reused"] is False
    assert result["contains_password"] is False and result["mode"] == "0600"
    cert_path = tmp_path / "alice@example.org-cert.pem"
    assert result["certificate"] == str(cert_path) and result["key"] == str(
        tmp_path / "alice@example.org-key.pem"
    )
    assert _mode(tmp_path / "alice@example.org-key.pem") == 0o600
    cert = _cert(cert_path)
    assert _client_sans(cert) == [x509.RFC822Name("alice@example.org")]
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    profile = plistlib.loads((tmp_path / "alice.mobileconfig").read_bytes())
    _, identity, vpn = profile["PayloadContent"]
    p12_cert, extra = _p12(identity["PayloadContent"])
    assert p12_cert == cert and extra == [_cert(ca_dir / "ca-cert.pem")]
    assert vpn["IKEv2"]["PayloadCertificateUUID"] == identity["PayloadUUID"]
    assert vpn["IKEv2"]["LocalIdentifier"] == "alice@example.org" and "Password" not in identity
    assert "bundle password" not in stdout + err

    code, stdout, err = run(
        "user", "export", "alice@example.org", "--auth", "eap-tls", "--gateway", "vpn.example.org",
        "--ca", ca_dir / "ca-cert.pem", "--format", "sswan", "--out", tmp_path / "alice.sswan",
        "--p12-password-file", p12_pw,
    )  # fmt: skip
    assert code == 0, err
    assert f"note: reused client certificate {cert_path}" in stdout
    data = json.loads((tmp_path / "alice.sswan").read_text())
    assert data["type"] == "ikev2-eap-tls" and data["local"]["id"] == "alice@example.org"
    assert _p12(base64.b64decode(data["local"]["p12"]))[0] == cert  # the same certificate, reused


def test_export_eap_tls_for_a_plain_user_name_and_windows(tmp_path: Path, ca_dir: Path, p12_pw: Path) -> None:
    code, stdout, err = run(
        "user", "export", "bob", "--auth", "eap-tls", "--gateway", "vpn.example.org", "--ca", ca_dir,
        "--format", "windows", "--out", tmp_path / "bob.ps1", "--cert-dir", tmp_path / "certs",
        "--p12-password-file", p12_pw, "--key", "ecdsa",
    )  # fmt: skip
    assert code == 0, err
    assert "note: the device asks for the PKCS#12 password on import" in stdout
    cert = _cert(tmp_path / "certs" / "bob-cert.pem")
    assert _client_sans(cert) == [x509.DNSName("bob")]  # dNSName as `pki client` writes it
    text = (tmp_path / "bob.ps1").read_text()
    assert "New-EapConfiguration -Tls -UserCertificate" in text and "bundle password" not in text
    assert _mode(tmp_path / "bob.ps1") == 0o600


def test_export_eap_tls_prompts_for_the_bundle_password(tmp_path: Path, ca_dir: Path) -> None:
    code, _, err = run(
        "user", "export", "carol@example.org", "--auth", "eap-tls", "--gateway", "vpn.example.org",
        "--ca", ca_dir, "--format", "apple", "--out", tmp_path / "c.mobileconfig", "--key", "ecdsa",
        "--embed-p12-password",
        stdin="bundle password\nbundle password\n",
    )  # fmt: skip
    assert code == 0, err
    identity = plistlib.loads((tmp_path / "c.mobileconfig").read_bytes())["PayloadContent"][1]
    assert identity["Password"] == "bundle password"
    assert _p12(identity["PayloadContent"])[0] == _cert(tmp_path / "carol@example.org-cert.pem")


def test_export_pyipsec_eap_tls_names_the_pem_files(tmp_path: Path, ca_dir: Path) -> None:
    code, stdout, err = run(
        "user", "export", "alice@example.org", "--auth", "eap-tls", "--gateway", "vpn.example.org",
        "--ca", ca_dir, "--format", "pyipsec", "--out", tmp_path / "alice.toml", "--key", "ecdsa", "--json",
    )  # fmt: skip
    assert code == 0, err  # no PKCS#12 and so no password prompt: the daemon reads the PEM files
    assert json.loads(stdout)["notes"] == [
        f"issued client certificate {tmp_path / 'alice@example.org-cert.pem'} "
        f"(key {tmp_path / 'alice@example.org-key.pem'})"
    ]
    data = tomllib.loads((tmp_path / "alice.toml").read_text())
    conn = data["connections"]["vpn-example-org"]
    assert conn["local"] == {
        "auth": "eap-tls",
        "id": "alice@example.org",
        "certs": ["alice@example.org-cert.pem"],
    }
    assert data["secrets"] == {"private-alice-example-org": {"file": "alice@example.org-key.pem"}}


def _gateway_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(body)
    return path


TWO_ROUNDS = """
[connections.rw]
local = { auth = "pubkey", certs = ["gw.pem"] }
remote-1 = { auth = "pubkey" }
remote-2 = { auth = "eap-mschapv2", eap_id = "%any" }
"""


def test_export_follows_the_gateway_connection(tmp_path: Path, ca_dir: Path, p12_pw: Path) -> None:
    config = _gateway_config(tmp_path, TWO_ROUNDS)
    (tmp_path / "pw").write_text("user password\n")
    code, stdout, err = run(
        "user", "export", "alice", "--config", config, "--gateway", "vpn.example.org", "--ca", ca_dir,
        "--format", "pyipsec", "--out", tmp_path / "alice.toml", "--cert-name", "laptop.example.org",
        "--password-file", tmp_path / "pw", "--key", "ecdsa", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["auth"] == "pubkey+eap"
    conn = tomllib.loads((tmp_path / "alice.toml").read_text())["connections"]["vpn-example-org"]
    assert conn["local-1"]["id"] == "laptop.example.org" and conn["local-2"]["eap_id"] == "alice"
    assert _client_sans(_cert(tmp_path / "laptop.example.org-cert.pem")) == [
        x509.DNSName("laptop.example.org")
    ]
    code, _, err = run(
        "user", "export", "alice", "--config", config, "--gateway", "vpn.example.org", "--ca", ca_dir,
        "--format", "sswan", "--out", tmp_path / "alice.sswan", "--cert-name", "laptop.example.org",
        "--p12-password-file", p12_pw,
    )  # fmt: skip
    assert code == 0, err
    data = json.loads((tmp_path / "alice.sswan").read_text())
    assert data["type"] == "ikev2-cert-eap" and data["local"]["eap_id"] == "alice"


@pytest.mark.parametrize("fmt", ["apple", "windows"])
def test_export_refuses_two_rounds_where_the_client_cannot(
    tmp_path: Path, ca_dir: Path, p12_pw: Path, fmt: str
) -> None:
    config = _gateway_config(tmp_path, TWO_ROUNDS)
    code, stdout, err = run(
        "user", "export", "alice", "--config", config, "--gateway", "vpn.example.org", "--ca", ca_dir,
        "--format", fmt, "--out", tmp_path / "alice.out", "--p12-password-file", p12_pw,
    )  # fmt: skip
    assert code == 1 and stdout == ""
    assert err.startswith("pyipsec: ") and ("RFC 4739" in err)
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca", "gateway.toml", "p12pw"]  # nothing issued


def test_export_config_errors(tmp_path: Path, ca_dir: Path) -> None:
    def export(*extra: str | Path) -> tuple[int, str]:
        code, _, err = run(
            "user", "export", "alice@example.org", "--gateway", "vpn.example.org",
            "--ca", ca_dir, "--format", "sswan", "--out", tmp_path / "a.sswan", *extra,
        )  # fmt: skip
        return code, err

    config = _gateway_config(
        tmp_path,
        '[connections.a.remote]\nauth = "eap-tls"\n[connections.b.remote]\nauth = "psk"\n',
    )
    code, err = export("--config", config)
    assert code == 1 and "several connections; choose one with --connection (a, b)" in err
    code, err = export("--config", config, "--connection", "b")
    assert code == 1 and "connection 'b': the connection authenticates clients with psk" in err
    code, err = export("--config", config, "--connection", "c")
    assert code == 1 and "has no connection 'c'" in err
    code, err = export("--config", config, "--connection", "a", "--auth", "eap-mschapv2")
    assert (
        code == 1 and "--auth eap-mschapv2 contradicts the gateway's connection, which expects eap-tls" in err
    )
    radius = _gateway_config(tmp_path, '[connections.r.remote]\nauth = "eap-radius"\n')
    code, err = export("--config", radius, "--auth", "pubkey+eap")
    assert code == 1 and "which expects eap-mschapv2 or eap-tls" in err
    assert export("--config", radius)[0] == 0  # EAP-MSCHAPv2 unless --auth eap-tls says otherwise
    assert json.loads((tmp_path / "a.sswan").read_text())["type"] == "ikev2-eap"
    (tmp_path / "a.sswan").unlink()
    code, err = export("--config", tmp_path / "missing.toml")
    assert code == 1 and "not found" in err
    code, err = export("--config", _gateway_config(tmp_path, "[connections\n"))
    assert code == 1 and "cannot read gateway config" in err
    code, err = export("--connection", "a")
    assert code == 1 and "add --config" in err
    assert not (tmp_path / "a.sswan").exists()


def test_export_certificate_option_errors(tmp_path: Path, ca_dir: Path, p12_pw: Path) -> None:
    def export(fmt: str, *extra: str | Path) -> tuple[int, str]:
        code, _, err = run("user", "export", "alice@example.org", "--gateway", "vpn.example.org",
                           "--format", fmt, "--out", tmp_path / "a.out", *extra)  # fmt: skip
        return code, err

    code, err = export("sswan", "--ca", ca_dir, "--auth", "eap-tls", "--embed-p12-password")
    assert code == 1 and "--embed-p12-password is for apple profiles" in err
    code, err = export("sswan", "--ca", ca_dir, "--cert-name", "x.example.org")
    assert code == 1 and "are for eap-tls and pubkey+eap" in err
    (tmp_path / "pw").write_text("pw\n")
    code, err = export("apple", "--ca", ca_dir, "--auth", "eap-tls", "--password-file", tmp_path / "pw")
    assert code == 1 and "eap-tls has no EAP password" in err
    code, err = export(
        "apple", "--ca", ca_dir / "ca-cert.pem", "--auth", "eap-tls", "--p12-password-file", p12_pw
    )
    assert code == 1 and "give --ca the CA directory" in err
    code, err = export("apple", "--ca", ca_dir, "--auth", "eap-tls", "--cert-name", "10.0.0.1",
                       "--p12-password-file", p12_pw)  # fmt: skip
    assert code == 1 and "not an IP address" in err
    (tmp_path / "alice@example.org-cert.pem").write_text("junk")
    code, err = export("apple", "--ca", ca_dir, "--auth", "eap-tls", "--p12-password-file", p12_pw)
    assert code == 1 and "not a PEM or DER X.509 certificate" in err
    assert not (tmp_path / "a.out").exists()
