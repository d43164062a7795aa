"""Remote access against strongSwan (issue: "Remote access"), both roles.

* strongSwan's charon as a road warrior (``eap-mschapv2``, ``vips = 0.0.0.0``, the gateway's
  certificate checked against our CA) connects to a pyipsec gateway (certificate from ``pyipsec
  pki``, users from ``pyipsec user add``, a pool with DNS): charon gets its virtual IP and pings a
  host behind the gateway through its libipsec ``ipsec0`` with the VIP as source.
* A pyipsec road warrior connects to charon set up like a commercial VPN gateway (server
  certificate, ``send_cert = always``, EAP-MSCHAPv2 users loaded with ``load-shared type=EAP``,
  ``eap_id = %any``, a vici pool with a DNS attribute): the pyipsec client gets its VIP (``up``
  and ``status``), puts it on its TUN device, writes the DNS server to its ``resolv_conf`` (a
  file in ``tmp_path``) and pings from the VIP to the LAN host; ``down`` gives it all back.
* The ways to fail, on each side of each pairing: each fails with its own reason on both sides and
  leaves no SA and no lease behind (pyipsec's SQLite lease table; charon's pool leases).

The topology (:mod:`tests.support.roadwarrior`): ``gw`` with a ``lan`` namespace behind it, each
client in a namespace of its own on a veth link to ``gw``. charon's libipsec fakes a NAT, so every
case here also runs IKE and ESP over UDP 4500.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyipsec.control.protocol import JsonValue
from tests.support import roadwarrior as rw
from tests.support.netns import Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import Charon, CharonError, CharonFactory
from tests.support.vici_sa import IkeSa, ViciOut, decode_vici

pytestmark = pytest.mark.interop

USERS = {"alice": "alice-secret-1", "bob": "bob-secret-2"}
VIP = "10.233.0.1"  # the pool's first address, for the first identity
#: charon deletes a half-open IKE SA after this (its default is 30 s); a client that refuses the
#: gateway's certificate tells charon with INFORMATIONAL{AUTHENTICATION_FAILED} (RFC 7296
#: §2.21.2), which charon 5.9.8 answers like a liveness check and otherwise ignores.
CHARON_HALF_OPEN = 4


def charon_road_warrior(
    factory: CharonFactory,
    ns: Namespace,
    name: str,
    *,
    pki: rw.Pki,
    gateway: str,
    lan_net: str,
    user: str,
    password: str,
) -> Charon:
    charon = factory(ns, name)
    ca_pem = pki.ca_cert.read_bytes()
    charon.load_cert(ca_pem, flag="CA")
    charon.load_shared(password, type="EAP", owners=[user])
    charon.load_conn(
        {"vpn": rw.charon_client_conn(gateway=gateway, user=user, lan_net=lan_net, ca_pem=ca_pem)}
    )
    return charon


def charon_gateway(
    factory: CharonFactory, site: rw.GatewaySite, pki: rw.Pki, *, pool: str = rw.POOL
) -> Charon:
    charon = factory(site.gw, "gateway", settings={"charon.half_open_timeout": CHARON_HALF_OPEN})
    charon.load_key(pki.gw_key.read_bytes())
    for user, password in USERS.items():
        charon.load_shared(password, type="EAP", owners=[user])
    charon.load_pool({rw.POOL_NAME: {"addrs": pool, "dns": [site.lan_host]}})
    charon.load_conn({"rw": rw.charon_gateway_conn(cert_pem=pki.gw_cert.read_bytes(), lan_net=site.lan_net)})
    return charon


def charon_leases(charon: Charon) -> dict[str, str]:
    """charon's pool leases: address → identity, of those online."""
    pools = decode_vici(charon.session().get_pools({"leases": "yes"}))
    assert isinstance(pools, dict)
    pool = pools[rw.POOL_NAME]
    assert isinstance(pool, dict)
    leases: ViciOut = pool.get("leases", {})
    assert isinstance(leases, dict)
    out: dict[str, str] = {}
    for lease in leases.values():
        assert isinstance(lease, dict)
        if lease["status"] == "online":
            out[str(lease["address"])] = str(lease["identity"])
    return out


