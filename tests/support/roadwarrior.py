"""Remote-access (road warrior) set-ups for the root tiers: a gateway with a LAN, clients with VIPs.

Theory of operation
-------------------
:func:`gateway_site` builds the gateway side of a :class:`~tests.support.netns.Topology`: a
``gw`` namespace and a ``lan`` namespace behind it on a veth link; ``gw`` forwards, and the LAN
host routes the virtual-IP pool back through ``gw``. Each client is a namespace of its own with
one veth link to ``gw`` (:meth:`GatewaySite.add_client`), so no bridge is needed and every client
has its own outer address on its own /24. The gateway's Child SA covers the LAN link's /24, which
holds neither the gateway's nor any client's IKE address (charon's libipsec refuses a remote
traffic selector that covers the peer, shared/STRONGSWAN.md point 3).

Credentials are made the way an administrator makes them: :func:`make_pki` runs ``pyipsec pki
ca`` and ``pyipsec pki gateway`` (ECDSA keys, which are fast), :func:`add_users` runs ``pyipsec
user add --password-file`` (or, for many accounts, the store API the CLI wraps). Everything goes
below the test's ``tmp_path``: certificates, the user and lease database, the clients' resolv.conf
files (the daemon's ``settings.resolv_conf``; the host's /etc/resolv.conf is never touched).

:func:`gateway_config` and :func:`client_config` are pyipsec daemon configurations as the nested
dicts :class:`~tests.support.pyipsecd.PyIpsecDaemon` writes as TOML; :func:`charon_client_conn`
and :func:`charon_gateway_conn` are the matching vici connections for strongSwan's charon. Many
daemons start, connect and stop in parallel through :func:`start_all`, :func:`up_all` and
:func:`stop_all` (threads: the work is in the daemons, the test only waits).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pyipsec.control.protocol import JsonValue
from pyipsec.store.sqlite import Lease, SqliteStore
from tests.support.netns import Link, Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon
from tests.support.strongswan import Charon
from tests.support.vici_sa import ViciIn

__all__ = [
    "DNS_DOMAIN",
    "ESP_PROPOSAL",
    "GATEWAY_NAME",
    "IKE_PROPOSAL",
    "ORIGINAL_RESOLV_CONF",
    "POOL",
    "POOL6",
    "POOL6_NAME",
    "POOL_NAME",
    "VIP4",
    "VIP6",
    "GatewaySite",
    "Pki",
    "add_users",
    "charon_client_conn",
    "charon_gateway_conn",
    "client_config",
    "closed_reasons",
    "dual_stack_charon_gateway",
    "dual_stack_client",
    "dual_stack_gateway",
    "dual_stack_site",
    "established",
    "gateway_config",
    "gateway_site",
    "lan_nets",
    "leases",
    "make_ca",
    "make_client_cert",
    "make_pki",
    "only_child",
    "parallel",
    "ping_both",
    "ping_from",
    "pyipsec_cli",
    "start_all",
    "stop_all",
    "traffic",
    "tun_addresses",
    "up_all",
    "wait_until",
]

GATEWAY_NAME = "vpn.pyipsec.test"
POOL_NAME = "rw"
POOL = "10.233.0.0/24"
POOL6_NAME = "rw6"
POOL6 = "fd00:233::/112"
VIP4, VIP6 = "10.233.0.1", "fd00:233::1"  # the first address of each pool
DNS_DOMAIN = "corp.pyipsec.test"
IKE_PROPOSAL = "aes256gcm16-prfsha256-ecp256"
ESP_PROPOSAL = "aes256gcm16"
ORIGINAL_RESOLV_CONF = "# the client's own resolv.conf\nnameserver 192.0.2.53\n"

_T = TypeVar("_T")
_Conn = TypeVar("_Conn", bound=MutableMapping[str, Any])
_R = TypeVar("_R")


def pyipsec_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pyipsec ARGS`` in the root namespace; RuntimeError if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "pyipsec", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pyipsec {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass(frozen=True, slots=True)
class Pki:
    """A CA and the gateway's certificate and key (PEM files made by ``pyipsec pki``)."""

    ca_cert: Path
    gw_cert: Path
    gw_key: Path


