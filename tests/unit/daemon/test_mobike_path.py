"""The daemon's MOBIKE path choice (RFC 4555 §3.8): current peer address first, then its list."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address

from pyipsec.daemon.runtime import mobike_path

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
