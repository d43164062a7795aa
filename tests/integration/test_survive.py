"""Tunnels that survive: pyipsec ↔ pyipsec under rekeys, loss, black holes and NAT rebinding.

Real daemons in network namespaces, real data planes, traffic between inner addresses on ``lo``
(10.232.1.1 ↔ 10.232.2.1) while something happens:

* rekeys under load — during a 50 Mbit/s UDP iperf3 run, CHILD SA rekeys every 1.5 s from either
  end (once from both at the same moment: a collision, RFC 7296 §2.8.1) and two IKE SA rekeys,
  with and without PFS, with IKE on 4500 (MOBIKE) and on 500: not one datagram may be lost
  (iperf3 numbers them; a duplicate would count as out of order); then the same with the
  daemons' own jittered soft lifetimes (3 s); a paced TCP transfer across rekeys arrives intact;
* a lossy path — UDP relays (tests.support.survive.lossy_path) drop 30% of IKE and ESP each way:
  the handshake and six rekeys still complete; then a black hole (100%) is found by DPD and the
  client keeps reconnecting (``status`` → ``reconnecting``) until the path clears;
* NAT rebinding — the NAT router forgets its mappings and hands out new ports mid-transfer: the
  server follows the client's new port on its next authenticated IKE message (a forged one from
  another port does not move it) and the TCP transfer completes intact on the same SAs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from pyipsec.control.protocol import JsonValue
from tests.support.netns import Namespace, Topology, nat_topology, two_hosts
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.relay import Impairment
from tests.support.survive import (
    LossyPath,
    Schedule,
    TcpTransfer,
    deepen_tun_queue,
    iperf3_udp,
    log_count,
    lossy_path,
    pyipsec_site,
    require_tool,
)

pytestmark = pytest.mark.integration

INNER_C, INNER_S = "10.232.1.1", "10.232.2.1"
Factory = Callable[..., PyIpsecDaemon]


@pytest.fixture
def daemons(pyipsec_factory: Factory) -> Factory:  # noqa: F811 - the fixture, imported
    """``pyipsec_factory`` under a name that does not shadow the import."""
    return pyipsec_factory


def _inner(client: Namespace, server: Namespace) -> None:
    client.add_address("lo", f"{INNER_C}/32")
    server.add_address("lo", f"{INNER_S}/32")


def _sa(d: PyIpsecDaemon) -> dict[str, JsonValue]:
    sas = [s for s in d.status() if s["state"] == "ESTABLISHED"]
    assert len(sas) == 1, sas
    return sas[0]


def _child(sa: dict[str, JsonValue]) -> dict[str, JsonValue]:
    children = sa["children"]
    assert isinstance(children, list)
    installed = [c for c in children if isinstance(c, dict) and c["state"] == "INSTALLED"]
    assert len(installed) == 1, children
    return installed[0]


def _settled(sas: list[dict[str, JsonValue]]) -> bool:
    """One ESTABLISHED IKE SA with exactly one INSTALLED child and nothing else in flight."""
    if len(sas) != 1 or sas[0]["state"] != "ESTABLISHED":
        return False
    children = sas[0]["children"]
    return isinstance(children, list) and [c["state"] for c in children if isinstance(c, dict)] == [
        "INSTALLED"
    ]


def _up(
    factory: Factory,
    client: Namespace,
    server: Namespace,
    *,
    client_addr: str,
    server_addr: str,
    server_remote: str | None = None,
    client_remote: str | None = None,
    esp: str = "aes256gcm16",
    child: dict[str, object] | None = None,
    conn: dict[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
    client_child: dict[str, object] | None = None,
) -> tuple[PyIpsecDaemon, PyIpsecDaemon]:
    common = {"esp": esp, "conn": conn, "settings": settings}
    dc = factory(
        client,
        pyipsec_site(
            local=client_addr,
            remote=client_remote or server_addr,
            local_ts=f"{INNER_C}/32",
            remote_ts=f"{INNER_S}/32",
            initiator=True,
            child={**(child or {}), **(client_child or {})},
            **common,  # type: ignore[arg-type]
        ),
        name="client",
    )
    ds = factory(
        server,
        pyipsec_site(
            local=server_addr,
            remote=server_remote or client_addr,
            local_ts=f"{INNER_S}/32",
            remote_ts=f"{INNER_C}/32",
            initiator=False,
            child=child,
            **common,  # type: ignore[arg-type]
        ),
        name="server",
    )
    result = dc.call("up", name="site", timeout=30)
    assert isinstance(result, dict) and result["ok"], (result, dc.log_text()[-3000:])
    ds.wait_for(_settled)
    for ns in (client, server):
        deepen_tun_queue(ns)
    return dc, ds


def _rekey(d: PyIpsecDaemon, *, ike: bool = False) -> Callable[[], object]:
    return lambda: d.call("rekey", name="site", ike=ike)


# --- 1. rekeys under load -----------------------------------------------------------------------

PFS = [("aes256gcm16", "no-pfs"), ("aes256gcm16-ecp256", "pfs-ecp256")]


@pytest.mark.parametrize("mobike", [True, False], ids=["ike-on-4500", "ike-on-500"])
@pytest.mark.parametrize("esp", [p[0] for p in PFS], ids=[p[1] for p in PFS])
def test_udp_load_survives_child_and_ike_rekeys(
    topology: Topology, daemons: Factory, esp: str, mobike: bool
) -> None:
    hosts = two_hosts(topology)
    client, server = hosts.left, hosts.right
    _inner(client, server)
    dc, ds = _up(
        daemons,
        client,
        server,
        client_addr=hosts.link.a_addr,
        server_addr=hosts.link.b_addr,
        esp=esp,
        conn={"mobike": mobike},
    )
    # with MOBIKE the initiator moves IKE to 4500 (through the data plane), else IKE stays on 500
    assert str(_sa(dc)["local"]).endswith(":4500" if mobike else ":500")
    assert client.wait_ping(INNER_S, timeout=5)
    first = _child(_sa(dc))
    first_ike = _sa(dc)["spi_i"]
    schedule = Schedule(
        [
            (1.5, "child rekey by client", _rekey(dc)),
            (3.0, "child rekey by server", _rekey(ds)),
            (4.5, "IKE rekey by client", _rekey(dc, ike=True)),
            (6.0, "child rekey by both", _rekey(dc)),
            (6.0, "child rekey by both", _rekey(ds)),
            (7.5, "IKE rekey by server", _rekey(ds, ike=True)),
            (8.5, "child rekey by client", _rekey(dc)),
        ]
    ).start()
    report = iperf3_udp(client, server, dst=INNER_S, src=INNER_C, bitrate="50M", seconds=10)
    schedule.join()
    assert not schedule.failures(), schedule.results
    print(f"\n{esp}: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}")
    sas = dc.wait_for(_settled, timeout=20)
    server_sas = ds.wait_for(_settled, timeout=20)
    last = _child(sas[0])
    assert last["spi_in"] != first["spi_in"] and last["spi_out"] != first["spi_out"]
    assert sas[0]["spi_i"] != first_ike
    assert report.packets > 40000, report
    assert report.lost == 0, (report, dc.log_text()[-3000:])
    # the server's data-plane totals count the ESP of every Child SA, the rekeyed-away ones too
    totals = ds.call("stats")["dataplane"]
    assert isinstance(totals, dict)
    traffic = _child(server_sas[0])["traffic"]
    assert isinstance(traffic, dict) and int(str(traffic["packets_in"])) < report.packets
    assert int(str(totals["packets_in"])) >= report.packets, (totals, report)
    assert totals["replay_drops"] == totals["integrity_failures"] == 0, totals
    assert report.out_of_order <= report.packets // 1000, report
    assert log_count(dc.log_text(), "rekeyed") >= 1


def test_udp_load_survives_lifetime_rekeys(topology: Topology, daemons: Factory) -> None:
    """Short soft lifetimes on both sides (CHILD ``rekey_time`` 2 s, IKE 4 s, each jittered by up
    to a tenth): the daemons rekey on their own, whichever side's timer fires first, while
    50 Mbit/s flow."""
    hosts = two_hosts(topology)
    client, server = hosts.left, hosts.right
    _inner(client, server)
    dc, ds = _up(
        daemons,
        client,
        server,
        client_addr=hosts.link.a_addr,
        server_addr=hosts.link.b_addr,
        esp="aes256gcm16-ecp256",
        child={"rekey_time": 2, "life_time": 4},
        conn={"rekey_time": 4},
    )
    assert client.wait_ping(INNER_S, timeout=5)
    report = iperf3_udp(client, server, dst=INNER_S, src=INNER_C, bitrate="50M", seconds=10)
    print(f"\nlifetimes: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}")
    logs = dc.log_text() + ds.log_text()
    rekeys = (log_count(logs, "rekeying Child SA"), log_count(logs, "rekeying the IKE SA"))
    print(f"{rekeys[0]} CHILD SA and {rekeys[1]} IKE SA rekeys")
    assert rekeys[0] >= 4 and rekeys[1] >= 2, rekeys
    assert report.packets > 40000, report
    # where packets went, if any did: the data planes' drops by reason (unknown SPI, no policy, …)
    drops = {"client": dc.call("stats"), "server": ds.call("stats")}
    assert report.lost == 0, (report, drops, dc.log_text()[-3000:])
    assert report.out_of_order <= report.packets // 1000, report
    dc.wait_for(_settled, timeout=20)


@pytest.mark.parametrize("limit", ["bytes", "packets"])
def test_udp_load_survives_volume_lifetime_rekeys(topology: Topology, daemons: Factory, limit: str) -> None:
    """Soft lifetimes by volume (RFC 4301 §4.4.2.1): the client's data plane counts bytes or
    packets per Child SA and signals the daemon, which rekeys (the hard limit, 10 % above,
    is never reached), while 50 Mbit/s flow — about 6 MB or 5,200 packets a second."""
    hosts = two_hosts(topology)
    client, server = hosts.left, hosts.right
    _inner(client, server)
    volume = {"rekey_bytes": 16_000_000} if limit == "bytes" else {"rekey_packets": 12_000}
    dc, _ = _up(
        daemons,
        client,
        server,
        client_addr=hosts.link.a_addr,
        server_addr=hosts.link.b_addr,
        esp="aes256gcm16-ecp256",
        client_child=volume,
    )
    assert client.wait_ping(INNER_S, timeout=5)
    report = iperf3_udp(client, server, dst=INNER_S, src=INNER_C, bitrate="50M", seconds=8)
    print(f"\n{limit}: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}")
    log = dc.log_text()
    signals, rekeys = log_count(log, "soft lifetime reached"), log_count(log, "rekeying Child SA")
    print(f"{signals} soft-lifetime signals, {rekeys} CHILD SA rekeys")
    assert signals >= 3 and rekeys >= signals, (signals, rekeys, log[-3000:])
    assert log_count(log, "hard lifetime reached") == 0
    assert report.lost == 0, (report, log[-3000:])
    assert report.out_of_order <= report.packets // 1000, report
    dc.wait_for(_settled, timeout=20)


def test_tcp_transfer_intact_across_rekeys(topology: Topology, daemons: Factory, tmp_path: Path) -> None:
    hosts = two_hosts(topology)
    client, server = hosts.left, hosts.right
    _inner(client, server)
    dc, ds = _up(
        daemons,
        client,
        server,
        client_addr=hosts.link.a_addr,
        server_addr=hosts.link.b_addr,
        esp="aes256gcm16-x25519",
    )
    assert client.wait_ping(INNER_S, timeout=5)
    first = _child(_sa(dc))["spi_in"]
    transfer = TcpTransfer(client, server, dst=INNER_S, tmp=tmp_path, seconds=8).start()
    schedule = Schedule(
        [
            (1.0, "child rekey by client", _rekey(dc)),
            (2.5, "child rekey by server", _rekey(ds)),
            (4.0, "IKE rekey by server", _rekey(ds, ike=True)),
            (5.5, "child rekey by both", _rekey(dc)),
            (5.5, "child rekey by both", _rekey(ds)),
            (7.0, "IKE rekey by client", _rekey(dc, ike=True)),
        ]
    ).start()
    transfer.finish()
    schedule.join()
    assert not schedule.failures(), schedule.results
    (sa,) = dc.wait_for(_settled, timeout=20)
    assert _child(sa)["spi_in"] != first
    traffic = _child(_sa(ds))["traffic"]
    assert isinstance(traffic, dict) and traffic["integrity_failures"] == 0 and traffic["replay_drops"] == 0


# --- 2. a lossy path ------------------------------------------------------------------------------

FAST_RETRANSMIT = {"retransmit_timeout": 0.5, "retransmit_base": 1.4, "retransmit_tries": 8}


def _lossy_up(
    factory: Factory,
    path: LossyPath,
    *,
    conn: dict[str, object] | None = None,
    child: dict[str, object] | None = None,
    settings: Mapping[str, object],
) -> tuple[PyIpsecDaemon, PyIpsecDaemon]:
    _inner(path.client, path.server)
    return _up(
        factory,
        path.client,
        path.server,
        client_addr=path.inside.b_addr,
        server_addr=path.server_addr,
        server_remote="%any",
        client_remote=path.relay_addr,
        conn=conn,
        client_child=child,
        settings=settings,
    )


def test_handshake_and_rekeys_complete_at_30_percent_loss(topology: Topology, daemons: Factory) -> None:
    path = lossy_path(topology, Impairment(drop=0.3))
    try:
        dc, ds = _lossy_up(daemons, path, settings=FAST_RETRANSMIT)
        (sa,) = dc.wait_for(_settled)
        assert sa["encap"] is True  # the relays look like a NAT: both sides float to 4500
        first_child, first_ike = _child(sa)["spi_in"], sa["spi_i"]
        for who, ike in ((dc, False), (ds, False), (dc, True), (ds, False), (ds, True), (dc, False)):
            before = _sa(who)
            old = before["spi_i"] if ike else _child(before)["spi_in"]
            who.call("rekey", name="site", ike=ike)

            def rekeyed(sas: list[dict[str, JsonValue]], ike: bool = ike, old: JsonValue = old) -> bool:
                return _settled(sas) and (sas[0]["spi_i"] if ike else _child(sas[0])["spi_in"]) != old

            who.wait_for(rekeyed, timeout=60)
            dc.wait_for(_settled, timeout=60)
            ds.wait_for(_settled, timeout=60)
        sa = _sa(dc)
        assert sa["spi_i"] != first_ike and _child(sa)["spi_in"] != first_child
        # a lossy tunnel still carries traffic (some echo requests or replies are lost)
        assert path.client.ping(INNER_S, count=10, timeout=6)
        stats = path.stats()
        assert stats["dropped"] >= 0.1 * stats["received"], stats
        print(f"\nrelays: {stats}")
    finally:
        path.close()


def test_dpd_finds_black_hole_and_client_reconnects_when_it_clears(
    topology: Topology, daemons: Factory
) -> None:
    path = lossy_path(topology)
    try:
        dc, _ = _lossy_up(
            daemons,
            path,
            conn={"dpd_delay": 2},
            child={"dpd_action": "restart"},
            settings={"retransmit_timeout": 0.5, "retransmit_base": 1.4, "retransmit_tries": 3},
        )
        first = _sa(dc)["spi_i"]
        assert path.client.wait_ping(INNER_S, timeout=5)
        path.impair(Impairment(drop=1.0))
        t0 = time.monotonic()

        def reconnecting() -> dict[str, JsonValue]:
            status = dc.call("status")
            assert isinstance(status, dict) and isinstance(status["reconnecting"], dict), status
            return status["reconnecting"]

        deadline = time.monotonic() + 30
        rc = reconnecting()
        while time.monotonic() < deadline:
            entry = rc.get("site")
            if isinstance(entry, dict) and isinstance(entry["attempt"], int) and entry["attempt"] >= 2:
                break
            time.sleep(0.2)
            rc = reconnecting()
        found = time.monotonic() - t0
        entry = rc.get("site")
        attempt = entry.get("attempt") if isinstance(entry, dict) else None
        assert isinstance(entry, dict) and isinstance(attempt, int) and attempt >= 2, (
            rc,
            dc.log_text()[-3000:],
        )
        assert "not responding" in str(entry["reason"]) or "retransmissions" in str(entry["reason"]), entry
        assert not any(s["state"] == "ESTABLISHED" for s in dc.status())
        print(f"\nblack hole: DPD closed the SA and reconnects began within {found:.1f} s: {entry}")
        path.impair(Impairment())  # the path clears
        (sa,) = dc.wait_for(_settled, timeout=60)
        assert sa["spi_i"] != first
        assert reconnecting() == {}
        assert path.client.wait_ping(INNER_S, timeout=10)
    finally:
        path.close()


# --- 3. NAT rebinding -----------------------------------------------------------------------------


def _forge_ike(router: Namespace, *, dst: str, spi_i: str, spi_r: str, sport: int) -> None:
    """An INFORMATIONAL request with the SA's SPIs but a bogus SK payload, from ``sport``."""
    router.run(
        [
            "python3",
            "-c",
            "import socket,struct\n"
            f"body=bytes(range(64))\n"
            "sk=struct.pack('!BBH',0,0,4+len(body))+body\n"
            f"hdr=bytes.fromhex('{spi_i}{spi_r}')+bytes([46,0x20,37,0x08])+struct.pack('!II',7,28+len(sk))\n"
            "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind(('0.0.0.0', {sport}))\n"
            f"s.sendto(bytes(4)+hdr+sk, ('{dst}', 4500))",
        ]
    )


