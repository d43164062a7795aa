"""RADIUS packets: requests, authenticators, reply verification, MPPE keys (RFC 2865/2866/2869/2548/3579)."""

from __future__ import annotations

import hashlib
import hmac
import struct
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet

from pyipsec.radius import (
    AccountingRecord,
    AcctStatus,
    EapRelayAnswer,
    RadiusAnswerKind,
    RadiusServer,
    RadiusSettings,
    TerminateCause,
)
from pyipsec.radius.codec import (
    ACCESS_ACCEPT,
    ACCESS_CHALLENGE,
    ACCESS_REJECT,
    ACCESS_REQUEST,
    ACCOUNTING_REQUEST,
    ACCOUNTING_RESPONSE,
    DropReason,
    ReplyDropped,
    RequestContext,
    VerifiedReply,
    answer_from_reply,
    build_access_request,
    build_accounting_request,
    mppe_decrypt,
    mppe_encrypt,
    radius_dictionary,
    split_eap,
    verify_reply,
)
from tests.support.radius_fake import Request, encrypt_mppe, parse, reply, request_authenticator_ok, vsa

SECRET = b"unit-test-secret"
AUTH = bytes(range(16))


def access_request(
    *, eap: bytes = b"\x02\x01\x00\x0a\x01alice", state: bytes | None = None, **kw: object
) -> bytes:
    args: dict[str, object] = dict(
        identifier=7,
        authenticator=AUTH,
        secret=SECRET,
        user="alice",
        eap=eap,
        state=state,
        session="sess-1",
        calling_station="198.51.100.7[4500]",
        called_station="192.0.2.1[4500]",
        nas_port=3,
        nas_identifier="gw1",
        nas_ip="192.0.2.1",
    )
    args.update(kw)
    return build_access_request(**args)  # type: ignore[arg-type]


def context(raw: bytes, secret: bytes = SECRET) -> RequestContext:
    req = parse(raw)
    return RequestContext(req.code, req.identifier, req.authenticator, secret)


def expected_ma(raw: bytes, secret: bytes, vector: bytes) -> bytes:
    """RFC 3579 §3.2 computed independently: HMAC-MD5 over the packet, MA value zeroed."""
    out, i = bytearray(raw), 20
    while i < len(raw):
        if raw[i] == 80:
            out[i + 2 : i + 18] = bytes(16)
        i += raw[i + 1]
    out[4:20] = vector
    return hmac.new(secret, bytes(out), hashlib.md5).digest()


# -- requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "chunks"), [(1, [1]), (253, [253]), (254, [253, 1]), (600, [253, 253, 94])])
def test_split_eap(size: int, chunks: list[int]) -> None:
    eap = bytes(i % 251 for i in range(size))
    parts = split_eap(eap)
    assert [len(p) for p in parts] == chunks
    assert b"".join(parts) == eap


def test_access_request_carries_eap_in_253_octet_attributes() -> None:
    eap = bytes([2, 9]) + struct.pack("!H", 600) + bytes(i % 256 for i in range(596))
    req = parse(access_request(eap=eap))
    assert [len(v) for v in req.values(79)] == [253, 253, 94]
    assert b"".join(req.values(79)) == eap


def test_access_request_attributes() -> None:
    req = parse(access_request(state=b"st-1"))
    assert req.code == ACCESS_REQUEST and req.identifier == 7 and req.authenticator == AUTH
    assert req.value(1) == b"alice"
    assert req.value(4) == bytes([192, 0, 2, 1])  # NAS-IP-Address
    assert req.value(5) == struct.pack("!I", 3)  # NAS-Port
    assert req.value(6) == struct.pack("!I", 2)  # Service-Type Framed
    assert req.value(61) == struct.pack("!I", 5)  # NAS-Port-Type Virtual
    assert req.value(24) == b"st-1"  # State
    assert req.value(30) == b"192.0.2.1[4500]"  # Called-Station-Id
    assert req.value(31) == b"198.51.100.7[4500]"  # Calling-Station-Id
    assert req.value(32) == b"gw1"  # NAS-Identifier
    assert req.value(44) == b"sess-1"  # Acct-Session-Id
    assert req.value(24) is not None
    assert parse(access_request()).value(24) is None


