"""``pyipsec gateway init``: a working remote-access gateway from one command.

Theory of operation: the command validates its options into a
:class:`~pyipsec.pki.gateway_setup.GatewayPlan`, lists every file it is going to write
(:class:`~pyipsec.pki.gateway_setup.GatewayLayout`) and refuses, before writing the first one,
if any exists and ``--force`` is not given. Then it uses what the other commands use — no second
CA or profile writer: :func:`~pyipsec.pki.ca.create_ca` and
:func:`~pyipsec.pki.ca.issue_gateway` (serverAuth and iKEIntermediate, the name as dNSName and,
for an address, iPAddress), :mod:`pyipsec.pki.files` for the files (keys, the user store, the
password file and profiles holding secrets with mode 0600), the SQLite user store for the first
EAP-MSCHAPv2 account (or :func:`~pyipsec.pki.ca.issue_client` and a PKCS#12 bundle for
EAP-TLS), and :func:`~pyipsec.pki.profiles.build_profile` for the user's profiles in every
format. The configuration comes from :func:`~pyipsec.pki.gateway_setup.render_config`.

Before it reports success the command loads the written configuration exactly as ``pyipsec
check`` does (:func:`~pyipsec.config.load.read_config` and the daemon's preflight of its files)
and runs :func:`~pyipsec.pki.doctor.diagnose` on the new gateway certificate; a problem there
is a bug and fails the command. The generated password (and, for EAP-TLS, the PKCS#12 password)
is printed once on standard output — never logged — together with the next steps: starting the
daemon (or ``pyipsec install-service`` where that command exists), the firewall ports, IP
forwarding and NAT, and where the profiles are.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import click

from pyipsec.cli.app import echo_json, fail
from pyipsec.config.load import ConfigErrors, read_config
from pyipsec.control.protocol import JsonValue
from pyipsec.daemon.preflight import preflight
from pyipsec.pki.ca import Issued, create_ca, issue_client, issue_gateway, pkcs12_bundle
from pyipsec.pki.doctor import diagnose
from pyipsec.pki.errors import PkiError
from pyipsec.pki.files import (
    KEY_MODE,
    PUBLIC_MODE,
    certificate_pem,
    check_free,
    save_ca,
    save_issued,
    write_file,
)
from pyipsec.pki.gateway_setup import DEFAULT_POOL, GatewayLayout, GatewayPlan, render_config
from pyipsec.pki.keys import KEY_CHOICES, KeySpec
from pyipsec.pki.names import file_stem, parse_client_name
from pyipsec.pki.profiles import ClientAuth, ClientIdentity, ProfileFormat, ProfileSpec, build_profile
from pyipsec.store.sqlite import SqliteStore, StoreError

__all__ = ["gateway", "gateway_init"]

DEFAULT_DIR: Final = Path("/etc/pyipsec")
PASSWORD_LENGTH: Final = 24
_ALPHABET: Final = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
"""Letters and digits a person can read back without confusing them (about 5.8 bits each)."""
CA_SUFFIX: Final = " VPN CA"
_MAX_CN: Final = 64
_PROFILE_CA: Final = "ca-cert.pem"
"""The CA certificate beside the profiles, so the profiles directory can be handed over whole."""


def new_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password of ``length`` unambiguous letters and digits (``secrets``)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _ca_name(plan: GatewayPlan) -> str:
    name = plan.name.text + CA_SUFFIX
    return name if len(name) <= _MAX_CN else "pyipsec" + CA_SUFFIX


@dataclass
class _Written:
    """What the command wrote, for the report."""

    files: dict[str, Path] = field(default_factory=dict)
    profiles: dict[str, Path] = field(default_factory=dict)
    password: str | None = None
    p12_password: str | None = None


def _targets(lay: GatewayLayout, auth: ClientAuth) -> list[Path]:
    """Every file ``init`` writes (the user store is only added to, so it is not one)."""
    paths = [lay.ca_cert, lay.ca_key, lay.gateway_cert, lay.gateway_key, lay.config]
    paths += [lay.profiles_dir / _PROFILE_CA, *(lay.profile(f) for f in ProfileFormat)]
    if auth == ClientAuth.EAP_TLS:
        paths += [lay.client_cert, lay.client_key]
    else:
        paths.append(lay.eap_secret)
    return paths


def _mkdir(directory: Path, mode: int) -> None:
    if directory.exists() and not directory.is_dir():
        raise PkiError(f"{directory} is not a directory")
    try:
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        raise PkiError(f"cannot create directory {directory}: {exc.strerror}") from None


def _add_user(db: Path, user: str, password: str, force: bool) -> None:
    try:
        with SqliteStore(db, create=True) as store:
            if store.nt_hash(user) is None:
                store.add_user(user, password)
            elif force:
                store.set_password(user, password)
            else:
                raise PkiError(f"user {user!r} already exists in {db} (use --force to set a new password)")
    except StoreError as exc:
        raise PkiError(str(exc)) from None


def _profiles(plan: GatewayPlan, ca: Issued, gw: Issued, key: KeySpec, force: bool, out: _Written) -> None:
    """The first user's profile in every format, in ``DIR/profiles``."""
    lay, now = plan.layout, datetime.now(UTC)
    _mkdir(lay.profiles_dir, 0o700)
    write_file(lay.profiles_dir / _PROFILE_CA, certificate_pem(ca.certificate), overwrite=force)
    identity_cert: Issued | None = None
    bundle: bytes | None = None
    if plan.auth == ClientAuth.EAP_TLS:
        identity_cert = issue_client(ca, parse_client_name(plan.user), now=now, key_spec=key)
        save_issued(lay.profiles_dir, file_stem(plan.user), identity_cert, overwrite=force)
        out.files["client certificate"] = lay.client_cert
        out.files["client key"] = lay.client_key
        out.p12_password = new_password()
        bundle = pkcs12_bundle(
            identity_cert, ca.certificate, out.p12_password.encode(), friendly_name=plan.user
        )
    else:
        assert out.password is not None
        write_file(lay.eap_secret, (out.password + "\n").encode(), mode=KEY_MODE, overwrite=force)
        out.files["password file"] = lay.eap_secret
    for fmt in ProfileFormat:
        identity = None
        if identity_cert is not None:
            identity = ClientIdentity(
                identity_cert.certificate, bundle if fmt != ProfileFormat.PYIPSEC else None
            )
        spec = ProfileSpec(
            username=plan.user,
            gateway=plan.name.text,
            ca_certificate=ca.certificate,
            gateway_certificate=gw.certificate,
            auth=plan.auth,
            identity=identity,
        )
        profile = build_profile(
            fmt,
            spec,
            ca_path=_PROFILE_CA,
            secret_file=lay.eap_secret.name if plan.auth.uses_password else None,
            cert_path=lay.client_cert.name if identity_cert is not None else None,
            key_path=lay.client_key.name if identity_cert is not None else None,
        )
        mode = KEY_MODE if profile.contains_secret else PUBLIC_MODE
        write_file(lay.profile(fmt), profile.content, mode=mode, overwrite=force)
        out.profiles[fmt.value] = lay.profile(fmt)


