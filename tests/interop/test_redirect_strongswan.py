"""Redirect (RFC 5685) and failover between two pyipsec gateways, with real peers in namespaces.

Topology: a client namespace with one veth link to each gateway namespace; the client's inner
address 10.232.1.1 is on its ``lo``, each gateway has the service's inner address 10.232.2.1 on
its own ``lo``, so a ping from the client's inner address reaches whichever gateway holds the
tunnel. strongSwan 5.9.8's charon (the independent check of the wire format: it follows
redirects by default) and pyipsec are the clients.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pyipsec.control.protocol import JsonValue
from tests.interop.test_ike_strongswan import PSK, PY_ID, SW_ID, _py_established
from tests.support.netns import Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import Charon, CharonFactory

pytestmark = pytest.mark.interop

IKE, ESP = "aes256gcm16-prfsha256-ecp256", "aes256gcm16"
CLIENT_INNER, SERVICE_INNER = "10.232.1.1", "10.232.2.1"


@dataclass(frozen=True)
class Service:
    client: Namespace
    gw1: Namespace
    gw2: Namespace
    gw1_addr: str
    gw2_addr: str


@pytest.fixture
def service(topology: Topology) -> Service:
    client, gw1, gw2 = topology.namespace("cl"), topology.namespace("g1"), topology.namespace("g2")
    one, two = topology.link(client, gw1), topology.link(client, gw2)
    client.add_address("lo", f"{CLIENT_INNER}/32")
    gw1.add_address("lo", f"{SERVICE_INNER}/32")
    gw2.add_address("lo", f"{SERVICE_INNER}/32")
    return Service(client, gw1, gw2, one.b_addr, two.b_addr)


def gateway_config(
    local: str, *, redirect: dict[str, object] | None = None, remote_ts: str = f"{CLIENT_INNER}/32"
) -> dict[str, object]:
    settings: dict[str, object] = {"log_level": "debug"}
    if redirect is not None:
        settings["redirect"] = redirect
    return {
        "settings": settings,
        "connections": {
            "site": {
                "local_addrs": [local],
                "proposals": [IKE],
                "local": {"auth": "psk", "id": PY_ID},
                "remote": {"auth": "psk", "id": SW_ID if remote_ts == f"{CLIENT_INNER}/32" else "%any"},
                "children": {
                    "net": {
                        "local_ts": [f"{SERVICE_INNER}/32"],
                        "remote_ts": [remote_ts],
                        "esp_proposals": [ESP],
                    }
                },
            }
        },
        "secrets": {
            "ike-site": {"id": [PY_ID, SW_ID, *(f"c{n}.pyipsec.test" for n in range(1, 9))], "secret": PSK}
        },
    }


def client_config(
    remotes: list[str], *, inner: str = CLIENT_INNER, identity: str = SW_ID, **conn: object
) -> dict[str, object]:
    """A pyipsec client with the charon client's identity (the gateways accept either)."""
    return {
        "settings": {
            "log_level": "debug",
            "retransmit_timeout": 1,
            "retransmit_base": 1.0,
            "retransmit_tries": 2,
        },
        "connections": {
            "site": {
                "remote_addrs": remotes,
                "proposals": [IKE],
                "local": {"auth": "psk", "id": identity},
                "remote": {"auth": "psk", "id": PY_ID},
                **conn,
                "children": {
                    "net": {
                        "local_ts": [f"{inner}/32"],
                        "remote_ts": [f"{SERVICE_INNER}/32"],
                        "esp_proposals": [ESP],
                        "dpd_action": "restart",
                    }
                },
            }
        },
        "secrets": {"ike-site": {"id": [PY_ID, identity], "secret": PSK}},
    }


