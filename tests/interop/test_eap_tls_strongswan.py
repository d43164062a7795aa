"""EAP-TLS (RFC 5216, TLS 1.3 per RFC 9190) against strongSwan 5.9.8, both roles, v4 + v6 VIPs.

The gateway authenticates with its certificate (an IKE signature), the client with its own
certificate inside EAP-TLS; the EAP identity ``alice@pyipsec.test`` is the rfc822Name of the
client certificate (``pyipsec pki client``), where both implementations look for it.

TLS versions: pyipsec offers 1.2 and 1.3; charon's libtls negotiates at most 1.2 unless
``charon.tls.version_max`` says otherwise, and EAP-TLS over TLS 1.3 does not work with charon
5.9.8 at all: strongSwan added RFC 9190 (the commitment message, the TLS 1.3 MSK) to its
eap-tls plugin only in 5.9.10 (commits 5401a74d36 and 06abdf1d31), and a 5.9.8 client allowed
1.3 crashes (SIGSEGV in libtls) on the gateway's last flight (OpenSSL's two NewSessionTickets
and the commitment message). So the cases run with charon at
its default, TLS 1.2, and check that charon logs "negotiated TLS 1.2"; ``TLS_VERSIONS`` is the
place to add "1.3" once the peer is strongSwan >= 5.9.10. One case does let a 5.9.8 gateway
negotiate TLS 1.3: it then sends EAP-Success right after the handshake, without RFC 9190's
commitment message, and the pyipsec client must refuse that (a rogue gateway could do the same).

EAP-only authentication (RFC 5998): with ``remote.auth = eap-tls`` on the client and
``local.auth = eap-tls`` on the gateway, the gateway sends no AUTH before EAP and EAP-TLS alone
authenticates both ends (charon as client logs "allow mutual EAP-only authentication"; its
configuration follows strongSwan's own rw-eap-tls-only test scenario).

Failures: a client certificate from another CA is refused by either gateway; nothing stays
behind on either side.

Topology and dual-stack set-up: :mod:`tests.support.roadwarrior` (``dual_stack_*``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import roadwarrior as rw
from tests.support.netns import Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import DEFAULT_PLUGINS, Charon, CharonError, CharonFactory

pytestmark = pytest.mark.interop

CLIENT_ID = "alice@pyipsec.test"
TLS_VERSIONS = ["1.2"]
PLUGINS = (*DEFAULT_PLUGINS, "eap-tls")
NEGOTIATED = {"1.2": "negotiated TLS 1.2", "1.3": "negotiated TLS 1.3"}  # charon's log line


def charon_settings(tls_max: str) -> dict[str, str | int]:
    return {"charon.tls.version_max": tls_max}


def client_pki(tmp_path: Path) -> tuple[rw.Pki, Path, Path]:
    """The gateway's PKI and a client certificate for ``alice@pyipsec.test`` from the same CA."""
    pki = rw.make_pki(tmp_path / "pki")
    cert, key = rw.make_client_cert(pki, CLIENT_ID, tmp_path / "pki" / "alice")
    return pki, cert, key


