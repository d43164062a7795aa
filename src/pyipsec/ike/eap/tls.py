"""EAP-TLS (RFC 5216; TLS 1.3 per RFC 9190), both sides, as sans-I/O EAP state machines.

Theory of operation. The gateway (:class:`EapTlsServer`) runs the whole conversation; each
arrow is one EAP packet, and every TLS flight longer than the fragment size travels as several
EAP-TLS messages, each answered by an empty ACK (see :mod:`pyipsec.ike.eap.tls_frag`)::

    gateway                                    client
    Request/Identity                  ->
                                      <-       Response/Identity "alice@example.test"
    Request/EAP-TLS Start (S flag)    ->
                                      <-       Response/EAP-TLS ClientHello
    Request/EAP-TLS ServerHello … Certificate, CertificateRequest … (TLS 1.3: … Finished)
                                      <-       Response/EAP-TLS Certificate, CertificateVerify, Finished
    Request/EAP-TLS  TLS 1.2: ChangeCipherSpec, Finished
                     TLS 1.3: the commitment message (application data 0x00, RFC 9190 §2.5)
                                      <-       Response/EAP-TLS, empty
    EAP-Success                       ->       both sides hold the same MSK and EMSK

The gateway accepts the client only with a certificate that chains to ``ca_certs`` and is
bound to the EAP identity (``identity_check``; by default
:func:`~pyipsec.ike.eap.tls_link.default_identity_check`); the client accepts the gateway only
with a certificate that chains to its ``ca_certs`` and, when ``server_name`` is given, names it.

The client accepts EAP-Success only once the handshake proved the gateway: in TLS 1.2 after
the gateway's Finished (which the gateway sends only after accepting the client's certificate),
in TLS 1.3 after the commitment message (RFC 9190 §2.5: in TLS 1.3 the client finishes its
handshake before the gateway has even seen its certificate, so only this protected message
tells it the gateway is done). An earlier EAP-Success, as from a rogue gateway, ends the
conversation with FAILURE. A legacy close_notify in place of the commitment message (the
drafts before RFC 9190) is accepted as well: it is just as protected.

Failures: when TLS fails on one side, OpenSSL's alert travels to the other side in an EAP-TLS
message (RFC 5216 §2.1.3), which answers it with an empty message, and the gateway ends with
EAP-Failure; ``reason`` names the cause ("TLS alert: unknown CA", "client certificate … rejected:
certificate has expired", …). Malformed EAP or EAP-TLS framing, fragments beyond the limits, an
empty message where TLS data is due, more than :data:`MAX_ROUNDS` EAP round trips, or a stray
Start end the conversation the same way; no input raises (EapError only for misuse, as in
:mod:`pyipsec.ike.eap.base`). Keys never appear in reprs.

There is no session resumption: every conversation is a full handshake with mutual
authentication. The injected ``rng`` draws the EAP Identifiers; TLS uses OpenSSL's CSPRNG.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, auto

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyipsec.crypto.rand import RandomSource
from pyipsec.crypto.x509 import PrivateKey
from pyipsec.errors import DecodeError, EapError
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap.base import (
    EapOutcome,
    EapPeer,
    EapServer,
    eap_failure,
    eap_success,
    next_identifier,
)
from pyipsec.ike.eap.tls_frag import (
    ACK,
    DEFAULT_FRAGMENT_SIZE,
    FLAG_S,
    MAX_FRAGMENT_SIZE,
    MAX_FRAGMENTS,
    MIN_FRAGMENT_SIZE,
    EapTlsFrame,
    Fragmenter,
    FragmentError,
    Reassembler,
)
from pyipsec.ike.eap.tls_link import (
    COMMITMENT_MESSAGE,
    CertificateCheck,
    EapTlsKeys,
    TlsFailure,
    TlsLink,
    TlsVersion,
    default_identity_check,
    export_keys,
    make_context,
    parse_certificate,
    server_name_check,
)
from pyipsec.wire.payloads.eap import EapMessage

__all__ = [
    "MAX_IDENTITY_LEN",
    "MAX_ROUNDS",
    "EapTlsPeer",
    "EapTlsServer",
    "IdentityCheck",
    "TlsVersion",
]

MAX_IDENTITY_LEN = 256
"""Longest EAP identity accepted, in octets."""
MAX_ROUNDS = 2 * MAX_FRAGMENTS + 64
"""Most EAP round trips in one conversation: every flight at the smallest fragment size fits."""

IdentityCheck = Callable[[bytes, str], "str | None"]
"""``check(peer_cert_der, eap_identity)``: None when the certificate may use the identity, else why not."""


class _Malformed(Exception):
    """Internal: an input that ends the conversation; the text becomes ``reason``."""


def _decode(data: bytes) -> EapMessage:
    try:
        return EapMessage.decode(bytes(data))
    except (DecodeError, ValueError) as exc:
        raise _Malformed(f"malformed EAP packet: {exc}") from None


def _type_name(msg: EapMessage) -> str:
    return "none" if msg.eap_type is None else msg.eap_type.name


def _frame(msg: EapMessage) -> EapTlsFrame:
    try:
        return EapTlsFrame.decode(msg.type_data)
    except FragmentError as exc:
        raise _Malformed(str(exc)) from None


def _check_fragment_size(size: int) -> int:
    if not MIN_FRAGMENT_SIZE <= size <= MAX_FRAGMENT_SIZE:
        raise ValueError(f"fragment_size must be {MIN_FRAGMENT_SIZE}..{MAX_FRAGMENT_SIZE}, not {size}")
    return size


class _Flights:
    """The fragment traffic of one side: our outgoing flight and the other side's incoming one."""

    def __init__(self, fragment_size: int) -> None:
        self._size = fragment_size
        self._out: Fragmenter | None = None
        self._in = Reassembler()
        self._rounds = 0

    @property
    def sending(self) -> bool:
        """Whether fragments of our flight are still to go (the other side must ACK)."""
        return self._out is not None and not self._out.done

    @property
    def receiving(self) -> bool:
        return self._in.in_progress

    def count_round(self) -> None:
        self._rounds += 1
        if self._rounds > MAX_ROUNDS:
            raise _Malformed(f"EAP-TLS conversation longer than {MAX_ROUNDS} round trips")

    def send(self, flight: bytes) -> EapTlsFrame:
        self._out = Fragmenter(flight, self._size)
        return self._out.next_frame()

    def next_fragment(self, frame: EapTlsFrame, sender: str) -> EapTlsFrame:
        if not frame.is_ack:
            raise _Malformed(f"{sender} sent TLS data instead of the ACK of our fragment")
        assert self._out is not None
        return self._out.next_frame()

    def receive(self, frame: EapTlsFrame) -> bytes | None:
        try:
            return self._in.add(frame)
        except FragmentError as exc:
            raise _Malformed(str(exc)) from None


