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
``user list``, ...); :mod:`pyipsec.cli.main` adds it there. It writes one profile
(:mod:`pyipsec.pki.profiles`) for one of three client authentications: ``--auth``, or what the
gateway's connection accepts (``--config``/``--connection``: its ``remote.auth`` or its
``remote-1``/``remote-2`` rounds, read from the raw TOML so the command does not depend on the
config model knowing every key). For ``eap-tls`` and ``pubkey+eap`` the account *is* a client
certificate: reused from ``--cert-dir`` when ``<name>-cert.pem``/``<name>-key.pem`` are there,
else issued by the CA exactly as ``pki client`` issues it; the device formats carry it as a
legacy-encrypted PKCS#12 bundle, the pyipsec format names the PEM files. A format that cannot
express the authentication is refused before anything is issued or written.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography import x509

from pyipsec.cli.app import echo_json, fail
from pyipsec.pki.ca import CA_DAYS, LEAF_DAYS, Issued, create_ca, issue_client, issue_gateway, pkcs12_bundle
from pyipsec.pki.errors import PkiError, ProfileError
from pyipsec.pki.files import (
    KEY_MODE,
    PUBLIC_MODE,
    check_free,
    insecure_mode,
    issued_paths,
    load_ca,
    load_ca_certificate,
    load_certificates,
    load_issued,
    save_ca,
    save_issued,
    write_file,
)
from pyipsec.pki.info import JsonValue, certificate_info, format_info
from pyipsec.pki.keys import KEY_CHOICES, KeySpec
from pyipsec.pki.names import ClientName, file_stem, parse_client_name, parse_gateway_name
from pyipsec.pki.profiles import (
    KE_GROUPS,
    ClientAuth,
    ClientIdentity,
    ClientSuite,
    ProfileFormat,
    ProfileSpec,
    build_profile,
    check_supported,
    client_auths_for_connection,
)
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


def _p12_password(password_file: Path | None) -> str:
    """The PKCS#12 password: ``password_file``'s first line, else asked for twice."""
    if password_file is not None:
        return _read_password(password_file)
    password = click.prompt("PKCS#12 password", hide_input=True, confirmation_prompt=True, err=True)
    if not isinstance(password, str) or not password:
        fail("the PKCS#12 password must not be empty")
    return password


def _bundle(issued: Issued, ca_cert: x509.Certificate, password: str, name: str, encryption: str) -> bytes:
    return pkcs12_bundle(
        issued,
        ca_cert,
        password.encode("utf-8"),
        friendly_name=name,
        encryption="modern" if encryption == "modern" else "legacy",
    )


