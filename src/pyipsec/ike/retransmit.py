"""Retransmission of IKE requests (RFC 7296 §2.1, §2.4).

Only the initiator of an exchange retransmits; the responder answers a retransmitted
request from its response cache. The schedule follows strongSwan's defaults: the n-th
retransmission waits ``timeout · base^n`` (4 s × 1.8^n), and after ``tries`` unanswered
retransmissions the peer is considered dead. An optional jitter (a fraction, drawn from the
injected random source) spreads retransmissions of many SAs apart.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetransmitPolicy"]


@dataclass(frozen=True, slots=True)
class RetransmitPolicy:
    timeout: float = 4.0
    base: float = 1.8
    tries: int = 5
    jitter: float = 0.0  # fraction of each interval removed at random (strongSwan: retransmit_jitter)
    limit: float = 0.0  # upper bound for one interval, 0 = none

    def interval(self, attempt: int, rand01: float = 0.0) -> float:
        """Seconds to wait after transmission number ``attempt`` (0 = the first send)."""
        t = self.timeout * self.base**attempt
        if self.limit > 0:
            t = min(t, self.limit)
        return t * (1.0 - self.jitter * rand01)

    def exhausted(self, attempt: int) -> bool:
        """True once ``attempt`` transmissions beyond the first have all gone unanswered."""
        return attempt > self.tries

    def total(self) -> float:
        """How long a request is tried before giving up (without jitter)."""
        return sum(self.interval(n) for n in range(self.tries + 1))
