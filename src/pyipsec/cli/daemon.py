"""``pyipsec daemon CONFIG``: run the IKE daemon in the foreground.

This module imports the whole daemon (engine, data plane, netlink), which takes far longer
than the client commands need; :mod:`pyipsec.cli.main` therefore imports it only when this
command is run or its own help is asked for. A config file that does not load, and a
``PyIpsecError`` or ``OSError`` from the running daemon, end it with one line on standard error
and exit status 1.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from pyipsec.cli.app import fail, socket_option
from pyipsec.config.load import ConfigErrors, load_config
from pyipsec.daemon.runtime import Runtime
from pyipsec.errors import PyIpsecError
from pyipsec.logs import configure_logging

__all__ = ["daemon"]


@click.command()
@click.argument("config", type=click.Path(path_type=Path))
@socket_option
@click.option("--log-level", default=None, help="debug, info, warning or error (overrides the config).")
def daemon(config: Path, socket_path: Path | None, log_level: str | None) -> None:
    """Run the IKE daemon with the configuration file CONFIG (in the foreground)."""
    try:
        cfg = load_config(config)
    except ConfigErrors as exc:
        fail(str(exc))
    level = (log_level or str(cfg.settings.log_level)).upper()
    configure_logging(getattr(logging, level, logging.INFO), str(cfg.settings.log_format))  # pyipsec.logs
    # pyroute2 logs every netlink message at DEBUG (the daemon lists its addresses every 2 s)
    logging.getLogger("pyroute2").setLevel(max(logging.getLogger().level, logging.INFO))
    try:
        runtime = Runtime(cfg, config_path=config, control_path=socket_path)
        asyncio.run(runtime.run())
    except (PyIpsecError, OSError) as exc:
        fail(str(exc))
