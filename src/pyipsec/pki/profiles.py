"""Client profiles for the built-in IKEv2 clients: Apple, strongSwan for Android, Windows, pyipsec.

Theory of operation
-------------------
One :class:`ProfileSpec` — user name, gateway address, the gateway's IKE identity, the CA
certificate and the :class:`ClientSuite` of algorithms — is rendered into four formats, each a
pure function of the spec (UUIDs are derived from gateway and user with UUIDv5, so exporting
again yields a profile that *replaces* the installed one instead of adding a second):

- :func:`apple_mobileconfig` — a configuration profile (a plist) with two payloads: the CA as
  ``com.apple.security.root`` and a ``com.apple.vpn.managed`` payload of ``VPNType`` IKEv2.
  ``AuthenticationMethod`` Certificate with ``ExtendedAuthEnabled`` 1 means "the server signs
  with a certificate, the user logs in with EAP" (for IKEv2 with extended authentication the
  method only says how the server's AUTH payload is checked); the server certificate must
  chain to ``ServerCertificateIssuerCommonName`` and carry ``RemoteIdentifier`` in its
  subjectAltName. Naming the issuer also makes the client send a CERTREQ; the gateway should
  still set ``send_cert = "always"``. ``AuthName`` is the EAP user; ``AuthPassword`` only when
  asked for. ``IKESecurityAssociationParameters`` / ``ChildSecurityAssociationParameters`` hold
  one proposal each (Apple's strings ``AES-256-GCM``, ``SHA2-256`` — the PRF for an AEAD
  cipher — and the group number); PFS stays off because pyipsec's default ESP proposals carry
  no key exchange. With ``gateway_certificate`` given, ``ServerCertificateCommonName`` and
  ``CertificateType`` (RSA, ECDSA256, ECDSA384) are set from it.
- :func:`strongswan_sswan` — the strongSwan Android app's JSON profile: ``type``
  ``ikev2-eap``, ``remote.addr``/``remote.id``/``remote.cert`` (the CA, base64 DER),
  ``local.eap_id``, ``ike-proposal``/``esp-proposal`` in strongSwan's keywords. The format has
  no password field: the app asks on first connect.
- :func:`windows_powershell` — a script for an elevated PowerShell: it imports the CA into
  ``Cert:\\LocalMachine\\Root``, (re)creates the connection with ``Add-VpnConnection
  -TunnelType Ikev2 -AuthenticationMethod Eap`` (no EAP XML: Windows' default EAP method is
  EAP-MSCHAPv2, "secured password") and sets the algorithms with
  ``Set-VpnConnectionIPsecConfiguration`` (``-EncryptionMethod GCMAES256 -IntegrityCheckMethod
  SHA256 -DHGroup ECP256`` for IKE, ``-CipherTransformConstants GCMAES256
  -AuthenticationTransformConstants GCMAES256`` for ESP, ``-PfsGroup None``). Windows has no
  remote-identity setting: it checks that the certificate's dNSName equals the server address,
  which is why ``pki gateway`` writes addresses as dNSName too. Windows knows only groups 14,
  19 and 20 here (``Group14``, ``ECP256``, ``ECP384``).
- :func:`pyipsec_toml` — a pyipsec client config: one connection to the gateway with EAP-
  MSCHAPv2, ``remote.auth = "pubkey"`` against the CA, a virtual IPv4 address requested with
  ``vips = ["0.0.0.0"]``, a child tunnelling everything (``0.0.0.0/0``, ``::/0``) and the EAP
  secret — inline when a password is given, else as a ``secret_file`` to create next to it.

The suite defaults to AES-256-GCM-16, PRF-HMAC-SHA2-256 and ECP-256 (group 19), which every
one of these clients implements and pyipsec's default IKE and ESP proposals accept.
"""

from __future__ import annotations

import base64
import json
import plistlib
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pyipsec.pki.errors import ProfileError
from pyipsec.pki.info import fingerprint
from pyipsec.pki.names import GatewayName, file_stem, parse_gateway_name

__all__ = [
    "KE_GROUPS",
    "ClientSuite",
    "Profile",
    "ProfileFormat",
    "ProfileSpec",
    "apple_mobileconfig",
    "build_profile",
    "pyipsec_toml",
    "strongswan_sswan",
    "validate_username",
    "windows_powershell",
]


