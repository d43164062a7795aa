"""A gateway for many road warriors, and the namespace they come from (bench_gateway, the loadgen test).

Theory of operation
-------------------
:func:`load_site` builds three namespaces on a :class:`~tests.support.netns.Topology`: ``gw``
(the gateway), ``lan`` behind it and ``cl`` (the clients), linked to ``gw`` by one veth. ``gw``
has two addresses on that link: the link's own (:attr:`LoadSite.gw_psk`, where the PSK
connection listens) and the next one (:attr:`LoadSite.gw_eap`, the EAP-MSCHAPv2 connection with
the gateway's certificate): each connection is chosen by the address it is reached on, on a
pyipsec and on a strongSwan gateway alike. ``cl``'s end of the link carries one /32 per client
from :data:`FIRST_SOURCE` on (``bench.loadgen.source_addresses``: what the load generator binds),
and ``gw`` routes :data:`CLIENT_NET` back to it, so every client has its own address as real
users do (the gateways' half-open limits count per source address).

:func:`pyipsec_gateway_config` and :func:`charon_gateway` set up the two gateways the same way:
the same proposals (``tests.support.roadwarrior``), one pool of :data:`POOL` for both
connections, DPD every ``dpd`` seconds, a PSK per PSK user (``bench.loadgen.psk_of``) and an EAP
password per EAP user (``bench.loadgen.password_of``; pyipsec's in its SQLite user store, as
``pyipsec user add`` puts them). Their defaults for half-open SAs and cookies are kept.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.loadgen import GATEWAY_ID, password_of, psk_of, source_addresses

from tests.support import roadwarrior as rw
from tests.support.netns import Link, Namespace, Topology
from tests.support.strongswan import Charon

__all__ = [
    "CLIENT_NET",
    "FIRST_SOURCE",
    "POOL",
    "LoadSite",
    "charon_gateway",
    "load_site",
    "pyipsec_gateway_config",
]

FIRST_SOURCE = "10.98.0.1"
CLIENT_NET = "10.98.0.0/16"
POOL = "10.234.0.0/20"  # 4094 addresses


@dataclass
class LoadSite:
    topology: Topology
    gw: Namespace
    lan: Namespace
    cl: Namespace
    link: Link
    lan_link: Link
    gw_eap: str

    @property
    def gw_psk(self) -> str:
        return self.link.a_addr

    @property
    def lan_net(self) -> str:
        return str(self.lan_link.a_ip4.network)


def load_site(topology: Topology, clients: int) -> LoadSite:
    """The namespaces and links, with ``clients`` source addresses in ``cl``."""
    gw, lan, cl = topology.namespace("gw"), topology.namespace("lan"), topology.namespace("cl")
    lan_link = topology.link(gw, lan)
    link = topology.link(gw, cl)
    gw.sysctl("net.ipv4.ip_forward", "1")
    lan.run(["ip", "-4", "route", "add", POOL, "via", lan_link.a_addr])
    gw_eap = str(link.a_ip4.ip + 2)  # .1 is gw, .2 is cl
    gw.add_address(link.a_if, f"{gw_eap}/24")
    batch = "".join(f"addr add {a}/32 dev {link.b_if}\n" for a in source_addresses(FIRST_SOURCE, clients))
    cl.run(["ip", "-batch", "-"], input=batch, timeout=120)
    gw.run(["ip", "-4", "route", "add", CLIENT_NET, "via", link.b_addr])
    return LoadSite(topology, gw, lan, cl, link, lan_link, gw_eap)


def pyipsec_gateway_config(
    site: LoadSite,
    pki: rw.Pki,
    *,
    users_db: Path,
    psk_users: Sequence[str],
    dpd: int = 30,
    settings: dict[str, object] | None = None,
) -> dict[str, object]:
    """The pyipsec gateway: connection ``psk`` on :attr:`LoadSite.gw_psk`, ``eap`` on
    :attr:`LoadSite.gw_eap` (EAP users must be in ``users_db``: ``rw.add_users``)."""
    child = {"net": {"local_ts": [site.lan_net], "esp_proposals": [rw.ESP_PROPOSAL]}}
    common = {
        "proposals": [rw.IKE_PROPOSAL],
        "mobike": False,
        "pools": ["rw"],
        "dpd_delay": dpd,
        "children": child,
    }
    return {
        "settings": {"log_level": "info", "users": str(users_db), **(settings or {})},
        "connections": {
            "psk": {
                **common,
                "local_addrs": [site.gw_psk],
                "local": {"auth": "psk", "id": GATEWAY_ID},
                "remote": {"auth": "psk"},
            },
            "eap": {
                **common,
                "local_addrs": [site.gw_eap],
                "send_cert": "always",
                "local": {"auth": "pubkey", "id": GATEWAY_ID, "certs": [str(pki.gw_cert)]},
                "remote": {"auth": "eap-mschapv2"},
            },
        },
        "pools": {"rw": {"addrs": POOL}},
        "secrets": {
            "private-gw": {"file": str(pki.gw_key)},
            **{f"ike-{u}": {"id": [u], "secret": psk_of(u)} for u in psk_users},
        },
    }


def charon_gateway(
    charon: Charon,
    site: LoadSite,
    pki: rw.Pki,
    *,
    psk_users: Sequence[str],
    eap_users: Sequence[str],
    dpd: int = 30,
) -> None:
    """Load the same gateway into a started strongSwan ``charon``."""
    charon.load_key(pki.gw_key.read_bytes())
    charon.load_pool({"rw": {"addrs": POOL}})
    child = {
        "net": {
            "local_ts": [site.lan_net],
            "esp_proposals": [rw.ESP_PROPOSAL],
            "mode": "tunnel",
            "start_action": "none",
        }
    }
    charon.load_conn(
        {
            "psk": {
                "version": "2",
                "local_addrs": [site.gw_psk],
                "proposals": [rw.IKE_PROPOSAL],
                "pools": ["rw"],
                "mobike": "no",
                "dpd_delay": f"{dpd}s",
                "local": {"auth": "psk", "id": GATEWAY_ID},
                "remote": {"auth": "psk"},
                "children": child,
            },
            "eap": {
                "version": "2",
                "local_addrs": [site.gw_eap],
                "proposals": [rw.IKE_PROPOSAL],
                "pools": ["rw"],
                "mobike": "no",
                "send_cert": "always",
                "dpd_delay": f"{dpd}s",
                "local": {"auth": "pubkey", "id": GATEWAY_ID, "certs": [pki.gw_cert.read_text()]},
                "remote": {"auth": "eap-mschapv2", "eap_id": "%any"},
                "children": child,
            },
        }
    )
    for u in psk_users:
        charon.load_shared(psk_of(u), owners=[u], type="IKE", id=f"ike-{u}")
    for u in eap_users:
        charon.load_shared(password_of(u), owners=[u], type="EAP", id=f"eap-{u}")


def in_pool(addr: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(POOL)


#: the load generator's script
LOADGEN = Path(__file__).resolve().parents[2] / "bench" / "loadgen.py"

T = TypeVar("T")


def run_loadgen(
    site: LoadSite, args: Sequence[str], while_held: Callable[[], T]
) -> tuple[dict[str, Any], T | None]:
    """Run the load generator with ``args`` in the clients' namespace; ``while_held`` is called
    once, when it reports its clients held. Its final result, and what ``while_held`` returned."""
    proc = site.cl.popen([sys.executable, str(LOADGEN), *args])
    assert proc.stdout is not None
    held: T | None = None
    result: dict[str, Any] = {}
    try:
        for raw in proc.stdout:
            line = json.loads(raw)
            if line["phase"] == "holding":
                held = while_held()
            elif line["phase"] == "done":
                result = line["result"]
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert result, "the load generator finished without a result"
    return result, held