def charon_client(charon: Charon, gateway: str, *, inner: str = CLIENT_INNER, identity: str = SW_ID) -> None:
    charon.load_shared(PSK, owners=[PY_ID, identity], id="psk")
    charon.load_conn(
        {
            "site": {
                "version": "2",
                "remote_addrs": [gateway],
                "proposals": [IKE],
                "mobike": "no",
                "local": {"auth": "psk", "id": identity},
                "remote": {"auth": "psk", "id": PY_ID},
                "children": {
                    "net": {
                        "local_ts": [f"{inner}/32"],
                        "remote_ts": [f"{SERVICE_INNER}/32"],
                        "esp_proposals": [ESP],
                        "mode": "tunnel",
                        "start_action": "none",
                    }
                },
            }
        }
    )


def _remote_host(sas: list[dict[str, JsonValue]]) -> list[str]:
    return [str(s["remote"]).rsplit(":", 1)[0] for s in sas if s["state"] == "ESTABLISHED"]


def _charon_at(charon: Charon, gateway: str, *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sas = [s for s in charon.list_sas("site") if s.state == "ESTABLISHED"]
        if [s.remote_host for s in sas] == [gateway] and all(
            (c := s.child("net")) is not None and c.state == "INSTALLED" for s in sas
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"charon not (only) at {gateway}: {charon.list_sas('site')}\n{charon.describe()}")


def test_strongswan_client_redirected_in_ike_sa_init(
    service: Service,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    gw1 = pyipsec_factory(
        service.gw1,
        gateway_config(service.gw1_addr, redirect={"rule": "static", "target": service.gw2_addr}),
        name="gw1",
    )
    gw2 = pyipsec_factory(service.gw2, gateway_config(service.gw2_addr), name="gw2")
    charon = charon_factory(service.client, "client")
    charon_client(charon, service.gw1_addr)
    charon.initiate(child="net", ike="site", timeout=20)
    _charon_at(charon, service.gw2_addr)
    gw2.wait_for(_py_established)
    assert gw1.status() == []
    assert "answering IKE_SA_INIT request 0 with REDIRECT" in gw1.log_text()
    log = charon.log_text()
    assert "parsed IKE_SA_INIT response 0 [ N(REDIR) ]" in log  # the REDIRECT alone, as RFC 5685 §3
    assert f"redirected to {service.gw2_addr}" in log
    assert "N(REDIR_FROM) ]" in log  # its request to the new gateway
    assert service.client.wait_ping(SERVICE_INNER, timeout=5), gw2.log_text()[-3000:]


def test_strongswan_client_redirected_after_establishment(
    service: Service,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    gw1 = pyipsec_factory(service.gw1, gateway_config(service.gw1_addr), name="gw1")
    gw2 = pyipsec_factory(service.gw2, gateway_config(service.gw2_addr), name="gw2")
    charon = charon_factory(service.client, "client")
    charon_client(charon, service.gw1_addr)
    charon.initiate(child="net", ike="site", timeout=20)
    _charon_at(charon, service.gw1_addr)
    assert service.client.wait_ping(SERVICE_INNER, timeout=5)
    result = gw1.call("redirect", name="site", to=service.gw2_addr)
    assert isinstance(result, dict) and len(result["redirected"]) == 1, result  # type: ignore[arg-type]
    _charon_at(charon, service.gw2_addr, timeout=20)
    assert "parsed INFORMATIONAL request 0 [ N(REDIR) ]" in charon.log_text()
    gw2.wait_for(_py_established)
    gw1.wait_for(lambda sas: sas == [], timeout=20)
    assert service.client.wait_ping(SERVICE_INNER, timeout=5), gw2.log_text()[-3000:]


def test_pyipsec_client_redirected_in_ike_sa_init_and_after_establishment(
    service: Service,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    gw1 = pyipsec_factory(service.gw1, gateway_config(service.gw1_addr), name="gw1")
    gw2 = pyipsec_factory(service.gw2, gateway_config(service.gw2_addr), name="gw2")
    client = pyipsec_factory(
        service.client, client_config([service.gw1_addr, service.gw2_addr]), name="client"
    )
    gw1.call("drain", to=service.gw2_addr)  # new clients are redirected in IKE_SA_INIT
    result = client.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], result
    assert _remote_host(client.status()) == [service.gw2_addr]
    assert gw1.status() == []
    assert service.client.wait_ping(SERVICE_INNER, timeout=5)
    # and back again, now over an INFORMATIONAL REDIRECT from the gateway it is on
    gw1.call("drain", stop=True)
    gw2.call("redirect", name="site", to=service.gw1_addr)
    client.wait_for(lambda sas: _remote_host(sas) == [service.gw1_addr] and len(sas) == 1, timeout=20)
    gw1.wait_for(_py_established)
    assert service.client.wait_ping(SERVICE_INNER, timeout=5), client.log_text()[-3000:]


def test_pyipsec_client_fails_over_after_kill_9_of_its_gateway(
    service: Service,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    dpd = 2
    gw1 = pyipsec_factory(service.gw1, gateway_config(service.gw1_addr), name="gw1")
    pyipsec_factory(service.gw2, gateway_config(service.gw2_addr), name="gw2")
    client = pyipsec_factory(
        service.client, client_config([service.gw1_addr, service.gw2_addr], dpd_delay=dpd), name="client"
    )
    result = client.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], result
    assert _remote_host(client.status()) == [service.gw1_addr]
    assert gw1.proc is not None
    gw1.proc.kill()  # SIGKILL: no Delete, the gateway is just gone
    gw1.proc.wait(5)
    died = time.monotonic()
    client.wait_for(lambda sas: _remote_host(sas) == [service.gw2_addr] and _py_established(sas), timeout=30)
    took = time.monotonic() - died
    # DPD after dpd s of silence (checked every dpd s), 1 + 1 + 1 s of retransmissions, the
    # first reconnect 1 s later, then one setup
    budget = 2 * dpd + 3 + 1 + 3
    print(f"failover after kill -9: {took:.2f} s (budget {budget} s)")
    assert took <= budget, client.log_text()[-3000:]
    assert service.client.wait_ping(SERVICE_INNER, timeout=5)


def test_redirect_loop_between_two_gateways_is_stopped_by_the_limit(
    service: Service,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    to = {"rule": "static"}
    pyipsec_factory(
        service.gw1, gateway_config(service.gw1_addr, redirect={**to, "target": service.gw2_addr}), name="gw1"
    )
    pyipsec_factory(
        service.gw2, gateway_config(service.gw2_addr, redirect={**to, "target": service.gw1_addr}), name="gw2"
    )
    client = pyipsec_factory(
        service.client, client_config([service.gw1_addr, service.gw2_addr]), name="client"
    )
    result = client.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"] is False, result
    assert "more than 5 redirects in 60 s (a redirect loop?)" in str(result["message"])
    assert client.status() == []
    log = client.log_text()
    assert log.count("gateway redirects us to") == 6  # five followed, the sixth refused
    time.sleep(2)  # and nothing starts again
    assert client.status() == [] and client.log_text().count("initiating IKE SA") == 6


# -- drain: several clients, each one's interruption measured ------------------------------------

DRAIN_CLIENTS = 3
PING_INTERVAL = 0.05


@dataclass(frozen=True)
class Fleet:
    clients: list[Namespace]
    gw1: Namespace
    gw2: Namespace
    gw1_addr: str
    gw2_addr: str


@pytest.fixture
def fleet(topology: Topology) -> Fleet:
    """``DRAIN_CLIENTS`` client namespaces, each with a link to each gateway; client n's inner
    address 10.232.1.n on its ``lo``, the service's 10.232.2.1 on each gateway's."""
    gw1, gw2 = topology.namespace("g1"), topology.namespace("g2")
    clients, gw_addrs = [], []
    for n in range(1, DRAIN_CLIENTS + 1):
        c = topology.namespace(f"c{n}")
        c.add_address("lo", f"10.232.1.{n}/32")
        one, two = topology.link(c, gw1), topology.link(c, gw2)
        gw_addrs.append((one.b_addr, two.b_addr))
        clients.append(c)
    for gw in (gw1, gw2):
        gw.add_address("lo", f"{SERVICE_INNER}/32")
    # each client reaches the gateways at the addresses of its own links; a gateway's other
    # links' addresses are its own too, so every client names the gateway by its first link's
    for n, c in enumerate(clients):
        for gw_index, gw_addr in enumerate(gw_addrs[0]):
            if n:
                c.add_route(f"{gw_addr}/32", gw_addrs[n][gw_index])
    return Fleet(clients, gw1, gw2, gw_addrs[0][0], gw_addrs[0][1])


def _gaps(ping_output: str) -> float:
    """The longest time without an echo reply, from ``ping -D`` output."""
    stamps = [
        float(line[1 : line.index("]")])
        for line in ping_output.splitlines()
        if line.startswith("[") and "bytes from" in line
    ]
    assert len(stamps) > 10, ping_output[-2000:]
    return max(b - a for a, b in itertools.pairwise(stamps))


@pytest.mark.parametrize("kind", ["pyipsec", "strongswan"])
def test_drain_moves_every_client_with_a_short_interruption(
    fleet: Fleet,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    kind: str,
) -> None:
    gw1 = pyipsec_factory(fleet.gw1, gateway_config("%any", remote_ts="10.232.1.0/24"), name="gw1")
    gw2 = pyipsec_factory(fleet.gw2, gateway_config("%any", remote_ts="10.232.1.0/24"), name="gw2")
    clients: list[PyIpsecDaemon] = []
    charons: list[Charon] = []
    for n, ns in enumerate(fleet.clients, 1):
        inner, identity = f"10.232.1.{n}", f"c{n}.pyipsec.test"
        if kind == "strongswan":
            charon = charon_factory(ns, f"client{n}")
            charon_client(charon, fleet.gw1_addr, inner=inner, identity=identity)
            charon.initiate(child="net", ike="site", timeout=20)
            charons.append(charon)
            continue
        cfg = client_config([fleet.gw1_addr, fleet.gw2_addr], inner=inner, identity=identity)
        c = pyipsec_factory(ns, cfg, name=f"client{n}")
        result = c.call("up", name="site", timeout=20)
        assert isinstance(result, dict) and result["ok"], result
        clients.append(c)
    assert len(gw1.status()) == DRAIN_CLIENTS
    pings = [
        ns.popen(["ping", "-n", "-D", "-i", str(PING_INTERVAL), "-W", "1", "-w", "6", SERVICE_INNER])
        for ns in fleet.clients
    ]
    started = time.monotonic()
    time.sleep(1)
    drained = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyipsec",
            "drain",
            "--to",
            fleet.gw2_addr,
            "--json",
            "--socket",
            str(gw1.socket),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    answer = json.loads(drained.stdout)
    assert len(answer["redirected"]) == DRAIN_CLIENTS and answer["draining"] == fleet.gw2_addr
    for c in clients:
        c.wait_for(lambda sas: _remote_host(sas) == [fleet.gw2_addr] and len(sas) == 1, timeout=20)
    for charon in charons:
        _charon_at(charon, fleet.gw2_addr, timeout=20)
    gw1.wait_for(lambda sas: sas == [], timeout=20)
    assert len(gw2.status()) == DRAIN_CLIENTS
    assert time.monotonic() - started < 5, "the move must fall inside the 6 s of pings"
    gaps = []
    for p in pings:
        out, _ = p.communicate(timeout=20)
        gaps.append(_gaps(out.decode()))
    print(
        f"drain ({kind} clients): longest interruption per client: " + ", ".join(f"{g:.2f} s" for g in gaps)
    )
    assert max(gaps) <= 2.0, gaps
