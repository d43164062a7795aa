"""``[settings.redirect]`` and the connections' ``redirect`` keys (``config.redirect``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyipsec.config.load import read_config
from pyipsec.config.redirect import RedirectRule
from pyipsec.control.schema import BadRequest, parse_args
from tests.unit.config.test_load import VALID, only_error, write


def test_redirect_settings_and_connection_keys_are_read(tmp_path: Path) -> None:
    text = VALID.replace(
        'remote_addrs = ["198.51.100.2"]',
        'remote_addrs = ["198.51.100.2", "198.51.100.3"]\nredirect_allow = ["vpn3.example.org"]',
    )
    text = '[settings.redirect]\nrule = "least-loaded"\ngateways = ["198.51.100.2", "198.51.100.3"]\n' + (
        'self = "198.51.100.2"\nload_file = "load.json"\ntimeout = 10\n' + text
    )
    cfg = read_config(write(tmp_path, text)).config
    r = cfg.settings.redirect
    assert r is not None and r.rule is RedirectRule.LEAST_LOADED and r.self_name == "198.51.100.2"
    assert r.timeout == 10.0
    assert cfg.connections["office"].redirect_allow == ("vpn3.example.org",)
    assert cfg.connections["office"].redirect is True


@pytest.mark.parametrize(
    ("settings", "key", "words"),
    [
        ('rule = "static"', "settings.redirect", "needs a target gateway (key 'target')"),
        ('rule = "least-loaded"', "settings.redirect", "needs the other gateways (key 'gateways')"),
        ('rule = "busiest"', "settings.redirect.rule", "static"),
        ("timeout = 0", "settings.redirect.timeout", "greater than 0"),
        ('target = ""', "settings.redirect.target", "at least 1"),
        ('colour = "blue"', "settings.redirect.colour", "unknown key"),
    ],
)
def test_bad_redirect_settings_name_the_key(tmp_path: Path, settings: str, key: str, words: str) -> None:
    got_key, message = only_error(tmp_path, f"[settings.redirect]\n{settings}\n" + VALID)
    assert got_key == key
    assert words in message


@pytest.mark.parametrize(
    ("cmd", "args", "words"),
    [
        ("redirect", {"to": "192.0.2.3"}, "give exactly one of name and sa_id"),
        ("redirect", {"name": "office", "sa_id": 2, "to": "192.0.2.3"}, "give exactly one of name and sa_id"),
        ("redirect", {"name": "office"}, "args.to"),
        ("drain", {}, "give either to (a gateway) or stop"),
        ("drain", {"to": "192.0.2.3", "stop": True}, "give either to (a gateway) or stop"),
    ],
)
def test_control_arguments_are_checked(cmd: str, args: dict[str, object], words: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_args(cmd, args)
    assert words in str(info.value)
