"""The ESP pipeline, one packet at a time (RFC 4303 §3.3, §3.4; RFC 4301 §5.1, §5.2).

Theory of operation
-------------------
:class:`EspProcessor` owns the SAD (:class:`~pyipsec.esp.sad.Sad`) and the SPD
(:class:`~pyipsec.esp.spd.Spd`), both immutable snapshots swapped whole by :meth:`install` and
:meth:`remove`. It touches no socket, fd or clock: ``now`` comes in as an argument.
:meth:`install` takes the negotiated :class:`~pyipsec.childsa.ChildSaSpec` and builds from it,
once, everything the packet path uses: the two live SAs, the policy's selectors, the peer.

Outbound (:meth:`outbound`): SPD lookup of the IP packet (most specific first) → the child's
outbound SA → tunnel mode seals the whole packet with Next Header 4 or 41, transport mode its
payload with the packet's protocol. No policy → drop, counted as ``no_policy``.

Inbound (:meth:`inbound`): SPI lookup (unknown → ``unknown_spi``) → the SA's checks in RFC 4303
order (replay before crypto, window moved only after the ICV verified; see
:meth:`~pyipsec.esp.sa.EspSa.decapsulate`) → the inner packet must match the child's selectors
(else ``policy_drops`` of that child) → the IP packet to deliver. Transport mode rebuilds an IP
header from the SA's endpoints. Every drop is counted, none raises.

Counters: drops that belong to no SA are :class:`GlobalCounters`; each child counts its own
traffic and drops (:func:`child_counters`). When a child is removed its counters are added to
running totals, so :meth:`sa_totals` (live plus removed children) never goes backwards: a
replay or ICV failure stays counted after its SA is gone (rekeyed, deleted).

:meth:`poll_signals` turns sequence-number exhaustion and soft/hard lifetimes into
:class:`Signal` values for the control plane; past a hard lifetime the child is marked expired
and carries no more traffic. It looks only at the children that may have something to say (a
gateway holds a thousand idle ones, and the data plane polls four times a second): those with a
byte or packet limit, those whose time limit has come (a heap of deadlines), and those whose
sequence counter just crossed its soft limit (it calls back).

The batched data plane (``pyipsec.dataplane``) uses the same SAD/SPD and the same SAs through
their buffer-oriented methods; this class is its per-packet reference and fallback.
"""

from __future__ import annotations

import functools
import heapq
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pyipsec.childsa import ChildSaSpec, EspMode
from pyipsec.esp.packet import BytesLike, EspDrop, RandomBytes
from pyipsec.esp.replay import SequenceExhausted
from pyipsec.esp.sa import Direction, EspSa, EspSaConfig
from pyipsec.esp.sad import Child, Peer, Sad
from pyipsec.esp.spd import Policy, Spd, selectors

__all__ = [
    "SA_COUNTERS",
    "EspProcessor",
    "GlobalCounters",
    "Signal",
    "SignalKind",
    "child_counters",
    "ip_header_for_transport",
]

SignalKind = Literal["seq_exhausting", "soft_lifetime", "hard_lifetime"]


@dataclass(frozen=True, slots=True)
class Signal:
    """Something the control plane must act on: ``spi_in`` names the child."""

    spi_in: int
    kind: SignalKind


@dataclass(slots=True)
class GlobalCounters:
    """Drops that belong to no SA, plus outbound drops of inactive or expired children."""

    no_policy: int = 0
    unknown_spi: int = 0
    malformed: int = 0
    expired: int = 0
    seq_exhausted: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "no_policy": self.no_policy,
            "unknown_spi": self.unknown_spi,
            "malformed": self.malformed,
            "expired": self.expired,
            "seq_exhausted": self.seq_exhausted,
            **self.extra,
        }


_IPV4_HDR = struct.Struct(">BBHHHBBH4s4s")


def _ones_sum(data: BytesLike) -> int:
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    return n % 0xFFFF


def ip_header_for_transport(peer: Peer, next_header: int, payload_len: int) -> bytes:
    """An IP header from ``peer.remote`` to ``peer.local`` for a transport-mode payload."""
    src, dst = peer.remote.ip, peer.local.ip
    if src.version == 4:
        hdr = _IPV4_HDR.pack(0x45, 0, 20 + payload_len, 0, 0x4000, 64, next_header, 0, src.packed, dst.packed)
        csum = 0xFFFF - _ones_sum(hdr)
        return hdr[:10] + csum.to_bytes(2, "big") + hdr[12:]
    return (
        bytes((0x60, 0, 0, 0))
        + payload_len.to_bytes(2, "big")
        + bytes((next_header, 64))
        + src.packed
        + dst.packed
    )


