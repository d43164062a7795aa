"""The RADIUS client against a real FreeRADIUS 3.2 in a network namespace.

Two namespaces on one link: ``left`` is the gateway (our client runs in a thread that joined it),
``right`` runs FreeRADIUS (tests/support/freeradius.py) on its link address. EAP-MSCHAPv2 is
driven by our own peer (``MsChapV2Peer``) through the client, so an ACCEPT whose MSK equals the
peer's proves the MS-MPPE key decryption and the Recv-Key | Send-Key order (RFC 2548, RFC 3079).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Network
from typing import TypeVar

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.ike.eap.base import EapOutcome
from pyipsec.ike.eap.mschapv2 import MsChapV2Peer
from pyipsec.radius import (
    AccountingRecord,
    AcctStatus,
    EapRelayAnswer,
    RadiusAnswerKind,
    RadiusClient,
    RadiusServer,
    RadiusSettings,
    TerminateCause,
)
from tests.support.freeradius import (
    IDENTITY_REQUEST,
    FreeRadius,
    RadiusUser,
    TlsFiles,
    freeradius_available,
    relay_eap,
)
from tests.support.netns import Namespace, Topology, two_hosts
from tests.support.pki import make_ca, make_end_entity
from tests.support.survive import in_namespace

pytestmark = pytest.mark.integration

T = TypeVar("T")
SECRET = b"radius-test-secret-0123"
PASSWORD = "alice-Passw0rd"


@dataclass
class Lab:
    gateway: Namespace
    radius: FreeRadius
    server_addr: str
    dead_addr: str


def require_freeradius() -> None:
    problem = freeradius_available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="module")
def lab(stale_netns_cleanup: None) -> Iterator[Lab]:
    require_freeradius()
    with Topology() as topo:
        hosts = two_hosts(topo)
        # A second address on the server's side where nothing listens: the "dead" server.
        hosts.right.add_address(hosts.link.b_if, "10.231.1.99/24")
        users = [
            RadiusUser("alice", PASSWORD),
            RadiusUser(
                "bob",
                "bob-secret",
                reply=(
                    ("Framed-IP-Address", "10.77.0.9"),
                    ("Framed-IPv6-Prefix", "fd00:77::/64"),
                    ("Class", "0x636c6173732d6f6e65"),
                    ("Class", "0x74776f"),
                    ("Session-Timeout", "3600"),
                ),
            ),
        ]
        server = FreeRadius(
            hosts.right, listen=hosts.link.b_addr, client=hosts.link.a_addr, secret=SECRET, users=users
        )
        with server:
            yield Lab(hosts.left, server, hosts.link.b_addr, "10.231.1.99")


def settings(*servers: RadiusServer, timeout: float = 1.0, tries: int = 3) -> RadiusSettings:
    return RadiusSettings(servers=servers, timeout=timeout, tries=tries, nas_identifier="pyipsec-test")


def run(lab: Lab, cfg: RadiusSettings, body: Callable[[RadiusClient], Awaitable[T]]) -> T:
    """Run ``body(client)`` on an event loop in a thread inside the gateway's namespace."""

    async def main() -> T:
        client = RadiusClient(cfg)
        try:
            return await body(client)
        finally:
            client.close()

    return in_namespace(lab.gateway, lambda: asyncio.run(main()))


async def converse(client: RadiusClient, peer: MsChapV2Peer, user: str) -> EapRelayAnswer:
    """Relay the whole conversation between ``peer`` and the RADIUS server."""
    return await relay_eap(
        client,
        peer,
        user,
        calling_station="10.231.1.200[4500]",
        called_station="10.231.1.1[4500]",
        rounds=8,
    )


def test_mschapv2_accept_msk_equals_peer_msk(lab: Lab) -> None:
    server = RadiusServer("fr", lab.server_addr, secret=SECRET)
    peer = MsChapV2Peer("alice", PASSWORD, rng=OS_RANDOM)
    answer = run(lab, settings(server), lambda c: converse(c, peer, "alice"))
    assert answer.kind is RadiusAnswerKind.ACCEPT, answer.reason
    assert peer.outcome is EapOutcome.SUCCESS
    assert len(answer.msk) == 64
    assert answer.msk == peer.msk
    assert answer.server == "fr"
    assert "msk" not in repr(answer) and answer.msk.hex() not in repr(answer)