def _text(data: bytes, what: str) -> str:
    if len(data) > MAX_IDENTITY_LEN:
        raise _Malformed(f"{what} of {len(data)} octets is longer than {MAX_IDENTITY_LEN}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{what} is not UTF-8") from None


class _ServerState(Enum):
    NEW = auto()
    WAIT_IDENTITY = auto()
    HANDSHAKE = auto()  # TLS flights and fragments in both directions
    WAIT_FINAL = auto()  # our last flight (Finished / commitment) out, waiting for the empty Response
    SENT_ALERT = auto()  # our TLS alert out, waiting for any Response before EAP-Failure
    DONE = auto()


class EapTlsServer(EapServer):
    """The gateway's EAP conversation: EAP-Identity, then EAP-TLS with a client certificate.

    ``cert`` (DER) and ``key`` are the gateway's, ``chain`` the intermediates to send with it,
    ``ca_certs`` (DER, at least one) the CAs a client certificate must chain to.
    ``identity_check(cert_der, eap_identity)`` binds the EAP identity to the client's
    certificate (default: :func:`~pyipsec.ike.eap.tls_link.default_identity_check`).
    """

    def __init__(
        self,
        *,
        cert: bytes,
        key: PrivateKey,
        chain: tuple[bytes, ...] = (),
        ca_certs: tuple[bytes, ...],
        rng: RandomSource,
        max_version: TlsVersion = TlsVersion.TLS1_3,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
        identity_check: IdentityCheck | None = None,
    ) -> None:
        if not ca_certs:
            raise ValueError("EAP-TLS needs at least one CA certificate to check client certificates")
        self._cert = parse_certificate(cert, "the gateway certificate")
        self._chain = tuple(parse_certificate(c, "a chain certificate") for c in chain)
        self._cas = tuple(parse_certificate(c, "a CA certificate") for c in ca_certs)
        self._key = key
        self._max_version = TlsVersion(max_version)
        self._identity_check = identity_check or default_identity_check
        # Fail early on unusable credentials (ValueError), not in the middle of a conversation.
        make_context(
            server=True,
            cert=self._cert,
            key=key,
            chain=self._chain,
            ca_certs=self._cas,
            max_version=self._max_version,
            check=None,
        )
        self._rng = rng
        self._flights = _Flights(_check_fragment_size(fragment_size))
        self._state = _ServerState.NEW
        self._identifier = 0
        self._tls: TlsLink | None = None
        self._outcome = EapOutcome.CONTINUE
        self._eap_identity: str | None = None
        self._pending: EapTlsKeys | None = None
        self._keys: EapTlsKeys | None = None
        self._peer_cert: bytes | None = None
        self._reason = ""

    # -- the EapServer interface ------------------------------------------------------------

    @property
    def outcome(self) -> EapOutcome:
        return self._outcome

    @property
    def identity(self) -> str | None:
        """The EAP identity; after SUCCESS it is bound to the verified client certificate."""
        return self._eap_identity

    @property
    def msk(self) -> bytes:
        return self._keys.msk if self._keys else b""

    @property
    def emsk(self) -> bytes:
        """The 64-octet Extended MSK after SUCCESS, else ``b""``."""
        return self._keys.emsk if self._keys else b""

    @property
    def session_id(self) -> bytes:
        """The EAP Session-Id (RFC 5216 §2.3, RFC 9190 §2.3) after SUCCESS, else ``b""``."""
        return self._keys.session_id if self._keys else b""

    @property
    def peer_certificate(self) -> bytes | None:
        """The client's certificate (DER) after SUCCESS."""
        return self._peer_cert if self._outcome is EapOutcome.SUCCESS else None

    @property
    def tls_version(self) -> TlsVersion | None:
        """The negotiated TLS version, once known."""
        return self._tls.version if self._tls else None

    @property
    def reason(self) -> str:
        return self._reason

    def start(self) -> bytes:
        if self._state is not _ServerState.NEW:
            raise EapError("EAP conversation already started")
        self._identifier = self._rng.random_bytes(1)[0]
        self._state = _ServerState.WAIT_IDENTITY
        return EapMessage(EapCode.REQUEST, self._identifier, EapType.IDENTITY).encode()

    def process(self, response: bytes) -> bytes:
        if self._state is _ServerState.NEW:
            raise EapError("EAP conversation not started: call start() first")
        if self._state is _ServerState.DONE:
            raise EapError(f"EAP conversation already ended ({self._outcome.value})")
        try:
            msg = _decode(response)
            if msg.code != EapCode.RESPONSE:
                raise _Malformed(f"expected an EAP-Response, got code {msg.code.name}")
            if msg.identifier != self._identifier:
                raise _Malformed(
                    f"EAP-Response Identifier {msg.identifier} does not match "
                    f"the Request's {self._identifier}"
                )
            if self._state is _ServerState.SENT_ALERT:
                return self._finish_failure()
            if self._state is _ServerState.WAIT_IDENTITY:
                return self._on_identity(msg)
            if msg.eap_type == EapType.NAK:
                offered = ", ".join(str(t) for t in msg.type_data) or "none"
                raise _Malformed(f"peer declined EAP-TLS (Nak; it proposes EAP types {offered})")
            if msg.eap_type != EapType.TLS:
                raise _Malformed(f"expected an EAP-TLS Response, got EAP type {_type_name(msg)}")
            return self._on_tls(_frame(msg))
        except _Malformed as exc:
            return self._fail(str(exc))
        except TlsFailure as exc:
            return self._tls_failed(exc)

    # -- steps -------------------------------------------------------------------------------

    def _on_identity(self, msg: EapMessage) -> bytes:
        if msg.eap_type != EapType.IDENTITY:
            raise _Malformed(f"expected an EAP-Response/Identity, got EAP type {_type_name(msg)}")
        self._eap_identity = _text(msg.type_data, "EAP identity")
        ctx, verifier = make_context(
            server=True,
            cert=self._cert,
            key=self._key,
            chain=self._chain,
            ca_certs=self._cas,
            max_version=self._max_version,
            check=self._check_client,
        )
        self._tls = TlsLink(ctx, verifier, server=True)
        self._state = _ServerState.HANDSHAKE
        return self._request(EapTlsFrame(FLAG_S))

    def _check_client(self, cert: x509.Certificate) -> str | None:
        """The identity binding, run by the verify callback on the client's end-entity certificate."""
        assert self._eap_identity is not None
        return self._identity_check(cert.public_bytes(serialization.Encoding.DER), self._eap_identity)

    def _on_tls(self, frame: EapTlsFrame) -> bytes:
        self._flights.count_round()
        if self._flights.sending:
            return self._request(self._flights.next_fragment(frame, "peer"))
        if frame.start:
            raise _Malformed("EAP-TLS Response with the Start flag")
        if frame.is_ack and not self._flights.receiving:
            if self._state is _ServerState.WAIT_FINAL:
                return self._finish_success()
            raise _Malformed("empty EAP-TLS Response where the TLS handshake needs the peer's data")
        flight = self._flights.receive(frame)
        if flight is None:
            return self._request(ACK)
        if self._state is _ServerState.WAIT_FINAL:
            raise _Malformed("TLS data from the peer after the handshake ended")
        assert self._tls is not None
        output = self._tls.feed(flight)
        if self._tls.complete:
            output += self._handshake_done()
        if not output:
            raise _Malformed("the peer's TLS message left the handshake without anything to answer")
        return self._request(self._flights.send(output))

    def _handshake_done(self) -> bytes:
        assert self._tls is not None
        self._peer_cert = self._tls.peer_certificate()
        if self._peer_cert is None:
            raise _Malformed("peer sent no certificate")
        self._pending = export_keys(self._tls)
        self._state = _ServerState.WAIT_FINAL
        if self._pending.tls_version is TlsVersion.TLS1_3:
            return self._tls.send_application_data(COMMITMENT_MESSAGE)
        return b""

    def _finish_success(self) -> bytes:
        assert self._pending is not None
        self._keys, self._pending = self._pending, None
        self._state = _ServerState.DONE
        self._outcome = EapOutcome.SUCCESS
        return eap_success(self._identifier)

    def _tls_failed(self, exc: TlsFailure) -> bytes:
        if not exc.output:
            return self._fail(exc.reason)
        self._reason = exc.reason
        self._pending = None
        self._state = _ServerState.SENT_ALERT
        # The alert is a few dozen octets: one message, whatever the fragment size.
        return self._request(EapTlsFrame(0, None, exc.output))

    def _finish_failure(self) -> bytes:
        self._state = _ServerState.DONE
        self._outcome = EapOutcome.FAILURE
        return eap_failure(self._identifier)

    def _request(self, frame: EapTlsFrame) -> bytes:
        self._identifier = next_identifier(self._identifier)
        return EapMessage(EapCode.REQUEST, self._identifier, EapType.TLS, frame.encode()).encode()

    def _fail(self, reason: str) -> bytes:
        if self._state is _ServerState.SENT_ALERT and self._reason:
            reason = f"{self._reason}; then {reason}"
        self._state = _ServerState.DONE
        self._outcome = EapOutcome.FAILURE
        self._reason = reason
        self._pending = self._keys = None
        return eap_failure(self._identifier)

    def __repr__(self) -> str:
        return f"EapTlsServer(state={self._state.name}, identity={self._eap_identity!r})"


