"""Two data-plane loops back to back over loopback UDP, each with a memory TUN device.

The loops run as in the data-plane process (``DataplaneLoop.run``: epoll over the TUN fd, the
NAT-T socket and the channel) on threads; the memory TUN (``tests/support/memtun.py``) stands
for the kernel device, so a packet the host on one side sends comes out of the other side's
device — encrypted, sent as ESP in UDP and decrypted on the way.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from pyipsec.childsa import ChildSaSpec, EspMode
from pyipsec.dataplane.loop import DataplaneLoop, UdpSockets
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.support.memtun import MemoryTun

from ._packets import ipv4_udp

LO = ip_address("127.0.0.1")
NET_A = TrafficSelector.from_network("10.1.0.0/16")
NET_B = TrafficSelector.from_network("10.2.0.0/16")
KEY_AB, KEY_BA = bytes(range(36)), bytes(range(100, 136))  # AES-256-GCM key + salt per direction


class Side:
    def __init__(self) -> None:
        self.tun = MemoryTun()
        self.channel, self.control = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sockets = UdpSockets(0, [LO], gso=False)
        self.port = self.sockets.udp[4].getsockname()[1]
        self.loop = DataplaneLoop(
            tun=self.tun, channel=self.channel, sockets=self.sockets, netconf=None, mtu=1400, tso=False
        )
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def stop(self) -> None:
        self.control.close()  # EOF on the channel ends the loop
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        self.channel.close()
        self.sockets.close()
        self.tun.close()


def _policy(*, spi_in: int, spi_out: int, key_in: bytes, key_out: bytes, local: Side, remote: Side,
            local_ts: TrafficSelector, remote_ts: TrafficSelector) -> ChildSaSpec:  # fmt: skip
    return ChildSaSpec(
        spi_in=spi_in.to_bytes(4, "big"),
        spi_out=spi_out.to_bytes(4, "big"),
        encr=EncrId.ENCR_AES_GCM_16,
        encr_key_bits=256,
        integ=IntegId.NONE,
        encr_key_in=key_in,
        integ_key_in=b"",
        encr_key_out=key_out,
        integ_key_out=b"",
        esn=False,
        mode=EspMode.TUNNEL,
        encap=True,
        replay_window=1024,
        local_ts=(local_ts,),
        remote_ts=(remote_ts,),
        local=Endpoint(LO, local.port),
        remote=Endpoint(LO, remote.port),
    )


@pytest.fixture
def pair() -> Iterator[tuple[Side, Side]]:
    a, b = Side(), Side()
    a.loop.install(_policy(spi_in=0x1000, spi_out=0x2000, key_in=KEY_BA, key_out=KEY_AB, local=a, remote=b,
                           local_ts=NET_A, remote_ts=NET_B))  # fmt: skip
    b.loop.install(_policy(spi_in=0x2000, spi_out=0x1000, key_in=KEY_AB, key_out=KEY_BA, local=b, remote=a,
                           local_ts=NET_B, remote_ts=NET_A))  # fmt: skip
    a.thread.start()
    b.thread.start()
    yield a, b
    a.stop()
    b.stop()


def test_a_packet_crosses_the_tunnel_both_ways(pair: tuple[Side, Side]) -> None:
    a, b = pair
    there = ipv4_udp(b"hello through the tunnel", src="10.1.0.1", dst="10.2.0.1")
    a.tun.inject(there)
    assert b.tun.receive() == there
    back = ipv4_udp(b"and back", src="10.2.0.1", dst="10.1.0.1", sport=2000, dport=1000)
    b.tun.inject(back)
    assert a.tun.receive() == back


def test_a_packet_without_a_policy_stays_out_of_the_tunnel(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.tun.inject(ipv4_udp(b"nowhere", src="10.1.0.1", dst="10.9.0.1"))
    a.tun.inject(ipv4_udp(b"somewhere", src="10.1.0.1", dst="10.2.0.7"))
    assert b.tun.receive() == ipv4_udp(b"somewhere", src="10.1.0.1", dst="10.2.0.7")  # only this one
