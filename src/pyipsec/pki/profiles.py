"""Client profiles for the built-in IKEv2 clients: Apple, strongSwan for Android, Windows, pyipsec.

Theory of operation
-------------------
One :class:`ProfileSpec` — user name, gateway address, the gateway's IKE identity, the CA
certificate, the :class:`ClientSuite` of algorithms and the :class:`ClientAuth` kind with, for
the certificate kinds, the client's :class:`ClientIdentity` — is rendered into four formats,
each a pure function of the spec (UUIDs are derived from gateway and user with UUIDv5, so
exporting again yields a profile that *replaces* the installed one instead of adding a second).

The client authenticates in one of three ways (:class:`ClientAuth`); the gateway always signs
with its certificate:

- ``eap-mschapv2`` — user name and password inside EAP (RFC 7296 §2.16);
- ``eap-tls`` — the client's certificate inside EAP (RFC 5216, RFC 9190), carried to the
  device as a PKCS#12 bundle (key, certificate, CA) protected by a password;
- ``pubkey+eap`` — two rounds (RFC 4739, swanctl's ``local-1``/``local-2``): the device signs
  with its (machine) certificate, then the user logs in with EAP-MSCHAPv2.

Not every client can do every kind; a format that cannot express the kind raises
:class:`ProfileError` naming the reason, never writes something else:

=================  ==============  =================  ==================================
format             eap-mschapv2    eap-tls            pubkey+eap
=================  ==============  =================  ==================================
apple              yes             yes                no (EAP-only with extended auth)
sswan              ``ikev2-eap``   ``ikev2-eap-tls``  ``ikev2-cert-eap``
windows            yes             yes                no (machine cert *or* EAP)
pyipsec            yes             yes                ``local-1`` / ``local-2``
=================  ==============  =================  ==================================

- :func:`apple_mobileconfig` — a configuration profile (a plist) with the CA as
  ``com.apple.security.root`` and a ``com.apple.vpn.managed`` payload of ``VPNType`` IKEv2.
  ``AuthenticationMethod`` Certificate with ``ExtendedAuthEnabled`` 1 means "the server signs
  with a certificate, the client logs in with EAP" (Apple's key reference: with extended
  authentication the client does EAP only, and ``PayloadCertificateUUID`` then names the
  identity used "for EAP-TLS authentication"). For EAP-MSCHAPv2 ``AuthName`` is the EAP user
  and ``AuthPassword`` is written only when asked for. For EAP-TLS a third payload,
  ``com.apple.security.pkcs12``, holds the client's PKCS#12 (legacy 3DES: the only encryption
  Apple imports) with its ``Password`` only when asked for (else the device prompts at
  install), and ``PayloadCertificateUUID`` points at it. Apple's client has no second
  authentication round, so ``pubkey+eap`` is refused. The server certificate must chain to
  ``ServerCertificateIssuerCommonName`` and carry ``RemoteIdentifier`` in its subjectAltName;
  naming the issuer also makes the client send a CERTREQ (the gateway should still set
  ``send_cert = "always"``). ``IKESecurityAssociationParameters`` /
  ``ChildSecurityAssociationParameters`` hold one proposal each (Apple's strings
  ``AES-256-GCM``, ``SHA2-256`` — the PRF for an AEAD cipher — and the group number); PFS
  stays off because pyipsec's default ESP proposals carry no key exchange. With
  ``gateway_certificate`` given, ``ServerCertificateCommonName`` and ``CertificateType`` (RSA,
  ECDSA256, ECDSA384) are set from it.
- :func:`strongswan_sswan` — the strongSwan Android app's JSON profile: ``type``
  ``ikev2-eap``, ``ikev2-eap-tls`` or ``ikev2-cert-eap``; ``remote.addr``/``remote.id``/
  ``remote.cert`` (the CA, base64 DER); ``local.eap_id`` for the EAP user, ``local.p12`` (the
  PKCS#12, base64) and ``local.id`` (the identity in the client certificate) for the
  certificate kinds; ``ike-proposal``/``esp-proposal`` in strongSwan's keywords. The format has
  no password fields: the app asks for the EAP password on first connect and for the PKCS#12
  password on import.
- :func:`windows_powershell` — a script for an elevated PowerShell: it imports the CA into
  ``Cert:\\LocalMachine\\Root``, (re)creates the connection with ``Add-VpnConnection
  -TunnelType Ikev2 -AuthenticationMethod Eap`` and sets the algorithms with
  ``Set-VpnConnectionIPsecConfiguration`` (``-EncryptionMethod GCMAES256 -IntegrityCheckMethod
  SHA256 -DHGroup ECP256`` for IKE, ``-CipherTransformConstants GCMAES256
  -AuthenticationTransformConstants GCMAES256`` for ESP, ``-PfsGroup None``). Without an EAP
  XML Windows uses EAP-MSCHAPv2 ("secured password"); for EAP-TLS the script imports the
  PKCS#12 into ``Cert:\\CurrentUser\\My`` with ``Import-PfxCertificate`` (asking for its
  password with ``Read-Host -AsSecureString``; the script never holds it) and passes
  ``New-EapConfiguration -Tls -UserCertificate`` as ``-EapConfigXmlStream``. Windows'
  built-in client authenticates with a machine certificate *or* with EAP, never both
  (``MachineCertificate`` is certificate-only; the VPNv2 CSP's ``NativeProfile/Authentication``
  holds a ``UserMethod`` or a ``MachineMethod``, not both), so ``pubkey+eap`` is refused.
  Windows has no remote-identity setting: it checks that the certificate's dNSName equals
  the server address, which is why ``pki gateway`` writes addresses as dNSName too. Windows
  knows only groups 14, 19 and 20 here (``Group14``, ``ECP256``, ``ECP384``).
- :func:`pyipsec_toml` — a pyipsec client config: one connection to the gateway with
  ``remote.auth = "pubkey"`` against the CA, a virtual IPv4 address requested with
  ``vips = ["0.0.0.0"]`` and a child tunnelling everything (``0.0.0.0/0``, ``::/0``). The
  client round is ``local`` with ``auth = "eap-mschapv2"`` (plus the EAP secret — inline when
  a password is given, else as a ``secret_file`` to create next to it) or ``auth = "eap-tls"``
  with ``certs`` and a ``[secrets.private-*]`` key file; for ``pubkey+eap`` it is two rounds
  named as swanctl names them, ``local-1`` (``pubkey``) and ``local-2`` (``eap-mschapv2``).

The suite defaults to AES-256-GCM-16, PRF-HMAC-SHA2-256 and ECP-256 (group 19), which every
one of these clients implements and pyipsec's default IKE and ESP proposals accept.
:func:`client_auths_for_connection` reads the kinds a gateway connection accepts from its raw
TOML table (``remote.auth``, or the rounds ``remote-1``, ``remote-2``).
"""