def make_ca(directory: Path, cn: str) -> Path:
    """``pyipsec pki ca`` into ``directory``; the CA certificate's path."""
    pyipsec_cli("pki", "ca", "--cn", cn, "--out", str(directory), "--key", "ecdsa")
    return directory / "ca-cert.pem"


def make_pki(base: Path, names: Sequence[str] = (GATEWAY_NAME,), *, cn: str = "pyipsec RA CA") -> Pki:
    """A CA in ``base/ca`` and a gateway certificate for ``names`` (dNSNames) in ``base/gw``."""
    ca_dir, gw_dir = base / "ca", base / "gw"
    ca_cert = make_ca(ca_dir, cn)
    argv = ["pki", "gateway", "--ca", str(ca_dir), "--out", str(gw_dir), "--key", "ecdsa"]
    for n in names:
        argv += ["--name", n]
    pyipsec_cli(*argv)
    return Pki(
        ca_cert=ca_cert, gw_cert=gw_dir / f"{names[0]}-cert.pem", gw_key=gw_dir / f"{names[0]}-key.pem"
    )


def make_client_cert(pki: Pki, name: str, out: Path) -> tuple[Path, Path]:
    """``pyipsec pki client --name NAME`` (ECDSA) from ``pki``'s CA into ``out``: (cert, key).

    ``name`` goes into the subjectAltName (rfc822Name for an e-mail address), where EAP-TLS
    peers look for the EAP identity."""
    argv = ["pki", "client", "--ca", str(pki.ca_cert.parent), "--name", name, "--out", str(out)]
    proc = pyipsec_cli(*argv, "--key", "ecdsa", "--json")
    files = json.loads(proc.stdout)
    return Path(files["certificate"]), Path(files["key"])


def add_users(db: Path, users: Mapping[str, str], *, cli: bool = True) -> None:
    """Create EAP accounts in the store ``db``: with ``pyipsec user add --password-file`` when
    ``cli``, else through :class:`SqliteStore` (what the CLI calls; quicker for many users)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    if not cli:
        with SqliteStore(db) as store:
            for name, password in users.items():
                store.add_user(name, password)
        return
    for name, password in users.items():
        pw = db.with_name(f".password-{name}")
        pw.write_text(password + "\n")
        pw.chmod(0o600)
        try:
            pyipsec_cli("user", "add", name, "--db", str(db), "--password-file", str(pw))
        finally:
            pw.unlink()


def leases(db: Path, pool: str = POOL_NAME) -> list[Lease]:
    """The lease table of ``pool`` in the gateway's store (every address ever handed out)."""
    with SqliteStore(db, create=False) as store:
        return store.leases(pool)


@dataclass
class GatewaySite:
    """The gateway namespace, the LAN host behind it and the client namespaces linked to it."""

    topology: Topology
    gw: Namespace
    lan: Namespace
    lan_link: Link
    clients: list[tuple[Namespace, Link]] = field(default_factory=list)

    @property
    def lan_host(self) -> str:
        """The address of the host behind the gateway (what clients ping; also the DNS server)."""
        return self.lan_link.b_addr

    @property
    def lan_net(self) -> str:
        """The gateway's local traffic selector: the LAN link's /24."""
        return str(self.lan_link.a_ip4.network)

    def add_client(self, role: str) -> tuple[Namespace, Link]:
        """A client namespace with a veth link to the gateway (gateway side ``a``)."""
        ns = self.topology.namespace(role)
        link = self.topology.link(self.gw, ns)
        self.clients.append((ns, link))
        return ns, link


