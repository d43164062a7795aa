"""The TLS engine under EAP-TLS: pyOpenSSL over memory BIOs, certificate checks, key export.

Theory of operation. :class:`TlsLink` wraps one ``OpenSSL.SSL.Connection`` created without a
socket: the EAP layer writes the other side's TLS flight into its input BIO
(:meth:`TlsLink.feed`), lets OpenSSL advance the handshake, and reads whatever OpenSSL wants to
send from its output BIO. Nothing here blocks or touches the network; OpenSSL draws its own
randomness (the handshake randoms and key shares) from its CSPRNG.

Both roles use TLS 1.2 or 1.3 (minimum 1.2, maximum configurable), no session cache, no
renegotiation, no compression. As a client we also talk to TLS 1.2 servers without the
renegotiation_info extension (RFC 5746; OpenSSL's ``OP_LEGACY_SERVER_CONNECT``): its attack needs
a renegotiation, which is disabled here, and strongSwan's libtls (5.9.8) does not send it.
(``OP_NO_TICKET`` only turns TLS 1.2 tickets off; a TLS 1.3 server still sends OpenSSL's two
NewSessionTickets, which pyOpenSSL gives no way to suppress; clients ignore them.)
Certificates are checked by OpenSSL against the configured CA certificates at the system time
(``VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT`` in both roles: EAP-TLS is mutual authentication,
RFC 5216 §2.1).
A verify callback remembers *why* a certificate failed (the X.509 error of OpenSSL's
verification, or the extra check of the end-entity certificate: the EAP identity on the
server, the expected server name on the peer), so that :class:`TlsFailure` carries a one-line
reason instead of OpenSSL's generic "certificate verify failed". (pyOpenSSL cannot set the
X.509 error of a refusal by the extra check, so the other side then sees the alert "internal
error"; the refusing side's ``reason`` names the cause.) TLS 1.2 uses only ECDHE suites with
AES-GCM or ChaCha20-Poly1305. A TLS alert received from the
other side is reported as ``"TLS alert: <description>"`` (RFC 8446 §6).

Keys (:func:`export_keys`): for TLS 1.2, RFC 5216 §2.3 defines
``Key_Material = TLS-PRF-128(master_secret, "client EAP encryption", client.random ‖
server.random)``, which is exactly the RFC 5705 exporter with that label and no context; for
TLS 1.3, RFC 9190 §2.3 defines ``Key_Material = TLS-Exporter("EXPORTER_EAP_TLS_Key_Material",
0x0D, 128)`` and ``Method-Id = TLS-Exporter("EXPORTER_EAP_TLS_Method-Id", 0x0D, 64)``. MSK is
the first 64 octets of Key_Material, EMSK the next 64; Session-Id is ``0x0D ‖ client.random ‖
server.random`` (TLS 1.2) or ``0x0D ‖ Method-Id`` (TLS 1.3).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

from pyipsec.crypto.x509 import PrivateKey, describe, identity_matches_certificate
from pyipsec.errors import CertificateError, DecodeError
from pyipsec.iana.ikev2 import EapType, IdType
from pyipsec.wire.payloads.ident import dn_text

__all__ = [
    "COMMITMENT_MESSAGE",
    "KEY_MATERIAL_LEN",
    "LABEL_TLS12",
    "LABEL_TLS13",
    "LABEL_TLS13_METHOD_ID",
    "CertificateCheck",
    "EapTlsKeys",
    "TlsFailure",
    "TlsLink",
    "TlsVersion",
    "default_identity_check",
    "export_keys",
    "make_context",
    "parse_certificate",
    "server_name_check",
]

KEY_MATERIAL_LEN = 128
"""MSK (64) ‖ EMSK (64) (RFC 5216 §2.3, RFC 9190 §2.3)."""
LABEL_TLS12 = b"client EAP encryption"
LABEL_TLS13 = b"EXPORTER_EAP_TLS_Key_Material"
LABEL_TLS13_METHOD_ID = b"EXPORTER_EAP_TLS_Method-Id"
COMMITMENT_MESSAGE = b"\x00"
"""RFC 9190 §2.5: the server's one octet of application data that ends the handshake."""

_TYPE_CODE = bytes([EapType.TLS])
# TLS 1.2 suites: ephemeral ECDH with an AEAD only (TLS 1.3 suites are all of that kind).
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!PSK:!aNULL"
_READ_CHUNK = 16384