from __future__ import annotations

import base64
import json
import plistlib
import re
import uuid
from collections.abc import Mapping
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
    "ClientAuth",
    "ClientIdentity",
    "ClientSuite",
    "Profile",
    "ProfileFormat",
    "ProfileSpec",
    "apple_mobileconfig",
    "build_profile",
    "check_supported",
    "client_auths_for_connection",
    "client_names",
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


class ClientAuth(StrEnum):
    """How the client authenticates (the gateway always signs with its certificate)."""

    EAP_MSCHAPV2 = "eap-mschapv2"
    """User name and password inside EAP."""
    EAP_TLS = "eap-tls"
    """The client certificate inside EAP (RFC 5216/9190)."""
    PUBKEY_EAP = "pubkey+eap"
    """Two rounds (RFC 4739): the (machine) certificate signs, then EAP-MSCHAPv2 for the user."""

    @property
    def uses_certificate(self) -> bool:
        return self != ClientAuth.EAP_MSCHAPV2

    @property
    def uses_password(self) -> bool:
        return self != ClientAuth.EAP_TLS


_UNSUPPORTED: Final = {
    (ProfileFormat.APPLE, ClientAuth.PUBKEY_EAP): (
        "Apple's IKEv2 client cannot authenticate twice (RFC 4739): with extended authentication "
        "it does EAP only and uses its certificate for EAP-TLS; give Apple devices an eap-tls or "
        "eap-mschapv2 connection"
    ),
    (ProfileFormat.WINDOWS, ClientAuth.PUBKEY_EAP): (
        "the Windows IKEv2 client authenticates with a machine certificate or with EAP, not both "
        "(no RFC 4739 second round; -AuthenticationMethod MachineCertificate is certificate-only); "
        "give Windows devices an eap-tls or eap-mschapv2 connection"
    ),
}