class EspProcessor:
    """SAD + SPD + the per-packet pipeline. ``rng`` feeds AES-CBC IVs of outbound SAs."""

    def __init__(self, *, rng: RandomBytes | None = None) -> None:
        self.rng = rng
        self.sad = Sad()
        self.spd = Spd()
        self.counters = GlobalCounters()
        self._removed: dict[str, int] = {}  # child_counters summed over removed children
        self._order = 0
        self._volume: dict[int, Child] = {}  # children with a byte or packet limit
        self._timed: list[tuple[float, int, int]] = []  # (deadline, order, key): a heap
        self._exhausting: set[int] = set()  # children past their soft sequence limit

    # --- configuration ------------------------------------------------------------------------

    def install(self, spec: ChildSaSpec, now: float = 0.0) -> Child:
        """Build and install a child; its outbound policy is active unless the spec says not.

        Raises ValueError for what the data plane cannot carry (a selector with an empty or
        OPAQUE port range, bad keys, a replay window under 32) and for an inbound SPI in use.
        """
        inbound = EspSa(EspSaConfig.from_spec(spec, Direction.INBOUND))
        outbound = EspSa(EspSaConfig.from_spec(spec, Direction.OUTBOUND), rng=self.rng)
        self._order += 1
        policy = Policy(inbound.spi, selectors(spec.local_ts), selectors(spec.remote_ts), self._order)
        child = Child(
            inbound=inbound,
            outbound=outbound,
            policy=policy,
            peer=Peer(spec.local, spec.remote, spec.encap),
            mode=spec.mode,
            lifetimes=spec.lifetimes,
            installed_at=now,
            outbound_active=spec.outbound_active,
        )
        self.sad = self.sad.with_child(child)
        if child.outbound_active:
            self.spd = self.spd.with_policy(policy)
        self._watch(child, now)
        return child

    def _watch(self, child: Child, now: float) -> None:
        """File ``child`` where :meth:`poll_signals` will look for it."""
        lt = child.lifetimes
        if lt is not None:
            if any(v is not None for v in (lt.soft_bytes, lt.hard_bytes, lt.soft_packets, lt.hard_packets)):
                self._volume[child.key] = child
            for seconds in (lt.soft_seconds, lt.hard_seconds):
                if seconds is not None:
                    heapq.heappush(self._timed, (now + seconds, self._order, child.key))
        seq = child.outbound.seq
        if seq is not None:
            seq.on_exhausting = functools.partial(self._exhausting.add, child.key)

    def activate_outbound(self, spi_in: int) -> bool:
        """Let a child installed inactive carry outbound traffic (the rekey switch-over)."""
        child = self.sad.children.get(spi_in)
        if child is None:
            return False
        child.outbound_active = True
        self._order += 1
        p = child.policy
        child.policy = Policy(p.key, p.local, p.remote, self._order)
        self.spd = self.spd.with_policy(child.policy)
        return True

    def deactivate_outbound(self, spi_in: int) -> bool:
        """Stop sending on a child that still receives: a replaced child lingering for the ESP
        the peer sent just before it switched must not take outbound traffic back."""
        child = self.sad.children.get(spi_in)
        if child is None:
            return False
        child.outbound_active = False
        self.spd = self.spd.without(spi_in)
        return True

    def remove(self, spi_in: int) -> Child | None:
        child = self.sad.children.get(spi_in)
        if child is None:
            return None
        self.sad = self.sad.without(spi_in)
        self.spd = self.spd.without(spi_in)
        self._volume.pop(spi_in, None)
        self._exhausting.discard(spi_in)  # (its deadlines leave the heap when they come)
        for name, value in child_counters(child).items():
            self._removed[name] = self._removed.get(name, 0) + value
        return child

    def sa_totals(self) -> dict[str, int]:
        """:func:`child_counters` summed over every child since start, live and removed."""
        totals = dict.fromkeys(SA_COUNTERS, 0) | self._removed
        for child in self.children():
            for name, value in child_counters(child).items():
                totals[name] += value
        return totals

    def child(self, key: int) -> Child | None:
        """The installed child whose inbound SPI is ``key``."""
        return self.sad.children.get(key)

    def children(self) -> Iterable[Child]:
        return iter(self.sad)

    # --- outbound -----------------------------------------------------------------------------

    def route(self, pkt: BytesLike) -> Child | None:
        """The child whose policy covers an outbound IP packet (counted drop when none)."""
        key = self.spd.lookup(pkt)
        child = self.sad.children.get(key) if key is not None else None
        if child is None:
            self.counters.no_policy += 1
            return None
        if child.expired:
            self.counters.expired += 1
            return None
        return child

    def outbound(self, pkt: BytesLike) -> tuple[Child, bytes] | None:
        """``(child, ESP packet)`` for an IP packet read from the TUN device, or None (dropped)."""
        child = self.route(pkt)
        if child is None:
            return None
        try:
            if child.mode is EspMode.TUNNEL:
                return child, child.outbound.encapsulate(pkt, 4 if pkt[0] >> 4 == 4 else 41)
            if pkt[0] >> 4 == 4:
                ihl = (pkt[0] & 15) * 4
                return child, child.outbound.encapsulate(pkt[ihl:], pkt[9])
            return child, child.outbound.encapsulate(pkt[40:], pkt[6])
        except SequenceExhausted:
            self.counters.seq_exhausted += 1
            child.expired = True
            return None

    # --- inbound ------------------------------------------------------------------------------

    def inbound(self, esp: BytesLike) -> tuple[Child, bytes] | None:
        """``(child, inner IP packet)`` for an ESP packet, or None (dropped and counted)."""
        if len(esp) < 8:
            self.counters.malformed += 1
            return None
        child = self.sad.inbound.get(int.from_bytes(esp[:4], "big"))
        if child is None:
            self.counters.unknown_spi += 1
            return None
        if child.expired:
            self.counters.expired += 1
            return None
        try:
            payload, next_header = child.inbound.decapsulate(esp)
        except EspDrop:
            return None  # counted by the SA
        if child.mode is EspMode.TUNNEL:
            if next_header not in (4, 41):
                if next_header != 59:  # 59: dummy packet (RFC 4303 §2.6), discarded silently
                    child.policy_drops += 1
                return None
            packet = payload
        else:
            packet = ip_header_for_transport(child.peer, next_header, len(payload)) + payload
        if not child.check(packet):
            child.policy_drops += 1
            return None
        return child, packet

    # --- signals ------------------------------------------------------------------------------

    def poll_signals(self, now: float) -> list[Signal]:
        """Sequence-number and lifetime signals, each once per child and kind."""
        out: list[Signal] = []
        keys = {*self._volume, *self._exhausting}
        self._exhausting.clear()
        while self._timed and self._timed[0][0] <= now:
            keys.add(heapq.heappop(self._timed)[2])
        for child in (self.sad.children.get(k) for k in sorted(keys)):
            if child is None:
                continue
            if child.outbound.poll_signal() is not None and "seq_exhausting" not in child.signalled:
                child.signalled.add("seq_exhausting")
                out.append(Signal(child.key, "seq_exhausting"))
            lt = child.lifetimes
            if lt is None:
                continue
            age = now - child.installed_at
            used = max(child.inbound.bytes, child.outbound.bytes)
            packets = max(child.inbound.packets, child.outbound.packets)
            limits: tuple[tuple[SignalKind, int | None, int | None, float | None], ...] = (
                ("hard_lifetime", lt.hard_bytes, lt.hard_packets, lt.hard_seconds),
                ("soft_lifetime", lt.soft_bytes, lt.soft_packets, lt.soft_seconds),
            )
            for kind, lim_b, lim_p, lim_s in limits:
                if kind in child.signalled:
                    continue
                if (
                    (lim_b is not None and used >= lim_b)
                    or (lim_p is not None and packets >= lim_p)
                    or (lim_s is not None and age >= lim_s)
                ):
                    child.signalled.add(kind)
                    if kind == "hard_lifetime":
                        child.expired = True
                        child.signalled.add("soft_lifetime")
                    out.append(Signal(child.key, kind))
                    break
        return out


SA_COUNTERS = (
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
"""The names of :func:`child_counters`, in order."""


def child_counters(child: Child) -> dict[str, int]:
    """A flat snapshot of one child's counters (both directions)."""
    i: EspSa = child.inbound
    o: EspSa = child.outbound
    return {
        "packets_in": i.packets,
        "bytes_in": i.bytes,
        "packets_out": o.packets,
        "bytes_out": o.bytes,
        "replay_drops": i.replay_drops,
        "integrity_failures": i.integrity_failures,
        "policy_drops": child.policy_drops,
        "pad_errors": i.pad_errors,
        "malformed": i.malformed,
    }
