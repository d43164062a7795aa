"""``pyipsec check CONFIG [--json]``: validate a configuration file and summarise it.

The result is computed as data and handed to :mod:`pyipsec.cli.render`, which prints text or
``--json``. An invalid file prints every problem with its key path and exits with status 1
and no traceback; warnings alone still exit with status 0.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console

from pyipsec.cli import render
from pyipsec.cli.app import EXIT_FAILURE, echo_json
from pyipsec.config.load import ConfigErrors, read_config
from pyipsec.daemon.preflight import preflight

__all__ = ["check"]


def _stdout() -> Console:
    # Created per call so that the current sys.stdout (e.g. click's CliRunner) is used;
    # soft_wrap keeps long lines (proposals, paths) intact when piped.
    return Console(soft_wrap=True, highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


@click.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(config: Path, as_json: bool) -> None:
    """Validate the configuration file CONFIG and summarise its connections.

    Exits with status 0 if it is valid (warnings included), 1 if not; every error is reported
    with its key path, e.g. connections.office.children.net.local_ts[0].
    """
    try:
        loaded = read_config(config)
    except ConfigErrors as exc:
        if as_json:
            echo_json(render.check_errors_json(str(config), exc.errors))
        else:
            _stderr().print(render.issues_text(exc.errors))
        raise SystemExit(EXIT_FAILURE) from None
    # the files it names, as the daemon will load them (certificates, keys, identities, dates)
    errors, more = preflight(loaded)
    if errors:
        if as_json:
            echo_json(render.check_errors_json(str(config), errors))
        else:
            _stderr().print(render.issues_text(errors))
        raise SystemExit(EXIT_FAILURE)
    loaded = replace(loaded, warnings=(*loaded.warnings, *more))
    if as_json:
        echo_json(render.check_json(loaded))
        return
    _stdout().print(render.config_summary(loaded))
    if loaded.warnings:
        _stderr().print(render.issues_text(loaded.warnings, severity="warning"))
