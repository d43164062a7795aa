"""Road warriors: EAP-MSCHAPv2 clients, a certificate gateway, virtual IPs and DNS from a pool."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.ike.config import AuthClass, AuthConfig, ChildConfig, Identity, PoolConfig
from pyipsec.ike.credentials import MemoryCredentials
from pyipsec.ike.eap.mschapv2 import MsChapV2Server
from pyipsec.ike.events import ChildSaInstalled, IkeSaClosed, IkeSaEstablished, VirtualIpAssigned
from pyipsec.ike.pools import MemoryPools
from pyipsec.store.sqlite import SqliteStore
from pyipsec.wire.payloads.ts import TrafficSelector
from tests.support import pki
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, esp, ike, psk_connection

GATEWAY = "vpn.pyipsec.test"
POOL = PoolConfig(
    "rw",
    ip_address("10.3.0.1"),
    ip_address("10.3.0.2"),
    dns=(ip_address("10.3.0.53"),),
    domains=("corp.pyipsec.test",),
)


class RoadWarrior:
    """A gateway engine and a way to connect clients to it."""

    def __init__(
        self, tmp_path: Path, *, gateway_cert: pki.Issued | None = None, trust: pki.Issued | None = None
    ):
        self.ca = pki.make_ca("pyipsec RA CA")
        self.cert = gateway_cert or pki.make_end_entity(self.ca, GATEWAY, dns=[GATEWAY])
        self.trust = trust or self.ca
        self.users = SqliteStore(tmp_path / "users.db")
        self.users.add_user("alice", "alice-secret-1")
        self.users.add_user("bob", "bob-secret-2")
        self.pools = MemoryPools()
        base = psk_connection(
            "rw",
            local_id=GATEWAY,
            remote_id="x",
            local_addr=R_ADDR,
            remote_addr="%any",
            local_ts="0.0.0.0/0",
            remote_ts="10.3.0.0/24",
        )
        child = ChildConfig(
            "net",
            local_ts=(TrafficSelector.from_network("10.2.0.0/16"),),
            remote_ts=(),
            esp_proposals=esp("aes256gcm16"),
        )
        self.gw_conn = replace(
            base,
            remote_addrs=("%any",),
            proposals=ike("aes256gcm16-prfsha256-x25519-ecp256, aes256-sha256-modp2048"),
            local=AuthConfig(AuthClass.PUBKEY, Identity.fqdn(GATEWAY), certs=(self.cert.der,)),
            remote=AuthConfig(AuthClass.EAP_MSCHAPV2, Identity.any()),
            children=(child,),
            pools=("rw",),
        )
        self.gw_creds = MemoryCredentials(private_keys=[self.cert.key])  # type: ignore[list-item]

    def client(self, user: str, password: str, *, seed: int = 1) -> EnginePair:
        base = psk_connection("home", local_id=user, remote_id=GATEWAY, local_addr=I_ADDR, remote_addr=R_ADDR)
        child = ChildConfig(
            "net",
            local_ts=(),
            remote_ts=(TrafficSelector.from_network("10.2.0.0/16"),),
            esp_proposals=esp("aes256gcm16"),
        )
        conn = replace(
            base,
            proposals=ike("aes256gcm16-prfsha256-ecp256"),
            local=AuthConfig(
                AuthClass.EAP_MSCHAPV2, Identity.fqdn(f"{user}.pyipsec.test"), eap_identity=user
            ),
            remote=AuthConfig(AuthClass.PUBKEY, Identity.fqdn(GATEWAY), cacerts=(self.trust.der,)),
            children=(child,),
            vips=("0.0.0.0",),
        )
        p = EnginePair(
            conn,
            [self.gw_conn],
            i_creds=MemoryCredentials(eap_passwords={user: password}),
            r_creds=self.gw_creds,
        )
        p.i.engine.ctx.rng = SeededRandom(seed)
        gw = p.r.engine
        gw.reconfigure(replace(gw.config, pools={"rw": POOL}))
        gw.ctx.pools = self.pools
        gw.ctx.eap_server = lambda: MsChapV2Server(self.users, rng=SeededRandom(seed + 100))
        return p

    def attach(self, p: EnginePair, gateway: EnginePair) -> None:
        """Make ``p`` talk to the gateway engine of ``gateway`` (several clients, one gateway)."""
        p.r.engine = gateway.r.engine


def test_eap_mschapv2_client_gets_virtual_ip_dns_and_child(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    p = rw.client("alice", "alice-secret-1")
    p.initiate()
    p.run()
    (ei,) = p.i.of(IkeSaEstablished)
    assert len(p.r.of(IkeSaEstablished)) == 1
    assert ei.remote_id == GATEWAY
    (vip,) = p.i.of(VirtualIpAssigned)
    assert vip.addresses == (ip_address("10.3.0.1"),)
    assert vip.dns == (ip_address("10.3.0.53"),)
    assert vip.domains == ("corp.pyipsec.test",)
    (ci,) = p.i.of(ChildSaInstalled)
    (cr,) = p.r.of(ChildSaInstalled)
    assert [str(t) for t in ci.spec.local_ts] == ["10.3.0.1/32"]
    assert [str(t) for t in cr.spec.remote_ts] == ["10.3.0.1/32"]
    assert [str(t) for t in cr.spec.local_ts] == ["10.2.0.0/16"]
    assert ci.spec.spi_out == cr.spec.spi_in and ci.spec.encr_key_out == cr.spec.encr_key_in
    assert rw.pools.in_use("rw") == {ip_address("10.3.0.1"): "alice"}


@pytest.mark.parametrize(
    ("user", "password", "why"),
    [
        ("alice", "wrong-password", "691"),
        ("mallory", "whatever-pw-1", "unknown user"),
    ],
)
def test_wrong_password_or_unknown_user_fails_on_both_sides_and_leaks_nothing(
    tmp_path: Path, user: str, password: str, why: str
) -> None:
    rw = RoadWarrior(tmp_path)
    p = rw.client(user, password)
    p.initiate()
    p.run()
    (ci,) = p.i.of(IkeSaClosed)
    (cr,) = p.r.of(IkeSaClosed)
    assert "EAP" in ci.reason
    assert "EAP" in cr.reason and why in cr.reason.lower() + " " + cr.reason
    assert not p.i.of(IkeSaEstablished) and not p.r.of(IkeSaEstablished)
    assert p.i.engine.sas() == [] and p.r.engine.sas() == []
    assert rw.pools.in_use("rw") == {}


def test_untrusted_gateway_certificate_fails_before_eap(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path, trust=pki.make_ca("another CA"))
    p = rw.client("alice", "alice-secret-1")
    p.initiate()
    p.run()
    (ci,) = p.i.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in ci.reason
    assert p.r.engine.sas() == [] or all(not s.was_established for s in p.r.engine.sas())
    p.run(until=p.now + 60)
    assert p.r.engine.sas() == []
    assert rw.pools.in_use("rw") == {}


def test_gateway_name_not_in_san_is_rejected(tmp_path: Path) -> None:
    ca = pki.make_ca("pyipsec RA CA 2")
    cert = pki.make_end_entity(ca, "other.pyipsec.test", dns=["other.pyipsec.test"])
    rw = RoadWarrior(tmp_path, gateway_cert=cert, trust=ca)
    p = rw.client("alice", "alice-secret-1")
    p.initiate()
    p.run()
    (ci,) = p.i.of(IkeSaClosed)
    assert "not confirmed by its certificate" in ci.reason


def test_exhausted_pool_fails_with_internal_address_failure_and_no_lease(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    first = rw.client("alice", "alice-secret-1")
    first.initiate()
    first.run()
    assert first.i.of(VirtualIpAssigned)
    rw.users.add_user("carol", "carol-secret-3")
    second = rw.client("bob", "bob-secret-2", seed=2)
    rw.attach(second, first)
    second.initiate()
    second.run()
    assert second.i.of(VirtualIpAssigned)[0].addresses == (ip_address("10.3.0.2"),)
    third = rw.client("carol", "carol-secret-3", seed=3)
    rw.attach(third, first)
    third.initiate()
    third.run()
    (closed,) = third.i.of(IkeSaClosed)
    assert "INTERNAL_ADDRESS_FAILURE" in closed.reason
    assert len(rw.pools.in_use("rw")) == 2
    assert len(first.r.engine.sas()) == 2  # carol's SA is gone on the gateway too


def test_returning_identity_gets_its_address_back(tmp_path: Path) -> None:
    rw = RoadWarrior(tmp_path)
    bob = rw.client("bob", "bob-secret-2", seed=2)
    bob.initiate()
    bob.run()
    assert bob.i.of(VirtualIpAssigned)[0].addresses == (ip_address("10.3.0.1"),)
    (sa,) = bob.i.engine.sas()
    bob.i.terminate(sa.sa_id)
    bob.run()
    assert rw.pools.in_use("rw") == {}
    alice = rw.client("alice", "alice-secret-1", seed=4)
    rw.attach(alice, bob)
    alice.initiate()
    alice.run()
    assert alice.i.of(VirtualIpAssigned)[0].addresses == (ip_address("10.3.0.2"),)  # bob's stays reserved
    again = rw.client("bob", "bob-secret-2", seed=5)
    rw.attach(again, bob)
    again.initiate()
    again.run()
    assert again.i.of(VirtualIpAssigned)[0].addresses == (ip_address("10.3.0.1"),)
