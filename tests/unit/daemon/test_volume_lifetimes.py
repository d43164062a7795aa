"""Child SA lifetimes by volume: config → engine → ChildSaInstalled → the data plane's policy.

The engine keeps the time limits itself; the byte and packet limits travel with each Child SA
to the data plane, which counts them and signals the soft and hard limits; the runtime then
rekeys or deletes the Child SA. Here through runtimes over the memory network with recording
data planes (``tests/support/daemons.py``); with real daemons in tests/integration/test_survive.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyipsec.childsa import Lifetimes
from pyipsec.config.model import Config
from pyipsec.daemon.build import build_engine_config
from pyipsec.dataplane.messages import spec_from_json, spec_to_json
from pyipsec.ike.events import ChildSaSignal, SignalKind
from tests.support.daemons import GW_ADDR, I_ADDR, Node, World, psk_configs
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


def _client_and_gateway(world: World, tmp_path: Path, seed: int, **child: object) -> tuple[Node, Node]:
    client_cfg, gw_cfg = psk_configs(tmp_path, client_child=child)
    client = world.node(client_cfg, I_ADDR, seed=seed)
    gateway = world.node(gw_cfg, GW_ADDR, seed=seed + 100)
    assert world.command(client, "up", {"name": "office"})["ok"] is True
    return client, gateway


@pytest.mark.parametrize("seed", range(8))
def test_installed_child_sa_carries_jittered_soft_and_exact_hard_limits(
    world: World, tmp_path: Path, seed: int
) -> None:
    limits = {"rekey_bytes": 1_000_000, "life_bytes": 1_100_000, "rekey_packets": 1000, "life_packets": 1100}
    client, gateway = _client_and_gateway(world, tmp_path, seed, **limits)
    (ev,) = client.sink.installed.values()  # what the data plane was given
    lt = ev.spec.lifetimes
    assert lt is not None and lt.soft_bytes is not None and lt.soft_packets is not None
    assert 900_000 <= lt.soft_bytes <= 1_000_000 and 900 <= lt.soft_packets <= 1000
    assert lt == Lifetimes(
        soft_bytes=lt.soft_bytes, hard_bytes=1_100_000, soft_packets=lt.soft_packets, hard_packets=1100
    )  # the time limits stay in the engine
    assert spec_from_json(spec_to_json(ev.spec)).lifetimes == lt  # over the channel intact
    # the gateway configured no limits: its data plane counts nothing
    (ev_gw,) = gateway.sink.installed.values()
    assert ev_gw.spec.lifetimes is None


def test_a_soft_volume_signal_rekeys_and_a_hard_one_deletes(world: World, tmp_path: Path) -> None:
    """The data plane's signals (``DataplaneListener.signal_received``) reach the engine."""
    client, gateway = _client_and_gateway(world, tmp_path, 1, rekey_bytes=1000)
    (old,) = client.child_spis()
    client.runtime.signal_received(ChildSaSignal(old, SignalKind.SOFT_LIFETIME))
    world.run_for(5)
    (new,) = client.child_spis()
    assert new != old and client.sink.ops(old) == ["install", "retire", "remove"]
    client.runtime.signal_received(ChildSaSignal(new, SignalKind.HARD_LIFETIME))
    world.run_for(5)
    assert client.child_spis() == [] and gateway.child_spis() == [] and client.sink.installed == {}
    assert len(client.sas()) == 1  # the IKE SA stays


@pytest.mark.parametrize(("child", "rand"), [({}, 360.0), ({"rekey_time": 100, "rand_time": 30}, 30.0)])
def test_rand_time_reaches_the_engine(child: dict[str, object], rand: float) -> None:
    engine, _ = build_engine_config(_config(**child))
    assert engine.connections["office"].children[0].rand_time == rand


def test_child_soft_lifetime_is_brought_forward_by_at_most_rand_time(world: World, tmp_path: Path) -> None:
    offsets = []
    for seed in range(8):
        client, _ = _client_and_gateway(
            world, tmp_path / str(seed), seed, rekey_time=100, life_time=200, rand_time=40
        )
        (spi,) = client.child_spis()
        (sa,) = client.sas()
        (child,) = sa.children
        assert child.rekey_at is not None
        offsets.append(child.rekey_at - client.sink.at("install", spi))
        for node in list(world.nodes):
            world.shutdown(node)
    assert all(60.0 <= o <= 100.0 for o in offsets), offsets
    assert min(offsets) < 90.0, offsets  # more than the default tenth is used


def test_an_explicit_zero_life_time_means_no_hard_lifetime() -> None:
    engine, _ = build_engine_config(_config(life_time=0))
    child = engine.connections["office"].children[0]
    assert child.life_time == 0.0 and child.rand_time == 0.0
