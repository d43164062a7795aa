"""``reload``: the daemon re-reads its configuration file without dropping SAs (``daemon.reload``).

Runtimes over the memory network under a virtual clock (``tests/support/daemons.py``): the
gateway's configuration is a file, changed between steps, and reloaded through the control
command as ``pyipsec reload`` (and SIGHUP) do.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from pyipsec.config.load import load_config
from pyipsec.daemon.runtime import REKEY_LINGER
from pyipsec.iana.ikev2 import ExchangeType
from tests.support.daemons import GW_ADDR, GW_NAME, I_ADDR, Node, World, eap_trees, psk_trees
from tests.support.pki import make_ca, make_end_entity
from tests.support.pyipsecd import to_toml

NEW_PSK = "0x" + "17" * 32


def _write(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(to_toml(tree))
    return path


def _node(world: World, tree: dict[str, Any], address: str, name: str) -> tuple[Node, Path]:
    path = _write(world.tmp_path / f"{name}.toml", tree)
    return world.node(load_config(path), address, config_path=path), path


def _pair(
    world: World, tmp_path: Path, **kw: Any
) -> tuple[Node, Node, dict[str, Any], dict[str, Any], Path, Path]:
    c, g = psk_trees(tmp_path, **kw)
    client, cpath = _node(world, c, I_ADDR, "client")
    gw, gpath = _node(world, g, GW_ADDR, "gateway")
    return client, gw, c, g, cpath, gpath


def _reload(world: World, node: Node) -> dict[str, Any]:
    result: dict[str, Any] = world.command(node, "reload")
    return result


def _up_ok(world: World, node: Node, name: str = "office") -> dict[str, Any]:
    result: dict[str, Any] = world.command(node, "up", {"name": name})
    assert result["ok"] is True, result
    return result


def _untouched(node: Node, spis: list[bytes]) -> None:
    """The Child SAs ``spis`` are still installed and sending, never retired or removed."""
    for spi in spis:
        assert node.sink.ops(spi) == ["install", "activate"] or node.sink.ops(spi) == ["install"]
        assert spi in node.sink.installed


def _refused_then_old_still_serves(
    world: World, client: Node, gw: Node, gpath: Path, text: str
) -> dict[str, Any]:
    before = gw.runtime.config
    gpath.write_text(text)
    result = _reload(world, gw)
    assert result["ok"] is False and result["errors"], result
    assert gw.runtime.config is before
    # the old configuration still serves: a new SA comes up after the refused reload
    _up_ok(world, client)
    return result


def test_broken_toml_is_refused_with_its_line_and_the_old_config_keeps_serving(
    world: World, tmp_path: Path
) -> None:
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    result = _refused_then_old_still_serves(world, client, gw, gpath, to_toml(g) + "\n[connections.office\n")
    (err,) = result["errors"]
    assert err["file"] == str(gpath) and isinstance(err["line"], int) and err["line"] > 1


def test_a_schema_error_is_refused_with_its_key_path(world: World, tmp_path: Path) -> None:
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    g["connections"]["office"]["children"]["net"]["local_ts"] = ["10.2.0.0/99"]
    g["settings"]["retransmit_tries"] = "many"
    result = _refused_then_old_still_serves(world, client, gw, gpath, to_toml(g))
    keys = {e["key"] for e in result["errors"]}
    assert keys == {"connections.office.children.net.local_ts[0]", "settings.retransmit_tries"}


def test_a_missing_certificate_is_refused_with_its_key_path(world: World, tmp_path: Path) -> None:
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    g["connections"]["office"]["local"]["certs"] = [str(tmp_path / "gone.pem")]
    result = _refused_then_old_still_serves(world, client, gw, gpath, to_toml(g))
    (err,) = result["errors"]
    assert err["key"].startswith("connections.office.local.certs") and "gone.pem" in err["message"]


def test_a_garbage_certificate_and_an_unreadable_file_are_refused(world: World, tmp_path: Path) -> None:
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    g["connections"]["office"]["remote"]["cacerts"] = [str(garbage)]
    result = _refused_then_old_still_serves(world, client, gw, gpath, to_toml(g))
    assert [e["key"] for e in result["errors"]] == ["connections.office.remote.cacerts"]
    gpath.unlink()
    result = _reload(world, gw)
    assert result["ok"] is False and "cannot read" in result["errors"][0]["message"]


def test_a_refused_reload_is_logged_with_the_key_path(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    g["connections"]["office"]["proposals"] = ["aes256-nosuchprf-modp2048"]
    _write(gpath, g)
    with caplog.at_level(logging.ERROR, logger="pyipsec.daemon"):
        assert _reload(world, gw)["ok"] is False
    assert "reload of" in caplog.text and "refused" in caplog.text
    assert "connections.office.proposals[0]" in caplog.text


def test_an_unchanged_file_changes_nothing(world: World, tmp_path: Path) -> None:
    client, gw, _c, _g, _cp, _gp = _pair(world, tmp_path)
    _up_ok(world, client)
    (sa,) = gw.sas()
    spis = gw.child_spis()
    result = _reload(world, gw)
    assert result["ok"] is True
    assert (result["added"], result["removed"], result["changed"]) == ([], [], [])
    assert result["unchanged"] == ["office"] and result["warnings"] == [] and result["deleted_sas"] == []
    assert result["secrets_changed"] is False and result["pools_changed"] == []
    world.run_for(30)
    assert [s.sa_id for s in gw.sas()] == [sa.sa_id] and gw.child_spis() == spis
    _untouched(gw, spis)


def test_a_removed_connection_has_its_sa_deleted_and_the_peer_told(world: World, tmp_path: Path) -> None:
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path, client_child={"dpd_action": "restart"})
    _up_ok(world, client)
    (sa,) = gw.sas()
    g["connections"]["lab"] = g["connections"].pop("office")
    g["connections"]["lab"]["remote"]["id"] = "lab.example.org"
    g["secrets"]["ike-lab"] = {"id": ["gw.example.org", "lab.example.org"], "secret": NEW_PSK}
    _write(gpath, g)
    informational = len(world.net.requests(ExchangeType.INFORMATIONAL, src=GW_ADDR))
    result = _reload(world, gw)
    assert result["ok"] is True, result
    assert (result["added"], result["removed"], result["deleted_sas"]) == (["lab"], ["office"], [sa.sa_id])
    world.run_for(5)
    # the gateway sent the Delete and the client took its SA down
    assert len(world.net.requests(ExchangeType.INFORMATIONAL, src=GW_ADDR)) == informational + 1
    assert gw.sas() == [] and client.sas() == [] and gw.sink.installed == {} and client.sink.installed == {}
    assert world.command(gw, "connections") == {"connections": ["lab"]}
    # the client reconnects (dpd_action restart) but the gateway no longer knows the connection
    world.run_for(10)
    assert client.sas() == [] or not client.sas()[0].established


def test_an_added_connection_is_usable_and_the_others_sas_stay(world: World, tmp_path: Path) -> None:
    lab_client = {
        "connections": {
            "lab": {
                "local_addrs": [I_ADDR],
                "remote_addrs": [GW_ADDR],
                "local": {"auth": "psk", "id": "lab.example.org"},
                "remote": {"auth": "psk", "id": "gw.example.org"},
                "children": {"net": {"local_ts": ["10.5.0.0/16"], "remote_ts": ["10.6.0.0/16"]}},
            }
        },
        "secrets": {"ike-lab": {"id": ["lab.example.org", "gw.example.org"], "secret": NEW_PSK}},
    }
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path, client=lab_client)
    _up_ok(world, client)
    (office,) = gw.sas()
    spis = gw.child_spis()
    refused = world.command(client, "up", {"name": "lab"})
    assert refused["ok"] is False  # the gateway does not know lab.example.org yet
    g["connections"]["lab"] = {
        "local_addrs": [GW_ADDR],
        "remote_addrs": [I_ADDR],
        "local": {"auth": "psk", "id": "gw.example.org"},
        "remote": {"auth": "psk", "id": "lab.example.org"},
        "children": {"net": {"local_ts": ["10.6.0.0/16"], "remote_ts": ["10.5.0.0/16"]}},
    }
    g["secrets"]["ike-lab"] = {"id": ["gw.example.org", "lab.example.org"], "secret": NEW_PSK}
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True and result["added"] == ["lab"] and result["unchanged"] == ["office"]
    assert result["secrets_changed"] is True
    _up_ok(world, client, "lab")
    assert sorted(s.connection for s in gw.sas()) == ["lab", "office"]
    assert office.sa_id in {s.sa_id for s in gw.sas()}
    _untouched(gw, spis)


def test_an_added_connection_with_start_action_start_is_initiated(world: World, tmp_path: Path) -> None:
    client, gw, c, _g, cpath, _gp = _pair(world, tmp_path)
    assert client.sas() == []
    c["connections"]["office"]["children"]["net"]["start_action"] = "start"
    _write(cpath, c)
    result = _reload(world, client)
    assert result["ok"] is True and result["changed"] == ["office"] and result["started"] == ["office"]
    world.run_for(5)
    (sa,) = client.sas()
    assert sa.established and len(gw.sas()) == 1


def test_a_changed_psk_applies_to_new_sas_and_the_existing_sa_stays(world: World, tmp_path: Path) -> None:
    client, gw, c, g, cpath, gpath = _pair(world, tmp_path)
    _up_ok(world, client)
    (old,) = gw.sas()
    spis = gw.child_spis()
    g["secrets"]["ike-office"]["secret"] = NEW_PSK
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True and result["secrets_changed"] is True
    assert result["changed"] == [] and result["unchanged"] == ["office"]
    # the established SA stays, and keeps working: its Child SA is rekeyed under it
    assert world.command(client, "rekey", {"name": "office"})["rekeying"]
    world.run_for(REKEY_LINGER + 1)
    (still,) = gw.sas()
    assert still.sa_id == old.sa_id and still.established and gw.child_spis() != spis
    # a new SA with the old key fails
    world.command(client, "down", {"name": "office"})
    assert world.command(client, "up", {"name": "office"})["ok"] is False
    assert gw.sas() == [] or not any(s.established for s in gw.sas())
    # the client reloads the new key too: up again
    c["secrets"]["ike-office"]["secret"] = NEW_PSK
    _write(cpath, c)
    assert _reload(world, client)["secrets_changed"] is True
    _up_ok(world, client)


def test_a_changed_proposal_applies_to_new_sas_only(world: World, tmp_path: Path) -> None:
    both = {"connections": {"office": {"proposals": ["aes256gcm16-prfsha256-x25519"]}}}
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path, client=both, gateway=both)
    _up_ok(world, client)
    (old,) = gw.sas()
    g["connections"]["office"]["proposals"] = ["aes128-sha256-modp3072"]  # the client does not offer it
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True and result["changed"] == ["office"]
    # strongSwan's behaviour: the SA of a changed connection stays up with what it negotiated
    world.run_for(30)
    (still,) = gw.sas()
    assert still.sa_id == old.sa_id and still.proposal == old.proposal and still.established
    world.command(client, "down", {"name": "office"})
    refused = world.command(client, "up", {"name": "office"})
    assert refused["ok"] is False and "NO_PROPOSAL_CHOSEN" in refused["message"]


def test_settings_that_need_a_restart_are_kept_with_a_warning(world: World, tmp_path: Path) -> None:
    _client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    g["settings"].update({"port": 1500, "tun": "other0", "cookie_threshold": 3, "retransmit_tries": 2})
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True
    assert sorted(result["settings_applied"]) == ["cookie_threshold", "retransmit_tries"]
    assert result["warnings"] == [
        "settings.port changed: needs a restart (keeping 500)",
        "settings.tun changed: needs a restart (keeping pyi0)",
    ]
    settings = gw.runtime.config.settings
    assert (settings.port, settings.tun, settings.cookie_threshold) == (500, "pyi0", 3)
    assert gw.runtime.engine.config.cookie_threshold == 3
    assert gw.runtime.engine.config.retransmit.tries == 2


def test_a_changed_store_needs_a_restart_and_its_password_is_never_shown(
    world: World, tmp_path: Path
) -> None:
    _c, g = psk_trees(tmp_path)
    g["settings"]["store"] = "postgresql://pyipsec:old-s3cret@db.example.org/vpn"  # no pools: not opened
    gw, gpath = _node(world, g, GW_ADDR, "gateway")
    g["settings"]["store"] = "postgresql://pyipsec:new-s3cret@db.example.org/vpn"
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True
    assert result["warnings"] == [
        "settings.store changed: needs a restart (keeping postgresql://pyipsec:***@db.example.org/vpn)"
    ]
    assert gw.runtime.config.settings.store == "postgresql://pyipsec:old-s3cret@db.example.org/vpn"


def test_log_level_is_applied(world: World, tmp_path: Path) -> None:
    _client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    root = logging.getLogger()
    saved = root.level
    try:
        g["settings"]["log_level"] = "error"
        _write(gpath, g)
        assert _reload(world, gw)["settings_applied"] == ["log_level"]
        assert root.level == logging.ERROR
    finally:
        root.setLevel(saved)


def _rw_trees(tmp_path: Path, pool: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return psk_trees(
        tmp_path,
        client={"connections": {"office": {"vips": ["0.0.0.0"]}}},
        client_child={"local_ts": ["dynamic"]},
        gateway={
            "pools": {"rw": {"addrs": pool}},
            "connections": {
                "office": {
                    "remote_addrs": ["%any"],
                    "remote": {"id": "%any"},
                    "pools": ["rw"],
                    "children": {"net": {"remote_ts": ["dynamic"]}},
                }
            },
            "secrets": {"ike-office": {"id": []}},
        },
    )


def _road_warrior(world: World, tree: dict[str, Any], n: int) -> Node:
    address = f"192.0.2.{10 + n}"
    tree = {**tree, "connections": {"office": {**tree["connections"]["office"]}}}
    tree["connections"]["office"]["local_addrs"] = [address]
    tree["connections"]["office"]["local"] = {"auth": "psk", "id": f"rw{n}.example.org"}
    tree["secrets"] = {"ike-office": {"id": [], "secret": tree["secrets"]["ike-office"]["secret"]}}
    node, _ = _node(world, tree, address, f"rw{n}")
    return node


def test_a_pool_shrunk_below_its_leases_keeps_them_and_refuses_new_ones(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c, g = _rw_trees(tmp_path, "10.3.0.1-10.3.0.3")
    gw, gpath = _node(world, g, GW_ADDR, "gateway")
    one, two = _road_warrior(world, c, 1), _road_warrior(world, c, 2)
    assert _up_ok(world, one)["virtual_ips"] == ["10.3.0.1"]
    assert _up_ok(world, two)["virtual_ips"] == ["10.3.0.2"]
    spis = gw.child_spis()
    g["pools"]["rw"]["addrs"] = "10.3.0.1-10.3.0.1"
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True and result["pools_changed"] == ["rw"] and result["unchanged"] == ["office"]
    (warning,) = result["warnings"]
    assert warning.startswith("pools.rw is now 10.3.0.1-10.3.0.1: 1 live lease(s) outside it (10.3.0.2)")
    # the existing leases are kept: both SAs stay, with their addresses
    world.run_for(30)
    assert sorted(str(v) for s in gw.sas() for v in s.virtual_ips) == ["10.3.0.1", "10.3.0.2"]
    _untouched(gw, spis)
    store = gw.runtime.store
    assert store is not None and {str(le.address) for le in store.leases("rw") if le.live} == {
        "10.3.0.1",
        "10.3.0.2",
    }
    # a new client gets nothing: the new range is full; the log names the pool
    three = _road_warrior(world, c, 3)
    with caplog.at_level(logging.INFO, logger="pyipsec"):
        refused = world.command(three, "up", {"name": "office"})
    assert refused["ok"] is False and "INTERNAL_ADDRESS_FAILURE" in refused["message"]
    assert "pool 'rw' is exhausted: all 1 addresses are leased" in caplog.text
    # once the client inside the new range leaves, its address goes to the next one
    world.command(one, "down", {"name": "office"})
    world.command(three, "down", {"name": "office"})
    assert _up_ok(world, three)["virtual_ips"] == ["10.3.0.1"]
    assert ip_address("10.3.0.2") in {v for s in gw.sas() for v in s.virtual_ips}


def test_reload_without_a_file_is_refused(world: World, tmp_path: Path) -> None:
    c, g = psk_trees(tmp_path)
    gw = world.node(load_config(_write(tmp_path / "g.toml", g)), GW_ADDR)  # no config_path
    result = _reload(world, gw)
    assert result["ok"] is False and "without a configuration file" in result["errors"][0]["message"]
    del c


def test_reload_takes_no_arguments(world: World, tmp_path: Path) -> None:
    _client, gw, *_ = _pair(world, tmp_path)
    with pytest.raises(Exception, match="reload"):
        world.command(gw, "reload", {"now": True})


def _valid() -> dict[str, datetime]:
    """Validity around the real time (the runtime checks certificates against the wall clock)."""
    now = datetime.now(UTC)
    return {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=30)}


def test_changed_certificates_and_eap_users_apply_to_new_sas(world: World, tmp_path: Path) -> None:
    c, g, pki = eap_trees(
        tmp_path, gateway={"secrets": {"eap-alice": {"id": "alice", "secret": "alice-secret-1"}}}
    )
    alice, _ = _node(world, c, I_ADDR, "alice")
    gw, gpath = _node(world, g, GW_ADDR, "gateway")
    _up_ok(world, alice, "rw")
    (sa,) = gw.sas()
    # the gateway's certificate and key are replaced by ones from a CA the client does not trust
    stranger = make_end_entity(make_ca("some other CA", **_valid()), GW_NAME, dns=[GW_NAME], **_valid())
    pki.gw_cert.write_bytes(stranger.pem)
    pki.gw_key.write_bytes(stranger.key_pem())
    result = _reload(world, gw)
    assert result["ok"] is True and result["changed"] == ["rw"], result
    # what `pyipsec check` warns about comes with the summary (the new certificate expires soon)
    assert any("connections.rw.local.certs" in w and "expires on" in w for w in result["warnings"])
    world.run_for(30)
    assert [s.sa_id for s in gw.sas()] == [sa.sa_id]  # the SA set up with the old one stays
    world.command(alice, "down", {"name": "rw"})
    refused = world.command(alice, "up", {"name": "rw"})
    assert refused["ok"] is False and "untrusted issuer" in refused["message"]  # peers see the new one
    # a certificate of the trusted CA again, and a new EAP user: bob connects
    trusted = make_end_entity(pki.ca, GW_NAME, dns=[GW_NAME], **_valid())
    pki.gw_cert.write_bytes(trusted.pem)
    pki.gw_key.write_bytes(trusted.key_pem())
    g["secrets"]["eap-bob"] = {"id": "bob", "secret": "bob-secret-22"}
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True and result["secrets_changed"] is True and result["changed"] == ["rw"]
    cb, _gb, _pki = eap_trees(tmp_path / "bob", user="bob", password="bob-secret-22")
    cb["connections"]["rw"]["local_addrs"] = ["192.0.2.7"]
    cb["connections"]["rw"]["remote"]["cacerts"] = [str(pki.ca_cert)]
    bob, _ = _node(world, cb, "192.0.2.7", "bob")
    _up_ok(world, bob, "rw")
    _up_ok(world, alice, "rw")


def test_radius_and_authorities_are_rebuilt_only_when_their_sections_change(
    world: World, tmp_path: Path
) -> None:
    _client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    lookups = gw.runtime.lookups
    revocation = lookups.revocation
    assert lookups.radius is None
    g["radius"] = {"servers": {"aaa": {"address": "192.0.2.99", "secret": "radius-secret-1"}}}
    _write(gpath, g)
    assert _reload(world, gw)["ok"] is True
    first = lookups.radius
    assert first is not None and lookups.revocation is revocation  # [authorities] did not change
    assert _reload(world, gw)["ok"] is True and lookups.radius is first  # nothing changed: kept
    g["radius"]["servers"]["aaa"]["secret"] = "radius-secret-2"
    ca = make_ca("reload test CA", **_valid())
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    g["authorities"] = {"corp": {"cacert": str(tmp_path / "ca.pem"), "ocsp_uris": ["http://192.0.2.98/"]}}
    _write(gpath, g)
    assert _reload(world, gw)["ok"] is True
    assert lookups.radius is not None and lookups.radius is not first and lookups.revocation is not revocation
    assert gw.runtime.engine.config.revocation_sources is True
    # the old client is closed once a lookup in flight on it could no longer be waiting
    assert not first._closed
    world.run_for(2.0 * 3 + 1.5)
    assert first._closed
    del g["radius"]
    _write(gpath, g)
    assert _reload(world, gw)["ok"] is True and lookups.radius is None


def test_a_removed_connection_is_no_longer_reconnected(world: World, tmp_path: Path) -> None:
    client, gw, c, _g, cpath, _gp = _pair(world, tmp_path, client_child={"start_action": "start"})
    world.run_for(5)
    assert len(client.sas()) == 1
    world.shutdown(gw)  # the gateway goes; the client keeps trying
    world.run_for(60)
    assert "office" in client.runtime.reconnect.status(world.clock.now())
    c["connections"]["spare"] = c["connections"].pop("office")
    _write(cpath, c)
    result = _reload(world, client)
    assert result["ok"] is True and result["removed"] == ["office"] and result["started"] == ["spare"]
    assert "office" not in client.runtime.reconnect.status(world.clock.now())
    tries = len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR))
    world.run_for(600)
    # only "spare" (start_action start) is still being tried, never "office" again
    assert {s.connection for s in client.sas()} <= {"spare"}
    assert len(world.net.requests(ExchangeType.IKE_SA_INIT, src=I_ADDR)) > tries
    assert set(client.runtime.reconnect.status(world.clock.now())) <= {"spare"}


def test_a_store_that_cannot_be_opened_refuses_the_reload(world: World, tmp_path: Path) -> None:
    """Pools appear, the daemon had no store yet, and its ``users`` path is unusable."""
    client, gw, _c, g, _cp, gpath = _pair(world, tmp_path)
    Path(g["settings"]["users"]).mkdir()
    g["pools"] = {"rw": {"addrs": "10.3.0.0/24"}}
    g["connections"]["office"]["pools"] = ["rw"]
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is False and gw.runtime.store is None
    (err,) = result["errors"]
    assert err["key"] == "settings.users" and "is not a regular file" in err["message"]
    _up_ok(world, client)


def test_pools_added_to_a_daemon_without_a_store_open_it(world: World, tmp_path: Path) -> None:
    c, g = _rw_trees(tmp_path, "10.3.0.1-10.3.0.9")
    first = {**g, "connections": {"office": {**g["connections"]["office"]}}}
    del first["pools"], first["connections"]["office"]["pools"]
    gw, gpath = _node(world, first, GW_ADDR, "gateway")
    assert gw.runtime.store is None
    one = _road_warrior(world, c, 1)
    assert world.command(one, "up", {"name": "office"})["ok"] is False  # no pool to ask
    _write(gpath, g)
    result = _reload(world, gw)
    assert result["ok"] is True and result["pools_changed"] == ["rw"] and result["changed"] == ["office"]
    assert gw.runtime.store is not None
    assert _up_ok(world, one)["virtual_ips"] == ["10.3.0.1"]
    assert [str(le.address) for le in gw.runtime.store.leases("rw") if le.live] == ["10.3.0.1"]
