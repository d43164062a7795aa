"""EAP-MSCHAPv2 (RFC 2759 inside EAP type 26, draft-kamath-pppext-eap-mschapv2-02), both sides.

Theory of operation. The gateway (:class:`MsChapV2Server`) runs the whole conversation::

    gateway                                   client
    Request/Identity                 ->
                                     <-       Response/Identity "alice"
    Request/MSCHAPv2 Challenge       ->       (16-octet authenticator challenge, server name)
                                     <-       Response/MSCHAPv2 Response
                                              (peer challenge, NT-Response, user name)
    Request/MSCHAPv2 Success "S=.. M=.." ->   the client checks S=, proving the gateway knows H
                                     <-       Response/MSCHAPv2 Success
    EAP-Success                      ->       both sides now hold the same 64-octet MSK

A wrong password or unknown user gets ``Request/MSCHAPv2 Failure "E=691 R=0 C=.. V=3 M=.."``
(the same bytes for both, so user names cannot be probed), the client answers
``Response/MSCHAPv2 Failure``, and the gateway ends with EAP-Failure. There are no retries and
no password change (R=0). The delay that slows password guessing is up to the caller, which
owns the clock.

The MS-CHAPv2 packet inside the EAP Type-Data is ``OpCode | MS-CHAPv2-ID | MS-Length (2) |
data``, MS-Length being the EAP Length minus 5; the client's Success and Failure Responses
are the OpCode alone (draft-kamath §2). Every Request carries a new EAP Identifier and each
Response must echo it (RFC 3748 §4.1); EAP-Success carries the Identifier of the Response it
answers (§4.2).

The client (:class:`MsChapV2Peer`) accepts an EAP-Success only after it has verified the
gateway's ``S=`` authenticator response and answered it: an EAP-Success at any earlier point
would let a rogue gateway skip mutual authentication (the CVE-2021-45079 class of bugs), so it
ends the conversation with FAILURE. It answers EAP-Identity with its identity, Notification
with an empty Notification Response (RFC 3748 §5.2), any other method with a Nak proposing
MSCHAPv2 (§5.3.1), and a retransmitted Request (same Identifier, same bytes) with its previous
Response.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum, IntEnum, auto

from pyipsec.crypto.rand import RandomSource
from pyipsec.errors import DecodeError, EapError
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap.base import (
    MSK_LEN,
    EapOutcome,
    EapPeer,
    EapServer,
    FailureRecorder,
    TakesAnswers,
    UserStore,
    eap_failure,
    eap_success,
    next_identifier,
)
from pyipsec.ike.eap.mschapv2_crypto import (
    AUTHENTICATOR_RESPONSE_LEN,
    CHALLENGE_LEN,
    NT_HASH_LEN,
    NT_RESPONSE_LEN,
    authenticator_response_text,
    generate_authenticator_response,
    generate_nt_response,
    mschapv2_msk,
    nt_password_hash,
    strip_domain,
)
from pyipsec.ike.lookups import Answer
from pyipsec.wire.payloads.eap import EapMessage

__all__ = [
    "ERROR_AUTHENTICATION_FAILURE",
    "MAX_NAME_LEN",
    "MsChapV2OpCode",
    "MsChapV2Packet",
    "MsChapV2Peer",
    "MsChapV2Server",
]

MAX_NAME_LEN = 256
"""Longest identity or MS-CHAPv2 Name accepted, in octets (RFC 2759 §8.1 allows 256)."""

ERROR_AUTHENTICATION_FAILURE = 691
"""The E= code for a bad user name or password (RFC 2759 §6)."""

_RESPONSE_VALUE_SIZE = 49  # Peer-Challenge 16 | Reserved 8 | NT-Response 24 | Flags 1 (RFC 2759 §4)
_MS_HEADER_LEN = 4  # OpCode | MS-CHAPv2-ID | MS-Length
_ERROR_NAMES = {
    646: "restricted logon hours",
    647: "account disabled",
    648: "password expired",
    649: "no dial-in permission",
    691: "authentication failure",
    709: "error changing password",
}
_EXPANDED_NAK = (
    bytes(3)
    + (EapType.NAK).to_bytes(4, "big")
    + bytes([EapType.EXPANDED])
    + bytes(3)
    + (EapType.MSCHAPV2).to_bytes(4, "big")
)
# Only used to keep the unknown-user path doing the same work as the wrong-password path.
_DUMMY_NT_HASH = nt_password_hash("")


class MsChapV2OpCode(IntEnum):
    """MS-CHAPv2 OpCodes (RFC 2759 §3-§7)."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD = 7


