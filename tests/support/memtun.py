"""A TUN device in memory (wireguard-go's ``tun/tuntest`` is the model).

:class:`MemoryTun` implements ``pyipsec.io.tun.TunDevice`` over a ``SOCK_SEQPACKET`` socket
pair, so each read and write is one whole IP packet and the data-plane loop can ``epoll`` it
like the real device: the loop holds one end (non-blocking, as a TUN fd is), the test the
other — :meth:`MemoryTun.inject` is a packet the host sends into the tunnel,
:meth:`MemoryTun.receive` one the tunnel delivered to the host.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Sequence

from pyipsec.io.tun import BytesLike

__all__ = ["MemoryTun"]


class MemoryTun:
    def __init__(self, name: str = "mem0", *, vnet_hdr: bool = False) -> None:
        self.name = name
        self.vnet_hdr = vnet_hdr
        self._dev, self._host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._dev.setblocking(False)

    # -- the data plane's side (TunDevice) ------------------------------------------------------

    def fileno(self) -> int:
        return self._dev.fileno()

    def read_into(self, buf: memoryview) -> int:
        return self._dev.recv_into(buf)

    def write(self, packet: BytesLike) -> int:
        return self._dev.send(packet)

    def writev(self, parts: Sequence[BytesLike]) -> int:
        return os.writev(self._dev.fileno(), parts)

    def close(self) -> None:
        self._dev.close()
        self._host.close()

    # -- the host's side ------------------------------------------------------------------------

    def inject(self, packet: bytes) -> None:
        """The host sends ``packet`` into the tunnel."""
        self._host.send(packet)

    def receive(self, timeout: float = 5.0) -> bytes | None:
        """The next packet the tunnel delivered to the host (None: none within ``timeout``)."""
        ready, _, _ = select.select([self._host], [], [], timeout)
        return self._host.recv(65536) if ready else None
