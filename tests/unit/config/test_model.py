"""The config models: defaults, parsed values, per-section and cross-section checks."""

from __future__ import annotations

import copy
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from pydantic import ValidationError

from pyipsec.config.model import (
    AuthKind,
    Child,
    Config,
    Connection,
    EapSecret,
    IkeSecret,
    Mode,
    PrivateKeySecret,
    SendCert,
    StartAction,
)
from pyipsec.daemon.build import build_engine_config
from pyipsec.iana.ikev2 import IdType, ProtocolId
from pyipsec.iana.transforms import EncrId, KeId
from pyipsec.ike.proposal_text import parse_proposals

PSK = "a sufficiently long pre-shared key"


def psk_config() -> dict[str, object]:
    return {
        "connections": {
            "office": {
                "local_addrs": ["192.0.2.1"],
                "remote_addrs": ["198.51.100.2"],
                "local": {"auth": "psk", "id": "gw.example.org"},
                "remote": {"auth": "psk", "id": "peer.example.org"},
                "children": {"net": {"local_ts": ["10.1.0.0/16"], "remote_ts": ["10.2.0.0/16"]}},
            }
        },
        "secrets": {"ike-office": {"id": ["gw.example.org"], "secret": PSK}},
    }


def with_changes(path: tuple[str, ...], **values: object) -> dict[str, object]:
    data = copy.deepcopy(psk_config())
    node: dict[str, object] = data
    for key in path:
        child = node.setdefault(key, {})
        assert isinstance(child, dict)
        node = child
    node.update(values)
    return data


def errors(data: dict[str, object], **context: object) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data, context=context or None)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


def office(config: Config) -> Connection:
    return config.connections["office"]


def test_defaults_follow_swanctl() -> None:
    config = Config.model_validate(psk_config())
    assert config.settings.port == 500 and config.settings.port_nat_t == 4500
    assert config.settings.listen == (IPv4Address("0.0.0.0"), IPv6Address("::"))
    assert (config.settings.retransmit_timeout, config.settings.retransmit_base) == (4.0, 1.8)
    conn = office(config)
    assert conn.proposals == parse_proposals("default", protocol=ProtocolId.IKE)
    assert (conn.local_port, conn.remote_port, conn.rekey_time, conn.reauth_time) == (500, 500, 14400, 0)
    assert conn.mobike and conn.fragmentation and conn.send_certreq and not conn.encap
    assert conn.send_cert == SendCert.IFASKED
    child = conn.children["net"]
    assert child.esp_proposals == parse_proposals("default", protocol=ProtocolId.ESP)
    assert (child.rekey_time, child.life_time, child.rand_time) == (3600, 3960, 360)
    assert child.mode == Mode.TUNNEL and child.start_action == StartAction.NONE
    assert child.replay_window == 1024  # the data-plane issue wants at least 1024 (strongSwan: 32)


def test_minimal_child_is_dynamic() -> None:
    child = Child.model_validate({})
    assert [ts.dynamic for ts in (*child.local_ts, *child.remote_ts)] == [True, True]


def test_parsed_values() -> None:
    data = with_changes(
        ("connections", "office"),
        proposals=["aes256gcm16-prfsha256-ecp256", "aes256-sha256-modp2048"],
        dpd_delay="30s",
        rekey_time="4h",
        send_cert="always",
        fragmentation="no",  # swanctl spelling of false
    )
    conn = office(Config.model_validate(data))
    assert [p.ke for p in conn.proposals] == [(KeId.ECP_256,), (KeId.MODP_2048,)]
    assert conn.proposals[0].encr == ((EncrId.ENCR_AES_GCM_16, 256),)
    assert (conn.dpd_delay, conn.rekey_time, conn.send_cert, conn.fragmentation) == (
        30,
        14400,
        SendCert.ALWAYS,
        False,
    )
    assert conn.local.auth == AuthKind.PSK
    assert (conn.local.id.id_type, conn.local.id.data) == (IdType.ID_FQDN, b"gw.example.org")
    assert conn.remote_addrs[0].address == IPv4Address("198.51.100.2")