class _Malformed(Exception):
    """Internal: an input that ends the conversation; the text becomes ``reason``."""


@dataclass(frozen=True, slots=True)
class MsChapV2Packet:
    """The MS-CHAPv2 packet in EAP Type-Data (draft-kamath-pppext-eap-mschapv2-02 §2)."""

    opcode: int
    ms_chapv2_id: int
    data: bytes = b""

    def encode(self) -> bytes:
        length = _MS_HEADER_LEN + len(self.data)
        return bytes([self.opcode, self.ms_chapv2_id]) + length.to_bytes(2, "big") + self.data

    @classmethod
    def decode(cls, type_data: bytes) -> MsChapV2Packet:
        """Parse a full-header packet; MS-Length must equal the Type-Data length (EAP Length - 5).

        Raises DecodeError (offsets relative to the Type-Data).
        """
        if len(type_data) < _MS_HEADER_LEN:
            raise DecodeError(f"MS-CHAPv2 packet of {len(type_data)} octets is shorter than its header")
        ms_length = int.from_bytes(type_data[2:4], "big")
        if ms_length != len(type_data):
            raise DecodeError(
                f"MS-Length {ms_length} does not match the {len(type_data)}-octet packet", offset=2
            )
        return cls(type_data[0], type_data[1], type_data[4:])


def _opcode_name(opcode: int) -> str:
    try:
        return MsChapV2OpCode(opcode).name
    except ValueError:
        return f"OpCode {opcode}"


def _type_name(msg: EapMessage) -> str:
    return "none" if msg.eap_type is None else msg.eap_type.name


def _decode(data: bytes) -> EapMessage:
    try:
        return EapMessage.decode(bytes(data))
    except (DecodeError, ValueError) as exc:
        raise _Malformed(f"malformed EAP packet: {exc}") from None


def _text(name: bytes, what: str) -> str:
    if len(name) > MAX_NAME_LEN:
        raise _Malformed(f"{what} of {len(name)} octets is longer than {MAX_NAME_LEN}")
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{what} is not UTF-8") from None


def _printable(data: bytes, limit: int = 120) -> str:
    text = data.decode("utf-8", "replace")[:limit]
    return "".join(ch if ch.isprintable() else "?" for ch in text)


class _ServerState(Enum):
    NEW = auto()
    WAIT_IDENTITY = auto()
    WAIT_RESPONSE = auto()
    WAIT_SUCCESS_ACK = auto()
    WAIT_FAILURE_ACK = auto()
    DONE = auto()


