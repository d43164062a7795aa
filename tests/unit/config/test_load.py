"""Loading TOML files: every error reported with file and key path, all of them at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pyipsec.config.load import (
    ConfigErrors,
    ConfigIssue,
    format_key_path,
    load_config,
    parse_config,
    read_config,
)
from pyipsec.config.model import Config
from pyipsec.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

VALID = """
[connections.office]
local_addrs = ["192.0.2.1"]
remote_addrs = ["198.51.100.2"]
  [connections.office.local]
  auth = "psk"
  id = "gw.example.org"
  [connections.office.remote]
  auth = "psk"
  id = "peer.example.org"
  [connections.office.children.net]
  local_ts = ["10.1.0.0/16"]
  remote_ts = ["10.2.0.0/16"]

[secrets.ike-office]
id = ["gw.example.org"]
secret = "a sufficiently long pre-shared key"
"""


def write(tmp_path: Path, text: str, name: str = "pyipsec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_errors(tmp_path: Path, text: str) -> list[ConfigIssue]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigErrors) as info:
        read_config(path)
    assert all(issue.path == str(path) for issue in info.value.errors)
    return list(info.value.errors)


def only_error(tmp_path: Path, text: str) -> tuple[str, str]:
    [issue] = load_errors(tmp_path, text)
    return issue.key, issue.message


@pytest.mark.parametrize("name", ["gateway-psk.toml", "gateway-cert.toml", "client.toml"])
def test_examples_are_valid(name: str) -> None:
    loaded = read_config(EXAMPLES / name)
    assert loaded.config.connections
    assert loaded.warnings == ()


def test_valid_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert isinstance(config, Config)
    assert list(config.connections["office"].children) == ["net"]


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    [issue] = load_errors(tmp_path, '[settings]\nport = 500\nlog_level = "info\n')
    assert (issue.line, issue.column) == (3, 18)
    assert issue.message.startswith("invalid TOML: ")
    assert str(issue) == f"{tmp_path / 'pyipsec.toml'}:3:18: {issue.message}"
    [dup] = load_errors(tmp_path, "[settings]\nport = 500\nport = 501\n")
    assert dup.line == 3


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        read_config(tmp_path / "absent.toml")
    assert "cannot read" in info.value.errors[0].message
    (tmp_path / "bin.toml").write_bytes(b"port = 1\n\xff\xfe")
    with pytest.raises(ConfigErrors) as info:
        read_config(tmp_path / "bin.toml")
    assert "not UTF-8" in info.value.errors[0].message


# Each error class, with the key path and message the user sees.
@pytest.mark.parametrize(
    ("replace", "by", "key", "message"),
    [
        (
            'local_ts = ["10.1.0.0/16"]',
            'local_ts = ["10.0.0.300/8"]',
            "connections.office.children.net.local_ts[0]",
            'not a network or range: "10.0.0.300/8"',
        ),
        (
            'remote_ts = ["10.2.0.0/16"]',
            'remote_ts = ["10.2.0.0/16", "10.3.0.0/16[gre/80]"]',
            "connections.office.children.net.remote_ts[1]",
            'ports apply to tcp, udp, sctp and udplite only: "10.3.0.0/16[gre/80]"',
        ),
        (
            'id = "gw.example.org"',
            'id = "CN=gw, XY=1"',
            "connections.office.local.id",
            "distinguished name 'CN=gw, XY=1': unknown attribute 'XY'",
        ),
        (
            'auth = "psk"\n  id = "peer.example.org"',
            'auth = "pks"\n  id = "peer.example.org"',
            "connections.office.remote.auth",
            'unknown auth method "pks"',
        ),
        (
            'local_addrs = ["192.0.2.1"]',
            'local_addrs = ["gw.example.org"]',
            "connections.office.local_addrs[0]",
            'not an IP address or %any: "gw.example.org"',
        ),
        (
            'local_addrs = ["192.0.2.1"]',
            'local_addrs = ["192.0.2.1"]\nproposals = ["aes128-sha256-modp2048", "aes128-sha256-modp1024"]',
            "connections.office.proposals[1]",
            'proposal "aes128-sha256-modp1024" uses legacy algorithm "modp1024" (RFC 8247); '
            "set legacy_algorithms = true on the connection to allow it",
        ),
        (
            'remote_ts = ["10.2.0.0/16"]',
            'remote_ts = ["10.2.0.0/16"]\n  esp_proposals = ["aes256gcm16", "aes256gcm16-sha256"]',
            "connections.office.children.net.esp_proposals[1]",
            "proposal 'aes256gcm16-sha256': an AEAD cipher takes no integrity algorithm",
        ),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\nremote_addr = "x"',
            "connections.office.remote_addr",
            'unknown key (did you mean "remote_addrs"',
        ),
        (
            "[secrets.ike-office]",
            "[settings.extra]\n[secrets.ike-office]",
            "settings.extra",
            "unknown section",
        ),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\ndpd_delay = "30x"',
            "connections.office.dpd_delay",
            'expected a duration such as 3600 or "1h", got "30x"',
        ),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\nremote_port = "4500"',
            "connections.office.remote_port",
            'expected an integer, got "4500"',
        ),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\nremote_port = 0',
            "connections.office.remote_port",
            "must be at least 1, got 0",
        ),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\nmobike = "perhaps"',
            "connections.office.mobike",
            'expected true or false, got "perhaps"',
        ),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\nsend_cert = "sometimes"',
            "connections.office.send_cert",
            'expected "always", "never" or "ifasked", got "sometimes"',
        ),
        (
            '[connections.office.local]\n  auth = "psk"\n  id = "gw.example.org"',
            'local = "psk"',
            "connections.office.local",
            'expected a table, got "psk"',
        ),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\npools = 3',
            "connections.office.pools",
            "expected an array, got 3",
        ),
        (
            'local_ts = ["10.1.0.0/16"]',
            "local_ts = []",
            "connections.office.children.net.local_ts",
            "must not be empty",
        ),
        (
            'secret = "a sufficiently long pre-shared key"',
            'secret = "0xabc"',
            "secrets.ike-office.secret",
            "the secret after '0x' is not valid hex",
        ),
        (
            '[secrets.ike-office]\nid = ["gw.example.org"]',
            '[secrets.ike-office]\nid = ["nobody.example.org"]',
            "connections.office.local.auth",
            'auth = "psk" but no [secrets.ike*] entry has an id matching local id "gw.example.org" '
            'or remote id "peer.example.org"',
        ),
        ("[secrets.ike-office]", "[secrets.key-office]", "secrets.key-office", "unknown secret type"),
        (
            'remote_addrs = ["198.51.100.2"]',
            'remote_addrs = ["198.51.100.2"]\npools = ["rw"]',
            "connections.office.pools[0]",
            'no pool named "rw" in [pools]',
        ),
        (
            "[secrets.ike-office]",
            '[pools.rw]\naddrs = "10.3.0.0/33"\n[secrets.ike-office]',
            "pools.rw.addrs",
            'not a network or range: "10.3.0.0/33"',
        ),
        (
            "[secrets.ike-office]",
            "[pools.rw]\n[secrets.ike-office]",
            "pools.rw.addrs",
            "missing required key",
        ),
        (
            '[connections.office.local]\n  auth = "psk"\n  id = "gw.example.org"',
            "",
            "connections.office.local",
            "missing required section [connections.office.local]",
        ),
    ],
)
def test_error_key_paths(tmp_path: Path, replace: str, by: str, key: str, message: str) -> None:
    assert replace in VALID
    found_key, found_message = only_error(tmp_path, VALID.replace(replace, by))
    assert found_key == key
    assert message in found_message


def test_initiating_needs_remote_address(tmp_path: Path) -> None:
    text = VALID.replace('remote_addrs = ["198.51.100.2"]', 'remote_addrs = ["%any"]').replace(
        'remote_ts = ["10.2.0.0/16"]', 'remote_ts = ["10.2.0.0/16"]\n  start_action = "start"'
    )
    key, message = only_error(tmp_path, text)
    assert key == "connections.office.children.net.start_action"
    assert message.startswith('start_action = "start" needs a remote address to initiate to')


def test_empty_child_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID + "\n[connections.office.children.empty]\n"))
    assert [str(ts) for ts in config.connections["office"].children["empty"].local_ts] == ["dynamic"]


def test_all_errors_are_collected(tmp_path: Path) -> None:
    text = (
        VALID.replace('local_ts = ["10.1.0.0/16"]', 'local_ts = ["10.0.0.300/8", "10.1.0.1/16"]')
        .replace('id = "peer.example.org"', 'id = "peer.example.org"\n  cacerts = ["missing-ca.pem"]')
        .replace(
            'local_addrs = ["192.0.2.1"]', 'local_addrs = ["192.0.2.1"]\nproposals = ["aes999-sha256-x25519"]'
        )
        + '\n[settings]\nport = "x"\nlog_level = "loud"\n[pools.rw]\naddrs = "10.3.0.9-10.3.0.1"\n'
    )
    keys = [issue.key for issue in load_errors(tmp_path, text)]
    assert keys == [
        "settings.port",
        "settings.log_level",
        "connections.office.proposals[0]",
        "connections.office.remote.cacerts[0]",
        "connections.office.children.net.local_ts[0]",
        "connections.office.children.net.local_ts[1]",
        "pools.rw.addrs",
    ]


def test_missing_file_reference_names_resolved_path(tmp_path: Path) -> None:
    text = VALID.replace('id = "peer.example.org"', 'id = "peer.example.org"\n  cacerts = ["ca/missing.pem"]')
    key, message = only_error(tmp_path, text)
    assert key == "connections.office.remote.cacerts[0]"
    assert message == f'file not found: "{tmp_path / "ca" / "missing.pem"}"'
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "missing.pem").write_text("x")
    config = load_config(write(tmp_path, text))
    assert config.connections["office"].remote.cacerts == (tmp_path / "ca" / "missing.pem",)


def test_errors_are_config_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[settings]\nport = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f'{path}: 1 error\n{path}:settings.port: expected an integer, got "x"'


def test_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    psk_file = tmp_path / "office.psk"
    psk_file.write_text("a sufficiently long pre-shared key\n")
    os.chmod(psk_file, 0o644)
    text = VALID.replace('secret = "a sufficiently long pre-shared key"', 'secret_file = "office.psk"')
    loaded = read_config(write(tmp_path, text))
    assert [(w.key, w.message.split(";")[0]) for w in loaded.warnings] == [
        ("secrets.ike-office.secret_file", f'"{psk_file}" is accessible to group or others (mode 644)'),
    ]
    os.chmod(psk_file, 0o600)
    assert read_config(tmp_path / "pyipsec.toml").warnings == ()
    with caplog.at_level(logging.WARNING, logger="pyipsec.config.load"):
        load_config(write(tmp_path, "", "empty.toml"))
    assert "no connections defined" in caplog.text


def test_parse_config_without_base_dir() -> None:
    config = parse_config({"connections": {}})
    assert config.connections == {}
    with pytest.raises(ConfigErrors) as info:
        parse_config({"pools": {"rw": {"addrs": "x"}}}, source="<test>")
    assert str(info.value.errors[0]) == '<test>:pools.rw.addrs: not a network or range: "x"'


def test_format_key_path() -> None:
    assert format_key_path(("connections", "office", "local_ts", 0)) == "connections.office.local_ts[0]"
    assert (
        format_key_path(("connections", "my.vpn", "children", "a b")) == 'connections."my.vpn".children."a b"'
    )
    assert format_key_path(()) == ""
