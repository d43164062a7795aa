"""What ``pyipsec check`` verifies beyond the file's syntax: what the daemon will need at start.

The configuration model checks keys and values; this reads the files they name, as the daemon
will, so that a configuration ``check`` accepts does not fail when the daemon starts or when
the first peer connects:

- every certificate, CA and private key file loads (:func:`~pyipsec.daemon.build.
  build_engine_config` does what the daemon does; host names are not resolved here: that
  depends on where and when the daemon runs);
- each certificate of ours has a private key among ``[secrets.private*]`` (else we could not
  sign); its identity (``id``, when given) is in the certificate (else peers refuse it);
- certificates and CAs are valid now (expired or not yet valid: an error) and for another
  :data:`EXPIRY_WARNING` (a warning).

Problems come back as :class:`~pyipsec.config.load.ConfigIssue` with their key path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyipsec.config.load import ConfigIssue, LoadedConfig
from pyipsec.config.model import Auth, PrivateKeySecret
from pyipsec.crypto.x509 import (
    PrivateKey,
    describe,
    identity_matches_certificate,
    load_certificate,
    load_private_key,
)
from pyipsec.daemon.build import build_engine_config
from pyipsec.errors import ConfigError, PyIpsecError

__all__ = ["EXPIRY_WARNING", "preflight"]

EXPIRY_WARNING = timedelta(days=30)


def _spki(holder: x509.Certificate | PrivateKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a certificate's or a private key's public key."""
    return holder.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def preflight(
    loaded: LoadedConfig, now: datetime | None = None
) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """(errors, warnings) of ``loaded``'s files; ``now`` for validity (default: the clock)."""
    cfg, path = loaded.config, str(loaded.path)
    now = now or datetime.now(UTC)
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []

    def error(key: str, message: str) -> None:
        errors.append(ConfigIssue(message, path=path, key=key))

    try:
        build_engine_config(cfg, resolve=False)
    except ConfigError as exc:
        error(exc.key, str(exc).removeprefix(f"{exc.key}: "))
        return errors, warnings
    except PyIpsecError as exc:
        error("", str(exc))
        return errors, warnings

    keys: set[bytes] = set()
    for name, secret in cfg.secrets.items():
        if isinstance(secret, PrivateKeySecret):
            try:
                keys.add(
                    _spki(load_private_key(secret.file.read_bytes(), secret.secret, source=str(secret.file)))
                )
            except (OSError, PyIpsecError) as exc:
                error(f"secrets.{name}.file", str(exc))

    def validity(key: str, cert: x509.Certificate, what: str) -> None:
        if now > cert.not_valid_after_utc:
            error(key, f"{what} {describe(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        elif now < cert.not_valid_before_utc:
            error(key, f"{what} {describe(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
        elif now + EXPIRY_WARNING > cert.not_valid_after_utc:
            warnings.append(
                ConfigIssue(
                    f"{what} {describe(cert)} expires on {cert.not_valid_after_utc:%Y-%m-%d}",
                    path=path,
                    key=key,
                )
            )

    def load(file: Path) -> x509.Certificate:
        return load_certificate(file.read_bytes(), source=str(file))

    for cname, conn in cfg.connections.items():
        for side, rounds in (("local", conn.local_rounds), ("remote", conn.remote_rounds)):
            for number, auth in enumerate(rounds, 1):
                where = f"connections.{cname}.{side if len(rounds) == 1 else f'{side}-{number}'}"
                for cert_file in auth.certs:
                    cert = load(cert_file)
                    validity(f"{where}.certs", cert, "certificate")
                for ca_file in auth.cacerts:
                    validity(f"{where}.cacerts", load(ca_file), "CA certificate")
                if side == "local" and auth.certs:
                    _check_ours(where, auth, load(auth.certs[0]), keys, error)
    for aname, authority in cfg.authorities.items():
        validity(f"authorities.{aname}.cacert", load(authority.cacert), "CA certificate")
    return errors, warnings


def _check_ours(
    where: str, auth: Auth, cert: x509.Certificate, keys: set[bytes], report: Callable[[str, str], None]
) -> None:
    """Our certificate: its private key is configured, our identity is in it."""
    if _spki(cert) not in keys:
        report(
            f"{where}.certs",
            f"no [secrets.private*] key matches certificate {describe(cert)}: "
            "the daemon could not sign with it",
        )
    ident = auth.id
    if ident.id_type is not None and not identity_matches_certificate(ident.id_type, ident.data, cert):
        report(
            f"{where}.id",
            f"{ident} is not in certificate {describe(cert)} (its subjectAltName or subject): "
            "peers would refuse our identity",
        )
