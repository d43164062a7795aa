"""``save_keys`` end to end: two pyipsec daemons, a capture on the wire, tshark decrypts it.

The initiator writes its keys (``save_keys = "keys"``, beside its config file). dumpcap
records the veth between the namespaces while the tunnel comes up and carries pings with a
marked payload. Then tshark, with a throw-away profile holding only the written tables, must
show what only the keys reveal: the identities inside IKE_AUTH and the inner ICMP with its
payload inside ESP. scapy's ESP implementation decrypts one captured packet on its own with
the ``esp_sa`` keys, as a second opinion on the table's format.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.utils import rdpcap

from pyipsec.daemon.savekeys import ESP_FILE, IKE_FILE
from tests.interop.test_ike_strongswan import PY_ID, SW_ID, _py_established, make_creds, pyipsec_config
from tests.support.netns import Namespace, Topology, two_hosts
from tests.support.pyipsecd import PyIpsecDaemon, pyipsec_factory  # noqa: F401 - fixture
from tests.support.wireshark import require_tshark, run_tshark

pytestmark = pytest.mark.integration

MARK = "5361766b6579735f"  # "Savekeys_", the pings' payload pattern
# suite, scapy's names for the ESP transform
SUITES = [
    ("aes256gcm16-prfsha256-ecp256", "aes256gcm16", "AES-GCM", None),
    ("aes128-sha256-modp2048", "aes128-sha256", "AES-CBC", "SHA2-256-128"),
]


def _capture(ns: Namespace, ifname: str, out: Path) -> subprocess.Popen[bytes]:
    proc = ns.popen(["dumpcap", "-q", "-i", ifname, "-w", str(out)])
    deadline = time.monotonic() + 10
    while not (out.exists() and out.stat().st_size > 0):  # the file header: capturing
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"dumpcap did not start: {err}")
        time.sleep(0.05)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # dumpcap flushes and closes the file
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.mark.parametrize(("ike", "esp", "crypt", "auth"), SUITES, ids=[s[1] for s in SUITES])
def test_tshark_decrypts_ike_and_esp_with_the_written_keys(
    topology: Topology,
    pyipsec_factory: Callable[..., PyIpsecDaemon],  # noqa: F811
    tmp_path: Path,
    ike: str,
    esp: str,
    crypt: str,
    auth: str | None,
) -> None:
    require_tshark()
    hosts = two_hosts(topology)
    a, b = hosts.left, hosts.right
    a.add_address("lo", "10.233.1.1/32")
    b.add_address("lo", "10.233.2.1/32")
    creds = make_creds("psk")
    left = pyipsec_config(
        tmp_path / "l",
        creds,
        local=hosts.link.a_addr,
        remote=hosts.link.b_addr,
        lts="10.233.1.1/32",
        rts="10.233.2.1/32",
        ike=ike,
        esp=esp,
    )
    left["settings"] = {"log_level": "debug", "save_keys": "keys"}  # relative to the config file
    right = pyipsec_config(
        tmp_path / "r",
        creds,
        local=hosts.link.b_addr,
        remote=hosts.link.a_addr,
        lts="10.233.2.1/32",
        rts="10.233.1.1/32",
        ike=ike,
        esp=esp,
    )
    rc = right["connections"]["site"]  # type: ignore[index]
    rc["local"], rc["remote"] = left["connections"]["site"]["remote"], left["connections"]["site"]["local"]  # type: ignore[index]

    pcap = tmp_path / "wire.pcapng"
    dumpcap = _capture(a, hosts.link.a_if, pcap)
    try:
        da = pyipsec_factory(a, left, name="left")
        db = pyipsec_factory(b, right, name="right")
        result = da.call("up", name="site", timeout=20)
        assert isinstance(result, dict) and result["ok"], (result, da.log_text()[-2000:])
        db.wait_for(_py_established)
        assert a.wait_ping("10.233.2.1", timeout=5)
        pinged = a.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", "-p", MARK, "10.233.2.1"]).stdout
        assert "3 received" in pinged, pinged
        time.sleep(0.5)  # the last packets reach the capture file
    finally:
        _stop(dumpcap)

    keys = da.config_path.parent / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in (IKE_FILE, ESP_FILE):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    (ike_row,) = (keys / IKE_FILE).read_text().splitlines()
    esp_rows = (keys / ESP_FILE).read_text().splitlines()
    assert len(esp_rows) == 2
    log = da.log_text()
    assert f"save_keys: writing IKE and ESP keys to {keys}" in log
    # not one key in the (debug) log
    for row in (ike_row, *esp_rows):
        for field in row.split(","):
            value = field.strip('"').removeprefix("0x")
            if len(value) >= 32:
                assert value not in log

    # IKE_AUTH and the pings (ESP) in one pass: ID payloads, then addresses (outer, inner) and data
    fields = ["-Y", "isakmp.exchangetype == 35 || (esp && icmp.type == 8)", "-T", "fields"]
    for f in ("isakmp.id.data.fqdn", "ip.src", "ip.dst", "data.data"):
        fields += ["-e", f]
    # without the keys tshark sees neither the identities nor the pings
    blind = run_tshark(pcap, tmp_path / "none", tmp_path / "h0", fields).stdout.splitlines()
    assert [row.split("\t")[0] for row in blind] == ["", ""], blind  # the two IKE_AUTH messages
    # with them: IDi and IDr inside IKE_AUTH ...
    rows = [row.split("\t") for row in run_tshark(pcap, keys, tmp_path / "h1", fields).stdout.splitlines()]
    ids = [r[0] for r in rows if r[0]]
    assert ids == [f"{PY_ID},{SW_ID}", SW_ID], rows
    # ... and the pings inside ESP, payload and all (outer and inner addresses)
    pings = [r for r in rows if not r[0]]
    for _, src, dst, _ in pings:
        assert src == f"{hosts.link.a_addr},10.233.1.1" and dst == f"{hosts.link.b_addr},10.233.2.1", pings
    assert sum(MARK in data for *_, data in pings) == 3, pings  # (and the first, unmarked, from wait_ping)

    # scapy, independently: our outbound SA's line decrypts a captured ESP packet
    fields = [f.strip('"') for f in esp_rows[1].split(",")]
    assert fields[1:3] == [hosts.link.a_addr, hosts.link.b_addr]
    sa = SecurityAssociation(
        ESP,
        spi=int(fields[3], 16),
        crypt_algo=crypt,
        crypt_key=bytes.fromhex(fields[5][2:]),
        auth_algo=auth,
        auth_key=bytes.fromhex(fields[7][2:]) if auth else None,
    )
    ours = [p[IP] for p in rdpcap(str(pcap)) if p.haslayer(ESP) and p[ESP].spi == int(fields[3], 16)]
    assert ours, "no ESP packet of our outbound SA in the capture"
    # (no tunnel header given: scapy keeps the outer IP header and puts the inner packet under it)
    inner = sa.decrypt(ours[-1]).getlayer(IP, 2)
    assert inner is not None and inner.src == "10.233.1.1" and inner.dst == "10.233.2.1"
    assert inner.haslayer(ICMP) and bytes.fromhex(MARK) in bytes(inner[ICMP].payload)
