"""``pyipsec install-service``: write the systemd unit for this pyipsec, print the next steps.

Theory of operation
-------------------
The unit is package data (``pyipsec/data/pyipsec.service``), so an installed pyipsec carries
it. It holds three placeholders, filled in by :func:`render_unit`:

- ``@PYIPSEC@`` — the ``pyipsec`` executable that runs this command (:func:`find_executable`):
  the console script next to the running interpreter (a virtualenv's ``bin/pyipsec``), or the
  one on ``PATH``, or else ``python -m pyipsec`` with this interpreter;
- ``@CONFIG@`` — the configuration file, made absolute (systemd runs the service from ``/``);
- ``@PROTECT_HOME@`` — ``yes`` (``/home``, ``/root`` and ``/run/user`` hidden), or ``read-only``
  when the executable or the configuration lives there (a virtualenv in a home directory).

Paths are written as systemd's command lines want them: ``%`` doubled (it starts a specifier)
and quoted when they hold spaces or quotes. The unit goes to ``--unit-dir``
(``/etc/systemd/system``); an existing different unit is replaced only with ``--force``, and
``--dry-run`` prints the unit instead of writing it. What the unit asks of systemd (``Type=notify``,
the watchdog, the hardening) is described in the file itself and in ``daemon.notify``.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib.resources import files
from pathlib import Path

import click

from pyipsec.cli.app import fail

__all__ = ["UNIT_NAME", "find_executable", "install_service", "render_unit", "unit_template"]

UNIT_NAME = "pyipsec.service"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_CONFIG = Path("/etc/pyipsec/pyipsec.toml")
_HOMES = (Path("/home"), Path("/root"), Path("/run/user"))


def unit_template() -> str:
    return files("pyipsec").joinpath("data", UNIT_NAME).read_text(encoding="utf-8")


def _quote(arg: str) -> str:
    """One word of a systemd command line (systemd.service(5), "Command lines")."""
    arg = arg.replace("%", "%%")
    if any(c.isspace() or c in "\"'\\;$" for c in arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'
    return arg


def find_executable() -> list[str]:
    """The command that runs this pyipsec: its console script, or ``python -m pyipsec``."""
    beside = Path(sys.executable).parent / "pyipsec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside.absolute())]
    on_path = shutil.which("pyipsec")
    if on_path is not None:
        return [str(Path(on_path).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "pyipsec"]


def _under_home(path: Path) -> bool:
    return any(path.is_relative_to(home) for home in _HOMES)


def render_unit(executable: list[str], config: Path, template: str | None = None) -> str:
    """The unit file for ``executable`` (argv words) running ``config`` (an absolute path)."""
    if not config.is_absolute():
        raise ValueError(f"the configuration path must be absolute: {config}")
    text = unit_template() if template is None else template
    home = "read-only" if _under_home(Path(executable[0])) or _under_home(config) else "yes"
    return (
        text.replace("@PYIPSEC@", " ".join(_quote(w) for w in executable))
        .replace("@CONFIG@", _quote(str(config)))
        .replace("@PROTECT_HOME@", home)
    )


@click.command("install-service")
@click.option(
    "--unit-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_UNIT_DIR,
    show_default=True,
    help="Directory to write pyipsec.service into.",
)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Configuration file the service runs.",
)
@click.option("--dry-run", is_flag=True, help="Print the unit instead of writing it.")
@click.option("--force", is_flag=True, help="Replace an existing, different pyipsec.service.")
def install_service(unit_dir: Path, config: Path, dry_run: bool, force: bool) -> None:
    """Install the systemd unit that runs the daemon (Type=notify, watchdog, hardened).

    The unit runs this pyipsec's executable with the configuration file --config; start it with
    systemctl daemon-reload && systemctl enable --now pyipsec.
    """
    config = config.absolute()
    unit = render_unit(find_executable(), config)
    if dry_run:
        click.echo(unit, nl=False)
        return
    if not unit_dir.is_dir():
        fail(f"--unit-dir {unit_dir}: no such directory")
    target = unit_dir / UNIT_NAME
    try:
        if target.exists() and not force and target.read_text(encoding="utf-8") != unit:
            fail(f"{target} exists and differs: use --force to replace it")
        target.write_text(unit, encoding="utf-8")
        target.chmod(0o644)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    click.echo(f"wrote {target}")
    if not config.is_file():
        click.echo(f"note: {config} does not exist yet; write it and check it with: pyipsec check {config}")
    click.echo("next steps:")
    click.echo("  systemctl daemon-reload")
    click.echo("  systemctl enable --now pyipsec")
    click.echo("  systemctl status pyipsec       # 'N IKE SAs up' once ready")
    click.echo("  journalctl -u pyipsec -f       # its log")
