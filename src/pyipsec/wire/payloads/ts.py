"""Traffic Selector payloads, TSi and TSr (RFC 7296 §3.13).

Theory of operation: one payload body is ``Number of TSs (1) | RESERVED (3)`` followed by
exactly that many selectors. Each selector starts with ``TS Type (1) | IP Protocol ID (1)
| Selector Length (2)`` (RFC 7296 §3.13.1). The two address-range types decode into
:class:`TrafficSelector` — 16 octets for TS_IPV4_ADDR_RANGE, 40 for TS_IPV6_ADDR_RANGE,
anything else is INVALID_SYNTAX. Every other type (TS_FC_ADDR_RANGE, RFC 4595;
TS_SECLABEL, RFC 9478; unassigned ones) is carried as a :class:`RawTrafficSelector` so
the negotiation can decide what to do with it (RFC 9478 §2 wants unknown types ignored
or refused there, not by the codec).

Ranges are not ordered by the codec: RFC 7296 itself sends start port 65535 and end port
0 to mean OPAQUE ports, and nothing forbids a start address above the end address, so
such selectors decode and round-trip unchanged; the algebra (``net.ts``) gives them
meaning. The RESERVED octets are sent as zero and ignored on receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
    summarize_address_range,
)

from pyipsec.iana.ikev2 import IpProtocol, PayloadType, TsType
from pyipsec.wire.buffer import Reader, Writer
from pyipsec.wire.payloads.base import register

__all__ = [
    "ANY_PORTS",
    "OPAQUE_PORTS",
    "RawTrafficSelector",
    "TrafficSelector",
    "TrafficSelectors",
]

IPAddress = IPv4Address | IPv6Address

ANY_PORTS = (0, 0xFFFF)
"""Start/end port for "any port" (RFC 7296 §3.13.1)."""
OPAQUE_PORTS = (0xFFFF, 0)
"""Start/end port for OPAQUE ports, not ANY (RFC 7296 §3.13.1, RFC 4301 §4.4.1)."""

_TS_HEADER_LEN = 4
_RANGE_TYPES = {TsType.TS_IPV4_ADDR_RANGE: 4, TsType.TS_IPV6_ADDR_RANGE: 16}  # type → address length

# Names as /etc/protocols spells them (which is what strongSwan prints); others print as numbers.
_PROTOCOL_NAMES = {
    IpProtocol.ICMP: "icmp",
    IpProtocol.TCP: "tcp",
    IpProtocol.UDP: "udp",
    47: "gre",
    IpProtocol.ESP: "esp",
    IpProtocol.AH: "ah",
    IpProtocol.ICMPV6: "ipv6-icmp",
    IpProtocol.SCTP: "sctp",
}


def _selector_len(ts_type: TsType) -> int:
    return _TS_HEADER_LEN + 4 + 2 * _RANGE_TYPES[ts_type]


@dataclass(frozen=True, slots=True)
class TrafficSelector:
    """An address range with an IP protocol and a port range (RFC 7296 §3.13.1).

    ``ip_protocol`` 0 means any protocol. For ICMP and ICMPv6 the "ports" hold the ICMP
    Type in the high octet and the Code in the low octet (RFC 4301 §4.4.1.1).
    """

    ts_type: TsType
    ip_protocol: int
    start_port: int
    end_port: int
    start_addr: IPv4Address | IPv6Address
    end_addr: IPv4Address | IPv6Address

    def __post_init__(self) -> None:
        if self.ts_type not in _RANGE_TYPES:
            raise ValueError(f"{self.ts_type.name} is not an address range type; use RawTrafficSelector")
        version = 4 if self.ts_type == TsType.TS_IPV4_ADDR_RANGE else 6
        if self.start_addr.version != version or self.end_addr.version != version:
            raise ValueError(f"{self.ts_type.name} needs IPv{version} addresses")
        if not 0 <= self.ip_protocol <= 0xFF:
            raise ValueError(f"IP protocol {self.ip_protocol} does not fit one octet")
        for port in (self.start_port, self.end_port):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"port {port} out of range")

    # ------------------------------------------------------------ builders

    @classmethod
    def from_network(
        cls,
        network: str | IPv4Network | IPv6Network,
        *,
        protocol: int = 0,
        ports: tuple[int, int] = ANY_PORTS,
    ) -> TrafficSelector:
        """The selector covering ``network`` ("10.0.0.0/24", "2001:db8::/32", "10.0.0.1").

        Host bits are masked off ("10.0.0.1/24" gives 10.0.0.0..10.0.0.255).
        """
        net = ip_network(network, strict=False) if isinstance(network, str) else network
        return cls.from_range(net.network_address, net.broadcast_address, protocol=protocol, ports=ports)

    @classmethod
    def from_range(
        cls,
        start: str | IPAddress,
        end: str | IPAddress,
        *,
        protocol: int = 0,
        ports: tuple[int, int] = ANY_PORTS,
    ) -> TrafficSelector:
        """The selector for the addresses ``start``..``end`` (both of one family)."""
        a = ip_address(start) if isinstance(start, str) else start
        b = ip_address(end) if isinstance(end, str) else end
        ts_type = TsType.TS_IPV4_ADDR_RANGE if a.version == 4 else TsType.TS_IPV6_ADDR_RANGE
        return cls(ts_type, protocol, ports[0], ports[1], a, b)

    # ------------------------------------------------------------ queries

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.start_addr.version

    @property
    def any_port(self) -> bool:
        return (self.start_port, self.end_port) == ANY_PORTS

    @property
    def opaque_ports(self) -> bool:
        return (self.start_port, self.end_port) == OPAQUE_PORTS

    def networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """The fewest CIDR networks covering start..end (empty if start > end)."""
        a, b = self.start_addr, self.end_addr
        if int(a) > int(b):
            return ()
        if isinstance(a, IPv4Address) and isinstance(b, IPv4Address):
            return tuple(summarize_address_range(a, b))
        if isinstance(a, IPv6Address) and isinstance(b, IPv6Address):
            return tuple(summarize_address_range(a, b))
        raise AssertionError("address families differ")  # excluded by __post_init__

    def __str__(self) -> str:
        """strongSwan's notation: ``10.0.0.0/24``, ``10.0.0.1..10.0.0.9``, ``10.0.0.0/8[tcp/80]``."""
        nets = self.networks()
        addrs = str(nets[0]) if len(nets) == 1 else f"{self.start_addr}..{self.end_addr}"
        if self.ip_protocol == 0 and self.any_port:
            return addrs
        proto = _PROTOCOL_NAMES.get(self.ip_protocol, str(self.ip_protocol)) if self.ip_protocol else ""
        if self.any_port:
            return f"{addrs}[{proto}]"
        icmp = self.ip_protocol in (IpProtocol.ICMP, IpProtocol.ICMPV6)
        if self.start_port == self.end_port:
            ports = _icmp_str(self.start_port) if icmp else str(self.start_port)
        elif self.opaque_ports:
            ports = "OPAQUE"
        elif icmp:
            ports = f"{_icmp_str(self.start_port)}-{_icmp_str(self.end_port)}"
        else:
            ports = f"{self.start_port}-{self.end_port}"
        return f"{addrs}[{proto}/{ports}]" if proto else f"{addrs}[{ports}]"

    # -------------------------------------------------------------- codec

    def encode(self) -> bytes:
        """The whole selector substructure, header included."""
        w = Writer().u8(self.ts_type).u8(self.ip_protocol).u16(_selector_len(self.ts_type))
        w.u16(self.start_port).u16(self.end_port)
        return w.write(self.start_addr.packed).write(self.end_addr.packed).getvalue()


