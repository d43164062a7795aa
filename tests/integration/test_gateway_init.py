"""`pyipsec gateway init` end to end: the generated gateway serves the generated client profile.

The gateway namespace runs a pyipsec daemon with the configuration ``gateway init`` wrote (CA,
certificate, user store and pool as generated; the name is the gateway's address on the client
link, the pool the one the LAN routes back, ``--lan`` the LAN behind it). The client namespace runs
a pyipsec daemon with the generated pyipsec profile of the first user, whose relative file names
(the CA certificate and the password file beside it) are made absolute because the test daemon
keeps its configuration in its own directory; DNS is kept away from the host's resolv.conf. The
client gets the pool's first address and pings the LAN host through the tunnel.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import roadwarrior as rw
from tests.support.netns import Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def _absolute(profile: dict[str, Any], base: Path) -> dict[str, Any]:
    """The profile with its relative file names resolved against ``base`` (its directory)."""

    def fix(value: str) -> str:
        return value if Path(value).is_absolute() else str(base / value)

    for conn in profile["connections"].values():
        for key, section in conn.items():
            if isinstance(section, dict) and key.startswith(("local", "remote")):
                for files in ("certs", "cacerts"):
                    if files in section:
                        section[files] = [fix(v) for v in section[files]]
    for secret in profile.get("secrets", {}).values():
        for files in ("file", "secret_file"):
            if files in secret:
                secret[files] = fix(secret[files])
    return profile


def test_the_generated_gateway_accepts_the_generated_profile_and_passes_traffic(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
) -> None:
    site = rw.gateway_site(topology)
    ns, link = site.add_client("user1")
    directory = tmp_path / "etc-pyipsec"
    proc = rw.pyipsec_cli(
        "gateway", "init", "--name", link.a_addr, "--dir", str(directory), "--key", "ecdsa",
        "--pool", rw.POOL, "--no-pool6", "--lan", site.lan_net, "--json",
    )  # fmt: skip
    result = json.loads(proc.stdout)

    gateway_config = tomllib.loads((directory / "pyipsec.toml").read_text())
    gw = pyipsec_factory(site.gw, gateway_config, name="gateway")

    profile_path = Path(result["profiles"]["pyipsec"])
    profile = _absolute(tomllib.loads(profile_path.read_text()), profile_path.parent)
    profile["settings"] = {"resolv_conf": str(tmp_path / "resolv.conf"), "users": str(tmp_path / "client.db")}
    client = pyipsec_factory(ns, profile, name="client")
    (conn,) = profile["connections"]

    up = client.call("up", name=conn, timeout=20)
    assert isinstance(up, dict) and up["ok"] is True, (up, gw.log_text()[-3000:])
    vip = rw.VIP4  # the pool's first address
    assert up["virtual_ips"] == [vip]
    (gw_sa,) = gw.wait_for(rw.established)
    assert gw_sa["virtual_ips"] == [vip]
    (lease,) = rw.leases(directory / "users.db")  # the generated store: user1 logged in with EAP
    assert (str(lease.address), lease.identity, lease.live) == (vip, "user1", True)
    assert rw.ping_from(ns, vip, site.lan_host), client.log_text()[-3000:]
    assert result["password"] not in gw.log_text() + client.log_text()

    client.call("down", name=conn)
    gw.wait_for(lambda sas: not sas)  # the client's DELETE reached the generated gateway
