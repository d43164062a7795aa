"""MsChapV2Server: the RFC 2759 §9.2 values, whole server <-> peer conversations, hostile peers."""

from __future__ import annotations

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.errors import DecodeError, EapError
from pyipsec.iana.ikev2 import EapCode, EapType
from pyipsec.ike.eap import (
    MSK_LEN,
    EapOutcome,
    EapServer,
    FailureRecorder,
    MsChapV2Peer,
    MsChapV2Server,
    UserStore,
)
from pyipsec.ike.eap.mschapv2 import MsChapV2OpCode, MsChapV2Packet
from pyipsec.wire.payloads.eap import EapMessage
from tests.unit.eap._support import VECTORS, DictUsers, ScriptedRandom, h, mschap, response

V = VECTORS["rfc2759"]
C = VECTORS["conversation"]


def run(server: MsChapV2Server, p: MsChapV2Peer) -> list[bytes]:
    """Drive a whole conversation; the list of every packet, in order."""
    packets = [server.start()]
    while True:
        answer = p.process(packets[-1])
        if answer is None:
            return packets
        packets.append(answer)
        packets.append(server.process(answer))


def server_at_challenge(users: DictUsers | None = None, identity: bytes = b"User") -> MsChapV2Server:
    """A server (identifiers 0x10, 0x11, ...) that has sent the RFC 2759 authenticator challenge."""
    rng = ScriptedRandom([b"\x10", h(V["authenticator_challenge"]), bytes(16)])
    s = MsChapV2Server(users or DictUsers(User="clientPass"), rng=rng)
    assert s.start() == bytes.fromhex("0110000501")
    challenge = s.process(response(0x10, EapType.IDENTITY, identity))
    assert challenge == bytes.fromhex("011100211a0111001c10") + h(V["authenticator_challenge"]) + b"pyipsec"
    return s


def vector_response(ms_id: int = 0x11, identifier: int = 0x11, name: bytes = b"User") -> bytes:
    """C["challenge_response"] re-framed for the server's identifiers (0x11 instead of 0x42)."""
    value = h(C["challenge_response"])[9 : 9 + 1 + 49]
    return response(identifier, EapType.MSCHAPV2, mschap(MsChapV2OpCode.RESPONSE, ms_id, value + name))


def assert_failed(s: MsChapV2Server, out: bytes, identifier: int, *words: str) -> None:
    assert out == bytes([4, identifier, 0, 4])
    assert s.outcome is EapOutcome.FAILURE
    assert s.msk == b""
    for word in words:
        assert word in s.reason


# -- known answers ----------------------------------------------------------------------------


def test_server_verifies_the_rfc2759_response_and_proves_itself() -> None:
    s = server_at_challenge()
    success = s.process(vector_response())
    msg = EapMessage.decode(success)
    assert (msg.code, msg.identifier, msg.eap_type) == (EapCode.REQUEST, 0x12, EapType.MSCHAPV2)
    pkt = MsChapV2Packet.decode(msg.type_data)
    assert (pkt.opcode, pkt.ms_chapv2_id) == (MsChapV2OpCode.SUCCESS, 0x11)
    assert pkt.data == V["authenticator_response"].encode() + b" M=Welcome to pyipsec"
    assert s.outcome is EapOutcome.CONTINUE and s.msk == b""
    assert s.process(response(0x12, EapType.MSCHAPV2, b"\x03")) == bytes.fromhex("03120004")
    assert s.outcome is EapOutcome.SUCCESS
    assert s.msk == h(VECTORS["msk"]["msk"])
    assert s.identity == "User"


# -- whole conversations ----------------------------------------------------------------------


def test_right_password() -> None:
    users = DictUsers(alice="correct horse")
    s = MsChapV2Server(users, rng=SeededRandom(1), server_name="vpn.example")
    p = MsChapV2Peer("alice", "correct horse", rng=SeededRandom(2))
    assert isinstance(s, EapServer) and isinstance(users, UserStore) and isinstance(users, FailureRecorder)
    packets = run(s, p)
    assert len(packets) == 7  # Identity, Challenge, Success request, EAP-Success and three responses
    assert EapMessage.decode(packets[-1]).code == EapCode.SUCCESS
    assert s.outcome is p.outcome is EapOutcome.SUCCESS
    assert len(s.msk) == MSK_LEN and s.msk == p.msk and s.msk[32:] == bytes(32)
    assert s.identity == s.eap_identity == "alice"
    assert s.reason == p.reason == "" and users.failures == []


def test_msk_differs_per_conversation() -> None:
    msks = set()
    for seed in range(3):
        s = MsChapV2Server(DictUsers(alice="pw"), rng=SeededRandom(seed))
        p = MsChapV2Peer("alice", "pw", rng=SeededRandom(seed + 100))
        run(s, p)
        msks.add(s.msk)
    assert len(msks) == 3


