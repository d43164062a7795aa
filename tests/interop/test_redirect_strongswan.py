"""Redirect (RFC 5685) and failover between two pyipsec gateways, with real peers in namespaces.

Topology: a client namespace with one veth link to each gateway namespace; the client's inner
address 10.232.1.1 is on its ``lo``, each gateway has the service's inner address 10.232.2.1 on
its own ``lo``, so a ping from the client's inner address reaches whichever gateway holds the
tunnel. strongSwan 5.9.8's charon (the independent check of the wire format: it follows
redirects by default) and pyipsec are the clients.
"""

from __future__ import annotations

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


def gateway_config(local: str, *, redirect: dict[str, object] | None = None) -> dict[str, object]:
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
                "remote": {"auth": "psk", "id": SW_ID},
                "children": {
                    "net": {
                        "local_ts": [f"{SERVICE_INNER}/32"],
                        "remote_ts": [f"{CLIENT_INNER}/32"],
                        "esp_proposals": [ESP],
                    }
                },
            }
        },
        "secrets": {"ike-site": {"id": [PY_ID, SW_ID], "secret": PSK}},
    }


def client_config(remotes: list[str], **conn: object) -> dict[str, object]:
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
                "local": {"auth": "psk", "id": SW_ID},
                "remote": {"auth": "psk", "id": PY_ID},
                **conn,
                "children": {
                    "net": {
                        "local_ts": [f"{CLIENT_INNER}/32"],
                        "remote_ts": [f"{SERVICE_INNER}/32"],
                        "esp_proposals": [ESP],
                        "dpd_action": "restart",
                    }
                },
            }
        },
        "secrets": {"ike-site": {"id": [PY_ID, SW_ID], "secret": PSK}},
    }


def charon_client(charon: Charon, gateway: str) -> None:
    charon.load_shared(PSK, owners=[PY_ID, SW_ID], id="psk")
    charon.load_conn(
        {
            "site": {
                "version": "2",
                "remote_addrs": [gateway],
                "proposals": [IKE],
                "mobike": "no",
                "local": {"auth": "psk", "id": SW_ID},
                "remote": {"auth": "psk", "id": PY_ID},
                "children": {
                    "net": {
                        "local_ts": [f"{CLIENT_INNER}/32"],
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
