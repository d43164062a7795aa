"""Child SA lifetimes by volume: config → engine → ChildSaInstalled → the data plane.

The engine keeps the time limits itself; the byte and packet limits travel with each Child SA
to the data plane, which counts them and signals the soft and hard limits (the runtime then
rekeys or deletes the Child SA; tested with real daemons in tests/integration/test_survive.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pyipsec.childsa import Lifetimes
from pyipsec.config.model import Config
from pyipsec.crypto.rand import SeededRandom
from pyipsec.daemon.build import build_engine_config
from pyipsec.dataplane.messages import spec_from_json, spec_to_json
from pyipsec.ike.events import ChildSaInstalled
from tests.scenario.test_handshake_psk import pair
from tests.unit.config.test_model import psk_config


def _config(**child: object) -> Config:
    data = psk_config()
    data["connections"]["office"]["children"]["net"].update(child)  # type: ignore[index]
    return Config.model_validate(data)


def _child(**child: object) -> tuple[int, int, int, int]:
    engine, _ = build_engine_config(_config(**child))
    c = engine.connections["office"].children[0]
    return c.rekey_bytes, c.life_bytes, c.rekey_packets, c.life_packets


def test_volume_limits_are_off_by_default() -> None:
    assert _child() == (0, 0, 0, 0)


def test_hard_volume_limits_default_to_ten_percent_above_the_soft_ones() -> None:
    assert _child(rekey_bytes=1_000_000, rekey_packets=5_000) == (1_000_000, 1_100_000, 5_000, 5_500)


def test_explicit_hard_volume_limits_are_kept() -> None:
    assert _child(rekey_bytes=10, life_bytes=50, life_packets=7) == (10, 50, 0, 7)


@pytest.mark.parametrize("seed", range(8))
def test_installed_child_sa_carries_jittered_soft_and_exact_hard_limits(seed: int) -> None:
    p = pair()
    p.i.engine.ctx.rng = SeededRandom(seed)
    conn = p.i.engine.config.connections["office"]
    child = replace(
        conn.children[0], rekey_bytes=1_000_000, life_bytes=1_100_000, rekey_packets=1000, life_packets=1100
    )
    p.i.engine.config.connections["office"] = replace(conn, children=(child,))  # type: ignore[index]
    p.initiate()
    p.run(until=5)
    (ev,) = p.i.of(ChildSaInstalled)
    lt = ev.spec.lifetimes  # type: ignore[attr-defined]
    assert 900_000 <= lt.soft_bytes <= 1_000_000 and 900 <= lt.soft_packets <= 1000
    assert lt == Lifetimes(
        soft_bytes=lt.soft_bytes, hard_bytes=1_100_000, soft_packets=lt.soft_packets, hard_packets=1100
    )  # the time limits stay in the engine
    assert spec_from_json(spec_to_json(ev.spec)).lifetimes == lt  # type: ignore[attr-defined]
    # the responder configured no limits: its data plane counts nothing
    (ev_r,) = p.r.of(ChildSaInstalled)
    assert ev_r.spec.lifetimes is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("child", "rand"), [({}, 360.0), ({"rekey_time": 100, "rand_time": 30}, 30.0)])
def test_rand_time_reaches_the_engine(child: dict[str, object], rand: float) -> None:
    engine, _ = build_engine_config(_config(**child))
    assert engine.connections["office"].children[0].rand_time == rand


def test_child_soft_lifetime_is_brought_forward_by_at_most_rand_time() -> None:
    offsets = []
    for seed in range(8):
        p = pair()
        p.i.engine.ctx.rng = SeededRandom(seed)
        conn = p.i.engine.config.connections["office"]
        child = replace(conn.children[0], rekey_time=100.0, life_time=200.0, rand_time=40.0)
        p.i.engine.config.connections["office"] = replace(conn, children=(child,))  # type: ignore[index]
        p.initiate()
        p.run(until=5)
        (sa,) = p.i.engine.sas()
        (c,) = sa.children.values()
        assert c.rekey_at is not None
        offsets.append(c.rekey_at - c.installed_at)
    assert all(60.0 <= o <= 100.0 for o in offsets), offsets
    assert min(offsets) < 90.0, offsets  # more than the default tenth is used


def test_an_explicit_zero_life_time_means_no_hard_lifetime() -> None:
    engine, _ = build_engine_config(_config(life_time=0))
    child = engine.connections["office"].children[0]
    assert child.life_time == 0.0 and child.rand_time == 0.0