@pytest.mark.parametrize(
    ("name", "password"),
    [("jürgen", "pässwörd"), ("用户", "密码🔑"), ("a", "x" * 256), ("x" * 256, "p")],
)
def test_unicode_and_long_credentials(name: str, password: str) -> None:
    s = MsChapV2Server(DictUsers(**{name: password}), rng=SeededRandom(7))
    p = MsChapV2Peer(name, password, rng=SeededRandom(8))
    run(s, p)
    assert s.outcome is p.outcome is EapOutcome.SUCCESS
    assert s.identity == name


def test_domain_prefixed_name_finds_the_account() -> None:
    users = DictUsers(alice="pw")
    s = MsChapV2Server(users, rng=SeededRandom(1))
    p = MsChapV2Peer("CORP\\alice", "pw", rng=SeededRandom(2))
    run(s, p)
    assert s.outcome is EapOutcome.SUCCESS
    assert s.eap_identity == "CORP\\alice"
    assert s.identity == "alice"
    assert users.lookups == ["CORP\\alice", "alice"]


def test_wrong_password_gets_e691_and_ends_in_failure() -> None:
    users = DictUsers(alice="right")
    s = MsChapV2Server(users, rng=SeededRandom(1))
    p = MsChapV2Peer("alice", "wrong", rng=SeededRandom(2))
    packets = run(s, p)
    failure_request = EapMessage.decode(packets[4])
    pkt = MsChapV2Packet.decode(failure_request.type_data)
    assert pkt.opcode == MsChapV2OpCode.FAILURE
    text = pkt.data.decode()
    assert text.startswith("E=691 R=0 C=") and text.endswith(" V=3 M=Authentication failed")
    assert len(text.split()[2]) == 2 + 32
    assert packets[5] == response(failure_request.identifier, EapType.MSCHAPV2, b"\x04")
    assert packets[6] == bytes([4, failure_request.identifier, 0, 4])
    assert s.outcome is p.outcome is EapOutcome.FAILURE
    assert s.msk == p.msk == b""
    assert s.reason == "wrong password for user 'alice' (E=691)"
    assert "E=691" in p.reason and "authentication failure" in p.reason
    assert users.failures == ["alice"]
    assert s.identity == "alice"  # the claimed identity, for the log


def test_unknown_user_looks_like_a_wrong_password() -> None:
    def failure_text(users: DictUsers, name: str) -> tuple[int, bytes]:
        s = MsChapV2Server(users, rng=SeededRandom(1))
        packets = run(s, MsChapV2Peer(name, "pw", rng=SeededRandom(2)))
        assert s.outcome is EapOutcome.FAILURE
        return len(packets), MsChapV2Packet.decode(EapMessage.decode(packets[4]).type_data).data

    users = DictUsers(alice="other")
    unknown = failure_text(users, "mallory")
    wrong = failure_text(users, "alice")
    assert unknown[0] == wrong[0]
    assert unknown[1].split(b"C=")[0] == wrong[1].split(b"C=")[0]
    assert users.failures == ["alice"]  # no row to count for an unknown name
    s = MsChapV2Server(users, rng=SeededRandom(1))
    run(s, MsChapV2Peer("mallory", "pw", rng=SeededRandom(2)))
    assert s.reason == "unknown user 'mallory' (E=691)"


def test_store_without_failure_counter() -> None:
    class HashOnly:
        def nt_hash(self, username: str) -> bytes | None:
            return DictUsers(bob="pw").hashes.get(username)

    s = MsChapV2Server(HashOnly(), rng=SeededRandom(1))
    run(s, MsChapV2Peer("bob", "nope", rng=SeededRandom(2)))
    assert s.outcome is EapOutcome.FAILURE and "wrong password" in s.reason


def test_store_returning_a_bad_hash_fails_cleanly() -> None:
    class Broken:
        def nt_hash(self, username: str) -> bytes | None:
            return b"short"

    s = MsChapV2Server(Broken(), rng=SeededRandom(1))
    run(s, MsChapV2Peer("bob", "pw", rng=SeededRandom(2)))
    assert s.outcome is EapOutcome.FAILURE and "5-octet NT hash" in s.reason