def check_supported(fmt: ProfileFormat, auth: ClientAuth) -> None:
    """Raise :class:`ProfileError` saying why if format ``fmt`` cannot express ``auth``."""
    reason = _UNSUPPORTED.get((ProfileFormat(fmt), ClientAuth(auth)))
    if reason is not None:
        raise ProfileError(reason)


_GATEWAY_PUBKEY: Final = frozenset({"pubkey", "rsa", "ecdsa"})
_GATEWAY_EAP_PASSWORD: Final = frozenset({"eap-mschapv2"})
_GATEWAY_EAP_ANY: Final = frozenset({"eap", "eap-radius"})
"""EAP whose method someone else picks: the client's answer to the gateway's proposal
(``eap``), or the RADIUS server (``eap-radius``)."""


def _round_auth(connection: Mapping[str, object], key: str) -> str:
    section = connection.get(key)
    auth = section.get("auth") if isinstance(section, Mapping) else None
    if not isinstance(auth, str):
        raise ProfileError(f"the connection's {key} section has no auth method")
    return auth.strip().lower()


def _remote_rounds(connection: Mapping[str, object]) -> list[str]:
    """The ``auth`` of each ``remote``/``remote-N`` round, in swanctl's order (by suffix)."""
    numbered = sorted(
        (int(key[len("remote-") :]), key)
        for key in connection
        if key.startswith("remote-") and key[len("remote-") :].isdigit()
    )
    keys = (["remote"] if "remote" in connection else []) + [key for _, key in numbered]
    if not keys:
        raise ProfileError("the connection has no remote section (remote.auth says how clients log in)")
    return [_round_auth(connection, key) for key in keys]


def client_auths_for_connection(connection: Mapping[str, object]) -> tuple[ClientAuth, ...]:
    """The client authentications a gateway connection (its raw TOML table) accepts, the
    likeliest first.

    One remote round: ``eap-tls`` accepts EAP-TLS; ``eap-mschapv2`` EAP-MSCHAPv2; ``eap`` and
    ``eap-radius`` leave the method to the client or the RADIUS server, so both (EAP-MSCHAPV2
    first). Two rounds, a certificate then password-based EAP, accept
    :attr:`ClientAuth.PUBKEY_EAP`. Anything else (``psk``, a certificate only) has no user
    profile and raises :class:`ProfileError`.
    """
    rounds = _remote_rounds(connection)
    if rounds == ["eap-tls"]:
        return (ClientAuth.EAP_TLS,)
    if len(rounds) == 1 and rounds[0] in _GATEWAY_EAP_PASSWORD:
        return (ClientAuth.EAP_MSCHAPV2,)
    if len(rounds) == 1 and rounds[0] in _GATEWAY_EAP_ANY:
        return (ClientAuth.EAP_MSCHAPV2, ClientAuth.EAP_TLS)
    second = _GATEWAY_EAP_PASSWORD | _GATEWAY_EAP_ANY
    if len(rounds) == 2 and rounds[0] in _GATEWAY_PUBKEY and rounds[1] in second:
        return (ClientAuth.PUBKEY_EAP,)
    raise ProfileError(
        f"the connection authenticates clients with {' then '.join(rounds)}; user profiles cover "
        "eap-mschapv2, eap-tls and pubkey then eap-mschapv2"
    )


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


