"""``pyipsec store init|migrate|status`` and ``pyipsec user --store`` against a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from click.testing import CliRunner

from pyipsec.cli.main import main
from pyipsec.store.postgres import SCHEMA_VERSION, PostgresStore


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.output


def test_init_migrate_status(pg_empty: str) -> None:
    code, out = run("store", "init", "--store", pg_empty)
    assert code == 0 and f"schema version {SCHEMA_VERSION} created" in out
    code, out = run("store", "init", "--store", pg_empty)
    assert code == 0 and "already in place" in out
    code, out = run("store", "migrate", "--store", pg_empty)
    assert code == 0 and "nothing to do" in out
    with PostgresStore(pg_empty, gateway_id="gw-a") as gw:
        gw.heartbeat(time.time())
    code, out = run("store", "status", "--store", pg_empty, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["gateways"] == {"gw-a": 0}


def test_init_refuses_a_newer_schema_in_one_line(pg_empty: str) -> None:
    assert run("store", "init", "--store", pg_empty)[0] == 0
    with psycopg.connect(pg_empty, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    code, out = run("store", "init", "--store", pg_empty)
    assert code == 1 and "newer than this pyipsec" in out and "Traceback" not in out
    code, out = run("store", "migrate", "--store", pg_empty)
    assert code == 1 and "newer than this pyipsec" in out


def test_store_from_the_config_file(pg_empty: str, tmp_path: Path) -> None:
    conf = tmp_path / "pyipsec.toml"
    conf.write_text(f'[settings]\nstore = "{pg_empty}"\n')
    code, out = run("store", "init", "--config", str(conf))
    assert code == 0 and "created" in out
    conf.write_text("[settings]\n")
    code, out = run("store", "init", "--config", str(conf))
    assert code == 1 and "settings.store is not set" in out


def test_password_is_masked_in_errors(tmp_path: Path) -> None:
    dsn = f"postgresql://pyipsec:s3cret@/vpn?host={tmp_path}&port=1"
    code, out = run("store", "status", "--store", dsn)
    assert code == 1
    assert "store unavailable" in out and "s3cret" not in out and "pyipsec:***@" in out


def test_user_commands_on_the_shared_store(pg_dsn: str, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("alice-secret\n")
    assert run("user", "add", "alice", "--password-file", str(pw), "--store", pg_dsn)[0] == 0
    code, out = run("user", "add", "alice", "--password-file", str(pw), "--store", pg_dsn)
    assert code == 1 and "already exists" in out
    code, out = run("user", "list", "--json", "--store", pg_dsn)
    assert json.loads(out) == [{"name": "alice", "failures": 0}]
    assert run("user", "del", "alice", "--store", pg_dsn)[0] == 0
    with PostgresStore(pg_dsn) as s:
        assert s.list_users() == []
    assert not (tmp_path / "users.db").exists()


def test_client_commands_do_not_import_psycopg() -> None:
    code = "import sys\nfrom pyipsec.cli.main import main\nprint('psycopg' in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
