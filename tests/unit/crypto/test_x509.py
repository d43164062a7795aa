"""X.509 loading, chain validation, IKE identities and CERTREQ hashes (crypto/x509.py).

References: RFC 5280 (path validation), RFC 4945 §3.1 (ID ↔ certificate), §5.1.3.2 (KeyUsage),
§5.1.3.12 (EKU), RFC 7296 §3.5 (ID types) and §3.7 (CERTREQ hashes).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from pyipsec.crypto.x509 import (
    EKU_IKE_INTERMEDIATE,
    EKU_IPSEC_IKE,
    BadCertificateSignature,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateUsageError,
    MalformedCertificate,
    TrustStore,
    UnsupportedCertificateAlgorithm,
    UntrustedCertificate,
    ca_key_hash,
    certificate_public_key,
    describe,
    identity_for_certificate,
    identity_matches_certificate,
    load_certificate,
    load_certificates,
    load_private_key,
)
from pyipsec.errors import AuthenticationFailed, CertificateError, ConfigError, PyIpsecError
from pyipsec.iana.ikev2 import IdType, NotifyType
from tests.support.pki import NOW, Issued, make_ca, make_chain, make_end_entity, make_key, name

PKI = Path(__file__).resolve().parents[2] / "captures" / "pki"
CAPTURE = Path(__file__).resolve().parents[2] / "captures" / "strongswan-cert-ecdsa.json"
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def spki_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def pki() -> tuple[Issued, Issued, Issued]:
    """root → intermediate → leaf (P-256), leaf with a dNSName SAN."""
    root, (inter,), leaf = make_chain()
    return root, inter, leaf


# --- loading -----------------------------------------------------------------------------------


class TestLoading:
    def test_pem_and_der_give_the_same_certificate(self, pki: tuple[Issued, Issued, Issued]) -> None:
        leaf = pki[2]
        assert load_certificate(leaf.pem) == leaf.cert
        assert load_certificate(leaf.der) == leaf.cert

    def test_bundle(self, pki: tuple[Issued, Issued, Issued]) -> None:
        root, inter, leaf = pki
        bundle = leaf.pem + b"\n" + inter.pem + leaf.key_pem() + root.pem
        assert load_certificates(bundle) == (leaf.cert, inter.cert, root.cert)
        assert load_certificates(leaf.der) == (leaf.cert,)

    def test_single_loader_refuses_a_bundle(self, pki: tuple[Issued, Issued, Issued]) -> None:
        with pytest.raises(MalformedCertificate, match="expected one certificate, found 2"):
            load_certificate(pki[2].pem + pki[1].pem)

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"   \n",
            b"garbage bytes, not a certificate",
            b"\x30\x03\x02\x01\x01",
            b"\x30\x82\xff\xff" + b"\x00" * 20,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            bytes(range(256)),
        ],
    )
    def test_garbage_raises_a_clear_error(self, data: bytes) -> None:
        with pytest.raises(MalformedCertificate) as info:
            load_certificate(data, source="peer.pem")
        assert str(info.value).startswith("peer.pem: ")
        assert isinstance(info.value, AuthenticationFailed)
        assert info.value.notify == NotifyType.AUTHENTICATION_FAILED

    def test_truncated_certificate(self, pki: tuple[Issued, Issued, Issued]) -> None:
        with pytest.raises(MalformedCertificate, match="DER"):
            load_certificate(pki[2].der[:-10])

    def test_trailing_garbage_after_der(self, pki: tuple[Issued, Issued, Issued]) -> None:
        with pytest.raises(MalformedCertificate):
            load_certificate(pki[2].der + b"\x00")

    def test_malformed_extension_is_caught_at_load(self) -> None:
        ca = make_ca()
        bogus_san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x05\x82\x01")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name("bad-san"))
            .issuer_name(ca.cert.subject)
            .public_key(make_key().public_key())
            .serial_number(77)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=1))
            .add_extension(bogus_san, critical=False)
            .sign(ca.key, hashes.SHA256())
        )
        with pytest.raises(MalformedCertificate, match=r"malformed X\.509 certificate"):
            load_certificate(der(cert))

    def test_non_bytes_input(self) -> None:
        with pytest.raises(MalformedCertificate, match="must be bytes"):
            load_certificates("-----BEGIN CERTIFICATE-----")  # type: ignore[arg-type]


class TestPrivateKeys:
    @pytest.mark.parametrize("kind", ["rsa2048", "p256", "p384", "ed25519", "ed448"])
    def test_pem_and_der(self, kind: str) -> None:
        issued = make_end_entity(make_ca(), key=kind)  # type: ignore[arg-type]
        for data in (issued.key_pem(), issued.key_der()):
            key = load_private_key(data)
            assert spki_der(issued.cert) == key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )

    def test_sec1_key_from_strongswan(self) -> None:
        key = load_private_key((PKI / "left-ecdsa-key.pem").read_bytes())
        cert = load_certificate((PKI / "left-ecdsa-cert.pem").read_bytes())
        assert spki_der(cert) == key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def test_encrypted_key(self) -> None:
        issued = make_ca()
        data = issued.key_pem(password=b"s3cret")
        assert isinstance(load_private_key(data, b"s3cret"), type(issued.key))
        assert isinstance(load_private_key(data, "s3cret"), type(issued.key))
        with pytest.raises(ConfigError, match="password is needed"):
            load_private_key(data, source="/etc/pyipsec/key.pem")
        with pytest.raises(ConfigError, match="password is wrong") as info:
            load_private_key(data, b"wrong", source="/etc/pyipsec/key.pem")
        assert info.value.path == "/etc/pyipsec/key.pem"
        with pytest.raises(ConfigError, match="not encrypted"):
            load_private_key(issued.key_pem(), b"unneeded")

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"junk",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            b"\x30\x03\x02\x01\x00",
        ],
    )
    def test_garbage(self, data: bytes) -> None:
        with pytest.raises(ConfigError):
            load_private_key(data)

    def test_non_bytes(self) -> None:
        with pytest.raises(ConfigError, match="must be bytes"):
            load_private_key("-----BEGIN PRIVATE KEY-----")  # type: ignore[arg-type]

    def test_key_types_that_cannot_sign_ike(self) -> None:
        nosig = x25519.X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with pytest.raises(ConfigError, match="unsupported private key type X25519"):
            load_private_key(nosig)
        dsa_pem = dsa.generate_private_key(2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with pytest.raises(ConfigError, match="unsupported private key type"):
            load_private_key(dsa_pem)


# --- chain validation --------------------------------------------------------------------------


class TestChains:
    @pytest.mark.parametrize("kind", ["p256", "p384", "rsa2048"])
    def test_valid_chain_through_peer_sent_intermediate(self, kind: str) -> None:
        root, (inter,), leaf = make_chain(key=kind)  # type: ignore[arg-type]
        store = TrustStore([root.cert])
        result = store.verify_chain(leaf.cert, [inter.cert], NOW, purpose="client")
        assert result.chain == (leaf.cert, inter.cert, root.cert)
        assert result.end_entity == leaf.cert
        assert result.anchor == root.cert
        assert result.intermediates == (inter.cert,)
        assert spki_der(leaf.cert) == result.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def test_direct_child_of_the_root(self) -> None:
        root = make_ca()
        leaf = make_end_entity(root, dns=["gw.example.test"])
        assert TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW).chain == (leaf.cert, root.cert)

    @pytest.mark.parametrize("kind", ["ed25519", "ed448", "rsa3072", "p521"])
    def test_end_entity_key_types_under_an_ecdsa_ca(self, kind: str) -> None:
        root = make_ca(key="p384")
        leaf = make_end_entity(root, key=kind)  # type: ignore[arg-type]
        result = TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW)
        assert type(result.public_key) is type(leaf.key.public_key())

    def test_two_intermediates_and_peer_also_sending_its_leaf(self) -> None:
        root, inters, leaf = make_chain(intermediates=2)
        untrusted = [leaf.cert, inters[1].cert, inters[0].cert]
        result = TrustStore([root.cert]).verify_chain(leaf.cert, untrusted, NOW)
        assert result.chain == (leaf.cert, inters[1].cert, inters[0].cert, root.cert)

    def test_peer_also_sending_the_root(self, pki: tuple[Issued, Issued, Issued]) -> None:
        root, inter, leaf = pki
        store = TrustStore([root.cert, root.cert])
        result = store.verify_chain(leaf.cert, [inter.cert, root.cert, inter.cert], NOW)
        assert result.chain == (leaf.cert, inter.cert, root.cert)

    def test_an_intermediate_may_itself_be_the_anchor(self, pki: tuple[Issued, Issued, Issued]) -> None:
        _, inter, leaf = pki
        assert TrustStore([inter.cert]).verify_chain(leaf.cert, [], NOW).chain == (leaf.cert, inter.cert)

    def test_locally_configured_intermediate(self, pki: tuple[Issued, Issued, Issued]) -> None:
        root, inter, leaf = pki
        store = TrustStore([root.cert], intermediates=[inter.cert])
        assert store.verify_chain(leaf.cert, [], NOW).intermediates == (inter.cert,)

    def test_missing_intermediate(self, pki: tuple[Issued, Issued, Issued]) -> None:
        root, _, leaf = pki
        with pytest.raises(UntrustedCertificate, match=r"untrusted issuer.*intermediate CA 1"):
            TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW)

    def test_untrusted_root(self, pki: tuple[Issued, Issued, Issued]) -> None:
        _, inter, leaf = pki
        other = make_ca("some other root")
        with pytest.raises(UntrustedCertificate, match="pyipsec test root CA") as info:
            TrustStore([other.cert]).verify_chain(leaf.cert, [inter.cert], NOW)
        assert isinstance(info.value, CertificateError)
        assert info.value.notify == NotifyType.AUTHENTICATION_FAILED

    def test_self_signed_peer_not_in_store(self) -> None:
        rogue = make_ca("rogue")
        with pytest.raises(UntrustedCertificate):
            TrustStore([make_ca().cert]).verify_chain(rogue.cert, [], NOW)

    def test_root_with_the_same_name_but_another_key(self, pki: tuple[Issued, Issued, Issued]) -> None:
        root, inter, leaf = pki
        impostor = make_ca()  # same default name, fresh key
        assert impostor.cert.subject == root.cert.subject
        with pytest.raises(BadCertificateSignature, match="does not verify"):
            TrustStore([impostor.cert]).verify_chain(leaf.cert, [inter.cert], NOW)

    def test_forged_signature(self) -> None:
        root = make_ca()
        forged = make_end_entity(root, signer=make_key())
        with pytest.raises(BadCertificateSignature, match=r"peer\.example\.test"):
            TrustStore([root.cert]).verify_chain(forged.cert, [], NOW)

    def test_expired(self) -> None:
        root = make_ca()
        leaf = make_end_entity(
            root, not_before=datetime(2029, 1, 1, tzinfo=UTC), not_after=datetime(2030, 1, 1, tzinfo=UTC)
        )
        with pytest.raises(CertificateExpired, match="expired on 2030-01-01 00:00:00 UTC") as info:
            TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW)
        assert info.value.not_after == datetime(2030, 1, 1, tzinfo=UTC)
        assert "2030-06-01 12:00:00 UTC" in str(info.value)

    def test_not_yet_valid(self) -> None:
        root = make_ca()
        leaf = make_end_entity(root, not_before=datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC))
        with pytest.raises(CertificateNotYetValid, match="not valid before 2031-02-03 04:05:06 UTC") as info:
            TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW)
        assert info.value.not_before == datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)

    def test_expired_intermediate_and_anchor(self) -> None:
        root = make_ca()
        inter = make_ca("old intermediate", issuer=root, not_after=NOW - timedelta(days=2))
        leaf = make_end_entity(inter)
        with pytest.raises(CertificateExpired, match="CA certificate 'CN=old intermediate"):
            TrustStore([root.cert]).verify_chain(leaf.cert, [inter.cert], NOW)
        old_root = make_ca("old root", not_after=NOW - timedelta(seconds=1))
        leaf2 = make_end_entity(old_root)
        with pytest.raises(CertificateExpired, match="trust anchor 'CN=old root"):
            TrustStore([old_root.cert]).verify_chain(leaf2.cert, [], NOW)

    def test_validity_is_judged_at_the_given_time(self, pki: tuple[Issued, Issued, Issued]) -> None:
        root, inter, leaf = pki
        store = TrustStore([root.cert])
        later = leaf.cert.not_valid_after_utc + timedelta(seconds=1)
        with pytest.raises(CertificateExpired):
            store.verify_chain(leaf.cert, [inter.cert], later)
        naive = NOW.replace(tzinfo=None)
        assert store.verify_chain(leaf.cert, [inter.cert], naive).end_entity == leaf.cert
        elsewhere = NOW.astimezone(timezone(timedelta(hours=-7)))
        assert store.verify_chain(leaf.cert, [inter.cert], elsewhere).end_entity == leaf.cert

    def test_empty_store(self, pki: tuple[Issued, Issued, Issued]) -> None:
        with pytest.raises(UntrustedCertificate, match="no trust anchors"):
            TrustStore([]).verify_chain(pki[2].cert, [pki[1].cert], NOW)

    def test_end_entity_in_the_store_is_trusted_directly(self) -> None:
        peer = make_ca("pinned peer", ca=False, key_usage=["digital_signature"])
        assert TrustStore([peer.cert]).verify_chain(peer.cert, [], NOW).chain == (peer.cert,)

    def test_ca_certificate_as_end_entity_is_rejected(self) -> None:
        root = make_ca()
        sub_ca = make_ca("a CA, not a peer", issuer=root)
        with pytest.raises(CertificateError):
            TrustStore([root.cert]).verify_chain(sub_ca.cert, [], NOW)

    def test_non_ca_issuer_is_rejected(self) -> None:
        root = make_ca()
        not_a_ca = make_ca(
            "not a CA", issuer=root, ca=False, key_usage=["digital_signature", "key_cert_sign"]
        )
        leaf = make_end_entity(not_a_ca)
        with pytest.raises(CertificateError):
            TrustStore([root.cert]).verify_chain(leaf.cert, [not_a_ca.cert], NOW)

    def test_ca_key_usage(self) -> None:
        # RFC 5280 §4.2.1.3: a CA's keyUsage, when present, must allow keyCertSign; a CA without
        # keyUsage (OpenSSL's default CA profile) is tolerated.
        root = make_ca(key_usage=None)
        inter = make_ca("no KU", issuer=root, key_usage=None)
        leaf = make_end_entity(inter)
        assert len(TrustStore([root.cert]).verify_chain(leaf.cert, [inter.cert], NOW).chain) == 3
        crl_only = make_ca("CRL signer only", issuer=root, key_usage=["crl_sign"])
        leaf2 = make_end_entity(crl_only)
        with pytest.raises(CertificateError, match="rejected"):
            TrustStore([root.cert]).verify_chain(leaf2.cert, [crl_only.cert], NOW)

    def test_ca_eku_does_not_constrain(self) -> None:
        root = make_ca()
        inter = make_ca("IKE-only CA", issuer=root, eku=[EKU_IPSEC_IKE])
        leaf = make_end_entity(inter)
        assert TrustStore([root.cert]).verify_chain(leaf.cert, [inter.cert], NOW).anchor == root.cert

    def test_path_length_constraint(self) -> None:
        root = make_ca(path_length=0)
        inter = make_ca("too deep", issuer=root)
        leaf = make_end_entity(inter)
        with pytest.raises(CertificateError, match="path length"):
            TrustStore([root.cert]).verify_chain(leaf.cert, [inter.cert], NOW)

    def test_leaf_without_san_or_aki(self) -> None:
        # IKE peers may be identified by DN only; the Web PKI SAN/AKI requirements do not apply.
        root = make_ca()
        leaf = make_end_entity(root, authority_key_id=False)
        assert TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW).end_entity == leaf.cert

    def test_ed25519_ca_is_not_supported(self) -> None:
        root, (inter,), leaf = make_chain(key="ed25519")
        with pytest.raises(UnsupportedCertificateAlgorithm, match="CA keys must be RSA"):
            TrustStore([root.cert]).verify_chain(leaf.cert, [inter.cert], NOW)

    def test_weak_rsa_ca(self) -> None:
        root = make_ca(key="rsa1024")
        leaf = make_end_entity(root)
        with pytest.raises(UnsupportedCertificateAlgorithm, match="shorter than 2048"):
            TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW)

    def test_bad_purpose(self, pki: tuple[Issued, Issued, Issued]) -> None:
        with pytest.raises(ValueError, match="purpose"):
            TrustStore([pki[0].cert]).verify_chain(pki[2].cert, [pki[1].cert], NOW, purpose="web")  # type: ignore[arg-type]


class TestIkeUsage:
    """RFC 4945 §5.1.3.2 and §5.1.3.12, with serverAuth/clientAuth accepted per purpose."""

    @pytest.mark.parametrize(
        ("eku", "purpose", "ok"),
        [
            (None, "server", True),
            (None, "client", True),
            ([EKU_IPSEC_IKE], "client", True),
            ([EKU_IPSEC_IKE], "server", True),
            ([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], "client", True),
            ([EKU_IKE_INTERMEDIATE], "server", True),
            ([SERVER_AUTH], "server", True),
            ([SERVER_AUTH], "client", False),
            ([CLIENT_AUTH], "client", True),
            ([CLIENT_AUTH], "server", False),
            ([SERVER_AUTH], "any", True),
            ([CLIENT_AUTH], "any", True),
            ([ExtendedKeyUsageOID.EMAIL_PROTECTION], "any", False),
            ([ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.TIME_STAMPING], "client", False),
            ([ExtendedKeyUsageOID.EMAIL_PROTECTION, EKU_IPSEC_IKE], "server", True),
            ([x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5")], "any", False),  # ipsecEndSystem, deprecated
        ],
    )
    def test_eku(self, eku: list[x509.ObjectIdentifier] | None, purpose: str, ok: bool) -> None:
        root = make_ca()
        leaf = make_end_entity(root, eku=eku)
        store = TrustStore([root.cert])
        if ok:
            assert store.verify_chain(leaf.cert, [], NOW, purpose=purpose).end_entity == leaf.cert  # type: ignore[arg-type]
        else:
            with pytest.raises(CertificateUsageError, match="extendedKeyUsage allows only"):
                store.verify_chain(leaf.cert, [], NOW, purpose=purpose)  # type: ignore[arg-type]

    def test_wrong_eku_message_names_the_purposes(self) -> None:
        root = make_ca()
        leaf = make_end_entity(
            root, eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION, x509.ObjectIdentifier("1.2.3.4")]
        )
        with pytest.raises(CertificateUsageError, match=r"emailProtection, 1\.2\.3\.4"):
            TrustStore([root.cert]).verify_chain(leaf.cert, [], NOW)

    @pytest.mark.parametrize(
        ("usage", "ok"),
        [
            (["digital_signature"], True),
            (["content_commitment"], True),
            (["digital_signature", "key_encipherment"], True),
            (["key_encipherment"], False),
            (["key_agreement"], False),
        ],
    )
    def test_key_usage(self, usage: list[str], ok: bool) -> None:
        root = make_ca()
        leaf = make_end_entity(root, key_usage=usage)
        store = TrustStore([root.cert])
        if ok:
            assert store.verify_chain(leaf.cert, [], NOW).end_entity == leaf.cert
        else:
            with pytest.raises(CertificateUsageError, match="neither digitalSignature nor nonRepudiation"):
                store.verify_chain(leaf.cert, [], NOW)


@pytest.fixture(scope="module")
def certs() -> dict[str, x509.Certificate]:
    """The strongSwan capture's CA, initiator (left) and responder (right) certificates."""
    return {n: load_certificate((PKI / f"{n}-ecdsa-cert.pem").read_bytes()) for n in ("ca", "left", "right")}


