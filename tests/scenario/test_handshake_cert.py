"""Certificate authentication between two engines: RSA, ECDSA, Ed25519; trust and identity failures."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from pyipsec.iana.ikev2 import AuthMethod, HashAlgorithm
from pyipsec.ike.auth import methods
from pyipsec.ike.config import AuthClass, AuthConfig, Identity
from pyipsec.ike.credentials import MemoryCredentials
from pyipsec.ike.events import ChildSaInstalled, IkeSaClosed, IkeSaEstablished
from tests.support import pki
from tests.support.engines import I_ADDR, R_ADDR, EnginePair, Link, psk_connection


def cert_pair(
    key: pki.KeyKind = "p256",
    *,
    ca_key: pki.KeyKind | None = None,
    i_trusts: pki.Issued | None = None,
    r_cert: pki.Issued | None = None,
    wall_shift: timedelta = timedelta(0),
) -> EnginePair:
    """moon.test (initiator) and sun.test (responder) with certificates from one CA."""
    ca = pki.make_ca(key=ca_key or key)
    i_cert = pki.make_end_entity(ca, "moon.test", key=key, dns=["moon.test"])
    r_cert = r_cert or pki.make_end_entity(ca, "sun.test", key=key, dns=["sun.test"])
    i = psk_connection(
        "office", local_id="moon.test", remote_id="sun.test", local_addr=I_ADDR, remote_addr=R_ADDR
    )
    i = replace(
        i,
        local=AuthConfig(AuthClass.PUBKEY, Identity.fqdn("moon.test"), certs=(i_cert.der,)),
        remote=AuthConfig(AuthClass.PUBKEY, Identity.fqdn("sun.test"), cacerts=((i_trusts or ca).der,)),
    )
    r = psk_connection(
        "gw",
        local_id="sun.test",
        remote_id="moon.test",
        local_addr=R_ADDR,
        remote_addr=I_ADDR,
        local_ts="10.2.0.0/16",
        remote_ts="10.1.0.0/16",
    )
    r = replace(
        r,
        local=AuthConfig(AuthClass.PUBKEY, Identity.fqdn("sun.test"), certs=(r_cert.der,)),
        remote=AuthConfig(AuthClass.PUBKEY, Identity.any(), cacerts=(ca.der,)),
    )
    return EnginePair(
        i,
        [r],
        i_creds=MemoryCredentials(private_keys=[i_cert.key]),  # type: ignore[list-item]
        r_creds=MemoryCredentials(private_keys=[r_cert.key]),  # type: ignore[list-item]
        wall=(pki.NOW + wall_shift).timestamp(),
    )


@pytest.mark.parametrize(
    ("key", "ca_key"), [("p256", None), ("p384", None), ("rsa2048", None), ("ed25519", "p256")]
)
def test_certificate_handshake(key: pki.KeyKind, ca_key: pki.KeyKind | None) -> None:
    # cryptography's path validator accepts no EdDSA-signed CA certificates, so the
    # Ed25519 end entities come from an ECDSA CA (the common deployment anyway)
    p = cert_pair(key, ca_key=ca_key)
    p.initiate()
    p.run()
    (ei,) = p.i.of(IkeSaEstablished)
    (er,) = p.r.of(IkeSaEstablished)
    assert ei.remote_id == "sun.test" and er.remote_id == "moon.test"
    assert p.i.of(ChildSaInstalled) and p.r.of(ChildSaInstalled)


def test_untrusted_responder_certificate_is_rejected_by_initiator() -> None:
    other_ca = pki.make_ca("some other CA")
    p = cert_pair(i_trusts=other_ca)
    p.initiate()
    p.run()
    (closed,) = p.i.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in closed.reason
    assert "trust" in closed.reason.lower() or "issuer" in closed.reason.lower()
    assert not p.i.of(IkeSaEstablished)


def test_expired_certificate_is_rejected() -> None:
    p = cert_pair(wall_shift=timedelta(days=400))  # the end-entity certificates live one year
    p.initiate()
    p.run()
    (closed,) = p.r.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in closed.reason and "expired" in closed.reason
    assert not p.r.of(IkeSaEstablished) and not p.i.of(IkeSaEstablished)


def test_wrong_identity_in_certificate() -> None:
    """The responder claims sun.test, but its certificate (from the right CA) names mars.test."""
    ca = pki.make_ca()
    p = cert_pair(i_trusts=ca, r_cert=pki.make_end_entity(ca, "mars.test", dns=["mars.test"]))
    p.initiate()
    p.run()
    (closed,) = p.i.of(IkeSaClosed)
    assert "AUTHENTICATION_FAILED" in closed.reason
    assert "sun.test" in closed.reason and "not confirmed" in closed.reason
    assert not p.i.of(IkeSaEstablished)


@pytest.mark.parametrize("link", [Link(), Link(loss=0.1, reorder=0.3, duplicate=0.1, seed=3)])
def test_certificate_handshake_with_tiny_ike_fragments(link: Link) -> None:
    """RSA certificates over 100-byte fragments: more than 16 SKF fragments each way (RFC 7383)."""
    p = cert_pair("rsa2048")
    p.link = link
    for side in (p.i, p.r):
        side.engine.reconfigure(replace(side.engine.config, fragment_size=100))
    p.initiate()
    p.run()
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    auth = [d for d in p.sent if d.payload[18] == 35]
    assert all(len(d.payload) <= 100 for d in auth)
    assert len({d.payload for d in auth if str(d.remote.ip) == R_ADDR}) > 16


@pytest.mark.parametrize(
    ("key", "announce", "rsa_pss", "method", "detail"),
    [
        ("p256", True, False, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.SHA2_256),
        ("p256", False, False, AuthMethod.ECDSA_SHA_256_P256, None),
        ("p384", False, False, AuthMethod.ECDSA_SHA_384_P384, None),
        ("p521", False, False, AuthMethod.ECDSA_SHA_512_P521, None),
        ("rsa2048", False, False, AuthMethod.RSA_DIGITAL_SIGNATURE, None),
        ("rsa2048", True, False, AuthMethod.DIGITAL_SIGNATURE, "pkcs1"),
        ("rsa2048", True, True, AuthMethod.DIGITAL_SIGNATURE, "pss"),
        ("ed25519", True, False, AuthMethod.DIGITAL_SIGNATURE, HashAlgorithm.IDENTITY),
    ],
)
def test_signature_method_follows_rfc7427_announcement(
    monkeypatch: pytest.MonkeyPatch,
    key: pki.KeyKind,
    announce: bool,
    rsa_pss: bool,
    method: AuthMethod,
    detail: object,
) -> None:
    """Method 14 when the peer announced SIGNATURE_HASH_ALGORITHMS, else the key's classic method."""
    used: list[tuple[AuthMethod, object, bool]] = []
    real = methods.sign_auth

    def spy(k: object, m: AuthMethod, octets: bytes, h: object = None, *, rsa_pss: bool = False) -> bytes:
        used.append((m, h, rsa_pss))
        return real(k, m, octets, h, rsa_pss=rsa_pss)  # type: ignore[arg-type]

    monkeypatch.setattr(methods, "sign_auth", spy)
    p = cert_pair(key, ca_key="p256" if key == "ed25519" else None)
    # the responder decides whether it announces; the initiator signs accordingly
    gw = p.r.engine.config.connections["gw"]
    p.r.engine.config.connections["gw"] = replace(gw, signature_hashes=announce)  # type: ignore[index]
    office = p.i.engine.config.connections["office"]
    p.i.engine.config.connections["office"] = replace(  # type: ignore[index]
        office, local=replace(office.local, rsa_pss=rsa_pss)
    )
    p.initiate()
    p.run()
    assert p.i.of(IkeSaEstablished) and p.r.of(IkeSaEstablished)
    m, h, pss = used[0]  # the initiator signs first
    assert m is method
    if isinstance(detail, HashAlgorithm):
        assert h is detail
    elif detail in ("pkcs1", "pss"):
        assert pss is (detail == "pss")