def _verify(plan: GatewayPlan, gw: Issued) -> None:
    """Load the written configuration as ``pyipsec check`` does, and doctor the certificate."""
    lay = plan.layout
    try:
        errors, _ = preflight(read_config(lay.config))
    except ConfigErrors as exc:
        errors = list(exc.errors)
    if errors:
        raise PkiError(f"the written {lay.config} does not pass `pyipsec check`: {errors[0]}")
    verdict = diagnose(gw.certificate, now=datetime.now(UTC), ca=None, name=plan.name.text)
    if verdict.rejected:
        raise PkiError(f"a client would reject the new gateway certificate: {verdict.as_json()}")


def _init(plan: GatewayPlan, key: KeySpec, force: bool) -> _Written:
    lay, out = plan.layout, _Written()
    check_free(_targets(lay, plan.auth), overwrite=force)
    if plan.auth == ClientAuth.EAP_MSCHAPV2 and lay.users_db.exists() and not force:
        raise PkiError(f"{lay.users_db} already exists (use --force to add the user to it)")
    _mkdir(lay.directory, 0o755)
    now = datetime.now(UTC)
    ca = create_ca(_ca_name(plan), now=now, key_spec=key)
    out.files["CA certificate"], out.files["CA key"] = save_ca(lay.ca_dir, ca, overwrite=force)
    gw = issue_gateway(ca, [plan.name], now=now, key_spec=key)
    out.files["gateway certificate"], out.files["gateway key"] = save_issued(
        lay.gateway_dir, lay.gateway_stem, gw, overwrite=force
    )
    write_file(lay.config, render_config(plan).encode(), mode=PUBLIC_MODE, overwrite=force)
    out.files["configuration"] = lay.config
    if plan.auth == ClientAuth.EAP_MSCHAPV2:
        out.password = new_password()
        _add_user(lay.users_db, plan.user, out.password, force)
        out.files["user store"] = lay.users_db
    _profiles(plan, ca, gw, key, force, out)
    _verify(plan, gw)
    return out


