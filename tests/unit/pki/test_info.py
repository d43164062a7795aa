"""What `pki show` reports about a certificate, as text and as JSON."""

from __future__ import annotations

import json
from datetime import datetime

from cryptography.hazmat.primitives import hashes

from pyipsec.pki.ca import Issued, issue_client, issue_gateway
from pyipsec.pki.info import certificate_info, fingerprint, format_info
from pyipsec.pki.keys import KeySpec


def test_gateway_info(ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org", "203.0.113.5"], now=now, key_spec=KeySpec("ecdsa", 384))
    info = certificate_info(gw.certificate)
    assert info.subject == "CN=vpn.example.org" and info.issuer == "CN=Test CA"
    assert info.alt_names == (("dns", "vpn.example.org"), ("dns", "203.0.113.5"), ("ip", "203.0.113.5"))
    assert info.extended_key_usage == ("serverAuth", "iKEIntermediate")
    assert info.key_usage == ("digitalSignature",)
    assert info.is_ca is False
    assert info.public_key == "ECDSA P-384"
    assert info.signature_hash == "SHA256"
    digest = gw.certificate.fingerprint(hashes.SHA256())
    assert info.sha256_fingerprint == fingerprint(gw.certificate) == ":".join(f"{b:02X}" for b in digest)
    assert int(info.serial, 16) == gw.certificate.serial_number

    data = info.as_json()
    assert json.loads(json.dumps(data)) == data
    assert data["not_before"] == "2031-03-01T11:00:00Z"
    assert data["subject_alt_names"] == [
        {"type": "dns", "value": "vpn.example.org"},
        {"type": "dns", "value": "203.0.113.5"},
        {"type": "ip", "value": "203.0.113.5"},
    ]
    assert data["extended_key_usage"] == ["serverAuth", "iKEIntermediate"]

    text = format_info(info)
    assert "subjectAltName:   DNS:vpn.example.org, DNS:203.0.113.5, IP:203.0.113.5" in text
    assert "extendedKeyUsage: serverAuth, iKEIntermediate" in text
    assert f"SHA-256:          {info.sha256_fingerprint}" in text
    assert "valid until:      2033-06-03T12:00:00Z" in text


def test_ca_and_client_info(ec_ca: Issued, now: datetime) -> None:
    ca = certificate_info(ec_ca.certificate)
    assert ca.is_ca and ca.extended_key_usage is None and ca.alt_names == ()
    assert ca.key_usage == ("keyCertSign", "cRLSign")
    assert "extendedKeyUsage: (none: any purpose)" in format_info(ca)
    assert "subjectAltName:   (none)" in format_info(ca)
    alice = certificate_info(
        issue_client(ec_ca, "alice@example.org", now=now, key_spec=KeySpec("ecdsa", 256)).certificate
    )
    assert alice.alt_names == (("email", "alice@example.org"),)
    assert alice.extended_key_usage == ("clientAuth",)