def gateway_site(topology: Topology, *, pool: str = POOL) -> GatewaySite:
    """``gw`` forwarding to ``lan``; ``lan`` routes ``pool`` back via ``gw``."""
    gw = topology.namespace("gw")
    lan = topology.namespace("lan")
    lan_link = topology.link(gw, lan)
    gw.sysctl("net.ipv4.ip_forward", "1")
    lan.run(["ip", "-4", "route", "add", pool, "via", lan_link.a_addr])
    return GatewaySite(topology, gw, lan, lan_link)


def dual_stack_site(topology: Topology) -> GatewaySite:
    """The gateway site with IPv6 forwarding, and the LAN routing both pools (:data:`POOL`,
    :data:`POOL6`) back via ``gw``."""
    site = gateway_site(topology, pool=POOL)
    site.gw.sysctl("net.ipv6.conf.all.forwarding", "1")
    site.lan.run(["ip", "-6", "route", "add", POOL6, "via", site.lan_link.a_addr6])
    return site


def lan_nets(site: GatewaySite) -> list[str]:
    """The LAN link's /24 and /64: the gateway's traffic selectors in a dual-stack set-up."""
    return [site.lan_net, str(site.lan_link.a_ip6.network)]


def ping_both(ns: Namespace, site: GatewaySite) -> None:
    """Ping the LAN host over IPv4 and IPv6 from the virtual IPs :data:`VIP4` and :data:`VIP6`."""
    assert ping_from(ns, VIP4, site.lan_host), "IPv4 through the tunnel"
    assert ping_from(ns, VIP6, site.lan_link.b_addr6), "IPv6 through the tunnel"


def dual_stack_gateway(cfg: dict[str, Any], site: GatewaySite, conn: str = "rw") -> dict[str, Any]:
    """Turn a pyipsec gateway configuration (:func:`gateway_config`) dual-stack, in place: two
    pools, the LAN's /24 and /64 as local traffic selectors. Returns ``cfg``."""
    connection = cfg["connections"][conn]
    connection["pools"] = [POOL_NAME, POOL6_NAME]
    for child in connection["children"].values():
        child["local_ts"] = lan_nets(site)
    cfg["pools"][POOL6_NAME] = {"addrs": POOL6}
    return cfg


def dual_stack_client(conn: _Conn, site: GatewaySite) -> _Conn:
    """Turn a client connection (pyipsec's ``connections.vpn`` or a charon vici dict) dual-stack,
    in place: an IPv4 and an IPv6 virtual IP asked for, the LAN's /24 and /64 as remote
    traffic selectors. Returns ``conn``."""
    conn["vips"] = ["0.0.0.0", "::"]
    for child in conn["children"].values():
        child["remote_ts"] = lan_nets(site)
    return conn


def dual_stack_charon_gateway(charon: Charon, conn: dict[str, ViciIn], site: GatewaySite) -> None:
    """Load the two pools (DNS: the LAN host) into a charon gateway and make its connection
    ``conn`` (:func:`charon_gateway_conn`) dual-stack, in place."""
    charon.load_pool({POOL_NAME: {"addrs": POOL, "dns": [site.lan_host]}, POOL6_NAME: {"addrs": POOL6}})
    conn["pools"] = [POOL_NAME, POOL6_NAME]
    for child in conn["children"].values():  # type: ignore[union-attr]
        child["local_ts"] = lan_nets(site)  # type: ignore[index]


