"""Recording fakes of what surrounds a runtime: data-plane sink, host network, addresses.

:class:`RecordingSink` (``pyipsec.daemon.sink.DataplaneSink``) keeps every call with the
clock's time and the state a data plane would hold (installed Child SAs, which send). Like the
data-plane process it may own the NAT-T port on a :class:`~tests.support.memnet.MemoryNetwork`
(IKE there goes out through it and comes back to the runtime as the data plane forwards it).
Its barriers answer after ``barrier_delay`` seconds of the clock, or, with None, only when the
test calls :meth:`RecordingSink.answer_barriers` (a data plane that hangs).

:class:`FakeHostNet` records virtual IPs, DNS and restores; :class:`StaticAddresses` is a
fixed list of local addresses and a routing table (``pyipsec.daemon.mobike.AddressSource``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from pyipsec.config.model import Settings
from pyipsec.daemon.sink import CounterMap, DataplaneListener, DataplaneSink
from pyipsec.ike.events import ChildSaInstalled
from pyipsec.net.addr import Datagram, Endpoint, IPAddress
from tests.support.clock import FakeClock
from tests.support.memnet import MemoryNetwork

__all__ = ["Call", "FakeHostNet", "RecordingSink", "StaticAddresses"]


@dataclass(frozen=True, slots=True)
class Call:
    at: float
    op: str  # install, activate, retire, remove, update, keepalive, send_ike, barrier, close
    spi: bytes = b""


class RecordingSink:
    def __init__(
        self,
        clock: FakeClock,
        *,
        listener: DataplaneListener | None = None,
        net: MemoryNetwork | None = None,
        addresses: tuple[str, ...] = (),
        nat_t_port: int = 4500,
        barrier_delay: float | None = 0.001,
    ) -> None:
        self.clock = clock
        self.calls: list[Call] = []
        self.installed: dict[bytes, ChildSaInstalled] = {}
        self.sending: set[bytes] = set()  # children whose outbound half is active
        self.traffic: CounterMap = {}  # what counters report
        self.dp_totals: dict[str, int] = {}  # what totals report
        self.barrier_delay = barrier_delay
        self._waiting: list[Callable[[CounterMap], None]] = []
        self.net = net
        self.owns_nat_t = net is not None
        self._bound = [(ip_address(a), nat_t_port) for a in addresses] if net is not None else []
        for ip, port in self._bound:
            assert net is not None and listener is not None
            net.bind(ip, port, listener.datagram_received)

    @classmethod
    def factory(
        cls, clock: FakeClock, made: list[RecordingSink], *, net: MemoryNetwork | None = None,
        addresses: tuple[str, ...] = (), barrier_delay: float | None = 0.001,
    ) -> Callable[[Settings, DataplaneListener], DataplaneSink]:  # fmt: skip
        """A runtime's sink factory; each sink made is appended to ``made``."""

        def make(settings: Settings, listener: DataplaneListener) -> DataplaneSink:
            sink = cls(
                clock, listener=listener, net=net, addresses=addresses, nat_t_port=settings.port_nat_t,
                barrier_delay=barrier_delay,
            )  # fmt: skip
            made.append(sink)
            return sink

        return make

    def _record(self, op: str, spi: bytes = b"") -> None:
        self.calls.append(Call(self.clock.now(), op, spi))

    def ops(self, spi: bytes | None = None) -> list[str]:
        return [c.op for c in self.calls if spi is None or c.spi == spi]

    def at(self, op: str, spi: bytes) -> float:
        """When ``op`` was applied to ``spi`` (the first time)."""
        return next(c.at for c in self.calls if c.op == op and c.spi == spi)

    def index(self, op: str, spi: bytes) -> int:
        return next(i for i, c in enumerate(self.calls) if c.op == op and c.spi == spi)

    # -- DataplaneSink --------------------------------------------------------------------------

    def install(self, event: ChildSaInstalled) -> None:
        self._record("install", event.spec.spi_in)
        self.installed[event.spec.spi_in] = event
        if event.spec.outbound_active:
            self.sending.add(event.spec.spi_in)

    def activate(self, spi_in: bytes) -> None:
        self._record("activate", spi_in)
        self.sending.add(spi_in)

    def retire(self, spi_in: bytes) -> None:
        self._record("retire", spi_in)
        self.sending.discard(spi_in)

    def remove(self, spi_in: bytes) -> None:
        self._record("remove", spi_in)
        self.installed.pop(spi_in, None)
        self.sending.discard(spi_in)

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None:
        self._record("update", spi_in)

    def counters(self) -> CounterMap:
        return dict(self.traffic)

    def totals(self) -> dict[str, int]:
        return dict(self.dp_totals)

    def barrier(self, done: Callable[[CounterMap], None], *, counters: bool = True) -> None:
        self._record("barrier")
        if self.barrier_delay is None:
            self._waiting.append(done)
        else:
            self.clock.call_later(self.barrier_delay, lambda: done(self.counters()))

    def answer_barriers(self) -> None:
        waiting, self._waiting = self._waiting, []
        for done in waiting:
            done(self.counters())

    def send_ike(self, d: Datagram) -> None:
        self._record("send_ike")
        assert self.net is not None
        self.net.send(d)

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None:
        self._record("keepalive")

    def close(self) -> None:
        self._record("close")
        for ip, port in self._bound:
            assert self.net is not None
            self.net.unbind(ip, port)


class FakeHostNet:
    """``pyipsec.daemon.host.HostNet`` that only records."""

    def __init__(self) -> None:
        self.addresses: list[IPAddress] = []
        self.dns: list[IPAddress] = []
        self.restores = 0

    def add_address(self, addr: IPAddress) -> None:
        self.addresses.append(addr)

    def set_dns(self, servers: Sequence[IPAddress], domains: Sequence[str]) -> None:
        self.dns = list(servers)

    def restore(self) -> None:
        self.restores += 1
        self.addresses.clear()
        self.dns.clear()


class StaticAddresses:
    """Fixed local addresses; routes to every destination leave from the first one unless
    ``routes`` says otherwise (a destination mapped to None has no route)."""

    def __init__(self, *addrs: str, routes: Mapping[str, str | None] | None = None) -> None:
        self.addrs = tuple(ip_address(a) for a in addrs)
        self.routes = dict(routes or {})

    def addresses(self) -> tuple[IPAddress, ...]:
        return self.addrs

    def route_source(self, remote: str) -> str | None:
        if remote in self.routes:
            return self.routes[remote]
        return str(self.addrs[0]) if self.addrs else None
