"""``pyipsec user add|del|list|passwd``: the EAP accounts in the embedded store.

These commands open the SQLite store directly (``--db``, default
``/var/lib/pyipsec/users.db``, or ``$PYIPSEC_USER_DB``), or the shared PostgreSQL store with
``--store DSN`` (or ``$PYIPSEC_STORE``; ``store.factory``); the daemon reads the same store, so
a change applies to the next login without a reload. Passwords come from ``--password-file``
(``-`` for standard input; one trailing newline is dropped) or are prompted for twice, and
only their NT hash is stored. Every failure (unknown user, user exists, a database file that
others can read) is one line on standard error and exit status 1.

An EAP-TLS account is not a row here but a client certificate: ``pyipsec user export --auth
eap-tls NAME`` (:mod:`pyipsec.cli.pki`) issues it with the built-in CA, or reuses the one it
issued before, and bundles it into the user's profile.
"""

from __future__ import annotations

import json
import sys
from contextlib import closing
from pathlib import Path

import click

from pyipsec.cli.app import fail
from pyipsec.store.base import Store
from pyipsec.store.factory import open_store
from pyipsec.store.sqlite import DEFAULT_DB_PATH, StoreError

__all__ = ["user", "user_add", "user_del", "user_list", "user_passwd"]

_db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DB_PATH,
    show_default=True,
    envvar="PYIPSEC_USER_DB",
    help="The user database (SQLite).",
)
_store_option = click.option(
    "--store",
    "dsn",
    default=None,
    envvar="PYIPSEC_STORE",
    metavar="DSN",
    help="The shared PostgreSQL store (a libpq URI or DSN) instead of the SQLite --db.",
)
_password_file_option = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Read the password from this file ('-' for standard input) instead of prompting.",
)


def _open(db_path: Path, dsn: str | None, *, create: bool = False) -> closing[Store]:
    try:
        return closing(open_store(dsn if dsn is not None else db_path, create=create))
    except StoreError as exc:
        fail(str(exc))


def _read_password(password_file: Path | None) -> str:
    if password_file is None:
        value = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        assert isinstance(value, str)
        return value
    try:
        if str(password_file) == "-":
            text = sys.stdin.readline()
        else:
            text = password_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the password from {password_file}: {exc}")
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return text


@click.group()
def user() -> None:
    """Manage the EAP (MS-CHAPv2) user accounts of the embedded store; export client profiles
    (for EAP-TLS with a client certificate issued by the built-in CA)."""


@user.command("add")
@click.argument("name")
@_password_file_option
@_db_option
@_store_option
def user_add(name: str, password_file: Path | None, db_path: Path, dsn: str | None) -> None:
    """Create the account NAME (the database is created if missing)."""
    with _open(db_path, dsn, create=True) as store:
        if store.nt_hash(name) is not None:
            fail(f"user {name!r} already exists")
        password = _read_password(password_file)
        try:
            store.add_user(name, password)
        except StoreError as exc:
            fail(str(exc))
    click.echo(f"user {name!r} added")


@user.command("del")
@click.argument("name")
@_db_option
@_store_option
def user_del(name: str, db_path: Path, dsn: str | None) -> None:
    """Delete the account NAME."""
    with _open(db_path, dsn) as store:
        try:
            store.delete_user(name)
        except StoreError as exc:
            fail(str(exc))
    click.echo(f"user {name!r} deleted")


@user.command("passwd")
@click.argument("name")
@_password_file_option
@_db_option
@_store_option
def user_passwd(name: str, password_file: Path | None, db_path: Path, dsn: str | None) -> None:
    """Set a new password for the account NAME (and clear its failure count)."""
    with _open(db_path, dsn) as store:
        if store.nt_hash(name) is None:
            fail(f"no user {name!r}")
        password = _read_password(password_file)
        try:
            store.set_password(name, password)
        except StoreError as exc:
            fail(str(exc))
    click.echo(f"password of {name!r} changed")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the accounts as JSON.")
@_db_option
@_store_option
def user_list(as_json: bool, db_path: Path, dsn: str | None) -> None:
    """List the accounts with their failed-login counts."""
    with _open(db_path, dsn) as store:
        try:
            users = store.list_users()
        except StoreError as exc:
            fail(str(exc))
    if as_json:
        click.echo(json.dumps([{"name": u.name, "failures": u.failures} for u in users], indent=2))
        return
    if not users:
        click.echo("no users")
        return
    width = max(len("NAME"), *(len(u.name) for u in users))
    click.echo(f"{'NAME':<{width}}  FAILURES")
    for u in users:
        click.echo(f"{u.name:<{width}}  {u.failures}")
