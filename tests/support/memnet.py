"""An IP network in memory for daemons (wireguard-go's ``conn/bindtest`` is the model).

Hosts bind ``(address, port)`` to a receive callback; a datagram sent is queued and reaches
the callback bound to its destination on :meth:`MemoryNetwork.deliver` — as the receiver sees
it, with local and remote swapped — so nothing re-enters a sender and the order is exactly the
order of sending. :meth:`MemoryNetwork.cut` makes a host unreachable (a dead peer). Every
datagram is logged with the time it was sent (``clock``), for assertions on the exchanges.

:class:`MemoryPorts` are a runtime's IKE ports (``pyipsec.daemon.host.IkePorts``) on it:
port 500, and the NAT-T port unless the data plane owns it (then the data-plane fake binds it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

from pyipsec.config.model import Settings
from pyipsec.daemon.host import IkePorts
from pyipsec.iana.ikev2 import ExchangeType
from pyipsec.io.udp import UdpStats
from pyipsec.net.addr import Datagram, IPAddress
from pyipsec.wire.buffer import Reader
from pyipsec.wire.header import IkeHeader
from tests.support.clock import FakeClock

__all__ = ["MemoryNetwork", "MemoryPorts", "Sent"]

Receive = Callable[[Datagram], None]


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    datagram: Datagram

    @property
    def header(self) -> IkeHeader:
        return IkeHeader.decode(Reader(self.datagram.payload))

    def is_request(self, exchange: ExchangeType) -> bool:
        h = self.header
        return h.exchange_type == exchange and not h.is_response


class MemoryNetwork:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._bound: dict[tuple[IPAddress, int], Receive] = {}
        self._queue: deque[Datagram] = deque()
        self.log: list[Sent] = []
        self._cut: set[IPAddress] = set()

    def bind(self, ip: IPAddress, port: int, receive: Receive) -> None:
        assert (ip, port) not in self._bound, f"{ip} port {port} is bound already"
        self._bound[(ip, port)] = receive

    def unbind(self, ip: IPAddress, port: int) -> None:
        self._bound.pop((ip, port), None)

    def send(self, d: Datagram) -> None:
        self.log.append(Sent(self.clock.now(), d))
        self._queue.append(d)

    def cut(self, *addrs: str) -> None:
        """Drop everything to and from these hosts from now on."""
        self._cut |= {ip_address(a) for a in addrs}

    def heal(self) -> None:
        self._cut.clear()

    def deliver(self) -> int:
        """Deliver what is queued now (not what that makes the receivers send); how many."""
        n = 0
        for _ in range(len(self._queue)):
            d = self._queue.popleft()
            n += 1
            if d.remote.ip in self._cut or d.local.ip in self._cut:
                continue
            receive = self._bound.get((d.remote.ip, d.remote.port))
            if receive is not None:
                receive(Datagram(local=d.remote, remote=d.local, payload=d.payload))
        return n

    def ports(self, *addresses: str) -> Callable[[Settings, Receive], IkePorts]:
        """A runtime's port factory for the host with these addresses."""
        ips = tuple(ip_address(a) for a in addresses)
        return lambda settings, receive: MemoryPorts(self, ips, settings, receive)

    def requests(self, exchange: ExchangeType, *, src: str | None = None) -> list[Sent]:
        """Requests of one exchange type (first transmissions only), optionally from ``src``."""
        seen: set[bytes] = set()
        out = []
        for s in self.log:
            if s.datagram.payload in seen or (src is not None and str(s.datagram.local.ip) != src):
                continue
            seen.add(s.datagram.payload)
            if len(s.datagram.payload) >= 28 and s.is_request(exchange):
                out.append(s)
        return out


class MemoryPorts:
    """IKE ports of one host on a :class:`MemoryNetwork` (``pyipsec.daemon.host.IkePorts``)."""

    def __init__(
        self, net: MemoryNetwork, ips: tuple[IPAddress, ...], settings: Settings, receive: Receive
    ) -> None:
        self.net = net
        self.ips = ips
        self.numbers = (settings.port,) if settings.dataplane else (settings.port, settings.port_nat_t)
        self._receive = receive
        self.stats = UdpStats()

    def open(self) -> None:
        for ip in self.ips:
            for port in self.numbers:
                self.net.bind(ip, port, self._received)

    def _received(self, d: Datagram) -> None:
        self.stats.received += 1
        self._receive(d)

    def send(self, d: Datagram) -> None:
        self.stats.sent += 1
        self.net.send(d)

    def close(self) -> None:
        for ip in self.ips:
            for port in self.numbers:
                self.net.unbind(ip, port)
