"""Configuration keys for an organisation's gateway: several authentication rounds (swanctl's
``local-N``/``remote-N``), ``eap-tls``/``eap-radius``, ``remote.revocation``, ``[radius]`` and
``[authorities]``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from pyipsec.config.model import AuthKind, Config, Revocation

BASE: dict[str, Any] = {
    "connections": {
        "rw": {
            "local": {"auth": "pubkey", "id": "gw.example.org", "pubkeys": ["k"]},
            "remote": {"auth": "eap-mschapv2"},
            "children": {"net": {"local_ts": ["10.1.0.0/16"]}},
        }
    },
}


def config(**conn: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["connections"]["rw"].update(conn)
    for side in ("local", "remote"):
        if any(k.startswith(f"{side}-") for k in conn):
            data["connections"]["rw"].pop(side, None)
    return data


def messages(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data)
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


def test_rounds_in_the_order_of_their_suffixes() -> None:
    data = config(**{"remote-2": {"auth": "eap-mschapv2"}, "remote-1": {"auth": "pubkey", "id": "%any"}})
    data["connections"]["rw"]["local"]["pubkeys"] = ["x"]  # (a certificate to send is needed)
    conn = Config.model_validate(data).connections["rw"]
    assert [r.auth for r in conn.remote_rounds] == [AuthKind.PUBKEY, AuthKind.EAP_MSCHAPV2]
    assert conn.remote.auth == AuthKind.PUBKEY and len(conn.remote_more) == 1


def test_a_client_with_a_machine_certificate_then_eap() -> None:
    data: dict[str, Any] = {
        "connections": {
            "vpn": {
                "remote_addrs": ["192.0.2.1"],
                "local-1": {"auth": "pubkey", "id": "laptop.example.org", "pubkeys": ["k"]},
                "local-2": {"auth": "eap-mschapv2", "id": "alice", "eap_id": "alice"},
                "remote": {"auth": "pubkey", "id": "gw.example.org"},
            }
        },
        "secrets": {"eap-alice": {"id": "alice", "secret": "alice-secret-1"}},
    }
    conn = Config.model_validate(data).connections["vpn"]
    assert [str(r.id) for r in conn.local_rounds] == ["laptop.example.org", "alice"]
    del data["secrets"]
    ((loc, msg),) = messages(data)
    assert loc == ("connections", "vpn", "local_more.0", "auth") and '"alice"' in msg


def test_eap_tls_needs_a_certificate_not_a_password() -> None:
    ((loc, msg),) = messages(
        config(local={"auth": "eap-tls", "id": "alice@example.org"}, remote={"auth": "pubkey"})
    )
    assert loc == ("connections", "rw", "local", "certs") and "needs a certificate" in msg
    ok = config(
        local={"auth": "eap-tls", "id": "alice@example.org", "pubkeys": ["k"]}, remote={"auth": "pubkey"}
    )
    assert Config.model_validate(ok).connections["rw"].local.auth == AuthKind.EAP_TLS


def test_both_ends_eap_only_with_eap_tls() -> None:
    eap_only = config(local={"auth": "eap-tls", "pubkeys": ["k"]}, remote={"auth": "eap-tls"})
    assert Config.model_validate(eap_only).connections["rw"].remote.auth == AuthKind.EAP_TLS
    ((loc, msg),) = messages(
        config(local={"auth": "eap-tls", "pubkeys": ["k"]}, remote={"auth": "eap-mschapv2"})
    )
    assert loc == ("connections", "rw", "remote", "auth") and "RFC 5998" in msg


def test_eap_radius_needs_radius_servers_and_is_for_the_remote_side() -> None:
    ((loc, msg),) = messages(
        config(remote={"auth": "eap-radius"}, local={"auth": "pubkey", "pubkeys": ["k"]})
    )
    assert loc == ("connections", "rw", "remote", "auth") and "[radius.servers" in msg
    data = config(remote={"auth": "eap-radius"}, local={"auth": "pubkey", "pubkeys": ["k"]})
    data["radius"] = {
        "servers": {"aaa": {"address": "10.0.0.5", "secret": "s3cret-s3cret"}},
        "accounting": True,
    }
    cfg = Config.model_validate(data)
    assert cfg.radius is not None and cfg.radius.servers["aaa"].auth_port == 1812 and cfg.radius.tries == 3
    assert "s3cret" not in repr(cfg) and "s3cret" not in cfg.model_dump_json()
    ((loc, msg),) = messages({**data, "radius": {"servers": {}}})
    assert loc == ("radius", "servers")
    client = config(local={"auth": "eap-radius"}, remote={"auth": "pubkey"})
    assert any("gateway's remote round" in m for _, m in messages(client))


def test_revocation_policy_and_authorities() -> None:
    data = config(
        remote={"auth": "pubkey", "revocation": "strict"}, local={"auth": "pubkey", "pubkeys": ["k"]}
    )
    assert Config.model_validate(data).connections["rw"].remote.revocation is Revocation.STRICT
    assert Config.model_validate(config()).connections["rw"].remote.revocation is Revocation.RELAXED
    bad = config(
        remote={"auth": "pubkey", "revocation": "sometimes"}, local={"auth": "pubkey", "pubkeys": ["k"]}
    )
    ((loc, _),) = messages(bad)
    assert loc == ("connections", "rw", "remote", "revocation")
    crls = {"cacert": "ca.pem", "crl_uris": ["/etc/pyipsec/ca.crl", "http://ca/crl"]}
    ((loc, msg),) = messages({**data, "authorities": {"ca": crls}})
    assert loc == ("authorities", "ca", "crl_uris", 1) and "distribution points" in msg
    ocsp = {"cacert": "ca.pem", "crl_uris": "file:///etc/pyipsec/ca.crl", "ocsp_uris": ["ldap://x"]}
    ((loc, _),) = messages({**data, "authorities": {"ca": ocsp}})
    assert loc == ("authorities", "ca", "ocsp_uris", 0)
    ocsp["ocsp_uris"] = ["http://ocsp.example.org/"]
    authority = Config.model_validate({**data, "authorities": {"ca": ocsp}}).authorities["ca"]
    assert [str(p) for p in authority.crl_uris] == ["/etc/pyipsec/ca.crl"]