def test_wrong_password_rejected(lab: Lab) -> None:
    server = RadiusServer("fr", lab.server_addr, secret=SECRET)
    peer = MsChapV2Peer("alice", "not-the-password", rng=OS_RANDOM)
    answer = run(lab, settings(server), lambda c: converse(c, peer, "alice"))
    assert answer.kind is RadiusAnswerKind.REJECT
    assert answer.msk == b""
    assert peer.outcome is EapOutcome.FAILURE


def test_wrong_secret_dropped_logged_once_then_timeout(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    server = RadiusServer("fr", lab.server_addr, secret=b"not-the-secret")
    peer = MsChapV2Peer("alice", PASSWORD, rng=OS_RANDOM)

    async def body(client: RadiusClient) -> tuple[EapRelayAnswer, EapRelayAnswer, int]:
        message = peer.process(IDENTITY_REQUEST)
        assert message is not None
        args = dict(session="s", calling_station="c", called_station="d", nas_port=1)
        first = await client.eap(user="alice", eap=message, state=None, **args)  # type: ignore[arg-type]
        second = await client.eap(user="alice", eap=message, state=None, **args)  # type: ignore[arg-type]
        return first, second, client.stats.server("fr").bad_authenticator

    with caplog.at_level(logging.WARNING, logger="pyipsec.radius"):
        first, second, bad = run(lab, settings(server, timeout=0.3, tries=2), body)
    assert first.kind is RadiusAnswerKind.TIMEOUT and second.kind is RadiusAnswerKind.TIMEOUT
    assert "fr" in first.reason and lab.server_addr in first.reason
    # FreeRADIUS checks our Message-Authenticator first and discards the requests silently, so
    # nothing comes back; a server that does answer with another secret is covered by the unit
    # tests (replies dropped, counted, the hint logged once per server).
    assert "invalid Message-Authenticator" in lab.radius.log
    assert bad == 0
    assert not [r for r in caplog.records if "wrong shared secret?" in r.getMessage()]
    assert "not-the-secret" not in caplog.text


def test_failover_from_dead_server(lab: Lab) -> None:
    dead = RadiusServer("dead", lab.dead_addr, secret=SECRET)
    live = RadiusServer("live", lab.server_addr, secret=SECRET)
    peer = MsChapV2Peer("alice", PASSWORD, rng=OS_RANDOM)

    async def body(client: RadiusClient) -> tuple[EapRelayAnswer, int, int]:
        answer = await converse(client, peer, "alice")
        stats = client.stats
        return answer, stats.server("dead").timeouts, stats.server("dead").requests

    answer, dead_timeouts, dead_requests = run(lab, settings(dead, live, timeout=0.3, tries=3), body)
    assert answer.kind is RadiusAnswerKind.ACCEPT
    assert answer.server == "live"
    assert answer.msk == peer.msk
    # Tried once, then remembered as dead: the rest of the conversation went to "live" only.
    assert dead_timeouts == 1 and dead_requests == 1


def test_reply_attributes(lab: Lab) -> None:
    server = RadiusServer("fr", lab.server_addr, secret=SECRET)
    peer = MsChapV2Peer("bob", "bob-secret", rng=OS_RANDOM)
    answer = run(lab, settings(server), lambda c: converse(c, peer, "bob"))
    assert answer.kind is RadiusAnswerKind.ACCEPT
    assert answer.framed_ipv4 == IPv4Address("10.77.0.9")
    assert answer.framed_ipv6_prefix == IPv6Network("fd00:77::/64")
    assert answer.classes == (b"class-one", b"two")
    assert answer.session_timeout == 3600


def test_accounting_start_interim_stop(lab: Lab) -> None:
    server = RadiusServer("fr", lab.server_addr, secret=SECRET)
    big = 5 * 2**32 + 1234
    base = dict(
        session="acct-7",
        user="bob",
        classes=(b"class-one",),
        framed_ipv4=IPv4Address("10.77.0.9"),
        framed_ipv6_prefix=IPv6Network("fd00:77::/64"),
        calling_station="198.51.100.7[4500]",
        called_station="10.231.1.1[4500]",
        nas_port=7,
    )
    records = [
        AccountingRecord(status=AcctStatus.START, **base),  # type: ignore[arg-type]
        AccountingRecord(
            status=AcctStatus.INTERIM,
            in_octets=1000,
            out_octets=2000,
            in_packets=10,
            out_packets=20,
            session_time=30,
            **base,  # type: ignore[arg-type]
        ),
        AccountingRecord(
            status=AcctStatus.STOP,
            in_octets=big,
            out_octets=7,
            in_packets=4000000,
            out_packets=3,
            session_time=60,
            terminate_cause=TerminateCause.USER_REQUEST,
            **base,  # type: ignore[arg-type]
        ),
    ]

    async def body(client: RadiusClient) -> list[bool]:
        return [await client.account(r) for r in records]

    assert run(lab, settings(server), body) == [True, True, True]
    details = [r for r in lab.radius.detail_records() if r.get("Acct-Session-Id") == "acct-7"]
    assert [r["Acct-Status-Type"] for r in details] == ["Start", "Interim-Update", "Stop"]
    start, interim, stop = details
    assert start["User-Name"] == "bob" and start["Framed-IP-Address"] == "10.77.0.9"
    assert start["Class"] == "0x636c6173732d6f6e65"
    assert "Acct-Input-Octets" not in start
    assert interim["Acct-Input-Octets"] == "1000" and interim["Acct-Output-Octets"] == "2000"
    assert interim["Acct-Input-Packets"] == "10" and interim["Acct-Output-Packets"] == "20"
    assert interim["Acct-Session-Time"] == "30"
    assert stop["Acct-Input-Gigawords"] == "5" and stop["Acct-Input-Octets"] == "1234"
    assert "Acct-Output-Gigawords" not in stop and stop["Acct-Output-Octets"] == "7"
    assert stop["Acct-Terminate-Cause"] == "User-Request"
    assert stop["NAS-Identifier"] == "pyipsec-test"
    assert stop["Calling-Station-Id"] == "198.51.100.7[4500]"


def test_accounting_to_dead_server_fails_over(lab: Lab) -> None:
    dead = RadiusServer("dead", lab.dead_addr, secret=SECRET)
    live = RadiusServer("live", lab.server_addr, secret=SECRET)
    record = AccountingRecord(status=AcctStatus.START, session="acct-failover", user="alice")
    ok = run(lab, settings(dead, live, timeout=0.3, tries=3), lambda c: c.account(record))
    assert ok
    records = [r for r in lab.radius.detail_records() if r.get("Acct-Session-Id") == "acct-failover"]
    assert [r["Acct-Status-Type"] for r in records] == ["Start"]


def test_eap_tls_server_starts_the_tls_method(stale_netns_cleanup: None) -> None:
    """The harness's EAP-TLS setup: FreeRADIUS loads the test's certificates and, asked with
    EAP-Identity, answers EAP-Request/TLS with the Start bit (RFC 5216 §2.1.1)."""
    now = datetime.now(UTC)
    ca = make_ca("radius test CA", not_before=now - timedelta(days=1), not_after=now + timedelta(days=30))
    cert = make_end_entity(
        ca,
        "radius.pyipsec.test",
        dns=("radius.pyipsec.test",),
        eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=30),
    )
    tls = TlsFiles(cert_pem=cert.pem, key_pem=cert.key_pem(), ca_pem=ca.pem)
    with Topology() as topo:
        hosts = two_hosts(topo)
        radius = FreeRadius(
            hosts.right,
            listen=hosts.link.b_addr,
            client=hosts.link.a_addr,
            secret=SECRET,
            users=[RadiusUser("carol", "unused")],
            default_eap_type="tls",
            tls=tls,
        )
        with radius:
            lab = Lab(hosts.left, radius, hosts.link.b_addr, "")
            identity = b"\x02\x2a\x00\x0a\x01carol"

            async def body(client: RadiusClient) -> EapRelayAnswer:
                return await client.eap(
                    user="carol",
                    eap=identity,
                    state=None,
                    session="t",
                    calling_station="c",
                    called_station="d",
                    nas_port=1,
                )

            answer = run(lab, settings(RadiusServer("fr", hosts.link.b_addr, secret=SECRET)), body)
    assert answer.kind is RadiusAnswerKind.CHALLENGE, answer.reason
    assert answer.eap[0] == 1 and answer.eap[4] == 13  # EAP-Request, type EAP-TLS
    assert answer.eap[5] & 0x20  # Start
    assert answer.state
