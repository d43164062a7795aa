"""The ``pyipsec`` group: every command is listed, and ``daemon`` is imported only when it is used."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest

from pyipsec.cli.daemon import daemon
from pyipsec.cli.main import main
from pyipsec.cli.store import store

COMMANDS = [
    "check",
    "daemon",
    "down",
    "drain",
    "gateway",
    "install-service",
    "pki",
    "redirect",
    "rekey",
    "reload",
    "stats",
    "status",
    "store",
    "up",
    "user",
]


def test_the_group_lists_every_command_in_order() -> None:
    ctx = click.Context(main, info_name="pyipsec")
    assert main.list_commands(ctx) == COMMANDS
    assert main.get_command(ctx, "daemon") is daemon
    user = main.get_command(ctx, "user")
    assert isinstance(user, click.Group)
    assert user.list_commands(ctx) == ["add", "del", "export", "list", "passwd"]


@pytest.mark.parametrize("width", [40, 80, 200])
def test_help_lists_daemon_as_if_it_were_loaded(width: int) -> None:
    """``pyipsec --help`` shows the lazy command's summary exactly as click would show it."""
    ctx = click.Context(main, info_name="pyipsec", terminal_width=width)
    lazy = click.HelpFormatter(width=width)
    main.format_commands(ctx, lazy)
    eager = click.HelpFormatter(width=width)
    click.Group(commands={**main.commands, "daemon": daemon, "store": store}).format_commands(ctx, eager)
    assert lazy.getvalue() == eager.getvalue()
    assert "daemon" in lazy.getvalue()


def _loads_the_daemon(*args: str) -> tuple[bool, str]:
    """Run ``pyipsec ARGS`` in a fresh interpreter: was the daemon runtime imported, and the output."""
    code = (
        "import sys\n"
        "from pyipsec.cli.main import main\n"
        "try:\n"
        f"    main({list(args)!r}, prog_name='pyipsec')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('pyipsec.daemon.runtime' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *output, loaded = done.stdout.splitlines()
    return loaded == "True", "\n".join(output)


def test_client_commands_and_help_do_not_import_the_daemon() -> None:
    loaded, out = _loads_the_daemon("--help")
    assert not loaded
    assert re.search(r"\n  daemon +Run the IKE daemon", out)  # the column widens with the longest name
    loaded, out = _loads_the_daemon("status", "--help")
    assert not loaded
    assert "--socket PATH" in out


def test_the_daemon_command_imports_the_daemon() -> None:
    loaded, out = _loads_the_daemon("daemon", "--help")
    assert loaded
    assert "Usage: pyipsec daemon [OPTIONS] CONFIG" in out
    assert "--log-level TEXT" in out