class ProfileFormat(StrEnum):
    APPLE = "apple"
    SSWAN = "sswan"
    WINDOWS = "windows"
    PYIPSEC = "pyipsec"

    @property
    def suffix(self) -> str:
        return _SUFFIXES[self]


_SUFFIXES: Final = {
    ProfileFormat.APPLE: ".mobileconfig",
    ProfileFormat.SSWAN: ".sswan",
    ProfileFormat.WINDOWS: ".ps1",
    ProfileFormat.PYIPSEC: ".toml",
}

# group -> (strongSwan keyword, Windows -DHGroup value or None)
_GROUPS: Final[dict[int, tuple[str, str | None]]] = {
    14: ("modp2048", "Group14"),
    19: ("ecp256", "ECP256"),
    20: ("ecp384", "ECP384"),
    21: ("ecp521", None),
}
KE_GROUPS: Final = tuple(_GROUPS)
"""Key exchange groups a profile may name (RFC 3526 MODP-2048, RFC 5903 ECP-256/384/521)."""


@dataclass(frozen=True, slots=True)
class ClientSuite:
    """The algorithms written into client profiles: AES-256-GCM-16 for IKE and ESP, PRF
    HMAC-SHA2-256, and ``ke_group`` for the IKE key exchange (no PFS for Child SAs)."""

    ke_group: int = 19

    def __post_init__(self) -> None:
        if self.ke_group not in _GROUPS:
            raise ProfileError(
                f"key exchange group {self.ke_group} is not offered in profiles (choose from "
                f"{', '.join(map(str, KE_GROUPS))})"
            )

    @property
    def ike_proposal(self) -> str:
        """The IKE proposal in strongSwan's keywords, e.g. ``aes256gcm16-prfsha256-ecp256``."""
        return f"aes256gcm16-prfsha256-{_GROUPS[self.ke_group][0]}"

    @property
    def esp_proposal(self) -> str:
        return "aes256gcm16"


_USERNAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]{0,252}")


def validate_username(name: str) -> str:
    """``name`` if it is usable as an EAP identity in every client, else :class:`ProfileError`.

    Letters, digits and ``. _ @ + -`` only, not starting with a punctuation mark and not an IP
    address (pyipsec and strongSwan would read that as an address identity).
    """
    if not _USERNAME.fullmatch(name) or re.fullmatch(r"[\d.]+", name):
        raise ProfileError(
            f"bad user name {name!r}: use 1-253 letters, digits and . _ @ + - "
            "(starting with a letter, digit or _, and not an IP address)"
        )
    return name


def _check_text(value: str, what: str, *, secret: bool = False) -> str:
    if not value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        shown = "" if secret else f" {value!r}"
        raise ProfileError(f"bad {what}{shown}: empty or containing control characters")
    return value


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """What a client needs to reach the gateway as ``username``.

    ``gateway`` is the address the client connects to; ``remote_id`` the gateway's IKE
    identity (default: ``gateway``), which its certificate must carry in subjectAltName.
    ``password`` is written only into formats that can hold it. ``gateway_certificate``, if
    known, is checked against ``remote_id`` and the CA and refines the Apple profile.
    """

    username: str
    gateway: str
    ca_certificate: x509.Certificate
    remote_id: str | None = None
    display_name: str | None = None
    password: str | None = field(default=None, repr=False)
    gateway_certificate: x509.Certificate | None = None
    suite: ClientSuite = field(default_factory=ClientSuite)

    def __post_init__(self) -> None:
        validate_username(self.username)
        parse_gateway_name(self.gateway)
        if self.remote_id is not None:
            parse_gateway_name(self.remote_id)
        if self.display_name is not None:
            _check_text(self.display_name, "profile name")
        if self.password is not None:
            _check_text(self.password, "password", secret=True)
        if self.gateway_certificate is not None:
            _check_gateway_certificate(self)

    @property
    def server(self) -> GatewayName:
        """The gateway address, canonicalised."""
        return parse_gateway_name(self.gateway)

    @property
    def server_id(self) -> GatewayName:
        """The gateway's IKE identity, canonicalised."""
        return parse_gateway_name(self.remote_id) if self.remote_id is not None else self.server

    @property
    def name(self) -> str:
        """The connection's display name."""
        return self.display_name if self.display_name is not None else self.server.text

    @property
    def ca_common_name(self) -> str:
        names = self.ca_certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names:
            raise ProfileError("the CA certificate has no common name, which Apple clients need")
        value = names[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")

    def uuid(self, part: str) -> str:
        """A stable UUID for this gateway, user and ``part`` of the profile."""
        return str(uuid.uuid5(_UUID_NAMESPACE, f"{self.server.text}\0{self.username}\0{part}")).upper()


_UUID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_DNS, "profiles.pyipsec.invalid")