def test_comma_separated_strings_are_lists() -> None:
    data = with_changes(("connections", "office", "children", "net"), local_ts="10.1.0.0/16, 10.3.0.0/16")
    data["connections"]["office"]["proposals"] = "aes128-sha256-x25519, default"  # type: ignore[index]
    conn = office(Config.model_validate(data))
    assert [str(ts) for ts in conn.children["net"].local_ts] == ["10.1.0.0/16", "10.3.0.0/16"]
    assert len(conn.proposals) == 1 + len(parse_proposals("default", protocol=ProtocolId.IKE))


def test_frozen_and_strict_keys() -> None:
    config = Config.model_validate(psk_config())
    with pytest.raises(ValidationError):
        office(config).rekey_time = 1  # type: ignore[misc]
    assert errors(with_changes(("connections", "office"), rekey_tim=3)) == [
        (("connections", "office", "rekey_tim"), "Extra inputs are not permitted")
    ]


def test_integers_are_strict() -> None:
    found = errors(with_changes(("connections", "office"), local_port="500", keyingtries=-1))
    assert [loc for loc, _ in found] == [
        ("connections", "office", "local_port"),
        ("connections", "office", "keyingtries"),
    ]


def test_legacy_algorithms_opt_in() -> None:
    legacy = with_changes(("connections", "office"), proposals=["aes128-sha1-modp1024"])
    legacy["connections"]["office"]["children"]["net"]["esp_proposals"] = ["3des-sha1"]  # type: ignore[index]
    found = errors(legacy)
    assert [loc for loc, _ in found] == [
        ("connections", "office", "proposals", 0),
        ("connections", "office", "children", "net", "esp_proposals", 0),
    ]
    assert all("legacy_algorithms = true" in msg for _, msg in found)
    assert '"sha1", "modp1024"' in found[0][1]
    legacy["connections"]["office"]["legacy_algorithms"] = True  # type: ignore[index]
    conn = office(Config.model_validate(legacy))
    assert conn.proposals[0].ke == (KeId.MODP_1024,)
    assert conn.children["net"].esp_proposals[0].encr == ((EncrId.ENCR_3DES, None),)


def test_proposal_errors_keep_their_index() -> None:
    data = with_changes(
        ("connections", "office", "children", "net"), esp_proposals=["aes256gcm16", "aes256-shaa256"]
    )
    [(loc, msg)] = errors(data)
    assert loc == ("connections", "office", "children", "net", "esp_proposals", 1)
    assert "unknown algorithm keyword 'shaa256'" in msg
    [(loc, msg)] = errors(with_changes(("connections", "office"), proposals=[]))
    assert loc == ("connections", "office", "proposals") and "at least one proposal" in msg


def test_psk_needs_matching_secret() -> None:
    data = psk_config()
    data["secrets"] = {"ike-other": {"id": "someone.else", "secret": PSK}}
    [(loc, msg)] = errors(data)
    assert loc == ("connections", "office", "local", "auth")
    assert 'local id "gw.example.org"' in msg and 'remote id "peer.example.org"' in msg
    assert "secrets.ike-other" in msg
    data["secrets"] = {}
    assert errors(data)[0][0] == ("connections", "office", "local", "auth")
    # a secret without ids matches any connection; one naming the remote id matches too
    for ids in ([], ["peer.example.org"], ["*.example.org"]):
        data["secrets"] = {"ike-x": {"id": ids, "secret": PSK}}
        Config.model_validate(data)


def test_eap_client_needs_eap_secret() -> None:
    data = with_changes(("connections", "office", "local"), auth="eap-mschapv2", eap_id="carol")
    data["connections"]["office"]["remote"] = {"auth": "pubkey", "id": "gw"}  # type: ignore[index]
    [(loc, msg)] = errors(data)
    assert loc == ("connections", "office", "local", "auth") and '"carol"' in msg
    data["secrets"] = {"eap-carol": {"id": "carol", "secret": "pw"}}
    assert isinstance(Config.model_validate(data).secrets["eap-carol"], EapSecret)


