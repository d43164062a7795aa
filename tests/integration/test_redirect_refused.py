"""An unauthenticated redirect to a gateway the client does not trust is refused (RFC 5685 §9).

Two real pyipsec gateways (``tests.support.roadwarrior``'s gateway, SQLite store each): ``gw1``
answers every IKE_SA_INIT with REDIRECT to ``gw2`` (``[settings.redirect] rule = "static"``:
the notify carries the client's nonce, as the RFC wants, but nothing in IKE_SA_INIT is
authenticated), ``gw2`` serves normally. A pyipsec client daemon (the real CLI) linked to both
whose ``remote_addrs`` names only ``gw1`` refuses the redirect — a log line naming the address,
``up`` fails with that reason, and ``gw2`` never hears from it. The same client with ``gw2`` in
its ``redirect_allow`` follows the same redirect and comes up on ``gw2`` (ping through it), so
the refusal is the policy's doing, not a broken path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import roadwarrior as rw
from tests.support.netns import Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def test_unauthenticated_redirect_outside_the_policy_is_refused_and_allowed_one_followed(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.gateway_site(topology)  # gw1 and the LAN behind it
    gw2_ns = topology.namespace("gw2")
    lan2 = topology.link(gw2_ns, site.lan)
    gw2_ns.sysctl("net.ipv4.ip_forward", "1")
    gw2_ns.run(["ip", "-4", "route", "add", f"{site.lan_host}/32", "via", lan2.b_addr])
    site.lan.run(["ip", "-4", "route", "replace", rw.POOL, "via", lan2.a_addr])  # replies via gw2
    ns, link1 = site.add_client("client")
    link2 = topology.link(gw2_ns, ns)
    pki = rw.make_pki(tmp_path / "pki")
    gw1_cfg: dict[str, Any] = rw.gateway_config(
        pki, lan_net=site.lan_net, users_db=tmp_path / "gw1" / "users.db"
    )
    gw1_cfg["settings"]["redirect"] = {"rule": "static", "target": link2.a_addr}
    gw2_cfg = rw.gateway_config(pki, lan_net=site.lan_net, users_db=tmp_path / "gw2" / "users.db")
    rw.add_users(tmp_path / "gw2" / "users.db", {"alice": "alice-secret-1"}, cli=False)
    gw1 = pyipsec_factory(site.gw, gw1_cfg, name="gw1")
    gw2 = pyipsec_factory(gw2_ns, gw2_cfg, name="gw2")

    def client(tag: str, **conn: object) -> PyIpsecDaemon:
        cfg: dict[str, Any] = rw.client_config(
            tmp_path / tag,
            ca_cert=pki.ca_cert,
            gateway=link1.a_addr,
            user="alice",
            password="alice-secret-1",
            lan_net=site.lan_net,
        )
        cfg["connections"]["vpn"].update(conn)
        cfg["settings"].update(retransmit_timeout=1, retransmit_base=1.0, retransmit_tries=2)
        return pyipsec_factory(ns, cfg, name=tag)

    # -- remote_addrs = [gw1] only: the redirect to gw2 is refused --------------------------------
    strict = client("strict")
    result = strict.call("up", name="vpn", timeout=30)
    assert isinstance(result, dict) and result["ok"] is False, result
    refused = f"refused an unauthenticated redirect to {link2.a_addr}"
    assert refused in str(result["message"]), result
    assert f"refusing an unauthenticated redirect to {link2.a_addr}" in strict.log_text()
    assert strict.status() == [] and gw2.status() == []
    assert link1.b_addr not in gw2.log_text() and link2.b_addr not in gw2.log_text()  # never went there
    assert "redirect" in gw1.log_text().lower()
    strict.stop()

    # -- the same client trusting gw2 (redirect_allow) follows the same redirect ----------------
    trusting = client("trusting", redirect_allow=[link2.a_addr])
    result = trusting.call("up", name="vpn", timeout=30)
    assert isinstance(result, dict) and result["ok"] is True, result
    (sa,) = trusting.status()
    assert str(sa["remote"]).rsplit(":", 1)[0] == link2.a_addr
    assert rw.ping_from(ns, str(result["virtual_ips"][0]), site.lan_host)  # type: ignore[index]
    assert gw1.status() == []
