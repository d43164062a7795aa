"""Two daemon runtimes over a memory network under a virtual clock (``tests/support/daemons.py``).

Each test drives the real ``Runtime`` — engine, commands, reconnect policy, progress — through
control commands, with recording fakes for the data plane and the host; no test sleeps.
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.daemon.reconnect import RECONNECT_MAX
from pyipsec.daemon.runtime import BARRIER_TIMEOUT, REKEY_LINGER, RETIRE_DRAIN
from pyipsec.iana.ikev2 import ExchangeType
from tests.support.daemons import GW_ADDR, I_ADDR, Node, World, psk_configs


def _up(world: World, tmp_path: Path, **kw: object) -> tuple[Node, Node]:
    client_cfg, gw_cfg = psk_configs(tmp_path, **kw)  # type: ignore[arg-type]
    client, gw = world.node(client_cfg, I_ADDR), world.node(gw_cfg, GW_ADDR)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    return client, gw


def test_up_returns_once_the_sa_is_established_with_its_progress(world: World, tmp_path: Path) -> None:
    client_cfg, gw_cfg = psk_configs(tmp_path)
    client, gw = world.node(client_cfg, I_ADDR), world.node(gw_cfg, GW_ADDR)
    progress: list[dict[str, object]] = []
    result = world.command(client, "up", {"name": "office"}, progress=progress.append)
    assert result["ok"] is True and result["message"] == "established"
    assert result["children"] == ["net"] and result["remote_id"] == "gw.example.org"
    assert (result["local_ts"], result["remote_ts"]) == (["10.1.0.0/16"], ["10.2.0.0/16"])
    assert [p["phase"] for p in progress] == ["IKE_SA_INIT", "IKE_AUTH", "IKE SA", "CHILD SA", "routes"]
    # it returned with the IKE_AUTH response, not later
    auth = world.net.requests(ExchangeType.IKE_AUTH)
    assert len(auth) == 1 and world.clock.now() == auth[0].at
    (sa,) = client.sas()
    assert sa.sa_id == result["sa_id"] and sa.established
    # both data planes hold the Child SA, the two halves crossed
    (spi_c,), (spi_g,) = client.sink.installed, gw.sink.installed
    assert client.sink.installed[spi_c].spec.spi_out == spi_g and client.sink.sending == {spi_c}
    # a second up reports the SA that is there
    again = world.command(client, "up", {"name": "office"})
    assert again["ok"] is True and again["message"] == "already established" and again["sa_id"] == sa.sa_id


def test_status_shows_the_sa_with_its_children_and_their_traffic(world: World, tmp_path: Path) -> None:
    client, gw = _up(world, tmp_path)
    (spi,) = client.child_spis()
    client.sink.traffic = {spi: {"packets_in": 3, "bytes_in": 300}}
    status = world.command(client, "status")
    (sa,) = status["ike_sas"]
    assert (sa["name"], sa["state"], sa["original_initiator"]) == ("office", "ESTABLISHED", True)
    assert sa["local"] == f"{I_ADDR}:4500" and sa["remote"] == f"{GW_ADDR}:4500"  # MOBIKE: moved to 4500
    (child,) = sa["children"]
    assert child["spi_in"] == spi.hex() and child["state"] == "INSTALLED"
    assert child["traffic"] == {"packets_in": 3, "bytes_in": 300}  # fetched behind a barrier
    assert status["reconnecting"] == {}
    (gw_sa,) = world.command(gw, "status")["ike_sas"]
    assert gw_sa["original_initiator"] is False and gw_sa["children"][0]["spi_out"] == spi.hex()


def test_status_falls_back_to_the_last_counters_when_the_data_plane_hangs(
    world: World, tmp_path: Path
) -> None:
    client_cfg, gw_cfg = psk_configs(tmp_path, client={"settings": {"dataplane": False}})
    client = world.node(client_cfg, I_ADDR, barrier_delay=None)  # a data plane that never answers
    world.node(gw_cfg, GW_ADDR)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    (spi,) = client.child_spis()
    client.sink.traffic = {spi: {"packets_in": 1}}
    started = world.clock.now()
    (sa,) = world.command(client, "status")["ike_sas"]
    assert sa["children"][0]["traffic"] == {"packets_in": 1}
    assert world.clock.now() - started == pytest.approx(1.0)  # COUNTERS_TIMEOUT


@pytest.mark.parametrize("delay", [0.25, None])
def test_a_port_500_ike_auth_response_waits_for_the_data_plane(
    world: World, tmp_path: Path, delay: float | None
) -> None:
    """Without NAT and MOBIKE, IKE stays on port 500, which our own socket carries: the gateway's
    IKE_AUTH response (which lets the client use the Child SA) leaves only once its data plane
    has confirmed the install — or after BARRIER_TIMEOUT if it never does."""
    no_mobike = {"connections": {"office": {"mobike": False}}}
    client_cfg, gw_cfg = psk_configs(tmp_path, client=no_mobike, gateway=no_mobike)
    client = world.node(client_cfg, I_ADDR)
    gw = world.node(gw_cfg, GW_ADDR, barrier_delay=delay)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    response = next(
        s for s in world.net.log if s.header.exchange_type == ExchangeType.IKE_AUTH and s.header.is_response
    )
    assert response.datagram.local.port == 500
    (spi,) = gw.sink.installed
    assert response.at - gw.sink.at("install", spi) == pytest.approx(
        BARRIER_TIMEOUT if delay is None else delay
    )
    assert gw.sink.ops().index("install") < gw.sink.ops().index("barrier")


def test_a_child_sa_rekey_reaches_the_data_planes_make_before_break(world: World, tmp_path: Path) -> None:
    client, gw = _up(world, tmp_path)
    (old_c,), (old_g,) = client.child_spis(), gw.child_spis()
    rekeyed_at = world.clock.now()
    assert world.command(client, "rekey", {"name": "office"})["rekeying"]
    world.run_for(REKEY_LINGER + 1)
    (new_c,), (new_g,) = client.child_spis(), gw.child_spis()
    # the gateway (responder): new SA inbound first, outbound once the old one is deleted, then
    # the old one stops sending and lingers for inbound before it goes
    assert gw.sink.ops(new_g) == ["install", "activate"]
    assert gw.sink.ops(old_g) == ["install", "retire", "remove"]
    assert gw.sink.index("install", new_g) < gw.sink.index("activate", new_g) < gw.sink.index("retire", old_g)
    assert gw.sink.at("remove", old_g) - gw.sink.at("retire", old_g) == pytest.approx(REKEY_LINGER)
    assert gw.sink.installed[new_g].spec.outbound_active is False
    # the client (initiator): new SA sending at once, the old one retired after it
    assert client.sink.installed[new_c].spec.outbound_active is True
    assert client.sink.index("install", new_c) < client.sink.index("retire", old_c)
    # its Delete left RETIRE_DRAIN after the switch; the old SA goes REKEY_LINGER after the answer
    removed_at = client.sink.at("remove", old_c)
    assert removed_at == pytest.approx(rekeyed_at + RETIRE_DRAIN + REKEY_LINGER, abs=0.01)
    assert (set(client.sink.installed), client.sink.sending) == ({new_c}, {new_c})
    assert (set(gw.sink.installed), gw.sink.sending) == ({new_g}, {new_g})


def test_down_deletes_the_sa_and_nothing_reconnects(world: World, tmp_path: Path) -> None:
    client, gw = _up(world, tmp_path, client_child={"dpd_action": "restart"})
    (sa,) = client.sas()
    assert world.command(client, "down", {"name": "office"}) == {"closed": [sa.sa_id]}
    assert client.sas() == [] and gw.sas() == []
    assert client.sink.installed == {} and gw.sink.installed == {}
    assert client.hostnet.restores == 1
    world.run_for(120)
    assert len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)) == 1
    assert client.runtime.reconnect.status(world.clock.now()) == {}
    assert world.command(client, "down", {"name": "office"}) == {"closed": []}


def test_a_dead_peer_is_reconnected_with_back_off(world: World, tmp_path: Path) -> None:
    client, _gw = _up(
        world,
        tmp_path,
        client={"connections": {"office": {"dpd_delay": 5}}},
        client_child={"dpd_action": "restart"},
        settings={"retransmit_timeout": 1, "retransmit_base": 1.0, "retransmit_tries": 1},
    )
    world.net.cut(GW_ADDR)
    schedule: list[tuple[float, int, object]] = []  # (when, attempt, delay) as each attempt is scheduled
    while len(schedule) < 8:
        assert world.step(world.clock.now() + 600)
        pending = client.runtime.reconnect.status(world.clock.now()).get("office")
        if isinstance(pending, dict) and (not schedule or pending["attempt"] != schedule[-1][1]):
            schedule.append((world.clock.now(), pending["attempt"], pending["next_in"]))
    assert [s[1] for s in schedule] == list(range(1, 9))
    assert [s[2] for s in schedule] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, RECONNECT_MAX, RECONNECT_MAX]
    # each attempt starts (a new IKE_SA_INIT) when its back-off has passed
    attempts = world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)[1:]
    for (when, _attempt, delay), init in zip(schedule, attempts, strict=False):
        assert init.at == pytest.approx(when + float(delay))  # type: ignore[arg-type]
    # the peer is back: the next attempt succeeds and the series ends
    world.net.heal()
    world.run_while(lambda: not any(sa.established for sa in client.sas()))
    assert client.runtime.reconnect.status(world.clock.now()) == {}
    assert len(client.sink.installed) == 1


def test_a_reauthentication_neither_reconnects_nor_restores_the_host(world: World, tmp_path: Path) -> None:
    client, gw = _up(
        world,
        tmp_path,
        client={"connections": {"office": {"vips": ["0.0.0.0"]}}},
        client_child={"local_ts": ["dynamic"], "dpd_action": "restart"},
        gateway={
            "pools": {"rw": {"addrs": "10.3.0.0/24", "dns": ["10.3.0.53"]}},
            "connections": {"office": {"pools": ["rw"], "children": {"net": {"remote_ts": ["dynamic"]}}}},
        },
    )
    vip = ip_address("10.3.0.1")
    assert client.hostnet.addresses == [vip] and client.hostnet.dns == [ip_address("10.3.0.53")]
    (old,) = client.sas()
    (old_child,) = client.child_spis()
    assert world.command(client, "rekey", {"name": "office", "reauth": True}) == {
        "reauthenticating": [old.sa_id]
    }
    world.run_for(REKEY_LINGER + 120)
    (new,) = client.sas()
    assert new.sa_id != old.sa_id and new.established and new.virtual_ips == (vip,)
    assert client.hostnet.restores == 0 and set(client.hostnet.addresses) == {vip}
    assert client.runtime.reconnect.status(world.clock.now()) == {}
    assert len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)) == 2  # the first and the reauth
    # the old Child SA went like a rekeyed one: retired, then removed after the linger
    assert client.sink.ops(old_child) == ["install", "retire", "remove"]
    assert client.sink.at("remove", old_child) - client.sink.at("retire", old_child) == pytest.approx(
        REKEY_LINGER
    )
    (new_child,) = client.child_spis()
    assert client.sink.sending == {new_child} and len(gw.sas()) == 1


def test_connections_and_stats(world: World, tmp_path: Path) -> None:
    client, _gw = _up(world, tmp_path)
    assert world.command(client, "connections") == {"connections": ["office"]}
    stats = world.command(client, "stats")
    assert stats["udp_sent"] >= 1 and stats["udp_received"] >= 1 and stats["malformed"] == 0
    assert stats["dataplane"] == {} and stats["radius"] == {}  # (the recording sink has no totals)
    assert (stats["half_open"], stats["init_blocked"], stats["init_over_limit"]) == (0, 0, 0)
    assert (stats["ike_fragments_held"], stats["ike_fragments_over_budget"]) == (0, 0)
    assert world.command(client, "status")["dataplane"] == {}  # the same totals, in status too
    with pytest.raises(Exception, match="unknown command"):
        world.command(client, "reboot")


def test_shutdown_deletes_the_sas_and_puts_the_host_back(world: World, tmp_path: Path) -> None:
    client, gw = _up(world, tmp_path, client_child={"start_action": "start", "dpd_action": "restart"})
    assert len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)) == 1  # started with the daemon
    world.shutdown(client)
    assert gw.sas() == []  # the Delete left before the ports closed
    assert client.hostnet.restores >= 1 and client.sink.ops()[-1] == "close"
    world.run_for(120)
    assert len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)) == 1
