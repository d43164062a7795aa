"""Client profiles: each format is well-formed, carries the right names, algorithms and CA, and
leaves the password out unless asked; the pyipsec profile passes pyipsec's own config loader."""

from __future__ import annotations

import base64
import json
import plistlib
import tomllib
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from pyipsec.config.load import ConfigErrors, read_config
from pyipsec.config.model import AuthKind, Config, EapSecret
from pyipsec.iana.ikev2 import IdType, ProtocolId
from pyipsec.ike.proposal import select
from pyipsec.ike.proposal_text import parse_proposals
from pyipsec.pki.ca import Issued, create_ca, issue_client, issue_gateway, pkcs12_bundle
from pyipsec.pki.errors import PkiError, ProfileError
from pyipsec.pki.keys import KeySpec
from pyipsec.pki.profiles import (
    KE_GROUPS,
    ClientAuth,
    ClientIdentity,
    ClientSuite,
    ProfileFormat,
    ProfileSpec,
    apple_mobileconfig,
    build_profile,
    check_supported,
    client_auths_for_connection,
    client_names,
    pyipsec_toml,
    strongswan_sswan,
    validate_username,
    windows_powershell,
)
from tests.support.pki import make_key


def _spec(ca: Issued, **kwargs: object) -> ProfileSpec:
    args: dict[str, object] = {
        "username": "alice",
        "gateway": "vpn.example.org",
        "ca_certificate": ca.certificate,
    }
    args.update(kwargs)
    return ProfileSpec(**args)  # type: ignore[arg-type]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# --- the algorithm suite --------------------------------------------------------------------


@pytest.mark.parametrize("group", KE_GROUPS)
def test_suite_is_accepted_by_pyipsec_default_proposals(group: int) -> None:
    suite = ClientSuite(group)
    ike = parse_proposals(suite.ike_proposal, protocol=ProtocolId.IKE)
    chosen = select(parse_proposals("default", protocol=ProtocolId.IKE), [ike[0].to_wire(1)])
    assert chosen is not None
    assert int(chosen.ke or 0) == group
    esp = parse_proposals(suite.esp_proposal, protocol=ProtocolId.ESP)
    assert select(parse_proposals("default", protocol=ProtocolId.ESP), [esp[0].to_wire(1, b"\0\0\0\1")])


def test_suite_refuses_other_groups() -> None:
    with pytest.raises(ProfileError, match="group 5 is not offered"):
        ClientSuite(5)
    assert ClientSuite().ike_proposal == "aes256gcm16-prfsha256-ecp256"
    assert ClientSuite(14).ike_proposal == "aes256gcm16-prfsha256-modp2048"


