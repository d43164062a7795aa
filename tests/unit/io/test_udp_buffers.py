"""The IKE sockets hold a burst of datagrams (issue 13: a thousand clients deleting their SAs at
once overflowed the kernel's default receive buffer, and each dropped DELETE cost its client a
retransmission timeout)."""

from __future__ import annotations

import asyncio
import os
import socket
from ipaddress import IPv4Address
from pathlib import Path

from pyipsec.io.udp import RCVBUF, UdpPorts
from pyipsec.net.addr import Datagram


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_ike_sockets_ask_for_a_large_receive_buffer() -> None:
    async def main() -> list[int]:
        got: list[Datagram] = []
        ports = UdpPorts(
            got.append, port=_free_port(), nat_t_port=_free_port(), listen=(IPv4Address("127.0.0.1"),)
        )
        ports.open()
        try:
            return [p.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for p in ports._ports]
        finally:
            ports.close()

    sizes = asyncio.run(main())
    assert len(sizes) == 2  # IKE and NAT-T
    # as root the size is forced; otherwise the kernel caps it at rmem_max
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    wanted = RCVBUF if os.geteuid() == 0 else min(RCVBUF, rmem_max)
    assert all(size >= wanted for size in sizes), (sizes, wanted)  # (Linux reports twice the request)
