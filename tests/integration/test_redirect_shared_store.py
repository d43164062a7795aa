"""Redirect and failover between two gateways that share one PostgreSQL store (issue 14).

The farm of ``test_shared_store`` (two gateway namespaces, EAP users and one address pool in a
private PostgreSQL cluster, client namespaces linked to both gateways): here a client knows both
gateways (its ``remote_addrs``) and must keep its virtual IP when it moves — by a redirect of
its established SA, and after a kill -9 of its gateway (DPD, ``dpd_action = restart``, the next
``remote_addrs`` entry, the old address asked back and given back by the shared lease).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pyipsec.control.protocol import JsonValue
from tests.integration.test_shared_store import SERVICE, USERS, Farm, _up, cluster  # noqa: F401 - fixture
from tests.support import roadwarrior as rw
from tests.support.netns import Topology
from tests.support.postgres import PostgresCluster
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

DPD = 2


def _client(farm: Farm, user: str) -> PyIpsecDaemon:
    """A client of both gateways (gw1 first), restarted by DPD, reaching either service address."""
    ns, addrs = farm.client_ns(user)
    cfg = rw.client_config(
        farm.tmp / user,
        ca_cert=farm.pki.ca_cert,
        gateway=addrs["gw1"],
        user=user,
        password=USERS[user],
        lan_net="10.240.0.0/16",
    )
    conn = cfg["connections"]["vpn"]  # type: ignore[index]
    conn["remote_addrs"] = [addrs["gw1"], addrs["gw2"]]
    conn["dpd_delay"] = DPD
    conn["children"]["net"]["dpd_action"] = "restart"
    cfg["settings"].update(retransmit_timeout=1, retransmit_base=1.0, retransmit_tries=2)  # type: ignore[attr-defined]
    return farm.factory(ns, cfg, name=user)


def _at(sas: list[dict[str, JsonValue]], gateway_addr: str) -> bool:
    return rw.established(sas) and [str(s["remote"]).rsplit(":", 1)[0] for s in sas] == [gateway_addr]


def test_redirected_and_failed_over_clients_keep_their_addresses(
    topology: Topology,
    cluster: PostgresCluster,  # noqa: F811
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    farm = Farm(topology, tmp_path, cluster.create_database("farm"), pyipsec_factory)
    moved, survivor = "user0", "user1"
    clients = {u: _client(farm, u) for u in (moved, survivor)}
    vips = {}
    for user, daemon in clients.items():
        result = _up(daemon)
        assert result["ok"] is True, result
        vips[user] = str(result["virtual_ips"][0])  # type: ignore[index]
    addrs = {u: farm.client_ns(u)[1] for u in clients}

    # a redirect of the established SA: the client comes up on gw2 with the same address
    gw1 = farm.gateways["gw1"]
    sa_id = next(s["id"] for s in gw1.status() if s["remote_id"] == moved)
    answer = gw1.call("redirect", sa_id=sa_id, to=addrs[moved]["gw2"])
    assert isinstance(answer, dict) and answer["redirected"] == [sa_id], answer
    clients[moved].wait_for(lambda sas: _at(sas, addrs[moved]["gw2"]), timeout=20)
    (sa,) = clients[moved].status()
    assert sa["virtual_ips"] == [vips[moved]]
    ns, _ = farm.client_ns(moved)
    assert rw.ping_from(ns, vips[moved], SERVICE["gw2"])

    # kill -9 of gw1: its last client is back on gw2 within DPD + one setup, with its address
    assert gw1.proc is not None
    gw1.proc.kill()
    gw1.proc.wait(5)
    died = time.monotonic()
    clients[survivor].wait_for(lambda sas: _at(sas, addrs[survivor]["gw2"]), timeout=30)
    took = time.monotonic() - died
    print(f"failover after kill -9 with the shared store: {took:.2f} s")
    assert took <= 2 * DPD + 3 + 1 + 3
    (sa,) = clients[survivor].status()
    assert sa["virtual_ips"] == [vips[survivor]]
    ns, _ = farm.client_ns(survivor)
    assert rw.ping_from(ns, vips[survivor], SERVICE["gw2"])
    assert sorted(r[:2] for r in farm.live_leases()) == sorted((vips[u], u) for u in clients)


DRAIN_N = 20


def test_drain_moves_twenty_clients_each_interrupted_at_most_two_seconds(
    topology: Topology,
    cluster: PostgresCluster,  # noqa: F811
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    farm = Farm(topology, tmp_path, cluster.create_database("farm"), pyipsec_factory)
    users = [f"drain{i}" for i in range(DRAIN_N)]
    for user in users:
        USERS[user] = f"secret-{user}-pw"
        pw = tmp_path / f".pw-{user}"
        pw.write_text(USERS[user] + "\n")
        rw.pyipsec_cli("user", "add", user, "--store", farm.dsn, "--password-file", str(pw))
    daemons: list[PyIpsecDaemon] = []
    try:
        for user in users:
            ns, addrs = farm.client_ns(user)
            cfg = rw.client_config(
                farm.tmp / user,
                ca_cert=farm.pki.ca_cert,
                gateway=addrs["gw1"],
                user=user,
                password=USERS[user],
                lan_net="10.240.0.0/16",
            )
            d = PyIpsecDaemon(ns, tmp_path, cfg, name=user)
            daemons.append(d)
        rw.start_all(daemons)
        results = rw.parallel(_up, daemons)
        assert all(r["ok"] is True for r in results), [r for r in results if not r["ok"]]
        vips = {u: str(r["virtual_ips"][0]) for u, r in zip(users, results, strict=True)}  # type: ignore[index]
        gw1, gw2 = farm.gateways["gw1"], farm.gateways["gw2"]
        assert len(gw1.status()) == DRAIN_N
        # each client pings the service address of whichever gateway it is on: both are in its
        # tunnel's remote_ts; gw1's from before, gw2's after the move
        pings = []
        for user in users:
            ns, _ = farm.client_ns(user)
            argv = [
                "sh",
                "-c",
                f"ping -n -D -i 0.1 -W 1 -w 8 -I {vips[user]} {SERVICE['gw1']} & "
                f"ping -n -D -i 0.1 -W 1 -w 8 -I {vips[user]} {SERVICE['gw2']}; wait",
            ]
            pings.append(ns.popen(argv))
        # one address for gw2 on every client: that of the first client's link, routed over each
        # client's own link to gw2
        target = farm.client_ns(users[0])[1]["gw2"]
        for user in users[1:]:
            ns, addrs = farm.client_ns(user)
            ns.add_route(f"{target}/32", addrs["gw2"])
        started = time.monotonic()
        time.sleep(1.5)
        drained = rw.pyipsec_cli("drain", "--to", target, "--json", "--socket", str(gw1.socket))
        answer = json.loads(drained.stdout)
        assert len(answer["redirected"]) == DRAIN_N and answer["draining"] == target, answer
        gw1.wait_for(lambda sas: sas == [], timeout=30)
        rw.parallel(
            lambda ud: ud[1].wait_for(lambda sas: _at(sas, target), timeout=30),
            list(zip(users, daemons, strict=True)),
        )
        assert time.monotonic() - started < 7, "the moves must fall inside the 8 s of pings"
        gaps = []
        for user, p in zip(users, pings, strict=True):
            out, _ = p.communicate(timeout=30)
            stamps = sorted(
                float(line[1 : line.index("]")])
                for line in out.decode().splitlines()
                if line.startswith("[") and "bytes from" in line
            )
            assert len(stamps) > 20, (user, out.decode()[-1500:])
            gaps.append(max(b - a for a, b in itertools.pairwise(stamps)))
        print(
            "drain of 20 (shared store): longest interruption per client: "
            + ", ".join(f"{g:.2f}" for g in gaps)
        )
        assert max(gaps) <= 2.0, gaps
        for user, d in zip(users, daemons, strict=True):
            (sa,) = d.status()
            assert sa["virtual_ips"] == [vips[user]]  # the shared lease kept its address
        assert len(gw2.status()) == DRAIN_N
    finally:
        for user in users:
            USERS.pop(user, None)
        for d in daemons:
            d.stop()
