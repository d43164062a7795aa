"""EapTlsPeer against FreeRADIUS 3.2 and EapTlsServer against wpa_supplicant's eapol_test, over
RADIUS, TLS 1.2 and 1.3: independent implementations of both sides.

FreeRADIUS runs in its own network namespace on its loopback; the test's RADIUS socket is made
inside that namespace (tests.support.survive.in_namespace). Each EAP-Request from FreeRADIUS
(in an Access-Challenge) goes to our peer, each EAP-Response back in the next Access-Request. At
Access-Accept the MS-MPPE keys FreeRADIUS derived (RFC 2548; Recv-Key = MSK[0:32], Send-Key =
MSK[32:64]) must equal our MSK: an independent check of RFC 5216 §2.3 and RFC 9190 §2.3, and of
the RFC 9190 §2.5 commitment message, which FreeRADIUS sends with TLS 1.3.
"""

from __future__ import annotations

import io
import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyrad import packet as radius
from pyrad.dictionary import Dictionary

from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.ike.eap import EapOutcome, EapTlsPeer, EapTlsServer, TlsVersion
from tests.support.freeradius_eaptls import DICTIONARY, FREERADIUS, SECRET, FreeRadiusEapTls, mppe_key
from tests.support.netns import Namespace, Topology
from tests.support.pki import make_ca, make_end_entity
from tests.support.radius_eap_shim import FirstByteRandom, RadiusEapShim
from tests.support.survive import in_namespace
from tests.unit.eap._tls_support import GATEWAY, USER, Pki, pki, valid_now

pytestmark = pytest.mark.integration

PORT = 1812
VERSIONS = [("1.2", TlsVersion.TLS1_2), ("1.3", TlsVersion.TLS1_3)]
_EAP_CHUNK = 253


@pytest.fixture
def freeradius_ns(topology: Topology) -> Namespace:
    if shutil.which(FREERADIUS) is None:
        problem = "FreeRADIUS is not installed (bash scripts/install-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return topology.namespace("radius")


