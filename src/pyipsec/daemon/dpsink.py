"""The runtime's side of the data-plane process: Child SA events in, IKE datagrams out.

Theory of operation
-------------------
:class:`ProcessDataplane` is the production :class:`~pyipsec.daemon.sink.DataplaneSink`. It
wraps :class:`~pyipsec.dataplane.channel.DataplaneHandle`: sends the
:class:`~pyipsec.childsa.ChildSaSpec` of each ``ChildSaInstalled`` as it is (the spec is
shared by both sides; the data plane never sees an IKE type), forwards IKE messages for the
NAT-T port (which the data plane owns), and turns
the data plane's events — IKE datagrams, lifetime signals, its exit — into calls on the
:class:`~pyipsec.daemon.sink.DataplaneListener` (the runtime). The channel's fd is watched by
the running asyncio loop.

Barriers: the channel is ordered and the data plane answers each counter request after the
messages ahead of it (installs, activations), so the answer to a request sent now proves them
applied; callbacks wait in a queue, answered in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from pyipsec.config.model import Settings
from pyipsec.daemon.sink import CounterMap, DataplaneListener, DataplaneSink, NullDataplane
from pyipsec.dataplane.channel import (
    Acquire,
    Counters,
    DataplaneClosed,
    DataplaneHandle,
    IkeDatagram,
    SaSignal,
)
from pyipsec.esp.processor import SA_COUNTERS
from pyipsec.ike.events import ChildSaInstalled, ChildSaSignal, SignalKind
from pyipsec.net.addr import Datagram, Endpoint

__all__ = ["ProcessDataplane", "start_dataplane"]

_log = logging.getLogger("pyipsec.daemon")


def start_dataplane(settings: Settings, listener: DataplaneListener) -> DataplaneSink:
    """The runtime's default sink: the data-plane process, or none with ``dataplane = false``."""
    if not settings.dataplane:
        return NullDataplane()
    return ProcessDataplane.spawn(settings, listener)


class ProcessDataplane:
    owns_nat_t = True  # the data plane binds the NAT-T port (ESP-in-UDP and IKE share it)

    def __init__(self, handle: DataplaneHandle, listener: DataplaneListener) -> None:
        self.handle = handle
        self._listener = listener
        self._last: CounterMap = {}
        self._totals: dict[str, int] = {}  # the data plane's global counters, last received
        # one callback per RequestCounters sent; the data plane answers each with one Counters, in order
        self._requests: deque[tuple[bool, Callable[[CounterMap], None]]] = deque()  # (with SAs?, …)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(handle.fileno(), self.readable)

    @classmethod
    def spawn(cls, settings: Settings, listener: DataplaneListener) -> ProcessDataplane:
        handle = DataplaneHandle.spawn(
            tun_name=settings.tun,
            nat_t_port=settings.port_nat_t,
            mtu=settings.mtu,
            listen=settings.listen,
            table=settings.routing_table,
            log_level=str(settings.log_level),
            log_format=str(settings.log_format),
        )
        _log.info("data plane up: %s, MTU %d, pid %d", handle.tun_name, handle.mtu, handle.pid)
        return cls(handle, listener)

    def readable(self) -> None:
        for ev in self.handle.read_events():
            if isinstance(ev, IkeDatagram):
                self._listener.datagram_received(Datagram(ev.local, ev.remote, ev.payload))
            elif isinstance(ev, Counters):
                full, done = self._requests.popleft() if self._requests else (True, None)
                if full:  # (a bare barrier's answer carries no counters: keep the last ones)
                    self._last = {s.spi_in: {f: getattr(s, f) for f in SA_COUNTERS} for s in ev.sas}
                    self._totals = dict(ev.totals)
                if done is not None:
                    done(self._last)
            elif isinstance(ev, SaSignal):
                self._signal(ev)
            elif isinstance(ev, Acquire):
                _log.debug("no policy for %s -> %s (protocol %d)", ev.src, ev.dst, ev.protocol)
            elif isinstance(ev, DataplaneClosed):
                _log.error("the data plane exited (status %s): stopping", ev.returncode)
                self._listener.stop()
                return

    def _signal(self, ev: SaSignal) -> None:
        try:
            kind = SignalKind(ev.kind)
        except ValueError:
            _log.warning("unknown data-plane signal %r for SPI %s", ev.kind, ev.spi.hex())
            return
        self._listener.signal_received(ChildSaSignal(ev.spi, kind))

    # -- DataplaneSink -----------------------------------------------------------------------------

    def install(self, event: ChildSaInstalled) -> None:
        self.handle.install_child(event.spec)

    def activate(self, spi_in: bytes) -> None:
        self.handle.activate_outbound(spi_in)

    def retire(self, spi_in: bytes) -> None:
        self.handle.deactivate_outbound(spi_in)

    def remove(self, spi_in: bytes) -> None:
        self.handle.remove_child(spi_in)

    def update_endpoints(self, spi_in: bytes, local: Endpoint, remote: Endpoint, encap: bool) -> None:
        self.handle.update_endpoints(spi_in, local, remote, encap)

    def counters(self) -> CounterMap:
        return self._last

    def totals(self) -> dict[str, int]:
        return dict(self._totals)

    def barrier(self, done: Callable[[CounterMap], None], *, counters: bool = True) -> None:
        self._requests.append((counters, done))
        self.handle.request_counters(sas=counters)

    def send_ike(self, d: Datagram) -> None:
        self.handle.send_ike(d.local, d.remote, d.payload)

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None:
        self.handle.send_keepalive(local, remote)

    def close(self) -> None:
        self._loop.remove_reader(self.handle.fileno())
        self.handle.close()