# --- the spec -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "alice@example.org", "a.b-c_d+e", "_svc", "x" * 253])
def test_good_usernames(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize(
    "name", ["", "al ice", "-alice", "@alice", "a=b", "10.0.0.1", "al\nice", "x" * 254, "ä"]
)
def test_bad_usernames(name: str) -> None:
    with pytest.raises(ProfileError, match="bad user name"):
        validate_username(name)


def test_spec_validation(ec_ca: Issued) -> None:
    with pytest.raises(ProfileError, match="bad user name"):
        _spec(ec_ca, username="a b")
    with pytest.raises(PkiError, match="bad gateway name"):
        _spec(ec_ca, gateway="vpn..example.org")
    with pytest.raises(PkiError, match="bad gateway name"):
        _spec(ec_ca, remote_id="not a name")
    with pytest.raises(ProfileError, match="control characters"):
        _spec(ec_ca, display_name="VPN\r\n")
    spec = _spec(ec_ca, gateway="VPN.example.org", remote_id="203.0.113.5")
    assert (spec.server.text, spec.server_id.text, spec.name) == (
        "vpn.example.org",
        "203.0.113.5",
        "vpn.example.org",
    )
    assert "secret" not in repr(_spec(ec_ca, password="secret"))
    with pytest.raises(ProfileError, match="bad password: empty or containing control") as info:
        _spec(ec_ca, password="top\tsecret")
    assert "top" not in str(info.value)


def test_gateway_certificate_must_match(ec_ca: Issued, now: datetime) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org", "203.0.113.5"], now=now, key_spec=KeySpec("ecdsa", 256))
    _spec(ec_ca, gateway_certificate=gw.certificate)
    _spec(ec_ca, gateway="203.0.113.5", gateway_certificate=gw.certificate)
    with pytest.raises(ProfileError, match=r"does not name the gateway identity 'other\.example\.org'"):
        _spec(ec_ca, remote_id="other.example.org", gateway_certificate=gw.certificate)
    with pytest.raises(ProfileError, match=r"does not name the gateway address '198\.51\.100\.1'"):
        _spec(ec_ca, gateway="198.51.100.1", remote_id="vpn.example.org", gateway_certificate=gw.certificate)
    other = create_ca("Other CA", now=now, key_spec=KeySpec("ecdsa", 256))
    with pytest.raises(ProfileError, match="issued by 'CN=Test CA', not by the CA 'CN=Other CA'"):
        _spec(other, gateway_certificate=gw.certificate)


# --- Apple ----------------------------------------------------------------------------------


def test_apple_mobileconfig(ec_ca: Issued) -> None:
    spec = _spec(ec_ca, remote_id="gw.example.org", display_name="Office VPN")
    profile = plistlib.loads(apple_mobileconfig(spec))
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    assert profile["PayloadDisplayName"] == "Office VPN"
    root, vpn = profile["PayloadContent"]
    assert root["PayloadType"] == "com.apple.security.root"
    assert root["PayloadContent"] == _der(ec_ca.certificate)
    assert vpn["PayloadType"] == "com.apple.vpn.managed"
    assert vpn["VPNType"] == "IKEv2"
    assert vpn["UserDefinedName"] == "Office VPN"
    sa = {"EncryptionAlgorithm": "AES-256-GCM", "IntegrityAlgorithm": "SHA2-256", "DiffieHellmanGroup": 19}
    assert vpn["IKEv2"] == {
        "RemoteAddress": "vpn.example.org",
        "RemoteIdentifier": "gw.example.org",
        "LocalIdentifier": "alice",
        "AuthenticationMethod": "Certificate",
        "ExtendedAuthEnabled": 1,
        "AuthName": "alice",
        "ServerCertificateIssuerCommonName": "Test CA",
        "EnablePFS": 0,
        "DeadPeerDetectionRate": "Medium",
        "DisableMOBIKE": 0,
        "DisableRedirect": 0,
        "EnableCertificateRevocationCheck": 0,
        "UseConfigurationAttributeInternalIPSubnet": 0,
        "IKESecurityAssociationParameters": sa,
        "ChildSecurityAssociationParameters": sa,
    }
    uuids = [profile["PayloadUUID"], root["PayloadUUID"], vpn["PayloadUUID"]]
    assert len(set(uuids)) == 3 and all(uuid.UUID(u) for u in uuids)
    identifiers = [profile["PayloadIdentifier"], root["PayloadIdentifier"], vpn["PayloadIdentifier"]]
    assert len(set(identifiers)) == 3
    assert all(i.startswith(profile["PayloadIdentifier"]) for i in identifiers)


def test_apple_profile_is_stable_and_per_user(ec_ca: Issued) -> None:
    assert apple_mobileconfig(_spec(ec_ca)) == apple_mobileconfig(_spec(ec_ca))  # re-export replaces
    alice = plistlib.loads(apple_mobileconfig(_spec(ec_ca)))
    bob = plistlib.loads(apple_mobileconfig(_spec(ec_ca, username="bob")))
    assert alice["PayloadUUID"] != bob["PayloadUUID"]
    assert alice["PayloadIdentifier"] != bob["PayloadIdentifier"]


def test_apple_password_only_when_asked(ec_ca: Issued) -> None:
    without = build_profile(ProfileFormat.APPLE, _spec(ec_ca))
    assert not without.contains_secret
    assert "AuthPassword" not in plistlib.loads(without.content)["PayloadContent"][1]["IKEv2"]
    with_pw = build_profile("apple", _spec(ec_ca, password="s3cret <&>"))
    assert with_pw.contains_secret
    assert plistlib.loads(with_pw.content)["PayloadContent"][1]["IKEv2"]["AuthPassword"] == "s3cret <&>"


@pytest.mark.parametrize(
    ("key", "cert_type"), [("p256", "ECDSA256"), ("p384", "ECDSA384"), ("rsa2048", "RSA")]
)
def test_apple_certificate_type_from_gateway_certificate(
    ec_ca: Issued, now: datetime, key: str, cert_type: str
) -> None:
    gw = issue_gateway(ec_ca, ["vpn.example.org"], now=now, key=make_key(key))  # type: ignore[arg-type]
    ikev2 = plistlib.loads(apple_mobileconfig(_spec(ec_ca, gateway_certificate=gw.certificate)))[
        "PayloadContent"
    ][1]["IKEv2"]
    assert ikev2["CertificateType"] == cert_type
    assert ikev2["ServerCertificateCommonName"] == "vpn.example.org"


@pytest.mark.parametrize("group", KE_GROUPS)
def test_apple_groups(ec_ca: Issued, group: int) -> None:
    ikev2 = plistlib.loads(apple_mobileconfig(_spec(ec_ca, suite=ClientSuite(group))))["PayloadContent"][1][
        "IKEv2"
    ]
    assert ikev2["IKESecurityAssociationParameters"]["DiffieHellmanGroup"] == group


# --- strongSwan for Android -------------------------------------------------------------------


def test_sswan(ec_ca: Issued) -> None:
    spec = _spec(ec_ca, gateway="203.0.113.5", remote_id="vpn.example.org", suite=ClientSuite(20))
    profile = build_profile(ProfileFormat.SSWAN, spec)
    assert not profile.contains_secret
    data = json.loads(profile.content)
    assert set(data) == {"uuid", "name", "type", "remote", "local", "ike-proposal", "esp-proposal"}
    assert uuid.UUID(data["uuid"]).version == 5
    assert data["name"] == "203.0.113.5"
    assert data["type"] == "ikev2-eap"
    assert data["remote"]["addr"] == "203.0.113.5"
    assert data["remote"]["id"] == "vpn.example.org"
    assert x509.load_der_x509_certificate(base64.b64decode(data["remote"]["cert"])) == ec_ca.certificate
    assert data["local"] == {"eap_id": "alice"}
    assert data["ike-proposal"] == "aes256gcm16-prfsha256-ecp384"
    assert data["esp-proposal"] == "aes256gcm16"
    assert json.loads(strongswan_sswan(spec))["uuid"] == data["uuid"]


def test_sswan_has_no_password(ec_ca: Issued) -> None:
    with pytest.raises(ProfileError, match="cannot hold a password"):
        strongswan_sswan(_spec(ec_ca, password="pw"))


# --- Windows --------------------------------------------------------------------------------


def test_windows_script(ec_ca: Issued) -> None:
    profile = build_profile(ProfileFormat.WINDOWS, _spec(ec_ca, display_name="Bob's VPN"))
    assert not profile.contains_secret
    assert not profile.content.startswith(b"\xef\xbb\xbf")
    text = profile.content.decode()
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    lines = text.splitlines()
    assert "#Requires -RunAsAdministrator" in lines
    assert "$Name = 'Bob''s VPN'" in lines  # PowerShell single-quote escaping
    curly = windows_powershell(_spec(ec_ca, display_name="Bob\u2019s \u201bVPN"))
    assert "$Name = 'Bob\u2019\u2019s \u201b\u201bVPN'" in curly.splitlines()
    assert "$Server = 'vpn.example.org'" in lines
    pem = ec_ca.certificate.public_bytes(serialization.Encoding.PEM).decode()
    assert all(line in lines for line in pem.splitlines())
    flat = " ".join(line.rstrip("`").strip() for line in lines)
    assert "Import-Certificate -FilePath $CaFile -CertStoreLocation 'Cert:\\LocalMachine\\Root'" in flat
    assert (
        "Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType Ikev2 -AuthenticationMethod Eap "
        "-EncryptionLevel Required" in flat
    )
    assert (
        "Set-VpnConnectionIPsecConfiguration -ConnectionName $Name -AllUserConnection "
        "-EncryptionMethod GCMAES256 -IntegrityCheckMethod SHA256 -DHGroup ECP256 "
        "-CipherTransformConstants GCMAES256 -AuthenticationTransformConstants GCMAES256 "
        "-PfsGroup None -Force"
    ) in flat


@pytest.mark.parametrize(("group", "value"), [(14, "Group14"), (19, "ECP256"), (20, "ECP384")])
def test_windows_groups(ec_ca: Issued, group: int, value: str) -> None:
    assert f"-DHGroup {value} " in windows_powershell(_spec(ec_ca, suite=ClientSuite(group)))


def test_windows_refusals_and_unicode(ec_ca: Issued) -> None:
    with pytest.raises(ProfileError, match="cannot use key exchange group 21"):
        windows_powershell(_spec(ec_ca, suite=ClientSuite(21)))
    with pytest.raises(ProfileError, match="does not store passwords"):
        windows_powershell(_spec(ec_ca, password="pw"))
    content = build_profile(ProfileFormat.WINDOWS, _spec(ec_ca, display_name="Büro")).content
    assert content.startswith(b"\xef\xbb\xbf")  # Windows PowerShell 5.1 needs the BOM for UTF-8
    assert "$Name = 'Büro'" in content.decode("utf-8-sig")


# --- pyipsec --------------------------------------------------------------------------------


def _write_ca(tmp_path: Path, ca: Issued) -> Path:
    path = tmp_path / "ca-cert.pem"
    path.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    return path


def test_pyipsec_profile_with_password_loads(tmp_path: Path, ec_ca: Issued) -> None:
    _write_ca(tmp_path, ec_ca)
    spec = _spec(ec_ca, username="alice@example.org", password='pa"ss\\word !')
    profile = build_profile(ProfileFormat.PYIPSEC, spec, ca_path="ca-cert.pem")
    assert profile.contains_secret
    path = tmp_path / "alice.toml"
    path.write_bytes(profile.content)
    loaded = read_config(path)
    assert loaded.warnings == ()
    config = loaded.config
    ((name, conn),) = config.connections.items()
    assert name == "vpn-example-org"
    assert [a.hostname for a in conn.remote_addrs] == ["vpn.example.org"]
    assert [str(v) for v in conn.vips] == ["0.0.0.0"]
    assert conn.local.auth == AuthKind.EAP_MSCHAPV2
    assert str(conn.local.eap_id) == "alice@example.org"
    assert conn.remote.auth == AuthKind.PUBKEY
    assert conn.remote.id.id_type == IdType.ID_FQDN and conn.remote.id.data == b"vpn.example.org"
    assert conn.remote.cacerts == (tmp_path / "ca-cert.pem",)
    (child,) = conn.children.values()
    assert [str(ts) for ts in child.remote_ts] == ["0.0.0.0/0", "::/0"]
    assert [str(ts) for ts in child.local_ts] == ["dynamic"]
    (secret,) = config.secrets.values()
    assert isinstance(secret, EapSecret)
    assert secret.secret == b'pa"ss\\word !'
    assert [str(i) for i in secret.id] == ["alice@example.org"]


def test_pyipsec_profile_with_secret_file(tmp_path: Path, ec_ca: Issued) -> None:
    _write_ca(tmp_path, ec_ca)
    text = pyipsec_toml(
        _spec(ec_ca, gateway="203.0.113.5"), ca_path="ca-cert.pem", secret_file="alice.eap-secret"
    )
    assert "alice.eap-secret" in tomllib.loads(text)["secrets"]["eap-alice"]["secret_file"]
    path = tmp_path / "alice.toml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as info:
        read_config(path)
    assert [e.key for e in info.value.errors] == ["secrets.eap-alice.secret_file"]
    (tmp_path / "alice.eap-secret").write_text("long enough password\n")
    (tmp_path / "alice.eap-secret").chmod(0o600)
    config = read_config(path).config
    conn = config.connections["203-0-113-5"]
    assert conn.remote.id.id_type == IdType.ID_IPV4_ADDR
    secret = config.secrets["eap-alice"]
    assert isinstance(secret, EapSecret) and secret.secret == b"long enough password"


def test_pyipsec_profile_needs_a_secret_and_a_ca(ec_ca: Issued) -> None:
    with pytest.raises(ProfileError, match="needs the password or a secret file"):
        pyipsec_toml(_spec(ec_ca), ca_path="ca.pem")
    with pytest.raises(ProfileError, match="path of the CA"):
        build_profile(ProfileFormat.PYIPSEC, _spec(ec_ca, password="pw"))
    with pytest.raises(ProfileError, match="unknown profile format 'nm'"):
        build_profile("nm", _spec(ec_ca))


def test_ca_without_common_name(now: datetime) -> None:
    key = make_key("p256")
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, "No CN")])
    ca = create_ca("placeholder", now=now, key=key)  # a valid CA, then swap the subject
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(ca.certificate.not_valid_before_utc)
        .not_valid_after(ca.certificate.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, ca.certificate.signature_hash_algorithm)  # type: ignore[arg-type]
    )
    with pytest.raises(ProfileError, match="no common name"):
        apple_mobileconfig(ProfileSpec("alice", "vpn.example.org", cert))