def test_traffic_follows_nat_rebinding(topology: Topology, daemons: Factory, tmp_path: Path) -> None:
    require_tool("conntrack")
    nat = nat_topology(topology)
    client, server = nat.client, nat.server
    _inner(client, server)
    _, ds = _up(
        daemons,
        client,
        server,
        client_addr=nat.inside.b_addr,
        server_addr=nat.outside.b_addr,
        server_remote="%any",
        conn={"dpd_delay": 2},  # the client speaks IKE at least every 2 s, so the server learns a new mapping
    )
    (sa,) = ds.wait_for(_settled)
    old_remote = str(sa["remote"])
    assert old_remote.startswith(f"{nat.outside.a_addr}:") and sa["encap"] is True
    assert client.wait_ping(INNER_S, timeout=5)

    # an unauthenticated message from another port must not move the server
    _forge_ike(
        nat.router, dst=nat.outside.b_addr, spi_i=str(sa["spi_i"]), spi_r=str(sa["spi_r"]), sport=33333
    )
    time.sleep(0.5)
    assert str(_sa(ds)["remote"]) == old_remote

    transfer = TcpTransfer(client, server, dst=INNER_S, tmp=tmp_path, seconds=10, rate=512 * 1024).start()
    time.sleep(3)
    # the router forgets its mappings and hands out ports from another range from now on
    nat.router.run(["nft", "flush", "chain", "inet", "pyipsec_nat", "postrouting"])
    nat.router.run(
        [
            "nft",
            "add",
            "rule",
            "inet",
            "pyipsec_nat",
            "postrouting",
            "oifname",
            nat.outside.a_if,
            "meta",
            "l4proto",
            "udp",
            "masquerade",
            "to",
            ":10000-20000",
        ]
    )
    nat.router.run(["conntrack", "-F"])
    t0 = time.monotonic()
    sas = ds.wait_for(lambda sas: _settled(sas) and str(sas[0]["remote"]) != old_remote, timeout=20)
    moved = time.monotonic() - t0
    new_port = int(str(sas[0]["remote"]).rsplit(":", 1)[1])
    assert 10000 <= new_port <= 20000, sas
    print(f"\nserver followed the NAT from {old_remote} to {sas[0]['remote']} within {moved:.1f} s")
    transfer.finish()
    assert _sa(ds)["spi_i"] == sa["spi_i"]  # the same IKE SA: followed, not re-established
    assert server.ping(INNER_C, count=3)