def test_pools_must_exist() -> None:
    data = with_changes(("connections", "office"), pools=["rw", "v6"])
    data["pools"] = {"rw": {"addrs": "10.3.0.0/24", "dns": "10.3.0.1"}}
    assert errors(data) == [(("connections", "office", "pools", 1), 'no pool named "v6" in [pools]')]
    data["pools"]["v6"] = {"addrs": "fd00::/120"}  # type: ignore[index]
    pool = Config.model_validate(data).pools["rw"]
    assert pool.size == 254 and pool.dns == (IPv4Address("10.3.0.1"),)


@pytest.mark.parametrize("key", ["start_action", "close_action", "dpd_action"])
def test_initiating_needs_a_remote_address(key: str) -> None:
    action = "restart" if key == "dpd_action" else "start"
    data = with_changes(("connections", "office", "children", "net"), **{key: action})
    data["connections"]["office"]["remote_addrs"] = ["%any", "198.51.100.0/24"]  # type: ignore[index]
    [(loc, msg)] = errors(data)
    assert loc == ("connections", "office", "children", "net", key) and "needs a remote address" in msg
    data["connections"]["office"]["remote_addrs"] = ["vpn.example.org"]  # type: ignore[index]
    Config.model_validate(data)


def test_child_lifetimes() -> None:
    child = Child.model_validate({"rekey_time": "1h", "life_time": "2h"})
    assert (child.life_time, child.rand_time) == (7200, 3600)
    assert Child.model_validate({"rekey_time": 0}).life_time == 0
    with pytest.raises(ValidationError) as info:
        Child.model_validate(
            {"rekey_time": 3600, "life_time": 3000, "rand_time": 3601, "rekey_bytes": 10, "life_bytes": 5}
        )
    assert [e["loc"] for e in info.value.errors()] == [("life_time",), ("rand_time",), ("life_bytes",)]


def test_local_pubkey_needs_certificate() -> None:
    data = with_changes(("connections", "office", "local"), auth="pubkey")
    assert errors(data) == [
        (("connections", "office", "local", "certs"), 'auth = "pubkey" needs a certificate to send')
    ]


def test_unknown_auth_method() -> None:
    [(loc, msg)] = errors(with_changes(("connections", "office", "remote"), auth="xauth"))
    assert loc == ("connections", "office", "remote", "auth")
    assert msg.startswith('Value error, unknown auth method "xauth" (known: "pubkey"')


def test_settings_checks() -> None:
    found = errors({"settings": {"port": 4500, "retransmit_base": 0.5}})
    assert [loc for loc, _ in found] == [("settings", "retransmit_base")]
    assert [loc for loc, _ in errors({"settings": {"port": 4500}})] == [("settings", "port_nat_t")]
    settings = Config.model_validate(
        {"settings": {"listen": "192.0.2.1", "half_open_timeout": "1m"}}
    ).settings
    assert settings.listen == (IPv4Address("192.0.2.1"),) and settings.half_open_timeout == 60


def test_flood_limits_are_settings_with_finite_defaults() -> None:
    """block_threshold, init_limit_half_open, the fragment budget (issue 16): defaults as in
    RELIABILITY.md §7, validated, and passed on to the engine."""
    s = Config.model_validate({}).settings
    assert (s.cookie_threshold_ip, s.block_threshold, s.init_limit_half_open) == (3, 5, 1000)
    assert s.ike_fragment_budget == 4 * 1024 * 1024
    bad = {
        "block_threshold": 0,
        "init_limit_half_open": 0,
        "ike_fragment_budget": 10,
        "cookie_threshold_ip": -1,
    }
    assert sorted(loc for loc, _ in errors({"settings": bad})) == sorted(("settings", k) for k in bad)
    assert [loc for loc, _ in errors({"settings": {"block_threshold": "5"}})] == [
        ("settings", "block_threshold")
    ]
    cfg = Config.model_validate(
        {
            "settings": {
                "block_threshold": 2,
                "init_limit_half_open": 50,
                "ike_fragment_budget": 65536,
                "cookie_threshold_ip": 1,
            }
        }
    )
    engine, _ = build_engine_config(cfg)
    assert (engine.block_threshold, engine.init_limit_half_open, engine.fragment_budget) == (2, 50, 65536)
    assert engine.cookie_threshold_ip == 1