def _start_gateway(
    factory: Callable[..., PyIpsecDaemon], site: rw.GatewaySite, pki: rw.Pki, db: Path, *, pool: str = rw.POOL
) -> PyIpsecDaemon:
    rw.add_users(db, USERS)
    return factory(
        site.gw,
        rw.gateway_config(pki, lan_net=site.lan_net, users_db=db, pool=pool, dns=[site.lan_host]),
        name="gateway",
    )


# -- strongSwan client → pyipsec gateway --------------------------------------------------------


def test_strongswan_road_warrior_gets_vip_and_dns_from_pyipsec_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.gateway_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    db = tmp_path / "gateway-store" / "users.db"
    gw = _start_gateway(pyipsec_factory, site, pki, db)
    ns, link = site.add_client("alice")
    charon = charon_road_warrior(
        charon_factory,
        ns,
        "alice",
        pki=pki,
        gateway=link.a_addr,
        lan_net=site.lan_net,
        user="alice",
        password=USERS["alice"],
    )

    charon.initiate(child="net", ike="vpn")
    sa = charon.wait_for_sa("vpn", child="net")
    assert sa.raw["local-vips"] == [VIP] and sa.remote_id == rw.GATEWAY_NAME
    child = sa.child("net")
    assert child is not None and child.local_ts == (f"{VIP}/32",) and child.remote_ts == (site.lan_net,)
    assert f"nameserver {site.lan_host}" in (charon.directory / "resolv.conf").read_text()

    gw_sa = gw.wait_for(rw.established)[0]
    assert gw_sa["remote_id"] == "alice" and gw_sa["virtual_ips"] == [VIP]
    assert gw_sa["spi_i"] == sa.spi_i and gw_sa["spi_r"] == sa.spi_r
    # libipsec routes the LAN through ipsec0 with the VIP as source (no -I here); our inbound
    # policy admits only the VIP, so an answer proves it.
    assert ns.wait_ping(site.lan_host, timeout=5), charon.describe()
    counters = rw.traffic(rw.only_child(gw.status()[0]))
    assert counters["packets_in"] >= 1 and counters["packets_out"] >= 1, counters
    assert [(str(x.address), x.identity, x.live) for x in rw.leases(db)] == [(VIP, "alice", True)]

    charon.terminate(ike="vpn")
    charon.wait_for_no_sa("vpn")
    gw.wait_for(lambda sas: not sas)
    assert f"nameserver {site.lan_host}" not in (charon.directory / "resolv.conf").read_text()
    assert [(str(x.address), x.identity, x.live) for x in rw.leases(db)] == [(VIP, "alice", False)]


# case: (user, password, what charon logs, what the pyipsec gateway's close reason holds)
CHARON_CLIENT_FAILURES = {
    "wrong-password": (
        "alice",
        "not-her-password",
        "EAP-MS-CHAPv2 failed with error ERROR_AUTHENTICATION_FAILURE",
        "AUTHENTICATION_FAILED after EAP: wrong password for user 'alice' (E=691)",
    ),
    "unknown-user": (
        "mallory",
        "mallory-secret",
        "EAP-MS-CHAPv2 failed with error ERROR_AUTHENTICATION_FAILURE",
        "AUTHENTICATION_FAILED after EAP: unknown user 'mallory' (E=691)",
    ),
    "pool-exhausted": (
        "alice",
        USERS["alice"],
        "N(INT_ADDR_FAIL) ]",  # beside the gateway's AUTH (RFC 7296 §3.15.4): no Child SA
        "no virtual IP for the peer: pool 'rw' is exhausted: all 1 addresses are leased",
    ),
}


