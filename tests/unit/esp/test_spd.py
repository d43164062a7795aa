"""SPD: selector matching, most-specific-first lookup (IPv4/IPv6), inbound checks, memo."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from pyipsec.esp.spd import InboundCheck, Policy, Selector, Spd, flow_of, selectors
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.unit.dataplane._packets import ipv4_tcp, ipv4_udp, ipv6_tcp

from ._support import ipv4_packet

N = Selector.network


def test_selector_validation_and_matching() -> None:
    with pytest.raises(ValueError, match="mixes"):
        Selector(ip_address("10.0.0.1"), ip_address("::1"))
    with pytest.raises(ValueError, match="empty"):
        Selector(ip_address("10.0.0.2"), ip_address("10.0.0.1"))
    with pytest.raises(ValueError, match="port"):
        Selector(ip_address("10.0.0.1"), ip_address("10.0.0.1"), 6, 10, 5)
    s = Selector.from_tuple(("10.0.0.0", "10.0.0.255", 6, 80, 80))
    lo = int(ip_address("10.0.0.7"))
    assert s.matches(4, lo, 6, 80)
    assert not s.matches(4, lo, 17, 80)
    assert not s.matches(4, lo, 6, 81)
    assert not s.matches(4, lo, 6, None)  # unknown port (fragment) only matches any-port
    assert not s.matches(6, lo, 6, 80)
    assert N("10.0.0.0/24").matches(4, lo, 6, None)


def test_flow_of_ipv4_ipv6_and_fragments() -> None:
    assert flow_of(ipv4_tcp(b"x", sport=1, dport=2)) == (4, 0x0A010001, 0x0A020001, 6, 1, 2)
    v6 = flow_of(ipv6_tcp(b"x", sport=3, dport=4))
    assert v6 is not None and v6[3:] == (6, 3, 4)
    frag = bytearray(ipv4_udp(b"abc"))
    frag[6:8] = b"\x00\x10"  # fragment offset 16
    assert flow_of(bytes(frag))[4:] == (None, None)  # type: ignore[index]
    # IPv6 with a hop-by-hop header before TCP
    pkt = bytearray(ipv6_tcp(b"x", sport=5, dport=6))
    hbh = bytes((6, 0, 1, 4, 0, 0, 0, 0))
    pkt6 = pkt[:6] + b"\x00" + pkt[7:40] + hbh + pkt[40:]
    assert flow_of(bytes(pkt6))[3:] == (6, 5, 6)  # type: ignore[index]
    assert flow_of(b"\x45" * 10) is None
    assert flow_of(b"\x70" + bytes(39)) is None


def test_most_specific_policy_wins_v4() -> None:
    wide = Policy(1, (N("10.1.0.0/16"),), (N("0.0.0.0/0"),), order=1)
    mid = Policy(2, (N("10.1.0.0/16"),), (N("10.2.0.0/16"),), order=2)
    host = Policy(3, (N("10.1.0.0/16"),), (N("10.2.0.1/32"),), order=3)
    web = Policy(4, (N("10.1.0.0/16"),), (N("10.2.0.1/32", 6, (80, 80)),), order=4)
    spd = Spd([wide, mid, host, web])
    assert spd.lookup(ipv4_tcp(b"x", dst="10.2.0.1", dport=80)) == 4
    assert spd.lookup(ipv4_tcp(b"x", dst="10.2.0.1", dport=81)) == 3
    assert spd.lookup(ipv4_tcp(b"x", dst="10.2.9.9")) == 2
    assert spd.lookup(ipv4_tcp(b"x", dst="192.0.2.1")) == 1
    assert spd.lookup(ipv4_tcp(b"x", src="10.9.0.1", dst="10.2.0.1")) is None  # local TS mismatch
    assert spd.lookup(b"\x00garbage") is None
    # memoised answers stay right; removing a policy builds a fresh SPD
    assert spd.lookup(ipv4_tcp(b"x", dst="10.2.0.1", dport=80)) == 4
    assert spd.without(4).lookup(ipv4_tcp(b"x", dst="10.2.0.1", dport=80)) == 3
    assert len(spd.without(4)) == 3


def test_most_specific_policy_wins_v6_and_newest_among_equals() -> None:
    a = Policy(10, (N("fd01::/64"),), (N("fd02::/64"),), order=1)
    b = Policy(11, (N("fd01::/64"),), (N("fd02::/64"),), order=2)  # rekeyed twin: newer
    c = Policy(12, (N("fd01::/64"),), (N("fd02::1/128"),), order=0)
    spd = Spd([a, b, c])
    assert spd.lookup(ipv6_tcp(b"x", dst="fd02::1")) == 12
    assert spd.lookup(ipv6_tcp(b"x", dst="fd02::2")) == 11
    assert spd.without(11).lookup(ipv6_tcp(b"x", dst="fd02::2")) == 10
    assert spd.lookup(ipv4_tcp(b"x")) is None
    assert spd.with_policy(Policy(10, a.local, a.remote, order=9)).lookup(ipv6_tcp(b"x", dst="fd02::2")) == 10


def test_inbound_check() -> None:
    local = selectors([TrafficSelector.from_range("10.1.0.0", "10.1.0.255")])
    pol = Policy(1, local, (N("10.2.0.0/24", 17),))
    check = InboundCheck(pol)
    assert check(ipv4_udp(b"x", src="10.2.0.5", dst="10.1.0.9"))
    assert not check(ipv4_tcp(b"x", src="10.2.0.5", dst="10.1.0.9"))  # protocol
    assert not check(ipv4_udp(b"x", src="10.3.0.5", dst="10.1.0.9"))  # source outside
    assert not check(ipv4_udp(b"x", src="10.1.0.9", dst="10.2.0.5"))  # reversed
    assert not check(b"junk")
    any_check = InboundCheck(Policy(2, (N("10.0.0.0/8"),), (N("10.0.0.0/8"),)))
    assert any_check(ipv4_packet(30))
    assert any_check(ipv4_packet(30))  # memoised
    assert not any_check(ipv6_tcp(b"x"))
