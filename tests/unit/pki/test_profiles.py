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

from pyipsec.config.load import ConfigErrors, read_config
from pyipsec.config.model import AuthKind, EapSecret
from pyipsec.iana.ikev2 import IdType, ProtocolId
from pyipsec.ike.proposal import select
from pyipsec.ike.proposal_text import parse_proposals
from pyipsec.pki.ca import Issued, create_ca, issue_gateway
from pyipsec.pki.errors import PkiError, ProfileError
from pyipsec.pki.keys import KeySpec
from pyipsec.pki.profiles import (
    KE_GROUPS,
    ClientSuite,
    ProfileFormat,
    ProfileSpec,
    apple_mobileconfig,
    build_profile,
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
