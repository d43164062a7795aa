"""RADIUS packets for EAP relay and accounting: building requests, verifying and reading replies.

Theory of operation
-------------------
This module is pure (no I/O, no clock): the client hands it an identifier, a Request
Authenticator and the values to send and gets the packet bytes; it hands it a datagram and the
request it answers and gets a :class:`VerifiedReply` or a :class:`ReplyDropped` naming why.

Attributes are encoded and decoded with pyrad and the small dictionary shipped beside this
module (``dictionary``, package data). The security checks are written out here, on the raw
bytes, so that they are easy to audit:

* Access-Request (RFC 2865 §4.1): a random 16-octet Request Authenticator; the EAP packet split
  into EAP-Message attributes of at most 253 octets (RFC 3579 §3.1); a Message-Authenticator on
  every request (RFC 3579 §3.2), HMAC-MD5 keyed with the shared secret over the whole packet
  with the Message-Authenticator's value zeroed.
* Accounting-Request (RFC 2866 §3): Request Authenticator = MD5(Code | Identifier | Length |
  16 zero octets | attributes | secret). Octet counts of 2**32 and more go into
  Acct-*-Gigawords (RFC 2869 §5.1, §5.2).
* Replies (RFC 2865 §3): Response Authenticator = MD5(Code | Identifier | Length | Request
  Authenticator | attributes | secret), compared in constant time. Every Access-Accept, -Reject
  and -Challenge must carry a valid Message-Authenticator (RFC 3579 §3.2: any packet with an
  EAP-Message must; requiring it always also shuts out BlastRADIUS, CVE-2024-3596), computed
  like the request's but with the Request Authenticator in the Authenticator field (RFC 2869
  §5.14). An Accounting-Response may carry one; if it does it must verify the same way.
* MS-MPPE-Recv-Key and MS-MPPE-Send-Key (RFC 2548 §2.4.2, §2.4.3): Salt (2 octets, high bit
  set) | C(1) | C(2) ..., with b(1) = MD5(secret | Request Authenticator | Salt), c(i) = p(i)
  XOR b(i), b(i) = MD5(secret | c(i-1)); the plaintext is Key-Length | Key | zero padding. The
  MSK is MS-MPPE-Recv-Key | MS-MPPE-Send-Key (RFC 3748 §7.10 keys as RFC 3079 §3.3 names them
  from the NAS's side), the order strongSwan's eap-radius plugin uses, padded with zeros to 64
  octets when the keys are shorter (EAP-MSCHAPv2's are 16 octets each).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from importlib import resources
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any

from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary

from pyipsec.radius.model import (
    AccountingRecord,
    AcctStatus,
    EapRelayAnswer,
    RadiusAnswerKind,
)

__all__ = [
    "ACCESS_ACCEPT",
    "ACCESS_CHALLENGE",
    "ACCESS_REJECT",
    "ACCESS_REQUEST",
    "ACCOUNTING_REQUEST",
    "ACCOUNTING_RESPONSE",
    "MAX_ATTRIBUTE_VALUE",
    "MAX_PACKET",
    "DropReason",
    "ReplyDropped",
    "RequestContext",
    "VerifiedReply",
    "accounting_request_authenticator",
    "answer_from_reply",
    "build_access_request",
    "build_accounting_request",
    "message_authenticator",
    "mppe_decrypt",
    "mppe_encrypt",
    "radius_dictionary",
    "split_eap",
    "verify_reply",
]

ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
ACCESS_CHALLENGE = 11

HEADER_LEN = 20
MAX_PACKET = 4096  # RFC 2865 §3: the largest packet a RADIUS peer sends or accepts
MAX_ATTRIBUTE_VALUE = 253
AUTHENTICATOR_LEN = 16
MSK_LEN = 64  # RFC 3748 §7.10: the MSK has at least 64 octets

_MICROSOFT = 311
_MS_MPPE_SEND_KEY = 16
_MS_MPPE_RECV_KEY = 17
_VENDOR_SPECIFIC = 26
_MESSAGE_AUTHENTICATOR = 80
_EAP_MESSAGE = 79
_STATE = 24
_CLASS = 25
_SESSION_TIMEOUT = 27
_REPLY_MESSAGE = 18
_FRAMED_IP_ADDRESS = 8
_FRAMED_IPV6_PREFIX = 97
_FRAMED_IPV6_ADDRESS = 168

_SERVICE_TYPE_FRAMED = 2
_NAS_PORT_TYPE_VIRTUAL = 5

_ANSWER_KINDS = {
    ACCESS_ACCEPT: RadiusAnswerKind.ACCEPT,
    ACCESS_REJECT: RadiusAnswerKind.REJECT,
    ACCESS_CHALLENGE: RadiusAnswerKind.CHALLENGE,
}


@cache
def radius_dictionary() -> Any:
    """The pyrad dictionary of the attributes this client uses (package data, read once)."""
    text = resources.files(__package__).joinpath("dictionary").read_text(encoding="utf-8")
    return Dictionary(io.StringIO(text))


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()  # noqa: S324 - RADIUS mandates MD5 (RFC 2865 §3)


# -- authenticators (RFC 2865 §3, RFC 2866 §3, RFC 2869 §5.14, RFC 3579 §3.2) -----------------


def message_authenticator(secret: bytes, packet: bytes, vector: bytes) -> bytes:
    """HMAC-MD5 over ``packet`` with ``vector`` in the Authenticator field and every
    Message-Authenticator value zeroed (RFC 2869 §5.14)."""
    zeroed = _zero_message_authenticators(packet[HEADER_LEN:])
    return hmac.new(secret, packet[:4] + vector + zeroed, hashlib.md5).digest()


def accounting_request_authenticator(secret: bytes, packet: bytes) -> bytes:
    """The Request Authenticator of an Accounting-Request (RFC 2866 §3)."""
    return _md5(packet[:4] + bytes(AUTHENTICATOR_LEN) + packet[HEADER_LEN:] + secret)


def _response_authenticator(secret: bytes, reply: bytes, request_authenticator: bytes) -> bytes:
    return _md5(reply[:4] + request_authenticator + reply[HEADER_LEN:] + secret)


def _zero_message_authenticators(attributes: bytes) -> bytes:
    out = bytearray(attributes)
    for offset, code, length in _walk(attributes):
        if code == _MESSAGE_AUTHENTICATOR:
            out[offset + 2 : offset + length] = bytes(length - 2)
    return bytes(out)


def _walk(attributes: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of each attribute; raises ValueError when the lengths do not add up."""
    found: list[tuple[int, int, int]] = []
    offset = 0
    while offset < len(attributes):
        if len(attributes) - offset < 2:
            raise ValueError("truncated attribute header")
        code, length = attributes[offset], attributes[offset + 1]
        if length < 2 or offset + length > len(attributes):
            raise ValueError(f"attribute {code} has an invalid length {length}")
        found.append((offset, code, length))
        offset += length
    return found


