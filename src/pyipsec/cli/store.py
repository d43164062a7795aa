"""``pyipsec store init|migrate|status``: the shared PostgreSQL store's schema and gateways.

Theory of operation. The database of ``[settings] store`` is named with ``--store DSN`` (or
``$PYIPSEC_STORE``), or read from a configuration file with ``--config FILE``. ``init``
creates the versioned schema in an empty database (and is a no-op on one that has the
current version); ``migrate`` brings an older schema up to this pyipsec's version, and does
nothing when it is current. Both refuse a schema newer than this pyipsec knows
(:func:`pyipsec.store.postgres.migrate`). ``status`` prints the schema version and the live
lease count of each gateway alive within ``lease_grace`` (``--json`` for scripts). The DSN is
printed only with its password masked. Failures are one line and exit status 1.

The command is loaded lazily (``cli.main``): psycopg is imported only when it runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pyipsec.cli.app import fail
from pyipsec.config.load import ConfigErrors, load_config
from pyipsec.store.base import mask_dsn
from pyipsec.store.postgres import SCHEMA_VERSION, PostgresStore, migrate, schema_version
from pyipsec.store.sqlite import StoreError

__all__ = ["store"]

_store_option = click.option(
    "--store",
    "dsn",
    default=None,
    envvar="PYIPSEC_STORE",
    metavar="DSN",
    help="The PostgreSQL database (a libpq URI or DSN).",
)
_config_option = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Take the database from [settings] store of this configuration file.",
)


def _dsn(dsn: str | None, config: Path | None) -> tuple[str, int]:
    """The DSN to use and the lease grace that goes with it."""
    if dsn is not None:
        return dsn, 60
    if config is None:
        fail("name the database: --store DSN, $PYIPSEC_STORE or --config FILE")
    try:
        cfg = load_config(config)
    except ConfigErrors as exc:
        fail(f"{config}: {exc}")
    if cfg.settings.store is None:
        fail(f"{config}: settings.store is not set (the SQLite store needs no init)")
    return cfg.settings.store, cfg.settings.lease_grace


@click.group()
def store() -> None:
    """Create, migrate and inspect the shared PostgreSQL store ([settings] store)."""


@store.command("init")
@_store_option
@_config_option
def store_init(dsn: str | None, config: Path | None) -> None:
    """Create the schema in an empty database."""
    target, _ = _dsn(dsn, config)
    try:
        before, after = migrate(target, init=True)
    except StoreError as exc:
        fail(str(exc))
    if before == after:
        click.echo(f"{mask_dsn(target)}: schema version {after} is already in place")
    else:
        click.echo(f"{mask_dsn(target)}: schema version {after} created")


@store.command("migrate")
@_store_option
@_config_option
def store_migrate(dsn: str | None, config: Path | None) -> None:
    """Bring the schema up to this pyipsec's version (nothing to do if it is current)."""
    target, _ = _dsn(dsn, config)
    try:
        before, after = migrate(target)
    except StoreError as exc:
        fail(str(exc))
    if before == after:
        click.echo(f"{mask_dsn(target)}: schema version {after} is current, nothing to do")
    else:
        click.echo(f"{mask_dsn(target)}: schema migrated from version {before} to {after}")


@store.command("status")
@_store_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def store_status(dsn: str | None, config: Path | None, as_json: bool) -> None:
    """The schema version and the live leases of each live gateway."""
    target, grace = _dsn(dsn, config)
    try:
        version = schema_version(target)
        load: dict[str, int] = {}
        if version == SCHEMA_VERSION:
            with PostgresStore(target, grace=float(grace)) as pg:
                load = pg.gateway_load(time.time())
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        doc = {
            "store": mask_dsn(target),
            "schema_version": version,
            "current": SCHEMA_VERSION,
            "gateways": load,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"store: {mask_dsn(target)}")
    click.echo(
        f"schema version: {version if version is not None else 'none'} (this pyipsec: {SCHEMA_VERSION})"
    )
    for gateway, leases in sorted(load.items()):
        click.echo(f"gateway {gateway}: {leases} live leases")