# --- client authentication kinds (EAP-TLS, certificate then EAP) -----------------------------

P12_PASSWORD = "bundle password"


def _identity(ca: Issued, now: datetime, name: str = "alice@example.org", **kwargs: object) -> ClientIdentity:
    issued = issue_client(ca, name, now=now, key_spec=KeySpec("ecdsa", 256))
    bundle = pkcs12_bundle(issued, ca.certificate, P12_PASSWORD.encode(), friendly_name=name)
    return ClientIdentity(issued.certificate, bundle, **kwargs)  # type: ignore[arg-type]


def _tls_spec(ca: Issued, now: datetime, **kwargs: object) -> ProfileSpec:
    args: dict[str, object] = {
        "username": "alice@example.org",
        "auth": ClientAuth.EAP_TLS,
        "identity": _identity(ca, now),
    }
    args.update(kwargs)
    return _spec(ca, **args)


def _machine_spec(ca: Issued, now: datetime, **kwargs: object) -> ProfileSpec:
    args: dict[str, object] = {
        "username": "alice",
        "auth": ClientAuth.PUBKEY_EAP,
        "identity": _identity(ca, now, "laptop.example.org"),
    }
    args.update(kwargs)
    return _spec(ca, **args)


PBE_SHA1_3DES = bytes.fromhex("060a2a864886f70d010c0103")
"""pbeWithSHAAnd3-KeyTripleDES-CBC (RFC 7292 App. C), DER: the only bundle encryption Apple imports."""


