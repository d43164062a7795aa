"""Security policy database: which Child SA carries a packet, and may a packet come in on it.

Theory of operation
-------------------
A :class:`Selector` is one traffic selector of RFC 7296 §3.13.1 (address range, IP protocol with
0 = any, port range; for ICMP/ICMPv6 the "port" is ``type << 8 | code`` as RFC 4301 §4.4.1.1
puts it). A :class:`Policy` pairs the local and remote selectors of one Child SA; it matches a
packet when some local selector matches its source and some remote selector its destination
(outbound), or the other way round (inbound, RFC 4301 §5.2 step 4).

:class:`Spd` is immutable: the data plane builds a new one on every install or removal and swaps
it in whole. Policies are kept most specific first (fewest remote addresses, then fewest local
addresses, a specific protocol before "any", narrower port ranges first; among equals the most
recently installed, so a rekeyed Child SA takes over from the one it replaces). The outbound
lookup is a linear scan in that order, fronted by a bounded memo keyed by the packet's address
bytes (plus protocol and ports when some policy needs them), so the common case costs one dict
lookup per packet. :class:`InboundCheck` does the same for the inbound selector check of one SA.

Packet parsing here is a header peek only: IPv4 (options skipped), IPv6 (hop-by-hop, routing,
destination-options and fragment headers walked). A non-first fragment has no ports; it matches
only selectors that allow every port ("OPAQUE" handling of RFC 4301 §4.4.1.1).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from pyipsec.esp.packet import BytesLike
from pyipsec.net.addr import IPAddress
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = [
    "ANY_PORT",
    "FlowKey",
    "InboundCheck",
    "Policy",
    "Selector",
    "Spd",
    "flow_of",
    "selectors",
]

ANY_PORT = (0, 65535)
_CACHE_MAX = 4096
_V6_EXT = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options (RFC 8200 §4)
_ICMP = (1, 58)


@dataclass(frozen=True, slots=True)
class Selector:
    """One traffic selector (RFC 7296 §3.13.1); ``protocol`` 0 means any."""

    first: IPAddress
    last: IPAddress
    protocol: int = 0
    port_lo: int = 0
    port_hi: int = 65535
    lo: int = field(init=False, repr=False, compare=False)
    hi: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.first.version != self.last.version:
            raise ValueError(f"selector {self.first} - {self.last} mixes address families")
        lo, hi = int(self.first), int(self.last)
        if lo > hi:
            raise ValueError(f"selector {self.first} - {self.last} is empty")
        if not (0 <= self.port_lo <= self.port_hi <= 65535) or not 0 <= self.protocol <= 255:
            raise ValueError(f"bad protocol/port range {self.protocol} {self.port_lo}-{self.port_hi}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @classmethod
    def from_tuple(cls, ts: tuple[IPAddress | str, IPAddress | str, int, int, int]) -> Selector:
        """From ``(first_ip, last_ip, protocol, port_lo, port_hi)``."""
        first, last, proto, plo, phi = ts
        a = ip_address(first) if isinstance(first, str) else first
        b = ip_address(last) if isinstance(last, str) else last
        return cls(a, b, proto, plo, phi)

    @classmethod
    def from_ts(cls, ts: TrafficSelector) -> Selector:
        """From a negotiated traffic selector (ValueError for the empty and OPAQUE ranges)."""
        return cls(ts.start_addr, ts.end_addr, ts.ip_protocol, ts.start_port, ts.end_port)

    @classmethod
    def network(cls, cidr: str, protocol: int = 0, ports: tuple[int, int] = ANY_PORT) -> Selector:
        """A selector covering a CIDR prefix, e.g. ``Selector.network("10.0.0.0/24")``."""
        net = ip_network(cidr, strict=False)
        return cls(net[0], net[-1], protocol, ports[0], ports[1])

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def addresses(self) -> int:
        """How many addresses the range holds."""
        return self.hi - self.lo + 1

    @property
    def any_port(self) -> bool:
        return self.port_lo == 0 and self.port_hi == 65535

    def matches(self, version: int, addr: int, protocol: int, port: int | None) -> bool:
        """Does an address (as int), protocol and port (None: unknown, e.g. a fragment) match?"""
        if version != self.first.version or not self.lo <= addr <= self.hi:
            return False
        if self.protocol and self.protocol != protocol:
            return False
        if self.port_lo == 0 and self.port_hi == 65535:
            return True
        return port is not None and self.port_lo <= port <= self.port_hi

    def specificity(self) -> tuple[int, int, int]:
        return (self.addresses, 0 if self.protocol else 1, self.port_hi - self.port_lo)


FlowKey = tuple[int, int, int, int, int | None, int | None]
"""(version, src, dst, protocol, src port, dst port) of a packet; ports None when unknown."""


def flow_of(pkt: BytesLike) -> FlowKey | None:
    """The addresses, protocol and ports of an IP packet; None when it is not parseable IP."""
    n = len(pkt)
    if n < 20:
        return None
    version = pkt[0] >> 4
    if version == 4:
        ihl = (pkt[0] & 15) * 4
        if ihl < 20 or n < ihl:
            return None
        proto = pkt[9]
        src = int.from_bytes(pkt[12:16], "big")
        dst = int.from_bytes(pkt[16:20], "big")
        if (pkt[6] & 0x1F) | pkt[7]:  # fragment offset != 0: no transport header here
            return (4, src, dst, proto, None, None)
        off = ihl
    elif version == 6:
        if n < 40:
            return None
        src = int.from_bytes(pkt[8:24], "big")
        dst = int.from_bytes(pkt[24:40], "big")
        proto = pkt[6]
        off = 40
        while proto in _V6_EXT or proto == 44:
            if off + 8 > n:
                return (6, src, dst, proto, None, None)
            if proto == 44:  # fragment header: 8 bytes, offset in the upper 13 bits of bytes 2-3
                frag_off = (pkt[off + 2] << 8 | pkt[off + 3]) & 0xFFF8
                proto = pkt[off]
                off += 8
                if frag_off:
                    return (6, src, dst, proto, None, None)
                continue
            proto, off = pkt[off], off + (pkt[off + 1] + 1) * 8
    else:
        return None
    if proto in (6, 17, 132, 136):  # TCP, UDP, SCTP, UDP-Lite: ports first
        if off + 4 > n:
            return (version, src, dst, proto, None, None)
        return (
            version,
            src,
            dst,
            proto,
            pkt[off] << 8 | pkt[off + 1],
            pkt[off + 2] << 8 | pkt[off + 3],
        )
    if proto in _ICMP:
        if off + 2 > n:
            return (version, src, dst, proto, None, None)
        port = pkt[off] << 8 | pkt[off + 1]  # type << 8 | code, in both "ports"
        return (version, src, dst, proto, port, port)
    return (version, src, dst, proto, 0, 0)


@dataclass(frozen=True, slots=True)
class Policy:
    """The selectors of one Child SA; ``key`` names the child (its inbound SPI)."""

    key: int
    local: tuple[Selector, ...]
    remote: tuple[Selector, ...]
    order: int = 0

    def outbound_match(self, flow: FlowKey) -> bool:
        version, src, dst, proto, sport, dport = flow
        return any(s.matches(version, src, proto, sport) for s in self.local) and any(
            s.matches(version, dst, proto, dport) for s in self.remote
        )

    def inbound_match(self, flow: FlowKey) -> bool:
        version, src, dst, proto, sport, dport = flow
        return any(s.matches(version, src, proto, sport) for s in self.remote) and any(
            s.matches(version, dst, proto, dport) for s in self.local
        )

    @property
    def needs_ports(self) -> bool:
        """True if protocol or ports matter (the memo must then key on them too)."""
        return any(s.protocol or not s.any_port for s in (*self.local, *self.remote))

    def sort_key(self) -> tuple[int, int, int, int, int]:
        r = min((s.specificity() for s in self.remote), default=(1 << 128, 1, 65535))
        l_ = min((s.specificity() for s in self.local), default=(1 << 128, 1, 65535))
        return (r[0], l_[0], r[1] + l_[1], r[2] + l_[2], -self.order)


def _addr_key(pkt: BytesLike) -> bytes | None:
    """The bytes that identify a packet's addresses (the memo key when ports do not matter)."""
    if len(pkt) < 20:
        return None
    v = pkt[0] >> 4
    if v == 4:
        return bytes(pkt[12:20])
    if v == 6 and len(pkt) >= 40:
        return bytes(pkt[8:40])
    return None


