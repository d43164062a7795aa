"""Two authentication rounds (RFC 4739) against strongSwan 5.9.8, both roles, v4 + v6 VIPs.

The client authenticates twice: first with its certificate (an IKE signature; IDi
``alice@pyipsec.test``, the rfc822Name of a ``pyipsec pki client`` certificate), then with
EAP-MSCHAPv2 as ``alice``. In swanctl's words the client has ``local-1 { auth = pubkey }`` and
``local-2 { auth = eap-mschapv2; eap_id = alice }``, the gateway ``remote-1 { auth = pubkey }``
and ``remote-2 { auth = eap-mschapv2; eap_id = %any }``; pyipsec's TOML uses the same
``local-N``/``remote-N`` tables. Both sides announce MULTIPLE_AUTH_SUPPORTED; the second round
starts with the client's ANOTHER_AUTH_FOLLOWS beside its first AUTH.

Failure: the right certificate but the wrong password in round 2 fails the IKE SA on both
sides, whichever is the gateway, with a reason naming the EAP round; nothing stays behind.

Topology and dual-stack set-up: :mod:`tests.support.roadwarrior` (``dual_stack_*``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import roadwarrior as rw
from tests.support.netns import Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import Charon, CharonError, CharonFactory

pytestmark = pytest.mark.interop

CLIENT_ID = "alice@pyipsec.test"
USER, PASSWORD = "alice", "alice-secret-1"
WRONG_PASSWORD = "not-alices-password"


def two_round_pki(tmp_path: Path) -> tuple[rw.Pki, Path, Path]:
    """The gateway's PKI and the client's certificate for the first round."""
    pki = rw.make_pki(tmp_path / "pki")
    cert, key = rw.make_client_cert(pki, CLIENT_ID, tmp_path / "pki" / "alice")
    return pki, cert, key


def pyipsec_gateway(
    factory: Callable[..., PyIpsecDaemon], site: rw.GatewaySite, pki: rw.Pki, tmp_path: Path
) -> PyIpsecDaemon:
    cfg: dict[str, Any] = rw.gateway_config(
        pki, lan_net=site.lan_net, users_db=tmp_path / "gw" / "users.db", dns=[site.lan_host]
    )
    rw.dual_stack_gateway(cfg, site)
    conn = cfg["connections"]["rw"]
    del conn["remote"]
    conn["remote-1"] = {"auth": "pubkey", "cacerts": [str(pki.ca_cert)]}
    conn["remote-2"] = {"auth": "eap-mschapv2"}
    cfg["secrets"][f"eap-{USER}"] = {"id": USER, "secret": PASSWORD}
    return factory(site.gw, cfg, name="gateway")


def charon_client(
    factory: CharonFactory,
    ns: Namespace,
    site: rw.GatewaySite,
    link_addr: str,
    pki: rw.Pki,
    cert: Path,
    key: Path,
    password: str,
) -> Charon:
    charon = factory(ns, "client")
    ca_pem = pki.ca_cert.read_bytes()
    charon.load_cert(ca_pem, flag="CA")
    charon.load_key(key.read_bytes())
    charon.load_shared(password, type="EAP", owners=[USER])
    conn = rw.charon_client_conn(gateway=link_addr, user=USER, lan_net=site.lan_net, ca_pem=ca_pem)
    del conn["local"]
    conn["local-1"] = {"auth": "pubkey", "id": CLIENT_ID, "certs": [cert.read_text()]}
    conn["local-2"] = {"auth": "eap-mschapv2", "eap_id": USER}
    charon.load_conn({"vpn": rw.dual_stack_client(conn, site)})
    return charon


def charon_gateway(factory: CharonFactory, site: rw.GatewaySite, pki: rw.Pki) -> Charon:
    charon = factory(site.gw, "gateway")
    charon.load_cert(pki.ca_cert.read_bytes(), flag="CA")
    charon.load_key(pki.gw_key.read_bytes())
    charon.load_shared(PASSWORD, type="EAP", owners=[USER])
    conn = rw.charon_gateway_conn(cert_pem=pki.gw_cert.read_bytes(), lan_net=site.lan_net)
    del conn["remote"]
    conn["remote-1"] = {"auth": "pubkey"}
    conn["remote-2"] = {"auth": "eap-mschapv2", "eap_id": "%any"}
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
    password: str,
    tmp_path: Path,
) -> PyIpsecDaemon:
    cfg: dict[str, Any] = rw.client_config(
        tmp_path / "alice",
        ca_cert=pki.ca_cert,
        gateway=link_addr,
        user=USER,
        password=password,
        lan_net=site.lan_net,
    )
    vpn = rw.dual_stack_client(cfg["connections"]["vpn"], site)
    del vpn["local"]
    vpn["local-1"] = {"auth": "pubkey", "id": CLIENT_ID, "certs": [str(cert)]}
    vpn["local-2"] = {"auth": "eap-mschapv2", "id": USER, "eap_id": USER}
    cfg["secrets"]["private-alice"] = {"file": str(key)}
    return factory(ns, cfg, name="client")


def test_strongswan_client_certificate_then_eap_to_pyipsec_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki, cert, key = two_round_pki(tmp_path)
    gw = pyipsec_gateway(pyipsec_factory, site, pki, tmp_path)
    ns, link = site.add_client("alice")
    charon = charon_client(charon_factory, ns, site, link.a_addr, pki, cert, key, PASSWORD)

    charon.initiate(child="net", ike="vpn")
    sa = charon.wait_for_sa("vpn", child="net")
    assert sorted(sa.raw["local-vips"]) == sorted([rw.VIP4, rw.VIP6])
    (gw_sa,) = gw.wait_for(rw.established)
    assert gw_sa["remote_id"] == CLIENT_ID, gw_sa
    assert sorted(gw_sa["virtual_ips"]) == sorted([rw.VIP4, rw.VIP6])  # type: ignore[arg-type]
    log = charon.log_text()
    assert f"authentication of '{CLIENT_ID}' (myself) with ECDSA" in log, charon.describe()
    assert "EAP method EAP_MSCHAPV2 succeeded, MSK established" in log, charon.describe()
    assert f"authentication of '{rw.GATEWAY_NAME}' with EAP successful" in log, charon.describe()
    rw.ping_both(ns, site)


def test_pyipsec_client_certificate_then_eap_to_strongswan_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki, cert, key = two_round_pki(tmp_path)
    charon = charon_gateway(charon_factory, site, pki)
    ns, link = site.add_client("alice")
    client = pyipsec_client(pyipsec_factory, ns, link.a_addr, site, pki, cert, key, PASSWORD, tmp_path)

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is True, (result, charon.describe())
    assert sorted(result["virtual_ips"]) == sorted([rw.VIP4, rw.VIP6])  # type: ignore[arg-type]
    sw = charon.wait_for_sa("rw", child="net")
    assert sorted(sw.raw["remote-vips"]) == sorted([rw.VIP4, rw.VIP6])
    log = charon.log_text()
    assert f"authentication of '{CLIENT_ID}' with ECDSA" in log, charon.describe()
    assert f"authentication of '{USER}' with EAP successful" in log, charon.describe()
    rw.ping_both(ns, site)


def test_pyipsec_gateway_refuses_a_wrong_password_in_round_two(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki, cert, key = two_round_pki(tmp_path)
    gw = pyipsec_gateway(pyipsec_factory, site, pki, tmp_path)
    ns, link = site.add_client("alice")
    charon = charon_client(charon_factory, ns, site, link.a_addr, pki, cert, key, WRONG_PASSWORD)

    with pytest.raises(CharonError):
        charon.initiate(child="net", ike="vpn")
    charon.wait_for_no_sa("vpn")
    gw.wait_for(lambda sas: not sas)
    (reason,) = rw.closed_reasons(gw.log_text())
    assert f"wrong password for user '{USER}'" in reason, reason
    log = charon.log_text()
    assert f"authentication of '{CLIENT_ID}' (myself) with ECDSA" in log, charon.describe()
    assert "EAP_MSCHAPV2 method failed" in log, charon.describe()


def test_strongswan_gateway_refuses_a_wrong_password_in_round_two(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki, cert, key = two_round_pki(tmp_path)
    charon = charon_gateway(charon_factory, site, pki)
    ns, link = site.add_client("alice")
    client = pyipsec_client(pyipsec_factory, ns, link.a_addr, site, pki, cert, key, WRONG_PASSWORD, tmp_path)

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is False, result
    assert client.status() == []
    charon.wait_for_no_sa("rw")
    (reason,) = rw.closed_reasons(client.log_text())
    assert "EAP authentication failed: the gateway refused the credentials (E=691" in reason, reason
    log = charon.log_text()
    assert f"authentication of '{CLIENT_ID}' with ECDSA" in log, charon.describe()
    assert "EAP method EAP_MSCHAPV2 failed for peer alice" in log, charon.describe()
