"""Reauthentication against strongSwan, make-before-break (RFC 7296 §2.8.3; issue "Tunnels that
survive").

pyipsec (left, 10.231.1.1, inner 10.232.1.1) and charon 5.9.8 with its kernel-libipsec data plane
(right, 10.231.1.2, inner 10.232.2.1; ESP always in UDP 4500), 50 Mbit/s of UDP iperf3 from
pyipsec's side to charon's while the IKE SA is reauthenticated:

* pyipsec as initiator reauthenticates (``pyipsec rekey --reauth``'s control command, three
  times) against charon as responder: charon takes a new IKE SA of the same peer without
  INITIAL_CONTACT as a "suspected reauthentication" and keeps the old one until we delete it;
* charon as initiator with ``reauth_time`` (4 s) and ``charon.make_before_break = yes``
  reauthenticates against the pyipsec responder, which keeps sending on the old Child SA until
  charon deletes the old IKE SA.

No datagram may be lost; afterwards each side has one IKE SA, with SPIs other than the first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from pyipsec.control.protocol import JsonValue
from tests.interop.conftest import SitePair
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.strongswan import Charon, CharonFactory, psk_connection
from tests.support.survive import (
    CLIENT_ID,
    PSK,
    SERVER_ID,
    Schedule,
    deepen_tun_queue,
    iperf3_udp,
    log_count,
    pyipsec_site,
)

pytestmark = pytest.mark.interop

Factory = Callable[..., PyIpsecDaemon]
IKE = "aes256gcm16-prfsha256-ecp256"


def _settled(sas: list[dict[str, JsonValue]]) -> bool:
    if len(sas) != 1 or sas[0]["state"] != "ESTABLISHED":
        return False
    children = sas[0]["children"]
    return isinstance(children, list) and [c["state"] for c in children if isinstance(c, dict)] == [
        "INSTALLED"
    ]


def _charon_settled(charon: Charon) -> bool:
    sas = charon.list_sas("site")
    return (
        len(sas) == 1
        and sas[0].state == "ESTABLISHED"
        and [c.state for c in sas[0].children] == ["INSTALLED"]
    )


def _wait(pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _pair(
    site_pair: SitePair,
    charon_factory: CharonFactory,
    factory: Factory,
    *,
    initiator: str,
    charon_conn: dict[str, object] | None = None,
    charon_settings: dict[str, str | int] | None = None,
) -> tuple[PyIpsecDaemon, Charon]:
    left, right = site_pair.left, site_pair.right
    charon = charon_factory(right.ns, "sun", settings=charon_settings)
    charon.load_shared(PSK, owners=[CLIENT_ID, SERVER_ID], id="psk")
    charon.load_conn(
        {
            "site": psk_connection(
                local_addr=right.outer,
                remote_addr=left.outer,
                local_id=SERVER_ID,
                remote_id=CLIENT_ID,
                local_ts=[right.inner_net],
                remote_ts=[left.inner_net],
                proposals=[IKE],
                extra=charon_conn,  # type: ignore[arg-type]
            )
        }
    )
    py = factory(
        left.ns,
        pyipsec_site(
            local=left.outer,
            remote=right.outer,
            local_ts=left.inner_net,
            remote_ts=right.inner_net,
            initiator=True,
            ike=IKE,
        ),
    )
    if initiator == "pyipsec":
        result = py.call("up", name="site", timeout=30)
        assert isinstance(result, dict) and result["ok"], result
    else:
        charon.initiate(child="net", ike="site")
    charon.wait_for_sa("site", child="net")
    py.wait_for(_settled)
    deepen_tun_queue(left.ns)
    deepen_tun_queue(right.ns, "ipsec0")
    assert left.ns.wait_ping(right.inner, timeout=5), py.log_text()[-3000:]
    return py, charon


def test_pyipsec_reauthenticates_against_strongswan_without_loss(
    site_pair: SitePair,
    charon_factory: CharonFactory,
    pyipsec_factory: Factory,  # noqa: F811
) -> None:
    py, charon = _pair(site_pair, charon_factory, pyipsec_factory, initiator="pyipsec")
    (first,) = py.status()
    first_sw = charon.list_sas("site")[0]

    def reauth() -> object:
        return py.call("rekey", name="site", reauth=True)

    schedule = Schedule([(2.0, "reauth 1", reauth), (5.0, "reauth 2", reauth), (8.0, "reauth 3", reauth)])
    schedule.start()
    left, right = site_pair.left, site_pair.right
    report = iperf3_udp(left.ns, right.ns, dst=right.inner, src=left.inner, bitrate="50M", seconds=11)
    schedule.join()
    assert not schedule.failures(), schedule.results
    print(
        f"\npyipsec reauth: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}"
    )
    (last,) = py.wait_for(_settled, timeout=20)
    _wait(lambda: _charon_settled(charon), "charon to keep one IKE SA")
    last_sw = charon.list_sas("site")[0]
    assert (last["spi_i"], last["spi_r"]) != (first["spi_i"], first["spi_r"])
    assert last_sw.uniqueid != first_sw.uniqueid and last_sw.spi_i != first_sw.spi_i
    assert log_count(py.log_text(), "reauthentication complete") >= 3, py.log_text()[-3000:]
    assert report.packets > 40000, report
    assert report.lost == 0, (report, py.log_text()[-3000:])
    assert report.out_of_order <= report.packets // 1000, report


def test_strongswan_reauthenticates_against_pyipsec_without_loss(
    site_pair: SitePair,
    charon_factory: CharonFactory,
    pyipsec_factory: Factory,  # noqa: F811
) -> None:
    py, charon = _pair(
        site_pair,
        charon_factory,
        pyipsec_factory,
        initiator="strongswan",
        charon_conn={"reauth_time": "4s", "over_time": "1s", "rand_time": "0s"},
        charon_settings={"charon.make_before_break": "yes"},
    )
    (first,) = py.status()
    left, right = site_pair.left, site_pair.right
    report = iperf3_udp(left.ns, right.ns, dst=right.inner, src=left.inner, bitrate="50M", seconds=10)
    print(
        f"\ncharon reauth: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}"
    )
    reauths = log_count(py.log_text(), "the peer reauthenticates")
    print(f"{reauths} reauthentications by charon")
    assert reauths >= 2, (charon.log_text()[-3000:], py.log_text()[-3000:])
    (last,) = py.wait_for(_settled, timeout=20)
    _wait(lambda: _charon_settled(charon), "charon to keep one IKE SA")
    assert (last["spi_i"], last["spi_r"]) != (first["spi_i"], first["spi_r"])
    assert report.packets > 40000, report
    assert report.lost == 0, (report, py.log_text()[-3000:], charon.log_text()[-3000:])
    assert report.out_of_order <= report.packets // 1000, report
