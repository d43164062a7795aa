"""Fifty clients over two pyipsec gateways that share one PostgreSQL store (issue 14).

The load generator (``bench/loadgen.py``: one process, one engine, every client from a source
address of its own) drives 50 road warriors: the even ones authenticate with a PSK, the odd ones
with EAP-MSCHAPv2 (their passwords in the shared store), all ask for a virtual IP from the one
pool ``rw`` that both gateways take from the database. Both gateways (real daemons, the
``pyipsec`` CLI, ``tests.support.gateway_load``'s configuration) listen for PSK clients on their
link address and for EAP clients on a second one, so one run of the load generator sends the 25
PSK clients to ``gw1`` and the 25 EAP clients to ``gw2``; the second run swaps the addresses and
every client reconnects to the other gateway. Checked both ways each time: the addresses the
clients were assigned (the load generator's per-client result) and the live leases in the
database (address, identity, owning gateway) — no address twice, and the same address per
identity after the move.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bench.loadgen import auth_of, client_names, password_of

from pyipsec.store.postgres import PostgresStore
from tests.integration.test_shared_store import cluster  # noqa: F401 - fixture
from tests.support import gateway_load as gl
from tests.support import roadwarrior as rw
from tests.support.netns import Topology
from tests.support.postgres import PostgresCluster
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

N = 50
GATEWAYS = ("gw1", "gw2")


def live_leases(dsn: str) -> dict[str, tuple[str, str]]:
    """identity -> (address, gateway) of every live lease, from the database itself."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT identity, host(address), gateway FROM leases WHERE gateway IS NOT NULL"
        ).fetchall()
    assert len(rows) == len({r[0] for r in rows}), rows  # one live lease per identity
    return {str(i): (str(a), str(g)) for i, a, g in rows}


def run_loadgen(
    site: gl.LoadSite, pki: rw.Pki, *, psk_to: str, eap_to: str, dsn: str
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """One run of the load generator: its result, and the database's live leases while it held
    its clients."""
    args = [
        "--gateway-psk", psk_to, "--gateway-eap", eap_to,
        "--ca", str(pki.ca_cert), "--lan", site.lan_net, "--first-source", gl.FIRST_SOURCE,
        "--clients", str(N), "--rate", "25", "--hold", "1", "--setup-timeout", "30", "--per-client",
    ]  # fmt: skip
    result, held = gl.run_loadgen(site, args, lambda: live_leases(dsn))
    return result, held or {}


def test_fifty_clients_over_two_gateways_get_distinct_addresses_and_keep_them_on_the_other(
    topology: Topology,
    cluster: PostgresCluster,  # noqa: F811
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    users = client_names(N)
    psk_users = [u for i, u in enumerate(users) if auth_of(i, "mixed") == "psk"]
    eap_users = [u for u in users if u not in psk_users]
    dsn = cluster.create_database("fifty")
    rw.pyipsec_cli("store", "init", "--store", dsn)
    with PostgresStore(dsn) as store:
        for user in eap_users:
            store.add_user(user, password_of(user))

    site1 = gl.load_site(topology, N)
    gw2 = topology.namespace("gw2")
    link2 = topology.link(gw2, site1.cl)
    eap2 = str(link2.a_ip4.ip + 2)
    gw2.add_address(link2.a_if, f"{eap2}/24")
    gw2.run(["ip", "-4", "route", "add", gl.CLIENT_NET, "via", link2.b_addr])
    site2 = gl.LoadSite(topology, gw2, site1.lan, site1.cl, link2, site1.lan_link, eap2)
    sites = dict(zip(GATEWAYS, (site1, site2), strict=True))
    pki = rw.make_pki(tmp_path / "pki")
    for name, site in sites.items():
        cfg = gl.pyipsec_gateway_config(
            site,
            pki,
            users_db=tmp_path / name / "unused.db",
            psk_users=psk_users,
            settings={"store": dsn, "gateway_id": name},
        )
        pyipsec_factory(site.gw, cfg, name=name)

    # -- 1. PSK clients on gw1, EAP clients on gw2 -------------------------------------------------
    first, held = run_loadgen(site1, pki, psk_to=site1.gw_psk, eap_to=site2.gw_eap, dsn=dsn)
    assert first["established"] == N and first["failed"] == 0 and first["lost"] == 0, first
    vips = {c["name"]: c["vip"] for c in first["per_client"]}
    assert all(v is not None and gl.in_pool(v) for v in vips.values()), vips
    assert len(set(vips.values())) == N, vips  # on the clients: no address twice
    placement = {u: "gw1" if u in psk_users else "gw2" for u in users}
    assert held == {u: (vips[u], placement[u]) for u in users}  # and in the database

    # -- 2. everyone reconnects to the other gateway: the same address -------------------------------
    second, held = run_loadgen(site1, pki, psk_to=site2.gw_psk, eap_to=site1.gw_eap, dsn=dsn)
    assert second["established"] == N and second["failed"] == 0 and second["lost"] == 0, second
    again = {c["name"]: c["vip"] for c in second["per_client"]}
    assert again == vips
    moved = {u: "gw2" if g == "gw1" else "gw1" for u, g in placement.items()}
    assert held == {u: (vips[u], moved[u]) for u in users}
