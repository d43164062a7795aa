"""The data plane's lifetime poll looks only at the children that may have something to say
(issue 13: a gateway holds a thousand idle Child SAs and polls four times a second)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from pyipsec.childsa import Lifetimes
from pyipsec.esp.processor import EspProcessor
from pyipsec.esp.sa import EspSa
from pyipsec.net.addr import Endpoint
from tests.unit.dataplane._packets import ipv4_tcp

from ._support import SUITES, child_sa_spec

A_OUT, B_OUT = Endpoint(ip_address("192.0.2.1"), 4500), Endpoint(ip_address("192.0.2.2"), 4500)
N = 1000


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts ``EspSa.poll_signal`` calls: one per child the poll looks at."""
    calls = [0]
    real = EspSa.poll_signal

    def spy(self: EspSa) -> object:
        calls[0] += 1
        return real(self)

    monkeypatch.setattr(EspSa, "poll_signal", spy)
    return calls


def _gateway(lifetimes: dict[int, Lifetimes]) -> EspProcessor:
    """N children to N road warriors' virtual IPs (10.234.x.y/32), some with lifetimes."""
    p = EspProcessor()
    for k in range(N):
        vip = f"10.234.{k // 250}.{k % 250 + 1}/32"
        spec = child_sa_spec(
            SUITES[0], 0x10000 + k, 0x20000 + k, "10.1.0.0/16", vip, A_OUT, B_OUT, lifetimes=lifetimes.get(k)
        )
        p.install(spec, now=0.0)
    return p


def test_idle_children_without_limits_are_not_looked_at(polls: list[int]) -> None:
    p = _gateway({})
    assert p.poll_signals(1.0) == [] and p.poll_signals(1000.0) == []
    assert polls[0] == 0


def test_a_time_limit_brings_its_child_up_when_it_comes(polls: list[int]) -> None:
    p = _gateway({7: Lifetimes(soft_seconds=10.0, hard_seconds=20.0)})
    assert p.poll_signals(5.0) == [] and polls[0] == 0
    assert [(s.spi_in, s.kind) for s in p.poll_signals(10.5)] == [(0x10007, "soft_lifetime")]
    assert polls[0] == 1
    assert [(s.spi_in, s.kind) for s in p.poll_signals(25.0)] == [(0x10007, "hard_lifetime")]
    assert polls[0] == 2
    p.remove(0x10007)
    assert p.poll_signals(100.0) == []


def test_a_volume_limit_is_looked_at_every_poll_and_only_that_child(polls: list[int]) -> None:
    p = _gateway({3: Lifetimes(soft_packets=2, hard_packets=100)})
    for _ in range(2):
        assert p.outbound(ipv4_tcp(b"x", src="10.1.0.1", dst="10.234.0.4")) is not None
    assert [(s.spi_in, s.kind) for s in p.poll_signals(1.0)] == [(0x10003, "soft_lifetime")]
    assert polls[0] == 1


def test_a_sequence_counter_crossing_its_soft_limit_calls_for_a_look(polls: list[int]) -> None:
    p = _gateway({})
    seq = p.sad.children[0x10009].outbound.seq
    assert seq is not None
    seq.skip_to(seq.soft_limit - 2)  # close to the end of the sequence number space
    for _ in range(3):
        p.outbound(ipv4_tcp(b"x", src="10.1.0.1", dst="10.234.0.10"))
    assert [(s.spi_in, s.kind) for s in p.poll_signals(1.0)] == [(0x10009, "seq_exhausting")]
    assert polls[0] == 1
    assert p.poll_signals(2.0) == [] and polls[0] == 1