class TestStrongswanPki:
    """The ECDSA CA and the two peer certificates of the strongSwan 5.9.8 capture."""

    WHEN = datetime(2028, 3, 1, tzinfo=UTC)  # inside 2026-11-27 .. 2031-11-26

    def test_both_peers_validate(self, certs: dict[str, x509.Certificate]) -> None:
        store = TrustStore([certs["ca"]])
        # left (initiator) has clientAuth; right (responder) serverAuth + iKEIntermediate.
        assert store.verify_chain(certs["left"], [], self.WHEN, purpose="client").anchor == certs["ca"]
        assert store.verify_chain(certs["right"], [], self.WHEN, purpose="server").anchor == certs["ca"]
        assert store.verify_chain(certs["right"], [], self.WHEN, purpose="client").anchor == certs["ca"]
        with pytest.raises(CertificateUsageError, match="clientAuth"):
            store.verify_chain(certs["left"], [], self.WHEN, purpose="server")

    def test_validity_window(self, certs: dict[str, x509.Certificate]) -> None:
        store = TrustStore([certs["ca"]])
        with pytest.raises(CertificateNotYetValid, match="2026-11-27 08:44:59 UTC"):
            store.verify_chain(certs["left"], [], datetime(2026, 11, 1, tzinfo=UTC))
        with pytest.raises(CertificateExpired, match="2031-11-26 08:44:59 UTC"):
            store.verify_chain(certs["left"], [], datetime(2032, 1, 1, tzinfo=UTC))

    def test_ids_of_the_capture(self, certs: dict[str, x509.Certificate]) -> None:
        # IDi / IDr of the IKE_AUTH exchange are ID_FQDN left.ih.test / right.ih.test.
        ids = _capture_ids()
        assert ids["IDi"] == (IdType.ID_FQDN, b"left.ih.test")
        assert ids["IDr"] == (IdType.ID_FQDN, b"right.ih.test")
        assert identity_matches_certificate(*ids["IDi"], certs["left"])
        assert identity_matches_certificate(*ids["IDr"], certs["right"])
        assert not identity_matches_certificate(*ids["IDi"], certs["right"])
        left_ip = ipaddress.ip_address("10.231.1.1").packed
        assert identity_matches_certificate(IdType.ID_IPV4_ADDR, left_ip, certs["left"])
        assert not identity_matches_certificate(IdType.ID_IPV4_ADDR, left_ip, certs["right"])

    def test_certreq_hashes_of_the_capture(self, certs: dict[str, x509.Certificate]) -> None:
        # RFC 7296 §3.7: strongSwan's CERTREQs (IKE_SA_INIT response, IKE_AUTH request) list the
        # SHA-1 of the CA's SubjectPublicKeyInfo.
        requested = _capture_certreq_hashes()
        assert len(requested) == 2
        h = ca_key_hash(certs["ca"])
        assert h.hex() == "a1a1fcda959120a67eea91173d003f2e7f46be60"
        assert all(h in listed for listed in requested)
        store = TrustStore([certs["ca"]])
        for listed in requested:
            assert store.anchor_for_hashes(listed) == certs["ca"]

    def test_capture_cert_payload_is_the_left_certificate(self, certs: dict[str, x509.Certificate]) -> None:
        cert_data = _capture_payload(2, 37)
        assert cert_data[0] == 4  # X.509 Certificate - Signature
        assert load_certificate(cert_data[1:]) == certs["left"]