CertificateCheck = Callable[[x509.Certificate], "str | None"]
"""An extra check of the other side's end-entity certificate: None when fine, else the reason."""


class TlsVersion(Enum):
    """The TLS versions EAP-TLS runs over (RFC 5216: 1.2; RFC 9190: 1.3)."""

    TLS1_2 = "1.2"
    TLS1_3 = "1.3"


_OPENSSL_VERSION = {TlsVersion.TLS1_2: SSL.TLS1_2_VERSION, TlsVersion.TLS1_3: SSL.TLS1_3_VERSION}
_VERSION_NAMES = {"TLSv1.2": TlsVersion.TLS1_2, "TLSv1.3": TlsVersion.TLS1_3}

# OpenSSL's X509_V_ERR_* codes that a peer's certificate typically fails with (x509_vfy.h).
_X509_ERRORS = {
    2: "unable to get issuer certificate",
    4: "unable to decrypt certificate signature",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    13: "invalid notBefore field",
    14: "invalid notAfter field",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate (not issued by a trusted CA)",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    24: "invalid CA certificate",
    25: "path length constraint exceeded",
    26: "unsupported certificate purpose",
    27: "certificate not trusted",
    28: "certificate rejected",
}
_ALERT = re.compile(r"^(?:sslv3|tlsv1|tlsv13|tls) alert (.+)$")  # OpenSSL's texts, 1.1 to 4.0


class TlsFailure(Exception):
    """The TLS conversation failed; ``output`` is what OpenSSL still wants to send (an alert)."""

    def __init__(self, reason: str, output: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output


@dataclass(frozen=True, slots=True)
class EapTlsKeys:
    """What a finished EAP-TLS handshake exports (RFC 5216 §2.3, RFC 9190 §2.3)."""

    msk: bytes = field(repr=False)
    emsk: bytes = field(repr=False)
    session_id: bytes
    tls_version: TlsVersion


def parse_certificate(der: bytes, what: str) -> x509.Certificate:
    """A DER certificate given to a constructor; ValueError when it does not parse."""
    try:
        return x509.load_der_x509_certificate(bytes(der))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} is not a DER X.509 certificate: {exc}") from None


def _dn_forms(name: x509.Name) -> set[str]:
    """A DN as RFC 4514 text (``CN=..,O=..,C=..``), in the reverse order, and as pyipsec and
    strongSwan print an ID_DER_ASN1_DN (``C=.., O=.., CN=..``, :func:`dn_text`), normalised."""
    rdns = [rdn.rfc4514_string() for rdn in name.rdns]
    forms = {",".join(reversed(rdns)), ",".join(rdns)}
    with contextlib.suppress(DecodeError):
        forms.add(dn_text(name.public_bytes()))
    return {_normalise_dn(f) for f in forms}


def _normalise_dn(text: str) -> str:
    return re.sub(r"\s*([,=+])\s*", r"\1", text.strip()).casefold()


def default_identity_check(cert_der: bytes, eap_identity: str) -> str | None:
    """The default binding of the EAP identity to the peer's certificate.

    The identity must be one of the certificate's subjectAltNames — an rfc822Name when it holds
    an ``@``, an iPAddress when it parses as an IP address, else a dNSName (matching as in
    :func:`pyipsec.crypto.x509.identity_matches_certificate`) — or equal the subject DN, written
    as RFC 4514 text in either RDN order or as an IKE ID_DER_ASN1_DN prints
    (``C=XX, O=Org, CN=alice``, so ``str(local_id)`` works), compared case-insensitively
    without spaces around separators. Returns None when bound, else the reason.
    """
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        candidates: list[tuple[IdType, bytes]] = []
        try:
            addr = ipaddress.ip_address(eap_identity)
        except ValueError:
            addr = None
        if addr is not None:
            kind = IdType.ID_IPV4_ADDR if addr.version == 4 else IdType.ID_IPV6_ADDR
            candidates.append((kind, addr.packed))
        elif "@" in eap_identity:
            candidates.append((IdType.ID_RFC822_ADDR, eap_identity.encode("utf-8")))
        elif eap_identity.isascii():
            candidates.append((IdType.ID_FQDN, eap_identity.encode("ascii")))
        if any(identity_matches_certificate(kind, data, cert) for kind, data in candidates):
            return None
        if eap_identity and _normalise_dn(eap_identity) in _dn_forms(cert.subject):
            return None
        return f"EAP identity {eap_identity!r} is not bound to certificate {describe(cert)}"
    except (ValueError, CertificateError) as exc:
        return f"peer certificate cannot be matched to the EAP identity: {exc}"


