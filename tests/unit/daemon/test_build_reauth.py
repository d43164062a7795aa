"""The daemon maps a connection's ``reauth_time`` onto the engine's configuration."""

from __future__ import annotations

import pytest

from pyipsec.config.model import Config
from pyipsec.daemon.build import build_engine_config


def _config(**conn: object) -> Config:
    return Config.model_validate(
        {
            "connections": {
                "office": {
                    "local_addrs": ["192.0.2.1"],
                    "remote_addrs": ["198.51.100.2"],
                    "local": {"auth": "psk", "id": "gw.example.org"},
                    "remote": {"auth": "psk", "id": "peer.example.org"},
                    "children": {"net": {"local_ts": ["10.1.0.0/16"], "remote_ts": ["10.2.0.0/16"]}},
                    **conn,
                }
            },
            "secrets": {
                "ike": {"id": ["gw.example.org", "peer.example.org"], "secret": "a sufficiently long key!"}
            },
        }
    )


@pytest.mark.parametrize(("value", "seconds"), [("2h", 7200.0), (90, 90.0), (0, 0.0)])
def test_reauth_time_reaches_the_engine(value: object, seconds: float) -> None:
    engine, _ = build_engine_config(_config(reauth_time=value))
    assert engine.connections["office"].reauth_time == seconds


def test_reauth_is_off_by_default() -> None:
    engine, _ = build_engine_config(_config())
    assert engine.connections["office"].reauth_time == 0.0