@pytest.mark.parametrize("case", list(CHARON_CLIENT_FAILURES))
def test_strongswan_road_warrior_refused_by_pyipsec_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    case: str,
) -> None:
    user, password, charon_says, gateway_says = CHARON_CLIENT_FAILURES[case]
    site = rw.gateway_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    db = tmp_path / "gateway-store" / "users.db"
    pool = "10.233.0.5-10.233.0.5" if case == "pool-exhausted" else rw.POOL
    gw = _start_gateway(pyipsec_factory, site, pki, db, pool=pool)
    holder: list[JsonValue] = []
    if case == "pool-exhausted":  # bob holds the only address
        bob_ns, bob_link = site.add_client("bob")
        bob = charon_road_warrior(
            charon_factory,
            bob_ns,
            "bob",
            pki=pki,
            gateway=bob_link.a_addr,
            lan_net=site.lan_net,
            user="bob",
            password=USERS["bob"],
        )
        bob.initiate(child="net", ike="vpn")
        assert bob.wait_for_sa("vpn", child="net").raw["local-vips"] == ["10.233.0.5"]
        holder = [gw.wait_for(rw.established)[0]["id"]]

    ns, link = site.add_client("client")
    charon = charon_road_warrior(
        charon_factory,
        ns,
        "client",
        pki=pki,
        gateway=link.a_addr,
        lan_net=site.lan_net,
        user=user,
        password=password,
    )
    with pytest.raises(CharonError, match="establishing CHILD_SA 'net' failed"):
        charon.initiate(child="net", ike="vpn")
    assert charon_says in charon.log_text()
    charon.wait_for_no_sa("vpn")
    assert "installing new virtual IP" not in charon.log_text()

    def gateway_closed(_: object) -> bool:
        return any(gateway_says in r for r in rw.closed_reasons(gw.log_text()))

    gw.wait_for(gateway_closed, timeout=10)
    assert [s["id"] for s in gw.wait_for(lambda sas: len(sas) == len(holder))] == holder
    held = [(str(x.address), x.identity, x.live) for x in rw.leases(db)]
    assert held == ([("10.233.0.5", "bob", True)] if case == "pool-exhausted" else [])


# -- pyipsec client → strongSwan gateway --------------------------------------------------------


def test_pyipsec_road_warrior_to_strongswan_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.gateway_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    charon = charon_gateway(charon_factory, site, pki)
    ns, link = site.add_client("alice")
    resolv = tmp_path / "alice" / "resolv.conf"
    client = pyipsec_factory(
        ns,
        rw.client_config(
            tmp_path / "alice",
            ca_cert=pki.ca_cert,
            gateway=link.a_addr,
            user="alice",
            password=USERS["alice"],
            lan_net=site.lan_net,
        ),
        name="client",
    )

    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is True, result
    assert result["virtual_ips"] == [VIP] and result["dns"] == [site.lan_host]
    (sa,) = client.wait_for(rw.established)
    assert sa["virtual_ips"] == [VIP] and sa["encap"] is True
    assert rw.tun_addresses(ns) == [VIP]
    # charon 5.9.8 sends no INTERNAL_DNS_DOMAIN: a nameserver line and no search line
    assert resolv.read_text().splitlines()[1:] == [f"nameserver {site.lan_host}"]

    sw = charon.wait_for_sa("rw", child="net")
    assert sw.raw["remote-vips"] == [VIP] and sw.remote_id == "alice"
    assert sw.spi_i == sa["spi_i"] and sw.spi_r == sa["spi_r"]
    assert charon_leases(charon) == {VIP: "alice"}
    assert rw.ping_from(ns, VIP, site.lan_host), client.log_text()[-3000:]
    sw_child = charon.wait_for_sa("rw", child="net").child("net")
    assert sw_child is not None and int(str(sw_child.raw["packets-in"])) >= 1
    assert sw_child.remote_ts == (f"{VIP}/32",)

    client.call("down", name="vpn")
    client.wait_for(lambda sas: not sas)
    charon.wait_for_no_sa("rw")
    assert charon_leases(charon) == {}
    assert rw.tun_addresses(ns) == []
    assert resolv.read_text() == rw.ORIGINAL_RESOLV_CONF