def server_name_check(server_name: str) -> CertificateCheck:
    """The peer's check of the server certificate: ``server_name`` as a dNSName or iPAddress SAN."""
    try:
        addr = ipaddress.ip_address(server_name)
    except ValueError:
        addr = None
    if addr is not None:
        kind, data = (IdType.ID_IPV4_ADDR if addr.version == 4 else IdType.ID_IPV6_ADDR), addr.packed
    else:
        kind, data = IdType.ID_FQDN, server_name.encode("ascii", "replace")

    def check(cert: x509.Certificate) -> str | None:
        try:
            if identity_matches_certificate(kind, data, cert):
                return None
        except CertificateError as exc:
            return f"server certificate cannot be matched: {exc}"
        return f"server certificate {describe(cert)} does not name {server_name!r}"

    return check


class _Verifier:
    """OpenSSL's verify callback: keeps the first reason a certificate was refused."""

    def __init__(self, role: str, check: CertificateCheck | None) -> None:
        self._role = role
        self._check = check
        self.reason = ""

    def __call__(self, _conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        try:
            parsed = cert.to_cryptography()
            who = f"{self._role} certificate {describe(parsed)}"
            if not ok:
                what = _X509_ERRORS.get(errno, f"X.509 verification error {errno}")
                where = "" if depth == 0 else f" (chain depth {depth})"
                self._remember(f"{who} rejected: {what}{where}")
                return False
            if depth == 0 and self._check is not None:
                problem = self._check(parsed)
                if problem is not None:
                    self._remember(problem)
                    return False
            return True
        except Exception as exc:  # a callback must not raise into OpenSSL
            self._remember(f"{self._role} certificate check failed: {type(exc).__name__}: {exc}")
            return False

    def _remember(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason


def make_context(
    *,
    server: bool,
    cert: x509.Certificate | None,
    key: PrivateKey | None,
    chain: Sequence[x509.Certificate],
    ca_certs: Sequence[x509.Certificate],
    max_version: TlsVersion,
    check: CertificateCheck | None,
) -> tuple[SSL.Context, _Verifier]:
    """An OpenSSL context for one EAP-TLS conversation; ValueError for unusable credentials."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_max_proto_version(_OPENSSL_VERSION[max_version])
    ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    ctx.set_cipher_list(_TLS12_CIPHERS)
    if not server:
        # servers without RFC 5746 (strongSwan's libtls up to at least 5.9.8) are refused by
        # OpenSSL 3 clients by default; its attack needs a renegotiation, which we never do
        ctx.set_options(SSL.OP_LEGACY_SERVER_CONNECT)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    try:
        if cert is not None and key is not None:
            ctx.use_certificate(cert)
            ctx.use_privatekey(key)
            ctx.check_privatekey()
            for extra in chain:
                ctx.add_extra_chain_cert(extra)
        store = ctx.get_cert_store()
        if store is None:  # pragma: no cover - OpenSSL always has one
            raise ValueError("OpenSSL context without a certificate store")
        for ca in ca_certs:
            store.add_cert(crypto.X509.from_cryptography(ca))
    except (SSL.Error, crypto.Error) as exc:
        raise ValueError(f"unusable EAP-TLS credentials: {_openssl_text(exc)}") from None
    verifier = _Verifier("client" if server else "server", check)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verifier)
    return ctx, verifier


def _openssl_text(exc: Exception) -> str:
    entries = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    texts = [str(e[2]) for e in entries if isinstance(e, tuple) and len(e) == 3 and e[2]]
    if texts:
        return "; ".join(texts)
    if isinstance(exc, SSL.ZeroReturnError):
        return "the other side closed the TLS connection"
    if isinstance(exc, SSL.SysCallError):
        return "unexpected end of the TLS data"
    return str(exc) or type(exc).__name__


def _failure_reason(exc: Exception, verifier: _Verifier) -> str:
    """One line for a failed TLS step: the certificate reason, the received alert, or OpenSSL's."""
    if verifier.reason:
        return verifier.reason
    text = _openssl_text(exc)
    for part in text.split("; "):
        alert = _ALERT.match(part)
        if alert:
            description = re.sub(r"\bca\b", "CA", alert.group(1))
            return f"TLS alert: {description}"
    if "peer did not return a certificate" in text:
        return "peer sent no certificate"
    return f"TLS handshake failed: {text}"


class TlsLink:
    """One TLS connection over memory BIOs, advanced one received flight at a time."""

    def __init__(
        self, ctx: SSL.Context, verifier: _Verifier, *, server: bool, sni: str | None = None
    ) -> None:
        self._conn = SSL.Connection(ctx, None)
        self._verifier = verifier
        if server:
            self._conn.set_accept_state()
        else:
            self._conn.set_connect_state()
            if sni:
                self._conn.set_tlsext_host_name(sni.encode("idna"))
        self.complete = False

    def start(self) -> bytes:
        """The client's first flight (ClientHello)."""
        return self.feed(b"")

    def feed(self, flight: bytes) -> bytes:
        """The other side's flight in, our next flight out; raises TlsFailure."""
        try:
            if flight:
                self._conn.bio_write(flight)
            if not self.complete:
                try:
                    self._conn.do_handshake()
                    self.complete = True
                except SSL.WantReadError:
                    pass
        except SSL.Error as exc:
            raise TlsFailure(_failure_reason(exc, self._verifier), self._drain()) from None
        except Exception as exc:  # a TLS stack must not take the conversation down with a traceback
            raise TlsFailure(f"TLS error: {type(exc).__name__}: {exc}") from None
        return self._drain()

    def send_application_data(self, data: bytes) -> bytes:
        """Encrypt ``data`` as application data; the records to send."""
        try:
            self._conn.sendall(data)
        except SSL.Error as exc:
            raise TlsFailure(_failure_reason(exc, self._verifier), self._drain()) from None
        return self._drain()

    def receive_application_data(self) -> bytes | None:
        """Decrypted application data already fed in; b"" when none, None after close_notify."""
        try:
            return self._conn.recv(_READ_CHUNK)
        except SSL.WantReadError:
            return b""
        except SSL.ZeroReturnError:
            return None
        except SSL.Error as exc:
            raise TlsFailure(_failure_reason(exc, self._verifier), self._drain()) from None
        except Exception as exc:
            raise TlsFailure(f"TLS error: {type(exc).__name__}: {exc}") from None

    def _drain(self) -> bytes:
        out = []
        while True:
            try:
                chunk = self._conn.bio_read(_READ_CHUNK)
            except SSL.WantReadError:
                break
            except SSL.Error:
                break
            if not chunk:
                break
            out.append(chunk)
        return b"".join(out)

    @property
    def version(self) -> TlsVersion | None:
        """The negotiated version once the handshake got that far."""
        try:
            return _VERSION_NAMES.get(self._conn.get_protocol_version_name())
        except SSL.Error:  # pragma: no cover - defensive
            return None

    def peer_certificate(self) -> bytes | None:
        """The other side's end-entity certificate (DER), if it sent one."""
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        return None if cert is None else cert.public_bytes(serialization.Encoding.DER)

    @property
    def connection(self) -> SSL.Connection:
        """The pyOpenSSL connection, for tests that cross-check the key derivation."""
        return self._conn


def export_keys(link: TlsLink) -> EapTlsKeys:
    """MSK, EMSK and Session-Id of a finished handshake (RFC 5216 §2.3, RFC 9190 §2.3)."""
    version = link.version
    conn = link.connection
    try:
        if version is TlsVersion.TLS1_2:
            material = conn.export_keying_material(LABEL_TLS12, KEY_MATERIAL_LEN)
            session_id = _TYPE_CODE + (conn.client_random() or b"") + (conn.server_random() or b"")
        elif version is TlsVersion.TLS1_3:
            material = conn.export_keying_material(LABEL_TLS13, KEY_MATERIAL_LEN, _TYPE_CODE)
            session_id = _TYPE_CODE + conn.export_keying_material(LABEL_TLS13_METHOD_ID, 64, _TYPE_CODE)
        else:
            raise TlsFailure(f"negotiated an unsupported TLS version {conn.get_protocol_version_name()}")
    except SSL.Error as exc:
        raise TlsFailure(f"TLS key export failed: {_openssl_text(exc)}") from None
    if len(material) != KEY_MATERIAL_LEN:
        raise TlsFailure("TLS key export returned a short key")
    return EapTlsKeys(material[:64], material[64:], session_id, version)