# --- identities --------------------------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = (
        bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2, "big")
    )
    return bytes([tag]) + length + body


def _dn(*rdns: list[tuple[bytes, int, str]]) -> bytes:
    """A DER Name; each RDN a list of (OID body, string tag, text)."""
    codecs = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x1E: "utf-16-be"}
    return _tlv(
        0x30,
        b"".join(
            _tlv(
                0x31,
                b"".join(
                    _tlv(0x30, _tlv(0x06, oid) + _tlv(tag, text.encode(codecs[tag])))
                    for oid, tag, text in rdn
                ),
            )
            for rdn in rdns
        ),
    )


C, ORG, CN = b"\x55\x04\x06", b"\x55\x04\x0a", b"\x55\x04\x03"
PRINTABLE, UTF8, IA5, BMP = 0x13, 0x0C, 0x16, 0x1E


class TestIdentities:
    @pytest.fixture
    def leaf(self) -> x509.Certificate:
        return make_end_entity(
            make_ca(),
            "gw.example.test",
            dns=["gw.example.test", "VPN.Example.Test"],
            ips=["192.0.2.7", "2001:db8::7"],
            emails=["Alice.Smith@Example.COM"],
        ).cert

    @pytest.mark.parametrize(
        ("data", "ok"),
        [
            (b"gw.example.test", True),
            (b"GW.EXAMPLE.TEST", True),
            (b"vpn.example.test", True),
            (b"other.example.test", False),
            (b"example.test", False),
            (b"gw.example.test.", False),
            (b"", False),
            (b"\xffgw.example.test", False),
        ],
    )
    def test_fqdn(self, leaf: x509.Certificate, data: bytes, ok: bool) -> None:
        assert identity_matches_certificate(IdType.ID_FQDN, data, leaf) is ok

    def test_fqdn_equal_to_cn_only_is_not_accepted(self) -> None:
        # strongSwan-style: the subject CN is never a fallback for ID_FQDN, only dNSName SANs count.
        cert = make_end_entity(make_ca(), "cn-only.example.test").cert
        assert not identity_matches_certificate(IdType.ID_FQDN, b"cn-only.example.test", cert)

    def test_no_wildcards(self) -> None:
        cert = make_end_entity(make_ca(), dns=["*.example.test"]).cert
        assert not identity_matches_certificate(IdType.ID_FQDN, b"gw.example.test", cert)
        assert identity_matches_certificate(IdType.ID_FQDN, b"*.example.test", cert)

    @pytest.mark.parametrize(
        ("id_type", "addr", "ok"),
        [
            (IdType.ID_IPV4_ADDR, "192.0.2.7", True),
            (IdType.ID_IPV4_ADDR, "192.0.2.8", False),
            (IdType.ID_IPV6_ADDR, "2001:db8::7", True),
            (IdType.ID_IPV6_ADDR, "2001:db8::8", False),
            (IdType.ID_IPV6_ADDR, "::ffff:192.0.2.7", False),  # v4-mapped is not the v4 SAN
        ],
    )
    def test_ip(self, leaf: x509.Certificate, id_type: IdType, addr: str, ok: bool) -> None:
        assert identity_matches_certificate(id_type, ipaddress.ip_address(addr).packed, leaf) is ok

    def test_ip_wrong_length(self, leaf: x509.Certificate) -> None:
        v4 = ipaddress.ip_address("192.0.2.7").packed
        assert not identity_matches_certificate(IdType.ID_IPV6_ADDR, v4, leaf)
        assert not identity_matches_certificate(IdType.ID_IPV4_ADDR, v4 + b"\x00", leaf)
        assert not identity_matches_certificate(IdType.ID_IPV4_ADDR, b"192.0.2.7", leaf)

    @pytest.mark.parametrize(
        ("data", "ok"),
        [
            (b"Alice.Smith@Example.COM", True),
            (b"Alice.Smith@example.com", True),  # the domain is case-insensitive
            (b"alice.smith@example.com", False),  # the local part is not (RFC 5280 §7.5)
            (b"bob@example.com", False),
            (b"Example.COM", False),
            (b"\xff@example.com", False),
        ],
    )
    def test_rfc822(self, leaf: x509.Certificate, data: bytes, ok: bool) -> None:
        assert identity_matches_certificate(IdType.ID_RFC822_ADDR, data, leaf) is ok

    def test_email_is_not_an_fqdn(self, leaf: x509.Certificate) -> None:
        assert not identity_matches_certificate(IdType.ID_FQDN, b"Alice.Smith@Example.COM", leaf)
        assert not identity_matches_certificate(IdType.ID_RFC822_ADDR, b"gw.example.test", leaf)

    def test_dn_exact(self, leaf: x509.Certificate) -> None:
        id_type, data = identity_for_certificate(leaf)
        assert id_type == IdType.ID_DER_ASN1_DN
        assert data == leaf.subject.public_bytes()
        assert identity_matches_certificate(IdType.ID_DER_ASN1_DN, data, leaf)

    def test_dn_rdn_wise(self) -> None:
        # the certificate's subject uses PrintableString (C) and UTF8String (ORG, CN)
        cert = make_end_entity(make_ca(), subject=name("Gateway One", org="Example Org")).cert
        assert cert.subject.public_bytes() == _dn(
            [(C, PRINTABLE, "XX")], [(ORG, UTF8, "Example Org")], [(CN, UTF8, "Gateway One")]
        )
        same = [
            _dn([(C, PRINTABLE, "XX")], [(ORG, PRINTABLE, "Example Org")], [(CN, PRINTABLE, "Gateway One")]),
            _dn([(C, PRINTABLE, "xx")], [(ORG, UTF8, "EXAMPLE ORG")], [(CN, BMP, "gateway one")]),
            _dn([(C, PRINTABLE, "XX")], [(ORG, IA5, "  Example   Org ")], [(CN, UTF8, "Gateway One")]),
        ]
        for data in same:
            assert data != cert.subject.public_bytes()
            assert identity_matches_certificate(IdType.ID_DER_ASN1_DN, data, cert), data.hex()
        different = [
            _dn([(CN, UTF8, "Gateway One")], [(ORG, UTF8, "Example Org")], [(C, PRINTABLE, "XX")]),  # order
            _dn([(C, PRINTABLE, "XX")], [(ORG, UTF8, "Example Org")]),  # missing RDN
            _dn([(C, PRINTABLE, "XX")], [(ORG, UTF8, "Example Org")], [(CN, UTF8, "Gateway Two")]),
            _dn(
                [(C, PRINTABLE, "XX")], [(ORG, UTF8, "Example Org"), (CN, UTF8, "Gateway One")]
            ),  # merged RDN
            _dn(
                [(C, PRINTABLE, "XX")],
                [(ORG, UTF8, "Example Org")],
                [(CN, UTF8, "Gateway One")],
                [(CN, UTF8, "x")],
            ),
            _dn(
                [(C, PRINTABLE, "XX")], [(ORG, UTF8, "Example Org")], [(ORG, UTF8, "Gateway One")]
            ),  # attribute type
            b"",
            b"\x30\x00",
            b"\x30\x05\x31\x03\x30\x01\x06",
            b"garbage",
            cert.subject.public_bytes() + b"\x00",
        ]
        for data in different:
            assert not identity_matches_certificate(IdType.ID_DER_ASN1_DN, data, cert), data.hex()

    def test_multi_valued_rdn_is_order_independent(self) -> None:
        subject = x509.Name(
            [
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Org"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "gw"),
                    ]
                )
            ]
        )
        cert = make_end_entity(make_ca(), subject=subject).cert
        swapped = _dn([(CN, UTF8, "gw"), (ORG, UTF8, "Org")])
        assert identity_matches_certificate(IdType.ID_DER_ASN1_DN, swapped, cert)

    def test_key_id_and_other_types_never_match(self, leaf: x509.Certificate) -> None:
        dn = leaf.subject.public_bytes()
        for id_type in (IdType.ID_KEY_ID, IdType.ID_DER_ASN1_GN, IdType.ID_FC_NAME, IdType.ID_NULL, 200):
            assert not identity_matches_certificate(id_type, dn, leaf)
            assert not identity_matches_certificate(id_type, b"gw.example.test", leaf)
        assert not identity_matches_certificate(IdType.ID_KEY_ID, ca_key_hash(leaf), leaf)

    def test_empty_subject(self) -> None:
        cert = make_end_entity(
            make_ca(), subject=x509.Name([]), dns=["san-only.example.test"], san_critical=True
        ).cert
        assert identity_for_certificate(cert) == (IdType.ID_FQDN, b"san-only.example.test")
        assert not identity_matches_certificate(IdType.ID_DER_ASN1_DN, b"\x30\x00", cert)
        ip_only = make_end_entity(
            make_ca(), subject=x509.Name([]), ips=["2001:db8::1"], san_critical=True
        ).cert
        assert identity_for_certificate(ip_only) == (
            IdType.ID_IPV6_ADDR,
            ipaddress.ip_address("2001:db8::1").packed,
        )
        mail_only = make_end_entity(
            make_ca(), subject=x509.Name([]), emails=["a@b.test"], san_critical=True
        ).cert
        assert identity_for_certificate(mail_only) == (IdType.ID_RFC822_ADDR, b"a@b.test")
        nothing = make_end_entity(make_ca(), subject=x509.Name([])).cert
        with pytest.raises(CertificateError, match="neither a subject"):
            identity_for_certificate(nothing)

    def test_identity_round_trip(self, pki: tuple[Issued, Issued, Issued]) -> None:
        for issued in pki:
            assert identity_matches_certificate(*identity_for_certificate(issued.cert), issued.cert)