def _icmp_str(port: int) -> str:
    icmp_type, code = port >> 8, port & 0xFF
    return f"{icmp_type}({code})" if code else str(icmp_type)


@dataclass(frozen=True, slots=True)
class RawTrafficSelector:
    """A selector of a type other than the two address ranges, kept verbatim.

    ``data`` is everything after the 4-octet selector header; ``reserved`` is the header's
    second octet (IP Protocol ID for address ranges, RESERVED for RFC 4595 and RFC 9478).
    """

    ts_type: TsType
    data: bytes
    reserved: int = 0

    def __post_init__(self) -> None:
        if self.ts_type in _RANGE_TYPES:
            raise ValueError(f"{self.ts_type.name} is an address range; use TrafficSelector")
        if not 0 <= self.ts_type <= 0xFF or not 0 <= self.reserved <= 0xFF:
            raise ValueError("TS type and reserved octet must fit one octet")
        if _TS_HEADER_LEN + len(self.data) > 0xFFFF:
            raise ValueError("selector too long")

    def __str__(self) -> str:
        return f"<{self.ts_type.name} {self.data.hex()}>"

    def encode(self) -> bytes:
        w = Writer().u8(self.ts_type).u8(self.reserved).u16(_TS_HEADER_LEN + len(self.data))
        return w.write(self.data).getvalue()


@register(PayloadType.TSi, PayloadType.TSr)
@dataclass(frozen=True, slots=True)
class TrafficSelectors:
    """A TSi or TSr payload (RFC 7296 §3.13): the selectors in the sender's order."""

    payload_type: PayloadType
    selectors: tuple[TrafficSelector | RawTrafficSelector, ...]

    def __post_init__(self) -> None:
        if self.payload_type not in (PayloadType.TSi, PayloadType.TSr):
            raise ValueError(f"{self.payload_type.name} is not TSi or TSr")
        if len(self.selectors) > 0xFF:
            raise ValueError("at most 255 traffic selectors fit one payload")

    def __str__(self) -> str:
        return f"{self.payload_type.name}(" + " ".join(str(s) for s in self.selectors) + ")"

    def encode_body(self) -> bytes:
        w = Writer().u8(len(self.selectors)).write(bytes(3))
        for ts in self.selectors:
            w.write(ts.encode())
        return w.getvalue()

    @classmethod
    def decode_body(cls, ptype: PayloadType, r: Reader) -> TrafficSelectors:
        count = r.u8("Number of TSs")
        r.read(3, "TS payload RESERVED")
        selectors = tuple(_decode_selector(r) for _ in range(count))
        r.expect_end("TS payload after its Number of TSs selectors")
        return cls(ptype, selectors)


def _decode_selector(r: Reader) -> TrafficSelector | RawTrafficSelector:
    start = r.offset
    ts_type = TsType(r.u8("TS Type"))
    second = r.u8("IP Protocol ID")
    length = r.u16("Selector Length")
    if ts_type in _RANGE_TYPES:
        if length != _selector_len(ts_type):
            raise r.fail(f"{ts_type.name} Selector Length must be {_selector_len(ts_type)}, got {length}")
        body = r.sub(length - _TS_HEADER_LEN, "traffic selector")
        start_port = body.u16("Start Port")
        end_port = body.u16("End Port")
        n = _RANGE_TYPES[ts_type]
        cls = IPv4Address if n == 4 else IPv6Address
        start_addr = cls(body.read(n, "Starting Address"))
        end_addr = cls(body.read(n, "Ending Address"))
        return TrafficSelector(ts_type, second, start_port, end_port, start_addr, end_addr)
    if length < _TS_HEADER_LEN:
        raise r.fail(f"Selector Length {length} is shorter than the selector header (at {start})")
    return RawTrafficSelector(ts_type, r.read(length - _TS_HEADER_LEN, "traffic selector"), second)
