"""Revocation against real servers: ``openssl ocsp`` as the OCSP responder and an HTTP server
publishing the CRL, both in the ``right`` namespace; the checker runs in ``left``.

Certificates come from pyipsec's own CA (``pyipsec.pki``) with ``--ocsp-uri``/``--crl-uri``
style extensions; revocations go through ``pyipsec.pki.revoke`` and reach the responder as an
OpenSSL ``index.txt`` (which ``openssl ocsp`` re-reads when it changes; the test restarts it
when it does not) and reach the HTTP server as a CRL file replaced atomically.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyipsec.pki.ca import Issued, create_ca, issue_client
from pyipsec.pki.files import certificate_pem, private_key_pem
from pyipsec.pki.keys import KeySpec
from pyipsec.pki.revoke import RevocationIndex, crl_bytes, issue_crl, revoke, write_atomic
from tests.support.netns import Namespace, TwoHosts

pytestmark = pytest.mark.integration

OCSP_PORT = 8888
HTTP_PORT = 8080
PROBE = Path(__file__).with_name("revocation_probe.py")
EC = KeySpec("ecdsa", 256)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


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


@pytest.fixture
def pki(tmp_path: Path, hosts: TwoHosts) -> Pki:
    now = datetime.now(UTC)
    server = hosts.link.b_addr
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


def _start_ocsp(ns: Namespace, pki: Pki) -> subprocess.Popen[bytes]:
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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def http_server(hosts: TwoHosts, pki: Pki) -> Iterator[subprocess.Popen[bytes]]:
    proc = hosts.right.popen(
        [sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", hosts.link.b_addr,
         "--directory", str(pki.directory / "www")],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_listening(hosts.right, HTTP_PORT, proc)
    yield proc
    _stop(proc)


def check(hosts: TwoHosts, pki: Pki, who: Issued, policy: str, **extra: Any) -> dict[str, Any]:
    """Run the checker in the ``left`` namespace; the verdict as a dict."""
    request = {
        "chain": [_der(who.certificate).hex()],
        "anchor": _der(pki.ca.certificate).hex(),
        "policy": policy,
        "timeout": 2,
        **extra,
    }
    done = hosts.left.run([sys.executable, str(PROBE)], input=json.dumps(request), timeout=60)
    verdict: dict[str, Any] = json.loads(done.stdout)
    return verdict


def test_ocsp_good_then_revoked_then_responder_down(hosts: TwoHosts, pki: Pki) -> None:
    responder = _start_ocsp(hosts.right, pki)
    good = check(hosts, pki, pki.alice, "strict")
    assert good["ok"] and good["status"] == "good", good
    assert good["warnings"] == [], good  # openssl echoes the nonce
    assert good["source"] == f"OCSP {pki.ocsp_uri}"
    assert good["serial"] == pki.alice.certificate.serial_number

    pki.revoke(pki.alice, datetime.now(UTC), x509.ReasonFlags.key_compromise)
    pki.write_openssl_index()
    revoked = check(hosts, pki, pki.alice, "relaxed")
    if revoked["status"] == "good":  # this openssl does not re-read its index: restart it
        _stop(responder)
        responder = _start_ocsp(hosts.right, pki)
        revoked = check(hosts, pki, pki.alice, "relaxed")
    assert not revoked["ok"] and revoked["status"] == "revoked", revoked
    assert f"{pki.alice.certificate.serial_number:#x}" in revoked["reason"]
    assert "(CN=alice@example.org) revoked at " in revoked["reason"]
    assert revoked["reason"].endswith(f"(keyCompromise) per OCSP {pki.ocsp_uri}")

    _stop(responder)
    strict = check(hosts, pki, pki.alice, "strict")
    assert not strict["ok"] and strict["status"] == "unknown", strict
    assert pki.ocsp_uri in strict["reason"]
    # The certificate names a responder that gave no answer: ifuri rejects as well (swanctl).
    assert not check(hosts, pki, pki.alice, "ifuri")["ok"]
    relaxed = check(hosts, pki, pki.alice, "relaxed")
    assert relaxed["ok"] and relaxed["status"] == "unknown"
    assert any(pki.ocsp_uri in w for w in relaxed["warnings"]), relaxed


def test_crl_over_http_revoked_then_replaced(
    hosts: TwoHosts, pki: Pki, http_server: subprocess.Popen[bytes]
) -> None:
    assert check(hosts, pki, pki.bob, "strict")["status"] == "good"
    now = datetime.now(UTC)
    pki.revoke(pki.bob, now, x509.ReasonFlags.superseded)
    pki.publish_crl(now)
    revoked = check(hosts, pki, pki.bob, "relaxed")
    assert not revoked["ok"] and revoked["status"] == "revoked", revoked
    assert revoked["source"] == f"CRL {pki.crl_uri}"
    assert revoked["reason"].endswith(f"(superseded) per CRL {pki.crl_uri}")

    # A CRL without bob (e.g. the revocation was a mistake) replaces the file served.
    pki.index = RevocationIndex(pki.index.crl_number)
    pki.publish_crl(datetime.now(UTC))
    again = check(hosts, pki, pki.bob, "strict")
    assert again["ok"] and again["status"] == "good", again


def test_servers_down_and_no_uri(hosts: TwoHosts, pki: Pki) -> None:
    """Nothing answers: strict rejects; ifuri rejects what names a URI and accepts, with a
    warning, what names none; a local CRL file answers without any server."""
    bob_strict = check(hosts, pki, pki.bob, "strict")
    assert not bob_strict["ok"] and bob_strict["status"] == "unknown" and pki.crl_uri in bob_strict["reason"]
    assert not check(hosts, pki, pki.bob, "ifuri")["ok"]
    carol = check(hosts, pki, pki.carol, "ifuri")
    assert carol["ok"] and carol["status"] == "unknown" and carol["warnings"], carol
    assert not check(hosts, pki, pki.carol, "strict")["ok"]
    local = check(hosts, pki, pki.carol, "strict", crl_files=[str(pki.directory / "www" / "ca.crl")])
    assert local["ok"] and local["status"] == "good" and local["source"].startswith("CRL /"), local
