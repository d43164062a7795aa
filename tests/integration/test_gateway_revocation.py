"""A pyipsec gateway refusing revoked client certificates: OCSP and CRLs from real servers.

``right`` runs the gateway, a real ``openssl ocsp`` responder and an HTTP server publishing the
CRL (:mod:`tests.support.revocation_lab`); ``left`` runs a pyipsec client authenticating with
its certificate (``alice`` names the OCSP responder, ``bob`` the CRL distribution point). The
gateway checks with ``remote.revocation = "strict"``: IKE_AUTH fails with
AUTHENTICATION_FAILED, and its log names the serial and the source.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from pyipsec.pki.ca import Issued, issue_gateway
from pyipsec.pki.files import certificate_pem, private_key_pem
from pyipsec.pki.revoke import RevocationIndex
from tests.support import revocation_lab as lab
from tests.support.netns import TwoHosts
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

GW = "gw.example.org"


def write(directory: Path, name: str, issued: Issued) -> tuple[str, str]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.write_bytes(certificate_pem(issued.certificate))
    key.write_bytes(private_key_pem(issued.key))
    key.chmod(0o600)
    return str(cert), str(key)


def gateway_config(hosts: TwoHosts, pki: lab.Pki, **extra: Any) -> dict[str, Any]:
    gw_cert, gw_key = write(
        pki.directory, "gw", issue_gateway(pki.ca, [GW], now=datetime.now(UTC), key_spec=lab.EC)
    )
    return {
        "settings": {"log_level": "debug", "users": str(pki.directory / "gw-users.db")},
        "connections": {
            "rw": {
                "local_addrs": [hosts.link.b_addr],
                "mobike": False,
                "local": {"auth": "pubkey", "id": GW, "certs": [gw_cert]},
                "remote": {
                    "auth": "pubkey",
                    "cacerts": [str(pki.directory / "ca.pem")],
                    "revocation": "strict",
                },
                "children": {"net": {"local_ts": ["10.2.0.0/16"], "remote_ts": ["10.1.0.0/16"]}},
            }
        },
        "secrets": {"private-gw": {"file": gw_key}},
        **extra,
    }


def client_config(hosts: TwoHosts, pki: lab.Pki, who: Issued) -> dict[str, Any]:
    name = who.certificate.subject.rfc4514_string().removeprefix("CN=")
    cert, key = write(pki.directory, name, who)
    return {
        "settings": {"log_level": "debug", "users": str(pki.directory / f"{name}.db")},
        "connections": {
            "vpn": {
                "remote_addrs": [hosts.link.b_addr],
                "mobike": False,
                "local": {"auth": "pubkey", "id": name, "certs": [cert]},
                "remote": {"auth": "pubkey", "id": GW, "cacerts": [str(pki.directory / "ca.pem")]},
                "children": {"net": {"local_ts": ["10.1.0.0/16"], "remote_ts": ["10.2.0.0/16"]}},
            }
        },
        "secrets": {"private-client": {"file": key}},
    }


def up(client: PyIpsecDaemon) -> dict[str, Any]:
    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict)
    return result


def refused(gateway: PyIpsecDaemon, who: Issued, source: str) -> None:
    serial = f"{who.certificate.serial_number:#x}"
    log = gateway.log_text()
    line = next((x for x in log.splitlines() if serial in x and "revoked" in x), None)
    assert line is not None and source in line, log[-3000:]


def test_a_certificate_revoked_at_the_ocsp_responder_is_refused(
    hosts: TwoHosts,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    pki = lab.make_pki(tmp_path, hosts.link.b_addr)
    responder = lab.start_ocsp(hosts.right, pki)
    try:
        gateway = pyipsec_factory(hosts.right, gateway_config(hosts, pki), name="gateway")
        alice = pyipsec_factory(hosts.left, client_config(hosts, pki, pki.alice), name="alice")
        assert up(alice)["ok"] is True  # GOOD from the responder
        assert "good" in gateway.log_text() and pki.ocsp_uri in gateway.log_text()
        alice.call("down", name="vpn")
        gateway.wait_for(lambda sas: not sas)

        pki.revoke(pki.alice, datetime.now(UTC), x509.ReasonFlags.key_compromise)
        pki.write_openssl_index()
        lab.stop(responder)
        responder = lab.start_ocsp(hosts.right, pki)
        gateway.stop()  # a fresh gateway: the GOOD answer is cached until it expires (RFC 6960)
        gateway = pyipsec_factory(hosts.right, gateway_config(hosts, pki), name="gateway2")
        result = up(alice)
        assert result["ok"] is False and "AUTHENTICATION_FAILED" in str(result["message"]), result
        refused(gateway, pki.alice, f"per OCSP {pki.ocsp_uri}")
        assert gateway.status() == []
    finally:
        lab.stop(responder)


def test_a_certificate_on_the_crl_is_refused_until_the_crl_is_replaced(
    hosts: TwoHosts,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    pki = lab.make_pki(tmp_path, hosts.link.b_addr)
    pki.revoke(pki.bob, datetime.now(UTC), x509.ReasonFlags.superseded)
    pki.publish_crl(datetime.now(UTC))
    crl_file = pki.directory / "www" / "ca.crl"
    with lab.http_server(hosts.right, hosts.link.b_addr, pki):
        # the CRL from the certificate's distribution point, over HTTP
        gateway = pyipsec_factory(hosts.right, gateway_config(hosts, pki), name="gateway")
        bob = pyipsec_factory(hosts.left, client_config(hosts, pki, pki.bob), name="bob")
        result = up(bob)
        assert result["ok"] is False and "AUTHENTICATION_FAILED" in str(result["message"]), result
        refused(gateway, pki.bob, f"per CRL {pki.crl_uri}")
        gateway.stop()

        # the CRL as a file of [authorities]: replaced by one without bob, it lets him in again
        authorities = {
            "authorities": {"ca": {"cacert": str(pki.directory / "ca.pem"), "crl_uris": [str(crl_file)]}}
        }
        gateway = pyipsec_factory(hosts.right, gateway_config(hosts, pki, **authorities), name="gateway2")
        assert up(bob)["ok"] is False
        refused(gateway, pki.bob, f"per CRL {crl_file}")
        pki.index = RevocationIndex(pki.index.crl_number)
        pki.publish_crl(datetime.now(UTC))
        assert up(bob)["ok"] is True
        (sa,) = gateway.wait_for(lambda sas: len(sas) == 1)
        assert sa["remote_id"] == "bob@example.org"
