"""EapTlsPeer against FreeRADIUS 3.2 and EapTlsServer against wpa_supplicant's eapol_test, over
RADIUS, TLS 1.2 and 1.3: independent implementations of both sides.

FreeRADIUS (tests/support/freeradius.py, EAP-TLS only) runs in its own network namespace on its
loopback; our RADIUS client (pyipsec.radius.RadiusClient) runs on an event loop in a thread that
joined that namespace (tests.support.survive.in_namespace). Each EAP-Request from FreeRADIUS (in
an Access-Challenge) goes to our peer, each EAP-Response back in the next Access-Request. At
Access-Accept the MSK the client read from the MS-MPPE keys FreeRADIUS derived (RFC 2548;
Recv-Key = MSK[0:32], Send-Key = MSK[32:64]) must equal our peer's MSK: an independent check of
RFC 5216 §2.3 and RFC 9190 §2.3, and of the RFC 9190 §2.5 commitment message, which FreeRADIUS
sends with TLS 1.3.

eapol_test speaks RADIUS to tests/support/radius_eap_shim.py, which wraps our EapTlsServer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyipsec.ike.eap import EapOutcome, EapTlsPeer, EapTlsServer, TlsVersion
from pyipsec.radius import EapRelayAnswer, RadiusAnswerKind, RadiusClient, RadiusServer, RadiusSettings
from tests.support.freeradius import FreeRadius, TlsFiles, freeradius_available, relay_eap
from tests.support.netns import Namespace, Topology
from tests.support.pki import make_ca, make_end_entity
from tests.support.radius_eap_shim import FirstByteRandom, RadiusEapShim
from tests.support.survive import in_namespace
from tests.unit.eap._tls_support import GATEWAY, USER, Pki, pki, valid_now
from tests.unit.eap._tls_support import peer as tls_peer
from tests.unit.eap._tls_support import server as tls_server

pytestmark = pytest.mark.integration

SECRET = b"eap-tls-test-secret"
LOOPBACK = "127.0.0.1"
PORT = 1812
VERSIONS = [("1.2", TlsVersion.TLS1_2), ("1.3", TlsVersion.TLS1_3)]

StartFreeRadius = Callable[..., FreeRadius]


def require(problem: str | None) -> None:
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


@pytest.fixture
def freeradius_ns(topology: Topology) -> Namespace:
    return topology.namespace("radius")


@pytest.fixture
def start_freeradius(
    freeradius_ns: Namespace, tmp_path: Path, debug_logs: Callable[[Path], None]
) -> Iterator[StartFreeRadius]:
    """``start_freeradius(pki, tls_max_version, tls_fragment_size=1024)``: an EAP-TLS-only
    FreeRADIUS on the namespace's loopback, stopped after the test; its debug log is shown if the
    test fails."""
    require(freeradius_available())
    started: list[FreeRadius] = []

    def start(p: Pki, tls_max_version: str, tls_fragment_size: int = 1024) -> FreeRadius:
        log = tmp_path / "radiusd.log"
        debug_logs(log)
        server = FreeRadius(
            freeradius_ns,
            listen=LOOPBACK,
            client=LOOPBACK,
            secret=SECRET,
            auth_port=PORT,
            default_eap_type="tls",
            mschapv2=False,
            tls=TlsFiles(
                cert_pem=p.gateway.pem + p.intermediate.pem, key_pem=p.gateway.key_pem(), ca_pem=p.root.pem
            ),
            tls_max_version=tls_max_version,
            tls_fragment_size=tls_fragment_size,
            debug=True,
            log_path=log,
        )
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


def converse(ns: Namespace, peer: EapTlsPeer, identity: str) -> EapRelayAnswer:
    """The whole conversation through a RadiusClient on the loopback of ``ns``."""
    settings = RadiusSettings(
        servers=(RadiusServer("freeradius", LOOPBACK, auth_port=PORT, secret=SECRET),),
        timeout=5.0,
        tries=2,
        nas_identifier="pyipsec-test",
    )

    async def main() -> EapRelayAnswer:
        client = RadiusClient(settings)
        try:
            return await relay_eap(client, peer, identity)
        finally:
            client.close()

    return in_namespace(ns, lambda: asyncio.run(main()))


@pytest.mark.parametrize(("max_version", "expected"), VERSIONS)
@pytest.mark.parametrize("key", ["p256", "rsa2048"])
def test_peer_against_freeradius(
    freeradius_ns: Namespace,
    start_freeradius: StartFreeRadius,
    max_version: str,
    expected: TlsVersion,
    key: str,
) -> None:
    p = pki(key)  # type: ignore[arg-type]
    start_freeradius(p, max_version)
    peer = tls_peer(p)
    answer = converse(freeradius_ns, peer, USER)
    assert peer.outcome is EapOutcome.SUCCESS, peer.reason
    assert answer.kind is RadiusAnswerKind.ACCEPT, answer.reason
    assert peer.tls_version is expected
    assert len(peer.msk) == 64 and answer.msk == peer.msk


def test_freeradius_refuses_a_certificate_from_another_ca(
    freeradius_ns: Namespace, start_freeradius: StartFreeRadius
) -> None:
    p = pki()
    start_freeradius(p, "1.3")
    other = make_ca("another root")
    stranger = make_end_entity(other, "alice", emails=[USER], **valid_now())
    peer = tls_peer(p, cert=stranger.der, key=stranger.key, chain=())
    answer = converse(freeradius_ns, peer, USER)
    assert answer.kind is RadiusAnswerKind.REJECT, answer.reason
    assert answer.msk == b""
    assert peer.outcome is EapOutcome.FAILURE
    # FreeRADIUS answers with EAP-Failure at once; its alert never reaches the peer.
    assert peer.reason == "the gateway sent EAP-Failure"


def test_peer_refuses_freeradius_with_the_wrong_name(
    freeradius_ns: Namespace, start_freeradius: StartFreeRadius
) -> None:
    p = pki()
    start_freeradius(p, "1.2")
    peer = tls_peer(p, server_name="radius.elsewhere.test")
    answer = converse(freeradius_ns, peer, USER)
    assert answer.kind is RadiusAnswerKind.REJECT, answer.reason
    assert answer.msk == b""
    assert peer.outcome is EapOutcome.FAILURE
    assert "does not name 'radius.elsewhere.test'" in peer.reason


@pytest.mark.parametrize(("max_version", "expected"), VERSIONS)
def test_small_fragments_both_ways(
    freeradius_ns: Namespace, start_freeradius: StartFreeRadius, max_version: str, expected: TlsVersion
) -> None:
    """FreeRADIUS fragments at 300 octets, our peer at 64: many ACKs in both directions."""
    p = pki()
    start_freeradius(p, max_version, tls_fragment_size=300)
    peer = tls_peer(p, fragment_size=64)
    answer = converse(freeradius_ns, peer, USER)
    assert peer.outcome is EapOutcome.SUCCESS, peer.reason
    assert answer.kind is RadiusAnswerKind.ACCEPT, answer.reason
    assert peer.tls_version is expected and answer.msk == peer.msk


# -- EapTlsServer against wpa_supplicant's eapol_test (an independent EAP-TLS peer) ------------


def run_eapol_test(
    ns: Namespace, directory: Path, p: Pki, *, tls13: bool, server: Callable[[int], EapTlsServer]
) -> tuple[subprocess.CompletedProcess[str], RadiusEapShim]:
    require(
        None if shutil.which("eapol_test") else "eapol_test is not installed (bash scripts/install-deps.sh)"
    )
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
        sock.bind((LOOPBACK, PORT))
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
                LOOPBACK,
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
        return tls_server(p, rng=FirstByteRandom(first), fragment_size=300)

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
        return tls_server(
            p, rng=FirstByteRandom(first), identity_check=lambda _der, identity: f"{identity} is locked"
        )

    result, shim = run_eapol_test(freeradius_ns, tmp_path, p, tls13=True, server=server)
    assert shim.errors == [] and len(shim.finished) == 1
    s = shim.finished[0]
    assert s.outcome is EapOutcome.FAILURE and s.reason == f"{USER} is locked"
    assert result.returncode != 0
    assert "CTRL-EVENT-EAP-FAILURE" in result.stdout
