"""``pyipsec pki doctor CERT``: which IKEv2 clients would reject a gateway certificate, and why.

Theory of operation: a thin shell around :func:`pyipsec.pki.doctor.diagnose`. It loads the
certificate (the first one of a PEM bundle, or a DER file) and, with ``--ca``, the CA
certificate (a file or a CA directory made by ``pyipsec pki ca``), reads the clock once and
prints one table — a row per client with ``ok``, ``warning`` or ``rejects`` and every reason —
or ``--json``. The exit status is 1 when at least one client rejects the certificate, so a
script can gate on it; warnings alone exit with 0. A file that cannot be read is one line on
stderr and status 1. :mod:`pyipsec.cli.main` adds the command to the ``pki`` group.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pyipsec.cli.app import EXIT_FAILURE, fail
from pyipsec.pki.doctor import Diagnosis, Verdict, diagnose
from pyipsec.pki.errors import PkiError
from pyipsec.pki.files import load_ca_certificate, load_certificates

__all__ = ["doctor", "doctor_table"]

_STYLES = {Verdict.OK: "green", Verdict.WARNING: "yellow", Verdict.REJECTS: "bold red"}


def doctor_table(diagnosis: Diagnosis) -> Table:
    """The diagnosis as a table: client, verdict, reasons."""
    title = f"{diagnosis.subject}" + (f" as {diagnosis.name}" if diagnosis.name else "")
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("client", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("why")
    for result in diagnosis.results:
        verdict = result.verdict
        reasons = "\n".join(f"{f.verdict.value}: {f.reason}" for f in result.findings) or "-"
        table.add_row(result.client.label, f"[{_STYLES[verdict]}]{verdict.value}[/]", reasons)
    return table


@click.command()
@click.argument("cert", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--ca",
    "ca_path",
    type=click.Path(path_type=Path),
    help="The CA that must have issued CERT (a certificate file or a `pyipsec pki ca` directory).",
)
@click.option("--name", help="The server name or address clients dial (default: the first subjectAltName).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def doctor(cert: Path, ca_path: Path | None, name: str | None, as_json: bool) -> None:
    """Check the gateway certificate CERT against the rules of the Windows, Apple (iOS/macOS),
    strongSwan Android and strongSwan clients; say which would reject it and why.

    Exits with status 1 if any client rejects it."""
    try:
        certificate = load_certificates(cert)[0]
        ca = load_ca_certificate(ca_path) if ca_path is not None else None
    except PkiError as exc:
        fail(str(exc))
    diagnosis = diagnose(certificate, now=datetime.now(UTC), ca=ca, name=name)
    if as_json:
        click.echo(json.dumps(diagnosis.as_json(), indent=2))
    else:
        # created per call so that the current sys.stdout (e.g. click's CliRunner) is used
        Console(highlight=False).print(doctor_table(diagnosis))
    if diagnosis.rejected:
        raise SystemExit(EXIT_FAILURE)
