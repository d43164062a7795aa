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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyipsec.pki.ca import Issued
from pyipsec.pki.revoke import RevocationIndex
from tests.support import revocation_lab as lab
from tests.support.netns import TwoHosts
from tests.support.revocation_lab import Pki

pytestmark = pytest.mark.integration

PROBE = Path(__file__).with_name("revocation_probe.py")


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def pki(tmp_path: Path, hosts: TwoHosts) -> Pki:
    return lab.make_pki(tmp_path, hosts.link.b_addr)


@pytest.fixture
def http_server(hosts: TwoHosts, pki: Pki) -> Iterator[subprocess.Popen[bytes]]:
    with lab.http_server(hosts.right, hosts.link.b_addr, pki) as proc:
        yield proc


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
    responder = lab.start_ocsp(hosts.right, pki)
    good = check(hosts, pki, pki.alice, "strict")
    assert good["ok"] and good["status"] == "good", good
    assert good["warnings"] == [], good  # openssl echoes the nonce
    assert good["source"] == f"OCSP {pki.ocsp_uri}"
    assert good["serial"] == pki.alice.certificate.serial_number

    pki.revoke(pki.alice, datetime.now(UTC), x509.ReasonFlags.key_compromise)
    pki.write_openssl_index()
    revoked = check(hosts, pki, pki.alice, "relaxed")
    if revoked["status"] == "good":  # this openssl does not re-read its index: restart it
        lab.stop(responder)
        responder = lab.start_ocsp(hosts.right, pki)
        revoked = check(hosts, pki, pki.alice, "relaxed")
    assert not revoked["ok"] and revoked["status"] == "revoked", revoked
    assert f"{pki.alice.certificate.serial_number:#x}" in revoked["reason"]
    assert "(CN=alice@example.org) revoked at " in revoked["reason"]
    assert revoked["reason"].endswith(f"(keyCompromise) per OCSP {pki.ocsp_uri}")

    lab.stop(responder)
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
