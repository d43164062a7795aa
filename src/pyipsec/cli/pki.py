"""``pyipsec pki ...`` (a CA, gateway and client certificates) and ``pyipsec user export``.

Theory of operation: each command is a thin shell around :mod:`pyipsec.pki`: it reads the
clock once, loads its inputs, calls the pure issuing or rendering function and writes the
result with :mod:`pyipsec.pki.files` (private keys and anything holding a password with mode
0600, nothing overwritten without ``--force``). Every expected failure — a missing CA, a bad
name, a file in the way — is one line on stderr starting with ``pyipsec:`` and exit status 1;
``--json`` prints what was written (paths and certificate details) as one JSON object.

``revoke`` records a revocation in the CA directory's index (``revoked.json``, written
atomically under a lock) and ``crl`` signs a new CRL from it, replacing the CRL file in one
rename so a daemon reading it never sees half a file; ``gateway`` and ``client`` take
``--crl-uri``/``--ocsp-uri`` to point issued certificates at where their status is published.

``export`` belongs to the ``user`` group that :mod:`pyipsec.cli.users` defines (``user add``,
``user list``, ...); :mod:`pyipsec.cli.main` adds it there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from pyipsec.cli.app import echo_json, fail
from pyipsec.pki.ca import CA_DAYS, LEAF_DAYS, Issued, create_ca, issue_client, issue_gateway, pkcs12_bundle
from pyipsec.pki.errors import PkiError
from pyipsec.pki.files import (
    KEY_MODE,
    PUBLIC_MODE,
    check_free,
    insecure_mode,
    issued_paths,
    load_ca,
    load_ca_certificate,
    load_certificates,
    save_ca,
    save_issued,
    write_file,
)
from pyipsec.pki.info import JsonValue, certificate_info, format_info
from pyipsec.pki.keys import KEY_CHOICES, KeySpec
from pyipsec.pki.names import file_stem, parse_client_name, parse_gateway_name
from pyipsec.pki.profiles import KE_GROUPS, ClientSuite, ProfileFormat, ProfileSpec, build_profile
from pyipsec.pki.revoke import (
    CRL_DAYS,
    CRL_FILE,
    REASONS,
    check_issued_by,
    crl_bytes,
    entries_json,
    index_lock,
    issue_crl,
    load_index,
    parse_reason,
    parse_serial,
    revoke,
    save_index,
    write_atomic,
)

__all__ = ["ca", "client", "crl", "export", "gateway", "pki", "revoke_command", "show"]


def _warn(message: str) -> None:
    click.echo(f"pyipsec: warning: {message}", err=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _read_password(path: Path) -> str:
    """The first line of ``path`` (without its line break)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"password file {path} not found")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read password file {path}: {getattr(exc, 'strerror', None) or exc}")
    password = text.splitlines()[0] if text else ""
    if not password:
        fail(f"password file {path} is empty")
    return password


def _load_ca(directory: Path) -> Issued:
    ca = load_ca(directory)
    mode = insecure_mode(directory / "ca-key.pem")
    if mode is not None:
        _warn(f"{directory / 'ca-key.pem'} is accessible to group or others (mode {mode:o}); chmod 600 it")
    return ca


def _report(files: dict[str, Path], issued: Issued, as_json: bool) -> None:
    info = certificate_info(issued.certificate)
    if as_json:
        out: dict[str, JsonValue] = {kind: str(path) for kind, path in files.items()}
        out["info"] = info.as_json()
        echo_json(out)
        return
    labels = {"certificate": "certificate", "key": "private key", "pkcs12": "PKCS#12"}
    for kind, path in files.items():
        suffix = f" (mode {KEY_MODE:04o})" if kind in ("key", "pkcs12") else ""
        click.echo(f"{labels[kind] + ':':<13}{path}{suffix}")
    click.echo(format_info(info))


_key_option = click.option(
    "--key",
    "key_type",
    type=click.Choice(KEY_CHOICES, case_sensitive=False),
    default="rsa",
    show_default=True,
    help="Key type: rsa = RSA 3072 (best supported by Windows and Android), ecdsa = ECDSA P-256.",
)
_force_option = click.option("--force", is_flag=True, help="Replace existing files.")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_ca_dir_option = click.option(
    "--ca",
    "--ca-dir",
    "ca_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="The CA directory made by `pyipsec pki ca`.",
)


_crl_uri_option = click.option(
    "--crl-uri",
    "crl_uris",
    multiple=True,
    metavar="URI",
    help="CRL distribution point to put into the certificate (repeatable), e.g. http://ca.example/ca.crl.",
)
_ocsp_uri_option = click.option(
    "--ocsp-uri",
    "ocsp_uris",
    multiple=True,
    metavar="URI",
    help="OCSP responder to put into the certificate's authorityInfoAccess (repeatable).",
)


