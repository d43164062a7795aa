"""The daemon's path choice: MOBIKE moves (RFC 4555 §3.8) and a road warrior's source address."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

from pyipsec.daemon.mobike import ADDRESS_CHECK, initiator_source, mobike_path
from pyipsec.iana.ikev2 import ExchangeType
from pyipsec.net.addr import Endpoint
from tests.support.daemons import GW_ADDR, I_ADDR, World, psk_configs
from tests.support.recording import StaticAddresses

LOCAL, NEW = ip_address("192.0.2.1"), "198.51.100.1"
PEER, ALT1, ALT2 = ip_address("203.0.113.1"), ip_address("203.0.113.2"), ip_address("203.0.113.3")


def routes(table: dict[str, str]) -> Callable[[str], str | None]:
    return table.get


def test_stays_while_the_route_leaves_from_our_address() -> None:
    assert mobike_path(LOCAL, PEER, [ALT1], routes({str(PEER): str(LOCAL)})) is None


def test_moves_when_the_route_leaves_from_another_address() -> None:
    assert mobike_path(LOCAL, PEER, [ALT1], routes({str(PEER): NEW, str(ALT1): NEW})) == (NEW, None)


def test_no_route_to_the_peer_tries_its_additional_addresses_in_order() -> None:
    assert mobike_path(LOCAL, PEER, [ALT1, ALT2], routes({str(ALT2): NEW})) == (NEW, ALT2)
    assert mobike_path(LOCAL, PEER, [ALT1, ALT2], routes({str(ALT1): str(LOCAL), str(ALT2): NEW})) == (
        str(LOCAL),
        ALT1,
    )


def test_no_route_anywhere_stays() -> None:
    assert mobike_path(LOCAL, PEER, [ALT1], routes({})) is None


def test_a_road_warrior_initiates_from_the_routing_tables_choice(world: World, tmp_path: Path) -> None:
    client_cfg, gw_cfg = psk_configs(tmp_path, client={"connections": {"office": {"local_addrs": ["%any"]}}})
    client = world.node(
        client_cfg, I_ADDR, addresses=StaticAddresses("192.0.2.9", I_ADDR, routes={GW_ADDR: I_ADDR})
    )
    conn = client.runtime.engine.config.connections["office"]
    assert initiator_source(conn, client.runtime.addresses.route_source) == Endpoint(LOCAL, 500)
    world.node(gw_cfg, GW_ADDR)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    (init,) = world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)
    assert init.datagram.local == Endpoint(LOCAL, 500)


def test_the_client_follows_its_route_to_a_new_address(world: World, tmp_path: Path) -> None:
    """Every ADDRESS_CHECK seconds the runtime asks where the route to the peer leaves from; when
    that changes (Wi-Fi gone, mobile data up), the IKE SA and its Child SA move (MOBIKE)."""
    new = "192.0.2.11"
    addrs = StaticAddresses(I_ADDR, new, routes={GW_ADDR: I_ADDR})
    client_cfg, gw_cfg = psk_configs(tmp_path)
    client, gw = world.node(client_cfg, I_ADDR, addresses=addrs), world.node(gw_cfg, GW_ADDR)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    world.run_for(ADDRESS_CHECK * 2)
    assert world.net.requests(ExchangeType.INFORMATIONAL, src=I_ADDR) == []  # nothing moved
    addrs.routes[GW_ADDR] = new
    world.run_for(ADDRESS_CHECK)
    (sa,), (gw_sa,) = client.sas(), gw.sas()
    assert str(sa.local) == f"{new}:4500" and str(gw_sa.remote) == f"{new}:4500"
    (spi,) = client.child_spis()
    assert client.sink.ops(spi)[-1] == "update"
