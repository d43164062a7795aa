"""pyipsec ↔ strongSwan: IKE and Child SAs in both directions (issue: IKE engine and daemon).

The matrix: authentication by PSK, RSA and ECDSA certificates, each over three proposals,
with pyipsec initiating to charon and charon initiating to pyipsec. A case passes when both
daemons report the IKE SA and the Child SA established with the same SPIs and algorithms,
and a Delete from either side removes them on both. charon's libipsec backend fakes a NAT,
so every one of these also exercises the float to UDP 4500. A separate case puts a real NAT
(nftables masquerade in a router namespace) between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from pyipsec.control.protocol import JsonValue
from tests.interop.conftest import SitePair
from tests.support import pki
from tests.support.netns import Topology, nat_topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import Charon, CharonFactory
from tests.support.traffic import bulk_tcp
from tests.support.vici_sa import IkeSa

pytestmark = pytest.mark.interop

PSK = "interop-psk-0123456789abcdef"
PY_ID, SW_ID = "moon.pyipsec.test", "sun.pyipsec.test"

PROPOSALS = [
    ("aes256gcm16-prfsha256-ecp256", "aes256gcm16", "AES_GCM_16", "ECP_256"),
    ("aes256-sha256-modp2048", "aes256-sha256", "AES_CBC", "MODP_2048"),
    ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305", "CHACHA20_POLY1305", "CURVE_25519"),
]


@dataclass
class Creds:
    """PSK or a CA with one certificate per side (RSA or ECDSA)."""

    kind: str  # psk | rsa | ecdsa
    ca: pki.Issued | None = None
    py: pki.Issued | None = None
    sw: pki.Issued | None = None


def make_creds(kind: str) -> Creds:
    if kind == "psk":
        return Creds(kind)
    key: pki.KeyKind = "rsa2048" if kind == "rsa" else "p256"
    now = pki.NOW.replace(year=2026)  # the machine's real clock: valid around today
    ca = pki.make_ca(
        "pyipsec interop CA",
        key=key,
        not_before=now - timedelta(days=30),
        not_after=now + timedelta(days=3650),
    )
    py = pki.make_end_entity(
        ca,
        PY_ID,
        key=key,
        dns=[PY_ID],
        not_before=now - timedelta(days=30),
        not_after=now + timedelta(days=3650),
    )
    sw = pki.make_end_entity(
        ca,
        SW_ID,
        key=key,
        dns=[SW_ID],
        not_before=now - timedelta(days=30),
        not_after=now + timedelta(days=3650),
    )
    return Creds(kind, ca, py, sw)


def pyipsec_config(
    base: Path, creds: Creds, *, local: str, remote: str, lts: str, rts: str, ike: str, esp: str
) -> dict[str, object]:
    conn: dict[str, object] = {
        "local_addrs": [local],
        "remote_addrs": [remote],
        "proposals": [ike],
        "children": {"net": {"local_ts": [lts], "remote_ts": [rts], "esp_proposals": [esp]}},
    }
    secrets: dict[str, object] = {}
    if creds.kind == "psk":
        conn["local"] = {"auth": "psk", "id": PY_ID}
        conn["remote"] = {"auth": "psk", "id": SW_ID}
        secrets["ike-interop"] = {"id": [PY_ID, SW_ID], "secret": PSK}
    else:
        assert creds.ca and creds.py
        base.mkdir(parents=True, exist_ok=True)
        (base / "ca.pem").write_bytes(creds.ca.pem)
        (base / "moon.pem").write_bytes(creds.py.pem)
        (base / "moon.key").write_bytes(creds.py.key_pem())
        conn["local"] = {"auth": "pubkey", "id": PY_ID, "certs": [str(base / "moon.pem")]}
        conn["remote"] = {"auth": "pubkey", "id": SW_ID, "cacerts": [str(base / "ca.pem")]}
        secrets["private-moon"] = {"file": str(base / "moon.key")}
    return {"settings": {"log_level": "debug"}, "connections": {"site": conn}, "secrets": secrets}


def charon_setup(
    charon: Charon, creds: Creds, *, local: str, remote: str, lts: str, rts: str, ike: str, esp: str
) -> None:
    child = {
        "local_ts": [lts],
        "remote_ts": [rts],
        "esp_proposals": [esp],
        "mode": "tunnel",
        "start_action": "none",
    }
    conn: dict[str, object] = {
        "version": "2",
        "local_addrs": [local],
        "remote_addrs": [remote],
        "proposals": [ike],
        "mobike": "no",
        "children": {"net": child},
    }
    if creds.kind == "psk":
        charon.load_shared(PSK, owners=[PY_ID, SW_ID], id="psk")
        conn["local"] = {"auth": "psk", "id": SW_ID}
        conn["remote"] = {"auth": "psk", "id": PY_ID}
    else:
        assert creds.ca and creds.sw
        charon.load_cert(creds.ca.pem, flag="CA")
        charon.load_key(creds.sw.key_pem())
        conn["local"] = {"auth": "pubkey", "id": SW_ID, "certs": [creds.sw.pem.decode()]}
        conn["remote"] = {"auth": "pubkey", "id": PY_ID, "cacerts": [creds.ca.pem.decode()]}
    charon.load_conn({"site": conn})  # type: ignore[dict-item]


def connect_site(
    site_pair: SitePair,
    charon_factory: CharonFactory,
    daemon_factory: Callable[..., PyIpsecDaemon],
    tmp_path: Path,
    creds: Creds,
    ike: str,
    esp: str,
    initiator: str,
) -> tuple[Charon, PyIpsecDaemon]:
    """pyipsec on the left site, charon on the right, one tunnel between the inner addresses;
    ``initiator`` ("pyipsec" or "strongswan") brings it up."""
    left, right = site_pair.left, site_pair.right
    charon = charon_factory(right.ns, "sun")
    charon_setup(
        charon,
        creds,
        local=right.outer,
        remote=left.outer,
        lts=right.inner_net,
        rts=left.inner_net,
        ike=ike,
        esp=esp,
    )
    config = pyipsec_config(
        tmp_path / "creds",
        creds,
        local=left.outer,
        remote=right.outer,
        lts=left.inner_net,
        rts=right.inner_net,
        ike=ike,
        esp=esp,
    )
    py = daemon_factory(left.ns, config)
    if initiator == "pyipsec":
        result = py.call("up", name="site", timeout=20)
        assert isinstance(result, dict) and result["ok"], result
    else:
        charon.initiate(child="net", ike="site")
    return charon, py


def _py_established(sas: list[dict[str, JsonValue]]) -> bool:
    return any(
        s["state"] == "ESTABLISHED"
        and any(isinstance(c, dict) and c["state"] == "INSTALLED" for c in s["children"])  # type: ignore[union-attr]
        for s in sas
    )


def check_agreement(py: PyIpsecDaemon, sw_sa: IkeSa, *, encr: str, ke: str, py_initiated: bool) -> None:
    (sa,) = py.wait_for(_py_established)
    assert sa["spi_i"] == sw_sa.spi_i and sa["spi_r"] == sw_sa.spi_r
    assert sa["initiator"] is py_initiated and sw_sa.initiator is not py_initiated
    assert sa["remote_id"] == SW_ID and sw_sa.remote_id == PY_ID
    assert sw_sa.raw["encr-alg"] == encr and sw_sa.raw["dh-group"] == ke
    assert sa["encap"] is True  # libipsec fakes a NAT: both sides float to 4500
    assert sw_sa.local_port == 4500 and sw_sa.remote_port == 4500
    children = sa["children"]
    assert isinstance(children, list)
    (child,) = children
    assert isinstance(child, dict)
    sw_child = sw_sa.child("net")
    assert sw_child is not None
    assert child["spi_in"] == sw_child.spi_out and child["spi_out"] == sw_child.spi_in
    assert sw_child.raw["encr-alg"] == encr and sw_child.encap


@pytest.mark.parametrize("auth", ["psk", "rsa", "ecdsa"])
@pytest.mark.parametrize(("ike", "esp", "encr", "ke"), PROPOSALS, ids=[p[0] for p in PROPOSALS])
@pytest.mark.parametrize("initiator", ["pyipsec", "strongswan"])
def test_ike_and_child_sa_with_strongswan(
    site_pair: SitePair,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    auth: str,
    ike: str,
    esp: str,
    encr: str,
    ke: str,
    initiator: str,
) -> None:
    charon, py = connect_site(
        site_pair, charon_factory, pyipsec_factory, tmp_path, make_creds(auth), ike, esp, initiator
    )
    sw_sa = charon.wait_for_sa("site", child="net")
    check_agreement(py, sw_sa, encr=encr, ke=ke, py_initiated=initiator == "pyipsec")

    # a Delete from one side removes both (alternate which side deletes)
    if initiator == "pyipsec":
        charon.terminate(ike="site")
    else:
        py.call("down", name="site")
    charon.wait_for_no_sa("site")
    py.wait_for(lambda sas: not sas)


def test_through_nat_both_sides_move_to_4500(
    tmp_path: Path,
    topology: Topology,
    charon_factory: CharonFactory,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
) -> None:
    """pyipsec behind an nftables masquerade router initiates to charon outside."""
    nat = nat_topology(topology)
    client, server = nat.client, nat.server
    client.add_address("lo", "10.232.1.1/32")
    server.add_address("lo", "10.232.2.1/32")
    creds = make_creds("psk")
    charon = charon_factory(server, "sun")
    charon_setup(
        charon,
        creds,
        local=nat.outside.b_addr,
        remote="%any",
        lts="10.232.2.1/32",
        rts="10.232.1.1/32",
        ike=PROPOSALS[0][0],
        esp=PROPOSALS[0][1],
    )
    py = pyipsec_factory(
        client,
        pyipsec_config(
            Path("/nonexistent"),
            creds,
            local=nat.inside.b_addr,
            remote=nat.outside.b_addr,
            lts="10.232.1.1/32",
            rts="10.232.2.1/32",
            ike=PROPOSALS[0][0],
            esp=PROPOSALS[0][1],
        ),
    )
    result = py.call("up", name="site", timeout=20)
    assert isinstance(result, dict) and result["ok"], result
    sw_sa = charon.wait_for_sa("site", child="net")
    assert sw_sa.remote_host == nat.outside.a_addr  # charon sees the NAT's address
    assert sw_sa.local_port == 4500 and sw_sa.remote_port != 500
    (sa,) = py.wait_for(_py_established)
    assert sa["nat_local"] is True  # pyipsec found itself behind the NAT
    assert str(sa["local"]).endswith(":4500") and str(sa["remote"]).endswith(":4500")
    assert sa["spi_i"] == sw_sa.spi_i and sa["spi_r"] == sw_sa.spi_r
    # traffic through the NAT: ESP in UDP both ways, a checked transfer each way
    assert client.wait_ping("10.232.2.1", timeout=5)
    bulk_tcp(client, server, "10.232.2.1", tmp_path)
    bulk_tcp(server, client, "10.232.1.1", tmp_path)
    py.call("down", name="site")
    charon.wait_for_no_sa("site")
