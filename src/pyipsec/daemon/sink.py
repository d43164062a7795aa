"""Where the runtime's Child SA events go: the data-plane sink (DESIGN.md §4).

Theory of operation
-------------------
The runtime speaks to the data plane through :class:`DataplaneSink` only: install a Child SA
(from its ``ChildSaInstalled``), activate or retire its outbound half, remove it, move its
endpoints (MOBIKE), send NAT keepalives, and read counters. Updates are ordered; a
:meth:`~DataplaneSink.barrier` calls back once every update sent before it is applied (with
fresh counters), which is how IKE messages on our own sockets wait for the SAs they announce.
A sink that :attr:`~DataplaneSink.owns_nat_t` also carries IKE on the NAT-T port
(:meth:`~DataplaneSink.send_ike`), in order with the updates; what arrives there comes back
through the :class:`DataplaneListener` (the runtime), as do the data plane's lifetime signals.

Sinks: ``daemon.dpsink.ProcessDataplane`` (the data-plane process, the default when
``settings.dataplane`` is on), :class:`NullDataplane` (``dataplane = false``: SAs are only
negotiated and recorded), and a recording fake in ``tests/support``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pyipsec.config.model import Settings
from pyipsec.ike.events import ChildSaInstalled, ChildSaSignal
from pyipsec.net.addr import Datagram, Endpoint

__all__ = ["CounterMap", "DataplaneListener", "DataplaneSink", "NullDataplane", "SinkFactory"]

#: traffic counters per Child SA, by inbound SPI (``packets_in``, ``bytes_out``, drops, …)
CounterMap = dict[bytes, dict[str, int]]


class DataplaneListener(Protocol):
    """What the data plane reports back (the runtime implements it)."""

    def datagram_received(self, d: Datagram) -> None:
        """An IKE message arrived on the NAT-T port, which the data plane owns."""

    def signal_received(self, signal: ChildSaSignal) -> None:
        """A Child SA reached a volume lifetime or runs out of sequence numbers."""

    def stop(self) -> None:
        """The data plane is gone: the daemon stops."""


class DataplaneSink(Protocol):
    #: whether IKE on the NAT-T port goes through :meth:`send_ike` (else through our own socket)
    owns_nat_t: bool

    def install(self, event: ChildSaInstalled) -> None: ...

    def activate(self, spi_in: bytes) -> None: ...

    def retire(self, spi_in: bytes) -> None:
        """Stop sending on the child, keep receiving on it (until :meth:`remove`)."""

    def remove(self, spi_in: bytes) -> None: ...

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None: ...

    def counters(self) -> CounterMap:
        """The counters last received (no waiting)."""

    def totals(self) -> dict[str, int]:
        """The data plane's global counters last received: drops that belong to no SA by
        reason (unknown_spi, no_policy, malformed, …), traffic and errors of the loop, and the
        traffic and drops of every Child SA since start, removed ones included (replay_drops,
        integrity_failures, policy_drops, pad_errors, esp_malformed, packets_in, …)."""

    def barrier(self, done: Callable[[CounterMap], None], *, counters: bool = True) -> None:
        """Call ``done`` with fresh counters once every update sent so far is applied (at once
        when nothing is pending). It may never be called if the data plane does not answer:
        callers bound the wait. Without ``counters`` the data plane only confirms (it does not
        list every SA's counters: with a thousand SAs that list is the costly part) and
        ``done`` gets the last counters known."""

    def send_ike(self, d: Datagram) -> None: ...

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None: ...

    def close(self) -> None: ...


#: builds the sink when the runtime starts (with the settings and whom to report to)
SinkFactory = Callable[[Settings, DataplaneListener], DataplaneSink]


class NullDataplane:
    """No data plane (``dataplane = false``): Child SAs are negotiated and only recorded."""

    owns_nat_t = False

    def __init__(self) -> None:
        self.installed: dict[bytes, ChildSaInstalled] = {}

    def install(self, event: ChildSaInstalled) -> None:
        self.installed[event.spec.spi_in] = event

    def activate(self, spi_in: bytes) -> None:
        pass

    def retire(self, spi_in: bytes) -> None:
        pass

    def remove(self, spi_in: bytes) -> None:
        self.installed.pop(spi_in, None)

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None:
        pass

    def counters(self) -> CounterMap:
        return {}

    def totals(self) -> dict[str, int]:
        return {}

    def barrier(self, done: Callable[[CounterMap], None], *, counters: bool = True) -> None:
        done({})  # nothing to wait for

    def send_ike(self, d: Datagram) -> None:
        raise AssertionError("without a data plane our own socket carries the NAT-T port")

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None:
        pass  # no ESP, so no NAT mapping to keep

    def close(self) -> None:
        pass