# --- CERTREQ -------------------------------------------------------------------------------------


class TestCertreq:
    @pytest.mark.parametrize("kind", ["p256", "p384", "rsa2048", "ed25519", "ed448"])
    def test_hash_is_sha1_of_spki(self, kind: str) -> None:
        # RFC 7296 §3.7: SHA-1 of the DER SubjectPublicKeyInfo.
        ca = make_ca(key=kind)  # type: ignore[arg-type]
        assert ca_key_hash(ca.cert) == hashlib.sha1(spki_der(ca.cert)).digest()
        assert len(ca_key_hash(ca.cert)) == 20

    def test_anchor_for_hashes(self) -> None:
        a, b, c = make_ca("A"), make_ca("B"), make_ca("C")
        store = TrustStore([a.cert, b.cert])
        ha, hb, hc = (ca_key_hash(x.cert) for x in (a, b, c))
        assert store.ca_key_hashes == (ha, hb)
        assert store.anchor_for_hashes([hb, ha]) == b.cert  # the peer's order wins
        assert store.anchor_for_hashes([hc, ha]) == a.cert
        assert store.anchor_for_hashes([hc]) is None
        assert store.anchor_for_hashes([]) is None

    def test_intermediates_are_not_anchors(self, pki: tuple[Issued, Issued, Issued]) -> None:
        root, inter, _ = pki
        store = TrustStore([root.cert], intermediates=[inter.cert])
        assert store.anchor_for_hashes([ca_key_hash(inter.cert)]) is None
        assert store.anchor_for_hashes([ca_key_hash(root.cert)]) == root.cert


