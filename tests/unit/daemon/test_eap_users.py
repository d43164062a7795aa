"""Where a gateway finds its EAP users: ``[secrets.eap*]`` of its configuration and its user store.

swanctl's ``secrets.eap-NAME`` holds EAP passwords; a strongSwan gateway serves those users.
pyipsec once looked users up only in the SQLite store, so a swanctl-shaped gateway refused every
user with a correct password. Both sources count now (the configuration first), and the log says
which one vouched for the user.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pyipsec.store.sqlite import SqliteStore
from tests.support.daemons import GW_ADDR, I_ADDR, World, eap_configs


def _connect(world: World, tmp_path: Path, **kw: object) -> dict[str, object]:
    client_cfg, gw_cfg, _ = eap_configs(tmp_path, **kw)  # type: ignore[arg-type]
    client = world.node(client_cfg, I_ADDR)
    world.node(gw_cfg, GW_ADDR)
    result: dict[str, object] = world.command(client, "up", {"name": "rw"})
    return result


def test_a_gateway_serves_users_from_its_eap_secrets(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    gateway = {"secrets": {"eap-alice": {"id": "alice", "secret": "alice-secret-1"}}}
    result = _connect(world, tmp_path, gateway=gateway)
    assert result["ok"] is True, result
    assert "EAP user 'alice': password from the configuration ([secrets.eap-alice])" in caplog.text


def test_a_gateway_refuses_a_wrong_password_for_a_configured_user(world: World, tmp_path: Path) -> None:
    gateway = {"secrets": {"eap-alice": {"id": "alice", "secret": "the-right-one"}}}
    result = _connect(world, tmp_path, password="not-the-right-one", gateway=gateway)
    assert result["ok"] is False and "AUTHENTICATION_FAILED" in str(result["message"]), result


def test_a_gateway_still_serves_users_from_its_store(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with SqliteStore(tmp_path / "gateway.db", create=True) as store:
        store.add_user("alice", "alice-secret-1")
    gateway = {"secrets": {"eap-bob": {"id": "bob", "secret": "bob-secret-2"}}}
    result = _connect(world, tmp_path, gateway=gateway)
    assert result["ok"] is True, result
    assert f"EAP user 'alice': password from the user store {tmp_path / 'gateway.db'}" in caplog.text


def test_the_configuration_wins_over_the_store(world: World, tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "gateway.db", create=True) as store:
        store.add_user("alice", "an-old-password")
    gateway = {"secrets": {"eap-alice": {"id": "alice", "secret": "alice-secret-1"}}}
    assert _connect(world, tmp_path, gateway=gateway)["ok"] is True