def foreign_client(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for ``alice@pyipsec.test`` issued by an unrelated CA."""
    other = rw.make_pki(tmp_path / "other", cn="someone else's CA")
    return rw.make_client_cert(other, CLIENT_ID, tmp_path / "other" / "alice")


def pyipsec_gateway(
    factory: Callable[..., PyIpsecDaemon],
    site: rw.GatewaySite,
    pki: rw.Pki,
    tmp_path: Path,
    *,
    eap_only: bool = False,
) -> PyIpsecDaemon:
    """A pyipsec gateway for EAP-TLS clients; ``eap_only``: it authenticates by EAP-TLS too,
    sending no AUTH before EAP (RFC 5998)."""
    cfg: dict[str, Any] = rw.gateway_config(
        pki, lan_net=site.lan_net, users_db=tmp_path / "gw" / "users.db", dns=[site.lan_host]
    )
    rw.dual_stack_gateway(cfg, site)
    conn = cfg["connections"]["rw"]
    conn["remote"] = {"auth": "eap-tls", "cacerts": [str(pki.ca_cert)]}
    if eap_only:
        conn["local"]["auth"] = "eap-tls"
    return factory(site.gw, cfg, name="gateway")


def charon_client(
    factory: CharonFactory,
    ns: Namespace,
    site: rw.GatewaySite,
    link_addr: str,
    pki: rw.Pki,
    cert: Path,
    key: Path,
    tls_max: str,
    *,
    eap_only: bool = False,
) -> Charon:
    """strongSwan as an EAP-TLS client; ``eap_only``: the gateway too may authenticate by EAP-TLS
    alone (``remote.auth = eap-tls`` as in strongSwan's rw-eap-tls-only scenario)."""
    charon = factory(ns, "client", plugins=PLUGINS, settings=charon_settings(tls_max))
    ca_pem = pki.ca_cert.read_bytes()
    charon.load_cert(ca_pem, flag="CA")
    charon.load_key(key.read_bytes())
    conn = rw.charon_client_conn(gateway=link_addr, user=CLIENT_ID, lan_net=site.lan_net, ca_pem=ca_pem)
    conn["local"] = {"auth": "eap-tls", "id": CLIENT_ID, "certs": [cert.read_text()]}
    if eap_only:
        conn["remote"] = {"auth": "eap-tls", "id": rw.GATEWAY_NAME}
    charon.load_conn({"vpn": rw.dual_stack_client(conn, site)})
    return charon


def charon_gateway(
    factory: CharonFactory, site: rw.GatewaySite, pki: rw.Pki, tls_max: str = "1.2", *, eap_only: bool = False
) -> Charon:
    """strongSwan as a gateway for EAP-TLS clients; ``eap_only``: ``local.auth = eap-tls`` too."""
    charon = factory(site.gw, "gateway", plugins=PLUGINS, settings=charon_settings(tls_max))
    charon.load_cert(pki.ca_cert.read_bytes(), flag="CA")
    charon.load_key(pki.gw_key.read_bytes())
    conn = rw.charon_gateway_conn(cert_pem=pki.gw_cert.read_bytes(), lan_net=site.lan_net)
    conn["remote"] = {"auth": "eap-tls", "eap_id": "%any"}
    if eap_only:
        conn["local"]["auth"] = "eap-tls"  # type: ignore[index]
    rw.dual_stack_charon_gateway(charon, conn, site)
    charon.load_conn({"rw": conn})
    return charon


def pyipsec_client(
    factory: Callable[..., PyIpsecDaemon],
    ns: Namespace,
    link_addr: str,
    site: rw.GatewaySite,
    pki: rw.Pki,
    cert: Path,
    key: Path,
    tmp_path: Path,
    *,
    eap_only: bool = False,
) -> PyIpsecDaemon:
    """A pyipsec EAP-TLS client; ``eap_only``: ``remote.auth = "eap-tls"`` (RFC 5998 offered)."""
    cfg: dict[str, Any] = rw.client_config(
        tmp_path / "alice",
        ca_cert=pki.ca_cert,
        gateway=link_addr,
        user=CLIENT_ID,
        password="unused",
        lan_net=site.lan_net,
    )
    vpn = rw.dual_stack_client(cfg["connections"]["vpn"], site)
    vpn["local"] = {"auth": "eap-tls", "id": CLIENT_ID, "certs": [str(cert)]}
    if eap_only:
        vpn["remote"]["auth"] = "eap-tls"
    cfg["secrets"] = {"private-alice": {"file": str(key)}}
    return factory(ns, cfg, name="client")


@pytest.mark.parametrize("tls_max", TLS_VERSIONS)
def test_strongswan_client_eap_tls_to_pyipsec_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    tls_max: str,
) -> None:
    site = rw.dual_stack_site(topology)
    pki, cert, key = client_pki(tmp_path)
    gw = pyipsec_gateway(pyipsec_factory, site, pki, tmp_path)
    ns, link = site.add_client("alice")
    charon = charon_client(charon_factory, ns, site, link.a_addr, pki, cert, key, tls_max)

    charon.initiate(child="net", ike="vpn")
    sa = charon.wait_for_sa("vpn", child="net")
    assert sorted(sa.raw["local-vips"]) == sorted([rw.VIP4, rw.VIP6])
    (gw_sa,) = gw.wait_for(rw.established)
    assert gw_sa["remote_id"] == CLIENT_ID, gw_sa
    assert sorted(gw_sa["virtual_ips"]) == sorted([rw.VIP4, rw.VIP6])  # type: ignore[arg-type]
    assert NEGOTIATED[tls_max] in charon.log_text(), charon.describe()
    rw.ping_both(ns, site)


@pytest.mark.parametrize("tls_max", TLS_VERSIONS)
def test_pyipsec_client_eap_tls_to_strongswan_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    tls_max: str,
) -> None:
    site = rw.dual_stack_site(topology)
    pki, cert, key = client_pki(tmp_path)
    charon = charon_gateway(charon_factory, site, pki, tls_max)
    ns, link = site.add_client("alice")
    client = pyipsec_client(pyipsec_factory, ns, link.a_addr, site, pki, cert, key, tmp_path)

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is True, (result, charon.describe())
    assert sorted(result["virtual_ips"]) == sorted([rw.VIP4, rw.VIP6])  # type: ignore[arg-type]
    sw = charon.wait_for_sa("rw", child="net")
    assert sw.raw.get("remote-eap-id", sw.raw["remote-id"]) == CLIENT_ID, sw.raw
    assert sorted(sw.raw["remote-vips"]) == sorted([rw.VIP4, rw.VIP6])
    assert NEGOTIATED[tls_max] in charon.log_text(), charon.describe()
    rw.ping_both(ns, site)


