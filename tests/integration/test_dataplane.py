"""The data-plane process between two network namespaces, with static Child SAs.

Each test spawns one data plane per namespace through ``DataplaneHandle.spawn`` (netns given),
installs mirrored :class:`~pyipsec.childsa.ChildSaSpec` values with keys chosen here, and sends real traffic
between inner addresses that live on ``lo``: ping, then 20 MB over TCP whose SHA-256 must match.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.childsa import ChildSaSpec, EspMode
from pyipsec.dataplane.channel import (
    Counters,
    DataplaneError,
    DataplaneHandle,
    IkeDatagram,
)
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.support.netns import Namespace, TwoHosts, two_hosts
from tests.support.netns import Topology as _Topology

pytestmark = pytest.mark.integration

BULK = 20 * 1024 * 1024

SINK = textwrap.dedent(
    """
    import hashlib, socket, sys
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen(1)
    print("ready", flush=True)
    c, _ = s.accept()
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(n, h.hexdigest(), flush=True)
    """
)
SOURCE = textwrap.dedent(
    """
    import hashlib, os, random, socket, sys
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    total = int(sys.argv[4])
    rnd = random.Random(int(sys.argv[5]))
    data = rnd.randbytes(total)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((sys.argv[3], 0))
    s.settimeout(60)
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
    """
)

SUITES = {
    "aes256gcm16": (EncrId.ENCR_AES_GCM_16, 256, IntegId.NONE, 36, 0),
    "aes256cbc-sha256": (EncrId.ENCR_AES_CBC, 256, IntegId.AUTH_HMAC_SHA2_256_128, 32, 32),
    "chacha20poly1305": (EncrId.ENCR_CHACHA20_POLY1305, 256, IntegId.NONE, 36, 0),
}


@dataclass
class Tunnel:
    hosts: TwoHosts
    left: DataplaneHandle
    right: DataplaneHandle
    left_inner: str
    right_inner: str


def _specs(
    suite: str, *, encap: bool, l_out: str, r_out: str, l_in: str, r_in: str
) -> tuple[ChildSaSpec, ChildSaSpec]:
    encr, bits, integ, ek_len, ik_len = SUITES[suite]
    k = {name: os.urandom(ek_len if name[0] == "e" else ik_len) for name in ("e_lr", "i_lr", "e_rl", "i_rl")}

    def spec(
        spi_in: bytes, spi_out: bytes, kin: str, kout: str, lin: str, rin: str, lo: str, ro: str
    ) -> ChildSaSpec:
        return ChildSaSpec(
            spi_in=spi_in,
            spi_out=spi_out,
            encr=encr,
            encr_key_bits=bits,
            integ=integ,
            encr_key_in=k["e_" + kin],
            integ_key_in=k["i_" + kin],
            encr_key_out=k["e_" + kout],
            integ_key_out=k["i_" + kout],
            esn=False,
            mode=EspMode.TUNNEL,
            local_ts=(TrafficSelector.from_network(lin),),
            remote_ts=(TrafficSelector.from_network(rin),),
            local=Endpoint(ip_address(lo), 4500),
            remote=Endpoint(ip_address(ro), 4500),
            encap=encap,
            replay_window=1024,
        )

    left = spec(b"\xc1\x00\x00\x01", b"\xc2\x00\x00\x02", "rl", "lr", l_in, r_in, l_out, r_out)
    right = spec(b"\xc2\x00\x00\x02", b"\xc1\x00\x00\x01", "lr", "rl", r_in, l_in, r_out, l_out)
    return left, right


@pytest.fixture
def spawn(topology: _Topology) -> Iterator[list[DataplaneHandle]]:
    """Handles spawned by a test; closed (and checked gone) at teardown."""
    handles: list[DataplaneHandle] = []
    yield handles
    for h in handles:
        h.close()


def _tunnel(
    topology: _Topology, handles: list[DataplaneHandle], suite: str, *, encap: bool = True, v6: bool = False
) -> Tunnel:
    hosts = two_hosts(topology)
    l_in, r_in = ("fd00:232:1::1", "fd00:232:2::1") if v6 else ("10.232.1.1", "10.232.2.1")
    hosts.left.add_address("lo", f"{l_in}/{128 if v6 else 32}")
    hosts.right.add_address("lo", f"{r_in}/{128 if v6 else 32}")
    l_out, r_out = (hosts.link.a_addr6, hosts.link.b_addr6) if v6 else (hosts.link.a_addr, hosts.link.b_addr)
    left = DataplaneHandle.spawn(netns=hosts.left.name, log_level="warning")
    handles.append(left)
    right = DataplaneHandle.spawn(netns=hosts.right.name, log_level="warning")
    handles.append(right)
    sl, sr = _specs(suite, encap=encap, l_out=l_out, r_out=r_out, l_in=l_in, r_in=r_in)
    left.install_child(sl)
    right.install_child(sr)
    _wait_route(hosts.left, r_in)
    _wait_route(hosts.right, l_in)
    return Tunnel(hosts, left, right, l_in, r_in)


def _wait_route(ns: Namespace, dst: str) -> None:
    deadline = time.monotonic() + 5
    argv = ["ip", "-6" if ":" in dst else "-4", "route", "show", "table", "220"]
    while dst not in ns.run(argv, check=False).stdout:
        assert time.monotonic() < deadline, f"no route to {dst} in table 220"
        time.sleep(0.02)


def _bulk(t: Tunnel, size: int = BULK) -> None:
    sink = t.hosts.right.popen([sys.executable, "-c", SINK, t.right_inner, "5001"])
    assert sink.stdout is not None
    assert sink.stdout.readline().strip() == b"ready"
    src = t.hosts.left.run(
        [sys.executable, "-c", SOURCE, t.right_inner, "5001", t.left_inner, str(size), "42"], timeout=120
    )
    out, _ = sink.communicate(timeout=60)
    assert out.decode().split() == src.stdout.split()
    assert src.stdout.split()[0] == str(size)


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _counters(h: DataplaneHandle) -> Counters:
    h.request_counters()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for ev in h.read_events():
            if isinstance(ev, Counters):
                return ev
        time.sleep(0.02)
    raise AssertionError("no counters")


@pytest.mark.parametrize("encap", [True, False], ids=["udp4500", "raw-esp"])
@pytest.mark.parametrize("suite", list(SUITES))
def test_ping_and_bulk_tcp(
    topology: _Topology, spawn: list[DataplaneHandle], suite: str, encap: bool
) -> None:
    t = _tunnel(topology, spawn, suite, encap=encap)
    assert t.hosts.left.wait_ping(t.right_inner)
    assert t.hosts.right.ping(t.left_inner, count=2)
    _bulk(t)
    c = _counters(t.right).sa(b"\xc2\x00\x00\x02")
    assert c is not None
    assert c.bytes_in >= BULK and c.integrity_failures == 0 and c.replay_drops == 0
    # the sender sealed and sent every packet (no send error on the outer socket)
    cl = _counters(t.left)
    assert cl.total("send_errors") == 0


def test_ipv6_inner_and_outer(topology: _Topology, spawn: list[DataplaneHandle]) -> None:
    t = _tunnel(topology, spawn, "aes256gcm16", v6=True)
    assert t.hosts.left.wait_ping(t.right_inner)
    _bulk(t, 8 * 1024 * 1024)


def test_ike_on_the_nat_t_port_goes_to_the_control_plane(
    topology: _Topology, spawn: list[DataplaneHandle]
) -> None:
    t = _tunnel(topology, spawn, "aes256gcm16")
    link = t.hosts.link
    probe = textwrap.dedent(
        """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 500))
        s.settimeout(5)
        s.sendto(b"\\x00\\x00\\x00\\x00" + b"IKE-HELLO", (sys.argv[1], 4500))
        s.sendto(b"\\xff", (sys.argv[1], 4500))
        s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s2.bind(("0.0.0.0", 4501))
        s2.settimeout(5)
        data, addr = s2.recvfrom(100)
        print(data.hex(), addr[1], flush=True)
        """
    )
    proc = t.hosts.left.popen([sys.executable, "-c", probe, link.b_addr])
    got: list[IkeDatagram] = []
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        got = [e for e in t.right.read_events() if isinstance(e, IkeDatagram)]
        time.sleep(0.02)
    assert len(got) == 1
    ike = got[0]
    assert ike.payload == b"IKE-HELLO"
    assert ike.remote == Endpoint(ip_address(link.a_addr), 500)
    assert ike.local == Endpoint(ip_address(link.b_addr), 4500)
    # and the other way: the data plane adds the marker
    t.right.send_ike(ike.local, Endpoint(ip_address(link.a_addr), 4501), b"IKE-REPLY")
    out, _ = proc.communicate(timeout=10)
    data_hex, port = out.decode().split()
    assert bytes.fromhex(data_hex) == b"\x00\x00\x00\x00IKE-REPLY"
    assert port == "4500"
    assert _counters(t.right).total("keepalives") == 1


def test_removal_cleanup_and_port_in_use(topology: _Topology, spawn: list[DataplaneHandle]) -> None:
    t = _tunnel(topology, spawn, "aes256gcm16")
    left = t.hosts.left
    assert left.wait_ping(t.right_inner)
    # a second data plane in the same namespace cannot have port 4500: a clear error
    with pytest.raises(DataplaneError, match="4500"):
        DataplaneHandle.spawn(netns=left.name, tun_name="pyi9", log_level="critical")
    t.left.remove_child(b"\xc1\x00\x00\x01")
    deadline = time.monotonic() + 5
    while t.right_inner in left.run("ip route show table 220", check=False).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert not left.ping(t.right_inner, timeout=1)
    assert _counters(t.left).sas == ()
    pid = t.left.pid
    t.left.close()
    assert not _running(pid)
    assert "pyi0" not in left.run("ip -o link").stdout
    assert "lookup 220" not in left.run("ip rule").stdout
    assert "lookup 220" not in left.run("ip -6 rule").stdout


def test_data_plane_exits_when_the_control_plane_dies(topology: _Topology) -> None:
    hosts = two_hosts(topology)
    h = DataplaneHandle.spawn(netns=hosts.left.name, log_level="warning")
    try:
        assert "pyi0" in hosts.left.run("ip -o link").stdout
        h.sock.close()  # what a crashed daemon leaves: the channel closes
        assert h.proc.wait(timeout=10) == 0
        assert "pyi0" not in hosts.left.run("ip -o link").stdout
        assert "lookup 220" not in hosts.left.run("ip rule").stdout
    finally:
        h._closed = True  # the process is gone already
        if h.proc.poll() is None:
            h.proc.kill()