def _open_p12(data: bytes, ca: Issued, cert: x509.Certificate) -> None:
    """The bundle opens with the password, holds ``cert``, its key and the CA, and is legacy-encrypted."""
    assert PBE_SHA1_3DES in data
    key, certificate, extra = pkcs12.load_key_and_certificates(data, P12_PASSWORD.encode())
    assert certificate == cert
    assert key is not None and _spki(key.public_key()) == _spki(cert.public_key())
    assert extra == [ca.certificate]
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(data, b"wrong password")


def _spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("table", "kinds"),
    [
        ({"remote": {"auth": "eap-mschapv2"}}, "eap-mschapv2"),
        ({"remote": {"auth": "EAP-Radius"}}, "eap-mschapv2 eap-tls"),  # the RADIUS server decides
        ({"remote": {"auth": "eap"}}, "eap-mschapv2 eap-tls"),
        ({"remote": {"auth": "eap-tls"}}, "eap-tls"),
        ({"remote-2": {"auth": "eap-mschapv2"}, "remote-1": {"auth": "pubkey"}}, "pubkey+eap"),
        ({"remote": {"auth": "rsa"}, "remote-2": {"auth": "eap-radius"}}, "pubkey+eap"),
    ],
)
def test_client_auth_from_the_gateway_connection(table: dict[str, object], kinds: str) -> None:
    accepted = client_auths_for_connection({"local": {"auth": "pubkey"}, **table})
    assert accepted == tuple(ClientAuth(k) for k in kinds.split())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "no remote section"),
        ({"remote": {"id": "%any"}}, "remote section has no auth method"),
        ({"remote": "eap"}, "remote section has no auth method"),
        ({"remote": {"auth": "psk"}}, "authenticates clients with psk"),
        ({"remote": {"auth": "pubkey"}}, "authenticates clients with pubkey;"),
        ({"remote-1": {"auth": "eap-mschapv2"}, "remote-2": {"auth": "pubkey"}}, "eap-mschapv2 then pubkey"),
        ({"remote-1": {"auth": "pubkey"}, "remote-2": {"auth": "eap-tls"}}, "pubkey then eap-tls"),
    ],
)
def test_client_auth_refuses_what_no_profile_does(table: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        client_auths_for_connection(table)


def test_certificate_kinds_check_the_identity(ec_ca: Issued, now: datetime) -> None:
    with pytest.raises(ProfileError, match="eap-tls needs the client certificate"):
        _spec(ec_ca, username="alice@example.org", auth=ClientAuth.EAP_TLS)
    with pytest.raises(ProfileError, match="eap-mschapv2 uses no client certificate"):
        _spec(ec_ca, identity=_identity(ec_ca, now))
    with pytest.raises(ProfileError, match="eap-tls has no EAP password"):
        _tls_spec(ec_ca, now, password="pw")
    with pytest.raises(ProfileError, match=r"does not name the user 'bob@example\.org'.*alice@example\.org"):
        _tls_spec(ec_ca, now, username="bob@example.org")
    other = create_ca("Other CA", now=now, key_spec=KeySpec("ecdsa", 256))
    with pytest.raises(ProfileError, match="issued by 'CN=Other CA', not by the CA 'CN=Test CA'"):
        _tls_spec(ec_ca, now, identity=_identity(other, now))
    assert _tls_spec(ec_ca, now, username="alice@EXAMPLE.org").username == "alice@EXAMPLE.org"
    assert _tls_spec(ec_ca, now, auth="eap-tls").auth is ClientAuth.EAP_TLS
    with pytest.raises(ProfileError, match="unknown client authentication 'eap-md5'"):
        _spec(ec_ca, auth="eap-md5")
    machine = _machine_spec(ec_ca, now)  # the machine certificate need not name the user
    assert machine.identity is not None and machine.identity.name == "laptop.example.org"
    secret = _identity(ec_ca, now, pkcs12_password="p12 secret")
    assert "p12 secret" not in repr(secret) and "pkcs12=" not in repr(secret)


def test_apple_eap_tls(ec_ca: Issued, now: datetime) -> None:
    spec = _tls_spec(ec_ca, now)
    profile = build_profile(ProfileFormat.APPLE, spec)
    assert profile.contains_secret  # an encrypted private key: written with mode 0600
    root, identity, vpn = plistlib.loads(profile.content)["PayloadContent"]
    assert root["PayloadType"] == "com.apple.security.root"
    assert identity["PayloadType"] == "com.apple.security.pkcs12"
    assert identity["PayloadCertificateFileName"] == "alice@example.org.p12"
    assert "Password" not in identity  # the device asks at install
    assert spec.identity is not None
    _open_p12(identity["PayloadContent"], ec_ca, spec.identity.certificate)
    ikev2 = vpn["IKEv2"]
    assert ikev2["AuthenticationMethod"] == "Certificate" and ikev2["ExtendedAuthEnabled"] == 1
    assert ikev2["PayloadCertificateUUID"] == identity["PayloadUUID"]
    assert ikev2["LocalIdentifier"] == "alice@example.org"
    assert "alice@example.org" in client_names(spec.identity.certificate)
    assert "AuthName" not in ikev2 and "AuthPassword" not in ikev2
    uuids = {p["PayloadUUID"] for p in (root, identity, vpn)}
    assert len(uuids) == 3


def test_apple_eap_tls_embeds_the_bundle_password_only_when_asked(ec_ca: Issued, now: datetime) -> None:
    spec = _tls_spec(ec_ca, now, identity=_identity(ec_ca, now, pkcs12_password=P12_PASSWORD))
    identity = plistlib.loads(apple_mobileconfig(spec))["PayloadContent"][1]
    assert identity["Password"] == P12_PASSWORD


def test_apple_cannot_do_two_rounds(ec_ca: Issued, now: datetime) -> None:
    with pytest.raises(ProfileError, match=r"Apple's IKEv2 client cannot authenticate twice \(RFC 4739\)"):
        apple_mobileconfig(_machine_spec(ec_ca, now))


def test_device_formats_need_the_bundle(ec_ca: Issued, now: datetime) -> None:
    issued = issue_client(ec_ca, "alice@example.org", now=now, key_spec=KeySpec("ecdsa", 256))
    spec = _tls_spec(ec_ca, now, identity=ClientIdentity(issued.certificate))
    for fmt in (ProfileFormat.APPLE, ProfileFormat.SSWAN, ProfileFormat.WINDOWS):
        with pytest.raises(ProfileError, match="as a PKCS#12 bundle"):
            build_profile(fmt, spec)


def test_sswan_eap_tls(ec_ca: Issued, now: datetime) -> None:
    spec = _tls_spec(ec_ca, now)
    profile = build_profile(ProfileFormat.SSWAN, spec)
    assert profile.contains_secret
    data = json.loads(profile.content)
    assert data["type"] == "ikev2-eap-tls"
    assert set(data["local"]) == {"id", "p12"}
    assert data["local"]["id"] == "alice@example.org"
    assert spec.identity is not None
    _open_p12(base64.b64decode(data["local"]["p12"]), ec_ca, spec.identity.certificate)
    assert x509.load_der_x509_certificate(base64.b64decode(data["remote"]["cert"])) == ec_ca.certificate


def test_sswan_certificate_then_eap(ec_ca: Issued, now: datetime) -> None:
    spec = _machine_spec(ec_ca, now)
    data = json.loads(strongswan_sswan(spec))
    assert data["type"] == "ikev2-cert-eap"
    assert data["local"]["id"] == "laptop.example.org" and data["local"]["eap_id"] == "alice"
    assert spec.identity is not None
    _open_p12(base64.b64decode(data["local"]["p12"]), ec_ca, spec.identity.certificate)
    embedded = _machine_spec(
        ec_ca, now, identity=_identity(ec_ca, now, "laptop.example.org", pkcs12_password="x")
    )
    with pytest.raises(ProfileError, match="cannot hold the PKCS#12 password"):
        strongswan_sswan(embedded)


def _here_string(lines: list[str], variable: str) -> str:
    start = lines.index(f"${variable} = @'")
    end = lines.index("'@", start)
    return "".join(lines[start + 1 : end])


def test_windows_eap_tls(ec_ca: Issued, now: datetime) -> None:
    spec = _tls_spec(ec_ca, now)
    profile = build_profile(ProfileFormat.WINDOWS, spec)
    assert profile.contains_secret
    text = profile.content.decode()
    lines = text.splitlines()
    assert spec.identity is not None
    _open_p12(base64.b64decode(_here_string(lines, "P12Base64")), ec_ca, spec.identity.certificate)
    assert P12_PASSWORD not in text
    flat = " ".join(line.rstrip("`").strip() for line in lines)
    assert "$P12Password = Read-Host -AsSecureString -Prompt $Prompt" in flat
    assert (
        "Import-PfxCertificate -FilePath $P12File -CertStoreLocation 'Cert:\\CurrentUser\\My' "
        "-Password $P12Password" in flat
    )
    assert "$Eap = New-EapConfiguration -Tls -UserCertificate" in flat
    assert (
        "Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType Ikev2 -AuthenticationMethod Eap "
        "-EapConfigXmlStream $Eap.EapConfigXmlStream" in flat
    )
    assert "-RememberCredential" not in flat  # nothing to remember: the certificate is the credential
    assert (
        flat.index("Import-Certificate")
        < flat.index("Import-PfxCertificate")
        < flat.index("Add-VpnConnection")
    )
    with pytest.raises(ProfileError, match="does not store the PKCS#12 password"):
        windows_powershell(_tls_spec(ec_ca, now, identity=_identity(ec_ca, now, pkcs12_password="x")))


def test_windows_cannot_do_two_rounds(ec_ca: Issued, now: datetime) -> None:
    with pytest.raises(ProfileError, match="machine certificate or with EAP, not both"):
        windows_powershell(_machine_spec(ec_ca, now))
    with pytest.raises(ProfileError, match="not both"):
        check_supported(ProfileFormat.WINDOWS, ClientAuth.PUBKEY_EAP)
    check_supported(ProfileFormat.SSWAN, ClientAuth.PUBKEY_EAP)
    check_supported(ProfileFormat.PYIPSEC, ClientAuth.PUBKEY_EAP)


def _files_for(tmp_path: Path, spec: ProfileSpec, ca: Issued) -> None:
    """The CA, the client certificate and a key file where the pyipsec profile names them."""
    _write_ca(tmp_path, ca)
    assert spec.identity is not None
    (tmp_path / "client-cert.pem").write_bytes(
        spec.identity.certificate.public_bytes(serialization.Encoding.PEM)
    )
    key = make_key("p256")
    (tmp_path / "client-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "client-key.pem").chmod(0o600)


def _load(path: Path) -> Config:
    """The profile through `pyipsec check`'s loader."""
    return read_config(path).config


def test_pyipsec_eap_tls(tmp_path: Path, ec_ca: Issued, now: datetime) -> None:
    spec = _tls_spec(ec_ca, now, identity=ClientIdentity(_identity(ec_ca, now).certificate))
    profile = build_profile(
        ProfileFormat.PYIPSEC,
        spec,
        ca_path="ca-cert.pem",
        cert_path="client-cert.pem",
        key_path="client-key.pem",
    )
    assert not profile.contains_secret  # it names the key file, which is 0600 on its own
    data = tomllib.loads(profile.content.decode())
    conn = data["connections"]["vpn-example-org"]
    assert conn["local"] == {"auth": "eap-tls", "id": "alice@example.org", "certs": ["client-cert.pem"]}
    assert conn["remote"]["auth"] == "pubkey" and conn["remote"]["cacerts"] == ["ca-cert.pem"]
    assert data["secrets"] == {"private-alice-example-org": {"file": "client-key.pem"}}
    path = tmp_path / "alice.toml"
    path.write_bytes(profile.content)
    _files_for(tmp_path, spec, ec_ca)
    config = _load(path)
    (loaded,) = config.connections.values()
    assert loaded.local.auth == AuthKind.EAP_TLS
    assert loaded.local.certs == (tmp_path / "client-cert.pem",)


def test_pyipsec_certificate_then_eap(tmp_path: Path, ec_ca: Issued, now: datetime) -> None:
    spec = _machine_spec(ec_ca, now, password="user password")
    text = pyipsec_toml(spec, ca_path="ca-cert.pem", cert_path="client-cert.pem", key_path="client-key.pem")
    data = tomllib.loads(text)
    conn = data["connections"]["vpn-example-org"]
    assert "local" not in conn
    assert conn["local-1"] == {"auth": "pubkey", "id": "laptop.example.org", "certs": ["client-cert.pem"]}
    assert conn["local-2"] == {"auth": "eap-mschapv2", "eap_id": "alice"}
    assert conn["remote"]["auth"] == "pubkey"
    assert data["secrets"] == {
        "private-laptop-example-org": {"file": "client-key.pem"},
        "eap-alice": {"id": "alice", "secret": "user password"},
    }
    with pytest.raises(ProfileError, match="certificate's path"):
        pyipsec_toml(spec, ca_path="ca-cert.pem", key_path="k.pem")
    with pytest.raises(ProfileError, match="private key's path"):
        pyipsec_toml(spec, ca_path="ca-cert.pem", cert_path="c.pem")
    path = tmp_path / "alice.toml"
    path.write_text(text)
    _files_for(tmp_path, spec, ec_ca)
    config = _load(path)
    assert len(config.connections) == 1