def next_steps(plan: GatewayPlan, out: _Written, has_install_service: bool) -> list[str]:
    """What the admin does next, one step a line."""
    lay = plan.layout
    start = (
        f"pyipsec install-service (see its --help) with {lay.config}, or in the foreground: "
        f"pyipsec daemon {lay.config}"
        if has_install_service
        else f"pyipsec daemon {lay.config}   (in the foreground; under a service manager for good)"
    )
    pools = [str(plan.pool)] + ([str(plan.pool6)] if plan.pool6 is not None else [])
    steps = [
        f"Make {plan.name.text} reach this host (DNS A/AAAA record or the address itself).",
        "Open the firewall for IKE: UDP 500 and 4500 in (and IP protocol 50, ESP, for clients "
        "not behind NAT).",
        "Let the clients out: sysctl -w net.ipv4.ip_forward=1"
        + (" net.ipv6.conf.all.forwarding=1" if plan.pool6 is not None else "")
        + f"; NAT the pools ({', '.join(pools)}) to the outside, e.g. "
        f"nft add rule ip nat postrouting ip saddr {plan.pool} oifname WAN masquerade",
        f"Start the gateway: {start}",
        f"Hand {plan.user} the profile for the device, from {lay.profiles_dir}: "
        + ", ".join(f"{fmt} {path.name}" for fmt, path in out.profiles.items()),
        f"Add users: pyipsec user add NAME --db {lay.users_db}; profiles: pyipsec user export NAME "
        f"--gateway {plan.name.text} --ca {lay.ca_dir} --config {lay.config} "
        "--format apple|sswan|windows|pyipsec --out FILE",
    ]
    if plan.auth == ClientAuth.EAP_TLS:
        steps[-1] = (
            f"Add users: pyipsec user export NAME --auth eap-tls --gateway {plan.name.text} "
            f"--ca {lay.ca_dir} --format apple|sswan|windows|pyipsec --out FILE (issues its certificate)"
        )
    if not plan.dns:
        steps.append("Clients get no DNS server: add --dns (or dns = [...] under [pools.rw]).")
    return steps


@click.group()
def gateway() -> None:
    """Set up a remote-access gateway."""


