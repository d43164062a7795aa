"""``pyipsec reload [--json]``: make the running daemon re-read its configuration file.

The daemon does the work (``daemon.reload``) and answers with a summary — connections added,
removed (their IKE SAs deleted), changed (new SAs use the new configuration), the IKE SAs
deleted and the connections started, and warnings (settings that need a restart, leases
outside a shrunk pool) — which this prints, or ``--json`` unchanged. A refused file prints
every problem as ``error: FILE:KEY: message`` (as ``pyipsec check`` does) and exits with
status 1; the daemon keeps running the configuration it had.
"""

from __future__ import annotations

from pathlib import Path

import click

from pyipsec.cli.app import EXIT_FAILURE, echo_json, fail, socket_option
from pyipsec.control.client import DEFAULT_SOCKET, ControlClient
from pyipsec.control.protocol import JsonValue
from pyipsec.errors import PyIpsecError

__all__ = ["format_reload", "reload"]


def _client(socket_path: Path | None) -> ControlClient:
    return ControlClient(socket_path or DEFAULT_SOCKET, timeout=60)


@click.command()
@socket_option
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's answer as JSON.")
def reload(socket_path: Path | None, as_json: bool) -> None:
    """Re-read the daemon's configuration file without dropping the SAs that stay.

    New connections are added, removed ones have their SAs deleted, changed ones apply to new
    SAs. A broken file is refused with each problem's key path (exit status 1); the daemon
    keeps its running configuration.
    """
    try:
        result = _client(socket_path).call("reload")
    except PyIpsecError as exc:
        fail(str(exc))
    ok = isinstance(result, dict) and result.get("ok") is True
    if as_json:
        echo_json(result)
    else:
        text, errors = format_reload(result)
        if text:
            click.echo(text, nl=False)
        if errors:
            click.echo(errors, nl=False, err=True)
    if not ok:
        raise SystemExit(EXIT_FAILURE)


def _names(value: JsonValue) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, list) and value else "none"


def format_reload(result: JsonValue) -> tuple[str, str]:
    """(standard output, standard error) for the daemon's answer to ``reload``."""
    if not isinstance(result, dict):
        return "", f"pyipsec: unexpected answer to reload: {result!r}\n"
    if result.get("ok") is not True:
        lines = [f"reload refused; the daemon keeps its running configuration ({result.get('file')})"]
        errors = result.get("errors")
        for e in errors if isinstance(errors, list) else []:
            if isinstance(e, dict):
                where = ":".join(str(p) for p in (e.get("file"), e.get("line"), e.get("key")) if p)
                lines.append(f"error: {where}: {e.get('message')}" if where else f"error: {e.get('message')}")
        return "", "\n".join(lines) + "\n"
    lines = [f"reloaded {result.get('file')}"]
    lines += [f"  {k:<10} {_names(result.get(k))}" for k in ("added", "removed", "changed")]
    deleted = result.get("deleted_sas")
    if isinstance(deleted, list) and deleted:
        lines.append("  deleted    IKE SA " + ", ".join(f"#{d}" for d in deleted))
    started = result.get("started")
    if isinstance(started, list) and started:
        lines.append(f"  started    {_names(started)}")
    applied = result.get("settings_applied")
    if isinstance(applied, list) and applied:
        lines.append(f"  settings   {_names(applied)}")
    pools = result.get("pools_changed")
    if isinstance(pools, list) and pools:
        lines.append(f"  pools      {_names(pools)}")
    if result.get("secrets_changed"):
        lines.append("  secrets    changed (new authentications use them)")
    out = "\n".join(lines) + "\n"
    warnings = result.get("warnings")
    err = "".join(f"warning: {w}\n" for w in warnings) if isinstance(warnings, list) else ""
    return out, err
