"""pyipsec ↔ pyipsec tunnels between network namespaces: real daemons, real data planes.

Each side runs `pyipsec daemon` (IKE in the daemon, ESP in its data-plane process). Traffic
between the sites' inner addresses (on ``lo``) goes through the TUN devices: a ping, then a
bulk TCP transfer in both directions with its content checked. Without a NAT the data planes
use plain ESP (IP protocol 50); through the NAT router, ESP in UDP 4500.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.test_ike_strongswan import _py_established, make_creds, pyipsec_config
from tests.support.netns import Namespace, Topology, nat_topology, two_hosts
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.traffic import bulk_tcp

pytestmark = pytest.mark.integration

SUITES = [
    ("aes256gcm16-prfsha256-ecp256", "aes256gcm16"),
    ("aes256-sha256-modp2048", "aes256-sha256"),
    ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
]


def _sites(a: Namespace, b: Namespace) -> tuple[str, str]:
    a.add_address("lo", "10.232.1.1/32")
    b.add_address("lo", "10.232.2.1/32")
    return "10.232.1.1", "10.232.2.1"


def _bring_up(
    factory: Callable[..., PyIpsecDaemon],
    tmp: Path,
    a: Namespace,
    b: Namespace,
    a_addr: str,
    b_addr: str,
    ike: str,
    esp: str,
    *,
    b_remote: str | None = None,
) -> tuple[PyIpsecDaemon, PyIpsecDaemon]:
    creds = make_creds("psk")
    left = pyipsec_config(
        tmp / "l",
        creds,
        local=a_addr,
        remote=b_addr,
        lts="10.232.1.1/32",
        rts="10.232.2.1/32",
        ike=ike,
        esp=esp,
    )
    right = pyipsec_config(
        tmp / "r",
        creds,
        local=b_addr,
        remote=b_remote or a_addr,
        lts="10.232.2.1/32",
        rts="10.232.1.1/32",
        ike=ike,
        esp=esp,
    )
    # the right side plays "sun": swap the identities
    rc = right["connections"]["site"]  # type: ignore[index]
    rc["local"], rc["remote"] = left["connections"]["site"]["remote"], left["connections"]["site"]["local"]  # type: ignore[index]
    da = factory(a, left, name="left")
    db = factory(b, right, name="right")
    result = da.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], (result, da.log_text()[-2000:], db.log_text()[-2000:])
    db.wait_for(_py_established)
    return da, db


@pytest.mark.parametrize(("ike", "esp"), SUITES, ids=[s[1] for s in SUITES])
def test_tunnel_without_nat_uses_plain_esp(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    ike: str,
    esp: str,
) -> None:
    hosts = two_hosts(topology)
    a, b = hosts.left, hosts.right
    inner_a, inner_b = _sites(a, b)
    da, db = _bring_up(pyipsec_factory, tmp_path, a, b, hosts.link.a_addr, hosts.link.b_addr, ike, esp)
    (sa,) = da.status()
    assert sa["encap"] is False  # no NAT: ESP is IP protocol 50
    assert a.wait_ping(inner_b, timeout=5)
    assert b.ping(inner_a, count=2)
    bulk_tcp(a, b, inner_b, tmp_path)
    bulk_tcp(b, a, inner_a, tmp_path)
    (sa,) = da.status()
    (child,) = sa["children"]  # type: ignore[misc]
    traffic = child["traffic"]  # type: ignore[index]
    assert traffic["packets_out"] > 1000 and traffic["integrity_failures"] == 0, traffic
    # delete from the responder: both sides lose the SA, traffic stops
    db.call("down", name="site")
    da.wait_for(lambda sas: not sas)
    assert not a.ping(inner_b, timeout=1)


@pytest.mark.parametrize(("ike", "esp"), SUITES[:1], ids=[SUITES[0][1]])
def test_tunnel_through_nat_uses_udp_4500(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    ike: str,
    esp: str,
) -> None:
    nat = nat_topology(topology)
    client, server = nat.client, nat.server
    inner_c, inner_s = _sites(client, server)
    dc, _ = _bring_up(
        pyipsec_factory,
        tmp_path,
        client,
        server,
        nat.inside.b_addr,
        nat.outside.b_addr,
        ike,
        esp,
        b_remote="%any",
    )
    (sa,) = dc.status()
    assert sa["encap"] is True and sa["nat_local"] is True
    assert str(sa["local"]).endswith(":4500")
    assert client.wait_ping(inner_s, timeout=5)
    bulk_tcp(client, server, inner_s, tmp_path)
    bulk_tcp(server, client, inner_c, tmp_path)
