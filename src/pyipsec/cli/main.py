"""The ``pyipsec`` command line: the group, assembled from the command modules.

Theory of operation: :func:`main` is a :mod:`click` group. Its commands are defined in
modules that do not know it — ``check`` (:mod:`~pyipsec.cli.check`); ``up``, ``down``,
``rekey``, ``status`` and ``stats``, the clients of the daemon's control socket (DESIGN.md §6,
:mod:`~pyipsec.cli.sas`); ``reload`` (:mod:`~pyipsec.cli.reload`); ``pki`` and ``user export``
(:mod:`~pyipsec.cli.pki`); ``pki doctor`` (:mod:`~pyipsec.cli.doctor`); ``gateway init``
(:mod:`~pyipsec.cli.gateway`); ``redirect`` and ``drain`` (:mod:`~pyipsec.cli.redirect`);
``user`` (:mod:`~pyipsec.cli.users`); ``install-service`` (:mod:`~pyipsec.cli.service`);
``store`` (:mod:`~pyipsec.cli.store`, lazy: psycopg) — and are added to it here, so no command
module imports this one. What they share (exit statuses, the one-line failure, ``--socket``) is
:mod:`pyipsec.cli.app`. Commands compute their result as data and print it as text or
``--json`` (:mod:`pyipsec.cli.render`). Expected failures print one line, or every problem of
a bad config file, and exit with status 1 and no traceback; usage mistakes exit with click's
status 2.

``daemon`` (:mod:`~pyipsec.cli.daemon`) imports the whole daemon — engine, data plane,
netlink — which would slow every client command down. The group follows click's pattern for
lazily loaded subcommands: :meth:`_Group.get_command` imports that module by name when the
command runs or shows its own help, and ``pyipsec --help`` lists it with the summary kept in
:data:`_LAZY` instead of importing it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click

from pyipsec import __version__
from pyipsec.cli.check import check
from pyipsec.cli.doctor import doctor
from pyipsec.cli.gateway import gateway
from pyipsec.cli.pki import export, pki
from pyipsec.cli.redirect import drain, redirect
from pyipsec.cli.reload import reload
from pyipsec.cli.sas import down, rekey, stats, status, up
from pyipsec.cli.service import install_service
from pyipsec.cli.users import user

__all__ = ["main"]


@dataclass(frozen=True, slots=True)
class _Lazy:
    module: str  # defines the command under its own name
    summary: str  # the first paragraph of the command's help (a test holds it equal)


_LAZY = {
    "daemon": _Lazy(
        "pyipsec.cli.daemon", "Run the IKE daemon with the configuration file CONFIG (in the foreground)."
    ),
    "store": _Lazy(
        "pyipsec.cli.store", "Create, migrate and inspect the shared PostgreSQL store ([settings] store)."
    ),
}


class _Group(click.Group):
    """A group that imports the commands in :data:`_LAZY` only when they are looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = _LAZY.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(lazy.module), cmd_name)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own listing, over stand-ins that carry only the lazy commands' summaries
        # (the listing asks every command for its short help, which would import them)
        stand_ins = {name: click.Command(name, help=lazy.summary) for name, lazy in _LAZY.items()}
        click.Group(self.name, commands={**self.commands, **stand_ins}).format_commands(ctx, formatter)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyipsec")
def main() -> None:
    """pyipsec: an IKEv2/IPsec VPN server and client."""


for _command in (
    check,
    up,
    down,
    rekey,
    status,
    stats,
    pki,
    user,
    reload,
    gateway,
    install_service,
    redirect,
    drain,
):
    main.add_command(_command)
user.add_command(export)
pki.add_command(doctor)