class MsChapV2Server(EapServer):
    """The gateway's EAP conversation: EAP-Identity, then EAP-MSCHAPv2 against ``users``.

    ``users`` gives NT hashes; if it also has ``record_failure`` (:class:`FailureRecorder`), a
    wrong password for an existing account is recorded there. ``server_name`` goes into the
    Challenge's Name field.
    """

    def __init__(self, users: UserStore, *, rng: RandomSource, server_name: str = "pyipsec") -> None:
        self._users = users
        self._rng = rng
        self._server_name = server_name.encode("utf-8")
        self._state = _ServerState.NEW
        self._identifier = 0
        self._challenge = b""
        self._ms_id = 0
        self._outcome = EapOutcome.CONTINUE
        self._eap_identity: str | None = None
        self._verified: str | None = None
        self._pending_msk = b""
        self._msk = b""
        self._reason = ""

    def take(self, answer: Answer) -> None:
        """The host's answer to a lookup our ``users`` suspended for (``eap.lookupusers``)."""
        if isinstance(self._users, TakesAnswers):
            self._users.take(answer)

    # -- the EapServer interface ------------------------------------------------------------

    @property
    def outcome(self) -> EapOutcome:
        return self._outcome

    @property
    def identity(self) -> str | None:
        """The EAP-Identity the peer claimed; after SUCCESS the account that verified."""
        if self._outcome is EapOutcome.SUCCESS:
            return self._verified
        return self._eap_identity

    @property
    def eap_identity(self) -> str | None:
        """The identity from the peer's EAP-Response/Identity, as claimed."""
        return self._eap_identity

    @property
    def msk(self) -> bytes:
        return self._msk

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
            if self._state is _ServerState.WAIT_IDENTITY:
                return self._on_identity(msg)
            if self._state is _ServerState.WAIT_FAILURE_ACK:
                if msg.eap_type != EapType.MSCHAPV2 or msg.type_data[:1] != bytes([MsChapV2OpCode.FAILURE]):
                    self._reason += "; then an unexpected Response instead of an MS-CHAPv2 Failure Response"
                self._state = _ServerState.DONE
                self._outcome = EapOutcome.FAILURE
                return eap_failure(msg.identifier)
            if msg.eap_type == EapType.NAK:
                offered = ", ".join(str(t) for t in msg.type_data) or "none"
                raise _Malformed(f"peer declined EAP-MSCHAPv2 (Nak; it proposes EAP types {offered})")
            if msg.eap_type != EapType.MSCHAPV2:
                raise _Malformed(f"expected an EAP-MSCHAPv2 Response, got EAP type {_type_name(msg)}")
            if not msg.type_data:
                raise _Malformed("EAP-MSCHAPv2 Response without an OpCode")
            opcode = msg.type_data[0]
            if self._state is _ServerState.WAIT_RESPONSE:
                if opcode == MsChapV2OpCode.FAILURE:
                    raise _Malformed("peer aborted EAP-MSCHAPv2 (Failure Response)")
                if opcode != MsChapV2OpCode.RESPONSE:
                    raise _Malformed(f"expected an MS-CHAPv2 Response, got {_opcode_name(opcode)}")
                return self._on_response(msg)
            if self._state is _ServerState.WAIT_SUCCESS_ACK:
                if opcode == MsChapV2OpCode.FAILURE:
                    raise _Malformed("peer rejected our authenticator response (Failure Response)")
                if opcode != MsChapV2OpCode.SUCCESS:
                    raise _Malformed(f"expected an MS-CHAPv2 Success Response, got {_opcode_name(opcode)}")
                self._state = _ServerState.DONE
                self._outcome = EapOutcome.SUCCESS
                self._msk = self._pending_msk
                return eap_success(msg.identifier)
            raise AssertionError(f"unhandled state {self._state}")  # pragma: no cover
        except (_Malformed, DecodeError) as exc:
            return self._fail(str(exc))

    # -- steps -------------------------------------------------------------------------------

    def _on_identity(self, msg: EapMessage) -> bytes:
        if msg.eap_type != EapType.IDENTITY:
            raise _Malformed(f"expected an EAP-Response/Identity, got EAP type {_type_name(msg)}")
        self._eap_identity = _text(msg.type_data, "EAP identity")
        self._challenge = self._rng.random_bytes(CHALLENGE_LEN)
        self._identifier = next_identifier(self._identifier)
        self._ms_id = self._identifier
        data = bytes([CHALLENGE_LEN]) + self._challenge + self._server_name
        self._state = _ServerState.WAIT_RESPONSE
        return self._request(MsChapV2Packet(MsChapV2OpCode.CHALLENGE, self._ms_id, data))

    def _on_response(self, msg: EapMessage) -> bytes:
        pkt = MsChapV2Packet.decode(msg.type_data)
        if pkt.ms_chapv2_id != self._ms_id:
            raise _Malformed(f"MS-CHAPv2-ID {pkt.ms_chapv2_id} does not match the Challenge's {self._ms_id}")
        if len(pkt.data) < 1 + _RESPONSE_VALUE_SIZE or pkt.data[0] != _RESPONSE_VALUE_SIZE:
            raise _Malformed(f"MS-CHAPv2 Response Value-Size must be {_RESPONSE_VALUE_SIZE}")
        value = pkt.data[1 : 1 + _RESPONSE_VALUE_SIZE]
        peer_challenge = value[:CHALLENGE_LEN]
        nt_response = value[CHALLENGE_LEN + 8 : CHALLENGE_LEN + 8 + NT_RESPONSE_LEN]
        name_bytes = pkt.data[1 + _RESPONSE_VALUE_SIZE :]
        name = _text(name_bytes, "MS-CHAPv2 user name")

        account, nt_hash = self._lookup(name)
        expected = generate_nt_response(
            self._challenge,
            peer_challenge,
            strip_domain(name_bytes),
            nt_hash if nt_hash is not None else _DUMMY_NT_HASH,
        )
        if nt_hash is not None and hmac.compare_digest(expected, nt_response):
            auth = generate_authenticator_response(
                nt_hash, nt_response, peer_challenge, self._challenge, strip_domain(name_bytes)
            )
            self._verified = account
            self._pending_msk = mschapv2_msk(nt_hash, nt_response)
            self._identifier = next_identifier(self._identifier)
            message = authenticator_response_text(auth) + " M=Welcome to " + self._server_name.decode()
            self._state = _ServerState.WAIT_SUCCESS_ACK
            return self._request(MsChapV2Packet(MsChapV2OpCode.SUCCESS, self._ms_id, message.encode()))

        if nt_hash is None:
            self._reason = f"unknown user {name!r} (E={ERROR_AUTHENTICATION_FAILURE})"
        else:
            self._reason = f"wrong password for user {account!r} (E={ERROR_AUTHENTICATION_FAILURE})"
            if isinstance(self._users, FailureRecorder):
                self._users.record_failure(account)
        # RFC 2759 §6: the same Failure for both cases; R=0, so C= is a fresh challenge nobody uses.
        challenge = self._rng.random_bytes(CHALLENGE_LEN).hex().upper()
        text = f"E={ERROR_AUTHENTICATION_FAILURE} R=0 C={challenge} V=3 M=Authentication failed"
        self._identifier = next_identifier(self._identifier)
        self._state = _ServerState.WAIT_FAILURE_ACK
        return self._request(MsChapV2Packet(MsChapV2OpCode.FAILURE, self._ms_id, text.encode()))

    def _lookup(self, name: str) -> tuple[str, bytes | None]:
        """The account for an MS-CHAPv2 Name: as given, else without its ``DOMAIN\\`` prefix."""
        candidates = [name]
        if "\\" in name:
            candidates.append(name.rpartition("\\")[2])
        for candidate in candidates:
            if not candidate:
                continue
            nt_hash = self._users.nt_hash(candidate)
            if nt_hash is not None:
                if len(nt_hash) != NT_HASH_LEN:
                    raise _Malformed(f"the user store returned a {len(nt_hash)}-octet NT hash")
                return candidate, nt_hash
        return name, None

    def _request(self, pkt: MsChapV2Packet) -> bytes:
        return EapMessage(EapCode.REQUEST, self._identifier, EapType.MSCHAPV2, pkt.encode()).encode()

    def _fail(self, reason: str) -> bytes:
        if self._state is _ServerState.WAIT_FAILURE_ACK:  # keep why it failed in the first place
            reason = f"{self._reason}; then {reason}"
        self._state = _ServerState.DONE
        self._outcome = EapOutcome.FAILURE
        self._reason = reason
        self._msk = b""
        self._verified = None
        return eap_failure(self._identifier)

    def __repr__(self) -> str:
        return f"MsChapV2Server(state={self._state.name}, identity={self.identity!r})"


