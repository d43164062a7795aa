"""``pyipsec check CONFIG [--json]`` through click's CliRunner, and ``python -m pyipsec``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pyipsec import __version__
from pyipsec.cli.main import main
from tests.support.pki import Issued, make_ca, make_end_entity

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

BAD = """
[settings]
port = "x"

[connections.office]
remote_addrs = ["198.51.100.2"]
  [connections.office.local]
  auth = "psk"
  [connections.office.remote]
  auth = "psk"
  [connections.office.children.net]
  local_ts = ["10.0.0.300/8", "10.1.0.0/16[tcp/443]"]
  esp_proposals = ["aes256-sha1"]
"""


# rich honours these even when output is not a terminal; the tests compare plain text.
PLAIN_ENV: dict[str, str | None] = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner(env=PLAIN_ENV).invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("name", "connection", "fragments"),
    [
        ("gateway-psk.toml", "office", ["local pre-shared key authentication:", "remote: 10.2.0.0/16"]),
        ("gateway-cert.toml", "rw", ["10.1.0.53[udp/53]", "rw: 10.3.0.1-10.3.0.254 (254 addresses)"]),
        ("client.toml", "home", ["remote: gw.example.org port 500", "vips: 0.0.0.0"]),
    ],
)
def test_check_examples(name: str, connection: str, fragments: list[str]) -> None:
    code, out, err = run("check", str(EXAMPLES / name))
    assert code == 0, err
    assert err == ""
    assert out.startswith(f"{EXAMPLES / name}: OK, 1 connection")
    assert f"\n{connection}: IKEv2" in out
    for fragment in fragments:
        assert fragment in out  # user text, brackets included, is printed verbatim


def test_check_never_prints_secrets() -> None:
    code, out, _ = run("check", str(EXAMPLES / "gateway-cert.toml"))
    assert code == 0
    assert "long password" not in out
    code, out, _ = run("check", "--json", str(EXAMPLES / "gateway-psk.toml"))
    assert code == 0
    assert "6f1d0c3a" not in out and "long password" not in out


def test_check_reports_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    code, out, err = run("check", str(path))
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines == [
        f'error: {path}:settings.port: expected an integer, got "x"',
        f'error: {path}:connections.office.children.net.local_ts[0]: not a network or range: "10.0.0.300/8"',
        f"error: {path}:connections.office.children.net.esp_proposals[0]: "
        'proposal "aes256-sha1" uses legacy algorithm "sha1" (RFC 8247); '
        "set legacy_algorithms = true on the connection to allow it",
    ]


def test_check_json_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    code, out, err = run("check", "--json", str(path))
    assert code == 1 and err == ""
    result = json.loads(out)
    assert result["ok"] is False and result["file"] == str(path)
    assert [e["key"] for e in result["errors"]] == [
        "settings.port",
        "connections.office.children.net.local_ts[0]",
        "connections.office.children.net.esp_proposals[0]",
    ]
    assert result["errors"][1]["message"] == 'not a network or range: "10.0.0.300/8"'


def test_check_json_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[settings\n")
    code, out, _ = run("check", "--json", str(path))
    assert code == 1
    [error] = json.loads(out)["errors"]
    assert (error["key"], error["line"], error["column"]) == ("", 1, 10)
    assert error["message"].startswith("invalid TOML")


def test_check_json_valid() -> None:
    code, out, _ = run("check", "--json", str(EXAMPLES / "gateway-cert.toml"))
    assert code == 0
    result = json.loads(out)
    assert result["ok"] is True and result["errors"] == [] and result["warnings"] == []
    conn = result["config"]["connections"]["rw"]
    assert conn["local"] == {
        "auth": "pubkey",
        "id": "gw.example.org",
        "eap_id": None,
        "certs": [str(EXAMPLES / "pki" / "gw-cert.pem")],
        "cacerts": [],
        "pubkeys": [],
        "revocation": "relaxed",
    }
    assert conn["children"]["lan"]["local_ts"] == ["10.1.0.0/16", "10.1.0.53[udp/53]"]
    assert conn["children"]["lan"]["life_time"] == 3960  # defaults are filled in
    assert result["config"]["pools"]["rw"] == {
        "addrs": "10.3.0.1-10.3.0.254",
        "dns": ["10.1.0.53"],
        "domains": [],
    }
    assert result["config"]["secrets"]["eap-carol"] == {"id": ["carol"], "secret_file": None, "type": "eap"}
    assert result["config"]["settings"]["port_nat_t"] == 4500


def test_check_warnings_go_to_stderr_and_pass(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    code, out, err = run("check", str(path))
    assert code == 0
    assert out.startswith(f"{path}: OK, 0 connections, 0 pools, 0 secrets")
    assert err == f"warning: {path}:connections: no connections defined\n"
    code, out, _ = run("check", "--json", str(path))
    assert json.loads(out)["warnings"] == [
        {"file": str(path), "key": "connections", "message": "no connections defined"}
    ]


def test_check_missing_file(tmp_path: Path) -> None:
    code, out, err = run("check", str(tmp_path / "nope.toml"))
    assert code == 1 and out == ""
    assert err == f"error: {tmp_path / 'nope.toml'}: cannot read: No such file or directory\n"


def test_usage_errors_exit_2() -> None:
    assert run("check")[0] == 2
    assert run("frobnicate")[0] == 2


def test_version_and_help() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out == f"pyipsec, version {__version__}\n"
    code, out, _ = run("--help")
    assert code == 0 and "check" in out


def test_python_dash_m(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PLAIN_ENV}
    ok = subprocess.run(
        [sys.executable, "-m", "pyipsec", "check", str(EXAMPLES / "gateway-psk.toml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "office: IKEv2" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    failed = subprocess.run(
        [sys.executable, "-m", "pyipsec", "check", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "settings.port" in failed.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "pyipsec", "--help"], capture_output=True, text=True, check=False
    )
    assert usage.stdout.startswith("Usage: pyipsec ")


EAP_GATEWAY = """
[settings]
users = "/var/lib/pyipsec/users.db"

