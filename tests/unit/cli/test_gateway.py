"""`pyipsec gateway init` and `pyipsec pki doctor` through click's CliRunner.

``gateway init`` writes a whole gateway into a temporary directory: the files with their modes,
a configuration that ``pyipsec check`` accepts, a certificate ``pki doctor`` passes for every
client, the first user in the store with the printed password, and the user's profiles; it
refuses to overwrite without ``--force`` and names the bad option otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import plistlib
import stat
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyipsec.cli.main import main
from pyipsec.pki.ca import EKU_IKE_INTERMEDIATE
from pyipsec.store.sqlite import SqliteStore, nt_hash_of
from tests.support.pki import make_ca, make_end_entity

PLAIN_ENV: dict[str, str | None] = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}
NAME = "vpn.example.test"


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner(env=PLAIN_ENV).invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _init(directory: Path, *extra: str) -> dict[str, Any]:
    code, out, err = run(
        "gateway", "init", "--name", NAME, "--dir", directory, "--key", "ecdsa", "--json", *extra
    )
    assert code == 0, err
    result = json.loads(out)
    assert isinstance(result, dict)
    return result


def _password_ok(db: Path, user: str, password: str) -> bool:
    with SqliteStore(db, create=False) as store:
        return store.nt_hash(user) == nt_hash_of(password)


def test_init_writes_a_gateway_that_check_and_doctor_accept(tmp_path: Path) -> None:
    gw = tmp_path / "etc"
    result = _init(gw, "--dns", "10.10.0.1")
    files = {kind: Path(p) for kind, p in result["files"].items()}
    assert files["configuration"] == gw / "pyipsec.toml"
    # modes: private keys, the store and the password file 0600; certificates and config readable
    for secret in ("CA key", "gateway key", "user store", "password file"):
        assert _mode(files[secret]) == 0o600, secret
    for public in ("CA certificate", "gateway certificate", "configuration"):
        assert _mode(files[public]) == 0o644, public
    assert _mode(gw / "ca") == 0o700 and _mode(gw / "profiles") == 0o700

    code, out, err = run("check", files["configuration"])
    assert code == 0, err
    assert "1 connection, 2 pools" in out
    config = tomllib.loads(files["configuration"].read_text())
    rw = config["connections"]["rw"]
    assert rw["local"] == {"auth": "pubkey", "id": NAME, "certs": [str(files["gateway certificate"])]}
    assert rw["remote"]["auth"] == "eap-mschapv2" and rw["send_cert"] == "always"
    assert config["settings"]["users"] == str(gw / "users.db")
    assert config["pools"]["rw"] == {"addrs": "10.10.0.0/24", "dns": ["10.10.0.1"]}
    pool6 = ipaddress.ip_network(config["pools"]["rw6"]["addrs"])
    assert pool6.prefixlen == 112 and pool6.subnet_of(ipaddress.ip_network("fd00::/8"))
    assert result["pool6"] == str(pool6)

    cert = x509.load_pem_x509_certificate(files["gateway certificate"].read_bytes())
    ekus = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ekus == [ExtendedKeyUsageOID.SERVER_AUTH, EKU_IKE_INTERMEDIATE]
    code, out, err = run(
        "pki", "doctor", files["gateway certificate"], "--ca", gw / "ca", "--name", NAME, "--json"
    )
    assert code == 0, out
    assert {c["verdict"] for c in json.loads(out)["clients"].values()} == {"ok"}

    password = result["password"]
    assert isinstance(password, str) and len(password) >= 20
    assert _password_ok(files["user store"], "user1", password)
    assert password not in files["configuration"].read_text()
    assert files["password file"].read_text() == password + "\n"


def test_init_writes_the_first_users_profiles(tmp_path: Path) -> None:
    result = _init(tmp_path / "gw")
    profiles = {fmt: Path(p) for fmt, p in result["profiles"].items()}
    assert set(profiles) == {"apple", "sswan", "windows", "pyipsec"}
    assert json.loads(profiles["sswan"].read_text())["remote"]["addr"] == NAME
    apple = plistlib.loads(profiles["apple"].read_bytes())
    vpn = next(p for p in apple["PayloadContent"] if p["PayloadType"] == "com.apple.vpn.managed")
    assert vpn["IKEv2"]["RemoteIdentifier"] == NAME and vpn["IKEv2"]["AuthName"] == "user1"
    assert "AuthPassword" not in vpn["IKEv2"]  # the device asks; the password is shown only once
    assert "Add-VpnConnection" in profiles["windows"].read_text()
    # the pyipsec profile is a client config that `pyipsec check` accepts, beside its CA and password
    code, _, err = run("check", profiles["pyipsec"])
    assert code == 0, err
    client = tomllib.loads(profiles["pyipsec"].read_text())
    (conn,) = client["connections"].values()
    assert conn["remote"]["cacerts"] == ["ca-cert.pem"] and conn["remote_addrs"] == [NAME]


def test_text_output_shows_the_password_once_and_the_next_steps(tmp_path: Path) -> None:
    code, out, err = run("gateway", "init", "--name", NAME, "--dir", tmp_path / "gw", "--key", "ecdsa")
    assert code == 0, err
    password = (tmp_path / "gw" / "profiles" / "user1.eap-secret").read_text().strip()
    assert out.count(password) == 1 and password not in err
    for step in (
        "UDP 500 and 4500",
        "net.ipv4.ip_forward=1",
        "masquerade",
        f"pyipsec daemon {tmp_path / 'gw'}",
    ):
        assert step in out, step
    assert str(tmp_path / "gw" / "profiles") in out
    assert "add --dns" in out  # no DNS server given


def test_init_refuses_to_overwrite_without_force_and_replaces_with_it(tmp_path: Path) -> None:
    gw = tmp_path / "gw"
    first = _init(gw)
    ca_before = (gw / "ca" / "ca-cert.pem").read_bytes()
    code, out, err = run("gateway", "init", "--name", NAME, "--dir", gw, "--key", "ecdsa")
    assert code == 1 and out == ""
    assert err.startswith("pyipsec: ") and "already exists (use --force" in err and "Traceback" not in err
    assert (gw / "ca" / "ca-cert.pem").read_bytes() == ca_before
    assert _password_ok(gw / "users.db", "user1", first["password"])

    second = _init(gw, "--force")
    assert (gw / "ca" / "ca-cert.pem").read_bytes() != ca_before
    assert second["password"] != first["password"]
    assert _password_ok(gw / "users.db", "user1", second["password"])
    assert not _password_ok(gw / "users.db", "user1", first["password"])
    assert _mode(gw / "ca" / "ca-key.pem") == 0o600


def test_an_existing_user_store_is_not_touched_without_force(tmp_path: Path) -> None:
    gw = tmp_path / "gw"
    gw.mkdir()
    with SqliteStore(gw / "users.db") as store:
        store.add_user("alice", "alice's password")
    code, _, err = run("gateway", "init", "--name", NAME, "--dir", gw, "--key", "ecdsa")
    assert code == 1 and "users.db already exists" in err
    assert not (gw / "ca").exists()
    result = _init(gw, "--force")
    assert _password_ok(gw / "users.db", "alice", "alice's password")  # kept
    assert _password_ok(gw / "users.db", "user1", result["password"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "*.example.test"], "--name: bad gateway name '*.example.test': wildcards"),
        (["--name", "vpn example"], "--name: bad gateway name 'vpn example'"),
        (["--name", NAME, "--pool", "10.0.0.0/33"], "bad --pool '10.0.0.0/33'"),
        (
            ["--name", NAME, "--pool", "10.0.0.1/24"],
            "bad --pool '10.0.0.1/24': 10.0.0.1/24 has host bits set",
        ),
        (["--name", NAME, "--pool", "fd00::/112"], "bad --pool 'fd00::/112': not an IPv4 network"),
        (["--name", NAME, "--pool", "10.0.0.0/31"], "a /31 leaves no addresses"),
        (["--name", NAME, "--pool6", "10.0.0.0/24"], "bad --pool6 '10.0.0.0/24': not an IPv6 network"),
        (["--name", NAME, "--pool6", "fd00::/112", "--no-pool6"], "--pool6 and --no-pool6 contradict"),
        (["--name", NAME, "--dns", "dns.example"], "bad --dns 'dns.example': not an IP address"),
        (["--name", NAME, "--user", "-x"], "--user: bad user name '-x'"),
        (["--name", NAME, "--auth", "eap-tls", "--user", "john_doe"], "--user: bad client name 'john_doe'"),
        (["--name", NAME, "--lan", "10.1.0.0/8"], "bad --lan '10.1.0.0/8'"),
    ],
)
def test_bad_options_are_named_and_nothing_is_written(tmp_path: Path, args: list[str], message: str) -> None:
    code, out, err = run("gateway", "init", "--dir", tmp_path / "gw", "--key", "ecdsa", *args)
    assert code == 1 and out == ""
    assert err.startswith("pyipsec: ") and message in err, err
    assert not (tmp_path / "gw").exists()


def test_eap_tls_issues_the_users_certificate_and_pkcs12(tmp_path: Path) -> None:
    gw = tmp_path / "gw"
    result = _init(gw, "--auth", "eap-tls", "--user", "alice@example.test", "--no-pool6")
    assert result["password"] is None and isinstance(result["p12_password"], str)
    code, _, err = run("check", gw / "pyipsec.toml")
    assert code == 0, err
    config = tomllib.loads((gw / "pyipsec.toml").read_text())
    assert config["connections"]["rw"]["remote"] == {
        "auth": "eap-tls",
        "eap_id": "%any",
        "cacerts": [str(gw / "ca" / "ca-cert.pem")],
    }
    assert "rw6" not in config["pools"] and not (gw / "users.db").exists()
    client = x509.load_pem_x509_certificate((gw / "profiles" / "alice@example.test-cert.pem").read_bytes())
    san = client.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["alice@example.test"]
    assert _mode(gw / "profiles" / "alice@example.test-key.pem") == 0o600
    sswan = json.loads((gw / "profiles" / "alice@example.test.sswan").read_text())
    assert sswan["type"] == "ikev2-eap-tls" and sswan["local"]["p12"]
    assert _mode(gw / "profiles" / "alice@example.test.sswan") == 0o600  # holds the (encrypted) key
    code, _, err = run("check", gw / "profiles" / "alice@example.test.toml")
    assert code == 0, err


def test_an_address_as_name_gets_dns_and_ip_entries(tmp_path: Path) -> None:
    gw = tmp_path / "gw"
    code, out, err = run("gateway", "init", "--name", "192.0.2.10", "--dir", gw, "--key", "ecdsa", "--json")
    assert code == 0, err
    cert_path = Path(json.loads(out)["files"]["gateway certificate"])
    san = x509.load_pem_x509_certificate(cert_path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["192.0.2.10"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.10")]
    code, _, _ = run("pki", "doctor", cert_path, "--ca", gw / "ca")
    assert code == 0


def test_the_default_key_is_rsa_3072(tmp_path: Path) -> None:
    code, out, err = run("gateway", "init", "--name", NAME, "--dir", tmp_path / "gw", "--json", "--no-pool6")
    assert code == 0, err
    code, show, _ = run("pki", "show", json.loads(out)["files"]["gateway certificate"], "--json")
    assert code == 0 and "RSA 3072" in show


# --- pki doctor -----------------------------------------------------------------------------------


def test_doctor_prints_a_table_and_exits_1_when_a_client_rejects(tmp_path: Path) -> None:
    ca = make_ca()
    now = datetime.now(UTC)  # the command reads the clock
    cert = make_end_entity(
        ca, NAME, dns=[NAME], eku=None, not_before=now - timedelta(days=1), not_after=now + timedelta(days=90)
    )
    path = tmp_path / "gw.pem"
    path.write_bytes(cert.pem)
    code, out, err = run("pki", "doctor", path)
    assert code == 1 and err == ""
    assert "Windows" in out and "Apple iOS/macOS" in out and "strongSwan app (Android)" in out
    assert "rejects" in out and "serverAuth" in out
    code, out, _ = run("pki", "doctor", path, "--json")
    data = json.loads(out)
    assert code == 1 and data["rejected"] is True
    assert {c for c, v in data["clients"].items() if v["verdict"] == "rejects"} == {"windows", "apple"}


def test_doctor_names_a_missing_or_bad_file(tmp_path: Path) -> None:
    code, _, err = run("pki", "doctor", tmp_path / "missing.pem")
    assert code == 1 and err.startswith("pyipsec: ") and "missing.pem" in err and "Traceback" not in err
    (tmp_path / "junk.pem").write_text("-----BEGIN CERTIFICATE-----\njunk\n-----END CERTIFICATE-----\n")
    code, _, err = run("pki", "doctor", tmp_path / "junk.pem")
    assert code == 1 and "is not a PEM or DER X.509 certificate" in err


def test_listen_and_lan_narrow_the_gateway(tmp_path: Path) -> None:
    gw = tmp_path / "gw"
    _init(
        gw, "--listen", "192.0.2.1", "--lan", "10.1.0.0/16", "--lan", "fd00:1::/64", "--pool6", "fd00:9::/120"
    )
    config = tomllib.loads((gw / "pyipsec.toml").read_text())
    assert config["settings"]["listen"] == ["192.0.2.1"]
    assert config["connections"]["rw"]["children"]["rw"]["local_ts"] == ["10.1.0.0/16", "fd00:1::/64"]
    assert config["pools"]["rw6"] == {"addrs": "fd00:9::/120"}
    code, _, err = run("check", gw / "pyipsec.toml")
    assert code == 0, err
