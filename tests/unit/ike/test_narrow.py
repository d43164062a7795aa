from __future__ import annotations

from pyipsec.ike.narrow import contains, covered_by, intersect, narrow
from pyipsec.wire.payloads.ts import TrafficSelector as TS


def net(s: str, proto: int = 0, ports: tuple[int, int] = (0, 65535)) -> TS:
    return TS.from_network(s, protocol=proto, ports=ports)


def test_intersection_of_nested_networks_is_the_smaller() -> None:
    assert intersect(net("10.0.0.0/8"), net("10.1.0.0/16")) == net("10.1.0.0/16")


def test_disjoint_networks_and_families_do_not_intersect() -> None:
    assert intersect(net("10.0.0.0/16"), net("10.1.0.0/16")) is None
    assert intersect(net("10.0.0.0/8"), net("fd00::/8")) is None


def test_protocol_and_ports_narrow() -> None:
    x = intersect(net("10.0.0.0/8"), net("10.0.0.0/24", 6, (80, 443)))
    assert x == net("10.0.0.0/24", 6, (80, 443))
    assert intersect(net("10.0.0.0/8", 17), net("10.0.0.0/8", 6)) is None
    assert intersect(net("10.0.0.0/8", 6, (1, 100)), net("10.0.0.0/8", 6, (200, 300))) is None


def test_partial_address_overlap_gives_a_range() -> None:
    x = intersect(TS.from_range("10.0.0.5", "10.0.0.20"), net("10.0.0.16/28"))
    assert x == TS.from_range("10.0.0.16", "10.0.0.20")


def test_ipv6_intersection() -> None:
    assert intersect(net("fd00::/16"), net("fd00:1::/32")) == net("fd00:1::/32")


def test_narrow_keeps_peer_order_and_drops_empty() -> None:
    proposed = [net("10.2.0.0/16"), net("0.0.0.0/0")]
    policy = [net("10.2.3.0/24")]
    assert narrow(proposed, policy) == (net("10.2.3.0/24"),)
    assert narrow([net("192.168.0.0/16")], policy) == ()


def test_containment_check_for_initiator() -> None:
    assert contains(net("10.0.0.0/8"), net("10.1.0.0/16"))
    assert not contains(net("10.1.0.0/16"), net("10.0.0.0/8"))
    assert not contains(net("10.0.0.0/8", 6), net("10.0.0.0/8"))
    assert contains(net("10.0.0.0/8"), net("10.0.0.0/8", 6, (80, 80)))
    assert covered_by([net("10.1.0.0/16"), net("10.2.0.0/16")], [net("10.0.0.0/8")])
    assert not covered_by([net("11.0.0.0/16")], [net("10.0.0.0/8")])