# --- misc ---------------------------------------------------------------------------------------


def test_public_key_of_unusable_type() -> None:
    ca = make_ca()
    x_key = x25519.X25519PrivateKey.generate().public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("x25519 holder"))
        .issuer_name(ca.cert.subject)
        .public_key(x_key)
        .serial_number(99)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(ca.key, hashes.SHA256())
    )
    with pytest.raises(UnsupportedCertificateAlgorithm, match="X25519"):
        certificate_public_key(cert)
    with pytest.raises(UnsupportedCertificateAlgorithm):
        TrustStore([ca.cert]).verify_chain(cert, [], NOW)


def test_describe() -> None:
    assert describe(make_ca("Describe Me").cert) == "'CN=Describe Me,O=pyipsec tests,C=XX'"
    anonymous = make_end_entity(make_ca(), subject=x509.Name([]), dns=["x.test"], san_critical=True)
    assert describe(anonymous.cert) == "<empty subject>"


def test_every_error_is_an_authentication_failure() -> None:
    classes: tuple[type[CertificateError], ...] = (
        MalformedCertificate,
        UntrustedCertificate,
        BadCertificateSignature,
        CertificateUsageError,
        CertificateExpired,
        CertificateNotYetValid,
        UnsupportedCertificateAlgorithm,
    )
    for exc in classes:
        assert issubclass(exc, AuthenticationFailed)
        assert issubclass(exc, PyIpsecError)
        assert exc.notify == NotifyType.AUTHENTICATION_FAILED