def start_freeradius(
    ns: Namespace,
    directory: Path,
    p: Pki,
    tls_max_version: str,
    debug_logs: Callable[[Path], None],
    fragment_size: int = 1024,
) -> subprocess.Popen[bytes]:
    conf = FreeRadiusEapTls.write(
        directory,
        p,
        tls_max_version=tls_max_version,
        client_addr="127.0.0.1",
        listen_addr="127.0.0.1",
        port=PORT,
        fragment_size=fragment_size,
    )
    log = directory / "radiusd.log"
    debug_logs(log)
    proc = ns.popen(conf.argv(), stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if b"Ready to process requests" in log.read_bytes():
            return proc
        if proc.poll() is not None:
            pytest.fail(f"FreeRADIUS exited {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    pytest.fail("FreeRADIUS did not become ready within 15 s")


class RadiusEap:
    """Carries EAP packets to FreeRADIUS in Access-Requests (RFC 3579) over a socket in its namespace."""

    def __init__(self, ns: Namespace, identity: str) -> None:
        self.sock = in_namespace(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.sock.connect(("127.0.0.1", PORT))
        self.dict = Dictionary(io.StringIO(DICTIONARY))
        self.identity = identity
        self.state: bytes | None = None
        self.next_id = 1
        self.accept: radius.Packet | None = None
        self.last_request_authenticator = b""

    def close(self) -> None:
        self.sock.close()

    def exchange(self, eap: bytes) -> bytes | None:
        """One EAP Response in; the EAP packet of FreeRADIUS's reply (Challenge, Accept, Reject)."""
        req = radius.AuthPacket(id=self.next_id, secret=SECRET, dict=self.dict)
        self.next_id = (self.next_id + 1) & 0xFF
        req["User-Name"] = self.identity
        req["NAS-Identifier"] = "pyipsec-test"
        req["EAP-Message"] = [eap[i : i + _EAP_CHUNK] for i in range(0, len(eap), _EAP_CHUNK)]
        if self.state is not None:
            req["State"] = self.state
        req.add_message_authenticator()
        raw = req.RequestPacket()
        self.last_request_authenticator = req.authenticator
        self.sock.send(raw)
        ready, _, _ = select.select([self.sock], [], [], 10)
        assert ready, "no answer from FreeRADIUS within 10 s"
        raw_reply = self.sock.recv(4096)
        reply = radius.Packet(packet=raw_reply, secret=SECRET, dict=self.dict)
        assert req.VerifyReply(reply, raw_reply), "RADIUS reply authenticator does not verify"
        self.state = reply["State"][0] if "State" in reply else None
        if reply.code == radius.AccessAccept:
            self.accept = reply
        if "EAP-Message" not in reply:
            return None
        return b"".join(reply["EAP-Message"])

    def msk(self) -> bytes:
        assert self.accept is not None
        recv = mppe_key(self.accept["MS-MPPE-Recv-Key"][0], SECRET, self.last_request_authenticator)
        send = mppe_key(self.accept["MS-MPPE-Send-Key"][0], SECRET, self.last_request_authenticator)
        return recv + send


def converse(ns: Namespace, peer: EapTlsPeer, identity: str) -> RadiusEap:
    """EAP-Response/Identity first (FreeRADIUS starts there), then whatever FreeRADIUS asks."""
    rad = RadiusEap(ns, identity)
    try:
        identity_response = peer.process(bytes([1, 0, 0, 5, 1]))  # EAP-Request/Identity
        assert identity_response is not None
        answer: bytes | None = identity_response
        for _ in range(100):
            assert answer is not None
            eap = rad.exchange(answer)
            if eap is None:
                break
            answer = peer.process(eap)
            if answer is None:
                break
        return rad
    finally:
        rad.close()


@pytest.mark.parametrize(("max_version", "expected"), VERSIONS)
@pytest.mark.parametrize("key", ["p256", "rsa2048"])
def test_peer_against_freeradius(
    freeradius_ns: Namespace,
    tmp_path: Path,
    debug_logs: Callable[[Path], None],
    max_version: str,
    expected: TlsVersion,
    key: str,
) -> None:
    p = pki(key)  # type: ignore[arg-type]
    start_freeradius(freeradius_ns, tmp_path, p, max_version, debug_logs)
    peer = EapTlsPeer(
        USER,
        cert=p.client.der,
        key=p.client.key,
        chain=(p.intermediate.der,),
        ca_certs=(p.root.der,),
        server_name=GATEWAY,
        rng=OS_RANDOM,
    )
    rad = converse(freeradius_ns, peer, USER)
    assert peer.outcome is EapOutcome.SUCCESS, peer.reason
    assert rad.accept is not None
    assert peer.tls_version is expected
    assert len(peer.msk) == 64 and rad.msk() == peer.msk


def test_freeradius_refuses_a_certificate_from_another_ca(
    freeradius_ns: Namespace, tmp_path: Path, debug_logs: Callable[[Path], None]
) -> None:
    p = pki()
    start_freeradius(freeradius_ns, tmp_path, p, "1.3", debug_logs)
    other = make_ca("another root")
    stranger = make_end_entity(other, "alice", emails=[USER], **valid_now())
    peer = EapTlsPeer(
        USER, cert=stranger.der, key=stranger.key, ca_certs=(p.root.der,), server_name=GATEWAY, rng=OS_RANDOM
    )
    rad = converse(freeradius_ns, peer, USER)
    assert rad.accept is None
    assert peer.outcome is EapOutcome.FAILURE
    # FreeRADIUS answers with EAP-Failure at once; its alert never reaches the peer.
    assert peer.reason == "the gateway sent EAP-Failure"


def test_peer_refuses_freeradius_with_the_wrong_name(
    freeradius_ns: Namespace, tmp_path: Path, debug_logs: Callable[[Path], None]
) -> None:
    p = pki()
    start_freeradius(freeradius_ns, tmp_path, p, "1.2", debug_logs)
    peer = EapTlsPeer(
        USER,
        cert=p.client.der,
        key=p.client.key,
        chain=(p.intermediate.der,),
        ca_certs=(p.root.der,),
        server_name="radius.elsewhere.test",
        rng=OS_RANDOM,
    )
    rad = converse(freeradius_ns, peer, USER)
    assert rad.accept is None
    assert peer.outcome is EapOutcome.FAILURE
    assert "does not name 'radius.elsewhere.test'" in peer.reason


@pytest.mark.parametrize(("max_version", "expected"), VERSIONS)
def test_small_fragments_both_ways(
    freeradius_ns: Namespace,
    tmp_path: Path,
    debug_logs: Callable[[Path], None],
    max_version: str,
    expected: TlsVersion,
) -> None:
    """FreeRADIUS fragments at 300 octets, our peer at 64: many ACKs in both directions."""
    p = pki()
    start_freeradius(freeradius_ns, tmp_path, p, max_version, debug_logs, fragment_size=300)
    peer = EapTlsPeer(
        USER,
        cert=p.client.der,
        key=p.client.key,
        chain=(p.intermediate.der,),
        ca_certs=(p.root.der,),
        server_name=GATEWAY,
        rng=OS_RANDOM,
        fragment_size=64,
    )
    rad = converse(freeradius_ns, peer, USER)
    assert peer.outcome is EapOutcome.SUCCESS, peer.reason
    assert peer.tls_version is expected and rad.msk() == peer.msk


# -- EapTlsServer against wpa_supplicant's eapol_test (an independent EAP-TLS peer) ------------


def run_eapol_test(
    ns: Namespace, directory: Path, p: Pki, *, tls13: bool, server: Callable[[int], EapTlsServer]
) -> tuple[subprocess.CompletedProcess[str], RadiusEapShim]:
    if shutil.which("eapol_test") is None:
        problem = "eapol_test is not installed (bash scripts/install-deps.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    (directory / "ca.pem").write_bytes(p.root.pem)
    (directory / "client.pem").write_bytes(p.client.pem + p.intermediate.pem)
    (directory / "client.key").write_bytes(p.client.key_pem())
    (directory / "eapol.conf").write_text(
        "network={\n"
        "    key_mgmt=WPA-EAP\n"
        "    eap=TLS\n"
        f'    identity="{USER}"\n'
        f'    ca_cert="{directory}/ca.pem"\n'
        f'    client_cert="{directory}/client.pem"\n'
        f'    private_key="{directory}/client.key"\n'
        f'    domain_match="{GATEWAY}"\n'
        f'    phase1="tls_disable_tlsv1_3={0 if tls13 else 1}"\n'
        "    eapol_flags=0\n"
        "}\n"
    )

    def bound() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", PORT))
        return sock

    shim = RadiusEapShim(in_namespace(ns, bound), SECRET, server)
    shim.start()
    try:
        result = ns.run(
            [
                "eapol_test",
                "-c",
                str(directory / "eapol.conf"),
                "-a",
                "127.0.0.1",
                "-p",
                str(PORT),
                "-s",
                SECRET.decode(),
                "-r",
                "0",
                "-t",
                "30",
            ],
            check=False,
            timeout=60,
        )
    finally:
        shim.stop()
    (directory / "eapol_test.log").write_text(result.stdout + result.stderr)
    return result, shim


@pytest.mark.parametrize("tls13", [False, True])
@pytest.mark.parametrize("key", ["p256", "rsa2048"])
def test_server_against_eapol_test(
    freeradius_ns: Namespace, tmp_path: Path, debug_logs: Callable[[Path], None], tls13: bool, key: str
) -> None:
    p = pki(key)  # type: ignore[arg-type]
    debug_logs(tmp_path / "eapol_test.log")

    def server(first: int) -> EapTlsServer:
        return EapTlsServer(
            cert=p.gateway.der,
            key=p.gateway.key,
            chain=(p.intermediate.der,),
            ca_certs=(p.root.der,),
            rng=FirstByteRandom(first),
            fragment_size=300,
        )

    result, shim = run_eapol_test(freeradius_ns, tmp_path, p, tls13=tls13, server=server)
    assert shim.errors == []
    assert len(shim.finished) == 1
    s = shim.finished[0]
    assert s.outcome is EapOutcome.SUCCESS, s.reason
    assert s.tls_version is (TlsVersion.TLS1_3 if tls13 else TlsVersion.TLS1_2)
    assert s.identity == USER and s.peer_certificate == p.client.der
    assert result.returncode == 0, result.stdout[-3000:]
    assert "MPPE keys OK: 1  mismatch: 0" in result.stdout  # eapol_test's MSK = ours
    # wpa_supplicant logs what it derived: the same EMSK and Session-Id (RFC 5216/9190 §2.3).
    assert f"Derived EMSK - hexdump(len=64): {spaced(s.emsk)}" in result.stdout
    assert f"Derived Session-Id - hexdump(len=65): {spaced(s.session_id)}" in result.stdout
    if tls13:
        assert "ACKing Commitment Message" in result.stdout  # RFC 9190 §2.5


def spaced(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def test_server_refusal_reaches_eapol_test(
    freeradius_ns: Namespace, tmp_path: Path, debug_logs: Callable[[Path], None]
) -> None:
    p = pki()
    debug_logs(tmp_path / "eapol_test.log")

    def server(first: int) -> EapTlsServer:
        return EapTlsServer(
            cert=p.gateway.der,
            key=p.gateway.key,
            chain=(p.intermediate.der,),
            ca_certs=(p.root.der,),
            rng=FirstByteRandom(first),
            identity_check=lambda _der, identity: f"{identity} is locked",
        )

    result, shim = run_eapol_test(freeradius_ns, tmp_path, p, tls13=True, server=server)
    assert shim.errors == [] and len(shim.finished) == 1
    s = shim.finished[0]
    assert s.outcome is EapOutcome.FAILURE and s.reason == f"{USER} is locked"
    assert result.returncode != 0
    assert "CTRL-EVENT-EAP-FAILURE" in result.stdout
