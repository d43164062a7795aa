"""Authentication for an organisation between two engines: several rounds (RFC 4739), EAP-TLS,
EAP-only (RFC 5998), EAP passed through to a RADIUS server, revocation checks — the last two
through the engine's lookups, answered here by the test as the daemon would.

``moon.test`` (the client, initiator) and ``gw.test`` (the gateway). Certificates are valid
around the real time: EAP-TLS has OpenSSL check them against the system clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.iana.ikev2 import ExchangeType, IdType
from pyipsec.ike.config import AuthClass, AuthConfig, Identity, PoolConfig
from pyipsec.ike.credentials import MemoryCredentials
from pyipsec.ike.eap.base import EapOutcome
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.events import (
    CloseCause,
    IkeSaClosed,
    IkeSaEstablished,
    SaProgress,
    VirtualIpAssigned,
)
from pyipsec.ike.lookups import (
    Answer,
    EapRelay,
    EapRelayAnswer,
    Lookup,
    RelayResult,
    RevocationAnswer,
    RevocationQuery,
)
from pyipsec.ike.state import IkeSaState
from pyipsec.wire.message import decode_message
from tests.support import pki
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, psk_connection
from tests.unit.eap._support import DictUsers

NOW = datetime.now(UTC)
WALL = NOW.timestamp()
PASSWORD = "alice-secret-1"


@dataclass
class Pki:
    ca: pki.Issued
    gw: pki.Issued
    client: pki.Issued  # moon.test, also alice@moon.test (for EAP-TLS)


def make_pki(ca: pki.Issued | None = None) -> Pki:
    window = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=30)}
    ca = ca or pki.make_ca("org CA", not_before=NOW - timedelta(days=2), not_after=NOW + timedelta(days=60))
    gw = pki.make_end_entity(ca, "gw.test", dns=["gw.test"], **window)  # type: ignore[arg-type]
    client = pki.make_end_entity(
        ca,
        "moon.test",
        dns=["moon.test"],
        emails=["alice@moon.test"],
        **window,  # type: ignore[arg-type]
    )
    return Pki(ca, gw, client)


def pair(
    client_rounds: list[AuthConfig],
    gw_remote: list[AuthConfig],
    *,
    gw_local: AuthConfig | None = None,
    client_remote: AuthConfig | None = None,
    keys: Pki,
    client_key: pki.Issued | None = None,
    **gw: object,
) -> EnginePair:
    i = psk_connection(
        "office", local_id="moon.test", remote_id="gw.test", local_addr=I_ADDR, remote_addr=R_ADDR
    )
    i = replace(
        i,
        local=client_rounds[0],
        local_more=tuple(client_rounds[1:]),
        remote=client_remote
        or AuthConfig(AuthClass.PUBKEY, Identity.fqdn("gw.test"), cacerts=(keys.ca.der,)),
    )
    r = psk_connection(
        "gw",
        local_id="gw.test",
        remote_id="moon.test",
        local_addr=R_ADDR,
        remote_addr=I_ADDR,
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
    )
    r = replace(
        r,
        local=gw_local or AuthConfig(AuthClass.PUBKEY, Identity.fqdn("gw.test"), certs=(keys.gw.der,)),
        remote=gw_remote[0],
        remote_more=tuple(gw_remote[1:]),
        **gw,  # type: ignore[arg-type]
    )
    p = EnginePair(
        i,
        [r],
        i_creds=MemoryCredentials(
            private_keys=[(client_key or keys.client).key],  # type: ignore[list-item]
            eap_passwords={"alice": PASSWORD},
        ),
        r_creds=MemoryCredentials(private_keys=[keys.gw.key]),  # type: ignore[list-item]
        wall=WALL,
    )
    p.r.engine.ctx.eap_server = lambda: MsChapV2Server(DictUsers(alice=PASSWORD), rng=SeededRandom(7))
    return p


def cert_round(keys: Pki) -> AuthConfig:
    return AuthConfig(AuthClass.PUBKEY, Identity.fqdn("moon.test"), certs=(keys.client.der,))


def trust(keys: Pki, **kw: object) -> AuthConfig:
    return AuthConfig(AuthClass.PUBKEY, Identity.any(), cacerts=(keys.ca.der,), **kw)  # type: ignore[arg-type]


MSCHAP = AuthConfig(AuthClass.EAP_MSCHAPV2, Identity.fqdn("alice.moon.test"), eap_identity="alice")
GW_MSCHAP = AuthConfig(AuthClass.EAP_MSCHAPV2, Identity.any())


def established(p: EnginePair) -> tuple[IkeSaEstablished, IkeSaEstablished]:
    (ei,) = p.i.of(IkeSaEstablished)
    (er,) = p.r.of(IkeSaEstablished)
    return ei, er


def closed_reason(side: object) -> str:
    events = [e for e in side.events if isinstance(e, IkeSaClosed)]  # type: ignore[attr-defined]
    assert events, "no IKE SA closed"
    return events[-1].reason


def auth_requests(p: EnginePair) -> list[bytes]:
    return [
        d.payload
        for d in p.sent
        if str(d.remote.ip) == R_ADDR and decode_message(d.payload).exchange_type is ExchangeType.IKE_AUTH
    ]


# -- several authentication rounds (RFC 4739) ---------------------------------------------------


def test_certificate_then_eap_mschapv2_in_two_rounds() -> None:
    keys = make_pki()
    p = pair([cert_round(keys), MSCHAP], [trust(keys), GW_MSCHAP], keys=keys)
    p.initiate()
    p.run()
    ei, er = established(p)
    assert er.remote_id == "moon.test" and ei.remote_id == "gw.test"
    (sa,) = p.r.engine.sas()
    assert sa.peer_rounds_done == 2 and sa.eap_identity == "alice"
    progress = [e.detail for e in p.i.of(SaProgress)]
    assert "EAP-MSCHAPv2 as alice: accepted" in progress
    # round 1 (IDi, CERT, AUTH + ANOTHER_AUTH_FOLLOWS), round 2's IDi, then the EAP messages
    assert len(auth_requests(p)) >= 4


def test_a_gateway_that_wants_two_rounds_refuses_one() -> None:
    keys = make_pki()
    p = pair([cert_round(keys)], [trust(keys), GW_MSCHAP], keys=keys)
    p.initiate()
    p.run()
    assert not p.r.of(IkeSaEstablished) and not p.i.of(IkeSaEstablished)
    assert "2 authentication rounds are configured, but the peer completed 1" in closed_reason(p.r)
    assert "AUTHENTICATION_FAILED" in closed_reason(p.i)


def test_a_client_with_two_rounds_and_a_gateway_with_one() -> None:
    keys = make_pki()
    p = pair([cert_round(keys), MSCHAP], [trust(keys)], keys=keys)
    p.initiate()
    p.run()
    assert not p.r.of(IkeSaEstablished)
    assert "announced another authentication round, but 1 is configured" in closed_reason(p.r)


def test_a_wrong_password_in_the_second_round_fails_both_sides() -> None:
    keys = make_pki()
    p = pair([cert_round(keys), MSCHAP], [trust(keys), GW_MSCHAP], keys=keys)
    p.r.engine.ctx.eap_server = lambda: MsChapV2Server(DictUsers(alice="other"), rng=SeededRandom(7))
    p.initiate()
    p.run()
    assert not p.i.of(IkeSaEstablished) and not p.r.of(IkeSaEstablished)
    assert "EAP authentication" in closed_reason(p.r) and "failed" in closed_reason(p.r)


# -- EAP-TLS and EAP-only -------------------------------------------------------------------------


def eap_tls_client(keys: Pki) -> AuthConfig:
    return AuthConfig(
        AuthClass.EAP_TLS,
        Identity(IdType.ID_RFC822_ADDR, b"alice@moon.test"),
        certs=(keys.client.der,),
        eap_identity="alice@moon.test",
    )


def test_eap_tls_client_and_gateway() -> None:
    keys = make_pki()
    gw_tls = AuthConfig(AuthClass.EAP_TLS, Identity.any(), cacerts=(keys.ca.der,))
    p = pair([eap_tls_client(keys)], [gw_tls], keys=keys)
    p.initiate()
    p.run()
    _, er = established(p)
    assert er.remote_id == "alice@moon.test"
    (sa,) = p.r.engine.sas()
    assert sa.eap_identity == "alice@moon.test"
    assert "EAP-TLS as alice@moon.test: accepted" in [e.detail for e in p.i.of(SaProgress)]
    assert not sa.eap_only


def test_eap_tls_refuses_a_client_certificate_of_another_ca() -> None:
    keys, other = make_pki(), make_pki()
    gw_tls = AuthConfig(AuthClass.EAP_TLS, Identity.any(), cacerts=(keys.ca.der,))
    client = replace(eap_tls_client(other), certs=(other.client.der,))
    p = pair([client], [gw_tls], keys=keys, client_key=other.client)
    p.initiate()
    p.run()
    assert not p.r.of(IkeSaEstablished) and not p.i.of(IkeSaEstablished)
    assert "EAP authentication of alice@moon.test failed" in closed_reason(p.r)


def test_eap_only_authentication_with_eap_tls() -> None:
    keys = make_pki()
    gw_tls = AuthConfig(AuthClass.EAP_TLS, Identity.any(), cacerts=(keys.ca.der,))
    gw_local = AuthConfig(AuthClass.EAP_TLS, Identity.fqdn("gw.test"), certs=(keys.gw.der,))
    client_remote = AuthConfig(AuthClass.EAP_TLS, Identity.fqdn("gw.test"), cacerts=(keys.ca.der,))
    p = pair([eap_tls_client(keys)], [gw_tls], gw_local=gw_local, client_remote=client_remote, keys=keys)
    p.initiate()
    p.run()
    ei, _ = established(p)
    (sa,) = p.r.engine.sas()
    assert sa.eap_only and ei.remote_id == "gw.test"
    assert "gw.test authenticated by EAP-TLS" in [e.detail for e in p.i.of(SaProgress)]


def test_eap_only_gateway_refuses_a_client_that_does_not_offer_it() -> None:
    keys = make_pki()
    gw_tls = AuthConfig(AuthClass.EAP_TLS, Identity.any(), cacerts=(keys.ca.der,))
    gw_local = AuthConfig(AuthClass.EAP_TLS, Identity.fqdn("gw.test"), certs=(keys.gw.der,))
    p = pair([eap_tls_client(keys)], [gw_tls], gw_local=gw_local, keys=keys)  # client wants a gateway AUTH
    p.initiate()
    p.run()
    assert not p.i.of(IkeSaEstablished)
    assert "does not support EAP-only authentication" in closed_reason(p.r)


# -- EAP through a RADIUS server (lookups) --------------------------------------------------------


class FakeAaa:
    """The AAA server's decisions, as FreeRADIUS would make them, from our own MS-CHAPv2 server."""

    def __init__(self, password: str = PASSWORD, **accept: object) -> None:
        self.server = MsChapV2Server(DictUsers(alice=password), rng=SeededRandom(9))
        self.identity_request = self.server.start()
        self.accept = accept
        self.asked: list[EapRelay] = []

    def __call__(self, lookup: Lookup) -> Answer:
        assert isinstance(lookup, EapRelay)
        self.asked.append(lookup)
        eap = lookup.eap
        if len(self.asked) == 1:  # the peer answered the gateway's own Identity request
            eap = eap[:1] + self.identity_request[1:2] + eap[2:]
        reply = self.server.process(eap)
        if self.server.outcome is EapOutcome.SUCCESS:
            return EapRelayAnswer(RelayResult.ACCEPT, reply, msk=self.server.msk, server="aaa", **self.accept)  # type: ignore[arg-type]
        if self.server.outcome is EapOutcome.FAILURE:
            return EapRelayAnswer(RelayResult.REJECT, reply, server="aaa", reason="Access-Reject from aaa")
        return EapRelayAnswer(RelayResult.CHALLENGE, reply, state=b"st%d" % len(self.asked), server="aaa")