def test_rekey_collision_over_a_slow_path_loses_nothing(topology: Topology, daemons: Factory) -> None:
    """Both ends rekey the CHILD SA at the same moment over a path with 150 ms one-way delay, so
    the two CREATE_CHILD_SA requests cross (RFC 7296 §2.8.1): the SA made with the lowest nonce
    is deleted, the other survives; then both rekey the IKE SA at once (§2.8.2), with the same
    rule. The UDP stream through the relays loses nothing."""
    path = lossy_path(topology, Impairment(delay=0.15))
    try:
        dc, ds = _lossy_up(daemons, path, settings={"retransmit_timeout": 2.0})
        assert path.client.wait_ping(INNER_S, timeout=5)
        schedule = Schedule(
            [
                (2.0, "child rekey by client", _rekey(dc)),
                (2.0, "child rekey by server", _rekey(ds)),
                (5.0, "child rekey by server", _rekey(ds)),
                (5.0, "child rekey by client", _rekey(dc)),
                (8.0, "IKE rekey by client", _rekey(dc, ike=True)),
                (8.0, "IKE rekey by server", _rekey(ds, ike=True)),
            ]
        ).start()
        report = iperf3_udp(
            path.client, path.server, dst=INNER_S, src=INNER_C, bitrate="4M", seconds=11, length=1000
        )
        schedule.join()
        assert not schedule.failures(), schedule.results
        print(
            f"\ncollisions: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}"
        )
        dc.wait_for(_settled, timeout=20)
        ds.wait_for(_settled, timeout=20)
        logs = dc.log_text() + ds.log_text()
        assert log_count(logs, "rekey collision") >= 2, logs[-4000:]  # both ends saw each collision
        assert log_count(logs, "ours is redundant") >= 1 and log_count(logs, "ours wins") >= 1
        # the IKE SA rekeys crossed too (§2.8.2): one side's new SA won, the other's was deleted
        assert log_count(logs, "IKE rekey collision: ours") == 2, logs[-4000:]
        assert log_count(logs, "IKE SA closed: redundant after an IKE rekey collision") == 2, logs[-4000:]
        assert report.packets > 3000, report
        assert report.lost == 0, (report, logs[-4000:])
        assert report.out_of_order == 0, report
    finally:
        path.close()
