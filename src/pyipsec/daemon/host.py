"""The host around the runtime: its IKE ports and its network settings (DESIGN.md §4, §8).

Theory of operation
-------------------
Two seams, each a Protocol with its production class as the runtime's default:

* :class:`IkePorts` — the UDP sockets that carry IKE: port 500, and the NAT-T port unless the
  data plane owns it. A :data:`PortFactory` builds them with the runtime's receive callback;
  :meth:`IkePorts.open` binds them when the runtime starts. Production: ``io.udp.UdpPorts`` on
  the running asyncio loop (:func:`udp_ports`).
* :class:`HostNet` — what a client changes on its host: the virtual IPs the gateway assigned
  (on the TUN device) and its DNS servers, and putting all of it back (``restore``) once the
  connection is gone. Production: ``io.hostnet.HostNetwork``.

Tests pass in-memory ports on a memory network and a recording host (``tests/support``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pyipsec.config.model import Settings
from pyipsec.io.udp import UdpPorts, UdpStats
from pyipsec.net.addr import Datagram, IPAddress

__all__ = ["HostNet", "IkePorts", "PortFactory", "udp_ports"]


class IkePorts(Protocol):
    stats: UdpStats

    def open(self) -> None: ...

    def send(self, d: Datagram) -> None: ...

    def close(self) -> None: ...


#: builds the IKE ports with the function every IKE datagram received goes to
PortFactory = Callable[[Settings, Callable[[Datagram], None]], IkePorts]


def udp_ports(settings: Settings, receive: Callable[[Datagram], None]) -> IkePorts:
    """UDP 500, plus the NAT-T port when there is no data plane to own it."""
    return UdpPorts(
        receive,
        port=settings.port,
        nat_t_port=settings.port_nat_t,
        listen=settings.listen,
        bind_nat_t=not settings.dataplane,
    )


class HostNet(Protocol):
    def add_address(self, addr: IPAddress) -> None: ...

    def set_dns(self, servers: Sequence[IPAddress], domains: Sequence[str]) -> None: ...

    def restore(self) -> None: ...