class InboundCheck:
    """RFC 4301 §5.2 inbound policy check of one SA: the decrypted packet must match its selectors.

    Results are memoised per address pair (and protocol/ports when the policy needs them);
    a packet that does not parse is refused without a memo entry, so one malformed packet
    cannot make its addresses' valid packets fail too.
    """

    __slots__ = ("_cache", "_ports", "needs_ports", "policy")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._ports = self.needs_ports = policy.needs_ports
        self._cache: dict[object, bool] = {}

    def __call__(self, pkt: BytesLike) -> bool:
        flow: FlowKey | None = None
        key: object
        if self._ports:
            key = flow = flow_of(pkt)
        else:
            key = _addr_key(pkt)
        if key is None:
            return False
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if flow is None:
            flow = flow_of(pkt)
            if flow is None:  # unparseable: refused, but not remembered for its addresses
                return False
        ok = self.policy.inbound_match(flow)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = ok
        return ok


class Spd:
    """An immutable, ordered set of policies with a memoised outbound lookup.

    Each snapshot keeps its policies' sort keys beside them, so that adding one is a binary
    search and an insertion and removing one a filter: on a gateway with a thousand Child SAs,
    recomputing every key and sorting for each client that comes or goes was the data plane's
    main cost per SA."""

    __slots__ = ("_cache", "_ports", "_ranks", "policies")

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        ranked = sorted(((p.sort_key(), p) for p in policies), key=lambda rp: rp[0])
        pols = [p for _, p in ranked]
        self._set([r for r, _ in ranked], pols, sum(1 for p in pols if p.needs_ports))

    def _set(self, ranks: list[tuple[int, int, int, int, int]], policies: list[Policy], ports: int) -> None:
        self._ranks = ranks
        self.policies: tuple[Policy, ...] = tuple(policies)
        self._ports = ports  # how many policies select on protocol or ports
        self._cache: dict[object, int | None] = {}

    def _derived(
        self, ranks: list[tuple[int, int, int, int, int]], policies: list[Policy], ports: int
    ) -> Spd:
        spd = Spd.__new__(Spd)
        spd._set(ranks, policies, ports)
        return spd

    def _without(self, key: int) -> tuple[list[tuple[int, int, int, int, int]], list[Policy], int]:
        ranks, policies, ports = list(self._ranks), list(self.policies), self._ports
        for at, p in enumerate(policies):
            if p.key == key:
                del ranks[at], policies[at]
                ports -= p.needs_ports
                break
        return ranks, policies, ports

    def with_policy(self, policy: Policy) -> Spd:
        ranks, policies, ports = self._without(policy.key)
        rank = policy.sort_key()
        at = bisect.bisect_right(ranks, rank)
        ranks.insert(at, rank)
        policies.insert(at, policy)
        return self._derived(ranks, policies, ports + policy.needs_ports)

    def without(self, key: int) -> Spd:
        return self._derived(*self._without(key))

    def __len__(self) -> int:
        return len(self.policies)

    @property
    def needs_ports(self) -> bool:
        """True if some policy selects on protocol or ports (lookups then key on them too)."""
        return self._ports > 0

    def lookup_flow(self, flow: FlowKey) -> int | None:
        """The key of the most specific policy matching an outbound flow."""
        for p in self.policies:
            if p.outbound_match(flow):
                return p.key
        return None

    def lookup(self, pkt: BytesLike) -> int | None:
        """The key of the policy for an outbound IP packet, or None (no policy: drop)."""
        flow: FlowKey | None = None
        key: object
        if self._ports:
            key = flow = flow_of(pkt)
        else:
            key = _addr_key(pkt)
        if key is None:
            return None
        cache = self._cache
        if key in cache:
            return cache[key]
        if flow is None:
            flow = flow_of(pkt)
            if flow is None:  # unparseable: no policy, but not remembered for its addresses
                return None
        found = self.lookup_flow(flow)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = found
        return found


def selectors(items: Iterable[TrafficSelector]) -> tuple[Selector, ...]:
    """The data plane's selectors for a Child SA's negotiated traffic selectors."""
    return tuple(Selector.from_ts(t) for t in items)