def test_file_references(tmp_path: Path) -> None:
    (tmp_path / "gw.pem").write_text("cert")
    data = with_changes(("connections", "office", "local"), auth="pubkey", certs=["gw.pem", "missing.pem"])
    # without base_dir, paths are kept as written and not checked
    assert office(Config.model_validate(data)).local.certs == (Path("gw.pem"), Path("missing.pem"))
    [(loc, msg)] = errors(data, base_dir=tmp_path)
    assert loc == ("connections", "office", "local", "certs", 1)
    assert msg == f'Value error, file not found: "{tmp_path / "missing.pem"}"'
    data["connections"]["office"]["local"]["certs"] = ["gw.pem"]  # type: ignore[index]
    config = Config.model_validate(data, context={"base_dir": tmp_path})
    assert office(config).local.certs == (tmp_path / "gw.pem",)


def test_secrets(tmp_path: Path) -> None:
    (tmp_path / "office.psk").write_bytes(b"from a file, long enough\n")
    (tmp_path / "gw.key").write_text("key")
    data = psk_config()
    data["secrets"] = {
        "ike-office": {"secret_file": "office.psk"},
        "ike-hex": {"id": "C=CH, CN=x, O=y", "secret": "0x" + "0102" * 8},
        "eap-carol": {"id": "carol", "secret": "0sYWJj"},
        "private-gw": {"file": "gw.key", "secret": "passphrase"},
    }
    config = Config.model_validate(data, context={"base_dir": tmp_path})
    office_psk = config.secrets["ike-office"]
    assert isinstance(office_psk, IkeSecret)
    assert office_psk.secret == b"from a file, long enough"
    assert office_psk.secret_file == tmp_path / "office.psk"
    hex_psk = config.secrets["ike-hex"]
    assert isinstance(hex_psk, IkeSecret) and hex_psk.secret == b"\x01\x02" * 8
    assert [i.id_type for i in hex_psk.id] == [IdType.ID_DER_ASN1_DN]  # one id: commas do not split it
    assert config.secrets["eap-carol"].secret == b"abc"
    key = config.secrets["private-gw"]
    assert isinstance(key, PrivateKeySecret) and key.file == tmp_path / "gw.key"
    # secret values never appear in repr or a dump
    assert "from a file" not in repr(config) and "passphrase" not in repr(config)
    dumped = config.model_dump(mode="json")
    assert "secret" not in dumped["secrets"]["ike-office"] and "secret" not in dumped["secrets"]["private-gw"]


def test_secret_errors(tmp_path: Path) -> None:
    data = psk_config()
    data["secrets"] = {
        "ike-office": {"secret": PSK},
        "ike-both": {"secret": "x", "secret_file": "f"},
        "ike-none": {"id": "x"},
        "ike-unreadable": {"secret_file": "nope"},
        "psk-office": {"secret": "x"},
        "private-key": {"file": "nope.key"},
    }
    found = errors(data, base_dir=tmp_path)
    assert [loc for loc, _ in found] == [
        ("secrets", "ike-both", "secret_file"),
        ("secrets", "ike-none", "secret"),
        ("secrets", "ike-unreadable", "secret_file"),
        ("secrets", "psk-office"),
        ("secrets", "private-key", "file"),
    ]
    assert "either secret or secret_file" in found[0][1]
    assert "unknown secret type" in found[3][1]


def test_short_rekey_time_gets_a_longer_default_life_time() -> None:
    child = Child.model_validate({"rekey_time": 5})
    assert (child.rekey_time, child.life_time) == (5, 6)
