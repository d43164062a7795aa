"""The pure parts of the strongSwan harness (tests/support/strongswan.py): no charon needed."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from tests.support.netns import Namespace, Topology
from tests.support.strongswan import Charon, CharonError, IkeSa, ViciOut, psk_connection, render_conf


def test_render_conf_nests_sections() -> None:
    text = render_conf({"charon": {"load_modular": "no", "plugins": {"vici": {"socket": "unix:///x"}}}})
    assert text == (
        "charon {\n"
        "    load_modular = no\n"
        "    plugins {\n"
        "        vici {\n"
        "            socket = unix:///x\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    with pytest.raises(ValueError, match="cannot hold"):
        render_conf({"k": "a}b"})


def _charon(tmp_path: Path, settings: dict[str, str | int] | None = None) -> Charon:
    # the namespace only names things here: nothing is started
    ns = Namespace(cast(Topology, None), "pyi-unit-x", "x")
    return Charon(ns, tmp_path / "c", settings=settings)


def test_config_follows_strongswan_md(tmp_path: Path) -> None:
    charon = _charon(
        tmp_path, settings={"charon.block_threshold": 50, "charon.plugins.vici.socket": "unix:///y"}
    )
    charon.write_config()
    conf = charon.conf_path.read_text()
    load = next(line for line in conf.splitlines() if line.strip().startswith("load ="))
    plugins = load.split("=", 1)[1].split()
    assert plugins.index("kernel-libipsec") < plugins.index("kernel-netlink")
    assert "load_modular = no" in conf
    assert "load_legacy = yes" in conf
    assert f"file = {tmp_path / 'c' / 'resolv.conf'}" in conf
    assert f"path = {charon.log_path}" in conf
    assert "block_threshold = 50" in conf
    assert "socket = unix:///y" in conf  # the override replaced the default
    assert conf.count("socket =") == 1
    assert charon.run_dir.is_dir()


def test_overlong_socket_path_is_refused(tmp_path: Path) -> None:
    charon = _charon(tmp_path / ("d" * 100))
    with pytest.raises(CharonError, match="too long"):
        charon.start()
    assert charon.proc is None


def test_list_sas_records_parse_vici_output() -> None:
    raw: dict[str, ViciOut] = {
        "uniqueid": "1",
        "state": "ESTABLISHED",
        "initiator": "yes",
        "initiator-spi": "c1e2a3b4d5e6f708",
        "responder-spi": "0102030405060708",
        "local-host": "10.231.1.1",
        "local-port": "4500",
        "remote-host": "10.231.1.2",
        "remote-port": "4500",
        "local-id": "left",
        "remote-id": "right",
        "child-sas": {
            "net-1": {
                "name": "net",
                "uniqueid": "1",
                "state": "INSTALLED",
                "protocol": "ESP",
                "mode": "TUNNEL",
                "encap": "yes",
                "spi-in": "c0ffee01",
                "spi-out": "c0ffee02",
                "local-ts": ["10.232.1.1/32"],
                "remote-ts": ["10.232.2.1/32"],
            }
        },
    }
    sa = IkeSa.from_vici("site", raw)
    assert (sa.name, sa.state, sa.initiator) == ("site", "ESTABLISHED", True)
    assert (sa.spi_i, sa.spi_r, sa.local_port, sa.remote_port) == (
        "c1e2a3b4d5e6f708",
        "0102030405060708",
        4500,
        4500,
    )
    child = sa.child("net")
    assert child is not None
    assert (child.spi_in, child.spi_out, child.encap) == ("c0ffee01", "c0ffee02", True)
    assert child.local_ts == ("10.232.1.1/32",)
    assert sa.child("other") is None


def test_psk_connection_shape() -> None:
    conn = psk_connection(
        local_addr="10.231.1.1",
        remote_addr="10.231.1.2",
        local_id="l",
        remote_id="r",
        local_ts=["10.232.1.1/32"],
        remote_ts=["10.232.2.1/32"],
        child_extra={"start_action": "trap"},
    )
    assert conn["proposals"] == ["aes256gcm16-prfsha256-ecp256"]
    assert conn["local"] == {"auth": "psk", "id": "l"}
    children = conn["children"]
    assert isinstance(children, dict)
    assert children["net"]["esp_proposals"] == ["aes256gcm16"]
    assert children["net"]["start_action"] == "trap"
