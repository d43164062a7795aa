"""The strongSwan harness itself: two charons in two namespaces build a PSK tunnel.

These tests check the harness and strongSwan; later issues replace one peer with pyipsec.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.conftest import SitePair
from tests.support.strongswan import Charon, CharonFactory, ChildSa, IkeSa, psk_connection

pytestmark = pytest.mark.interop

PSK = "harness-test-psk-0123456789abcdef"
LEFT_ID, RIGHT_ID = "left@pyipsec.test", "right@pyipsec.test"


def _configure(
    charon: Charon, *, local: str, remote: str, local_id: str, remote_id: str, lts: str, rts: str
) -> None:
    charon.load_shared(PSK, owners=[LEFT_ID, RIGHT_ID], id="psk")
    conn = psk_connection(
        local_addr=local,
        remote_addr=remote,
        local_id=local_id,
        remote_id=remote_id,
        local_ts=[lts],
        remote_ts=[rts],
        proposals=["aes256gcm16-prfsha256-ecp256"],
        esp_proposals=["aes256gcm16"],
    )
    charon.load_conn({"site": conn})


def _pair(site_pair: SitePair, charon_factory: CharonFactory) -> tuple[Charon, Charon]:
    left, right = site_pair.left, site_pair.right
    cl = charon_factory(left.ns, "left")
    cr = charon_factory(right.ns, "right")
    _configure(
        cl,
        local=left.outer,
        remote=right.outer,
        local_id=LEFT_ID,
        remote_id=RIGHT_ID,
        lts=left.inner_net,
        rts=right.inner_net,
    )
    _configure(
        cr,
        local=right.outer,
        remote=left.outer,
        local_id=RIGHT_ID,
        remote_id=LEFT_ID,
        lts=right.inner_net,
        rts=left.inner_net,
    )
    return cl, cr


def test_charon_starts_with_libipsec(site_pair: SitePair, charon_factory: CharonFactory) -> None:
    charon = charon_factory(site_pair.left.ns, "solo")
    assert charon.version()["version"] == "5.9.8"
    assert charon.pid is not None
    assert Path(f"/proc/{charon.pid}/comm").read_text().strip() == "charon"
    assert "created TUN device: ipsec0" in charon.log_text()
    assert "ipsec0" in site_pair.left.ns.run("ip -o link").stdout
    charon.stop()
    assert not charon.running
    assert charon.proc is not None and charon.proc.returncode is not None


def test_psk_tunnel_ping_spis_and_terminate(site_pair: SitePair, charon_factory: CharonFactory) -> None:
    left, right = site_pair.left, site_pair.right
    cl, cr = _pair(site_pair, charon_factory)

    cl.initiate(child="net", ike="site")
    sa_l = cl.wait_for_sa("site", child="net")
    sa_r = cr.wait_for_sa("site", child="net")

    # the IKE SA: same SPIs on both sides, left initiated, libipsec floated to 4500
    assert sa_l.initiator and not sa_r.initiator
    assert (sa_l.spi_i, sa_l.spi_r) == (sa_r.spi_i, sa_r.spi_r)
    assert sa_l.spi_i and sa_l.spi_r
    assert (sa_l.local_host, sa_l.remote_host) == (left.outer, right.outer)
    assert (sa_l.local_port, sa_l.remote_port) == (4500, 4500)
    assert sa_l.raw["encr-alg"] == "AES_GCM_16" and sa_l.raw["encr-keysize"] == "256"
    assert sa_l.raw["prf-alg"] == "PRF_HMAC_SHA2_256" and sa_l.raw["dh-group"] == "ECP_256"

    # the CHILD SA: each side's inbound SPI is the other's outbound SPI; ESP in UDP
    child_l, child_r = _child(sa_l), _child(sa_r)
    assert child_l.spi_in == child_r.spi_out and child_l.spi_out == child_r.spi_in
    assert child_l.protocol == "ESP" and child_l.encap and child_r.encap
    assert child_l.raw["encr-alg"] == "AES_GCM_16" and child_l.raw["encr-keysize"] == "256"
    assert child_l.local_ts == (left.inner_net,) and child_l.remote_ts == (right.inner_net,)

    # traffic between the inner addresses goes through the libipsec tunnel
    assert left.ns.ping(right.inner, count=3)
    assert right.ns.ping(left.inner, count=1)
    child_l = _child(cl.wait_for_sa("site", child="net"))
    assert int(str(child_l.raw["packets-out"])) >= 3
    assert int(str(child_l.raw["packets-in"])) >= 3
    assert "10.232.2.1" in left.ns.run("ip route show table 220").stdout

    cl.terminate(ike="site")
    cl.wait_for_no_sa("site")
    cr.wait_for_no_sa("site")
    assert not left.ns.ping(right.inner, timeout=1)


def _child(sa: IkeSa) -> ChildSa:
    child = sa.child("net")
    assert child is not None, sa
    return child
