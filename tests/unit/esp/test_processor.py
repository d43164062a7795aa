"""EspProcessor: in-memory outbound/inbound through two peers, every drop counted, signals."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address

import pytest

from pyipsec.childsa import EspMode, Lifetimes
from pyipsec.crypto.rand import SeededRandom
from pyipsec.esp.processor import EspProcessor, child_counters, ip_header_for_transport
from pyipsec.esp.sa import Direction, EspSa, EspSaConfig
from pyipsec.esp.sad import Peer
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import OPAQUE_PORTS, TrafficSelector
from tests.unit.dataplane._packets import ipv4_header_ok, ipv4_tcp, ipv4_udp, ipv6_tcp

from ._support import SUITE_IDS, SUITES, Suite, child_sa_spec

A_OUT, B_OUT = Endpoint(ip_address("192.0.2.1"), 4500), Endpoint(ip_address("192.0.2.2"), 4500)


def _pair(suite: Suite, *, soft: int | None = None, **kw: object) -> tuple[EspProcessor, EspProcessor]:
    """Two processors with one child between them; ``soft`` lowers the outbound SAs' sequence
    number rekey limit (not part of a Child SA: replaces the installed outbound SA)."""
    a, b = EspProcessor(rng=SeededRandom(1)), EspProcessor(rng=SeededRandom(2))
    for proc, spec in (
        (a, child_sa_spec(suite, 0x1000, 0x2000, "10.1.0.0/16", "10.2.0.0/16", A_OUT, B_OUT, **kw)),  # type: ignore[arg-type]
        (b, child_sa_spec(suite, 0x2000, 0x1000, "10.2.0.0/16", "10.1.0.0/16", B_OUT, A_OUT, **kw)),  # type: ignore[arg-type]
    ):
        child = proc.install(spec)
        if soft is not None:
            cfg = replace(EspSaConfig.from_spec(spec, Direction.OUTBOUND), seq_soft_limit=soft)
            child.outbound = EspSa(cfg, rng=proc.rng)
    return a, b


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_tunnel_round_trip(suite: Suite) -> None:
    a, b = _pair(suite)
    for n in (0, 1, 15, 16, 17, 1000):
        pkt = ipv4_tcp(bytes(n))
        sent = a.outbound(pkt)
        assert sent is not None
        child, esp = sent
        assert child.peer.remote == B_OUT
        assert esp[:4] == (0x2000).to_bytes(4, "big")
        got = b.inbound(esp)
        assert got is not None and got[1] == pkt
        back = b.outbound(ipv4_udp(b"reply", src="10.2.0.1", dst="10.1.0.1"))
        assert back is not None
        assert a.inbound(back[1]) is not None
    c = child_counters(b.sad.children[0x2000])
    assert c["packets_in"] == 6 and c["packets_out"] == 6


def test_ipv6_inner() -> None:
    suite = SUITES[2]
    a, b = EspProcessor(), EspProcessor()
    a.install(child_sa_spec(suite, 0x1000, 0x2000, "fd01::/64", "fd02::/64", A_OUT, B_OUT))
    b.install(child_sa_spec(suite, 0x2000, 0x1000, "fd02::/64", "fd01::/64", B_OUT, A_OUT))
    pkt = ipv6_tcp(b"hello")
    sent = a.outbound(pkt)
    assert sent is not None
    got = b.inbound(sent[1])
    assert got is not None and got[1] == pkt


def test_every_drop_is_counted() -> None:
    suite = SUITES[5]  # AES-CBC + HMAC-SHA2-256
    a, b = _pair(suite)
    # no policy
    assert a.outbound(ipv4_tcp(b"x", dst="192.0.2.99")) is None
    assert a.counters.no_policy == 1
    sent = a.outbound(ipv4_tcp(b"payload"))
    assert sent is not None
    esp = sent[1]
    # unknown SPI
    assert b.inbound(b"\x00\x00\x99\x99" + esp[4:]) is None
    assert b.counters.unknown_spi == 1
    # short / malformed
    assert b.inbound(b"\x01\x02") is None
    assert b.inbound(esp[:20]) is None
    assert b.counters.malformed == 1
    child = b.sad.children[0x2000]
    assert child.inbound.malformed == 1
    # bad ICV: the window stays untouched, the genuine packet still goes through
    bad = bytearray(esp)
    bad[-1] ^= 1
    assert b.inbound(bytes(bad)) is None
    assert child.inbound.integrity_failures == 1
    assert b.inbound(esp) is not None
    # replay
    assert b.inbound(esp) is None
    assert child.inbound.replay_drops == 1
    # selector mismatch: A's outbound SA carries a packet from outside its selectors
    rogue = a.sad.children[0x1000].outbound.encapsulate(ipv4_tcp(b"x", src="10.9.0.1"), 4)
    assert b.inbound(rogue) is None
    assert child.policy_drops == 1
    # a non-IP next header in tunnel mode is a policy drop; 59 (dummy) is discarded silently
    assert b.inbound(a.sad.children[0x1000].outbound.encapsulate(b"abc", 17)) is None
    assert child.policy_drops == 2
    assert b.inbound(a.sad.children[0x1000].outbound.encapsulate(b"", 59)) is None
    assert child.policy_drops == 2
    c = child_counters(child)
    assert (c["replay_drops"], c["integrity_failures"], c["policy_drops"], c["malformed"]) == (1, 1, 2, 1)
    assert b.counters.as_dict()["unknown_spi"] == 1


def test_transport_mode_rebuilds_the_ip_header() -> None:
    suite = SUITES[3]
    a, b = EspProcessor(), EspProcessor()
    a.install(
        child_sa_spec(
            suite, 0x1000, 0x2000, "192.0.2.1/32", "192.0.2.2/32", A_OUT, B_OUT, mode=EspMode.TRANSPORT
        )
    )
    b.install(
        child_sa_spec(
            suite, 0x2000, 0x1000, "192.0.2.2/32", "192.0.2.1/32", B_OUT, A_OUT, mode=EspMode.TRANSPORT
        )
    )
    pkt = ipv4_udp(b"transport!", src="192.0.2.1", dst="192.0.2.2")
    sent = a.outbound(pkt)
    assert sent is not None
    got = b.inbound(sent[1])
    assert got is not None
    inner = got[1]
    assert ipv4_header_ok(inner)
    assert inner[20:] == pkt[20:] and inner[12:20] == pkt[12:20] and inner[9] == 17
    assert ip_header_for_transport(Peer(A_OUT, B_OUT, True), 6, 10)[9] == 6


def test_inactive_outbound_and_activation() -> None:
    suite = SUITES[2]
    a = EspProcessor()
    a.install(child_sa_spec(suite, 0x1000, 0x2000, "10.1.0.0/16", "10.2.0.0/16", A_OUT, B_OUT))
    a.install(child_sa_spec(suite, 0x1001, 0x2001, "10.1.0.0/16", "10.2.0.0/16", A_OUT, B_OUT, active=False))
    sent = a.outbound(ipv4_tcp(b"x"))
    assert sent is not None and sent[0].spi_out == 0x2000
    assert a.activate_outbound(0x1001)
    sent = a.outbound(ipv4_tcp(b"x"))
    assert sent is not None and sent[0].spi_out == 0x2001
    assert a.remove(0x1001) is not None
    sent = a.outbound(ipv4_tcp(b"x"))
    assert sent is not None and sent[0].spi_out == 0x2000
    assert a.remove(0x1001) is None
    assert not a.activate_outbound(0x4242)


def test_a_retired_child_keeps_receiving_but_no_longer_sends() -> None:
    """The newest child (e.g. the redundant one of a rekey collision) is retired: outbound goes
    back to the older child at once, while ESP still arriving on the retired one is accepted."""
    suite = SUITES[2]
    a, b = EspProcessor(), EspProcessor()
    for spi_a, spi_b in ((0x1000, 0x2000), (0x1001, 0x2001)):
        a.install(child_sa_spec(suite, spi_a, spi_b, "10.1.0.0/16", "10.2.0.0/16", A_OUT, B_OUT))
        b.install(child_sa_spec(suite, spi_b, spi_a, "10.2.0.0/16", "10.1.0.0/16", B_OUT, A_OUT))
    late = b.outbound(ipv4_tcp(b"late", src="10.2.0.1", dst="10.1.0.1"))
    assert late is not None and late[0].spi_out == 0x1001
    assert a.deactivate_outbound(0x1001)
    sent = a.outbound(ipv4_tcp(b"x"))
    assert sent is not None and sent[0].spi_out == 0x2000
    got = a.inbound(late[1])
    assert got is not None and got[1].endswith(b"late")
    assert not a.deactivate_outbound(0x4242)


def test_lifetime_and_sequence_signals() -> None:
    suite = SUITES[0]
    a, b = _pair(suite, lifetimes=Lifetimes(soft_packets=2, hard_packets=4, soft_seconds=100.0), soft=3)
    assert a.poll_signals(0.0) == []
    for _ in range(2):
        a.outbound(ipv4_tcp(b"x"))
    sigs = a.poll_signals(1.0)
    assert [s.kind for s in sigs] == ["soft_lifetime"]
    a.outbound(ipv4_tcp(b"x"))  # seq 3: the soft sequence limit
    assert [s.kind for s in a.poll_signals(2.0)] == ["seq_exhausting"]
    a.outbound(ipv4_tcp(b"x"))
    assert [(s.spi_in, s.kind) for s in a.poll_signals(3.0)] == [(0x1000, "hard_lifetime")]
    assert a.outbound(ipv4_tcp(b"x")) is None  # expired
    assert a.counters.expired == 1
    assert a.poll_signals(4.0) == []
    assert [s.kind for s in b.poll_signals(200.0)] == ["soft_lifetime"]


def test_install_builds_both_sas_from_the_spec() -> None:
    suite = SUITES[4]  # AES-CBC + HMAC-SHA1: separate integrity keys
    spec = child_sa_spec(suite, 0x1000, 0x2000, "10.1.0.0/16", "10.2.0.0/16", A_OUT, B_OUT, esn=True)
    child = EspProcessor(rng=SeededRandom(1)).install(spec, now=7.0)
    inb, out = child.inbound.config, child.outbound.config
    assert (inb.spi, inb.direction, inb.encr_key, inb.integ_key) == (
        0x1000,
        Direction.INBOUND,
        spec.encr_key_in,
        spec.integ_key_in,
    )
    assert (out.spi, out.direction, out.encr_key, out.integ_key) == (
        0x2000,
        Direction.OUTBOUND,
        spec.encr_key_out,
        spec.integ_key_out,
    )
    assert inb.esn and out.esn and inb.mode is out.mode is child.mode is EspMode.TUNNEL
    assert inb.replay_window == 1024 and child.installed_at == 7.0
    assert child.peer == Peer(A_OUT, B_OUT, True)


def test_install_refuses_what_the_data_plane_cannot_carry() -> None:
    suite = SUITES[2]
    proc = EspProcessor()
    spec = child_sa_spec(suite, 0x1000, 0x2000, "10.1.0.0/16", "10.2.0.0/16", A_OUT, B_OUT)
    opaque = TrafficSelector.from_network("10.2.0.0/16", protocol=6, ports=OPAQUE_PORTS)
    with pytest.raises(ValueError, match="port"):
        proc.install(replace(spec, remote_ts=(opaque,)))
    with pytest.raises(ValueError, match="replay window"):
        proc.install(replace(spec, replay_window=8))
    with pytest.raises(ValueError):
        proc.install(replace(spec, encr_key_in=b"short"))
    proc.install(spec)
    with pytest.raises(ValueError, match="already installed"):
        proc.install(spec)
    assert len(proc.sad) == 1


def _mangled_inner_packets() -> dict[str, bytes]:
    good = ipv4_tcp(b"payload")
    return {
        "ihl-below-5": bytes([0x44]) + good[1:],
        "ihl-beyond-the-packet": bytes([0x4F]) + good[1:20],
        "ipv4-header-cut": good[:12],
        "version-7": bytes([0x75]) + good[1:],
        "empty": b"",
        "ipv6-on-an-ipv4-only-child": ipv6_tcp(b"x", src="fd01::1", dst="fd02::1"),
        "ipv6-header-cut": ipv6_tcp(b"x")[:30],
    }


@pytest.mark.parametrize("case", sorted(_mangled_inner_packets()))
def test_authentic_esp_with_a_bad_inner_packet_never_reaches_the_tun(case: str) -> None:
    """RELIABILITY.md §5 D6: the keys are right, the inner packet is not (bogus IHL, cut
    headers, another IP version, IPv6 on an IPv4-only SA): dropped before the TUN write and
    counted, never an exception; good packets between the same addresses still pass after it."""
    a, b = _pair(SUITES[2])
    sender = a.sad.children[0x1000].outbound
    inner = _mangled_inner_packets()[case]
    next_header = 41 if inner[:1] and inner[0] >> 4 == 6 else 4
    assert b.inbound(sender.encapsulate(inner, next_header)) is None
    child = b.sad.children[0x2000]
    # a policy drop, or malformed where the SA's own inner-length check (TFC padding) fails
    assert child.policy_drops + child.inbound.malformed == 1 and child.inbound.integrity_failures == 0
    for _ in range(2):  # the drop left no memo behind that would refuse good packets too
        sent = a.outbound(ipv4_tcp(b"fine"))
        assert sent is not None and b.inbound(sent[1]) is not None
    assert child.policy_drops + child.inbound.malformed == 1


def test_a_malformed_outbound_packet_does_not_block_its_addresses() -> None:
    """The outbound policy lookup refuses a packet it cannot parse (counted ``no_policy``)
    without remembering that answer for the packet's addresses."""
    a, _ = _pair(SUITES[2])
    bad = bytes([0x44]) + ipv4_tcp(b"x")[1:]  # IHL 4
    assert a.outbound(bad) is None and a.counters.no_policy == 1
    assert a.outbound(ipv4_tcp(b"fine")) is not None
    assert a.counters.no_policy == 1
