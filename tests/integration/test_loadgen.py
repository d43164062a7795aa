"""The load generator (``bench/loadgen.py``) cross-checked against real strongSwan clients (issue 13).

The same small scenario runs twice against one pyipsec gateway (the real daemon, its data plane
on; ``tests.support.gateway_load``: a PSK connection and an EAP-MSCHAPv2 connection with the
gateway's certificate, one pool): five road warriors, ``user0001`` … ``user0005``, the odd ones
with a PSK, the even ones with EAP-MSCHAPv2, each asking for a virtual IP. First the five come
from the load generator (one process, one engine, five source addresses), then from five
strongSwan charons (5.9.8, each in a namespace of its own). Each time, the gateway's own view
(``pyipsec status --json``, the CLI) must be the same: five established IKE SAs, each with one
installed Child SA, of the connection its authentication picks, for the identity it claims, with
a virtual IP from the pool; the same identities get the same addresses both times (the store
remembers who had which). That the load generator causes what real clients cause is what lets
the benchmark's figures stand for real users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
from bench.loadgen import GATEWAY_ID, auth_of, client_names, password_of, psk_of

from tests.support import gateway_load as gl
from tests.support import roadwarrior as rw
from tests.support.netns import Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import CharonFactory

pytestmark = [pytest.mark.integration, pytest.mark.interop]

REPO = Path(__file__).resolve().parents[2]
N = 5
HOLD = 4.0


def gateway_view(gw: PyIpsecDaemon) -> list[tuple[str, str, str, int]]:
    """``pyipsec status --json`` of the gateway, as (connection, peer identity, virtual IP,
    installed Child SAs) per established IKE SA, sorted."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pyipsec", "status", "--json", "--socket", str(gw.socket)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    status: Any = json.loads(proc.stdout)
    sas = status["ike_sas"] if isinstance(status, dict) else status
    view = []
    for sa in sas:
        if sa["state"] != "ESTABLISHED":
            continue
        installed = sum(1 for c in sa["children"] if c["state"] == "INSTALLED")
        (vip,) = sa["virtual_ips"]
        view.append((sa["name"], sa["remote_id"], vip, installed))
    return sorted(view)


def expected_shape(users: list[str]) -> list[tuple[str, str, int]]:
    return sorted((auth_of(i, "mixed"), u, 1) for i, u in enumerate(users))


def test_loadgen_and_strongswan_clients_look_the_same_to_the_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    users = client_names(N)
    psk_users = [u for i, u in enumerate(users) if auth_of(i, "mixed") == "psk"]
    eap_users = [u for u in users if u not in psk_users]
    site = gl.load_site(topology, N)
    pki = rw.make_pki(tmp_path / "pki")
    db = tmp_path / "gateway-store" / "users.db"
    rw.add_users(db, {u: password_of(u) for u in eap_users}, cli=False)
    gw = pyipsec_factory(
        site.gw, gl.pyipsec_gateway_config(site, pki, users_db=db, psk_users=psk_users), name="gateway"
    )

    # -- 1. the load generator ------------------------------------------------------------------
    args = [
        "--gateway-psk", site.gw_psk, "--gateway-eap", site.gw_eap,
        "--ca", str(pki.ca_cert), "--lan", site.lan_net, "--first-source", gl.FIRST_SOURCE,
        "--clients", str(N), "--rate", "20", "--hold", str(HOLD), "--setup-timeout", "20",
    ]  # fmt: skip
    result, held_view = gl.run_loadgen(site, args, lambda: gateway_view(gw))
    view_loadgen = held_view or []
    assert result["established"] == N and result["failed"] == 0 and result["lost"] == 0, result
    assert result["deleted"] == N  # it deleted them all at the end
    assert [(c, u, n) for c, u, _, n in view_loadgen] == expected_shape(users)
    assert all(ip_address(vip) in ip_network(gl.POOL) for _, _, vip, _ in view_loadgen)
    rw.wait_until(lambda: gateway_view(gw) == [], timeout=10, what="the gateway to drop the loadgen's SAs")

    # -- 2. five strongSwan clients, each in a namespace of its own ---------------------------------
    ca_pem = pki.ca_cert.read_bytes()
    charons = []
    for i, user in enumerate(users):
        ns = topology.namespace(f"ss{i}")
        link = topology.link(site.gw, ns)
        ns.add_route(str(site.link.a_ip4.network), link.a_addr)  # the gateway's two addresses
        charon = charon_factory(ns, user)
        if auth_of(i, "mixed") == "psk":
            charon.load_shared(psk_of(user), type="IKE", owners=[user])
            conn = rw.charon_client_conn(gateway=site.gw_psk, user=user, lan_net=site.lan_net, ca_pem=ca_pem)
            conn["local"] = {"auth": "psk", "id": user}
            conn["remote"] = {"auth": "psk", "id": GATEWAY_ID}
        else:
            charon.load_cert(ca_pem, flag="CA")
            charon.load_shared(password_of(user), type="EAP", owners=[user])
            conn = rw.charon_client_conn(gateway=site.gw_eap, user=user, lan_net=site.lan_net, ca_pem=ca_pem)
        charon.load_conn({"vpn": conn})
        charons.append(charon)
    rw.parallel(lambda c: c.initiate(child="net", ike="vpn", timeout=20), charons)
    view_strongswan = gw.wait_for(lambda sas: len([s for s in sas if s["state"] == "ESTABLISHED"]) == N)
    assert view_strongswan
    view_ss = gateway_view(gw)

    assert [(c, u, n) for c, u, _, n in view_ss] == expected_shape(users)
    # the same identities, the same addresses from the pool: the gateway could not tell them apart
    assert view_ss == view_loadgen