@click.group()
def pki() -> None:
    """Create a CA and issue gateway and client certificates."""


@pki.command("ca")
@click.option("--cn", required=True, help='Common name of the CA, e.g. "pyipsec CA".')
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory to write to."
)
@_key_option
@click.option("--days", type=click.IntRange(min=1), default=CA_DAYS, show_default=True, help="Validity.")
@_force_option
@_json_option
def ca(cn: str, out_dir: Path, key_type: str, days: int, force: bool, as_json: bool) -> None:
    """Create a CA: OUT/ca-cert.pem and OUT/ca-key.pem (mode 0600)."""
    try:
        issued = create_ca(cn, now=_now(), days=days, key_spec=KeySpec.parse(key_type))
        cert_path, key_path = save_ca(out_dir, issued, overwrite=force)
    except PkiError as exc:
        fail(str(exc))
    _report({"certificate": cert_path, "key": key_path}, issued, as_json)


@pki.command()
@_ca_dir_option
@click.option(
    "--name",
    "names",
    multiple=True,
    required=True,
    help="A DNS name or IP address clients connect to (repeat for more; the first is the CN).",
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory to write to."
)
@_key_option
@click.option("--days", type=click.IntRange(min=1), default=LEAF_DAYS, show_default=True, help="Validity.")
@_crl_uri_option
@_ocsp_uri_option
@_force_option
@_json_option
def gateway(
    ca_dir: Path,
    names: tuple[str, ...],
    out_dir: Path,
    key_type: str,
    days: int,
    crl_uris: tuple[str, ...],
    ocsp_uris: tuple[str, ...],
    force: bool,
    as_json: bool,
) -> None:
    """Issue the gateway's certificate (serverAuth and iKEIntermediate, every name as dNSName)."""
    try:
        parsed = [parse_gateway_name(n) for n in names]
        cert_path, key_path = issued_paths(out_dir, file_stem(parsed[0].text))
        check_free([cert_path, key_path], overwrite=force)
        authority = _load_ca(ca_dir)
        issued = issue_gateway(
            authority,
            parsed,
            now=_now(),
            days=days,
            key_spec=KeySpec.parse(key_type),
            crl_uris=crl_uris,
            ocsp_uris=ocsp_uris,
        )
        save_issued(out_dir, file_stem(parsed[0].text), issued, overwrite=force)
    except PkiError as exc:
        fail(str(exc))
    _report({"certificate": cert_path, "key": key_path}, issued, as_json)


@pki.command()
@_ca_dir_option
@click.option("--name", required=True, help="The client's e-mail address or DNS name.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Directory to write to."
)
@_key_option
@click.option("--days", type=click.IntRange(min=1), default=LEAF_DAYS, show_default=True, help="Validity.")
@click.option("--p12", is_flag=True, help="Also write a PKCS#12 bundle (key, certificate, CA) for phones.")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path),
    help="File whose first line is the PKCS#12 password (prompted for if not given).",
)
@click.option(
    "--p12-encryption",
    type=click.Choice(["legacy", "modern"]),
    default="legacy",
    show_default=True,
    help="legacy = 3DES/SHA-1, which iOS, macOS and old Android need; modern = AES-256/SHA-256.",
)
@_crl_uri_option
@_ocsp_uri_option
@_force_option
@_json_option
def client(
    ca_dir: Path,
    name: str,
    out_dir: Path,
    key_type: str,
    days: int,
    p12: bool,
    password_file: Path | None,
    p12_encryption: str,
    crl_uris: tuple[str, ...],
    ocsp_uris: tuple[str, ...],
    force: bool,
    as_json: bool,
) -> None:
    """Issue a client certificate (clientAuth), optionally as a PKCS#12 bundle too."""
    if password_file is not None and not p12:
        fail("--password-file is for the PKCS#12 bundle: add --p12")
    try:
        parsed = parse_client_name(name)
        stem = file_stem(parsed.text)
        cert_path, key_path = issued_paths(out_dir, stem)
        p12_path = out_dir / f"{stem}.p12"
        check_free([cert_path, key_path, *([p12_path] if p12 else [])], overwrite=force)
        authority = _load_ca(ca_dir)
    except PkiError as exc:
        fail(str(exc))
    password = ""
    if p12:
        if password_file is not None:
            password = _read_password(password_file)
        else:
            password = click.prompt("PKCS#12 password", hide_input=True, confirmation_prompt=True, err=True)
            if not password:
                fail("the PKCS#12 password must not be empty")
    files = {"certificate": cert_path, "key": key_path}
    try:
        issued = issue_client(
            authority,
            parsed,
            now=_now(),
            days=days,
            key_spec=KeySpec.parse(key_type),
            crl_uris=crl_uris,
            ocsp_uris=ocsp_uris,
        )
        bundle = b""
        if p12:
            bundle = pkcs12_bundle(
                issued,
                authority.certificate,
                password.encode("utf-8"),
                friendly_name=parsed.text,
                encryption="modern" if p12_encryption == "modern" else "legacy",
            )
        save_issued(out_dir, stem, issued, overwrite=force)
        if p12:
            write_file(p12_path, bundle, mode=KEY_MODE, overwrite=force)
            files["pkcs12"] = p12_path
    except PkiError as exc:
        fail(str(exc))
    _report(files, issued, as_json)