# RFC 3748 §5.3.2: Expanded Nak (Vendor-Id 0, Vendor-Type 3) listing EAP-TLS as Vendor-Id 0, type 13.
_EXPANDED_NAK = (
    bytes(3)
    + int(EapType.NAK).to_bytes(4, "big")
    + bytes([EapType.EXPANDED])
    + bytes(3)
    + int(EapType.TLS).to_bytes(4, "big")
)


class _PeerState(Enum):
    IDLE = auto()  # before EAP-TLS Start (Identity, Notification, Nak possible)
    HANDSHAKE = auto()  # TLS flights and fragments in both directions
    WAIT_COMMITMENT = auto()  # TLS 1.3: our Finished out, waiting for the commitment message
    WAIT_SUCCESS = auto()  # the gateway is proven; our empty Response out, waiting for EAP-Success
    FAILED = auto()  # FAILURE decided, our last Response (alert or ACK) out, waiting for EAP-Failure
    DONE = auto()


class EapTlsPeer(EapPeer):
    """The client's EAP conversation: EAP-Identity as ``identity``, then EAP-TLS.

    ``cert`` (DER) and ``key`` are the client's, ``chain`` the intermediates to send with it,
    ``ca_certs`` (DER, at least one) the CAs the gateway's certificate must chain to; with
    ``server_name`` the gateway's certificate must also carry it as a dNSName (or iPAddress)
    subjectAltName. ``cert=None`` runs TLS without a client certificate, which an EAP-TLS
    gateway refuses; it exists to see that refusal.
    """

    def __init__(
        self,
        identity: str,
        *,
        cert: bytes | None,
        key: PrivateKey | None,
        chain: tuple[bytes, ...] = (),
        ca_certs: tuple[bytes, ...],
        server_name: str | None = None,
        rng: RandomSource,
        max_version: TlsVersion = TlsVersion.TLS1_3,
        fragment_size: int = DEFAULT_FRAGMENT_SIZE,
    ) -> None:
        name = identity.encode("utf-8")
        if len(name) > MAX_IDENTITY_LEN:
            raise ValueError(f"an EAP identity has at most {MAX_IDENTITY_LEN} octets")
        if not ca_certs:
            raise ValueError("EAP-TLS needs at least one CA certificate to check the gateway")
        if (cert is None) != (key is None):
            raise ValueError("give both the client certificate and its key, or neither")
        self._name = name
        self._cert = None if cert is None else parse_certificate(cert, "the client certificate")
        self._chain = tuple(parse_certificate(c, "a chain certificate") for c in chain)
        self._cas = tuple(parse_certificate(c, "a CA certificate") for c in ca_certs)
        self._key = key
        self._server_name = server_name
        self._check: CertificateCheck | None = None if server_name is None else server_name_check(server_name)
        self._max_version = TlsVersion(max_version)
        make_context(  # ValueError now for unusable credentials
            server=False,
            cert=self._cert,
            key=key,
            chain=self._chain,
            ca_certs=self._cas,
            max_version=self._max_version,
            check=None,
        )
        self._rng = rng
        self._flights = _Flights(_check_fragment_size(fragment_size))
        self._state = _PeerState.IDLE
        self._tls: TlsLink | None = None
        self._outcome = EapOutcome.CONTINUE
        self._reason = ""
        self._pending: EapTlsKeys | None = None
        self._keys: EapTlsKeys | None = None
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None

    @property
    def outcome(self) -> EapOutcome:
        return self._outcome

    @property
    def msk(self) -> bytes:
        return self._keys.msk if self._keys else b""

    @property
    def emsk(self) -> bytes:
        """The 64-octet Extended MSK after SUCCESS, else ``b""``."""
        return self._keys.emsk if self._keys else b""

    @property
    def session_id(self) -> bytes:
        """The EAP Session-Id (RFC 5216 §2.3, RFC 9190 §2.3) after SUCCESS, else ``b""``."""
        return self._keys.session_id if self._keys else b""

    @property
    def tls_version(self) -> TlsVersion | None:
        """The negotiated TLS version, once known."""
        return self._tls.version if self._tls else None

    @property
    def reason(self) -> str:
        return self._reason

    def process(self, request: bytes) -> bytes | None:
        if self._state is _PeerState.DONE:
            raise EapError(f"EAP conversation already ended ({self._outcome.value})")
        request = bytes(request)
        try:
            msg = _decode(request)
            if msg.code == EapCode.SUCCESS:
                self._on_success(msg)
                return None
            if msg.code == EapCode.FAILURE:
                self._on_failure()
                return None
            if msg.code != EapCode.REQUEST:
                raise _Malformed(f"expected an EAP-Request, got code {msg.code.name}")
            if self._last_request is not None:
                assert self._last_response is not None
                if request == self._last_request:  # a retransmission (RFC 3748 §4.1)
                    return self._last_response
                if msg.identifier == self._last_request[1]:
                    raise _Malformed(f"a different EAP-Request reuses Identifier {msg.identifier}")
            if self._state is _PeerState.FAILED:
                raise _Malformed(f"{self._reason}; then a new Request instead of EAP-Failure")
            response = self._on_request(msg)
        except _Malformed as exc:
            self._fail(str(exc))
            return None
        except TlsFailure as exc:
            response = self._tls_failed(msg, exc)
        self._last_request, self._last_response = request, response
        return response

    # -- steps -------------------------------------------------------------------------------

    def _on_request(self, msg: EapMessage) -> bytes:
        if msg.eap_type == EapType.NOTIFICATION:
            return self._respond(msg, EapType.NOTIFICATION, b"")
        if msg.eap_type == EapType.IDENTITY:
            if self._state is not _PeerState.IDLE:
                raise _Malformed("EAP-Request/Identity in the middle of EAP-TLS")
            return self._respond(msg, EapType.IDENTITY, self._name)
        if msg.eap_type != EapType.TLS:
            if self._state is not _PeerState.IDLE:
                raise _Malformed(f"EAP type {_type_name(msg)} requested in the middle of EAP-TLS")
            if msg.eap_type == EapType.NAK:
                raise _Malformed("an EAP-Request of type Nak")
            if msg.eap_type == EapType.EXPANDED:  # RFC 3748 §5.3.2: Expanded Nak listing EAP-TLS
                return self._respond(
                    msg, EapType.EXPANDED, _EXPANDED_NAK + int(EapType.TLS).to_bytes(4, "big")
                )
            return self._respond(msg, EapType.NAK, bytes([EapType.TLS]))  # RFC 3748 §5.3.1
        frame = _frame(msg)
        if frame.start:
            return self._on_start(msg, frame)
        if self._state is _PeerState.IDLE:
            raise _Malformed("EAP-TLS Request before EAP-TLS Start")
        return self._tls_response(msg, self._on_tls(frame))

    def _on_start(self, msg: EapMessage, frame: EapTlsFrame) -> bytes:
        if self._state is not _PeerState.IDLE:
            raise _Malformed("EAP-TLS Start in the middle of EAP-TLS")
        if frame.data or frame.more:
            raise _Malformed("EAP-TLS Start that carries data")
        ctx, verifier = make_context(
            server=False,
            cert=self._cert,
            key=self._key,
            chain=self._chain,
            ca_certs=self._cas,
            max_version=self._max_version,
            check=self._check,
        )
        self._tls = TlsLink(ctx, verifier, server=False, sni=self._server_name)
        self._state = _PeerState.HANDSHAKE
        return self._tls_response(msg, self._flights.send(self._tls.start()))

    def _on_tls(self, frame: EapTlsFrame) -> EapTlsFrame:
        self._flights.count_round()
        if self._flights.sending:
            return self._flights.next_fragment(frame, "gateway")
        if frame.is_ack and not self._flights.receiving:
            raise _Malformed("empty EAP-TLS Request where the TLS handshake needs the gateway's data")
        flight = self._flights.receive(frame)
        if flight is None:
            return ACK
        if self._state is _PeerState.WAIT_SUCCESS:
            raise _Malformed("TLS data from the gateway after the handshake ended")
        assert self._tls is not None
        if self._state is _PeerState.WAIT_COMMITMENT:
            self._tls.feed(flight)
            self._await_commitment()
            return ACK
        output = self._tls.feed(flight)
        if self._tls.complete:
            self._pending = export_keys(self._tls)
            if self._pending.tls_version is TlsVersion.TLS1_3:
                self._state = _PeerState.WAIT_COMMITMENT
                if not output:  # the commitment may only follow our Finished
                    raise _Malformed("TLS 1.3 handshake finished without our Finished to send")
            else:
                self._state = _PeerState.WAIT_SUCCESS
        if output:
            return self._flights.send(output)
        if self._state is _PeerState.WAIT_SUCCESS:
            return ACK  # TLS 1.2: the gateway's Finished verified; the final empty Response
        raise _Malformed("the gateway's TLS message left the handshake without anything to answer")

    def _await_commitment(self) -> None:
        """TLS 1.3 (RFC 9190 §2.5): the gateway's application data 0x00 ends the handshake."""
        assert self._tls is not None
        data = self._tls.receive_application_data()
        if data is None or data == COMMITMENT_MESSAGE:  # None: a legacy close_notify
            self._state = _PeerState.WAIT_SUCCESS
        elif data:
            raise _Malformed(f"unexpected TLS application data ({len(data)} octets) instead of 0x00")
        # b"": NewSessionTicket or other records without the commitment yet: ACK and wait

    def _on_success(self, msg: EapMessage) -> None:
        if self._state is not _PeerState.WAIT_SUCCESS:
            if self._state is _PeerState.FAILED:
                raise _Malformed(f"{self._reason}; then an EAP-Success, ignored")
            if self._state is _PeerState.WAIT_COMMITMENT:
                raise _Malformed(
                    "EAP-Success before the TLS 1.3 commitment message (RFC 9190 §2.5): refused; "
                    "a gateway on a pre-RFC 9190 draft (such as strongSwan before 5.9.10) "
                    "needs TLS 1.2"
                )
            raise _Malformed(
                f"EAP-Success before the TLS handshake proved the gateway (state {self._state.name}): refused"
            )
        assert self._last_request is not None
        if msg.identifier != self._last_request[1]:
            raise _Malformed(
                f"EAP-Success Identifier {msg.identifier} does not match our Response's "
                f"{self._last_request[1]}"
            )
        assert self._pending is not None
        self._keys, self._pending = self._pending, None
        self._outcome = EapOutcome.SUCCESS
        self._state = _PeerState.DONE

    def _on_failure(self) -> None:
        if not self._reason:
            self._reason = "the gateway sent EAP-Failure"
        self._outcome = EapOutcome.FAILURE
        self._pending = self._keys = None
        self._state = _PeerState.DONE

    def _tls_failed(self, msg: EapMessage, exc: TlsFailure) -> bytes:
        """Our alert (or, after the gateway's alert, an empty message) goes back; EAP-Failure is next."""
        self._reason = exc.reason
        self._outcome = EapOutcome.FAILURE
        self._pending = None
        self._state = _PeerState.FAILED
        return self._tls_response(msg, EapTlsFrame(0, None, exc.output))

    def _tls_response(self, msg: EapMessage, frame: EapTlsFrame) -> bytes:
        return self._respond(msg, EapType.TLS, frame.encode())

    def _respond(self, msg: EapMessage, eap_type: EapType, type_data: bytes) -> bytes:
        return EapMessage(EapCode.RESPONSE, msg.identifier, eap_type, type_data).encode()

    def _fail(self, reason: str) -> None:
        self._reason = reason
        self._outcome = EapOutcome.FAILURE
        self._pending = self._keys = None
        self._state = _PeerState.DONE

    def __repr__(self) -> str:
        return f"EapTlsPeer(identity={self._name.decode()!r}, state={self._state.name})"
