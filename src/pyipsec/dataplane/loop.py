"""The data-plane process's event loop: one ``select.epoll`` over TUN, UDP, raw ESP and the channel.

Theory of operation
-------------------
:class:`DataplaneLoop` owns the sockets and runs single-threaded (no asyncio, no threads):

* **TUN readable** → up to :data:`TUN_BUDGET` reads; each packet (or TSO super-segment, behind its
  virtio-net header) goes to the :class:`~.fastpath.Encapsulator`; the pending ESP run is flushed
  after the batch.
* **UDP (NAT-T port, IPv4 and IPv6 wildcard) readable** → ``recvmsg_into`` a 64 KB buffer; with
  ``UDP_GRO`` one call returns many ESP packets of one size. The ``0xFF`` keepalive is counted
  and dropped; a datagram starting with the 4-byte non-ESP marker is IKE and is forwarded to the
  control plane (marker stripped, local address from ``IP_PKTINFO``); all else is ESP for the
  :class:`~.fastpath.Decapsulator` (RFC 3948 §2).
* **Raw IP-protocol-50 sockets readable** → plain ESP, one packet per read (the IPv4 socket
  returns the IP header too, which is skipped).
* **Channel readable** → control messages: install/remove/activate children (SAD/SPD swap,
  routes through :mod:`pyipsec.io.netconf`), IKE datagrams to send from the NAT-T port, counter
  requests, shutdown. EOF on the channel means the control plane is gone: the loop ends.
* Once a second: sequence-number and lifetime signals go to the control plane.

Counters (:meth:`DataplaneLoop.counters`, on request): per child, and totals: the drops that
belong to no SA (``unknown_spi``, ``no_policy``, ``malformed``, …), the loop's own, and every
child's traffic and drops summed over live *and removed* children
(:meth:`~pyipsec.esp.processor.EspProcessor.sa_totals`: ``replay_drops``,
``integrity_failures``, ``policy_drops``, ``pad_errors``, ``esp_malformed``, ``packets_in``, …),
so a drop stays counted after its SA is gone.

Sends block when the socket buffer is full, which pushes back through the TUN queue onto the
senders instead of dropping. Nothing on the per-packet path logs.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from pyipsec.childsa import ChildSaSpec
from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.dataplane.fastpath import Decapsulator, Encapsulator
from pyipsec.dataplane.messages import (
    Acquire,
    ActivateOutbound,
    ControlMessage,
    Counters,
    DataplaneError,
    IkeDatagram,
    InstallChild,
    RemoveChild,
    RequestCounters,
    SaCounters,
    SaSignal,
    SendIke,
    SendKeepalive,
    UpdateEndpoints,
    decode_control,
    encode_counters,
    encode_event,
)
from pyipsec.esp.processor import EspProcessor, child_counters
from pyipsec.esp.sad import Child, Peer
from pyipsec.esp.spd import flow_of
from pyipsec.io.netconf import NetConfigurator
from pyipsec.io.tun import TunDevice
from pyipsec.net.addr import Endpoint, IPAddress
from pyipsec.net.udp_encap import NON_ESP_MARKER

__all__ = ["SOL_UDP", "TUN_BUDGET", "UDP_GRO", "UDP_SEGMENT", "DataplaneLoop", "Route", "UdpSockets"]

_log = logging.getLogger(__name__)

SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
IP_PMTUDISC_DONT = 0
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
TUN_BUDGET = 64
UDP_BUDGET = 64
_IN_PKTINFO = struct.Struct("=I4s4s")
_IN6_PKTINFO = struct.Struct("=16sI")
_GRO = struct.Struct("=i")
_SEG = struct.Struct("=H")
_SOCKBUF = 8 * 1024 * 1024
_RECV = 65535 + 64
_ACQUIRE_INTERVAL = 1.0


@dataclass(slots=True)
class Route:
    """Where a child's ESP goes: a socket, the peer's address, the source-address cmsg."""

    sock: socket.socket
    addr: tuple[str, int] | tuple[str, int, int, int]
    cmsg: list[tuple[int, int, bytes]]
    gso: bool


class UdpSockets:
    """The NAT-T sockets (one per family) and the raw ESP sockets."""

    def __init__(self, port: int, listen: Sequence[IPAddress], *, gso: bool) -> None:
        self.port = port
        self.udp: dict[int, socket.socket] = {}
        self.raw: dict[int, socket.socket] = {}
        self.gso = gso
        self.gro = gso
        try:
            for addr in listen:
                self._bind_udp(addr)
            if not self.udp:
                raise DataplaneError(f"could not bind UDP port {port}")
            for version in sorted(self.udp):
                self._open_raw(version)
        except BaseException:
            self.close()
            raise

    def _bind_udp(self, addr: IPAddress) -> None:
        family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_DONT)
            _bufs(sock)
            sock.bind((str(addr), self.port))
        except OSError as exc:
            sock.close()
            if family == socket.AF_INET6 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                _log.info("IPv6 unavailable, not listening on [%s]:%d", addr, self.port)
                return
            raise DataplaneError(f"cannot bind UDP {addr} port {self.port}: {exc.strerror}") from None
        if self.gro:
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1)
            except OSError:
                self.gro = self.gso = False
        self.udp[addr.version] = sock

    def _open_raw(self, version: int) -> None:
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        try:
            sock = socket.socket(family, socket.SOCK_RAW, 50)
        except OSError as exc:
            _log.warning("no raw ESP socket for IPv%d: %s", version, exc)
            return
        _bufs(sock)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_DONT)
        self.raw[version] = sock

    def close(self) -> None:
        for s in (*self.udp.values(), *self.raw.values()):
            s.close()
        self.udp.clear()
        self.raw.clear()


def _bufs(sock: socket.socket) -> None:
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, _SOCKBUF)
        except OSError:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, _SOCKBUF)


def _pktinfo(ip: IPAddress) -> list[tuple[int, int, bytes]]:
    if ip.is_unspecified:
        return []
    if ip.version == 4:
        return [(socket.IPPROTO_IP, IP_PKTINFO, _IN_PKTINFO.pack(0, ip.packed, bytes(4)))]
    return [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _IN6_PKTINFO.pack(ip.packed, 0))]


def _sockaddr(ep: Endpoint) -> tuple[str, int] | tuple[str, int, int, int]:
    return (str(ep.ip), ep.port) if ep.ip.version == 4 else (str(ep.ip), ep.port, 0, 0)


# how often lifetimes and sequence numbers are checked: a soft volume limit must be seen
# before the hard one (10 % later by default) even at high rates
TICK = 0.25

#: a child's counter whose name is taken among the totals by a drop of no SA
_SA_TOTAL_NAMES = {"malformed": "esp_malformed"}


class DataplaneLoop:
    """The epoll loop of the data-plane process (module docstring)."""

    def __init__(
        self,
        *,
        tun: TunDevice,
        channel: socket.socket,
        sockets: UdpSockets,
        netconf: NetConfigurator | None,
        mtu: int,
        tso: bool,
        coalesce: bool = True,
    ) -> None:
        self.tun = tun
        self.channel = channel
        self.sockets = sockets
        self.netconf = netconf
        self.mtu = mtu
        self.tso = tso
        self.processor = EspProcessor(rng=OS_RANDOM)
        self.routes: dict[int, Route] = {}
        self.stats: dict[str, int] = {
            "keepalives": 0,
            "ike_in": 0,
            "ike_out": 0,
            "send_errors": 0,
            "tun_write_errors": 0,
            "channel_drops": 0,
        }
        mss4, mss6 = mtu - 40, mtu - 60
        self.encap: Encapsulator[Route] = Encapsulator(
            self.processor,
            self._route_of,
            self._send,
            batchable=_batchable,
            on_no_policy=self._no_policy,
            max_mss4=mss4,
            max_mss6=mss6,
        )
        self.decap = Decapsulator(
            self.processor,
            self._tun_write,
            vnet_hdr=tun.vnet_hdr,
            coalesce=coalesce,
            on_other=self._non_esp,
            max_mss4=mss4,
            max_mss6=mss6,
        )
        self._rbuf = bytearray(_RECV + 64)
        self._rmv = memoryview(self._rbuf)
        self._running = False
        self._cur_anc: list[tuple[int, int, bytes]] = []
        self._cur_addr: tuple[str, int] | tuple[str, int, int, int] | None = None
        self._acquired: dict[tuple[int, int], float] = {}
        self._tun_fd = tun.fileno()
        self._tun_read = functools.partial(os.readv, self._tun_fd)

    # --- sending -----------------------------------------------------------------------------

    def _route_of(self, child: Child) -> Route | None:
        return self.routes.get(child.key)

    def _send(self, route: Route, data: memoryview, seg: int, count: int) -> None:
        anc = route.cmsg
        if count > 1:
            anc = [*anc, (SOL_UDP, UDP_SEGMENT, _SEG.pack(seg))]
        try:
            route.sock.sendmsg((data,), anc, 0, route.addr)
        except OSError as exc:
            if route.cmsg and exc.errno in (errno.EINVAL, errno.EADDRNOTAVAIL):
                # our address from IKE is not on this host (any more): let routing choose
                route.cmsg = []
                self._send(route, data, seg, count)
                return
            if count > 1 and exc.errno in (errno.EIO, errno.EINVAL, errno.EOPNOTSUPP):
                route.gso = False
                for off in range(0, len(data), seg):
                    self._send(route, data[off : off + seg], seg, 1)
                return
            self.stats["send_errors"] += 1

    def _tun_write(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        try:
            os.writev(self._tun_fd, parts)
        except OSError:
            self.stats["tun_write_errors"] += 1

    def _notify(self, data: bytes) -> None:
        try:
            self.channel.send(data, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            self.stats["channel_drops"] += 1
        except OSError:
            self._running = False

    # --- non-ESP on the NAT-T port --------------------------------------------------------------

    def _non_esp(self, segment: memoryview) -> None:
        if len(segment) == 1:
            self.stats["keepalives"] += 1
            return
        local_ip: IPAddress | None = None
        for level, kind, data in self._cur_anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                local_ip = IPv4Address(_IN_PKTINFO.unpack_from(data)[2])
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                local_ip = IPv6Address(_IN6_PKTINFO.unpack_from(data)[0])
        addr = self._cur_addr
        if len(segment) < 4 or local_ip is None or addr is None:
            self.processor.counters.malformed += 1
            return
        self.stats["ike_in"] += 1
        remote = Endpoint(ip_address(addr[0].split("%")[0]), addr[1])
        local = Endpoint(local_ip, self.sockets.port)
        self._notify(encode_event(IkeDatagram(local, remote, bytes(segment[4:]))))

    # --- readers -----------------------------------------------------------------------------

    def _on_tun(self) -> None:
        self.encap.drain(self._tun_read, vnet_hdr=self.tun.vnet_hdr, budget=TUN_BUDGET)

    def _on_udp(self, sock: socket.socket, version: int) -> None:
        mv = self._rmv
        decap = self.decap
        recv = sock.recvmsg_into
        for _ in range(UDP_BUDGET):
            try:
                n, anc, _flags, addr = recv((mv,), 256, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                _log.debug("UDP receive: %s", exc)
                break
            seg = 0
            for level, kind, data in anc:
                if kind == UDP_GRO and level == SOL_UDP:
                    seg = _GRO.unpack_from(data)[0]
            if n == 0:
                continue
            # where it came from and to: decoded only if a non-ESP segment needs it (IKE)
            self._cur_anc = anc
            self._cur_addr = addr
            decap.datagram(mv[:n], seg)
        decap.flush()

    def _on_raw(self, sock: socket.socket, version: int) -> None:
        mv = self._rmv
        decap = self.decap
        for _ in range(UDP_BUDGET):
            try:
                n = sock.recv_into(mv, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if version == 4:
                if n < 20:
                    continue
                ihl = (mv[0] & 15) * 4
                esp = mv[ihl:n]
            else:
                esp = mv[:n]
            if len(esp) < 8 or _u32(esp) == 0:
                self.processor.counters.malformed += 1
                continue
            decap.datagram(esp, 0)
        decap.flush()

    def _on_channel(self) -> None:
        while True:
            try:
                data = self.channel.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                _log.info("control channel closed")
                self._running = False
                return
            try:
                msg = decode_control(data)
            except DataplaneError as exc:
                _log.warning("%s", exc)
                continue
            try:
                self.handle(msg)
            except (ValueError, DataplaneError) as exc:
                _log.warning("%s failed: %s", type(msg).__name__, exc)

    # --- control -----------------------------------------------------------------------------

    def handle(self, msg: ControlMessage) -> None:
        if isinstance(msg, SendIke):
            self.send_ike(msg.local, msg.remote, msg.payload)
        elif isinstance(msg, InstallChild):
            self.install(msg.spec)
        elif isinstance(msg, RemoveChild):
            self.remove(int.from_bytes(msg.spi_in, "big"))
        elif isinstance(msg, ActivateOutbound):
            if msg.active:
                self.processor.activate_outbound(int.from_bytes(msg.spi_in, "big"))
            else:
                self.processor.deactivate_outbound(int.from_bytes(msg.spi_in, "big"))
        elif isinstance(msg, SendKeepalive):
            self.send_keepalive(msg.local, msg.remote)
        elif isinstance(msg, UpdateEndpoints):
            self.move(int.from_bytes(msg.spi_in, "big"), msg.local, msg.remote, msg.encap)
        elif isinstance(msg, RequestCounters):
            for part in encode_counters(self.counters() if msg.sas else Counters((), ())):
                self._notify(part)
        else:
            self._running = False

    def send_keepalive(self, local: Endpoint, remote: Endpoint) -> None:
        sock = self.sockets.udp.get(remote.ip.version)
        if sock is None:
            return
        try:
            sock.sendmsg((b"\xff",), _pktinfo(local.ip), 0, _sockaddr(remote))
            self.stats["keepalives_out"] = self.stats.get("keepalives_out", 0) + 1
        except OSError:
            self.stats["send_errors"] += 1

    def send_ike(self, local: Endpoint, remote: Endpoint, payload: bytes) -> None:
        sock = self.sockets.udp.get(remote.ip.version)
        if sock is None:
            self.stats["send_errors"] += 1
            return
        try:
            sock.sendmsg((NON_ESP_MARKER, payload), _pktinfo(local.ip), 0, _sockaddr(remote))
            self.stats["ike_out"] += 1
        except OSError:
            try:
                sock.sendmsg((NON_ESP_MARKER, payload), [], 0, _sockaddr(remote))
                self.stats["ike_out"] += 1
            except OSError:
                self.stats["send_errors"] += 1

    def _route(self, local: Endpoint, remote: Endpoint, encap: bool) -> Route:
        version = remote.ip.version
        if encap:
            sock = self.sockets.udp.get(version)
            addr = _sockaddr(remote)
            gso = self.sockets.gso
        else:
            sock = self.sockets.raw.get(version)
            addr = _sockaddr(Endpoint(remote.ip, 0))
            gso = False
        if sock is None:
            raise DataplaneError(f"no {'UDP' if encap else 'raw ESP'} socket for IPv{version}")
        return Route(sock, addr, _pktinfo(local.ip), gso)

    def install(self, spec: ChildSaSpec) -> None:
        route = self._route(spec.local, spec.remote, spec.encap)
        child = self.processor.install(spec, time.monotonic())
        self.routes[child.key] = route
        if self.netconf is not None:
            try:
                self.netconf.add_child(
                    child.key,
                    [(t.start_addr, t.end_addr) for t in spec.remote_ts],
                    [(t.start_addr, t.end_addr) for t in spec.local_ts],
                    spec.remote.ip,
                )
            except Exception as exc:
                _log.warning("routes for child %08x: %s", child.key, exc)
        _log.info("installed %r", child)

    def move(self, key: int, local: Endpoint, remote: Endpoint, encap: bool) -> None:
        """MOBIKE / NAT rebinding: the child's ESP goes between new endpoints from now on."""
        child = self.processor.child(key)
        if child is None:
            raise DataplaneError(f"no child {key:08x} to move")
        self.routes[key] = self._route(local, remote, encap)
        child.peer = Peer(local, remote, encap)
        _log.info("moved %r to %s - %s", child, local, remote)

    def remove(self, key: int) -> None:
        child = self.processor.remove(key)
        self.routes.pop(key, None)
        if self.netconf is not None:
            try:
                self.netconf.remove_child(key)
            except Exception as exc:
                _log.warning("removing routes of child %08x: %s", key, exc)
        if child is not None:
            _log.info("removed %r", child)

    def counters(self) -> Counters:
        sas = []
        for child in self.processor.children():
            c = child_counters(child)
            sas.append(SaCounters(child.spi_in.to_bytes(4, "big"), child.spi_out.to_bytes(4, "big"), **c))
        totals = {**self.processor.counters.as_dict(), **self.stats}
        for name, value in self.processor.sa_totals().items():  # every child, removed ones too
            totals[_SA_TOTAL_NAMES.get(name, name)] = value
        totals["no_route"] = self.encap.no_route
        if self.decap.coalescer is not None:
            totals["coalesced_writes"] = self.decap.coalescer.groups
        totals["send_runs"] = self.encap.runs
        return Counters(tuple(sas), tuple(sorted(totals.items())))

    def _tick(self, now: float) -> None:
        for sig in self.processor.poll_signals(now):
            self._notify(encode_event(SaSignal(sig.spi_in.to_bytes(4, "big"), sig.kind)))

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        ep = select.epoll()
        handlers: dict[int, tuple[str, socket.socket | None, int]] = {}
        ep.register(self._tun_fd, select.EPOLLIN)
        handlers[self._tun_fd] = ("tun", None, 0)
        ep.register(self.channel.fileno(), select.EPOLLIN)
        handlers[self.channel.fileno()] = ("chan", self.channel, 0)
        for version, sock in self.sockets.udp.items():
            ep.register(sock.fileno(), select.EPOLLIN)
            handlers[sock.fileno()] = ("udp", sock, version)
        for version, sock in self.sockets.raw.items():
            ep.register(sock.fileno(), select.EPOLLIN)
            handlers[sock.fileno()] = ("raw", sock, version)
        self._running = True
        next_tick = time.monotonic() + TICK
        try:
            while self._running:
                timeout = max(0.0, next_tick - time.monotonic())
                try:
                    events = ep.poll(timeout)
                except InterruptedError:
                    continue
                for fd, _mask in events:
                    kind, hsock, version = handlers[fd]
                    if kind == "tun":
                        self._on_tun()
                    elif kind == "udp":
                        assert hsock is not None
                        self._on_udp(hsock, version)
                    elif kind == "raw":
                        assert hsock is not None
                        self._on_raw(hsock, version)
                    else:
                        self._on_channel()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + TICK
                    self._tick(now)
                    self._acquire_gc(now)
        finally:
            ep.close()

    def stop(self) -> None:
        self._running = False

    def _acquire_gc(self, now: float) -> None:
        if len(self._acquired) > 1024:
            self._acquired = {k: t for k, t in self._acquired.items() if now - t < _ACQUIRE_INTERVAL}

    def _no_policy(self, pkt: memoryview) -> None:
        """Outbound traffic without a policy: an (rate-limited) :class:`Acquire` per destination."""
        flow = flow_of(pkt)
        if flow is None:
            return
        version, src, dst, proto = flow[:4]
        key = (version, dst)
        now = time.monotonic()
        if now - self._acquired.get(key, -1e9) < _ACQUIRE_INTERVAL:
            return  # before building address objects: this runs for every unrouted packet
        make = IPv4Address if version == 4 else IPv6Address
        target = make(dst)
        if target.is_multicast or target.is_link_local or target.is_unspecified:
            return  # IPv6 housekeeping on the TUN link (RS, MLD), never for a tunnel
        self._acquired[key] = now
        self._notify(encode_event(Acquire(make(src), target, proto)))


def _batchable(route: Route) -> bool:
    return route.gso


_u32_s = struct.Struct(">I")


def _u32(data: memoryview) -> int:
    return int(_u32_s.unpack_from(data)[0])
