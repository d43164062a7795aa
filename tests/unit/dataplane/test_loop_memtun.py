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
from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.dataplane.loop import DataplaneLoop, UdpSockets
from pyipsec.dataplane.messages import Counters, RemoveChild, RequestCounters, decode_event, encode_control
from pyipsec.esp.processor import EspProcessor
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


def counters_of(side: Side, *, sas: bool = True) -> Counters:
    """Ask a running loop for its counters over the channel, as the daemon does."""
    side.control.settimeout(10)
    side.control.send(encode_control(RequestCounters(sas)))
    sas = []
    while True:
        ev, last = decode_event(side.control.recv(1 << 20))
        if isinstance(ev, Counters):
            sas.extend(ev.sas)
            if last:
                return Counters(tuple(sas), ev.totals)


def test_drops_of_a_removed_sa_stay_in_the_totals(pair: tuple[Side, Side]) -> None:
    a, b = pair
    # a second sender with a's keys towards b's inbound SA 0x2000, to replay and forge its ESP
    forger = EspProcessor(rng=OS_RANDOM)
    forger.install(_policy(spi_in=0x1000, spi_out=0x2000, key_in=KEY_BA, key_out=KEY_AB, local=a, remote=b,
                           local_ts=NET_A, remote_ts=NET_B))  # fmt: skip
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packets = [ipv4_udp(f"packet {n}".encode(), src="10.1.0.1", dst="10.2.0.1") for n in range(3)]
    esp = []
    for packet in packets:
        sealed = forger.outbound(packet)
        assert sealed is not None
        esp.append(sealed[1])
    try:
        udp.sendto(esp[0], (str(LO), b.port))
        assert b.tun.receive() == packets[0]
        udp.sendto(esp[0], (str(LO), b.port))  # a replay
        udp.sendto(esp[1][:-1] + bytes([esp[1][-1] ^ 1]), (str(LO), b.port))  # a bad ICV
        udp.sendto(esp[2], (str(LO), b.port))
        assert b.tun.receive() == packets[2]  # so the two before it were handled
    finally:
        udp.close()
    drops = {"replay_drops": 1, "integrity_failures": 1, "packets_in": 2}
    live = counters_of(b)
    [sa] = [s for s in live.sas if s.spi_in == (0x2000).to_bytes(4, "big")]
    assert (sa.replay_drops, sa.integrity_failures, sa.packets_in) == (1, 1, 2)
    assert {k: live.total(k) for k in drops} == drops
    b.control.send(encode_control(RemoveChild((0x2000).to_bytes(4, "big"))))
    gone = counters_of(b)
    assert gone.sas == ()  # b's only SA is removed ...
    assert {k: gone.total(k) for k in drops} == drops  # ... and its drops still count
    assert gone.total("esp_malformed") == 0 and gone.total("unknown_spi") == 0


def test_a_bare_barrier_is_answered_without_listing_the_sas(pair: tuple[Side, Side]) -> None:
    """The daemon's barrier before an IKE_AUTH response (issue 13): one empty answer, where a full
    one lists every SA (a thousand on a gateway, for every client that connects)."""
    a, _ = pair
    assert len(counters_of(a).sas) == 1
    bare = counters_of(a, sas=False)
    assert bare.sas == () and bare.totals == ()
