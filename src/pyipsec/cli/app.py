"""What the ``pyipsec`` command modules share: exit statuses, the one-line failure, JSON output
and the ``--socket`` option.

The command modules (:mod:`~pyipsec.cli.check`, :mod:`~pyipsec.cli.sas`,
:mod:`~pyipsec.cli.daemon`, :mod:`~pyipsec.cli.pki`, :mod:`~pyipsec.cli.doctor`,
:mod:`~pyipsec.cli.gateway`, :mod:`~pyipsec.cli.users`) import this module and define their
commands without knowing the group they join; :mod:`pyipsec.cli.main` imports them and
assembles the ``pyipsec`` group. So no command module imports the module that imports it.

Exit status: 0 success, 1 the command's own failure (a bad config file, no daemon, a file in
the way), 2 a usage error (click's own).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from pyipsec.control.client import DEFAULT_SOCKET
from pyipsec.control.protocol import JsonValue

__all__ = ["EXIT_FAILURE", "EXIT_OK", "echo_json", "fail", "socket_option"]

EXIT_OK = 0
EXIT_FAILURE = 1


def fail(message: str) -> NoReturn:
    """Print ``pyipsec: MESSAGE`` on standard error and exit with status 1."""
    click.echo(f"pyipsec: {message}", err=True)
    sys.exit(EXIT_FAILURE)


def echo_json(value: JsonValue) -> None:
    """Print ``value`` as indented JSON on standard output."""
    click.echo(json.dumps(value, indent=2))


socket_option = click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"Control socket of the daemon (default {DEFAULT_SOCKET}).",
)
"""``--socket PATH`` of the daemon and of its control-socket clients."""
