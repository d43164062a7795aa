"""The daemon fakes themselves: the virtual clock and the memory network keep their promises."""

from __future__ import annotations

from ipaddress import ip_address

from pyipsec.net.addr import Datagram, Endpoint
from tests.support.clock import FakeClock
from tests.support.memnet import MemoryNetwork


def test_the_clock_fires_in_due_order_at_due_times() -> None:
    clock, fired = FakeClock(), []
    clock.call_later(2.0, lambda: fired.append(("b", clock.now())))
    clock.call_later(1.0, lambda: fired.append(("a", clock.now())))
    clock.call_later(2.0, lambda: fired.append(("c", clock.now())))  # same time: in scheduling order
    clock.call_later(1.5, lambda: fired.append(("never", clock.now()))).cancel()
    clock.advance(1.9)
    assert fired == [("a", 1.0)] and clock.now() == 1.9
    clock.advance(0.1)
    assert fired == [("a", 1.0), ("b", 2.0), ("c", 2.0)] and clock.pending() == []


def test_callbacks_scheduled_while_firing_run_if_due() -> None:
    clock, fired = FakeClock(), []

    def first() -> None:
        fired.append("first")
        clock.call_later(0.0, lambda: fired.append("now too"))
        clock.call_later(5.0, lambda: fired.append("later"))

    clock.call_at(1.0, first)
    clock.call_at(0.5, lambda: fired.append("past"))
    assert clock.step() and fired == ["past"]
    assert clock.step() and fired == ["past", "first", "now too"]
    assert not clock.step(limit=5.9) and clock.step() and fired[-1] == "later" and clock.now() == 6.0


def test_the_memory_network_delivers_in_order_swapped_and_not_through_cuts() -> None:
    clock = FakeClock()
    net = MemoryNetwork(clock)
    a, b = Endpoint(ip_address("192.0.2.1"), 500), Endpoint(ip_address("192.0.2.2"), 500)
    got: list[Datagram] = []
    net.bind(b.ip, 500, got.append)
    net.send(Datagram(a, b, b"one"))
    net.send(Datagram(a, b, b"two"))
    assert got == [] and net.deliver() == 2
    assert [d.payload for d in got] == [b"one", b"two"] and got[0].local == b and got[0].remote == a
    net.cut("192.0.2.2")
    net.send(Datagram(a, b, b"lost"))
    net.deliver()
    net.heal()
    net.send(Datagram(a, b, b"three"))
    net.deliver()
    assert [d.payload for d in got] == [b"one", b"two", b"three"] and len(net.log) == 4
