"""Tunnels that survive, against strongSwan: rekeys under load, and IKE fragmentation.

pyipsec (left, 10.231.1.1, inner 10.232.1.1) and charon with its kernel-libipsec data plane
(right, 10.231.1.2, inner 10.232.2.1; ESP always in UDP 4500):

* rekeys under load — while a 50 Mbit/s UDP iperf3 runs from pyipsec's side to charon's, both
  daemons rekey the CHILD SA every 1.5 s (pyipsec with ``pyipsec rekey``'s control command,
  charon with vici's ``rekey``) and each rekeys the IKE SA once; with and without PFS. No
  datagram may be lost; a paced TCP transfer across the same rekeys must arrive intact;
* a lossy path — relays dropping 30% each way between pyipsec and charon: the handshake and
  rekeys from either side still complete;
* IKE fragmentation (RFC 7383) — certificate authentication with RSA 3072 certificates over a
  link whose MTU is 1280 and which drops IP fragments (an nftables rule in front of the
  kernel's reassembly, as on paths that filter fragments): the IKE_AUTH messages must be split
  into IKE fragments by both sides, in both initiator roles.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from pyipsec.control.protocol import JsonValue
from tests.interop.conftest import SitePair
from tests.support import pki
from tests.support.netns import Namespace, Topology
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.relay import Impairment
from tests.support.strongswan import Charon, CharonFactory, psk_connection
from tests.support.survive import (
    CLIENT_ID,
    PSK,
    SERVER_ID,
    LossyPath,
    Schedule,
    TcpTransfer,
    deepen_tun_queue,
    iperf3_udp,
    log_count,
    lossy_path,
    pyipsec_site,
)

pytestmark = pytest.mark.interop

Factory = Callable[..., PyIpsecDaemon]


@pytest.fixture
def daemons(pyipsec_factory: Factory) -> Factory:  # noqa: F811 - the fixture, imported
    """``pyipsec_factory`` under a name that does not shadow the import."""
    return pyipsec_factory


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
    if len(sas) != 1 or sas[0].state != "ESTABLISHED":
        return False
    return [c.state for c in sas[0].children] == ["INSTALLED"]


def _wait(pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _psk_pair(
    site_pair: SitePair, charon_factory: CharonFactory, factory: Factory, *, esp: str, initiator: str
) -> tuple[PyIpsecDaemon, Charon]:
    left, right = site_pair.left, site_pair.right
    charon = charon_factory(right.ns, "sun")
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
                esp_proposals=[esp],
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
            esp=esp,
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


def _py_rekey(py: PyIpsecDaemon, *, ike: bool = False) -> Callable[[], object]:
    return lambda: py.call("rekey", name="site", ike=ike)


def _sw_rekey(charon: Charon, *, ike: bool = False) -> Callable[[], object]:
    def run() -> object:
        reply = charon.session().rekey({"ike": "site"} if ike else {"child": "net"})
        return {str(k): str(v) for k, v in reply.items()}

    return run


def _rekey_schedule(py: PyIpsecDaemon, charon: Charon) -> Schedule:
    return Schedule(
        [
            (1.0, "child rekey by pyipsec", _py_rekey(py)),
            (2.5, "child rekey by charon", _sw_rekey(charon)),
            (4.0, "IKE rekey by pyipsec", _py_rekey(py, ike=True)),
            (5.5, "child rekey by charon", _sw_rekey(charon)),
            (7.0, "IKE rekey by charon", _sw_rekey(charon, ike=True)),
            (8.5, "child rekey by pyipsec", _py_rekey(py)),
        ]
    )


PFS = [("aes256gcm16", "no-pfs"), ("aes256gcm16-ecp256", "pfs-ecp256")]


@pytest.mark.parametrize("initiator", ["pyipsec", "strongswan"])
@pytest.mark.parametrize("esp", [p[0] for p in PFS], ids=[p[1] for p in PFS])
def test_udp_load_survives_rekeys_with_strongswan(
    site_pair: SitePair, charon_factory: CharonFactory, daemons: Factory, esp: str, initiator: str
) -> None:
    py, charon = _psk_pair(site_pair, charon_factory, daemons, esp=esp, initiator=initiator)
    (sa,) = py.status()
    first_ike = sa["spi_i"]
    schedule = _rekey_schedule(py, charon).start()
    left, right = site_pair.left, site_pair.right
    report = iperf3_udp(left.ns, right.ns, dst=right.inner, src=left.inner, bitrate="50M", seconds=10)
    schedule.join()
    assert not schedule.failures(), schedule.results
    print(
        f"\n{esp}/{initiator}: {report.packets} packets, lost {report.lost}, "
        f"out of order {report.out_of_order}"
    )
    _wait(lambda: _charon_settled(charon), "charon to settle")
    (sa,) = py.wait_for(_settled)
    assert sa["spi_i"] != first_ike
    assert log_count(charon.log_text(), "rekeyed") + log_count(charon.log_text(), "rekeying") >= 3
    assert report.packets > 40000, report
    assert report.lost == 0, (report, py.log_text()[-3000:])
    assert report.out_of_order <= report.packets // 1000, report


def test_tcp_transfer_intact_across_rekeys_with_strongswan(
    site_pair: SitePair, charon_factory: CharonFactory, daemons: Factory, tmp_path: Path
) -> None:
    py, charon = _psk_pair(site_pair, charon_factory, daemons, esp="aes256gcm16-x25519", initiator="pyipsec")
    left, right = site_pair.left, site_pair.right
    first = py.status()[0]["children"]
    transfer = TcpTransfer(left.ns, right.ns, dst=right.inner, tmp=tmp_path / "up", seconds=9).start()
    schedule = _rekey_schedule(py, charon).start()
    transfer.finish()
    schedule.join()
    assert not schedule.failures(), schedule.results
    back = TcpTransfer(right.ns, left.ns, dst=left.inner, tmp=tmp_path / "down", seconds=3, port=5302)
    back.start().finish()
    (sa,) = py.wait_for(_settled)
    assert sa["children"] != first


# --- IKE fragmentation --------------------------------------------------------------------------

#: Drop IP fragments before the kernel reassembles them (nf_defrag runs at priority -400).
DROP_FRAGMENTS = """
table inet survive_frag {
  chain pre {
    type filter hook prerouting priority -450; policy accept;
    ip frag-off & 0x3fff != 0 counter drop
    ip6 nexthdr ipv6-frag counter drop
  }
}
"""


def _fragment_drops(ns: Namespace) -> int:
    out = ns.run(["nft", "list", "table", "inet", "survive_frag"]).stdout
    return sum(int(line.split("packets")[1].split()[0]) for line in out.splitlines() if "packets" in line)


@pytest.mark.parametrize("initiator", ["pyipsec", "strongswan"])
def test_ike_fragmentation_with_rsa3072_certificates(
    topology: Topology,
    charon_factory: CharonFactory,
    daemons: Factory,
    tmp_path: Path,
    initiator: str,
) -> None:
    left, right = topology.namespace("left"), topology.namespace("right")
    link = topology.link(left, right, mtu=1280)
    for ns in (left, right):
        ns.run(["nft", "-f", "-"], input=DROP_FRAGMENTS)
    left.add_address("lo", "10.232.1.1/32")
    right.add_address("lo", "10.232.2.1/32")

    now = pki.NOW.replace(year=2026)
    start, end = now - timedelta(days=30), now + timedelta(days=3650)
    ca = pki.make_ca("pyipsec fragmentation CA", key="rsa3072", not_before=start, not_after=end)
    moon, sun = (
        pki.make_end_entity(ca, name, key="rsa3072", dns=[name], not_before=start, not_after=end)
        for name in (CLIENT_ID, SERVER_ID)
    )
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ca.pem").write_bytes(ca.pem)
    (creds / "moon.pem").write_bytes(moon.pem)
    (creds / "moon.key").write_bytes(moon.key_pem())

    charon = charon_factory(right, "sun", settings={"charon.fragment_size": 1000})
    charon.load_cert(ca.pem, flag="CA")
    charon.load_key(sun.key_pem())
    charon.load_conn(
        {
            "site": {
                "version": "2",
                "local_addrs": [link.b_addr],
                "remote_addrs": [link.a_addr],
                "proposals": [IKE],
                "mobike": "no",
                "fragmentation": "yes",
                "local": {"auth": "pubkey", "id": SERVER_ID, "certs": [sun.pem.decode()]},
                "remote": {"auth": "pubkey", "id": CLIENT_ID, "cacerts": [ca.pem.decode()]},
                "children": {
                    "net": {
                        "local_ts": ["10.232.2.1/32"],
                        "remote_ts": ["10.232.1.1/32"],
                        "esp_proposals": ["aes256gcm16"],
                        "mode": "tunnel",
                        "start_action": "none",
                    }
                },
            }
        }
    )
    py = daemons(
        left,
        pyipsec_site(
            local=link.a_addr,
            remote=link.b_addr,
            local_ts="10.232.1.1/32",
            remote_ts="10.232.2.1/32",
            initiator=True,
            ike=IKE,
            conn={"fragmentation": True},
            settings={"ike_fragment_size": 576},
            auth={
                "local": {"auth": "pubkey", "id": CLIENT_ID, "certs": [str(creds / "moon.pem")]},
                "remote": {"auth": "pubkey", "id": SERVER_ID, "cacerts": [str(creds / "ca.pem")]},
            },
            secrets={"private-moon": {"file": str(creds / "moon.key")}},
        ),
    )
    if initiator == "pyipsec":
        result = py.call("up", name="site", timeout=30)
        assert isinstance(result, dict) and result["ok"], (result, charon.describe())
    else:
        charon.initiate(child="net", ike="site", timeout=20)
    charon.wait_for_sa("site", child="net")
    py.wait_for(_settled)
    assert left.wait_ping("10.232.2.1", timeout=5)

    # IKE_AUTH really travelled in IKE fragments, both ways
    sw_log = charon.log_text()
    received = log_count(sw_log, "received fragment #")
    split = [line for line in sw_log.splitlines() if "into" in line and "fragments" in line]
    assert received >= 2, sw_log[-3000:]  # charon reassembled our IKE_AUTH message from fragments
    assert split, sw_log[-3000:]  # charon split its own IKE_AUTH message
    if initiator == "pyipsec":
        sent = [
            line
            for line in py.log_text().splitlines()
            if "sending IKE_AUTH request" in line and "datagrams" in line
        ]
        assert sent and " 1 datagrams" not in sent[0], sent
    # and no IP fragment was needed (the nftables rule would have dropped it)
    assert _fragment_drops(left) == 0 and _fragment_drops(right) == 0
    print(f"\n{initiator}: charon received {received} fragments; {split[0].split(']')[-1].strip()}")


# --- a lossy path ----------------------------------------------------------------------------------


def _behind_relays(
    path: LossyPath,
    charon_factory: CharonFactory,
    daemons: Factory,
    *,
    esp: str,
    retransmit: dict[str, float],
) -> tuple[PyIpsecDaemon, Charon]:
    """pyipsec (client, inner 10.232.1.1) up to charon (server, inner 10.232.2.1) through the
    relays of ``path``, which charon sees as a NAT; both with the same retransmission timing."""
    path.client.add_address("lo", "10.232.1.1/32")
    path.server.add_address("lo", "10.232.2.1/32")
    charon = charon_factory(
        path.server, "sun", settings={f"charon.{k}": str(v) for k, v in retransmit.items()}
    )
    charon.load_shared(PSK, owners=[CLIENT_ID, SERVER_ID], id="psk")
    charon.load_conn(
        {
            "site": psk_connection(
                local_addr=path.server_addr,
                remote_addr="%any",
                local_id=SERVER_ID,
                remote_id=CLIENT_ID,
                local_ts=["10.232.2.1/32"],
                remote_ts=["10.232.1.1/32"],
                proposals=[IKE],
                esp_proposals=[esp],
            )
        }
    )
    py = daemons(
        path.client,
        pyipsec_site(
            local=path.inside.b_addr,
            remote=path.relay_addr,
            local_ts="10.232.1.1/32",
            remote_ts="10.232.2.1/32",
            initiator=True,
            ike=IKE,
            esp=esp,
            conn={"mobike": False},
            settings=retransmit,
        ),
    )
    result = py.call("up", name="site", timeout=60)
    assert isinstance(result, dict) and result["ok"], (result, charon.describe())
    return py, charon


def test_handshake_and_rekeys_with_strongswan_at_30_percent_loss(
    topology: Topology, charon_factory: CharonFactory, daemons: Factory
) -> None:
    """pyipsec initiates through relays that drop 30% of the datagrams each way to charon, which
    sees the relays as a NAT; both retransmit fast. The handshake, CHILD SA rekeys from either
    side and IKE SA rekeys from either side all complete."""
    path = lossy_path(topology, Impairment(drop=0.3))
    try:
        fast = {"retransmit_timeout": 0.5, "retransmit_base": 1.4, "retransmit_tries": 8}
        py, charon = _behind_relays(path, charon_factory, daemons, esp="aes256gcm16", retransmit=fast)
        sw_sa = charon.wait_for_sa("site", child="net", timeout=30)
        assert sw_sa.remote_host == path.nat_addr  # charon sees the relays' address
        steps: list[tuple[str, Callable[[], object]]] = [
            ("child rekey by pyipsec", _py_rekey(py)),
            ("child rekey by charon", _sw_rekey(charon)),
            ("IKE rekey by pyipsec", _py_rekey(py, ike=True)),
            ("IKE rekey by charon", _sw_rekey(charon, ike=True)),
            ("child rekey by pyipsec", _py_rekey(py)),
        ]
        for label, step in steps:
            before = py.status()[0]
            step()

            def moved(sas: list[dict[str, JsonValue]], before: dict[str, JsonValue] = before) -> bool:
                if not _settled(sas):
                    return False
                now = sas[0]
                return now["spi_i"] != before["spi_i"] or now["children"] != before["children"]

            py.wait_for(moved, timeout=60)
            _wait(lambda: _charon_settled(charon), f"charon to settle after {label}", timeout=60)
        (sa,) = py.wait_for(_settled)
        sw = charon.list_sas("site")[0]
        child = sa["children"][0]  # type: ignore[index]
        sw_child = sw.child("net")
        assert sw_child is not None and sa["spi_i"] == sw.spi_i and sa["spi_r"] == sw.spi_r
        assert child["spi_in"] == sw_child.spi_out and child["spi_out"] == sw_child.spi_in  # type: ignore[index]
        assert path.client.ping("10.232.2.1", count=10, timeout=6)
        stats = path.stats()
        assert stats["dropped"] >= 0.1 * stats["received"], stats
        print(f"\nrelays: {stats}")
    finally:
        path.close()


def test_simultaneous_rekeys_with_strongswan_over_a_slow_path_lose_nothing(
    topology: Topology, charon_factory: CharonFactory, daemons: Factory
) -> None:
    """pyipsec and charon rekey the CHILD SA at the same moment, then the IKE SA at the same
    moment, over relays that delay every datagram by 150 ms each way, so the requests cross
    (RFC 7296 §2.8.1, §2.8.2). Both must end with the same single IKE SA and Child SA, and the
    UDP stream through the tunnel loses nothing."""
    path = lossy_path(topology, Impairment(delay=0.15))
    try:
        py, charon = _behind_relays(
            path, charon_factory, daemons, esp="aes256gcm16-ecp256", retransmit={"retransmit_timeout": 2.0}
        )
        charon.wait_for_sa("site", child="net", timeout=30)
        (before,) = py.wait_for(_settled)
        deepen_tun_queue(path.client)
        deepen_tun_queue(path.server, "ipsec0")
        assert path.client.wait_ping("10.232.2.1", timeout=5)
        schedule = Schedule(
            [
                (1.5, "child rekey by pyipsec", _py_rekey(py)),
                (1.5, "child rekey by charon", _sw_rekey(charon)),
                (5.0, "IKE rekey by charon", _sw_rekey(charon, ike=True)),
                (5.0, "IKE rekey by pyipsec", _py_rekey(py, ike=True)),
            ]
        ).start()
        report = iperf3_udp(
            path.client,
            path.server,
            dst="10.232.2.1",
            src="10.232.1.1",
            bitrate="4M",
            seconds=10,
            length=1000,
        )
        schedule.join()
        assert not schedule.failures(), schedule.results
        print(
            f"\ncollisions: {report.packets} packets, lost {report.lost}, out of order {report.out_of_order}"
        )
        (sa,) = py.wait_for(_settled, timeout=30)
        _wait(lambda: _charon_settled(charon), "charon to settle", timeout=30)
        sw = charon.list_sas("site")[0]
        child = sa["children"][0]  # type: ignore[index]
        sw_child = sw.child("net")
        assert sw_child is not None and sa["spi_i"] == sw.spi_i and sa["spi_r"] == sw.spi_r
        assert sa["spi_i"] != before["spi_i"]  # the IKE SA was rekeyed
        assert child["spi_in"] == sw_child.spi_out and child["spi_out"] == sw_child.spi_in  # type: ignore[index]
        log = py.log_text()
        print(
            f"pyipsec saw {log_count(log, 'rekey collision on')} CHILD and "
            f"{log_count(log, 'IKE rekey collision')} IKE rekey collisions"
        )
        print("\n".join(line for line in log.splitlines() if "collision" in line or "TEMPORARY" in line))
        assert log_count(log, "rekey collision on") >= 1, log[-4000:]
        assert log_count(log, "IKE rekey collision") >= 1, log[-4000:]
        assert report.lost == 0, (report, log[-3000:])
        assert path.client.ping("10.232.2.1", count=3)
    finally:
        path.close()