# case: (user, password, the client's `up` message holds, charon logs)
PYIPSEC_CLIENT_FAILURES = {
    "wrong-password": (
        "alice",
        "not-her-password",
        "EAP authentication failed: the gateway refused the credentials (E=691",
        "EAP-MS-CHAPv2 verification failed",
    ),
    "unknown-user": (
        "mallory",
        "mallory-secret",
        "EAP authentication failed: the gateway refused the credentials (E=691",
        "no EAP key found for hosts 'vpn.pyipsec.test' - 'mallory'",
    ),
    "untrusted-gateway-cert": (
        "alice",
        USERS["alice"],
        "AUTHENTICATION_FAILED: certificate 'CN=vpn.pyipsec.test' has an untrusted issuer",
        "parsed INFORMATIONAL request 2 [ N(AUTH_FAILED) ]",
    ),
    "gateway-name-not-in-san": (
        "alice",
        USERS["alice"],
        "peer identity vpn.pyipsec.test is not confirmed by its certificate 'CN=other.pyipsec.test'",
        "parsed INFORMATIONAL request 2 [ N(AUTH_FAILED) ]",
    ),
    "pool-exhausted": ("alice", USERS["alice"], "INTERNAL_ADDRESS_FAILURE", "no virtual IP found"),
}


@pytest.mark.parametrize("case", list(PYIPSEC_CLIENT_FAILURES))
def test_pyipsec_road_warrior_refused_by_strongswan_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    case: str,
) -> None:
    user, password, client_says, charon_says = PYIPSEC_CLIENT_FAILURES[case]
    site = rw.gateway_site(topology)
    names = ["other.pyipsec.test"] if case == "gateway-name-not-in-san" else [rw.GATEWAY_NAME]
    pki = rw.make_pki(tmp_path / "pki", names)
    trusted = (
        rw.make_ca(tmp_path / "other-ca", "another CA") if case == "untrusted-gateway-cert" else pki.ca_cert
    )
    exhausted = case == "pool-exhausted"
    charon = charon_gateway(charon_factory, site, pki, pool="10.233.0.5/32" if exhausted else rw.POOL)
    holders = 0
    if exhausted:  # bob holds the only address
        bob_ns, bob_link = site.add_client("bob")
        bob = pyipsec_factory(
            bob_ns,
            rw.client_config(
                tmp_path / "bob",
                ca_cert=pki.ca_cert,
                gateway=bob_link.a_addr,
                user="bob",
                password=USERS["bob"],
                lan_net=site.lan_net,
            ),
            name="bob",
        )
        held = bob.call("up", name="vpn", timeout=20)
        assert isinstance(held, dict) and held["virtual_ips"] == ["10.233.0.5"], held
        holders = 1

    ns, link = site.add_client("client")
    client = pyipsec_factory(
        ns,
        rw.client_config(
            tmp_path / "client",
            ca_cert=trusted,
            gateway=link.a_addr,
            user=user,
            password=password,
            lan_net=site.lan_net,
        ),
        name="client",
    )
    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is False, result
    assert client_says in str(result["message"]), result
    assert client.status() == [] and rw.tun_addresses(ns) == []
    assert (tmp_path / "client" / "resolv.conf").read_text() == rw.ORIGINAL_RESOLV_CONF

    assert charon_says in charon.log_text()
    # No SA for the refused client is left on charon (half-open ones go after CHARON_HALF_OPEN s).
    left = [(s.remote_id, s.state) for s in _wait_sas(charon, holders) if s.remote_id != "bob"]
    assert left == []
    assert charon_leases(charon) == ({"10.233.0.5": "bob"} if exhausted else {})


def _wait_sas(charon: Charon, count: int) -> list[IkeSa]:
    """charon's IKE SAs of ``rw`` once there are ``count`` (or the last list after a timeout)."""
    deadline = time.monotonic() + CHARON_HALF_OPEN + 4
    sas = charon.list_sas("rw")
    while len(sas) != count and time.monotonic() < deadline:
        time.sleep(0.2)
        sas = charon.list_sas("rw")
    return sas
