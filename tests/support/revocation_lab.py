"""A revocation lab for the root tier: pyipsec's CA with certificates that name an OCSP
responder or a CRL distribution point, a real ``openssl ocsp`` responder (delegated signer) and
an HTTP server publishing the CRL, both in one namespace.

Revocations go through ``pyipsec.pki.revoke`` and reach the responder as an OpenSSL
``index.txt`` (which ``openssl ocsp`` may not re-read: restart it, :func:`start_ocsp`) and the
HTTP server as a CRL file replaced atomically (:meth:`Pki.publish_crl`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyipsec.pki.ca import Issued, create_ca, issue_client
from pyipsec.pki.files import certificate_pem, private_key_pem
from pyipsec.pki.keys import KeySpec
from pyipsec.pki.revoke import RevocationIndex, crl_bytes, issue_crl, revoke, write_atomic
from tests.support.netns import Namespace

__all__ = ["EC", "HTTP_PORT", "OCSP_PORT", "Pki", "http_server", "make_pki", "start_ocsp", "stop"]

OCSP_PORT = 8888
HTTP_PORT = 8080
PROBE = Path(__file__).with_name("revocation_probe.py")
EC = KeySpec("ecdsa", 256)


def _openssl_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%y%m%d%H%M%SZ")


def _openssl_serial(serial: int) -> str:
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def _responder_cert(ca: Issued, now: datetime) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OCSP responder")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


@dataclass
class Pki:
    directory: Path
    ca: Issued
    alice: Issued  # OCSP URI only
    bob: Issued  # CRL distribution point only
    carol: Issued  # no URI at all
    ocsp_uri: str
    crl_uri: str
    index: RevocationIndex = field(default_factory=RevocationIndex)

    def write_openssl_index(self) -> None:
        """``index.txt`` in OpenSSL's format: every certificate we issued, revoked ones as R."""
        lines = []
        for issued in (self.alice, self.bob, self.carol):
            cert = issued.certificate
            entry = self.index.find(cert.serial_number)
            subject = "/" + cert.subject.rfc4514_string()
            expiry = _openssl_time(cert.not_valid_after_utc)
            serial = _openssl_serial(cert.serial_number)
            if entry is None:
                lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t{subject}")
            else:
                revoked = _openssl_time(entry.revoked_at)
                if entry.reason is not None:
                    revoked += f",{entry.reason.value}"
                lines.append(f"R\t{expiry}\t{revoked}\t{serial}\tunknown\t{subject}")
        write_atomic(self.directory / "index.txt", ("\n".join(lines) + "\n").encode())

    def publish_crl(self, now: datetime) -> None:
        crl, self.index = issue_crl(self.ca, self.index, now=now, days=1)
        target = self.directory / "www" / "ca.crl"
        write_atomic(target, crl_bytes(crl, target)[0])

    def revoke(self, issued: Issued, now: datetime, reason: x509.ReasonFlags | None) -> None:
        self.index, _ = revoke(self.index, issued.certificate.serial_number, now=now, reason=reason)


def make_pki(tmp_path: Path, server: str) -> Pki:
    """The CA, alice (OCSP URI only), bob (CRL distribution point only), carol (no URI), the
    responder's certificate, the OpenSSL index and a first CRL, all under ``tmp_path``."""
    now = datetime.now(UTC)
    ocsp_uri, crl_uri = f"http://{server}:{OCSP_PORT}/", f"http://{server}:{HTTP_PORT}/ca.crl"
    ca = create_ca("Revocation Test CA", now=now, key_spec=EC)
    result = Pki(
        tmp_path,
        ca,
        issue_client(ca, "alice@example.org", now=now, key_spec=EC, ocsp_uris=[ocsp_uri]),
        issue_client(ca, "bob@example.org", now=now, key_spec=EC, crl_uris=[crl_uri]),
        issue_client(ca, "carol@example.org", now=now, key_spec=EC),
        ocsp_uri,
        crl_uri,
    )
    responder = _responder_cert(ca, now)
    (tmp_path / "ca.pem").write_bytes(certificate_pem(ca.certificate))
    (tmp_path / "responder.pem").write_bytes(certificate_pem(responder.certificate))
    (tmp_path / "responder-key.pem").write_bytes(private_key_pem(responder.key))
    (tmp_path / "www").mkdir()
    result.write_openssl_index()
    result.publish_crl(now)
    return result


def _wait_listening(ns: Namespace, port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"server on port {port} exited with {proc.returncode}: {err}")
        if ns.run(["ss", "-Hltn", f"sport = :{port}"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


def start_ocsp(ns: Namespace, pki: Pki) -> subprocess.Popen[bytes]:
    d = pki.directory
    proc = ns.popen(
        [
            "openssl", "ocsp", "-index", str(d / "index.txt"), "-port", str(OCSP_PORT),
            "-rsigner", str(d / "responder.pem"), "-rkey", str(d / "responder-key.pem"),
            "-CA", str(d / "ca.pem"), "-ignore_err",
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_listening(ns, OCSP_PORT, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def http_server(ns: Namespace, address: str, pki: Pki) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m http.server`` publishing ``pki.directory/www`` (the CRL) on ``address``."""
    proc = ns.popen(
        [sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", address,
         "--directory", str(pki.directory / "www")],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_listening(ns, HTTP_PORT, proc)
    try:
        yield proc
    finally:
        stop(proc)