# -- MS-MPPE keys (RFC 2548 §2.4.2, §2.4.3) ---------------------------------------------------


def _mppe_stream(secret: bytes, request_authenticator: bytes, salt: bytes, blocks: Sequence[bytes]) -> bytes:
    """XOR key stream chained on the ciphertext blocks ``blocks`` (one block per output block)."""
    out = b""
    previous = request_authenticator + salt
    for block in blocks:
        out += _md5(secret + previous)
        previous = block
    return out


def mppe_decrypt(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """The key inside an MS-MPPE-Send-Key or -Recv-Key value; ValueError if it is malformed."""
    salt, cipher = value[:2], value[2:]
    if len(salt) < 2 or not cipher or len(cipher) % 16:
        raise ValueError("MS-MPPE key value: bad length")
    if not salt[0] & 0x80:
        raise ValueError("MS-MPPE key value: the salt's high bit is clear")
    blocks = [cipher[i : i + 16] for i in range(0, len(cipher), 16)]
    stream = _mppe_stream(secret, request_authenticator, salt, blocks)
    plain = bytes(a ^ b for a, b in zip(cipher, stream, strict=True))
    key_len = plain[0]
    if key_len > len(plain) - 1:
        raise ValueError("MS-MPPE key value: the key length exceeds the value")
    return plain[1 : 1 + key_len]


def mppe_encrypt(key: bytes, secret: bytes, request_authenticator: bytes, salt: bytes) -> bytes:
    """Encrypt ``key`` as an MS-MPPE key value (what a server does; for tests and fakes)."""
    if len(salt) != 2 or not salt[0] & 0x80:
        raise ValueError("the salt has two octets, the first with its high bit set")
    plain = bytes([len(key)]) + key
    plain += bytes(-len(plain) % 16)
    out = b""
    previous = request_authenticator + salt
    for i in range(0, len(plain), 16):
        stream = _md5(secret + previous)
        block = bytes(a ^ b for a, b in zip(plain[i : i + 16], stream, strict=True))
        out += block
        previous = block
    return salt + out


# -- requests ---------------------------------------------------------------------------------


def split_eap(eap: bytes) -> list[bytes]:
    """``eap`` in EAP-Message values of at most 253 octets (RFC 3579 §3.1)."""
    return [eap[i : i + MAX_ATTRIBUTE_VALUE] for i in range(0, len(eap), MAX_ATTRIBUTE_VALUE)]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the client remembers of one sent request to check and read its reply."""

    code: int
    identifier: int
    authenticator: bytes
    secret: bytes = field(default=b"", repr=False)


def _nas_attributes(pkt: Any, nas_identifier: str, nas_ip: str | None) -> None:
    pkt.AddAttribute("NAS-Identifier", nas_identifier)
    if nas_ip is not None:
        address = ipaddress.ip_address(nas_ip)
        name = "NAS-IP-Address" if address.version == 4 else "NAS-IPv6-Address"
        pkt.AddAttribute(name, str(address))


def _check_string(label: str, value: str) -> None:
    if len(value.encode("utf-8")) > MAX_ATTRIBUTE_VALUE:
        raise ValueError(f"{label} is longer than {MAX_ATTRIBUTE_VALUE} octets")


def _finish(raw: bytes) -> bytes:
    if len(raw) > MAX_PACKET:
        raise ValueError(f"the request would have {len(raw)} octets, more than RADIUS allows ({MAX_PACKET})")
    return raw


def build_access_request(
    *,
    identifier: int,
    authenticator: bytes,
    secret: bytes,
    user: str,
    eap: bytes,
    state: bytes | None,
    session: str,
    calling_station: str,
    called_station: str,
    nas_port: int,
    nas_identifier: str,
    nas_ip: str | None,
) -> bytes:
    """An Access-Request relaying ``eap`` (RFC 2865 §4.1, RFC 3579 §3); ValueError if it cannot be."""
    if len(authenticator) != AUTHENTICATOR_LEN:
        raise ValueError("the Request Authenticator has 16 octets")
    if not eap:
        raise ValueError("no EAP packet to relay")
    for label, text in (
        ("User-Name", user),
        ("Acct-Session-Id", session),
        ("Calling-Station-Id", calling_station),
        ("Called-Station-Id", called_station),
    ):
        _check_string(label, text)
    if state is not None and not 0 < len(state) <= MAX_ATTRIBUTE_VALUE:
        raise ValueError("State must have 1 to 253 octets")
    if not 0 <= nas_port < 2**32:
        raise ValueError("NAS-Port is a 32-bit unsigned integer")
    pkt = pyrad_packet.AuthPacket(
        code=ACCESS_REQUEST,
        id=identifier,
        secret=secret,
        authenticator=authenticator,
        dict=radius_dictionary(),
    )
    pkt.add_message_authenticator()  # first attribute, value filled in by RequestPacket
    if user:
        pkt.AddAttribute("User-Name", user)
    _nas_attributes(pkt, nas_identifier, nas_ip)
    pkt.AddAttribute("NAS-Port", nas_port)
    pkt.AddAttribute("NAS-Port-Type", _NAS_PORT_TYPE_VIRTUAL)
    pkt.AddAttribute("Service-Type", _SERVICE_TYPE_FRAMED)
    if called_station:
        pkt.AddAttribute("Called-Station-Id", called_station)
    if calling_station:
        pkt.AddAttribute("Calling-Station-Id", calling_station)
    if session:
        pkt.AddAttribute("Acct-Session-Id", session)
    if state is not None:
        pkt.AddAttribute("State", state)
    pkt.AddAttribute("EAP-Message", split_eap(eap))
    raw = _finish(pkt.RequestPacket())
    # Our own check of what pyrad computed, so a wrong Message-Authenticator never leaves.
    ma = _attribute_values(raw[HEADER_LEN:], _MESSAGE_AUTHENTICATOR)
    if ma != [message_authenticator(secret, raw, authenticator)]:
        raise AssertionError("pyrad computed a wrong Message-Authenticator")
    return raw


def _split_counter(value: int) -> tuple[int, int]:
    return value & 0xFFFFFFFF, value >> 32


def build_accounting_request(
    record: AccountingRecord,
    *,
    identifier: int,
    secret: bytes,
    delay: int,
    nas_identifier: str,
    nas_ip: str | None,
) -> tuple[bytes, bytes]:
    """An Accounting-Request for ``record`` (RFC 2866 §4.1) and its Request Authenticator."""
    for label, text in (
        ("User-Name", record.user),
        ("Acct-Session-Id", record.session),
        ("Calling-Station-Id", record.calling_station),
        ("Called-Station-Id", record.called_station),
    ):
        _check_string(label, text)
    if not record.session:
        raise ValueError("an Accounting-Request needs an Acct-Session-Id")
    pkt = pyrad_packet.AcctPacket(
        code=ACCOUNTING_REQUEST, id=identifier, secret=secret, dict=radius_dictionary()
    )
    pkt.AddAttribute("Acct-Status-Type", int(record.status))
    pkt.AddAttribute("Acct-Session-Id", record.session)
    if record.user:
        pkt.AddAttribute("User-Name", record.user)
    _nas_attributes(pkt, nas_identifier, nas_ip)
    pkt.AddAttribute("NAS-Port", record.nas_port)
    pkt.AddAttribute("NAS-Port-Type", _NAS_PORT_TYPE_VIRTUAL)
    pkt.AddAttribute("Service-Type", _SERVICE_TYPE_FRAMED)
    if record.called_station:
        pkt.AddAttribute("Called-Station-Id", record.called_station)
    if record.calling_station:
        pkt.AddAttribute("Calling-Station-Id", record.calling_station)
    if record.framed_ipv4 is not None:
        pkt.AddAttribute("Framed-IP-Address", str(record.framed_ipv4))
    if record.framed_ipv6_prefix is not None:
        pkt.AddAttribute("Framed-IPv6-Prefix", record.framed_ipv6_prefix)
    for value in record.classes:
        if not 0 < len(value) <= MAX_ATTRIBUTE_VALUE:
            raise ValueError("a Class has 1 to 253 octets")
        pkt.AddAttribute("Class", value)
    if record.status is not AcctStatus.START:
        for name, count in (("Input", record.in_octets), ("Output", record.out_octets)):
            low, high = _split_counter(count)
            pkt.AddAttribute(f"Acct-{name}-Octets", low)
            if high:
                pkt.AddAttribute(f"Acct-{name}-Gigawords", high)
        pkt.AddAttribute("Acct-Input-Packets", record.in_packets)
        pkt.AddAttribute("Acct-Output-Packets", record.out_packets)
        pkt.AddAttribute("Acct-Session-Time", record.session_time)
    if record.status is AcctStatus.STOP and record.terminate_cause is not None:
        pkt.AddAttribute("Acct-Terminate-Cause", int(record.terminate_cause))
    pkt.AddAttribute("Acct-Delay-Time", max(0, min(delay, 2**32 - 1)))
    raw = _finish(pkt.RequestPacket())
    authenticator = raw[4:HEADER_LEN]
    if not hmac.compare_digest(authenticator, accounting_request_authenticator(secret, raw)):
        raise AssertionError("pyrad computed a wrong Accounting Request Authenticator")
    return raw, authenticator


# -- replies ------------------------------------------------------------------------------------


class DropReason(Enum):
    """Why a datagram from a server was not taken as the reply."""

    MALFORMED = "malformed"  # too short, bad lengths, unknown code
    UNEXPECTED = "unexpected"  # a code that does not answer the request
    BAD_AUTHENTICATOR = "bad authenticator"  # Response Authenticator or Message-Authenticator wrong
    MISSING_MESSAGE_AUTHENTICATOR = "missing Message-Authenticator"


@dataclass(frozen=True, slots=True)
class ReplyDropped:
    """A datagram that was dropped, and why (for counters and the log)."""

    reason: DropReason
    detail: str


@dataclass(frozen=True, slots=True)
class VerifiedReply:
    """A reply whose authenticators were verified; ``attributes`` are (type, value) in order."""

    code: int
    identifier: int
    raw: bytes
    attributes: tuple[tuple[int, bytes], ...]


def _attribute_values(attributes: bytes, code: int) -> list[bytes]:
    return [attributes[o + 2 : o + n] for o, c, n in _walk(attributes) if c == code]


def verify_reply(data: bytes, request: RequestContext) -> VerifiedReply | ReplyDropped:
    """Check that ``data`` is a well-formed, authentic reply to ``request`` (RFC 2865 §3)."""
    if len(data) < HEADER_LEN:
        return ReplyDropped(DropReason.MALFORMED, f"{len(data)} octets, shorter than a header")
    code, identifier, length = struct.unpack_from("!BBH", data)
    if length < HEADER_LEN or length > len(data) or length > MAX_PACKET:
        return ReplyDropped(DropReason.MALFORMED, f"Length field {length} for {len(data)} octets")
    raw = data[:length]  # octets past Length are padding (RFC 2865 §3)
    if identifier != request.identifier:
        return ReplyDropped(DropReason.UNEXPECTED, f"identifier {identifier}, expected {request.identifier}")
    expected_codes = (
        (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE)
        if request.code == ACCESS_REQUEST
        else (ACCOUNTING_RESPONSE,)
    )
    if code not in expected_codes:
        return ReplyDropped(DropReason.UNEXPECTED, f"code {code} does not answer code {request.code}")
    wanted = _response_authenticator(request.secret, raw, request.authenticator)
    if not hmac.compare_digest(wanted, raw[4:HEADER_LEN]):
        return ReplyDropped(DropReason.BAD_AUTHENTICATOR, "Response Authenticator mismatch")
    try:
        walked = _walk(raw[HEADER_LEN:])
    except ValueError as exc:
        return ReplyDropped(DropReason.MALFORMED, str(exc))
    attributes = tuple((c, raw[HEADER_LEN + o + 2 : HEADER_LEN + o + n]) for o, c, n in walked)
    mas = [v for c, v in attributes if c == _MESSAGE_AUTHENTICATOR]
    if len(mas) > 1 or any(len(v) != AUTHENTICATOR_LEN for v in mas):
        return ReplyDropped(DropReason.MALFORMED, "more than one or a short Message-Authenticator")
    if not mas:
        if request.code == ACCESS_REQUEST:
            return ReplyDropped(DropReason.MISSING_MESSAGE_AUTHENTICATOR, f"code {code} without one")
    elif not hmac.compare_digest(mas[0], message_authenticator(request.secret, raw, request.authenticator)):
        return ReplyDropped(DropReason.BAD_AUTHENTICATOR, "Message-Authenticator mismatch")
    return VerifiedReply(code, identifier, raw, attributes)


def _single(reply: VerifiedReply, code: int) -> bytes | None:
    values = [v for c, v in reply.attributes if c == code]
    return values[0] if values else None


def _vendor_values(reply: VerifiedReply, vendor: int, vendor_type: int) -> list[bytes]:
    """Values of a vendor attribute in RFC 2865 §5.26 format (sub-attributes with lengths)."""
    values: list[bytes] = []
    for c, v in reply.attributes:
        if c != _VENDOR_SPECIFIC or len(v) < 6 or int.from_bytes(v[:4], "big") != vendor:
            continue
        try:
            subs = _walk(v[4:])
        except ValueError:
            continue
        values += [v[4 + o + 2 : 4 + o + n] for o, t, n in subs if t == vendor_type]
    return values


def _decoded(reply: VerifiedReply, name: str) -> list[Any]:
    """Values of a dictionary attribute decoded by pyrad (ValueError for malformed ones)."""
    try:
        pkt = pyrad_packet.Packet(dict=radius_dictionary(), packet=reply.raw)
        return list(pkt[name]) if name in pkt else []
    except (pyrad_packet.PacketError, KeyError, TypeError, IndexError, ValueError, struct.error) as exc:
        raise ValueError(f"{name}: {exc}") from exc


def _msk(reply: VerifiedReply, request: RequestContext) -> tuple[bytes, str]:
    recv = _vendor_values(reply, _MICROSOFT, _MS_MPPE_RECV_KEY)
    send = _vendor_values(reply, _MICROSOFT, _MS_MPPE_SEND_KEY)
    if len(recv) != 1 or len(send) != 1:
        return b"", "the Access-Accept carries no (or repeated) MS-MPPE keys"
    try:
        recv_key = mppe_decrypt(recv[0], request.secret, request.authenticator)
        send_key = mppe_decrypt(send[0], request.secret, request.authenticator)
    except ValueError as exc:
        return b"", str(exc)
    msk = recv_key + send_key
    if len(msk) < MSK_LEN:
        # EAP-MSCHAPv2 gives two 16-octet keys; the MSK is padded with zeros to 64 octets, the
        # layout of the EAP-MSCHAPv2 MSK (MasterReceiveKey | MasterSendKey | 32 zeros) that the
        # client computes. HMAC pads short keys with zeros, so prf(MSK, ...) is the same as
        # strongSwan's unpadded 32 octets for every HMAC prf.
        msk += bytes(MSK_LEN - len(msk))
    return msk, ""


def answer_from_reply(reply: VerifiedReply, request: RequestContext, server: str) -> EapRelayAnswer:
    """The :class:`EapRelayAnswer` for a verified Access reply; ValueError for malformed values."""
    kind = _ANSWER_KINDS[reply.code]
    eap = b"".join(v for c, v in reply.attributes if c == _EAP_MESSAGE)
    state = _single(reply, _STATE)
    classes = tuple(v for c, v in reply.attributes if c == _CLASS)
    messages = [v for c, v in reply.attributes if c == _REPLY_MESSAGE]
    reply_message = b"\n".join(messages).decode("utf-8", errors="replace")
    if kind is not RadiusAnswerKind.ACCEPT:
        reason = f"Access-{kind.value.capitalize()} from {server}"
        if reply_message:
            reason += f": {reply_message}"
        return EapRelayAnswer(
            kind=kind, eap=eap, state=state, reply_message=reply_message, server=server, reason=reason
        )
    msk, reason = _msk(reply, request)
    ipv4 = _decoded(reply, "Framed-IP-Address")
    ipv6 = _decoded(reply, "Framed-IPv6-Address")
    prefix = _decoded(reply, "Framed-IPv6-Prefix")
    timeout = _single(reply, _SESSION_TIMEOUT)
    if timeout is not None and len(timeout) != 4:
        raise ValueError("Session-Timeout is not a 4-octet integer")
    return EapRelayAnswer(
        kind=kind,
        eap=eap,
        state=state,
        msk=msk,
        framed_ipv4=IPv4Address(ipv4[0]) if ipv4 else None,
        framed_ipv6=IPv6Address(ipv6[0]) if ipv6 else None,
        framed_ipv6_prefix=IPv6Network(prefix[0]) if prefix else None,
        classes=classes,
        session_timeout=int.from_bytes(timeout, "big") if timeout is not None else None,
        reply_message=reply_message,
        server=server,
        reason=reason or f"Access-Accept from {server}",
    )
