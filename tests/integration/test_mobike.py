"""MOBIKE between pyipsec daemons: the client loses one of its two uplinks mid-transfer.

Topology (``tests.support.two_uplinks``): the client has two veth links to the gateway
(think Wi-Fi and mobile data); the gateway's IKE address lives on its ``lo`` and is reachable
over both, the first link preferred (lower metric). While a TCP transfer runs through the
tunnel, the first link goes down: the route to the gateway now leaves from the second link's
address, the client's daemon notices (it watches the route to MOBIKE peers), sends
UPDATE_SA_ADDRESSES (with COOKIE2) from there, both sides move the IKE SA and the Child SA,
the gateway checks the return routability of the new address, and the transfer completes
intact. Both daemons announce their other addresses (ADDITIONAL_IP*_ADDRESS) and show the
peer's list in ``status``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop.test_ike_strongswan import _py_established, make_creds, pyipsec_config
from tests.support.netns import Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.two_uplinks import (
    CLIENT_INNER,
    GATEWAY,
    GATEWAY_INNER,
    lose_uplink_later,
    paced_tcp,
    two_uplinks,
)

pytestmark = pytest.mark.integration


def test_transfer_survives_losing_an_uplink(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    net = two_uplinks(topology)
    client, gw, wifi, mobile = net.client, net.gw, net.wifi, net.mobile
    creds = make_creds("psk")
    c_cfg = pyipsec_config(
        tmp_path / "c",
        creds,
        local="%any",
        remote=GATEWAY,
        lts=f"{CLIENT_INNER}/32",
        rts=f"{GATEWAY_INNER}/32",
        ike="aes256gcm16-prfsha256-ecp256",
        esp="aes256gcm16",
    )
    g_cfg = pyipsec_config(
        tmp_path / "g",
        creds,
        local=GATEWAY,
        remote="%any",
        lts=f"{GATEWAY_INNER}/32",
        rts=f"{CLIENT_INNER}/32",
        ike="aes256gcm16-prfsha256-ecp256",
        esp="aes256gcm16",
    )
    gc = g_cfg["connections"]["site"]  # type: ignore[index]
    gc["local"], gc["remote"] = c_cfg["connections"]["site"]["remote"], c_cfg["connections"]["site"]["local"]  # type: ignore[index]
    g = pyipsec_factory(gw, g_cfg, name="gw")
    c = pyipsec_factory(client, c_cfg, name="client")
    result = c.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], result
    (sa,) = c.wait_for(_py_established)
    assert str(sa["local"]).startswith(wifi.b_addr)
    # address lists, both ways (the gateway's IKE address is on lo: its links are the others)
    assert sa["peer_additional_addresses"] == [wifi.a_addr, mobile.a_addr, wifi.a_addr6, mobile.a_addr6]
    (gsa,) = g.status()
    assert gsa["peer_additional_addresses"] == [mobile.b_addr, wifi.b_addr6, mobile.b_addr6]
    assert client.wait_ping(GATEWAY_INNER, timeout=5)

    cut = lose_uplink_later(net)
    paced_tcp(client, gw, GATEWAY_INNER, tmp_path)  # ~4 s, content checked: spans the move
    cut.join()
    (sa,) = c.wait_for(lambda sas: bool(sas) and str(sas[0]["local"]).startswith(mobile.b_addr), timeout=20)
    (gsa,) = g.status()
    assert str(gsa["remote"]).startswith(mobile.b_addr)
    # the update carried the client's new list: only the mobile link's IPv6 address is left
    assert gsa["peer_additional_addresses"] == [mobile.b_addr6]
    assert "MOBIKE" in c.log_text() and "MOBIKE" in g.log_text()
    assert f"return routability of {mobile.b_addr} verified" in g.log_text()
    assert client.ping(GATEWAY_INNER, count=2)