RADIUS = AuthConfig(AuthClass.EAP_RADIUS, Identity.any())


def test_eap_through_radius_with_a_framed_ip() -> None:
    keys = make_pki()
    p = pair([MSCHAP], [RADIUS], keys=keys, vips=())
    client = p.i.engine.config.connections["office"]
    p.i.engine.reconfigure(
        replace(p.i.engine.config, connections={"office": replace(client, vips=("0.0.0.0",))})
    )
    gw = p.r.engine.config.connections["gw"]
    p.r.engine.reconfigure(
        replace(
            p.r.engine.config,
            connections={"gw": replace(gw, pools=("rw",))},
            pools={"rw": PoolConfig("rw", ip_address("10.3.0.1"), ip_address("10.3.0.10"))},
        )
    )
    aaa = FakeAaa(framed_ipv4=ip_address("10.3.7.7"))
    p.r.answer = aaa
    p.initiate()
    p.run()
    established(p)
    (vip,) = p.i.of(VirtualIpAssigned)
    assert vip.addresses == (ip_address("10.3.7.7"),)
    assert aaa.asked[0].user == "alice"
    assert aaa.asked[0].state is None and aaa.asked[1].state == b"st1"  # State goes back
    assert len({a.session for a in aaa.asked}) == 1 and aaa.asked[0].nas_port == 1


