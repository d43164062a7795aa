"""``pyipsec up``, ``down``, ``rekey``, ``status`` and ``stats``: the clients of the daemon's
control socket.

``status`` prints the IKE and Child SAs in the layout of ``swanctl --list-sas``, then one line
of data-plane totals (traffic, and drops by reason over every SA, removed ones too, and of
none); ``stats`` prints the daemon's counters (IKE, UDP, the data plane's totals, RADIUS);
``--json`` prints the daemon's answer unchanged. Every failure is one line naming the cause (no
daemon, unknown connection, why the SA did not come up) and exit status 1. The daemon itself
is :mod:`pyipsec.cli.daemon`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pyipsec.cli.app import EXIT_FAILURE, echo_json, fail, socket_option
from pyipsec.control.client import DEFAULT_SOCKET, ControlClient
from pyipsec.control.protocol import JsonValue
from pyipsec.errors import PyIpsecError

__all__ = ["down", "format_stats", "format_status", "rekey", "stats", "status", "up"]


def _client(socket_path: Path | None, timeout: float = 60.0) -> ControlClient:
    return ControlClient(socket_path or DEFAULT_SOCKET, timeout=timeout)


@click.command()
@click.argument("name")
@socket_option
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the SA.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def up(name: str, socket_path: Path | None, timeout: float, as_json: bool) -> None:
    """Bring up connection NAME and wait until its IKE and first Child SA are established.

    Shows each phase as it completes (IKE_SA_INIT, IKE_AUTH, EAP, configuration, Child SA,
    routes and DNS) and ends with a summary, or with the reason it failed.
    """

    def show(step: dict[str, JsonValue]) -> None:
        if not as_json:
            click.echo(f"  {click.style('✓', fg='green')} {step.get('phase')!s:<12} {step.get('detail')}")

    if not as_json:
        click.echo(f"connecting {name} ...")
    try:
        result = _client(socket_path, timeout + 5).call("up", name=name, timeout=timeout, on_progress=show)
    except PyIpsecError as exc:
        fail(str(exc))
    if as_json:
        echo_json(result)
    assert isinstance(result, dict)
    if not result.get("ok"):
        if not as_json:
            click.echo(f"  {click.style('✗', fg='red')} {name} failed: {result.get('message')}", err=True)
        sys.exit(EXIT_FAILURE)
    if not as_json:
        click.echo(_summary(name, result))


def _summary(name: str, r: dict[str, JsonValue]) -> str:
    lines = [
        f"{name} is up (IKE SA #{r.get('sa_id')}"
        + (", already established)" if r.get("message") != "established" else ")")
    ]
    rows = [
        ("gateway", f"{r.get('remote_id', '')} at {r.get('remote', '')}".strip() if r.get("remote") else ""),
        ("virtual IP", _words(r.get("virtual_ips"))),
        ("DNS", _words(r.get("dns"))),
        ("routes", _words(r.get("remote_ts"))),
        ("IKE", str(r.get("proposal") or "")),
        ("ESP", str(r.get("child_proposal") or "")),
    ]
    lines += [f"  {k:<11} {v}" for k, v in rows if v]
    return "\n".join(lines)


@click.command()
@click.argument("target")
@socket_option
def down(target: str, socket_path: Path | None) -> None:
    """Delete the IKE SAs of connection TARGET (or IKE SA number TARGET) and their Child SAs."""
    try:
        client = _client(socket_path)
        result = (
            client.call("down", sa_id=int(target)) if target.isdigit() else client.call("down", name=target)
        )
    except PyIpsecError as exc:
        fail(str(exc))
    assert isinstance(result, dict)
    closed = result.get("closed") or []
    click.echo(f"closed {len(closed) if isinstance(closed, list) else 0} IKE SA(s)")


@click.command()
@click.argument("name")
@socket_option
@click.option("--ike", is_flag=True, help="Rekey the IKE SA instead of its Child SAs.")
@click.option(
    "--reauth",
    is_flag=True,
    help="Reauthenticate: a new IKE SA with fresh authentication replaces ours (make-before-break).",
)
def rekey(name: str, socket_path: Path | None, ike: bool, reauth: bool) -> None:
    """Rekey the Child SAs (or, with --ike, the IKE SA; with --reauth, reauthenticate) of NAME now."""
    try:
        client = _client(socket_path)
        result = client.call("rekey", name=name, ike=ike, reauth=reauth)
    except PyIpsecError as exc:
        fail(str(exc))
    click.echo(json.dumps(result))


@click.command()
@socket_option
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's answer as JSON.")
def status(socket_path: Path | None, as_json: bool) -> None:
    """List the IKE SAs with their Child SAs (like swanctl --list-sas)."""
    try:
        result = _client(socket_path).call("status")
    except PyIpsecError as exc:
        fail(str(exc))
    if as_json:
        echo_json(result)
    else:
        click.echo(format_status(result), nl=False)


@click.command()
@socket_option
@click.option("--json", "as_json", is_flag=True, help="Print the daemon's answer as JSON.")
def stats(socket_path: Path | None, as_json: bool) -> None:
    """Show the daemon's counters: IKE, UDP, the data plane's totals and drops, RADIUS."""
    try:
        result = _client(socket_path).call("stats")
    except PyIpsecError as exc:
        fail(str(exc))
    if as_json:
        echo_json(result)
    else:
        click.echo(format_stats(result), nl=False)


def format_stats(result: JsonValue) -> str:
    """``key value`` lines by section: ``ike``/``udp`` (the daemon's), ``dataplane``, ``radius``."""
    if not isinstance(result, dict):
        return ""
    lines = ["ike:"]
    lines += [
        f"  {k} {result.get(k)}" for k in ("malformed", "unknown_spi", "cookies_sent", "half_open_expired")
    ]
    lines += ["udp:", f"  received {result.get('udp_received')}", f"  sent {result.get('udp_sent')}"]
    dataplane = result.get("dataplane")
    if isinstance(dataplane, dict) and dataplane:
        lines.append("data plane (every SA since start, removed ones included, and drops of no SA):")
        lines += [f"  {k} {v}" for k, v in sorted(dataplane.items())]
    radius = result.get("radius")
    for name, server in sorted(radius.items()) if isinstance(radius, dict) else ():
        if isinstance(server, dict):
            lines.append(f"radius {name}: " + ", ".join(f"{k} {v}" for k, v in server.items()))
    return "\n".join(lines) + "\n"


#: drops by reason among the data plane's totals: of no SA, then summed over every SA
DROPS = (
    "unknown_spi",
    "no_policy",
    "malformed",
    "expired",
    "seq_exhausted",
    "no_route",
    "replay_drops",
    "integrity_failures",
    "policy_drops",
    "pad_errors",
    "esp_malformed",
)


def _dataplane_line(totals: JsonValue) -> str:
    """``data plane: N packets in, M out; drops …`` (empty without a data plane)."""
    if not isinstance(totals, dict) or not totals:
        return ""
    drops = [f"{k} {totals[k]}" for k in DROPS if totals.get(k)]
    return (
        f"data plane: {totals.get('packets_in', 0)} packets in, {totals.get('packets_out', 0)} out; "
        + ("drops " + ", ".join(drops) if drops else "no drops")
        + "\n"
    )


def format_status(result: JsonValue) -> str:
    sas = result.get("ike_sas", []) if isinstance(result, dict) else []
    pending = result.get("reconnecting", {}) if isinstance(result, dict) else {}
    tail = "".join(
        f"{name}: reconnecting, attempt {r.get('attempt')}, next in {r.get('next_in')} s"
        f" (last: {r.get('reason')})\n"
        for name, r in (pending.items() if isinstance(pending, dict) else ())
        if isinstance(r, dict)
    )
    tail += _dataplane_line(result.get("dataplane") if isinstance(result, dict) else None)
    if not isinstance(sas, list) or not sas:
        return "no IKE SAs\n" + tail
    lines: list[str] = []
    for sa in sas:
        if not isinstance(sa, dict):
            continue
        star_i, star_r = ("*", "") if sa.get("initiator") else ("", "*")
        lines.append(
            f"{sa.get('name')}: #{sa.get('id')}, {sa.get('state')}, IKEv2, "
            f"{sa.get('spi_i')}_i{star_i} {sa.get('spi_r')}_r{star_r}"
        )
        lines.append(f"  local  '{sa.get('local_id')}' @ {sa.get('local')}")
        lines.append(f"  remote '{sa.get('remote_id')}' @ {sa.get('remote')}")
        if sa.get("proposal"):
            lines.append(f"  {sa.get('proposal')}" + ("  (UDP-encapsulated)" if sa.get("encap") else ""))
        if sa.get("virtual_ips"):
            lines.append(f"  virtual IP {_words(sa.get('virtual_ips'))}")
        if sa.get("established_seconds") is not None:
            when = [f"established {sa.get('established_seconds')}s ago"]
            if sa.get("rekey_in") is not None:
                when.append(f"rekeying in {sa.get('rekey_in')}s")
            if sa.get("reauth_in") is not None:
                verb = "reauthentication" if sa.get("original_initiator") else "reauthentication due"
                when.append(f"{verb} in {sa.get('reauth_in')}s")
            lines.append("  " + ", ".join(when))
        children = sa.get("children", [])
        for ch in children if isinstance(children, list) else []:
            if not isinstance(ch, dict):
                continue
            lines.append(
                f"  {ch.get('name')}: #{ch.get('id')}, {ch.get('state')}, {ch.get('mode')}, "
                f"{ch.get('protocol')}{' in UDP' if ch.get('encap') else ''}: {ch.get('proposal')}"
            )
            traffic = ch.get("traffic")
            t = traffic if isinstance(traffic, dict) else {}
            lines.append(
                f"    in  {ch.get('spi_in')}, {t.get('bytes_in', 0)} bytes, {t.get('packets_in', 0)} packets"
            )
            lines.append(
                f"    out {ch.get('spi_out')}, {t.get('bytes_out', 0)} bytes, "
                f"{t.get('packets_out', 0)} packets"
            )
            drops = {k: v for k, v in t.items() if k not in _TRAFFIC and v}
            if drops:
                lines.append("    drops " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items())))
            timing = [
                f"{label} in {ch.get(key)}s"
                for label, key in (("rekeying", "rekey_in"), ("expires", "expires_in"))
                if ch.get(key) is not None
            ]
            if timing:
                lines.append("    " + ", ".join(timing))
            lines.append(f"    local  {_words(ch.get('local_ts'))}")
            lines.append(f"    remote {_words(ch.get('remote_ts'))}")
    return "\n".join(lines) + "\n" + tail


_TRAFFIC = frozenset({"bytes_in", "bytes_out", "packets_in", "packets_out"})


def _words(value: JsonValue) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, list) else ""
