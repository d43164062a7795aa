"""PKI files on disk: keys are 0600 from the start, nothing is overwritten by surprise, and a
CA directory that is missing or wrong is reported in one clear sentence."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from pyipsec.pki.ca import Issued, issue_gateway
from pyipsec.pki.errors import PkiError
from pyipsec.pki.files import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    insecure_mode,
    load_ca,
    load_ca_certificate,
    load_certificates,
    save_ca,
    save_issued,
    write_file,
)
from pyipsec.pki.keys import KeySpec


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the most permissive umask: modes must still come out exact
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_save_and_load_ca(tmp_path: Path, ec_ca: Issued) -> None:
    directory = tmp_path / "ca"
    cert_path, key_path = save_ca(directory, ec_ca)
    assert (cert_path, key_path) == (directory / CA_CERT_FILE, directory / CA_KEY_FILE)
    assert _mode(key_path) == 0o600
    assert _mode(cert_path) == 0o644
    assert _mode(directory) == 0o700
    assert insecure_mode(key_path) is None
    loaded = load_ca(directory)
    assert loaded.certificate == ec_ca.certificate
    der, pkcs8, none = (
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert loaded.key.private_bytes(der, pkcs8, none) == ec_ca.key.private_bytes(der, pkcs8, none)
    assert load_ca_certificate(directory) == ec_ca.certificate
    assert load_ca_certificate(cert_path) == ec_ca.certificate


@pytest.mark.usefixtures("open_umask")
def test_issued_files_and_key_mode(tmp_path: Path, ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org"], now=now, key_spec=KeySpec("ecdsa", 256))
    cert_path, key_path = save_issued(tmp_path / "out", "vpn.example.org", gw)
    assert cert_path.name == "vpn.example.org-cert.pem" and key_path.name == "vpn.example.org-key.pem"
    assert _mode(key_path) == 0o600
    assert load_certificates(cert_path) == (gw.certificate,)
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_nothing_is_overwritten_without_force(tmp_path: Path, ec_ca: Issued) -> None:
    save_ca(tmp_path, ec_ca)
    before = (tmp_path / CA_KEY_FILE).read_bytes()
    with pytest.raises(PkiError, match=r"already exists .*--force"):
        save_ca(tmp_path, ec_ca)
    assert (tmp_path / CA_KEY_FILE).read_bytes() == before
    save_ca(tmp_path, ec_ca, overwrite=True)
    assert _mode(tmp_path / CA_KEY_FILE) == 0o600


def test_overwrite_replaces_a_loose_file_with_a_tight_one(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o666)
    assert insecure_mode(path) == 0o666
    write_file(path, b"new", mode=0o600, overwrite=True)
    assert path.read_bytes() == b"new" and _mode(path) == 0o600


def test_write_file_refuses_directories_and_symlinks(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(PkiError, match="is a directory"):
        write_file(tmp_path / "d", b"x")
    target = tmp_path / "target"
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(PkiError, match="already exists"):
        write_file(tmp_path / "link", b"x")
    assert not target.exists()
    write_file(tmp_path / "link", b"x", mode=0o600, overwrite=True)  # replaces the link itself
    assert not target.exists() and not (tmp_path / "link").is_symlink()
    with pytest.raises(PkiError, match="cannot create"):
        write_file(tmp_path / "missing" / "file", b"x")


def test_load_ca_errors(tmp_path: Path, ec_ca: Issued, now: datetime) -> None:
    with pytest.raises(PkiError, match=r"does not exist .*pyipsec pki ca"):
        load_ca(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PkiError, match="is not a CA directory"):
        load_ca(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PkiError, match=f"no CA in {empty}: {CA_CERT_FILE} not found"):
        load_ca(empty)
    with pytest.raises(PkiError, match=f"no CA in {empty}"):
        load_ca_certificate(empty)
    (empty / CA_CERT_FILE).write_bytes(ec_ca.certificate.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(PkiError, match=r"CA private key .* not found"):
        load_ca(empty)
    encrypted = ec_ca.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"),
    )
    (empty / CA_KEY_FILE).write_bytes(encrypted)
    with pytest.raises(PkiError, match="encrypted"):
        load_ca(empty)
    (empty / CA_KEY_FILE).write_text("garbage")
    with pytest.raises(PkiError, match="not a PEM private key"):
        load_ca(empty)
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (empty / CA_KEY_FILE).write_bytes(ed)
    with pytest.raises(PkiError, match="RSA or ECDSA"):
        load_ca(empty)


def test_load_certificates_formats(tmp_path: Path, ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org"], now=now, key_spec=KeySpec("ecdsa", 256))
    der = tmp_path / "gw.der"
    der.write_bytes(gw.certificate.public_bytes(serialization.Encoding.DER))
    assert load_certificates(der) == (gw.certificate,)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        gw.certificate.public_bytes(serialization.Encoding.PEM)
        + ec_ca.certificate.public_bytes(serialization.Encoding.PEM)
    )
    assert load_certificates(bundle) == (gw.certificate, ec_ca.certificate)
    with pytest.raises(PkiError, match="holds 2 certificates"):
        load_ca_certificate(bundle)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a certificate")
    with pytest.raises(PkiError, match=r"is not a PEM or DER X\.509 certificate"):
        load_certificates(junk)
    with pytest.raises(PkiError, match="not found"):
        load_certificates(tmp_path / "absent.pem")