def _san_values(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    values += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return list(dict.fromkeys(values))


def _check_gateway_certificate(spec: ProfileSpec) -> None:
    cert = spec.gateway_certificate
    assert cert is not None
    if cert.issuer != spec.ca_certificate.subject:
        raise ProfileError(
            f"the gateway certificate was issued by {cert.issuer.rfc4514_string()!r}, not by the CA "
            f"{spec.ca_certificate.subject.rfc4514_string()!r}"
        )
    names = _san_values(cert)
    for what, name in (("gateway identity", spec.server_id), ("gateway address", spec.server)):
        if name.text.lower() not in names:
            raise ProfileError(
                f"the gateway certificate does not name the {what} {name.text!r} in its subjectAltName "
                f"(it has: {', '.join(names) or 'none'}); clients would reject it"
            )


@dataclass(frozen=True, slots=True)
class Profile:
    """A rendered profile: ``content`` to write to a file ending in ``format.suffix``;
    ``contains_secret`` says whether it holds the password (then write it with mode 0600)."""

    format: ProfileFormat
    content: bytes = field(repr=False)
    contains_secret: bool


# --- Apple ---------------------------------------------------------------------------------

_APPLE_CERT_TYPES: Final = {256: "ECDSA256", 384: "ECDSA384", 521: "ECDSA521"}


def _apple_certificate_type(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size in _APPLE_CERT_TYPES:
        return _APPLE_CERT_TYPES[key.curve.key_size]
    raise ProfileError(f"Apple clients cannot use a gateway certificate with a {type(key).__name__} key")


def _reverse_dns(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text).strip(".-") or "x"


def apple_mobileconfig(spec: ProfileSpec) -> bytes:
    """The ``.mobileconfig`` (XML plist) for iOS, iPadOS and macOS."""
    suite = spec.suite
    base = f"org.pyipsec.vpn.{_reverse_dns(spec.server.text)}.{_reverse_dns(spec.username)}"
    sa_parameters = {
        "EncryptionAlgorithm": "AES-256-GCM",
        "IntegrityAlgorithm": "SHA2-256",
        "DiffieHellmanGroup": suite.ke_group,
    }
    ikev2: dict[str, object] = {
        "RemoteAddress": spec.server.text,
        "RemoteIdentifier": spec.server_id.text,
        "LocalIdentifier": spec.username,
        "AuthenticationMethod": "Certificate",
        "ExtendedAuthEnabled": 1,
        "AuthName": spec.username,
        "ServerCertificateIssuerCommonName": spec.ca_common_name,
        "EnablePFS": 0,
        "DeadPeerDetectionRate": "Medium",
        "DisableMOBIKE": 0,
        "DisableRedirect": 0,
        "EnableCertificateRevocationCheck": 0,
        "UseConfigurationAttributeInternalIPSubnet": 0,
        "IKESecurityAssociationParameters": dict(sa_parameters),
        "ChildSecurityAssociationParameters": dict(sa_parameters),
    }
    if spec.password is not None:
        ikev2["AuthPassword"] = spec.password
    if spec.gateway_certificate is not None:
        ikev2["CertificateType"] = _apple_certificate_type(spec.gateway_certificate)
        cns = spec.gateway_certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if cns and isinstance(cns[0].value, str):
            ikev2["ServerCertificateCommonName"] = cns[0].value
    ca_payload = {
        "PayloadType": "com.apple.security.root",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base}.ca",
        "PayloadUUID": spec.uuid("apple-ca"),
        "PayloadDisplayName": spec.ca_common_name,
        "PayloadCertificateFileName": f"{file_stem(spec.ca_common_name)}.cer",
        "PayloadContent": spec.ca_certificate.public_bytes(serialization.Encoding.DER),
    }
    vpn_payload = {
        "PayloadType": "com.apple.vpn.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base}.vpn",
        "PayloadUUID": spec.uuid("apple-vpn"),
        "PayloadDisplayName": spec.name,
        "UserDefinedName": spec.name,
        "VPNType": "IKEv2",
        "IKEv2": ikev2,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": base,
        "PayloadUUID": spec.uuid("apple-profile"),
        "PayloadDisplayName": spec.name,
        "PayloadDescription": f"IKEv2 VPN to {spec.server.text} for {spec.username} (pyipsec)",
        "PayloadContent": [ca_payload, vpn_payload],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


# --- strongSwan for Android ----------------------------------------------------------------


def strongswan_sswan(spec: ProfileSpec) -> str:
    """The ``.sswan`` JSON profile for the strongSwan VPN Client for Android."""
    if spec.password is not None:
        raise ProfileError("the strongSwan app's .sswan format cannot hold a password; the app asks for it")
    profile = {
        "uuid": spec.uuid("sswan").lower(),
        "name": spec.name,
        "type": "ikev2-eap",
        "remote": {
            "addr": spec.server.text,
            "id": spec.server_id.text,
            "cert": base64.b64encode(spec.ca_certificate.public_bytes(serialization.Encoding.DER)).decode(),
        },
        "local": {"eap_id": spec.username},
        "ike-proposal": spec.suite.ike_proposal,
        "esp-proposal": spec.suite.esp_proposal,
    }
    return json.dumps(profile, indent=2, ensure_ascii=False) + "\n"


# --- Windows -------------------------------------------------------------------------------


def _ps(value: str) -> str:
    """A PowerShell single-quoted string literal: every kind of single quote PowerShell
    recognises (', U+2018, U+2019, U+201A, U+201B) is doubled."""
    for quote in "'\u2018\u2019\u201a\u201b":
        value = value.replace(quote, quote * 2)
    return f"'{value}'"


def windows_powershell(spec: ProfileSpec) -> str:
    """A PowerShell script that installs the CA and the IKEv2 connection on Windows 10/11."""
    if spec.password is not None:
        raise ProfileError("the Windows script does not store passwords; Windows asks on first connect")
    dh_group = _GROUPS[spec.suite.ke_group][1]
    if dh_group is None:
        raise ProfileError(
            f"Windows clients cannot use key exchange group {spec.suite.ke_group}; use 14, 19 or 20"
        )
    pem = spec.ca_certificate.public_bytes(serialization.Encoding.PEM).decode().strip()
    ca_file = f"pyipsec-ca-{fingerprint(spec.ca_certificate).replace(':', '')[:16].lower()}.cer"
    lines = [
        f"# pyipsec: IKEv2 VPN connection {spec.name!r} to {spec.server.text} for user {spec.username}",
        "# Run in an elevated PowerShell:  powershell -ExecutionPolicy Bypass -File <this file>",
        f"# Then connect from the network menu and sign in as {spec.username}.",
        "#Requires -RunAsAdministrator",
        "$ErrorActionPreference = 'Stop'",
        "",
        f"$Name = {_ps(spec.name)}",
        f"$Server = {_ps(spec.server.text)}",
        "",
        f"# The CA of the gateway certificate ({spec.ca_common_name}), into the machine's trusted roots.",
        "$CaPem = @'",
        *pem.splitlines(),
        "'@",
        f"$CaFile = Join-Path ([System.IO.Path]::GetTempPath()) {_ps(ca_file)}",
        "Set-Content -LiteralPath $CaFile -Value $CaPem -Encoding Ascii",
        "try {",
        "    Import-Certificate -FilePath $CaFile -CertStoreLocation 'Cert:\\LocalMachine\\Root' | Out-Null",
        "} finally {",
        "    Remove-Item -LiteralPath $CaFile -Force",
        "}",
        "",
        "if (Get-VpnConnection -Name $Name -AllUserConnection -ErrorAction SilentlyContinue) {",
        "    Remove-VpnConnection -Name $Name -AllUserConnection -Force",
        "}",
        "# EAP without an EAP XML profile: EAP-MSCHAPv2 (secured password).",
        "Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType Ikev2 -AuthenticationMethod Eap `",
        "    -EncryptionLevel Required -RememberCredential -AllUserConnection -Force",
        f"# IKE: {spec.suite.ike_proposal}; ESP: {spec.suite.esp_proposal} without PFS.",
        "Set-VpnConnectionIPsecConfiguration -ConnectionName $Name -AllUserConnection `",
        f"    -EncryptionMethod GCMAES256 -IntegrityCheckMethod SHA256 -DHGroup {dh_group} `",
        "    -CipherTransformConstants GCMAES256 -AuthenticationTransformConstants GCMAES256 `",
        "    -PfsGroup None -Force",
        "Write-Host \"VPN connection '$Name' to $Server installed.\"",
    ]
    return "\r\n".join(lines) + "\r\n"


# --- pyipsec -------------------------------------------------------------------------------


def _toml_str(value: str) -> str:
    """A TOML basic string (TOML 1.0 §String: escapes for quote, backslash and controls)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def _bare(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text).strip("-") or "x"


def pyipsec_toml(spec: ProfileSpec, *, ca_path: str, secret_file: str | None = None) -> str:
    """A pyipsec client config (``pyipsec daemon`` / ``pyipsec check``) for ``spec``.

    ``ca_path`` is written as ``remote.cacerts`` (relative paths are relative to the config
    file). The EAP password is inline if ``spec.password`` is set, else read from
    ``secret_file``, which must then be given.
    """
    if spec.password is None and secret_file is None:
        raise ProfileError("a pyipsec profile needs the password or a secret file to read it from")
    conn = _bare(spec.server.text)
    prefix = f"connections.{conn}"
    lines = [
        f"# pyipsec client profile: user {spec.username} on gateway {spec.server.text}.",
        "# Written by `pyipsec user export`; check it with `pyipsec check FILE`, start it with",
        f"# `pyipsec daemon FILE` and `pyipsec up {conn}`.",
        "",
        f"[{prefix}]",
        f"remote_addrs = {_toml_list([spec.server.text])}",
        'vips = ["0.0.0.0"]            # ask the gateway for a virtual IPv4 address',
        'proposals = ["default"]',
        'dpd_delay = "30s"',
        "",
        f"  [{prefix}.local]",
        '  auth = "eap-mschapv2"',
        f"  eap_id = {_toml_str(spec.username)}",
        "",
        f"  [{prefix}.remote]",
        '  auth = "pubkey"',
        f"  id = {_toml_str(spec.server_id.text)}",
        f"  cacerts = {_toml_list([ca_path])}",
        "",
        f"  [{prefix}.children.{conn}]",
        '  local_ts = ["dynamic"]',
        '  remote_ts = ["0.0.0.0/0", "::/0"]',
        '  esp_proposals = ["default"]',
        '  dpd_action = "restart"',
        "",
        f"[secrets.eap-{_bare(spec.username)}]",
        f"id = {_toml_str(spec.username)}",
    ]
    if spec.password is not None:
        lines.append(f"secret = {_toml_str(spec.password)}")
    else:
        assert secret_file is not None
        lines.append(
            f"secret_file = {_toml_str(secret_file)}   # holds {spec.username}'s password; chmod 600"
        )
    return "\n".join(lines) + "\n"


def build_profile(
    fmt: ProfileFormat | str,
    spec: ProfileSpec,
    *,
    ca_path: str | None = None,
    secret_file: str | None = None,
) -> Profile:
    """Render ``spec`` in format ``fmt``; ``ca_path`` and ``secret_file`` are for ``pyipsec``."""
    try:
        kind = ProfileFormat(fmt)
    except ValueError:
        known = ", ".join(f.value for f in ProfileFormat)
        raise ProfileError(f"unknown profile format {fmt!r} (known: {known})") from None
    if kind == ProfileFormat.APPLE:
        return Profile(kind, apple_mobileconfig(spec), spec.password is not None)
    if kind == ProfileFormat.SSWAN:
        return Profile(kind, strongswan_sswan(spec).encode(), False)
    if kind == ProfileFormat.WINDOWS:
        script = windows_powershell(spec)
        data = script.encode("utf-8") if script.isascii() else b"\xef\xbb\xbf" + script.encode("utf-8")
        return Profile(kind, data, False)
    if ca_path is None:
        raise ProfileError("a pyipsec profile needs the path of the CA certificate")
    text = pyipsec_toml(spec, ca_path=ca_path, secret_file=secret_file)
    return Profile(kind, text.encode("utf-8"), spec.password is not None)
