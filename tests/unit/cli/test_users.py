"""``pyipsec user add|del|list|passwd`` through click's CliRunner."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pyipsec.cli.main import main
from pyipsec.crypto.md4 import md4_pure
from pyipsec.store import SqliteStore, UserInfo


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "lib" / "users.db"


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def nt(password: str) -> bytes:
    return md4_pure(password.encode("utf-16-le"))


def stored(db: Path) -> dict[str, bytes | None]:
    with SqliteStore(db, create=False) as s:
        return {u.name: s.nt_hash(u.name) for u in s.list_users()}


def test_add_with_prompt_list_and_json(db: Path) -> None:
    result = run("user", "add", "alice", "--db", str(db), stdin="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    assert "user 'alice' added" in result.output
    assert "s3cret" not in result.output
    assert stored(db) == {"alice": nt("s3cret")}
    assert stat.S_IMODE(db.stat().st_mode) == 0o600

    result = run("user", "list", "--db", str(db))
    assert result.exit_code == 0
    assert result.output.split() == ["NAME", "FAILURES", "alice", "0"]

    result = run("user", "list", "--json", "--db", str(db))
    assert json.loads(result.output) == [{"name": "alice", "failures": 0}]


def test_prompt_mismatch_asks_again(db: Path) -> None:
    result = run("user", "add", "alice", "--db", str(db), stdin="one\ntwo\nthree\nthree\n")
    assert result.exit_code == 0, result.output
    assert stored(db) == {"alice": nt("three")}


def test_password_file_and_stdin(db: Path, tmp_path: Path) -> None:
    pw = tmp_path / "pw.txt"
    pw.write_text("from file\r\n", encoding="utf-8")
    assert run("user", "add", "alice", "--password-file", str(pw), "--db", str(db)).exit_code == 0
    assert (
        run("user", "add", "bob", "--password-file", "-", "--db", str(db), stdin="from stdin\n").exit_code
        == 0
    )
    pw.write_text("  spaces kept \n\n", encoding="utf-8")  # only one newline is dropped
    assert run("user", "passwd", "alice", "--password-file", str(pw), "--db", str(db)).exit_code == 0
    assert stored(db) == {"alice": nt("  spaces kept \n"), "bob": nt("from stdin")}


def test_passwd_resets_failures_and_del(db: Path) -> None:
    run("user", "add", "alice", "--db", str(db), stdin="a\na\n")
    with SqliteStore(db) as s:
        s.record_failure("alice")
        assert s.list_users() == [UserInfo("alice", 1)]
    result = run("user", "list", "--db", str(db))
    assert result.output.split()[-2:] == ["alice", "1"]
    result = run("user", "passwd", "alice", "--db", str(db), stdin="b\nb\n")
    assert result.exit_code == 0 and "password of 'alice' changed" in result.output
    assert stored(db) == {"alice": nt("b")}
    assert run("user", "list", "--db", str(db)).output.split()[-1] == "0"
    result = run("user", "del", "alice", "--db", str(db))
    assert result.exit_code == 0 and "deleted" in result.output
    assert run("user", "list", "--db", str(db)).output == "no users\n"
    assert run("user", "list", "--json", "--db", str(db)).output.strip() == "[]"


def test_environment_variable_names_the_database(db: Path) -> None:
    result = CliRunner(env={"PYIPSEC_USER_DB": str(db)}).invoke(main, ["user", "add", "eve"], input="x\nx\n")
    assert result.exit_code == 0, result.output
    assert stored(db) == {"eve": nt("x")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "del", "ghost"), "no user 'ghost'"),
        (("user", "passwd", "ghost", "--password-file", "-"), "no user 'ghost'"),
        (("user", "add", "alice", "--password-file", "-"), "user 'alice' already exists"),
        (("user", "add", " bob", "--password-file", "-"), "white space"),
        (("user", "add", "bob", "--password-file", "/nonexistent/pw"), "cannot read the password"),
    ],
)
def test_clear_errors_exit_1_without_traceback(db: Path, args: tuple[str, ...], message: str) -> None:
    run("user", "add", "alice", "--db", str(db), stdin="a\na\n")
    result = run(*args, "--db", str(db), stdin="pw\n")
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_empty_password_is_refused(db: Path) -> None:
    result = run("user", "add", "bob", "--password-file", "-", "--db", str(db), stdin="\n")
    assert result.exit_code == 1 and "password is empty" in result.output


def test_missing_database_is_not_created_by_list_del_passwd(db: Path) -> None:
    for args in (("user", "list"), ("user", "del", "x"), ("user", "passwd", "x", "--password-file", "-")):
        result = run(*args, "--db", str(db), stdin="pw\n")
        assert result.exit_code == 1
        assert f"no user database at {db}" in result.output
    assert not db.exists()


def test_world_readable_database_is_refused(db: Path) -> None:
    run("user", "add", "alice", "--db", str(db), stdin="a\na\n")
    db.chmod(0o644)
    result = run("user", "list", "--db", str(db))
    assert result.exit_code == 1
    assert "accessible to other users" in result.output and "chmod 600" in result.output
    assert "Traceback" not in result.output


def test_help_lists_the_subcommands() -> None:
    result = run("user", "--help")
    assert result.exit_code == 0
    for sub in ("add", "del", "list", "passwd"):
        assert sub in result.output
    assert "/var/lib/pyipsec/users.db" in run("user", "add", "--help").output