# --- capture helpers -----------------------------------------------------------------------------


def _capture_payload_chain(data: bytes, first: int, offset: int) -> list[tuple[int, bytes, int]]:
    """(type, body, next payload) of each payload of a chain (RFC 7296 §3.2 generic headers)."""
    out = []
    nxt = first
    while nxt:
        following, length = data[offset], int.from_bytes(data[offset + 2 : offset + 4], "big")
        out.append((nxt, data[offset + 4 : offset + length], following))
        if nxt == 46:  # SK is last; its "next payload" names the first inner payload
            break
        nxt, offset = following, offset + length
    return out


def _capture_messages() -> list[list[tuple[int, bytes]]]:
    """Each captured IKE message's payloads, the SK payload replaced by its decrypted contents."""
    capture = json.loads(CAPTURE.read_text())
    result = []
    for m in capture["ike_messages"]:
        raw = bytes.fromhex(m["udp_payload_hex"])
        raw = raw[4:] if m["non_esp_marker"] else raw
        outer = _capture_payload_chain(raw, raw[16], 28)
        payloads = [(t, body) for t, body, _ in outer if t != 46]
        for t, _, first_inner in outer:
            if t == 46:
                inner = bytes.fromhex(m["sk"]["decrypted_payloads_hex"])
                payloads += [(it, body) for it, body, _ in _capture_payload_chain(inner, first_inner, 0)]
        result.append(payloads)
    return result


def _capture_payload(index: int, ptype: int) -> bytes:
    return next(body for t, body in _capture_messages()[index] if t == ptype)


def _capture_ids() -> dict[str, tuple[IdType, bytes]]:
    idi, idr = _capture_payload(2, 35), _capture_payload(3, 36)
    return {"IDi": (IdType(idi[0]), idi[4:]), "IDr": (IdType(idr[0]), idr[4:])}


def _capture_certreq_hashes() -> list[list[bytes]]:
    return [
        [body[i : i + 20] for i in range(1, len(body), 20)]
        for msg in _capture_messages()
        for t, body in msg
        if t == 38 and body[0] == 4
    ]
