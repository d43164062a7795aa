"""A pyipsec gateway whose users live behind a real FreeRADIUS 3.2 (``auth = "eap-radius"``).

Topology (:mod:`tests.support.roadwarrior`): ``gw`` with the ``lan`` namespace behind it, where
FreeRADIUS listens on the LAN host's address (the gateway is its one RADIUS client); pyipsec
road warriors in namespaces of their own. FreeRADIUS serves EAP-MSCHAPv2 (``alice``, and
``bob`` with a Framed-IP-Address) and EAP-TLS (``carol@pyipsec.test``'s certificate from the
same CA as the gateway's, FreeRADIUS proposing MSCHAPv2 first so that the client's Nak is
exercised), and writes accounting to its detail file, which the tests read back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import roadwarrior as rw
from tests.support.freeradius import FreeRadius, RadiusUser, TlsFiles, freeradius_available
from tests.support.netns import Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

SECRET = "radius-secret-for-the-gateway"
USERS = [
    RadiusUser("alice", "alice-secret-1"),
    RadiusUser("bob", "bob-secret-2", reply=(("Framed-IP-Address", "10.233.0.77"), ("Class", "0x6f7267"))),
]
TLS_USER = "carol@pyipsec.test"


@dataclass
class Lab:
    site: rw.GatewaySite
    pki: rw.Pki
    radius: FreeRadius
    gateway: PyIpsecDaemon
    tmp: Path
    carol: Path  # carol's certificate directory (carol@pyipsec.test-cert.pem / -key.pem)


def gateway_config(site: rw.GatewaySite, pki: rw.Pki, tmp: Path, **radius: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = rw.gateway_config(pki, lan_net=site.lan_net, users_db=tmp / "gw" / "users.db")
    cfg["connections"]["rw"]["remote"] = {"auth": "eap-radius"}
    cfg["radius"] = {
        "accounting": True,
        "timeout": "1s",
        "tries": 2,
        "servers": {"lan": {"address": site.lan_host, "secret": SECRET}},
        **radius,
    }
    return cfg


@pytest.fixture
def lab(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> Iterator[Lab]:
    problem = freeradius_available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    site = rw.gateway_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    carol = tmp_path / "carol"
    rw.pyipsec_cli(
        "pki",
        "client",
        "--ca",
        str(tmp_path / "pki" / "ca"),
        "--name",
        TLS_USER,
        "--out",
        str(carol),
        "--key",
        "ecdsa",
    )
    tls = TlsFiles(pki.gw_cert.read_bytes(), pki.gw_key.read_bytes(), pki.ca_cert.read_bytes())
    server = FreeRadius(
        site.lan,
        listen=site.lan_host,
        client=site.lan_link.a_addr,
        secret=SECRET.encode(),
        users=USERS,
        tls=tls,
    )
    with server:
        gateway = pyipsec_factory(site.gw, gateway_config(site, pki, tmp_path), name="gateway")
        yield Lab(site, pki, server, gateway, tmp_path, carol)


def client(lab: Lab, factory: Callable[..., PyIpsecDaemon], name: str, **local: Any) -> PyIpsecDaemon:
    ns, link = lab.site.add_client(name)
    cfg: dict[str, Any] = rw.client_config(
        lab.tmp / name,
        ca_cert=lab.pki.ca_cert,
        gateway=link.a_addr,
        user=name,
        password=local.pop("password", "unused"),
        lan_net=lab.site.lan_net,
    )
    cfg["connections"]["vpn"]["local"].update(local)
    if local.get("auth") == "eap-tls":
        cfg["secrets"] = {f"private-{name}": {"file": local["certs"][0].replace("-cert.pem", "-key.pem")}}
    return factory(ns, cfg, name=name)


def up(d: PyIpsecDaemon) -> dict[str, Any]:
    result = d.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict)
    return result


def test_eap_mschapv2_users_of_freeradius_with_accounting(
    lab: Lab,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    alice = client(lab, pyipsec_factory, "alice", password="alice-secret-1")
    result = up(alice)
    assert result["ok"] is True, result
    assert result["virtual_ips"] == ["10.233.0.1"]  # from the pool: FreeRADIUS assigned nothing
    ns = lab.site.clients[-1][0]
    assert rw.ping_from(ns, "10.233.0.1", lab.site.lan_host, count=5)
    (sa,) = lab.gateway.wait_for(rw.established)
    traffic = rw.traffic(rw.only_child(sa))
    assert traffic["packets_in"] >= 5 and traffic["packets_out"] >= 5

    alice.call("down", name="vpn")
    lab.gateway.wait_for(lambda sas: not sas)

    def stop_written() -> list[dict[str, str]]:
        return [r for r in lab.radius.detail_records() if r.get("Acct-Status-Type") == "Stop"]

    rw.wait_until(lambda: bool(stop_written()), timeout=10)
    records = lab.radius.detail_records()
    start = next(r for r in records if r.get("Acct-Status-Type") == "Start")
    (stop,) = stop_written()
    assert start["User-Name"] == stop["User-Name"] == "alice"
    assert start["Acct-Session-Id"] == stop["Acct-Session-Id"]
    assert stop["Framed-IP-Address"] == "10.233.0.1"
    # the byte and packet counts of the Child SA, as the gateway's data plane counted them
    assert int(stop["Acct-Input-Octets"]) == traffic["bytes_in"]
    assert int(stop["Acct-Output-Octets"]) == traffic["bytes_out"]
    assert int(stop["Acct-Input-Packets"]) == traffic["packets_in"]
    assert int(stop["Acct-Output-Packets"]) == traffic["packets_out"]
    assert stop["Acct-Terminate-Cause"] == "User-Request"


def test_framed_ip_address_and_class_from_freeradius(
    lab: Lab,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    bob = client(lab, pyipsec_factory, "bob", password="bob-secret-2")
    result = up(bob)
    assert result["ok"] is True and result["virtual_ips"] == ["10.233.0.77"], result
    ns = lab.site.clients[-1][0]
    assert rw.ping_from(ns, "10.233.0.77", lab.site.lan_host)
    rw.wait_until(lambda: any(r.get("Acct-Status-Type") == "Start" for r in lab.radius.detail_records()))
    start = next(r for r in lab.radius.detail_records() if r.get("Acct-Status-Type") == "Start")
    assert start["Class"] == "0x6f7267" and start["Framed-IP-Address"] == "10.233.0.77"


def test_eap_tls_user_of_freeradius(
    lab: Lab,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    carol = client(
        lab,
        pyipsec_factory,
        "carol",
        auth="eap-tls",
        id=TLS_USER,
        eap_id=TLS_USER,
        certs=[str(lab.carol / f"{TLS_USER}-cert.pem")],
    )
    result = up(carol)
    assert result["ok"] is True, result
    (sa,) = lab.gateway.wait_for(rw.established)
    assert sa["remote_id"] == TLS_USER
    assert rw.ping_from(lab.site.clients[-1][0], result["virtual_ips"][0], lab.site.lan_host)


def test_wrong_password_is_rejected_by_freeradius(
    lab: Lab,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    alice = client(lab, pyipsec_factory, "alice", password="not-her-password")
    result = up(alice)
    assert result["ok"] is False and "AUTHENTICATION_FAILED" in str(result["message"]), result
    lab.gateway.wait_for(lambda sas: not sas)
    assert rw.leases(lab.tmp / "gw" / "users.db") == []


def test_failover_to_the_second_radius_server_and_none_left(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    lab: Lab,
) -> None:
    """A first server that never answers (nothing listens there): the gateway retransmits, then
    fails over to FreeRADIUS; with only dead servers the SA fails with the reason, no lease left."""
    dead = "10.231.99.1"
    lab.site.lan.add_address(lab.site.lan_link.b_if, f"{dead}/32")
    lab.site.gw.run(["ip", "route", "add", f"{dead}/32", "via", lab.site.lan_host])
    servers = {
        "dead": {"address": dead, "secret": SECRET},
        "lan": {"address": lab.site.lan_host, "secret": SECRET},
    }
    gw_cfg = gateway_config(lab.site, lab.pki, lab.tmp, servers=servers, timeout=0.3, tries=2)
    lab.gateway.stop()
    lab.gateway = pyipsec_factory(lab.site.gw, gw_cfg, name="gateway2")
    alice = client(lab, pyipsec_factory, "alice", password="alice-secret-1")
    assert up(alice)["ok"] is True
    stats = lab.gateway.call("stats")
    assert isinstance(stats, dict) and isinstance(stats["radius"], dict)
    assert stats["radius"]["dead"]["timeouts"] >= 1 and stats["radius"]["dead"]["answers"] == 0  # type: ignore[index]
    assert stats["radius"]["lan"]["answers"] >= 1  # type: ignore[index]
    alice.call("down", name="vpn")
    lab.gateway.wait_for(lambda sas: not sas)

    only_dead = gateway_config(
        lab.site, lab.pki, lab.tmp, servers={"dead": servers["dead"]}, timeout=0.3, tries=2
    )
    lab.gateway.stop()
    lab.gateway = pyipsec_factory(lab.site.gw, only_dead, name="gateway3")
    result = up(alice)
    assert result["ok"] is False and "AUTHENTICATION_FAILED" in str(result["message"]), result
    lab.gateway.wait_for(lambda sas: not sas)
    assert "dead" in lab.gateway.log_text() and "IKE SA closed" in lab.gateway.log_text()
    assert [x for x in rw.leases(lab.tmp / "gw" / "users.db") if x.live] == []
    for log in (lab.gateway.log_text(), alice.log_text()):  # nothing secret in the logs
        assert SECRET not in log and "alice-secret-1" not in log


def test_accounting_follows_a_session_redirected_to_another_gateway(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two gateways (``gateway_id`` gw1 and gw2) accounting to one FreeRADIUS; alice comes up on
    gw1, pings, and is redirected (``redirect``, after establishment) to gw2. The detail file
    shows Start and Stop (with the Child SA's counters, cause NAS-Request) from gw1, then Start
    from gw2: the NAS-Identifier (the ``gateway_id``), NAS-IP-Address and Called-Station-Id of
    the gateway that holds the session, the same user."""
    problem = freeradius_available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    site = rw.gateway_site(topology)
    gw2 = topology.namespace("gw2")
    lan2 = topology.link(gw2, site.lan)
    gw2.run(["ip", "-4", "route", "add", f"{site.lan_host}/32", "via", lan2.b_addr])
    pki = rw.make_pki(tmp_path / "pki")
    nas = {"gw1": site.lan_link.a_addr, "gw2": lan2.a_addr}  # where each gateway's requests come from
    server = FreeRadius(
        site.lan, listen=site.lan_host, client="10.231.0.0/16", secret=SECRET.encode(), users=USERS
    )
    with server:
        gateways = {}
        for name, ns in (("gw1", site.gw), ("gw2", gw2)):
            cfg = gateway_config(site, pki, tmp_path / name)
            cfg["settings"]["gateway_id"] = name  # also the NAS-Identifier
            gateways[name] = pyipsec_factory(ns, cfg, name=name)
        ns, link1 = site.add_client("alice")
        link2 = topology.link(gw2, ns)
        cfg = rw.client_config(
            tmp_path / "alice",
            ca_cert=pki.ca_cert,
            gateway=link1.a_addr,
            user="alice",
            password="alice-secret-1",
            lan_net=site.lan_net,
        )
        cfg["connections"]["vpn"]["remote_addrs"] = [link1.a_addr, link2.a_addr]  # type: ignore[index]
        alice = pyipsec_factory(ns, cfg, name="alice")
        called = {"gw1": link1.a_addr, "gw2": link2.a_addr}  # the address alice reached each on
        result = up(alice)
        assert result["ok"] is True, result
        vip = result["virtual_ips"][0]
        assert rw.ping_from(ns, vip, site.lan_host, count=4)
        (sa,) = gateways["gw1"].wait_for(rw.established)
        traffic = rw.traffic(rw.only_child(sa))
        answer = gateways["gw1"].call("redirect", sa_id=sa["id"], to=link2.a_addr)
        assert isinstance(answer, dict) and answer["redirected"] == [sa["id"]], answer
        alice.wait_for(
            lambda sas: (
                rw.established(sas) and [str(s["remote"]).rsplit(":", 1)[0] for s in sas] == [link2.a_addr]
            ),
            timeout=20,
        )
        gateways["gw1"].wait_for(lambda sas: not sas)

        def records() -> list[tuple[str, str]]:
            return [
                (r.get("Acct-Status-Type", ""), r.get("NAS-Identifier", "")) for r in server.detail_records()
            ]

        expected = [("Start", "gw1"), ("Stop", "gw1"), ("Start", "gw2")]
        rw.wait_until(
            lambda: sorted(records()) == sorted(expected), timeout=10, what=f"{expected}, not {records()}"
        )
        found = {(r["Acct-Status-Type"], r["NAS-Identifier"]): r for r in server.detail_records()}
        for (status, gw), record in found.items():
            assert record["User-Name"] == "alice", record
            assert record["NAS-IP-Address"] == nas[gw], (status, record)
            assert record["Called-Station-Id"] == f"{called[gw]}[500]", (status, record)
        start1, stop1, start2 = (found[k] for k in expected)
        assert start1["Acct-Session-Id"] == stop1["Acct-Session-Id"] != start2["Acct-Session-Id"]
        assert int(stop1["Acct-Input-Octets"]) == traffic["bytes_in"]
        assert int(stop1["Acct-Output-Octets"]) == traffic["bytes_out"]
        assert int(stop1["Acct-Input-Packets"]) == traffic["packets_in"] >= 4
        assert int(stop1["Acct-Output-Packets"]) == traffic["packets_out"] >= 4
        assert stop1["Acct-Terminate-Cause"] == "NAS-Request"  # the gateway moved it, alice did not leave