def client_names(cert: x509.Certificate) -> list[str]:
    """The identities a client certificate carries: its rfc822Name and dNSName entries."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.RFC822Name), *san.get_values_for_type(x509.DNSName)]


def _same_identity(a: str, b: str) -> bool:
    """E-mail local parts compare exactly, domains and DNS names case-insensitively."""
    local_a, _, domain_a = a.rpartition("@")
    local_b, _, domain_b = b.rpartition("@")
    return local_a == local_b and domain_a.lower() == domain_b.lower()


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """The client certificate for ``eap-tls`` and ``pubkey+eap``, and the same certificate with
    its key and the CA as a PKCS#12 bundle for the devices (all formats but ``pyipsec``, which
    names the PEM files instead).

    ``pkcs12_password`` is set only to embed the bundle's password in a format that can hold
    it (Apple); otherwise the device asks for it at import.
    """

    certificate: x509.Certificate
    pkcs12: bytes | None = field(default=None, repr=False)
    pkcs12_password: str | None = field(default=None, repr=False)

    @property
    def bundle(self) -> bytes:
        """The PKCS#12 bundle, which every device format needs."""
        if self.pkcs12 is None:
            raise ProfileError("this profile format carries the client certificate as a PKCS#12 bundle")
        return self.pkcs12

    @property
    def name(self) -> str:
        """The certificate's first identity (rfc822Name, else dNSName)."""
        names = client_names(self.certificate)
        if not names:
            raise ProfileError("the client certificate has no e-mail or DNS name in its subjectAltName")
        return names[0]


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """What a client needs to reach the gateway as ``username``.

    ``gateway`` is the address the client connects to; ``remote_id`` the gateway's IKE
    identity (default: ``gateway``), which its certificate must carry in subjectAltName.
    ``password`` (the EAP password) is written only into formats that can hold it.
    ``gateway_certificate``, if known, is checked against ``remote_id`` and the CA and refines
    the Apple profile. ``auth`` is how the client logs in; the certificate kinds need
    ``identity``, issued by the CA, whose subjectAltName names ``username`` for EAP-TLS (for
    ``pubkey+eap`` it is the machine's certificate and may name the machine instead).
    """

    username: str
    gateway: str
    ca_certificate: x509.Certificate
    remote_id: str | None = None
    display_name: str | None = None
    password: str | None = field(default=None, repr=False)
    gateway_certificate: x509.Certificate | None = None
    suite: ClientSuite = field(default_factory=ClientSuite)
    auth: ClientAuth = ClientAuth.EAP_MSCHAPV2
    identity: ClientIdentity | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "auth", ClientAuth(self.auth))
        except ValueError:
            known = ", ".join(a.value for a in ClientAuth)
            raise ProfileError(f"unknown client authentication {self.auth!r} (known: {known})") from None
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
        _check_identity(self)

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


def _check_identity(spec: ProfileSpec) -> None:
    auth = spec.auth
    if spec.password is not None and not auth.uses_password:
        raise ProfileError(f"{auth.value} has no EAP password to store")
    identity = spec.identity
    if identity is None:
        if auth.uses_certificate:
            raise ProfileError(f"{auth.value} needs the client certificate and its PKCS#12 bundle")
        return
    if not auth.uses_certificate:
        raise ProfileError(f"{auth.value} uses no client certificate")
    if identity.pkcs12_password is not None:
        _check_text(identity.pkcs12_password, "PKCS#12 password", secret=True)
    cert = identity.certificate
    if cert.issuer != spec.ca_certificate.subject:
        raise ProfileError(
            f"the client certificate was issued by {cert.issuer.rfc4514_string()!r}, not by the CA "
            f"{spec.ca_certificate.subject.rfc4514_string()!r}"
        )
    names = client_names(cert)
    if auth == ClientAuth.EAP_TLS and not any(_same_identity(spec.username, n) for n in names):
        raise ProfileError(
            f"the client certificate does not name the user {spec.username!r} in its subjectAltName "
            f"(it has: {', '.join(names) or 'none'}); the EAP-TLS identity must match it"
        )
    if not names:
        raise ProfileError("the client certificate has no e-mail or DNS name in its subjectAltName")


@dataclass(frozen=True, slots=True)
class Profile:
    """A rendered profile: ``content`` to write to a file ending in ``format.suffix``;
    ``contains_secret`` says whether it holds a password or a private key, even an encrypted
    one (then write it with mode 0600)."""

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


def _apple_identity_payload(spec: ProfileSpec, identity: ClientIdentity, base: str) -> dict[str, object]:
    """The ``com.apple.security.pkcs12`` payload with the client's PKCS#12 bundle."""
    payload: dict[str, object] = {
        "PayloadType": "com.apple.security.pkcs12",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{base}.identity",
        "PayloadUUID": spec.uuid("apple-identity"),
        "PayloadDisplayName": identity.name,
        "PayloadCertificateFileName": f"{file_stem(identity.name)}.p12",
        "PayloadContent": identity.bundle,
    }
    if identity.pkcs12_password is not None:
        payload["Password"] = identity.pkcs12_password
    return payload


