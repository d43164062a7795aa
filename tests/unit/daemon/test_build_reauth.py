"""The daemon maps a connection's ``reauth_time`` onto the engine's configuration."""

from __future__ import annotations

import pytest

from pyipsec.config.model import Config
from pyipsec.daemon.build import build_engine_config
from tests.unit.config.test_model import psk_config


def _config(**conn: object) -> Config:
    data = psk_config()
    data["connections"]["office"].update(conn)  # type: ignore[attr-defined]
    return Config.model_validate(data)


@pytest.mark.parametrize(("value", "seconds"), [("2h", 7200.0), (90, 90.0), (0, 0.0)])
def test_reauth_time_reaches_the_engine(value: object, seconds: float) -> None:
    engine, _ = build_engine_config(_config(reauth_time=value))
    assert engine.connections["office"].reauth_time == seconds


def test_reauth_is_off_by_default() -> None:
    engine, _ = build_engine_config(_config())
    assert engine.connections["office"].reauth_time == 0.0
