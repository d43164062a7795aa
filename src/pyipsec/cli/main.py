"""The ``pyipsec`` command line.

Theory of operation: :func:`main` is a :mod:`click` group; each subcommand is a function
registered on it with ``@main.command()``, so ``daemon``, ``up``, ``down`` and ``status``
(clients of the control socket, DESIGN.md §6) join ``check`` the same way. Commands
compute their result as data and hand it to :mod:`pyipsec.cli.render`, which prints text or
``--json``. Expected failures (a bad config file) print every problem and exit with status
1 and no traceback; usage mistakes exit with click's status 2.

Exit status: 0 success, 1 the command's own failure (e.g. config errors), 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from pyipsec import __version__
from pyipsec.cli import render
from pyipsec.config.load import ConfigErrors, read_config

__all__ = ["EXIT_FAILURE", "EXIT_OK", "check", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1


def _stdout() -> Console:
    # Created per call so that the current sys.stdout (e.g. click's CliRunner) is used;
    # soft_wrap keeps long lines (proposals, paths) intact when piped.
    return Console(soft_wrap=True, highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _echo_json(value: render.JsonValue) -> None:
    click.echo(json.dumps(value, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyipsec")
def main() -> None:
    """pyipsec: an IKEv2/IPsec VPN server and client."""


@main.command()
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
            _echo_json(render.check_errors_json(str(config), exc.errors))
        else:
            _stderr().print(render.issues_text(exc.errors))
        raise SystemExit(EXIT_FAILURE) from None
    if as_json:
        _echo_json(render.check_json(loaded))
        return
    _stdout().print(render.config_summary(loaded))
    if loaded.warnings:
        _stderr().print(render.issues_text(loaded.warnings, severity="warning"))


# The daemon and its control-socket clients register themselves on ``main``.
from pyipsec.cli import pki as _pki  # noqa: E402, F401
from pyipsec.cli import sas as _sas  # noqa: E402, F401
from pyipsec.cli import users as _users  # noqa: E402, F401