@gateway.command("init")
@click.option(
    "--name", required=True, help="The DNS name (or IP address) clients connect to, e.g. vpn.example.org."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Where to write the CA, certificates, configuration, user store and profiles.",
)
@click.option("--pool", default=DEFAULT_POOL, show_default=True, help="IPv4 pool of virtual IPs for clients.")
@click.option("--pool6", help="IPv6 pool (default: a /112 of a random unique local prefix, RFC 4193).")
@click.option("--no-pool6", is_flag=True, help="Give clients no IPv6 address.")
@click.option("--dns", multiple=True, metavar="ADDR", help="DNS server handed to clients (repeatable).")
@click.option("--user", default="user1", show_default=True, help="The first user's name.")
@click.option(
    "--auth",
    type=click.Choice([ClientAuth.EAP_MSCHAPV2.value, ClientAuth.EAP_TLS.value]),
    default=ClientAuth.EAP_MSCHAPV2.value,
    show_default=True,
    help="How users log in: a password (eap-mschapv2) or a client certificate (eap-tls).",
)
@click.option(
    "--listen", multiple=True, metavar="ADDR", help="Address to listen on (repeatable; default all)."
)
@click.option(
    "--lan",
    multiple=True,
    metavar="CIDR",
    help="A network clients reach through the tunnel (repeatable; default everything, 0.0.0.0/0 and ::/0).",
)
@click.option(
    "--key",
    "key_type",
    type=click.Choice(KEY_CHOICES, case_sensitive=False),
    default="rsa",
    show_default=True,
    help="Key type of the CA and certificates: rsa = RSA 3072 (best supported by Windows and Android), "
    "ecdsa = ECDSA P-256.",
)
@click.option(
    "--force", is_flag=True, help="Replace existing files (a new CA: every old certificate stops working)."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
@click.pass_context
def gateway_init(
    ctx: click.Context,
    name: str,
    directory: Path,
    pool: str,
    pool6: str | None,
    no_pool6: bool,
    dns: tuple[str, ...],
    user: str,
    auth: str,
    listen: tuple[str, ...],
    lan: tuple[str, ...],
    key_type: str,
    force: bool,
    as_json: bool,
) -> None:
    """Create a CA, the gateway certificate, a configuration with a pool, a first user and
    its client profiles in DIR, and print the next steps.

    The first user's password is printed once and stored only as a hash in the user store
    (and in the pyipsec profile's password file, mode 0600)."""
    try:
        plan = GatewayPlan.parse(
            name=name,
            directory=directory,
            pool=pool,
            pool6=pool6,
            no_pool6=no_pool6,
            dns=dns,
            user=user,
            auth=auth,
            listen=listen,
            lan=lan,
        )
        out = _init(plan, KeySpec.parse(key_type), force)
    except PkiError as exc:
        fail(str(exc))
    root = ctx.find_root().command
    has_service = isinstance(root, click.Group) and "install-service" in root.list_commands(ctx)
    steps = next_steps(plan, out, has_service)
    if as_json:
        result: dict[str, JsonValue] = {
            "name": plan.name.text,
            "directory": str(plan.layout.directory),
            "auth": plan.auth.value,
            "user": plan.user,
            "pool": str(plan.pool),
            "pool6": str(plan.pool6) if plan.pool6 is not None else None,
            "files": {kind: str(path) for kind, path in out.files.items()},
            "profiles": {fmt: str(path) for fmt, path in out.profiles.items()},
            "password": out.password,
            "p12_password": out.p12_password,
            "next_steps": list(steps),
        }
        echo_json(result)
        return
    click.echo(f"gateway {plan.name.text} set up in {plan.layout.directory}:")
    for kind, path in out.files.items():
        click.echo(f"  {kind + ':':<21}{path}")
    for fmt, path in out.profiles.items():
        click.echo(f"  {fmt + ' profile:':<21}{path}")
    if out.password is not None:
        click.echo(f"\nuser {plan.user}, password (shown only now): {out.password}")
    if out.p12_password is not None:
        click.echo(
            f"\nuser {plan.user}, PKCS#12 password of the profiles (shown only now): {out.p12_password}"
        )
    click.echo("\nnext steps:")
    for number, step in enumerate(steps, 1):
        click.echo(f"  {number}. {step}")
