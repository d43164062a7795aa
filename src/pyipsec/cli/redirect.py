"""``pyipsec redirect`` and ``pyipsec drain``: moving clients to another gateway (RFC 5685).

Theory of operation: both are clients of the daemon's control socket (``control.schema``
``redirect`` / ``drain``; the work is ``daemon.redirect``). ``redirect NAME --to GW`` sends the
clients of connection NAME — or of one IKE SA with ``--sa ID`` — an INFORMATIONAL REDIRECT;
``drain --to GW`` does it for every client and turns new ones away to GW too, until
``drain --stop``. The text output says how many clients were told and which were skipped (a
client that did not announce redirect support cannot be redirected); ``--json`` prints the
daemon's answer unchanged. Failures are one line and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from pyipsec.cli.app import echo_json, fail, socket_option
from pyipsec.control.client import DEFAULT_SOCKET, ControlClient
from pyipsec.control.protocol import JsonValue
from pyipsec.errors import PyIpsecError

__all__ = ["drain", "format_redirect", "redirect"]


def _call(socket_path: Path | None, cmd: str, args: dict[str, JsonValue]) -> JsonValue:
    try:
        client = ControlClient(socket_path or DEFAULT_SOCKET, timeout=30.0)
        return client.call(cmd, on_progress=None, **args)
    except PyIpsecError as exc:
        fail(str(exc))


def format_redirect(result: JsonValue) -> str:
    """One line for the clients redirected, one per client skipped."""
    assert isinstance(result, dict)
    done = result.get("redirected") or []
    skipped = result.get("skipped") or []
    to = result.get("to") or result.get("draining")
    lines = []
    if result.get("draining", "") is None:
        lines.append("drain ended: serving new clients again")
    else:
        n = len(done) if isinstance(done, list) else 0
        lines.append(f"redirected {n} IKE SA(s) to {to}")
        if "draining" in result:
            lines.append(f"draining: new clients go to {to}")
    for s in skipped if isinstance(skipped, list) else []:
        if isinstance(s, dict):
            lines.append(f"skipped IKE SA #{s.get('sa_id')}: {s.get('reason')}")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("name", required=False)
@click.option("--sa", "sa_id", type=click.IntRange(min=1), help="Redirect this IKE SA only.")
@click.option("--to", "gateway", required=True, help="The gateway to send the clients to (IP or DNS name).")
@socket_option
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's answer as JSON.")
def redirect(
    name: str | None, sa_id: int | None, gateway: str, socket_path: Path | None, as_json: bool
) -> None:
    """Send the clients of connection NAME (or of IKE SA --sa ID) to another gateway."""
    if (name is None) == (sa_id is None):
        raise click.UsageError("give a connection NAME or --sa ID (one of them)")
    args: dict[str, JsonValue] = {"name": name} if name is not None else {"sa_id": sa_id}
    result = _call(socket_path, "redirect", {**args, "to": gateway})
    if as_json:
        echo_json(result)
    else:
        click.echo(format_redirect(result), nl=False)


@click.command()
@click.option("--to", "gateway", help="The gateway every client goes to (IP or DNS name).")
@click.option("--stop", is_flag=True, help="End the drain: serve new clients again.")
@socket_option
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's answer as JSON.")
def drain(gateway: str | None, stop: bool, socket_path: Path | None, as_json: bool) -> None:
    """Move every client to another gateway and send new ones there too (before maintenance)."""
    if (gateway is None) == (not stop):
        raise click.UsageError("give --to GATEWAY or --stop")
    args: dict[str, JsonValue] = {"to": gateway} if gateway is not None else {"stop": True}
    result = _call(socket_path, "drain", args)
    if as_json:
        echo_json(result)
    else:
        click.echo(format_redirect(result), nl=False)
