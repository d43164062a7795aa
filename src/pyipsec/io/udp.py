"""UDP sockets for IKE (500) and NAT-T (4500), IPv4 and IPv6, on an asyncio loop.

Theory of operation: one socket per (family, port), bound to the wildcard address (or to
configured addresses). IP_PKTINFO / IPV6_RECVPKTINFO tell us on which local address each
datagram arrived, which the engine needs for NAT detection and for replying from the same
address; on send the same control message picks the source address. On the NAT-T port the
non-ESP marker is stripped from IKE messages and added to ours (``net.udp_encap``);
ESP-in-UDP packets and keepalives go to separate callbacks.

The sockets get a receive buffer of :data:`RCVBUF` (as root past ``net.core.rmem_max``): a
gateway's clients come and go in bursts (a thousand DELETEs when a site's link returns, a
thousand IKE_SA_INITs when it comes back), and what the kernel's default buffer (about 200 KB,
a few hundred small datagrams) cannot hold while the event loop is busy is dropped and costs
the client a retransmission timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from pyipsec.net.addr import Datagram, Endpoint, IPAddress
from pyipsec.net.udp_encap import Kind, classify, frame_ike

__all__ = ["UdpPorts", "UdpStats"]

_log = logging.getLogger(__name__)

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; typeshed lacks the name
_IN_PKTINFO = struct.Struct("=I4s4s")  # ifindex, spec_dst, addr
_IN6_PKTINFO = struct.Struct("=16sI")  # addr, ifindex
_RECV_SIZE = 65535
RCVBUF = 4 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_CMSG_SPACE = 256


@dataclass
class UdpStats:
    received: int = 0
    sent: int = 0
    send_errors: int = 0
    esp: int = 0
    keepalives: int = 0
    invalid: int = 0


def _receive_buffer(sock: socket.socket) -> None:
    """Ask for :data:`RCVBUF` bytes of receive buffer (forced as root, else up to rmem_max)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)


class _Port:
    def __init__(self, sock: socket.socket, family: int, port: int) -> None:
        self.sock = sock
        self.family = family
        self.port = port


class UdpPorts:
    """All IKE sockets of one daemon."""

    def __init__(
        self,
        on_ike: Callable[[Datagram], None],
        *,
        port: int = 500,
        nat_t_port: int = 4500,
        listen: Iterable[IPAddress] = (IPv4Address(0), IPv6Address(0)),
        bind_nat_t: bool = True,
    ) -> None:
        self._bind_nat_t = bind_nat_t  # False when the data plane owns the NAT-T port
        self._on_ike = on_ike
        self.port = port
        self.nat_t_port = nat_t_port
        self._listen = tuple(listen)
        self._ports: list[_Port] = []
        self.stats = UdpStats()
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Bind the sockets and watch them on ``loop`` (default: the running loop)."""
        self._loop = loop = loop or asyncio.get_running_loop()
        for addr in self._listen:
            for port in (self.port, self.nat_t_port) if self._bind_nat_t else (self.port,):
                sock = self._bind(addr, port)
                if sock is None:
                    continue
                p = _Port(sock, sock.family, port)
                self._ports.append(p)
                loop.add_reader(sock.fileno(), self._readable, p)
        if not self._ports:
            raise OSError("could not bind any IKE socket")

    def _bind(self, addr: IPAddress, port: int) -> socket.socket | None:
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _receive_buffer(sock)
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.bind((str(addr), port))
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                _log.info("IPv6 unavailable, not listening on [%s]:%d", addr, port)
                return None
            raise OSError(exc.errno, f"cannot bind UDP {addr} port {port}: {exc.strerror}") from None
        sock.setblocking(False)
        _log.info("listening on %s", Endpoint(addr, port))
        return sock

    def close(self) -> None:
        for p in self._ports:
            if self._loop is not None:
                self._loop.remove_reader(p.sock.fileno())
            p.sock.close()
        self._ports.clear()

    # -- receive ----------------------------------------------------------------------------------

    def _readable(self, p: _Port) -> None:
        for _ in range(64):  # bounded batch per wake-up
            try:
                data, ancdata, _flags, addr = p.sock.recvmsg(_RECV_SIZE, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                _log.debug("recvmsg on port %d: %s", p.port, exc)
                return
            self.stats.received += 1
            local_ip = self._local_ip(p, ancdata)
            remote = Endpoint(ip_address(addr[0].split("%")[0]), addr[1])
            local = Endpoint(local_ip, p.port)
            if p.port == self.nat_t_port:
                kind = classify(data)
                if kind is Kind.IKE:
                    data = data[4:]
                elif kind is Kind.KEEPALIVE:
                    self.stats.keepalives += 1
                    continue
                elif kind is Kind.ESP:  # only without a data plane: counted, not processed
                    self.stats.esp += 1
                    continue
                else:
                    self.stats.invalid += 1
                    continue
            self._on_ike(Datagram(local, remote, data))

    @staticmethod
    def _local_ip(p: _Port, ancdata: list[tuple[int, int, bytes]]) -> IPAddress:
        for level, kind, data in ancdata:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
                _ifindex, _spec, addr = _IN_PKTINFO.unpack_from(data)
                return IPv4Address(addr)
            if (
                level == socket.IPPROTO_IPV6
                and kind == socket.IPV6_PKTINFO
                and len(data) >= _IN6_PKTINFO.size
            ):
                addr6, _ifindex6 = _IN6_PKTINFO.unpack_from(data)
                return IPv6Address(addr6)
        bound = p.sock.getsockname()[0]
        return ip_address(bound)

    # -- send -------------------------------------------------------------------------------------

    def send(self, d: Datagram) -> None:
        family = socket.AF_INET if d.remote.ip.version == 4 else socket.AF_INET6
        port = next((p for p in self._ports if p.family == family and p.port == d.local.port), None)
        if port is None:
            port = next((p for p in self._ports if p.family == family), None)
        if port is None:
            self.stats.send_errors += 1
            _log.warning("no socket to send from %s to %s", d.local, d.remote)
            return
        payload = frame_ike(d.payload) if port.port == self.nat_t_port else d.payload
        self._sendmsg(port, payload, d.local.ip, d.remote)

    def send_raw(self, local: Endpoint, remote: Endpoint, payload: bytes) -> None:
        """Send bytes as they are (ESP-in-UDP, keepalives) from the NAT-T socket."""
        family = socket.AF_INET if remote.ip.version == 4 else socket.AF_INET6
        port = next((p for p in self._ports if p.family == family and p.port == local.port), None)
        if port is not None:
            self._sendmsg(port, payload, local.ip, remote)

    def _sendmsg(self, port: _Port, payload: bytes, src: IPAddress, dst: Endpoint) -> None:
        cmsg: list[tuple[int, int, bytes]] = []
        if not src.is_unspecified:
            if src.version == 4:
                cmsg.append((socket.IPPROTO_IP, IP_PKTINFO, _IN_PKTINFO.pack(0, src.packed, bytes(4))))
            else:
                cmsg.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _IN6_PKTINFO.pack(src.packed, 0)))
        try:
            port.sock.sendmsg([payload], cmsg, 0, (str(dst.ip), dst.port))
            self.stats.sent += 1
        except OSError as exc:
            self.stats.send_errors += 1
            _log.info("sending to %s failed: %s", dst, exc)