def test_a_radius_reject_fails_the_sa() -> None:
    keys = make_pki()
    p = pair([MSCHAP], [RADIUS], keys=keys)
    p.r.answer = FakeAaa(password="not-hers")
    p.initiate()
    p.run()
    assert not p.i.of(IkeSaEstablished) and not p.r.of(IkeSaEstablished)
    assert "Access-Reject from aaa" in closed_reason(p.r)


def test_no_radius_server_answers() -> None:
    keys = make_pki()
    p = pair([MSCHAP], [RADIUS], keys=keys)
    p.r.answer = lambda lookup: EapRelayAnswer(RelayResult.TIMEOUT, reason="no RADIUS server answered (a, b)")
    p.initiate()
    p.run()
    assert not p.r.of(IkeSaEstablished)
    assert "no RADIUS server answered (a, b)" in closed_reason(p.r)
    assert not p.r.engine.sas() and not p.i.engine.sas()


def test_a_waiting_exchange_drops_retransmissions_and_resumes() -> None:
    keys = make_pki()
    p = pair([MSCHAP], [RADIUS], keys=keys)
    aaa = FakeAaa()
    p.initiate()
    p.run(until=12.0)  # the client retransmits its EAP response while the gateway waits
    (first,) = p.r.pending
    (sa,) = p.r.engine.sas()
    assert sa.state is IkeSaState.CONNECTING
    p.r.answer = aaa
    p.r.pending.clear()
    p.r.reply(first, aaa(first.lookup))
    p.run()
    established(p)
    # one lookup per EAP message, none for the retransmissions
    assert len(aaa.asked) == len({bytes(a.eap) for a in aaa.asked})


