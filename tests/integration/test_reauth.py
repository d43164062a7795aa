"""Reauthentication between pyipsec daemons, make-before-break (RFC 7296 §2.8.3; issue "Tunnels
that survive").

Real daemons in network namespaces with their data planes, 50 Mbit/s of UDP iperf3 through the
tunnel while the IKE SA is reauthenticated at least twice: not one datagram may be lost, and
afterwards there is one IKE SA with new SPIs and one Child SA. Site to site, reauthentication
comes from the control command (``rekey`` with ``reauth``) and from the daemons' own
``reauth_time``; for a road warrior (EAP-MSCHAPv2, a virtual IP from the gateway's pool) the
gateway's ``reauth_time`` reaches the client as AUTH_LIFETIME (RFC 4478), and the client keeps
its virtual IP, its route and its DNS settings throughout.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pyipsec.control.protocol import JsonValue
from tests.integration.test_survive import INNER_C, INNER_S, _child, _inner, _sa, _settled, _up
from tests.support import roadwarrior as rw
from tests.support.netns import Topology, two_hosts
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.survive import Schedule, deepen_tun_queue, iperf3_udp, log_count

pytestmark = pytest.mark.integration

Factory = Callable[..., PyIpsecDaemon]


def _reauth(d: PyIpsecDaemon, name: str = "site") -> Callable[[], object]:
    return lambda: d.call("rekey", name=name, reauth=True)


def _reauth_cli(d: PyIpsecDaemon, name: str = "site") -> Callable[[], object]:
    """``pyipsec rekey NAME --reauth``, as an administrator types it."""

    def run() -> object:
        argv = [sys.executable, "-m", "pyipsec", "rekey", name, "--reauth", "--socket", str(d.socket)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0 and "reauthenticating" in done.stdout, (done.stdout, done.stderr)
        return done.stdout

    return run


def test_udp_load_survives_reauthentications_by_command(
    topology: Topology,
    pyipsec_factory: Factory,  # noqa: F811
) -> None:
    hosts = two_hosts(topology)
    client, server = hosts.left, hosts.right
    _inner(client, server)
    dc, ds = _up(
        pyipsec_factory, client, server, client_addr=hosts.link.a_addr, server_addr=hosts.link.b_addr
    )
    assert client.wait_ping(INNER_S, timeout=5)
    first = _sa(dc)
    first_child = _child(first)
    schedule = Schedule(
        [
            (2.0, "reauth 1", _reauth(dc)),
            (5.0, "reauth 2 (CLI)", _reauth_cli(dc)),
            (8.0, "reauth 3", _reauth(dc)),
        ]
    ).start()
    report = iperf3_udp(client, server, dst=INNER_S, src=INNER_C, bitrate="50M", seconds=11)
    schedule.join()
    assert not schedule.failures(), schedule.results
    print(f"\nreauth: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}")
    sas = dc.wait_for(_settled, timeout=20)
    ds.wait_for(_settled, timeout=20)
    last = sas[0]
    assert last["id"] != first["id"]
    assert (last["spi_i"], last["spi_r"]) != (first["spi_i"], first["spi_r"])
    assert _child(last)["spi_in"] != first_child["spi_in"]
    logs = dc.log_text()
    assert log_count(logs, "reauthentication complete") >= 3, logs[-3000:]
    assert log_count(ds.log_text(), "the peer reauthenticates") >= 3
    assert report.packets > 40000, report
    assert report.lost == 0, (report, logs[-3000:])
    assert report.out_of_order <= report.packets // 1000, report


def test_udp_load_survives_reauthentications_on_reauth_time(
    topology: Topology,
    pyipsec_factory: Factory,  # noqa: F811
) -> None:
    """The daemons' own ``reauth_time`` (3 s, jittered; the server announces it as
    AUTH_LIFETIME, so the client goes at 2.4-3 s), with IKE on port 500."""
    hosts = two_hosts(topology)
    client, server = hosts.left, hosts.right
    _inner(client, server)
    dc, _ = _up(
        pyipsec_factory,
        client,
        server,
        client_addr=hosts.link.a_addr,
        server_addr=hosts.link.b_addr,
        conn={"mobike": False, "reauth_time": 3},
    )
    assert client.wait_ping(INNER_S, timeout=5)
    first = _sa(dc)
    report = iperf3_udp(client, server, dst=INNER_S, src=INNER_C, bitrate="50M", seconds=10)
    print(f"\nreauth_time: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}")
    logs = dc.log_text()
    assert log_count(logs, "reauthentication complete") >= 2, logs[-3000:]
    sas = dc.wait_for(_settled, timeout=20)
    assert (sas[0]["spi_i"], sas[0]["spi_r"]) != (first["spi_i"], first["spi_r"])
    assert report.packets > 40000, report
    assert report.lost == 0, (report, logs[-3000:])


def test_road_warrior_keeps_vip_routes_and_dns_across_reauthentications(
    topology: Topology,
    pyipsec_factory: Factory,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The gateway's ``reauth_time`` (4 s) reaches the client as AUTH_LIFETIME (RFC 4478): the
    client reauthenticates (EAP-MSCHAPv2 again) every 3.2-3.6 s and keeps its address."""
    site = rw.gateway_site(topology)
    pki = rw.make_pki(tmp_path / "pki")
    db = tmp_path / "gateway-store" / "users.db"
    rw.add_users(db, {"alice": "alice-secret-1"})
    gw_cfg = rw.gateway_config(pki, lan_net=site.lan_net, users_db=db, dns=[site.lan_host])
    gw_conn = gw_cfg["connections"]["rw"]  # type: ignore[index]
    gw_conn["reauth_time"] = 4
    gw = pyipsec_factory(site.gw, gw_cfg, name="gateway")
    ns, link = site.add_client("alice")
    resolv = tmp_path / "alice" / "resolv.conf"
    client = pyipsec_factory(
        ns,
        rw.client_config(
            tmp_path / "alice",
            ca_cert=pki.ca_cert,
            gateway=link.a_addr,
            user="alice",
            password="alice-secret-1",
            lan_net=site.lan_net,
        ),
        name="client",
    )
    result = client.call("up", name="vpn", timeout=20)
    assert isinstance(result, dict) and result["ok"] is True, result
    vip = "10.233.0.1"
    assert result["virtual_ips"] == [vip]
    first = client.wait_for(rw.established)[0]
    dns = resolv.read_text()
    routes = ns.run(["ip", "-4", "route", "show", "table", "all"], check=False).stdout
    deepen_tun_queue(ns)
    assert rw.ping_from(ns, vip, site.lan_host), client.log_text()[-3000:]

    report = iperf3_udp(ns, site.lan, dst=site.lan_host, src=vip, bitrate="50M", seconds=10)
    print(f"\nroad warrior: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}")
    logs = client.log_text()
    assert log_count(logs, "reauthentication complete") >= 2, logs[-3000:]
    assert log_count(logs, "the gateway wants reauthentication within 4 s") >= 1
    sas = client.wait_for(lambda s: len(s) == 1 and rw.established(s), timeout=20)
    assert sas[0]["id"] != first["id"] and sas[0]["spi_i"] != first["spi_i"]
    assert sas[0]["virtual_ips"] == [vip]
    assert rw.tun_addresses(ns) == [vip]
    assert resolv.read_text() == dns
    assert ns.run(["ip", "-4", "route", "show", "table", "all"], check=False).stdout == routes
    assert all(lease.live == (str(lease.address) == vip) for lease in rw.leases(db))
    assert [str(lease.address) for lease in rw.leases(db) if lease.live] == [vip]
    gw_sas: list[dict[str, JsonValue]] = gw.wait_for(lambda s: len(s) == 1 and rw.established(s), timeout=20)
    assert gw_sas[0]["virtual_ips"] == [vip]
    assert report.packets > 40000, report
    assert report.lost == 0, (report, logs[-3000:])