class _PeerState(Enum):
    IDLE = auto()  # before the Challenge (Identity, Notification, Nak possible)
    SENT_RESPONSE = auto()  # NT-Response sent, waiting for Success or Failure Request
    SENT_SUCCESS_ACK = auto()  # gateway verified, waiting for EAP-Success
    SENT_FAILURE_ACK = auto()  # Failure Request answered, waiting for EAP-Failure
    DONE = auto()


class MsChapV2Peer(EapPeer):
    """The client's EAP conversation with EAP-MSCHAPv2 as ``identity`` with ``password``.

    The identity (UTF-8) answers EAP-Identity and is the MS-CHAPv2 Name; a ``DOMAIN\\`` prefix
    is sent but left out of the challenge hash (RFC 2759 §8.2). Only the NT hash of the
    password is kept.
    """

    def __init__(self, identity: str, password: str, *, rng: RandomSource) -> None:
        name = identity.encode("utf-8")
        if len(name) > MAX_NAME_LEN:
            raise ValueError(f"an EAP identity has at most {MAX_NAME_LEN} octets")
        self._name = name
        self._nt_hash = nt_password_hash(password)
        self._rng = rng
        self._state = _PeerState.IDLE
        self._outcome = EapOutcome.CONTINUE
        self._reason = ""
        self._msk = b""
        self._pending_msk = b""
        self._expected_auth = b""
        self._ms_id = 0
        self._last_request: bytes | None = None
        self._last_response: bytes | None = None

    @property
    def outcome(self) -> EapOutcome:
        return self._outcome

    @property
    def msk(self) -> bytes:
        return self._msk

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
            if self._state is _PeerState.SENT_FAILURE_ACK:
                raise _Malformed(f"{self._reason}; then a new Request instead of EAP-Failure")
            if self._last_request is not None:
                assert self._last_response is not None
                if request == self._last_request:  # a retransmission (RFC 3748 §4.1)
                    return self._last_response
                if msg.identifier == self._last_request[1]:
                    raise _Malformed(f"a different EAP-Request reuses Identifier {msg.identifier}")
            response = self._on_request(msg)
        except (_Malformed, DecodeError) as exc:
            self._fail(str(exc))
            return None
        self._last_request, self._last_response = request, response
        return response

    # -- steps -------------------------------------------------------------------------------

    def _on_request(self, msg: EapMessage) -> bytes:
        if msg.eap_type == EapType.NOTIFICATION:
            return self._respond(msg, EapType.NOTIFICATION, b"")
        if msg.eap_type == EapType.IDENTITY:
            if self._state is not _PeerState.IDLE:
                raise _Malformed("EAP-Request/Identity in the middle of EAP-MSCHAPv2")
            return self._respond(msg, EapType.IDENTITY, self._name)
        if msg.eap_type != EapType.MSCHAPV2:
            if self._state is not _PeerState.IDLE:
                raise _Malformed(f"EAP type {_type_name(msg)} requested in the middle of EAP-MSCHAPv2")
            if msg.eap_type == EapType.NAK:
                raise _Malformed("an EAP-Request of type Nak")
            if msg.eap_type == EapType.EXPANDED:
                # RFC 3748 §5.3.2: Expanded Nak (Vendor-Id 0, Vendor-Type 3) listing MSCHAPv2.
                return self._respond(msg, EapType.EXPANDED, _EXPANDED_NAK)
            # RFC 3748 §5.3.1: a legacy Nak proposing the one method we do.
            return self._respond(msg, EapType.NAK, bytes([EapType.MSCHAPV2]))
        pkt = MsChapV2Packet.decode(msg.type_data)
        if pkt.opcode == MsChapV2OpCode.CHALLENGE and self._state is _PeerState.IDLE:
            return self._on_challenge(msg, pkt)
        if pkt.opcode == MsChapV2OpCode.SUCCESS and self._state is _PeerState.SENT_RESPONSE:
            return self._on_success_request(msg, pkt)
        if pkt.opcode == MsChapV2OpCode.FAILURE and self._state is _PeerState.SENT_RESPONSE:
            return self._on_failure_request(msg, pkt)
        raise _Malformed(f"unexpected MS-CHAPv2 {_opcode_name(pkt.opcode)} in state {self._state.name}")

    def _on_challenge(self, msg: EapMessage, pkt: MsChapV2Packet) -> bytes:
        if len(pkt.data) < 1 + CHALLENGE_LEN or pkt.data[0] != CHALLENGE_LEN:
            raise _Malformed(f"MS-CHAPv2 Challenge Value-Size must be {CHALLENGE_LEN}")
        auth_challenge = pkt.data[1 : 1 + CHALLENGE_LEN]
        peer_challenge = self._rng.random_bytes(CHALLENGE_LEN)
        username = strip_domain(self._name)
        nt_response = generate_nt_response(auth_challenge, peer_challenge, username, self._nt_hash)
        self._expected_auth = generate_authenticator_response(
            self._nt_hash, nt_response, peer_challenge, auth_challenge, username
        )
        self._pending_msk = mschapv2_msk(self._nt_hash, nt_response)
        self._ms_id = pkt.ms_chapv2_id
        value = peer_challenge + b"\x00" * 8 + nt_response + b"\x00"  # Reserved and Flags are zero
        data = bytes([_RESPONSE_VALUE_SIZE]) + value + self._name
        self._state = _PeerState.SENT_RESPONSE
        reply = MsChapV2Packet(MsChapV2OpCode.RESPONSE, self._ms_id, data)
        return self._respond(msg, EapType.MSCHAPV2, reply.encode())

    def _on_success_request(self, msg: EapMessage, pkt: MsChapV2Packet) -> bytes:
        if pkt.ms_chapv2_id != self._ms_id:
            raise _Malformed(f"MS-CHAPv2 Success for MS-CHAPv2-ID {pkt.ms_chapv2_id}, not {self._ms_id}")
        # RFC 2759 §5: "S=<40 hex digits>", optionally followed by " M=<message>".
        text = pkt.data
        hex_len = 2 * AUTHENTICATOR_RESPONSE_LEN
        if not text.startswith(b"S=") or (len(text) > 2 + hex_len and text[2 + hex_len] != 0x20):
            raise _Malformed("MS-CHAPv2 Success without an S=<authenticator response>")
        try:
            received = bytes.fromhex(text[2 : 2 + hex_len].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            received = b""
        if len(received) != AUTHENTICATOR_RESPONSE_LEN:
            raise _Malformed("MS-CHAPv2 Success with a malformed S=<authenticator response>")
        if not hmac.compare_digest(received, self._expected_auth):
            raise _Malformed(
                "the gateway's MS-CHAPv2 authenticator response does not verify: "
                "it does not know the password (rogue gateway?)"
            )
        self._state = _PeerState.SENT_SUCCESS_ACK
        return self._respond(msg, EapType.MSCHAPV2, bytes([MsChapV2OpCode.SUCCESS]))

    def _on_failure_request(self, msg: EapMessage, pkt: MsChapV2Packet) -> bytes:
        # RFC 2759 §6: "E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv M=<msg>"
        text = pkt.data
        head, _, message = text.partition(b"M=")
        fields: dict[bytes, bytes] = {}
        for token in head.split():
            key, _, val = token.partition(b"=")
            fields[key] = val
        code_text = fields.get(b"E", b"").decode("ascii", "replace")
        code = int(code_text) if code_text.isdigit() and len(code_text) <= 10 else None
        meaning = _ERROR_NAMES.get(code, "unknown error") if code is not None else "no error code"
        reason = f"the gateway refused the credentials (E={code if code is not None else '?'}, {meaning})"
        if message.strip():
            reason += f": {_printable(message.strip())}"
        self._reason = reason
        self._outcome = EapOutcome.FAILURE
        self._pending_msk = b""
        self._state = _PeerState.SENT_FAILURE_ACK
        return self._respond(msg, EapType.MSCHAPV2, bytes([MsChapV2OpCode.FAILURE]))

    def _on_success(self, msg: EapMessage) -> None:
        if self._state is not _PeerState.SENT_SUCCESS_ACK:
            if self._state is _PeerState.SENT_FAILURE_ACK:
                raise _Malformed(f"{self._reason}; then an EAP-Success, ignored")
            raise _Malformed(
                "EAP-Success before the gateway proved knowledge of the password "
                "(no verified MS-CHAPv2 Success): refused"
            )
        assert self._last_request is not None
        if msg.identifier != self._last_request[1]:
            raise _Malformed(
                f"EAP-Success Identifier {msg.identifier} does not match our Response's "
                f"{self._last_request[1]}"
            )
        assert len(self._pending_msk) == MSK_LEN
        self._msk = self._pending_msk
        self._outcome = EapOutcome.SUCCESS
        self._state = _PeerState.DONE

    def _on_failure(self) -> None:
        if not self._reason:
            self._reason = "the gateway sent EAP-Failure"
        self._outcome = EapOutcome.FAILURE
        self._state = _PeerState.DONE

    def _respond(self, msg: EapMessage, eap_type: EapType, type_data: bytes) -> bytes:
        return EapMessage(EapCode.RESPONSE, msg.identifier, eap_type, type_data).encode()

    def _fail(self, reason: str) -> None:
        self._reason = reason
        self._outcome = EapOutcome.FAILURE
        self._msk = b""
        self._state = _PeerState.DONE

    def __repr__(self) -> str:
        return f"MsChapV2Peer(identity={self._name.decode()!r}, state={self._state.name})"
