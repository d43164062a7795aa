"""The RADIUS client's NAS-Identifier: ``[radius] nas_identifier``, else the ``gateway_id``.

Gateways that share one RADIUS server must tell it which of them holds a session (issue 14:
accounting across gateways), so a gateway with a ``gateway_id`` names itself by it unless the
configuration says otherwise; a lone gateway keeps ``pyipsec``.
"""

from __future__ import annotations

import pytest

from pyipsec.config.model import Config
from pyipsec.daemon.build import build_radius
from tests.unit.config.test_model import psk_config


def _config(settings: dict[str, object], **radius: object) -> Config:
    data = psk_config()
    data["settings"] = {**data.get("settings", {}), **settings}  # type: ignore[dict-item]
    data["radius"] = {"servers": {"a": {"address": "192.0.2.9", "secret": "s3cret"}}, **radius}
    return Config.model_validate(data)


@pytest.mark.parametrize(
    ("settings", "radius", "expected"),
    [
        ({}, {}, "pyipsec"),
        ({"gateway_id": "gw1"}, {}, "gw1"),
        ({"gateway_id": "gw1"}, {"nas_identifier": "edge"}, "edge"),
        ({}, {"nas_identifier": "edge"}, "edge"),
    ],
)
def test_nas_identifier(settings: dict[str, object], radius: dict[str, object], expected: str) -> None:
    client = build_radius(_config(settings, **radius))
    assert client is not None
    assert client.settings.nas_identifier == expected