def _issue_client(
    authority: Issued,
    name: ClientName,
    out_dir: Path,
    stem: str,
    *,
    days: int,
    key_type: str,
    force: bool,
    crl_uris: tuple[str, ...] = (),
    ocsp_uris: tuple[str, ...] = (),
) -> Issued:
    """Issue ``name``'s client certificate and save it with its key as ``out_dir/stem-*.pem``."""
    issued = issue_client(
        authority,
        name,
        now=_now(),
        days=days,
        key_spec=KeySpec.parse(key_type),
        crl_uris=crl_uris,
        ocsp_uris=ocsp_uris,
    )
    save_issued(out_dir, stem, issued, overwrite=force)
    return issued


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
_leaf_days_option = click.option(
    "--days",
    type=click.IntRange(min=1),
    default=LEAF_DAYS,
    show_default=True,
    help="Validity of a newly issued certificate.",
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
@_leaf_days_option
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
@_leaf_days_option
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
    password = _p12_password(password_file) if p12 else ""
    files = {"certificate": cert_path, "key": key_path}
    try:
        issued = _issue_client(
            authority,
            parsed,
            out_dir,
            stem,
            days=days,
            key_type=key_type,
            force=force,
            crl_uris=crl_uris,
            ocsp_uris=ocsp_uris,
        )
        if p12:
            bundle = _bundle(issued, authority.certificate, password, parsed.text, p12_encryption)
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


def _reference(target_file: Path, out: Path) -> str:
    """How the pyipsec profile at ``out`` names ``target_file``: relative if it lies beside or
    below the profile, else absolute."""
    target = target_file.resolve()
    base = out.resolve().parent
    return str(target.relative_to(base)) if target.is_relative_to(base) else str(target)


def _gateway_auths(config_path: Path, connection: str | None) -> tuple[ClientAuth, ...]:
    """How ``connection`` of the gateway config may authenticate clients, read from the raw
    TOML (``remote.auth`` or the rounds ``remote-1``, ``remote-2``)."""
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PkiError(f"gateway config {config_path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PkiError(f"cannot read gateway config {config_path}: {exc}") from None
    connections = data.get("connections")
    if not isinstance(connections, dict) or not connections:
        raise PkiError(f"gateway config {config_path} has no [connections.*]")
    if connection is None:
        if len(connections) != 1:
            raise PkiError(
                f"gateway config {config_path} has several connections; choose one with --connection "
                f"({', '.join(sorted(connections))})"
            )
        connection = next(iter(connections))
    table = connections.get(connection)
    if not isinstance(table, dict):
        raise PkiError(f"gateway config {config_path} has no connection {connection!r}")
    try:
        return client_auths_for_connection(table)
    except ProfileError as exc:
        raise ProfileError(f"connection {connection!r}: {exc}") from None


def _export_auth(auth_name: str | None, config_path: Path | None, connection: str | None) -> ClientAuth:
    """``--auth``, checked against the gateway's connection when ``--config`` is given."""
    if config_path is None:
        if connection is not None:
            fail("--connection names a connection of --config: add --config")
        return ClientAuth(auth_name or ClientAuth.EAP_MSCHAPV2)
    try:
        accepted = _gateway_auths(config_path, connection)
    except PkiError as exc:
        fail(str(exc))
    if auth_name is None:
        return accepted[0]
    if ClientAuth(auth_name) not in accepted:
        expected = " or ".join(a.value for a in accepted)
        fail(f"--auth {auth_name} contradicts the gateway's connection, which expects {expected}")
    return ClientAuth(auth_name)


@dataclass(frozen=True, slots=True)
class _Account:
    """A client certificate for a profile: where it lies and whether it was there already."""

    issued: Issued
    cert_path: Path
    key_path: Path
    reused: bool


def _client_account(ca_path: Path, name: ClientName, cert_dir: Path, key_type: str, days: int) -> _Account:
    """``name``'s certificate and key from ``cert_dir`` if there, else newly issued by the CA
    in ``ca_path`` (a CA directory) and saved there."""
    stem = file_stem(name.text)
    cert_path, key_path = issued_paths(cert_dir, stem)
    if cert_path.exists() or key_path.exists():
        issued = load_issued(cert_dir, stem)
        expiry = issued.certificate.not_valid_after_utc
        if _now() > expiry:
            raise PkiError(
                f"{cert_path} expired on {expiry:%Y-%m-%d}; remove it and its key to issue a new one"
            )
        return _Account(issued, cert_path, key_path, reused=True)
    if not ca_path.is_dir():
        raise PkiError(
            f"no certificate for {name.text} in {cert_dir}: give --ca the CA directory made by "
            "`pyipsec pki ca` to issue one"
        )
    issued = _issue_client(_load_ca(ca_path), name, cert_dir, stem, days=days, key_type=key_type, force=False)
    return _Account(issued, cert_path, key_path, reused=False)


def _check_export_options(
    kind: ProfileFormat, auth: ClientAuth, password_file: Path | None, embed_p12_password: bool
) -> None:
    if password_file is not None and kind in (ProfileFormat.SSWAN, ProfileFormat.WINDOWS):
        fail(f"the {kind.value} profile cannot store a password; the client asks for it")
    if password_file is not None and not auth.uses_password:
        fail(f"{auth.value} has no EAP password: leave out --password-file")
    if embed_p12_password and (kind != ProfileFormat.APPLE or not auth.uses_certificate):
        fail("--embed-p12-password is for apple profiles with a client certificate (eap-tls)")
    try:
        check_supported(kind, auth)
    except ProfileError as exc:
        fail(str(exc))


@click.command()
@click.argument("name")
@click.option("--gateway", required=True, help="The address clients connect to (DNS name or IP address).")
@click.option(
    "--ca",
    "ca_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The CA certificate (a PEM/DER file or the directory made by `pyipsec pki ca`; the directory, "
    "with its key, to issue client certificates).",
)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice([f.value for f in ProfileFormat]),
    help="apple (.mobileconfig), sswan (strongSwan for Android), windows (PowerShell), pyipsec (TOML).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The profile file to write.")
@click.option(
    "--auth",
    "auth_name",
    type=click.Choice([a.value for a in ClientAuth]),
    help="How the client logs in: eap-mschapv2 (password), eap-tls (client certificate), pubkey+eap "
    "(machine certificate, then password). Default: from --config, else eap-mschapv2.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The gateway's config: --auth follows how its connection authenticates clients.",
)
@click.option("--connection", help="The connection of --config (needed when it has several).")
@click.option("--remote-id", help="The gateway's IKE identity (default: --gateway).")
@click.option("--display-name", help="The connection's name on the device (default: --gateway).")
@click.option(
    "--password-file",
    type=click.Path(path_type=Path),
    help="Store the EAP password from this file's first line in the profile (apple, pyipsec only).",
)
@click.option(
    "--cert-name",
    help="The client certificate's e-mail address or DNS name (default: NAME; for pubkey+eap it may "
    "name the machine).",
)
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the client certificate and key are reused from or issued to (default: beside --out).",
)
@_key_option
@_leaf_days_option
@click.option(
    "--p12-password-file",
    type=click.Path(path_type=Path),
    help="File whose first line protects the PKCS#12 bundle in the profile (prompted for if not given).",
)
@click.option(
    "--embed-p12-password",
    is_flag=True,
    help="Store the PKCS#12 password in the profile (apple only); otherwise the device asks at install.",
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
    auth_name: str | None,
    config_path: Path | None,
    connection: str | None,
    remote_id: str | None,
    display_name: str | None,
    password_file: Path | None,
    cert_name: str | None,
    cert_dir: Path | None,
    key_type: str,
    days: int,
    p12_password_file: Path | None,
    embed_p12_password: bool,
    gateway_cert: Path | None,
    ke_group: str,
    force: bool,
    as_json: bool,
) -> None:
    """Write user NAME's client profile for the gateway (the server signs with its certificate;
    the client uses EAP-MSCHAPv2, EAP-TLS, or a machine certificate then EAP-MSCHAPv2).

    For eap-tls and pubkey+eap the client certificate (--cert-name, default NAME) is reused from
    --cert-dir or issued there by the CA; the devices get it as a PKCS#12 bundle."""
    kind = ProfileFormat(fmt)
    auth = _export_auth(auth_name, config_path, connection)
    _check_export_options(kind, auth, password_file, embed_p12_password)
    if not auth.uses_certificate and (cert_name or cert_dir or p12_password_file):
        fail("--cert-name, --cert-dir and --p12-password-file are for eap-tls and pubkey+eap")
    password = _read_password(password_file) if password_file is not None else None
    account: _Account | None = None
    try:
        check_free([out], overwrite=force)
        if out.parent != Path() and not out.parent.is_dir():
            raise PkiError(f"directory {out.parent} does not exist")
        ca_cert = load_ca_certificate(ca_path)
        client_name = parse_client_name(cert_name or name) if auth.uses_certificate else None
        p12_password = None
        if client_name is not None and kind != ProfileFormat.PYIPSEC:
            p12_password = _p12_password(p12_password_file)
        gw_cert = load_certificates(gateway_cert)[0] if gateway_cert is not None else None
        identity = None
        if client_name is not None:
            account = _client_account(ca_path, client_name, cert_dir or out.parent, key_type, days)
            bundle = None
            if p12_password is not None:
                bundle = _bundle(account.issued, ca_cert, p12_password, client_name.text, "legacy")
            identity = ClientIdentity(
                account.issued.certificate, bundle, p12_password if embed_p12_password else None
            )
        spec = ProfileSpec(
            username=name,
            gateway=gateway,
            ca_certificate=ca_cert,
            remote_id=remote_id,
            display_name=display_name,
            password=password,
            gateway_certificate=gw_cert,
            suite=ClientSuite(int(ke_group)),
            auth=auth,
            identity=identity,
        )
        ca_file = ca_path / "ca-cert.pem" if ca_path.is_dir() else ca_path
        secret_file = None if password is not None else f"{file_stem(out.stem)}.eap-secret"
        profile = build_profile(
            kind,
            spec,
            ca_path=_reference(ca_file, out),
            secret_file=secret_file,
            cert_path=_reference(account.cert_path, out) if account else None,
            key_path=_reference(account.key_path, out) if account else None,
        )
        write_file(
            out, profile.content, mode=KEY_MODE if profile.contains_secret else PUBLIC_MODE, overwrite=force
        )
    except PkiError as exc:
        fail(str(exc))
    notes = _export_notes(kind, spec, out, secret_file, account)
    if as_json:
        result: dict[str, JsonValue] = {
            "file": str(out),
            "format": kind.value,
            "auth": auth.value,
            "user": name,
            "gateway": spec.server.text,
            "remote_id": spec.server_id.text,
            "contains_password": password is not None or embed_p12_password,
            "contains_secret": profile.contains_secret,
            "mode": f"{KEY_MODE if profile.contains_secret else PUBLIC_MODE:04o}",
            "notes": list(notes),
        }
        if account is not None:
            result["certificate"] = str(account.cert_path)
            result["key"] = str(account.key_path)
            result["certificate_reused"] = account.reused
        echo_json(result)
        return
    click.echo(f"wrote {kind.value} profile for {name} ({spec.server.text}, {auth.value}) to {out}")
    for note in notes:
        click.echo(f"note: {note}")


def _export_notes(
    kind: ProfileFormat, spec: ProfileSpec, out: Path, secret_file: str | None, account: _Account | None
) -> list[str]:
    """What the admin must still do or know about the written profile."""
    notes: list[str] = []
    if account is not None:
        verb = "reused" if account.reused else "issued"
        notes.append(f"{verb} client certificate {account.cert_path} (key {account.key_path})")
    if kind == ProfileFormat.PYIPSEC and secret_file is not None and spec.auth.uses_password:
        notes.append(
            f"put {spec.username}'s password into {out.parent / secret_file} (mode 0600) before starting it"
        )
    if kind == ProfileFormat.APPLE and spec.auth.uses_password and spec.password is None:
        notes.append("the device asks for the password when the profile is installed or first used")
    if spec.identity is not None and spec.identity.pkcs12 is not None:
        if spec.identity.pkcs12_password is None:
            notes.append("the device asks for the PKCS#12 password on import: hand it over separately")
        else:
            notes.append(f"{out} holds the PKCS#12 password (mode {KEY_MODE:04o}); hand it over securely")
    if spec.password is not None:
        notes.append(f"{out} holds the password (mode {KEY_MODE:04o}); hand it over securely")
    return notes
