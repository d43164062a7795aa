"""The SPD of a gateway with a thousand Child SAs (issue 13): a snapshot with one policy more or
less costs one sort key, not a thousand, and orders the policies exactly as a full sort does."""

from __future__ import annotations

import random

import pytest

from pyipsec.esp.spd import Policy, Selector, Spd
from pyipsec.wire.payloads.ts import TrafficSelector


def N(net: str, proto: int = 0, ports: tuple[int, int] = (0, 65535)) -> Selector:
    return Selector.from_ts(TrafficSelector.from_network(net, protocol=proto, ports=ports))


LAN = (N("10.1.0.0/16"),)


def _vip(k: int, order: int) -> Policy:
    return Policy(0x10000 + k, LAN, (N(f"10.234.{k // 250}.{k % 250 + 1}/32"),), order=order)


def test_adding_and_removing_a_policy_computes_one_sort_key(monkeypatch: pytest.MonkeyPatch) -> None:
    spd = Spd(_vip(k, k) for k in range(1000))
    calls = [0]
    real = Policy.sort_key

    def spy(self: Policy) -> tuple[int, int, int, int, int]:
        calls[0] += 1
        return real(self)

    monkeypatch.setattr(Policy, "sort_key", spy)
    bigger = spd.with_policy(_vip(1000, 1000))
    smaller = bigger.without(0x10000 + 500)
    assert calls[0] == 1
    assert (len(spd), len(bigger), len(smaller)) == (1000, 1001, 1000)


def test_incremental_snapshots_order_policies_as_a_full_sort() -> None:
    rng = random.Random(13)
    nets = ["0.0.0.0/0", "10.2.0.0/16", "10.2.3.0/24", "10.2.3.4/32"]
    spd, live, order = Spd(), {}, 0
    for _ in range(400):
        key = rng.randrange(40)
        if key in live and rng.random() < 0.4:
            spd = spd.without(key)
            del live[key]
            continue
        order += 1
        proto, ports = (6, (80, 80)) if rng.random() < 0.2 else (0, (0, 65535))
        live[key] = Policy(key, LAN, (N(rng.choice(nets), proto, ports),), order=order)
        spd = spd.with_policy(live[key])
        assert spd.policies == Spd(live.values()).policies
        assert spd.needs_ports == Spd(live.values()).needs_ports
