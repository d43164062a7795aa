"""Reading and writing PKI files: PEM certificates, private keys (mode 0600), the CA directory.

Theory of operation: a CA lives in a directory holding :data:`CA_CERT_FILE` and
:data:`CA_KEY_FILE`; issued certificates are written as ``<stem>-cert.pem`` and
``<stem>-key.pem`` (:func:`issued_paths`). Private keys and PKCS#12 bundles are created with
``O_CREAT | O_EXCL`` and mode 0600 from the first byte on, so no other user can ever read
them, not even during the write; the mode is then fixed with ``fchmod`` in case the umask
took bits away from the owner. Nothing is overwritten unless ``overwrite`` is set, and
:func:`check_free` lets a caller test every target before writing the first one, so a
refused command leaves no half-written set of files. Keys are stored unencrypted (PKCS#8 PEM):
the daemon must read them unattended; the file mode is their protection.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyipsec.pki.ca import Issued
from pyipsec.pki.errors import PkiError
from pyipsec.pki.keys import IssuingKey

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "KEY_MODE",
    "certificate_pem",
    "check_free",
    "insecure_mode",
    "issued_paths",
    "load_ca",
    "load_ca_certificate",
    "load_certificates",
    "load_issued",
    "private_key_pem",
    "save_ca",
    "save_issued",
    "write_file",
]

CA_CERT_FILE: Final = "ca-cert.pem"
CA_KEY_FILE: Final = "ca-key.pem"
KEY_MODE: Final = 0o600
PUBLIC_MODE: Final = 0o644


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: IssuingKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def check_free(paths: Iterable[Path], *, overwrite: bool = False) -> None:
    """Raise :class:`PkiError` if any of ``paths`` exists (unless ``overwrite``) or is a directory."""
    for path in paths:
        if path.is_dir():
            raise PkiError(f"{path} is a directory")
        if (path.exists() or path.is_symlink()) and not overwrite:
            raise PkiError(f"{path} already exists (use --force to replace it)")


def write_file(path: Path, data: bytes, *, mode: int = PUBLIC_MODE, overwrite: bool = False) -> None:
    """Create ``path`` with exactly ``mode`` and write ``data``; refuse an existing file unless
    ``overwrite`` (which replaces it by a new file, so a secret never inherits a looser mode)."""
    check_free([path], overwrite=overwrite)
    if path.exists() or path.is_symlink():
        path.unlink()  # a symlink is replaced, never followed
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as exc:
        raise PkiError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            fd = -1
            out.write(data)
    except OSError as exc:
        raise PkiError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)


def insecure_mode(path: Path) -> int | None:
    """The permission bits of ``path`` if group or others may access it, else None."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def _ensure_dir(directory: Path, mode: int) -> None:
    if directory.exists() and not directory.is_dir():
        raise PkiError(f"{directory} is not a directory")
    try:
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as exc:
        raise PkiError(f"cannot create directory {directory}: {exc.strerror}") from None


def save_ca(directory: Path, ca: Issued, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write the CA into ``directory`` (created with mode 0700 if missing); returns
    (certificate path, key path)."""
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if directory.exists():
        check_free([cert_path, key_path], overwrite=overwrite)
    _ensure_dir(directory, 0o700)
    write_file(key_path, private_key_pem(ca.key), mode=KEY_MODE, overwrite=overwrite)
    write_file(cert_path, certificate_pem(ca.certificate), overwrite=overwrite)
    return cert_path, key_path


def issued_paths(directory: Path, stem: str) -> tuple[Path, Path]:
    """Where :func:`save_issued` puts ``stem``'s certificate and key."""
    return directory / f"{stem}-cert.pem", directory / f"{stem}-key.pem"


def save_issued(directory: Path, stem: str, issued: Issued, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write an issued certificate and its key (0600) into ``directory``."""
    cert_path, key_path = issued_paths(directory, stem)
    check_free([cert_path, key_path], overwrite=overwrite)
    _ensure_dir(directory, 0o755)
    write_file(key_path, private_key_pem(issued.key), mode=KEY_MODE, overwrite=overwrite)
    write_file(cert_path, certificate_pem(issued.certificate), overwrite=overwrite)
    return cert_path, key_path


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{what} {path} not found") from None
    except OSError as exc:
        raise PkiError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM file (a bundle too), or the one certificate of a DER file."""
    data = _read(path, "certificate file")
    try:
        if b"-----BEGIN" in data:
            certs = tuple(x509.load_pem_x509_certificates(data))
        else:
            certs = (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise PkiError(f"{path} is not a PEM or DER X.509 certificate ({str(exc).splitlines()[0]})") from None
    return certs


def load_ca_certificate(path: Path) -> x509.Certificate:
    """The CA certificate in ``path``: a certificate file, or a CA directory made by ``pki ca``."""
    if path.is_dir():
        path = path / CA_CERT_FILE
        if not path.exists():
            raise PkiError(
                f"no CA in {path.parent}: {path.name} not found (create one with `pyipsec pki ca`)"
            )
    certs = load_certificates(path)
    if len(certs) != 1:
        raise PkiError(f"{path} holds {len(certs)} certificates; give the file of the one CA certificate")
    return certs[0]


def load_ca(directory: Path) -> Issued:
    """The CA stored in ``directory`` by :func:`save_ca`."""
    if not directory.exists():
        raise PkiError(f"CA directory {directory} does not exist (create one with `pyipsec pki ca`)")
    if not directory.is_dir():
        raise PkiError(f"{directory} is not a CA directory (give the directory made by `pyipsec pki ca`)")
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if not cert_path.exists():
        raise PkiError(f"no CA in {directory}: {CA_CERT_FILE} not found (create one with `pyipsec pki ca`)")
    cert = load_ca_certificate(cert_path)
    return Issued(cert, _load_key(key_path, "CA"))


def _load_key(key_path: Path, what: str) -> IssuingKey:
    data = _read(key_path, f"{what} private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise PkiError(
            f"the {what} private key {key_path} is encrypted; pyipsec needs it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PkiError(f"{key_path} is not a PEM private key ({str(exc).splitlines()[0]})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(
            f"the {what} key {key_path} is a {type(key).__name__}; pyipsec signs with RSA or ECDSA keys"
        )
    return key


def load_issued(directory: Path, stem: str) -> Issued:
    """The certificate and key :func:`save_issued` wrote for ``stem``; the key must belong to
    the certificate."""
    cert_path, key_path = issued_paths(directory, stem)
    certs = load_certificates(cert_path)
    key = _load_key(key_path, "certificate's")
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(der, spki) != certs[0].public_key().public_bytes(der, spki):
        raise PkiError(f"the private key {key_path} does not belong to the certificate {cert_path}")
    return Issued(certs[0], key)
