"""Traffic-selector negotiation for Child SAs (RFC 7296 §2.9).

A selector is a box: an address range × an IP protocol (0 = any) × a port range. The
responder answers with the intersection of what the initiator proposed and what its own
policy allows (narrowing); the initiator checks that what came back lies inside what it
proposed. Selectors of different address families never intersect. ICMP "ports" (type and
code) and the OPAQUE port range (65535..0) are compared as plain ranges, which is what the
RFC's range semantics give for everything but OPAQUE; an OPAQUE selector only meets another
OPAQUE or an any-port selector, and the result keeps the OPAQUE value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address

from pyipsec.wire.payloads.ts import ANY_PORTS, OPAQUE_PORTS, RawTrafficSelector, TrafficSelector

__all__ = ["contains", "covered_by", "intersect", "narrow", "selectors_of"]


def _ports(ts: TrafficSelector) -> tuple[int, int] | None:
    """The port range as (lo, hi), or None for OPAQUE."""
    if (ts.start_port, ts.end_port) == OPAQUE_PORTS:
        return None
    return ts.start_port, ts.end_port


def intersect(a: TrafficSelector, b: TrafficSelector) -> TrafficSelector | None:
    """The selector covering exactly what both cover, or None if they are disjoint."""
    if a.ts_type != b.ts_type:
        return None
    if a.ip_protocol and b.ip_protocol and a.ip_protocol != b.ip_protocol:
        return None
    proto = a.ip_protocol or b.ip_protocol
    lo = max(int(a.start_addr), int(b.start_addr))
    hi = min(int(a.end_addr), int(b.end_addr))
    if lo > hi:
        return None
    pa, pb = _ports(a), _ports(b)
    if pa is None or pb is None:
        other = pb if pa is None else pa
        if other is not None and other != ANY_PORTS:
            return None
        ports = OPAQUE_PORTS
    else:
        ports = (max(pa[0], pb[0]), min(pa[1], pb[1]))
        if ports[0] > ports[1]:
            return None
    addr = IPv4Address if a.version == 4 else IPv6Address
    return TrafficSelector(a.ts_type, proto, ports[0], ports[1], addr(lo), addr(hi))


def contains(outer: TrafficSelector, inner: TrafficSelector) -> bool:
    """True if every packet ``inner`` covers is covered by ``outer``."""
    if outer.ts_type != inner.ts_type:
        return False
    if outer.ip_protocol and outer.ip_protocol != inner.ip_protocol:
        return False
    if not int(outer.start_addr) <= int(inner.start_addr) <= int(inner.end_addr) <= int(outer.end_addr):
        return False
    po, pi = _ports(outer), _ports(inner)
    if po is None:
        return pi is None
    if pi is None:
        return po == ANY_PORTS
    return po[0] <= pi[0] <= pi[1] <= po[1]


def covered_by(selectors: Iterable[TrafficSelector], allowed: Sequence[TrafficSelector]) -> bool:
    """True if each selector lies inside one of ``allowed`` (the initiator's check of a reply)."""
    return all(any(contains(a, ts) for a in allowed) for ts in selectors)


def narrow(
    proposed: Sequence[TrafficSelector], policy: Sequence[TrafficSelector]
) -> tuple[TrafficSelector, ...]:
    """Every non-empty intersection of a proposed selector with a policy selector, deduplicated.

    The order follows ``proposed`` (the peer's preference), then ``policy``.
    """
    out: list[TrafficSelector] = []
    for p in proposed:
        for q in policy:
            x = intersect(p, q)
            if x is not None and x not in out:
                out.append(x)
    return tuple(out)


def selectors_of(items: Iterable[TrafficSelector | RawTrafficSelector]) -> tuple[TrafficSelector, ...]:
    """The address-range selectors of a TS payload; other types (e.g. TS_SECLABEL) are not ours to use."""
    return tuple(s for s in items if isinstance(s, TrafficSelector))
