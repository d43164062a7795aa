"""MOBIKE (RFC 4555) against strongSwan: the client loses one of its two uplinks mid-transfer.

Topology (``tests.support.two_uplinks``): the client has two links to the gateway, whose IKE
address is on its ``lo``; the first link is preferred. While a paced TCP transfer runs
through the tunnel the client's first link goes down, the tunnel moves to the second and the
transfer completes with its content checked.

(a) pyipsec client, charon gateway: our daemon notices the route change, sends
    UPDATE_SA_ADDRESSES with COOKIE2 and NAT-D from the new address; charon moves and must
    echo the COOKIE2 (we close the SA otherwise). Address lists go both ways in IKE_AUTH.
(b) charon client, pyipsec gateway: charon's kernel-netlink plugin notices the address going
    away, charon probes the path and sends its own update (with COOKIE2, which we echo); we
    move and check the return routability of its new address with our own COOKIE2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pyipsec.control.protocol import JsonValue
from tests.interop.test_ike_strongswan import PSK, PY_ID, SW_ID, _py_established, make_creds, pyipsec_config
from tests.support.netns import Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import Charon, CharonFactory
from tests.support.two_uplinks import (
    CLIENT_INNER,
    GATEWAY,
    GATEWAY_INNER,
    lose_uplink_later,
    paced_tcp,
    two_uplinks,
)

pytestmark = pytest.mark.interop

IKE, ESP = "aes256gcm16-prfsha256-ecp256", "aes256gcm16"


def charon_conn(charon: Charon, *, local: str, remote: str, lts: str, rts: str) -> None:
    """A PSK connection with MOBIKE on (swanctl's default, said explicitly)."""
    charon.load_shared(PSK, owners=[PY_ID, SW_ID], id="psk")
    charon.load_conn(
        {
            "site": {
                "version": "2",
                "local_addrs": [local],
                "remote_addrs": [remote],
                "proposals": [IKE],
                "mobike": "yes",
                "local": {"auth": "psk", "id": SW_ID},
                "remote": {"auth": "psk", "id": PY_ID},
                "children": {
                    "net": {
                        "local_ts": [lts],
                        "remote_ts": [rts],
                        "esp_proposals": [ESP],
                        "mode": "tunnel",
                        "start_action": "none",
                    }
                },
            }
        }
    )


def _one(sas: list[dict[str, JsonValue]]) -> dict[str, JsonValue]:
    (sa,) = sas
    return sa


def _host(endpoint: JsonValue) -> str:
    """The address of "1.2.3.4:4500" or "[fd00::1]:4500"."""
    return str(endpoint).rsplit(":", 1)[0].strip("[]")


def _parsed(log: str, direction: str, exchange: str, kind: str) -> list[str]:
    """charon's "parsed/generating EXCHANGE request|response N [ payloads ]" lines."""
    return re.findall(rf"{direction} {exchange} {kind} \d+ \[([^\]]*)\]", log)


def test_pyipsec_client_moves_with_a_strongswan_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    net = two_uplinks(topology)
    charon = charon_factory(net.gw, "gw")
    charon_conn(charon, local=GATEWAY, remote="%any", lts=f"{GATEWAY_INNER}/32", rts=f"{CLIENT_INNER}/32")
    cfg = pyipsec_config(
        tmp_path / "c",
        make_creds("psk"),
        local="%any",
        remote=GATEWAY,
        lts=f"{CLIENT_INNER}/32",
        rts=f"{GATEWAY_INNER}/32",
        ike=IKE,
        esp=ESP,
    )
    py = pyipsec_factory(net.client, cfg, name="client")
    result = py.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], result
    sa = _one(py.wait_for(_py_established))
    assert str(sa["local"]).startswith(net.wifi.b_addr + ":")
    assert sa["mobike"] is True
    # charon's other addresses reached us (ADDITIONAL_IP*_ADDRESS in its IKE_AUTH response) ...
    peer_list = sa["peer_additional_addresses"]
    assert isinstance(peer_list, list) and net.mobile.a_addr in peer_list and net.wifi.a_addr in peer_list
    # ... and ours reached charon
    log = charon.log_text()
    (auth_req,) = _parsed(log, "parsed", "IKE_AUTH", "request")
    assert "N(MOBIKE_SUP)" in auth_req and "N(ADD_4_ADDR)" in auth_req, auth_req
    assert net.client.wait_ping(GATEWAY_INNER, timeout=5)

    cut = lose_uplink_later(net)
    paced_tcp(net.client, net.gw, GATEWAY_INNER, tmp_path)  # spans the move; content checked
    cut.join()

    sa = _one(py.wait_for(lambda s: bool(s) and str(s[0]["local"]).startswith(net.mobile.b_addr + ":")))
    assert sa["state"] == "ESTABLISHED"
    sw = charon.wait_for_sa("site", child="net")
    assert sw.remote_host == net.mobile.b_addr
    log = charon.log_text()
    updates = [p for p in _parsed(log, "parsed", "INFORMATIONAL", "request") if "N(UPD_SA_ADDR)" in p]
    assert updates and "N(COOKIE2)" in updates[0], updates
    answers = [p for p in _parsed(log, "generating", "INFORMATIONAL", "response") if "N(COOKIE2)" in p]
    assert answers, "charon did not echo our COOKIE2"
    assert "COOKIE2" not in "".join(line for line in py.log_text().splitlines() if "not accepted" in line)
    assert net.client.ping(GATEWAY_INNER, count=2)