# -- hostile or broken peers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "words"),
    [
        (b"", "malformed"),
        (b"\x02\x10\x00\x09\x01ab", "malformed"),  # Length says 9, 7 octets
        (bytes.fromhex("0211000501"), "Identifier 17 does not match the Request's 16"),
        (bytes.fromhex("0110000501"), "expected an EAP-Response"),
        (bytes.fromhex("03100004"), "expected an EAP-Response"),
        (response(0x10, EapType.NAK, b"\x1a"), "expected an EAP-Response/Identity"),
        (response(0x10, EapType.IDENTITY, b"\xff\xfe"), "not UTF-8"),
        (response(0x10, EapType.IDENTITY, b"u" * 257), "longer than 256"),
    ],
)
def test_hostile_identity_responses(packet: bytes, words: str) -> None:
    s = MsChapV2Server(DictUsers(alice="pw"), rng=ScriptedRandom([b"\x10"]))
    s.start()
    assert_failed(s, s.process(packet), 0x10, words)
    assert s.identity is None


@pytest.mark.parametrize(
    ("packet", "words"),
    [
        (response(0x11, EapType.NAK, b"\x04\x06"), "Nak; it proposes EAP types 4, 6"),
        (response(0x11, EapType.NAK), "proposes EAP types none"),
        (response(0x11, EapType.MD5_CHALLENGE, b"\x10" + bytes(16)), "EAP type"),
        (response(0x11, EapType.MSCHAPV2), "without an OpCode"),
        (response(0x11, EapType.MSCHAPV2, b"\x04"), "peer aborted"),
        (response(0x11, EapType.MSCHAPV2, b"\x03"), "got SUCCESS"),
        (response(0x11, EapType.MSCHAPV2, b"\x02\x11\x00"), "shorter than its header"),
        (response(0x11, EapType.MSCHAPV2, b"\x02\x11\x00\x40" + bytes([49]) + bytes(49)), "MS-Length"),
        (response(0x11, EapType.MSCHAPV2, mschap(2, 0x11, bytes([48]) + bytes(49))), "Value-Size"),
        (response(0x11, EapType.MSCHAPV2, mschap(2, 0x11, bytes([49]) + bytes(40))), "Value-Size"),
        (
            response(0x11, EapType.MSCHAPV2, mschap(2, 0x12, bytes([49]) + bytes(49) + b"User")),
            "MS-CHAPv2-ID",
        ),
        (response(0x11, EapType.MSCHAPV2, mschap(2, 0x11, bytes([49]) + bytes(49) + b"\xc3")), "not UTF-8"),
        (vector_response(identifier=0x12), "Identifier 18"),
    ],
)
def test_hostile_challenge_responses(packet: bytes, words: str) -> None:
    s = server_at_challenge()
    assert_failed(s, s.process(packet), 0x11, words)


def test_peer_rejecting_our_authenticator_response() -> None:
    s = server_at_challenge()
    s.process(vector_response())
    assert s.identity == "User"  # claimed; not yet verified by the peer's acknowledgement
    out = s.process(response(0x12, EapType.MSCHAPV2, b"\x04"))
    assert_failed(s, out, 0x12, "rejected our authenticator response")
    assert s.identity == "User"


def test_wrong_acknowledgement_of_success() -> None:
    s = server_at_challenge()
    s.process(vector_response())
    assert_failed(s, s.process(response(0x12, EapType.MSCHAPV2, b"\x02")), 0x12, "Success Response")


def test_anything_after_a_failure_request_ends_in_failure_keeping_the_reason() -> None:
    for bad_ack in (response(0x12, EapType.MSCHAPV2, b"\x03"), response(0x12, EapType.IDENTITY), b"junk"):
        s = server_at_challenge(DictUsers(User="not the vector password"))
        s.process(vector_response())
        out = s.process(bad_ack)
        assert_failed(s, out, 0x12, "wrong password for user 'User'", "; then")
    s = server_at_challenge(DictUsers(User="not the vector password"))
    s.process(vector_response())
    assert_failed(s, s.process(response(0x12, EapType.MSCHAPV2, b"\x04")), 0x12, "wrong password")
    assert "then" not in s.reason


def test_misuse_raises_eap_error() -> None:
    s = MsChapV2Server(DictUsers(), rng=SeededRandom(1))
    with pytest.raises(EapError, match="start"):
        s.process(bytes.fromhex("0200000501"))
    s.start()
    with pytest.raises(EapError, match="already started"):
        s.start()
    s.process(b"junk")
    assert s.outcome is EapOutcome.FAILURE
    with pytest.raises(EapError, match="already ended"):
        s.process(b"junk")


def test_mschapv2_packet_codec() -> None:
    pkt = MsChapV2Packet(MsChapV2OpCode.CHALLENGE, 7, b"\x10" + bytes(16))
    assert pkt.encode()[:4] == bytes([1, 7, 0, 21])
    assert MsChapV2Packet.decode(pkt.encode()) == pkt
    with pytest.raises(DecodeError, match="shorter than its header"):
        MsChapV2Packet.decode(b"\x01\x07\x00")
    with pytest.raises(DecodeError, match="MS-Length 22"):
        MsChapV2Packet.decode(bytes([1, 7, 0, 22]) + bytes(17))