def test_access_request_nas_ipv6() -> None:
    req = parse(access_request(nas_ip="2001:db8::1"))
    assert req.value(95) == IPv6Address("2001:db8::1").packed
    assert req.value(4) is None


def test_every_access_request_has_a_valid_message_authenticator() -> None:
    raw = access_request(eap=bytes(700))
    req = parse(raw)
    assert len(req.values(80)) == 1
    assert req.value(80) == expected_ma(raw, SECRET, AUTH)
    assert req.value(80) != bytes(16)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "x" * 254),
        ("eap", b""),
        ("eap", bytes(5000)),
        ("state", b""),
        ("calling_station", "é" * 127),
        ("nas_port", -1),
        ("nas_port", 2**32),
    ],
)
def test_unencodable_access_requests_raise_value_error(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        access_request(**{field: value})


def record(**kw: object) -> AccountingRecord:
    args: dict[str, object] = dict(status=AcctStatus.STOP, session="s-9", user="bob", nas_port=4)
    args.update(kw)
    return AccountingRecord(**args)  # type: ignore[arg-type]


def accounting(rec: AccountingRecord, delay: int = 0) -> tuple[bytes, bytes]:
    return build_accounting_request(
        rec, identifier=9, secret=SECRET, delay=delay, nas_identifier="gw1", nas_ip="192.0.2.1"
    )


def test_accounting_request_authenticator_rfc2866() -> None:
    raw, auth = accounting(record(in_octets=5))
    assert request_authenticator_ok(raw, SECRET)
    assert auth == raw[4:20]
    assert not request_authenticator_ok(raw, b"other")
    assert parse(raw).code == ACCOUNTING_REQUEST
    assert parse(raw).value(80) is None


def test_accounting_gigawords_and_counters() -> None:
    big = 3 * 2**32 + 17
    raw, _ = accounting(
        record(
            in_octets=big,
            out_octets=2**32 - 1,
            in_packets=11,
            out_packets=12,
            session_time=99,
            terminate_cause=TerminateCause.IDLE_TIMEOUT,
            classes=(b"c1", b"c2"),
            framed_ipv4=IPv4Address("10.1.2.3"),
            framed_ipv6_prefix=IPv6Network("fd00:1::/64"),
        ),
        delay=4,
    )
    req = parse(raw)

    def integer(code: int) -> int | None:
        value = req.value(code)
        return None if value is None else int.from_bytes(value, "big")

    assert integer(40) == 2  # Stop
    assert integer(42) == 17 and integer(52) == 3  # Input-Octets, Input-Gigawords
    assert integer(43) == 2**32 - 1 and integer(53) is None
    assert integer(47) == 11 and integer(48) == 12 and integer(46) == 99
    assert integer(49) == 4  # Idle-Timeout
    assert integer(41) == 4  # Acct-Delay-Time
    assert req.values(25) == [b"c1", b"c2"]
    assert req.value(8) == bytes([10, 1, 2, 3])
    prefix = req.value(97)  # RFC 3162 §2.3: Reserved, Prefix-Length, up to 16 prefix octets
    assert prefix is not None and prefix[:2] == bytes([0, 64])
    assert prefix[2:].ljust(16, b"\0") == IPv6Network("fd00:1::/64").network_address.packed
    assert req.value(44) == b"s-9"


def test_accounting_start_has_no_counters_and_interim_no_cause() -> None:
    start = parse(accounting(record(status=AcctStatus.START, in_octets=5))[0])
    assert {c for c, _ in start.attributes}.isdisjoint({42, 43, 46, 47, 48, 49, 52, 53})
    interim = parse(
        accounting(record(status=AcctStatus.INTERIM, terminate_cause=TerminateCause.NAS_ERROR))[0]
    )
    assert interim.value(49) is None and interim.value(42) == bytes(4)


def test_accounting_record_validation() -> None:
    with pytest.raises(ValueError, match="in_octets"):
        record(in_octets=2**64)
    with pytest.raises(ValueError, match="packet counts"):
        record(in_packets=2**32)


def test_terminate_cause_values_rfc2866() -> None:
    assert TerminateCause.USER_REQUEST == 1 and TerminateCause.LOST_CARRIER == 2
    assert TerminateCause.IDLE_TIMEOUT == 4 and TerminateCause.SESSION_TIMEOUT == 5
    assert TerminateCause.ADMIN_RESET == 6 and TerminateCause.NAS_ERROR == 9
    assert TerminateCause.NAS_REQUEST == 10 and TerminateCause.NAS_REBOOT == 11
    assert TerminateCause.HOST_REQUEST == 18


# -- reply verification -----------------------------------------------------------------------


@pytest.fixture
def sent() -> tuple[Request, RequestContext]:
    raw = access_request()
    return parse(raw), context(raw)


def test_good_reply_verifies(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    for code in (ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE):
        result = verify_reply(reply(req, code, [(79, b"\x03\x01\x00\x04")], secret=SECRET), ctx)
        assert isinstance(result, VerifiedReply) and result.code == code


# RFC 2865 §7.1: the PAP example (secret "xyzzy5461"), request and Access-Accept as printed.
RFC2865_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a01086e656d6f02120dbe708d93d413ce3196e43f782a0aee"
    "0406c0a80110050600000003"
)
RFC2865_ACCEPT = bytes.fromhex("0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103")


def test_rfc2865_example_response_authenticator() -> None:
    ctx = RequestContext(ACCESS_REQUEST, 0, RFC2865_REQUEST[4:20], b"xyzzy5461")
    # The Response Authenticator verifies; the example predates RFC 3579, so it has no
    # Message-Authenticator, which an EAP relay requires.
    assert drop(verify_reply(RFC2865_ACCEPT, ctx)) is DropReason.MISSING_MESSAGE_AUTHENTICATOR
    wrong = RequestContext(ACCESS_REQUEST, 0, RFC2865_REQUEST[4:20], b"xyzzy5462")
    assert drop(verify_reply(RFC2865_ACCEPT, wrong)) is DropReason.BAD_AUTHENTICATOR


def test_padding_after_length_is_ignored(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    assert isinstance(verify_reply(reply(req, ACCESS_ACCEPT, secret=SECRET) + b"pad", ctx), VerifiedReply)


def drop(result: VerifiedReply | ReplyDropped) -> DropReason:
    assert isinstance(result, ReplyDropped), result
    return result.reason


def test_bad_response_authenticator_dropped(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    assert drop(verify_reply(reply(req, ACCESS_ACCEPT, secret=b"wrong"), ctx)) is DropReason.BAD_AUTHENTICATOR
    good = bytearray(reply(req, ACCESS_ACCEPT, secret=SECRET))
    good[10] ^= 1
    assert drop(verify_reply(bytes(good), ctx)) is DropReason.BAD_AUTHENTICATOR


def test_bad_message_authenticator_dropped(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    raw = bytearray(reply(req, ACCESS_CHALLENGE, [(79, b"\x01\x02\x00\x04")], secret=SECRET))
    raw[22] ^= 0xFF  # inside the Message-Authenticator value; re-sign the Response Authenticator
    raw[4:20] = hashlib.md5(bytes(raw[:4]) + req.authenticator + bytes(raw[20:]) + SECRET).digest()
    assert drop(verify_reply(bytes(raw), ctx)) is DropReason.BAD_AUTHENTICATOR


@pytest.mark.parametrize("code", [ACCESS_ACCEPT, ACCESS_REJECT, ACCESS_CHALLENGE])
def test_missing_message_authenticator_dropped(sent: tuple[Request, RequestContext], code: int) -> None:
    req, ctx = sent
    raw = reply(req, code, [(79, b"\x03\x01\x00\x04")], secret=SECRET, message_authenticator=False)
    assert drop(verify_reply(raw, ctx)) is DropReason.MISSING_MESSAGE_AUTHENTICATOR


def test_wrong_identifier_or_code_dropped(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    assert (
        drop(verify_reply(reply(req, ACCESS_ACCEPT, secret=SECRET, identifier=8), ctx))
        is DropReason.UNEXPECTED
    )
    assert drop(verify_reply(reply(req, ACCOUNTING_RESPONSE, secret=SECRET), ctx)) is DropReason.UNEXPECTED


def test_malformed_replies_dropped(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    assert drop(verify_reply(b"\x02\x07", ctx)) is DropReason.MALFORMED
    good = reply(req, ACCESS_ACCEPT, secret=SECRET)
    assert drop(verify_reply(good[:-1], ctx)) is DropReason.MALFORMED  # shorter than Length
    # An attribute with length 1, correctly signed: the lengths do not add up.
    header = struct.pack("!BBH", ACCESS_ACCEPT, req.identifier, 23)
    body = b"\x12\x01\x00"
    raw = header + hashlib.md5(header + req.authenticator + body + SECRET).digest() + body
    assert drop(verify_reply(raw, ctx)) is DropReason.MALFORMED


def test_accounting_response_with_and_without_message_authenticator() -> None:
    raw, _ = accounting(record())
    req, ctx = parse(raw), context(raw)
    assert isinstance(
        verify_reply(reply(req, ACCOUNTING_RESPONSE, secret=SECRET, message_authenticator=False), ctx),
        VerifiedReply,
    )
    assert isinstance(verify_reply(reply(req, ACCOUNTING_RESPONSE, secret=SECRET), ctx), VerifiedReply)
    assert drop(verify_reply(reply(req, ACCESS_ACCEPT, secret=SECRET), ctx)) is DropReason.UNEXPECTED


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    ctx = RequestContext(ACCESS_REQUEST, data[1] if len(data) > 1 else 0, AUTH, SECRET)
    result = verify_reply(data, ctx)
    assert isinstance(result, ReplyDropped | VerifiedReply)


@given(
    st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=40)), max_size=12), st.sampled_from([2, 3, 11])
)
def test_arbitrary_signed_attributes_never_raise(attributes: list[tuple[int, bytes]], code: int) -> None:
    """Authentic replies with arbitrary attribute values: an answer or a ValueError, nothing else."""
    req = parse(access_request())
    raw = reply(req, code, [(c, v) for c, v in attributes if c != 80], secret=SECRET)
    result = verify_reply(raw, context(access_request()))
    assert isinstance(result, VerifiedReply)
    try:
        answer = answer_from_reply(result, context(access_request()), "s")
    except ValueError:
        return
    assert isinstance(answer, EapRelayAnswer)


# -- MS-MPPE keys (RFC 2548 §2.4.2/§2.4.3) ----------------------------------------------------

# Captured from FreeRADIUS 3.2.1 (EAP-MSCHAPv2 Access-Accept, secret "capture-secret"); the keys
# are the MSK halves our own MsChapV2Peer computed in the same conversation.
CAPTURE_SECRET = b"capture-secret"
CAPTURE_REQUEST_AUTH = bytes.fromhex("5513e7d40266ea46cdf0ec25a956f1b4")
CAPTURE_SEND = bytes.fromhex("84fe0f9e354b703b518eed8f211e01c756a517cc86a1a5110d7579fb2bd57961b724")
CAPTURE_RECV = bytes.fromhex("8f857d8b9b3125cccd6215fabc7991d804fa3571b84d4eefcb35affbae679d0cbecb")
CAPTURE_MSK = bytes.fromhex("f1ba642887523f6ae41afa8d78bbe970611b45127a6e2a4b16d4441163174b90") + bytes(32)


def test_mppe_decrypt_freeradius_capture() -> None:
    recv = mppe_decrypt(CAPTURE_RECV, CAPTURE_SECRET, CAPTURE_REQUEST_AUTH)
    send = mppe_decrypt(CAPTURE_SEND, CAPTURE_SECRET, CAPTURE_REQUEST_AUTH)
    assert recv + send + bytes(32) == CAPTURE_MSK


def test_msk_from_capture_is_recv_then_send() -> None:
    req = Request(b"", ACCESS_REQUEST, 5, CAPTURE_REQUEST_AUTH, ())
    raw = reply(
        req,
        ACCESS_ACCEPT,
        [(79, b"\x03\x05\x00\x04"), vsa(311, 16, CAPTURE_SEND), vsa(311, 17, CAPTURE_RECV)],
        secret=CAPTURE_SECRET,
    )
    ctx = RequestContext(ACCESS_REQUEST, 5, CAPTURE_REQUEST_AUTH, CAPTURE_SECRET)
    verified = verify_reply(raw, ctx)
    assert isinstance(verified, VerifiedReply)
    answer = answer_from_reply(verified, ctx, "fr")
    assert answer.kind is RadiusAnswerKind.ACCEPT and answer.msk == CAPTURE_MSK


@pytest.mark.parametrize("key_len", [16, 32, 47])
def test_mppe_round_trip_and_independent_encryption(key_len: int) -> None:
    key = bytes(range(100, 100 + key_len))
    ours = mppe_encrypt(key, SECRET, AUTH, b"\x9a\x01")
    assert ours == encrypt_mppe(key, SECRET, AUTH, b"\x9a\x01")
    assert mppe_decrypt(ours, SECRET, AUTH) == key


def test_pyrad_salt_decrypt_agrees() -> None:
    """pyrad's SaltDecrypt (RFC 2868 §3.5 scheme) gives the same keys on the capture."""
    pkt = pyrad_packet.Packet(secret=CAPTURE_SECRET, dict=radius_dictionary())
    pkt.request_authenticator = CAPTURE_REQUEST_AUTH
    assert pkt.SaltDecrypt(CAPTURE_RECV) + pkt.SaltDecrypt(CAPTURE_SEND) + bytes(32) == CAPTURE_MSK


@pytest.mark.parametrize(
    "value",
    [b"", b"\x80", b"\x80\x01" + bytes(15), b"\x00\x01" + bytes(16), b"\x80\x01" + bytes(17)],
)
def test_mppe_malformed(value: bytes) -> None:
    with pytest.raises(ValueError, match="MS-MPPE"):
        mppe_decrypt(value, SECRET, AUTH)


def test_mppe_key_length_beyond_value() -> None:
    bogus = encrypt_mppe(b"k" * 15, SECRET, AUTH)
    # Re-encrypt a plaintext whose length octet claims 40 octets in one block.
    plain = bytes([40]) + bytes(15)
    stream = hashlib.md5(SECRET + AUTH + bogus[:2]).digest()
    forged = bogus[:2] + bytes(a ^ b for a, b in zip(plain, stream, strict=True))
    with pytest.raises(ValueError, match="exceeds"):
        mppe_decrypt(forged, SECRET, AUTH)


# -- answers ----------------------------------------------------------------------------------


def test_accept_answer_attributes(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    recv, send = bytes(range(32)), bytes(range(32, 64))
    raw = reply(
        req,
        ACCESS_ACCEPT,
        [
            (79, b"\x03\x01\x00\x04"),
            (8, bytes([10, 9, 0, 5])),
            (168, IPv6Address("fd00:9::5").packed),
            (97, bytes([0, 64]) + IPv6Address("fd00:9::").packed[:8]),
            (25, b"class-a"),
            (25, b"class-b"),
            (27, struct.pack("!I", 3600)),
            (18, b"welcome"),
            vsa(311, 17, encrypt_mppe(recv, SECRET, req.authenticator)),
            vsa(311, 16, encrypt_mppe(send, SECRET, req.authenticator)),
        ],
        secret=SECRET,
    )
    verified = verify_reply(raw, ctx)
    assert isinstance(verified, VerifiedReply)
    answer = answer_from_reply(verified, ctx, "primary")
    assert answer.kind is RadiusAnswerKind.ACCEPT
    assert answer.eap == b"\x03\x01\x00\x04"
    assert answer.msk == recv + send
    assert answer.framed_ipv4 == IPv4Address("10.9.0.5")
    assert answer.framed_ipv6 == IPv6Address("fd00:9::5")
    assert answer.framed_ipv6_prefix == IPv6Network("fd00:9::/64")
    assert answer.classes == (b"class-a", b"class-b")
    assert answer.session_timeout == 3600
    assert answer.reply_message == "welcome"
    assert answer.server == "primary"
    assert recv.hex() not in repr(answer) and "msk" not in repr(answer)


def test_accept_without_keys_has_no_msk(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    verified = verify_reply(reply(req, ACCESS_ACCEPT, [(79, b"\x03\x01\x00\x04")], secret=SECRET), ctx)
    assert isinstance(verified, VerifiedReply)
    answer = answer_from_reply(verified, ctx, "s")
    assert answer.kind is RadiusAnswerKind.ACCEPT and answer.msk == b"" and "MS-MPPE" in answer.reason


def test_challenge_reassembles_eap_and_returns_state(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    eap = bytes([1, 3]) + struct.pack("!H", 700) + bytes(696)
    chunks = [(79, eap[i : i + 253]) for i in range(0, len(eap), 253)]
    verified = verify_reply(reply(req, ACCESS_CHALLENGE, [*chunks, (24, b"state-2")], secret=SECRET), ctx)
    assert isinstance(verified, VerifiedReply)
    answer = answer_from_reply(verified, ctx, "s")
    assert answer.kind is RadiusAnswerKind.CHALLENGE and answer.eap == eap and answer.state == b"state-2"


def test_malformed_framed_address_is_a_value_error(sent: tuple[Request, RequestContext]) -> None:
    req, ctx = sent
    verified = verify_reply(reply(req, ACCESS_ACCEPT, [(8, b"\x01\x02\x03")], secret=SECRET), ctx)
    assert isinstance(verified, VerifiedReply)
    with pytest.raises(ValueError, match="Framed-IP-Address"):
        answer_from_reply(verified, ctx, "s")


# -- models -----------------------------------------------------------------------------------


def test_secrets_stay_out_of_reprs() -> None:
    server = RadiusServer("a", "192.0.2.9", secret=b"topsecret")
    assert "topsecret" not in repr(server)
    assert "topsecret" not in repr(RadiusSettings((server,)))
    assert "topsecret" not in repr(RequestContext(1, 2, AUTH, b"topsecret"))


def test_settings_validation() -> None:
    server = RadiusServer("a", "192.0.2.9", secret=b"s")
    with pytest.raises(ValueError, match="at least one server"):
        RadiusSettings(())
    with pytest.raises(ValueError, match="unique"):
        RadiusSettings((server, server))
    with pytest.raises(ValueError, match="not an IP address"):
        RadiusServer("b", "radius.example", secret=b"s")
    with pytest.raises(ValueError, match="secret"):
        RadiusServer("b", "192.0.2.1", secret=b"")
    with pytest.raises(ValueError, match="tries"):
        RadiusSettings((server,), tries=0)


def test_dictionary_is_package_data() -> None:
    d = radius_dictionary()
    assert d.attributes["EAP-Message"].code == 79
    assert d.attributes["Message-Authenticator"].code == 80
    assert d.attributes["Framed-IPv6-Prefix"].code == 97
    assert d.attributes["Framed-IPv6-Address"].code == 168
    assert d.attributes["MS-MPPE-Send-Key"].code == 16 and d.attributes["MS-MPPE-Recv-Key"].code == 17