def test_an_answer_for_a_closed_sa_is_ignored() -> None:
    keys = make_pki()
    p = pair([MSCHAP], [RADIUS], keys=keys)
    p.initiate()
    p.run(until=1.0)
    (needed,) = p.r.pending
    p.run()  # nobody answers: the half-open SA times out on both sides
    assert not p.r.engine.sas()
    out = p.r.engine.answer(needed.ticket, EapRelayAnswer(RelayResult.REJECT), p.now)
    assert out.datagrams == () and out.events == ()


# -- revocation (lookups) -------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["strict", "ifuri"])
def test_a_revoked_client_certificate_fails_ike_auth(policy: str) -> None:
    keys = make_pki()
    p = pair([cert_round(keys)], [trust(keys, revocation=policy)], keys=keys)
    asked: list[RevocationQuery] = []

    def checker(lookup: Lookup) -> Answer:
        assert isinstance(lookup, RevocationQuery)
        asked.append(lookup)
        return RevocationAnswer(
            False, f"certificate serial {keys.client.cert.serial_number:#x} revoked per CRL x"
        )

    p.r.answer = checker
    p.initiate()
    p.run()
    assert not p.r.of(IkeSaEstablished)
    (query,) = asked
    assert query.chain == (keys.client.der,) and query.anchor == keys.ca.der and query.policy == policy
    assert f"serial {keys.client.cert.serial_number:#x} revoked" in closed_reason(p.r)
    assert "AUTHENTICATION_FAILED" in closed_reason(p.i)
    assert [e.cause for e in p.r.of(IkeSaClosed)] == [CloseCause.FAILED]


def test_a_good_certificate_passes_the_check_and_relaxed_without_sources_asks_nothing() -> None:
    keys = make_pki()
    p = pair([cert_round(keys)], [trust(keys, revocation="strict")], keys=keys)
    p.r.answer = lambda lookup: RevocationAnswer(True, "good per OCSP http://ocsp")
    p.initiate()
    p.run()
    established(p)
    relaxed = pair([cert_round(keys)], [trust(keys)], keys=keys)
    relaxed.initiate()
    relaxed.run()
    established(relaxed)
    assert relaxed.r.pending == [] and relaxed.i.pending == []


def test_the_client_checks_the_gateway_certificate_too() -> None:
    keys = make_pki()
    strict = AuthConfig(
        AuthClass.PUBKEY, Identity.fqdn("gw.test"), cacerts=(keys.ca.der,), revocation="strict"
    )
    p = pair([cert_round(keys)], [trust(keys)], client_remote=strict, keys=keys)
    p.i.answer = lambda lookup: RevocationAnswer(False, "gateway certificate revoked per OCSP http://ocsp")
    p.initiate()
    p.run()
    assert not p.i.of(IkeSaEstablished)
    assert "gateway certificate revoked" in closed_reason(p.i)
