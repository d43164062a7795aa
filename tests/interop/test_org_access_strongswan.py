"""Remote access for an organisation against strongSwan 5.9.8, both roles, v4 + v6 virtual IPs.

The matrix of issue 11, one row per authentication set-up, each in both directions:

* EAP-MSCHAPv2 with the gateway's users only in ``[secrets.eap-*]`` (swanctl's shape; a pyipsec
  gateway once looked only in its SQLite store and refused them all);

Every case asks for an IPv4 and an IPv6 virtual IP (two pools), covers the LAN's /24 and /64,
and pings the LAN host over both families from the virtual IPs.

Topology (:mod:`tests.support.roadwarrior`): ``gw`` with a ``lan`` namespace behind it (which
routes both pools back via ``gw``), the client in a namespace of its own. charon's libipsec
fakes a NAT, so IKE and ESP run over UDP 4500.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import roadwarrior as rw
from tests.support.netns import Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import CharonFactory

pytestmark = pytest.mark.interop

USER, PASSWORD = "alice", "alice-secret-1"


def pyipsec_gateway_config(site: rw.GatewaySite, pki: rw.Pki, tmp_path: Path) -> dict[str, Any]:
    """A pyipsec gateway with two pools; its EAP users only in ``[secrets.eap-*]``."""
    cfg: dict[str, Any] = rw.gateway_config(
        pki, lan_net=site.lan_net, users_db=tmp_path / "gw" / "users.db", pool=rw.POOL, dns=[site.lan_host]
    )
    rw.dual_stack_gateway(cfg, site)
    cfg["secrets"][f"eap-{USER}"] = {"id": USER, "secret": PASSWORD}
    return cfg


def charon_client(
    factory: CharonFactory, ns: Namespace, site: rw.GatewaySite, link_addr: str, pki: rw.Pki
) -> Any:
    charon = factory(ns, "client")
    ca_pem = pki.ca_cert.read_bytes()
    charon.load_cert(ca_pem, flag="CA")
    charon.load_shared(PASSWORD, type="EAP", owners=[USER])
    conn = rw.charon_client_conn(gateway=link_addr, user=USER, lan_net=site.lan_net, ca_pem=ca_pem)
    charon.load_conn({"vpn": rw.dual_stack_client(conn, site)})
    return charon


def test_strongswan_client_dual_stack_with_users_in_eap_secrets(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    gw = pyipsec_factory(site.gw, pyipsec_gateway_config(site, pki, tmp_path), name="gateway")
    ns, link = site.add_client("alice")
    charon = charon_client(charon_factory, ns, site, link.a_addr, pki)

    charon.initiate(child="net", ike="vpn")
    sa = charon.wait_for_sa("vpn", child="net")
    assert sorted(sa.raw["local-vips"]) == sorted([rw.VIP4, rw.VIP6])
    (gw_sa,) = gw.wait_for(rw.established)
    assert gw_sa["remote_id"] == USER and sorted(gw_sa["virtual_ips"]) == sorted([rw.VIP4, rw.VIP6])
    assert "EAP user 'alice': password from the configuration ([secrets.eap-alice])" in gw.log_text()
    assert ns.wait_ping(site.lan_host, timeout=5), charon.describe()
    rw.ping_both(ns, site)


def test_pyipsec_client_dual_stack_to_strongswan_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.dual_stack_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    charon = charon_factory(site.gw, "gateway")
    charon.load_key(pki.gw_key.read_bytes())
    charon.load_shared(PASSWORD, type="EAP", owners=[USER])
    conn = rw.charon_gateway_conn(cert_pem=pki.gw_cert.read_bytes(), lan_net=site.lan_net)
    rw.dual_stack_charon_gateway(charon, conn, site)
    charon.load_conn({"rw": conn})
    ns, link = site.add_client("alice")
    cfg = rw.client_config(
        tmp_path / "alice",
        ca_cert=pki.ca_cert,
        gateway=link.a_addr,
        user=USER,
        password=PASSWORD,
        lan_net=site.lan_net,
    )
    rw.dual_stack_client(cfg["connections"]["vpn"], site)  # type: ignore[index]
    client = pyipsec_factory(ns, cfg, name="client")

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is True, result
    assert sorted(result["virtual_ips"]) == sorted([rw.VIP4, rw.VIP6])  # type: ignore[arg-type]
    assert rw.tun_addresses(ns) == [rw.VIP4] and rw.tun_addresses(ns, family="-6") == [rw.VIP6]
    sw = charon.wait_for_sa("rw", child="net")
    assert sorted(sw.raw["remote-vips"]) == sorted([rw.VIP4, rw.VIP6])
    rw.ping_both(ns, site)