[connections.rw]
  [connections.rw.local]
  auth = "psk"
  id = "gw.example.org"
  [connections.rw.remote]
  auth = "eap-mschapv2"

[secrets.ike-gw]
id = "gw.example.org"
secret = "0x0123456789abcdef0123456789abcdef"

[secrets.eap-users]
id = ["bob", "alice"]
secret = "a-long-enough-password"
"""


def test_check_says_where_a_gateway_finds_its_eap_users(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(EAP_GATEWAY)
    code, out, err = run("check", str(path))
    assert code == 0, err
    assert "EAP users: [secrets.eap*]: alice, bob; then the user store /var/lib/pyipsec/users.db" in out
    code, out, _ = run("check", "--json", str(path))
    assert json.loads(out)["eap_users"] == {
        "configured": ["alice", "bob"],
        "store": "/var/lib/pyipsec/users.db",
    }
    assert "a-long-enough-password" not in out


def test_check_names_the_shared_store_without_its_password(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    dsn = "postgresql://pyipsec:db-s3cret@db.example.org/vpn"
    users = 'users = "/var/lib/pyipsec/users.db"'
    path.write_text(EAP_GATEWAY.replace(users, f'store = "{dsn}"\ngateway_id = "gw1"'))
    code, out, err = run("check", "--json", str(path))
    assert code == 0, err
    assert json.loads(out)["eap_users"]["store"] == "postgresql://pyipsec:***@db.example.org/vpn"
    assert "db-s3cret" not in out
    path.write_text(EAP_GATEWAY.replace(users, 'store = "/var/lib/db-s3cret.db"'))
    code, out, err = run("check", str(path))
    assert code == 1 and "settings.store" in err and "PostgreSQL URI" in err


def test_check_the_organisation_example() -> None:
    code, out, err = run("check", str(EXAMPLES / "gateway-org.toml"))
    assert code == 0, err
    assert out.startswith(f"{EXAMPLES / 'gateway-org.toml'}: OK, 3 connections")
    for fragment in (
        "remote-1 public key authentication:",
        "remote-2 EAP-MSCHAPv2 authentication:",
        "revocation: ifuri",
        "remote EAP-TLS authentication:",
        "remote EAP-RADIUS authentication:",
        "radius: primary 10.1.0.10:1812/1813, backup 10.1.0.11:1812/1813",
        "authority example:",
    ):
        assert fragment in out
    assert "the RADIUS shared secret" not in out
    code, out, _ = run("check", "--json", str(EXAMPLES / "gateway-org.toml"))
    assert code == 0 and "the RADIUS shared secret" not in out


def _cert_gateway(tmp_path: Path, **cert: object) -> Path:
    """A gateway config with a certificate (and a key) written to ``tmp_path``; ``cert`` goes to
    make_end_entity, plus ``key_of`` (another Issued whose key to configure) and ``garbage``."""
    tmp_path.mkdir(parents=True)
    now = datetime.now(UTC)
    ca = make_ca("check CA", not_before=now - timedelta(days=2), not_after=now + timedelta(days=90))
    local_id = cert.pop("local_id", "gw.example.org")
    garbage = cert.pop("garbage", False)
    key_of = cert.pop("key_of", None)
    assert key_of is None or isinstance(key_of, Issued)
    window = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=60), **cert}
    gw = make_end_entity(ca, "gw.example.org", dns=["gw.example.org"], **window)  # type: ignore[arg-type]
    (tmp_path / "gw.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" if garbage else gw.pem
    )
    (tmp_path / "gw.key").write_bytes((key_of or gw).key_pem())
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    path = tmp_path / "gw.toml"
    path.write_text(
        f"""
[connections.rw]
  [connections.rw.local]
  auth = "pubkey"
  id = "{local_id}"
  certs = ["gw.pem"]
  [connections.rw.remote]
  auth = "pubkey"
  cacerts = ["ca.pem"]
[secrets.private-gw]
file = "gw.key"
"""
    )
    return path


def test_check_loads_the_files_the_daemon_needs(tmp_path: Path) -> None:
    good = _cert_gateway(tmp_path / "good")
    code, _, err = run("check", str(good))
    assert code == 0 and err == "", err

    code, _, err = run("check", str(_cert_gateway(tmp_path / "garbage", garbage=True)))
    assert code == 1 and "connections.rw.local.certs" in err, err

    other = make_end_entity(make_ca("another CA"), "other.example.org")
    code, _, err = run("check", str(_cert_gateway(tmp_path / "wrong-key", key_of=other)))
    assert code == 1 and "no [secrets.private*] key matches certificate" in err, err

    now = datetime.now(UTC)
    expired = _cert_gateway(
        tmp_path / "expired", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    code, _, err = run("check", str(expired))
    assert code == 1 and "expired on" in err and "connections.rw.local.certs" in err, err

    code, _, err = run("check", str(_cert_gateway(tmp_path / "wrong-id", local_id="vpn.example.org")))
    assert code == 1 and "connections.rw.local.id" in err and "is not in certificate" in err, err

    soon = _cert_gateway(tmp_path / "soon", not_after=now + timedelta(days=5))
    code, _, err = run("check", str(soon))
    assert code == 0 and "warning:" in err and "expires on" in err, err