def apple_mobileconfig(spec: ProfileSpec) -> bytes:
    """The ``.mobileconfig`` (XML plist) for iOS, iPadOS and macOS."""
    check_supported(ProfileFormat.APPLE, spec.auth)
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
    if spec.identity is not None:  # EAP-TLS: the identity below answers the server's EAP-TLS
        ikev2["PayloadCertificateUUID"] = spec.uuid("apple-identity")
    else:
        ikev2["AuthName"] = spec.username
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
    if spec.identity is not None:
        profile["PayloadContent"] = [
            ca_payload,
            _apple_identity_payload(spec, spec.identity, base),
            vpn_payload,
        ]
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


# --- strongSwan for Android ----------------------------------------------------------------


_SSWAN_TYPES: Final = {
    ClientAuth.EAP_MSCHAPV2: "ikev2-eap",
    ClientAuth.EAP_TLS: "ikev2-eap-tls",
    ClientAuth.PUBKEY_EAP: "ikev2-cert-eap",
}


def strongswan_sswan(spec: ProfileSpec) -> str:
    """The ``.sswan`` JSON profile for the strongSwan VPN Client for Android."""
    if spec.password is not None:
        raise ProfileError("the strongSwan app's .sswan format cannot hold a password; the app asks for it")
    local: dict[str, str] = {}
    if spec.identity is not None:
        if spec.identity.pkcs12_password is not None:
            raise ProfileError(
                "the strongSwan app's .sswan format cannot hold the PKCS#12 password; the app asks for it"
            )
        local["id"] = spec.identity.name if spec.auth == ClientAuth.PUBKEY_EAP else spec.username
        local["p12"] = base64.b64encode(spec.identity.bundle).decode()
    if spec.auth.uses_password:
        local["eap_id"] = spec.username
    profile = {
        "uuid": spec.uuid("sswan").lower(),
        "name": spec.name,
        "type": _SSWAN_TYPES[spec.auth],
        "remote": {
            "addr": spec.server.text,
            "id": spec.server_id.text,
            "cert": base64.b64encode(spec.ca_certificate.public_bytes(serialization.Encoding.DER)).decode(),
        },
        "local": local,
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


def _windows_ca_lines(spec: ProfileSpec) -> list[str]:
    """Import the CA into the machine's trusted roots (through a temporary file)."""
    pem = spec.ca_certificate.public_bytes(serialization.Encoding.PEM).decode().strip()
    ca_file = f"pyipsec-ca-{fingerprint(spec.ca_certificate).replace(':', '')[:16].lower()}.cer"
    return [
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
    ]


def _windows_identity_lines(spec: ProfileSpec, identity: ClientIdentity) -> list[str]:
    """Import the PKCS#12 bundle into the user's personal store, asking for its password."""
    encoded = base64.b64encode(identity.bundle).decode()
    p12_file = f"pyipsec-{file_stem(identity.name)}.p12"
    return [
        f"# {identity.name}'s certificate and key (PKCS#12), into the user's personal store for EAP-TLS.",
        "$P12Base64 = @'",
        *(encoded[i : i + 76] for i in range(0, len(encoded), 76)),
        "'@",
        f"$Prompt = {_ps(f'Password of the certificate bundle for {identity.name}')}",
        "$P12Password = Read-Host -AsSecureString -Prompt $Prompt",
        f"$P12File = Join-Path ([System.IO.Path]::GetTempPath()) {_ps(p12_file)}",
        "$P12Bytes = [Convert]::FromBase64String(($P12Base64 -replace '\\s', ''))",
        "[System.IO.File]::WriteAllBytes($P12File, $P12Bytes)",
        "try {",
        "    Import-PfxCertificate -FilePath $P12File -CertStoreLocation 'Cert:\\CurrentUser\\My' `",
        "        -Password $P12Password | Out-Null",
        "} finally {",
        "    Remove-Item -LiteralPath $P12File -Force",
        "}",
        "",
    ]


def _windows_connection_lines(spec: ProfileSpec) -> list[str]:
    """(Re)create the connection with EAP-MSCHAPv2 (no EAP XML) or EAP-TLS (an EAP XML)."""
    remove = [
        "if (Get-VpnConnection -Name $Name -AllUserConnection -ErrorAction SilentlyContinue) {",
        "    Remove-VpnConnection -Name $Name -AllUserConnection -Force",
        "}",
    ]
    add = "Add-VpnConnection -Name $Name -ServerAddress $Server -TunnelType Ikev2 -AuthenticationMethod Eap `"
    remove += [
        "# Windows authenticates with EAP or with a machine certificate, never both in turn (no",
        "# RFC 4739 rounds): a gateway asking for a certificate, then EAP, cannot serve this client.",
    ]
    if spec.auth == ClientAuth.EAP_TLS:
        return [
            *remove,
            "# EAP-TLS with the user certificate imported above. The gateway itself is checked in IKE",
            "# (its certificate against the CA above, its dNSName against the server address).",
            "$Eap = New-EapConfiguration -Tls -UserCertificate",
            add,
            "    -EapConfigXmlStream $Eap.EapConfigXmlStream -EncryptionLevel Required `",
            "    -AllUserConnection -Force",
        ]
    return [
        *remove,
        "# EAP without an EAP XML profile: EAP-MSCHAPv2 (secured password).",
        add,
        "    -EncryptionLevel Required -RememberCredential -AllUserConnection -Force",
    ]


def windows_powershell(spec: ProfileSpec) -> str:
    """A PowerShell script that installs the CA and the IKEv2 connection on Windows 10/11."""
    check_supported(ProfileFormat.WINDOWS, spec.auth)
    if spec.password is not None:
        raise ProfileError("the Windows script does not store passwords; Windows asks on first connect")
    if spec.identity is not None and spec.identity.pkcs12_password is not None:
        raise ProfileError("the Windows script does not store the PKCS#12 password; it asks when run")
    dh_group = _GROUPS[spec.suite.ke_group][1]
    if dh_group is None:
        raise ProfileError(
            f"Windows clients cannot use key exchange group {spec.suite.ke_group}; use 14, 19 or 20"
        )
    if spec.identity is not None:
        identity_lines = _windows_identity_lines(spec, spec.identity)
        then = f"# Then connect from the network menu; Windows offers {spec.identity.name}'s certificate."
    else:
        identity_lines = []
        then = f"# Then connect from the network menu and sign in as {spec.username}."
    lines = [
        f"# pyipsec: IKEv2 VPN connection {spec.name!r} to {spec.server.text} for user {spec.username}",
        "# Run in an elevated PowerShell:  powershell -ExecutionPolicy Bypass -File <this file>",
        then,
        "#Requires -RunAsAdministrator",
        "$ErrorActionPreference = 'Stop'",
        "",
        f"$Name = {_ps(spec.name)}",
        f"$Server = {_ps(spec.server.text)}",
        "",
        *_windows_ca_lines(spec),
        *identity_lines,
        *_windows_connection_lines(spec),
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


def _pyipsec_rounds(spec: ProfileSpec, prefix: str, cert_path: str | None) -> list[str]:
    """The client's authentication round(s): ``local``, or ``local-1``/``local-2`` (RFC 4739)."""
    eap = ['  auth = "eap-mschapv2"', f"  eap_id = {_toml_str(spec.username)}"]
    if spec.identity is None:
        return [f"  [{prefix}.local]", *eap, ""]
    if cert_path is None:
        raise ProfileError("a pyipsec profile with a client certificate needs the certificate's path")
    certs = f"  certs = {_toml_list([cert_path])}"
    if spec.auth == ClientAuth.EAP_TLS:
        return [f"  [{prefix}.local]", '  auth = "eap-tls"', f"  id = {_toml_str(spec.username)}", certs, ""]
    return [
        f"  [{prefix}.local-1]             # first round: the machine certificate (RFC 4739)",
        '  auth = "pubkey"',
        f"  id = {_toml_str(spec.identity.name)}",
        certs,
        "",
        f"  [{prefix}.local-2]             # second round: the user",
        *eap,
        "",
    ]


def _pyipsec_secrets(spec: ProfileSpec, secret_file: str | None, key_path: str | None) -> list[str]:
    """``[secrets.private-*]`` for the certificate's key, ``[secrets.eap-*]`` for the password."""
    lines: list[str] = []
    if spec.identity is not None:
        if key_path is None:
            raise ProfileError("a pyipsec profile with a client certificate needs the private key's path")
        lines += [
            "",
            f"[secrets.private-{_bare(spec.identity.name)}]",
            f"file = {_toml_str(key_path)}   # the certificate's private key; chmod 600",
        ]
    if not spec.auth.uses_password:
        return lines
    if spec.password is None and secret_file is None:
        raise ProfileError("a pyipsec profile needs the password or a secret file to read it from")
    lines += ["", f"[secrets.eap-{_bare(spec.username)}]", f"id = {_toml_str(spec.username)}"]
    if spec.password is not None:
        lines.append(f"secret = {_toml_str(spec.password)}")
    else:
        lines.append(
            f"secret_file = {_toml_str(str(secret_file))}   # holds {spec.username}'s password; chmod 600"
        )
    return lines


def pyipsec_toml(
    spec: ProfileSpec,
    *,
    ca_path: str,
    secret_file: str | None = None,
    cert_path: str | None = None,
    key_path: str | None = None,
) -> str:
    """A pyipsec client config (``pyipsec daemon`` / ``pyipsec check``) for ``spec``.

    ``ca_path`` is written as ``remote.cacerts`` (relative paths are relative to the config
    file). The EAP password is inline if ``spec.password`` is set, else read from
    ``secret_file``, which must then be given. The certificate kinds name the client
    certificate ``cert_path`` and its key file ``key_path``.
    """
    conn = _bare(spec.server.text)
    prefix = f"connections.{conn}"
    secrets = _pyipsec_secrets(spec, secret_file, key_path)
    lines = [
        f"# pyipsec client profile: user {spec.username} on gateway {spec.server.text} ({spec.auth.value}).",
        "# Written by `pyipsec user export`; check it with `pyipsec check FILE`, start it with",
        f"# `pyipsec daemon FILE` and `pyipsec up {conn}`.",
        "",
        f"[{prefix}]",
        f"remote_addrs = {_toml_list([spec.server.text])}",
        'vips = ["0.0.0.0"]            # ask the gateway for a virtual IPv4 address',
        'proposals = ["default"]',
        'dpd_delay = "30s"',
        "",
        *_pyipsec_rounds(spec, prefix, cert_path),
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
        *secrets,
    ]
    return "\n".join(lines) + "\n"


def build_profile(
    fmt: ProfileFormat | str,
    spec: ProfileSpec,
    *,
    ca_path: str | None = None,
    secret_file: str | None = None,
    cert_path: str | None = None,
    key_path: str | None = None,
) -> Profile:
    """Render ``spec`` in format ``fmt``; ``ca_path``, ``secret_file``, ``cert_path`` and
    ``key_path`` are for ``pyipsec`` (see :func:`pyipsec_toml`)."""
    try:
        kind = ProfileFormat(fmt)
    except ValueError:
        known = ", ".join(f.value for f in ProfileFormat)
        raise ProfileError(f"unknown profile format {fmt!r} (known: {known})") from None
    holds_key = spec.identity is not None
    if kind == ProfileFormat.APPLE:
        return Profile(kind, apple_mobileconfig(spec), holds_key or spec.password is not None)
    if kind == ProfileFormat.SSWAN:
        return Profile(kind, strongswan_sswan(spec).encode(), holds_key)
    if kind == ProfileFormat.WINDOWS:
        script = windows_powershell(spec)
        data = script.encode("utf-8") if script.isascii() else b"\xef\xbb\xbf" + script.encode("utf-8")
        return Profile(kind, data, holds_key)
    if ca_path is None:
        raise ProfileError("a pyipsec profile needs the path of the CA certificate")
    text = pyipsec_toml(
        spec, ca_path=ca_path, secret_file=secret_file, cert_path=cert_path, key_path=key_path
    )
    return Profile(kind, text.encode("utf-8"), spec.password is not None)