def test_eap_only_strongswan_client_to_pyipsec_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    """RFC 5998: charon offers EAP_ONLY_AUTHENTICATION; the pyipsec gateway sends no AUTH before
    EAP, and charon accepts that only because EAP-TLS authenticates the gateway too."""
    site = rw.dual_stack_site(topology)
    pki, cert, key = client_pki(tmp_path)
    gw = pyipsec_gateway(pyipsec_factory, site, pki, tmp_path, eap_only=True)
    ns, link = site.add_client("alice")
    charon = charon_client(charon_factory, ns, site, link.a_addr, pki, cert, key, "1.2", eap_only=True)

    charon.initiate(child="net", ike="vpn")
    sa = charon.wait_for_sa("vpn", child="net")
    assert sorted(sa.raw["local-vips"]) == sorted([rw.VIP4, rw.VIP6])
    (gw_sa,) = gw.wait_for(rw.established)
    assert gw_sa["remote_id"] == CLIENT_ID, gw_sa
    log = charon.log_text()
    assert "allow mutual EAP-only authentication" in log, charon.describe()
    assert f"authentication of '{rw.GATEWAY_NAME}' with EAP successful" in log, charon.describe()
    rw.ping_both(ns, site)


def test_eap_only_pyipsec_client_to_strongswan_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki, cert, key = client_pki(tmp_path)
    charon = charon_gateway(charon_factory, site, pki, eap_only=True)
    ns, link = site.add_client("alice")
    client = pyipsec_client(pyipsec_factory, ns, link.a_addr, site, pki, cert, key, tmp_path, eap_only=True)

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is True, (result, charon.describe())
    assert sorted(result["virtual_ips"]) == sorted([rw.VIP4, rw.VIP6])  # type: ignore[arg-type]
    charon.wait_for_sa("rw", child="net")
    assert "the gateway authenticates by EAP only (RFC 5998)" in client.log_text()
    assert f"authentication of '{CLIENT_ID}' with EAP successful" in charon.log_text(), charon.describe()
    rw.ping_both(ns, site)


def test_pyipsec_client_refuses_a_tls13_eap_success_without_the_commitment_message(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    """RFC 9190 §2.5: in TLS 1.3 only the gateway's protected commitment message tells the client
    that the gateway accepted it; charon 5.9.8 allowed TLS 1.3 skips it and sends EAP-Success."""
    site = rw.dual_stack_site(topology)
    pki, cert, key = client_pki(tmp_path)
    charon = charon_gateway(charon_factory, site, pki, "1.3")
    ns, link = site.add_client("alice")
    client = pyipsec_client(pyipsec_factory, ns, link.a_addr, site, pki, cert, key, tmp_path)

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is False, result
    assert client.status() == []
    (reason,) = rw.closed_reasons(client.log_text())
    assert "EAP-Success before the TLS 1.3 commitment message (RFC 9190 §2.5): refused" in reason, reason
    log = charon.log_text()
    assert NEGOTIATED["1.3"] in log, charon.describe()
    # told so (RFC 7296 §2.21.2); charon keeps its half-open SA until its half-open timeout
    assert re.search(r"parsed INFORMATIONAL request \d+ \[ N\(AUTH_FAILED\) \]", log), charon.describe()
    assert all(sa.state != "ESTABLISHED" for sa in charon.list_sas("rw"))
    assert rw.tun_addresses(ns) == []


def test_pyipsec_gateway_refuses_a_client_certificate_of_another_ca(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    cert, key = foreign_client(tmp_path)
    gw = pyipsec_gateway(pyipsec_factory, site, pki, tmp_path)
    ns, link = site.add_client("alice")
    charon = charon_client(charon_factory, ns, site, link.a_addr, pki, cert, key, "1.2")

    with pytest.raises(CharonError):
        charon.initiate(child="net", ike="vpn")
    charon.wait_for_no_sa("vpn")
    gw.wait_for(lambda sas: not sas)
    (reason,) = rw.closed_reasons(gw.log_text())
    assert "client certificate 'CN=alice@pyipsec.test' rejected" in reason, reason
    assert "not issued by a trusted CA" in reason, reason
    log = charon.log_text()
    assert "received fatal TLS alert 'unknown ca'" in log and "EAP_TLS method failed" in log, (
        charon.describe()
    )


def test_strongswan_gateway_refuses_a_client_certificate_of_another_ca(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    cert, key = foreign_client(tmp_path)
    charon = charon_gateway(charon_factory, site, pki)
    ns, link = site.add_client("alice")
    client = pyipsec_client(pyipsec_factory, ns, link.a_addr, site, pki, cert, key, tmp_path)

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is False, result
    assert client.status() == []
    charon.wait_for_no_sa("rw")
    (reason,) = rw.closed_reasons(client.log_text())
    assert "EAP authentication failed: TLS alert: certificate unknown" in reason, reason
    log = charon.log_text()
    assert f"no trusted certificate found for '{CLIENT_ID}'" in log, charon.describe()
    assert f"EAP method EAP_TLS failed for peer {CLIENT_ID}" in log, charon.describe()