@pki.command()
@click.argument("file", type=click.Path(path_type=Path))
@_json_option
def show(file: Path, as_json: bool) -> None:
    """Print subject, names, key usages, validity and fingerprint of the certificate(s) in FILE."""
    try:
        certs = load_certificates(file)
    except PkiError as exc:
        fail(str(exc))
    infos = [certificate_info(cert) for cert in certs]
    if as_json:
        echo_json({"file": str(file), "certificates": [info.as_json() for info in infos]})
        return
    click.echo("\n\n".join(format_info(info) for info in infos))


@pki.command("revoke")
@_ca_dir_option
@click.argument("cert_file", required=False, type=click.Path(path_type=Path))
@click.option("--serial", help="The serial number (hexadecimal) to revoke instead of a CERT_FILE.")
@click.option(
    "--reason",
    type=click.Choice(REASONS, case_sensitive=False),
    help="The CRLReason to publish (default: none, i.e. unspecified).",
)
@_json_option
def revoke_command(
    ca_dir: Path, cert_file: Path | None, serial: str | None, reason: str | None, as_json: bool
) -> None:
    """Revoke CERT_FILE (or --serial) in the CA directory; publish it with `pyipsec pki crl`."""
    if (cert_file is None) == (serial is None):
        fail("give either CERT_FILE or --serial HEX")
    try:
        authority = _load_ca(ca_dir)
        subject = ""
        if cert_file is not None:
            cert = load_certificates(cert_file)[0]
            check_issued_by(authority, cert)
            number, subject = cert.serial_number, cert.subject.rfc4514_string()
        else:
            number = parse_serial(serial or "")
        with index_lock(ca_dir):
            index, entry = revoke(
                load_index(ca_dir), number, now=_now(), reason=parse_reason(reason), subject=subject
            )
            index_path = save_index(ca_dir, index)
    except PkiError as exc:
        fail(str(exc))
    if as_json:
        out: dict[str, JsonValue] = {"index": str(index_path), **entry.as_json()}
        echo_json(out)
        return
    what = f" ({entry.subject})" if entry.subject else ""
    why = f" ({entry.reason.value})" if entry.reason is not None else ""
    click.echo(f"revoked serial {entry.serial:x}{what}{why} in {index_path}")
    click.echo("note: run `pyipsec pki crl` to publish a CRL that lists it")


@pki.command("crl")
@_ca_dir_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help=f"The CRL file to write: PEM if it ends in .pem, else DER (default: CA_DIR/{CRL_FILE}).",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=CRL_DAYS, show_default=True, help="Days until nextUpdate."
)
@_json_option
def crl(ca_dir: Path, out: Path | None, days: int, as_json: bool) -> None:
    """Issue a CRL listing every certificate revoked in the CA directory (replaces the file)."""
    target = out if out is not None else ca_dir / CRL_FILE
    try:
        authority = _load_ca(ca_dir)
        if target.parent != Path() and not target.parent.is_dir():
            raise PkiError(f"directory {target.parent} does not exist")
        with index_lock(ca_dir):
            index = load_index(ca_dir)
            issued, updated = issue_crl(authority, index, now=_now(), days=days)
            data, fmt = crl_bytes(issued, target)
            write_atomic(target, data)
            save_index(ca_dir, updated)
    except PkiError as exc:
        fail(str(exc))
    next_update = issued.next_update_utc
    if as_json:
        result: dict[str, JsonValue] = {
            "file": str(target),
            "format": fmt,
            "crl_number": updated.crl_number,
            "this_update": issued.last_update_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "next_update": next_update.strftime("%Y-%m-%dT%H:%M:%SZ") if next_update else None,
            "revoked": entries_json(updated.entries),
        }
        echo_json(result)
        return
    count = len(updated.entries)
    click.echo(
        f"wrote CRL number {updated.crl_number} ({fmt.upper()}, {count} revoked "
        f"certificate{'' if count == 1 else 's'}) to {target}"
    )
    if next_update is not None:
        click.echo(f"next update: {next_update:%Y-%m-%d %H:%M} UTC (publish a new CRL before then)")