def gateway_config(
    pki: Pki,
    *,
    lan_net: str,
    users_db: Path,
    pool: str = POOL,
    dns: Sequence[str] = (),
    gateway_id: str = GATEWAY_NAME,
    settings: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """A pyipsec gateway: certificate auth, EAP-MSCHAPv2 clients, virtual IPs and DNS from a pool."""
    return {
        "settings": {"log_level": "debug", "users": str(users_db), **(settings or {})},
        "connections": {
            "rw": {
                "proposals": [IKE_PROPOSAL, "aes256-sha256-modp2048"],
                "send_cert": "always",
                "mobike": False,
                "pools": [POOL_NAME],
                "local": {"auth": "pubkey", "id": gateway_id, "certs": [str(pki.gw_cert)]},
                "remote": {"auth": "eap-mschapv2"},
                "children": {"net": {"local_ts": [lan_net], "esp_proposals": [ESP_PROPOSAL]}},
            }
        },
        "pools": {POOL_NAME: {"addrs": pool, "dns": list(dns), "domains": [DNS_DOMAIN]}},
        "secrets": {"private-gw": {"file": str(pki.gw_key)}},
    }


def client_config(
    base: Path,
    *,
    ca_cert: Path,
    gateway: str,
    user: str,
    password: str,
    lan_net: str,
    gateway_id: str = GATEWAY_NAME,
    resolv_conf: str | None = ORIGINAL_RESOLV_CONF,
) -> dict[str, object]:
    """A pyipsec road warrior (connection ``vpn``) asking for a virtual IP.

    DNS goes to ``base/resolv.conf``, created beforehand with ``resolv_conf`` (None: no file, as
    on a host without one) so that a test can check it is restored on ``down``.
    """
    base.mkdir(parents=True, exist_ok=True)
    if resolv_conf is not None:
        (base / "resolv.conf").write_text(resolv_conf)
    return {
        "settings": {
            "log_level": "debug",
            "resolv_conf": str(base / "resolv.conf"),
            "users": str(base / "users.db"),  # never opened: a client has no pools
        },
        "connections": {
            "vpn": {
                "remote_addrs": [gateway],
                "proposals": [IKE_PROPOSAL],
                "vips": ["0.0.0.0"],
                "mobike": False,
                "local": {"auth": "eap-mschapv2", "id": user, "eap_id": user},
                "remote": {"auth": "pubkey", "id": gateway_id, "cacerts": [str(ca_cert)]},
                "children": {"net": {"remote_ts": [lan_net], "esp_proposals": [ESP_PROPOSAL]}},
            }
        },
        "secrets": {f"eap-{user}": {"id": user, "secret": password}},
    }


def established(sas: list[dict[str, JsonValue]]) -> bool:
    """A pyipsec ``status`` with an ESTABLISHED IKE SA holding an INSTALLED Child SA."""
    return any(
        s["state"] == "ESTABLISHED"
        and isinstance(s["children"], list)
        and any(isinstance(c, dict) and c["state"] == "INSTALLED" for c in s["children"])
        for s in sas
    )


def only_child(sa: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """The one Child SA of an IKE SA in a pyipsec ``status``."""
    children = sa["children"]
    assert isinstance(children, list) and len(children) == 1, sa
    child = children[0]
    assert isinstance(child, dict)
    return child


def traffic(child: Mapping[str, JsonValue]) -> dict[str, int]:
    """A Child SA's data-plane counters from a pyipsec ``status`` (``packets_in`` ...)."""
    counters = child["traffic"]
    assert isinstance(counters, dict), child
    return {k: v for k, v in counters.items() if isinstance(v, int)}


def closed_reasons(log: str) -> list[str]:
    """The reasons of every ``IKE SA closed: ...`` line in a pyipsec daemon log."""
    return re.findall(r"IKE SA closed: (.*)$", log, flags=re.MULTILINE)


def wait_until(cond: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``cond`` every 0.1 s until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def tun_addresses(ns: Namespace, ifname: str = "pyi0", *, family: str = "-4") -> list[str]:
    """The addresses (IPv4 by default; ``family="-6"``: global IPv6) on ``ifname`` in ``ns``
    (empty if the device does not exist)."""
    argv = ["ip", family, "-o", "addr", "show", "dev", ifname]
    if family == "-6":
        argv += ["scope", "global"]
    out = ns.run(argv, check=False).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]


def ping_from(ns: Namespace, src: str, dst: str, *, count: int = 3, timeout: float = 5.0) -> bool:
    """Ping ``dst`` from the local address ``src`` (``ping -I``); True if any echo came back."""
    argv = ["ping", "-n", "-q", "-I", src, "-c", str(count), "-i", "0.2", "-w", str(round(timeout)), dst]
    return ns.run(argv, check=False, timeout=timeout + 5).returncode == 0


def parallel(fn: Callable[[_T], _R], items: Sequence[_T], *, workers: int = 50) -> list[_R]:
    """``[fn(x) for x in items]`` on a thread pool (for blocking waits on many daemons)."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        return list(pool.map(fn, items))


def start_all(daemons: Sequence[PyIpsecDaemon], *, timeout: float = 90.0, at_once: int = 10) -> None:
    """Start the daemons, ``at_once`` at a time, and wait until each answers on its control socket.

    Each daemon starts its data-plane process, which must be ready within 15 s; a hundred Python
    processes starting together on two cores need longer than that (the daemons then *connect*
    all at once, in ``up_all``)."""
    parallel(lambda d: d.start(timeout=timeout), daemons, workers=at_once)


def up_all(
    daemons: Sequence[PyIpsecDaemon], *, name: str = "vpn", timeout: float = 60.0
) -> list[dict[str, JsonValue]]:
    """``up NAME`` on every daemon at once; the results in order."""

    def up(d: PyIpsecDaemon) -> dict[str, JsonValue]:
        result = d.call("up", name=name, timeout=timeout)
        assert isinstance(result, dict), result
        return result

    return parallel(up, daemons)


def stop_all(daemons: Sequence[PyIpsecDaemon], *, timeout: float = 10.0) -> None:
    """SIGTERM every running daemon first, then wait for each (SIGKILL after ``timeout``)."""
    running = [d for d in daemons if d.proc is not None and d.proc.poll() is None]
    for d in running:
        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
    for d in running:
        assert d.proc is not None
        try:
            d.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait(5)


def charon_client_conn(
    *, gateway: str, user: str, lan_net: str, ca_pem: bytes, gateway_id: str = GATEWAY_NAME
) -> dict[str, ViciIn]:
    """strongSwan as a road warrior: EAP-MSCHAPv2 as ``user``, the gateway's certificate checked
    against ``ca_pem``, a virtual IP asked for; the Child SA reaches ``lan_net``."""
    return {
        "version": "2",
        "remote_addrs": [gateway],
        "proposals": [IKE_PROPOSAL],
        "vips": ["0.0.0.0"],
        "mobike": "no",
        "local": {"auth": "eap-mschapv2", "id": user, "eap_id": user},
        "remote": {"auth": "pubkey", "id": gateway_id, "cacerts": [ca_pem.decode()]},
        "children": {
            "net": {
                "remote_ts": [lan_net],
                "esp_proposals": [ESP_PROPOSAL],
                "mode": "tunnel",
                "start_action": "none",
            }
        },
    }


def charon_gateway_conn(
    *, cert_pem: bytes, lan_net: str, pool: str = POOL_NAME, gateway_id: str = GATEWAY_NAME
) -> dict[str, ViciIn]:
    """strongSwan set up like a commercial VPN gateway: a server certificate sent always,
    EAP-MSCHAPv2 for any EAP identity, virtual IPs (and DNS) from the vici pool ``pool``."""
    return {
        "version": "2",
        "proposals": [IKE_PROPOSAL, "aes256-sha256-modp2048"],
        "pools": [pool],
        "send_cert": "always",
        "mobike": "no",
        "local": {"auth": "pubkey", "id": gateway_id, "certs": [cert_pem.decode()]},
        "remote": {"auth": "eap-mschapv2", "eap_id": "%any"},
        "children": {
            "net": {
                "local_ts": [lan_net],
                "esp_proposals": [ESP_PROPOSAL],
                "mode": "tunnel",
                "start_action": "none",
            }
        },
    }
