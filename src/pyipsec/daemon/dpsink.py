"""The runtime's side of the data-plane process: Child SA events in, IKE datagrams out.

Wraps :class:`~pyipsec.dataplane.channel.DataplaneHandle`: sends the
:class:`~pyipsec.childsa.ChildSaSpec` of each ``ChildSaInstalled`` to the data plane as it is
(the spec is shared by both sides; the data plane never sees an IKE type), forwards IKE
messages for the NAT-T port (which the data plane owns), and turns the data plane's events
back into calls on the runtime.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from pyipsec.config.model import Settings
from pyipsec.dataplane.channel import (
    Acquire,
    Counters,
    DataplaneClosed,
    DataplaneHandle,
    IkeDatagram,
    SaSignal,
)
from pyipsec.ike.events import ChildSaInstalled
from pyipsec.net.addr import Datagram, Endpoint

__all__ = ["ProcessDataplane"]

_log = logging.getLogger("pyipsec.daemon")

_COUNTER_FIELDS = (
    "packets_in",
    "bytes_in",
    "packets_out",
    "bytes_out",
    "replay_drops",
    "integrity_failures",
    "policy_drops",
    "pad_errors",
    "malformed",
)


class ProcessDataplane:
    def __init__(
        self,
        handle: DataplaneHandle,
        *,
        on_ike: Callable[[Datagram], None],
        on_signal: Callable[[bytes, str], None],
        on_exit: Callable[[], None],
    ) -> None:
        self.handle = handle
        self._on_ike = on_ike
        self._on_signal = on_signal
        self._on_exit = on_exit
        self._last: dict[bytes, dict[str, int]] = {}
        # one future per RequestCounters sent; the data plane answers each with one Counters, in order
        self._requests: deque[asyncio.Future[dict[bytes, dict[str, int]]]] = deque()

    @classmethod
    def spawn(
        cls,
        settings: Settings,
        *,
        on_ike: Callable[[Datagram], None],
        on_signal: Callable[[bytes, str], None],
        on_exit: Callable[[], None],
    ) -> ProcessDataplane:
        handle = DataplaneHandle.spawn(
            tun_name=settings.tun,
            nat_t_port=settings.port_nat_t,
            mtu=settings.mtu,
            listen=settings.listen,
            table=settings.routing_table,
            log_level=str(settings.log_level),
        )
        _log.info("data plane up: %s, MTU %d, pid %d", handle.tun_name, handle.mtu, handle.pid)
        return cls(handle, on_ike=on_ike, on_signal=on_signal, on_exit=on_exit)

    def fileno(self) -> int:
        return self.handle.fileno()

    def readable(self) -> None:
        for ev in self.handle.read_events():
            if isinstance(ev, IkeDatagram):
                self._on_ike(Datagram(ev.local, ev.remote, ev.payload))
            elif isinstance(ev, Counters):
                self._last = {s.spi_in: {f: getattr(s, f) for f in _COUNTER_FIELDS} for s in ev.sas}
                fut = self._requests.popleft() if self._requests else None
                if fut is not None and not fut.done():
                    fut.set_result(self._last)
            elif isinstance(ev, SaSignal):
                self._on_signal(ev.spi, ev.kind)
            elif isinstance(ev, Acquire):
                _log.debug("no policy for %s -> %s (protocol %d)", ev.src, ev.dst, ev.protocol)
            elif isinstance(ev, DataplaneClosed):
                _log.error("the data plane exited (status %s): stopping", ev.returncode)
                self._on_exit()
                return

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

    def counters(self) -> dict[bytes, dict[str, int]]:
        return self._last

    def _request(self) -> asyncio.Future[dict[bytes, dict[str, int]]]:
        fut: asyncio.Future[dict[bytes, dict[str, int]]] = asyncio.get_running_loop().create_future()
        self._requests.append(fut)
        self.handle.request_counters()
        return fut

    async def fetch_counters(self, timeout: float = 1.0) -> dict[bytes, dict[str, int]]:
        try:
            return await asyncio.wait_for(self._request(), timeout)
        except TimeoutError:
            return self._last

    def barrier(self) -> asyncio.Future[dict[bytes, dict[str, int]]]:
        """A future done once the data plane has handled everything sent to it before this call.

        The channel is ordered and the data plane answers each counter request after the
        messages ahead of it (installs, activations), so the answer to one sent now proves them
        applied.
        """
        return self._request()

    def send_ike(self, d: Datagram) -> None:
        self.handle.send_ike(d.local, d.remote, d.payload)

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None:
        self.handle.send_keepalive(local, remote)

    def close(self) -> None:
        self.handle.close()