def test_strongswan_client_moves_with_a_pyipsec_gateway(
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    net = two_uplinks(topology)
    cfg = pyipsec_config(
        tmp_path / "g",
        make_creds("psk"),
        local=GATEWAY,
        remote="%any",
        lts=f"{GATEWAY_INNER}/32",
        rts=f"{CLIENT_INNER}/32",
        ike=IKE,
        esp=ESP,
    )
    conn = cfg["connections"]["site"]  # type: ignore[index]
    conn["local"], conn["remote"] = {"auth": "psk", "id": SW_ID}, {"auth": "psk", "id": PY_ID}  # type: ignore[index]
    py = pyipsec_factory(net.gw, cfg, name="gw")
    charon = charon_factory(net.client, "client")
    # the gateway plays SW_ID here: charon (the client) authenticates as PY_ID
    charon.load_shared(PSK, owners=[PY_ID, SW_ID], id="psk")
    charon.load_conn(
        {
            "site": {
                "version": "2",
                "local_addrs": ["%any"],
                "remote_addrs": [GATEWAY],
                "proposals": [IKE],
                "mobike": "yes",
                "local": {"auth": "psk", "id": PY_ID},
                "remote": {"auth": "psk", "id": SW_ID},
                "children": {
                    "net": {
                        "local_ts": [f"{CLIENT_INNER}/32"],
                        "remote_ts": [f"{GATEWAY_INNER}/32"],
                        "esp_proposals": [ESP],
                        "mode": "tunnel",
                        "start_action": "none",
                    }
                },
            }
        }
    )
    charon.initiate(child="net", ike="site")
    sw = charon.wait_for_sa("site", child="net")
    assert sw.local_host == net.wifi.b_addr
    gsa = _one(py.wait_for(_py_established))
    assert gsa["mobike"] is True
    peer_list = gsa["peer_additional_addresses"]  # charon's ADDITIONAL_* list from IKE_AUTH
    assert isinstance(peer_list, list) and net.mobile.b_addr in peer_list, peer_list
    (auth_resp,) = _parsed(charon.log_text(), "parsed", "IKE_AUTH", "response")
    assert "N(MOBIKE_SUP)" in auth_resp and "N(ADD_4_ADDR)" in auth_resp, auth_resp
    assert net.client.wait_ping(GATEWAY_INNER, timeout=5)

    cut = lose_uplink_later(net)
    paced_tcp(net.client, net.gw, GATEWAY_INNER, tmp_path)
    cut.join()

    # charon probes every path it has to our addresses at once (both IP versions) and takes
    # the first that answers: the tunnel ends up on the mobile link, over IPv4 or IPv6
    mobile = (net.mobile.b_addr, net.mobile.b_addr6)
    gsa = _one(py.wait_for(lambda s: bool(s) and _host(s[0]["remote"]) in mobile))
    assert gsa["state"] == "ESTABLISHED"
    sw = charon.wait_for_sa("site", child="net")
    assert sw.local_host == _host(gsa["remote"])
    log = charon.log_text()
    updates = [p for p in _parsed(log, "generating", "INFORMATIONAL", "request") if "N(UPD_SA_ADDR)" in p]
    assert updates and "N(COOKIE2)" in updates[0], updates
    assert "COOKIE2 mismatch" not in log
    # our return routability check reached charon's new address and was answered
    checks = [p for p in _parsed(log, "parsed", "INFORMATIONAL", "request") if "N(COOKIE2)" in p]
    assert checks, "no return routability check from pyipsec"
    assert f"return routability of {sw.local_host} verified" in py.log_text()
    assert net.client.ping(GATEWAY_INNER, count=2)