# --- user export ---------------------------------------------------------------------------


def _ca_reference(ca_file: Path, out: Path) -> str:
    """How the pyipsec profile at ``out`` names ``ca_file``: relative if it lies beside or
    below the profile, else absolute."""
    target = ca_file.resolve()
    base = out.resolve().parent
    return str(target.relative_to(base)) if target.is_relative_to(base) else str(target)


@click.command()
@click.argument("name")
@click.option("--gateway", required=True, help="The address clients connect to (DNS name or IP address).")
@click.option(
    "--ca",
    "ca_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The CA certificate (a PEM/DER file or the directory made by `pyipsec pki ca`).",
)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice([f.value for f in ProfileFormat]),
    help="apple (.mobileconfig), sswan (strongSwan for Android), windows (PowerShell), pyipsec (TOML).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The profile file to write.")
@click.option("--remote-id", help="The gateway's IKE identity (default: --gateway).")
@click.option("--display-name", help="The connection's name on the device (default: --gateway).")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path),
    help="Store the password from this file's first line in the profile (apple, pyipsec only).",
)
@click.option(
    "--gateway-cert",
    type=click.Path(path_type=Path),
    help="The gateway certificate: checked against --gateway, --remote-id and the CA; sets Apple's "
    "CertificateType, which iOS/macOS need for an ECDSA gateway certificate.",
)
@click.option(
    "--ke-group",
    type=click.Choice([str(g) for g in KE_GROUPS]),
    default="19",
    show_default=True,
    help="IKE key exchange group: 14 = MODP-2048, 19/20/21 = ECP-256/384/521.",
)
@_force_option
@_json_option
def export(
    name: str,
    gateway: str,
    ca_path: Path,
    fmt: str,
    out: Path,
    remote_id: str | None,
    display_name: str | None,
    password_file: Path | None,
    gateway_cert: Path | None,
    ke_group: str,
    force: bool,
    as_json: bool,
) -> None:
    """Write user NAME's client profile for the gateway (EAP-MSCHAPv2, server certificate)."""
    kind = ProfileFormat(fmt)
    if password_file is not None and kind in (ProfileFormat.SSWAN, ProfileFormat.WINDOWS):
        fail(f"the {kind.value} profile cannot store a password; the client asks for it")
    password = _read_password(password_file) if password_file is not None else None
    try:
        check_free([out], overwrite=force)
        ca_cert = load_ca_certificate(ca_path)
        gw_cert = None
        if gateway_cert is not None:
            gw_certs = load_certificates(gateway_cert)
            gw_cert = gw_certs[0]
        spec = ProfileSpec(
            username=name,
            gateway=gateway,
            ca_certificate=ca_cert,
            remote_id=remote_id,
            display_name=display_name,
            password=password,
            gateway_certificate=gw_cert,
            suite=ClientSuite(int(ke_group)),
        )
        ca_file = ca_path / "ca-cert.pem" if ca_path.is_dir() else ca_path
        secret_file = None if password is not None else f"{file_stem(out.stem)}.eap-secret"
        profile = build_profile(kind, spec, ca_path=_ca_reference(ca_file, out), secret_file=secret_file)
        if out.parent != Path() and not out.parent.is_dir():
            raise PkiError(f"directory {out.parent} does not exist")
        write_file(
            out, profile.content, mode=KEY_MODE if profile.contains_secret else PUBLIC_MODE, overwrite=force
        )
    except PkiError as exc:
        fail(str(exc))
    notes: list[str] = []
    if kind == ProfileFormat.PYIPSEC and secret_file is not None:
        notes.append(f"put {name}'s password into {out.parent / secret_file} (mode 0600) before starting it")
    if kind == ProfileFormat.APPLE and password is None:
        notes.append("the device asks for the password when the profile is installed or first used")
    if as_json:
        result: dict[str, JsonValue] = {
            "file": str(out),
            "format": kind.value,
            "user": name,
            "gateway": spec.server.text,
            "remote_id": spec.server_id.text,
            "contains_password": profile.contains_secret,
            "mode": f"{KEY_MODE if profile.contains_secret else PUBLIC_MODE:04o}",
            "notes": list(notes),
        }
        echo_json(result)
        return
    click.echo(f"wrote {kind.value} profile for {name} ({spec.server.text}) to {out}")
    for note in notes:
        click.echo(f"note: {note}")
    if profile.contains_secret:
        click.echo(f"note: {out} holds the password (mode {KEY_MODE:04o}); hand it over securely")
