"""MsChapV2Peer: the RFC 2759 §9.2 conversation byte for byte, then every way a gateway can misbehave."""

from __future__ import annotations

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.errors import AuthenticationFailed, EapError
from pyipsec.iana.ikev2 import EapType
from pyipsec.ike.eap import EapOutcome, EapPeer, MsChapV2Peer
from pyipsec.ike.eap.mschapv2 import MsChapV2OpCode
from tests.unit.eap._support import VECTORS, ScriptedRandom, h, mschap, request

C = VECTORS["conversation"]
AUTH_CHALLENGE = h(VECTORS["rfc2759"]["authenticator_challenge"])


def peer(identity: str = "User") -> MsChapV2Peer:
    return MsChapV2Peer(identity, C["password"], rng=ScriptedRandom([h(C["peer_challenge"])]))


def challenged(identity: str = "User") -> MsChapV2Peer:
    p = peer(identity)
    assert p.process(h(C["challenge_request"])) is not None
    return p


def success_request(text: bytes, identifier: int = 0x12, ms_id: int = 0x42) -> bytes:
    return request(identifier, EapType.MSCHAPV2, mschap(MsChapV2OpCode.SUCCESS, ms_id, text))


def assert_failed(p: MsChapV2Peer, *words: str) -> None:
    assert p.outcome is EapOutcome.FAILURE
    assert p.msk == b""
    for word in words:
        assert word in p.reason


# -- the RFC 2759 §9.2 values in EAP framing ---------------------------------------------------


def test_conversation_matches_the_vectors() -> None:
    p = peer()
    assert isinstance(p, EapPeer)
    assert p.process(h(C["challenge_request"])) == h(C["challenge_response"])
    assert p.outcome is EapOutcome.CONTINUE and p.msk == b""
    assert p.process(h(C["success_request"])) == h(C["success_response"])
    assert p.outcome is EapOutcome.CONTINUE and p.msk == b""  # not before EAP-Success
    assert p.process(h(C["eap_success"])) is None
    assert p.outcome is EapOutcome.SUCCESS
    assert p.msk == h(VECTORS["msk"]["msk"])
    assert p.reason == ""


def test_failure_request_is_answered_and_reported() -> None:
    p = challenged()
    assert p.process(h(C["failure_request"])) == h(C["failure_response"])
    assert_failed(p, "E=647", "account disabled", "test Android 1234")
    assert p.process(bytes.fromhex("04120004")) is None  # EAP-Failure
    assert_failed(p, "E=647")
    with pytest.raises(EapError):
        p.process(bytes.fromhex("04120004"))


def test_unsupported_method_gets_a_nak_then_mschapv2_proceeds() -> None:
    p = peer()
    assert p.process(h(C["nak_request"])) == h(C["nak_response"])
    assert p.process(h(C["challenge_request"])) == h(C["challenge_response"])


def test_expanded_type_gets_an_expanded_nak() -> None:
    p = peer()
    out = p.process(request(5, EapType.EXPANDED, bytes(3) + (1).to_bytes(4, "big")))
    # RFC 3748 §5.3.2: Vendor-Id 0, Vendor-Type 3 (Nak), then 254 | 000000 | 0000001A.
    assert out == bytes.fromhex("02050014" + "fe" + "000000" + "00000003" + "fe" + "000000" + "0000001a")


def test_identity_and_notification() -> None:
    p = MsChapV2Peer("ACME\\User", "clientPass", rng=ScriptedRandom([h(C["peer_challenge"])]))
    assert p.process(request(1, EapType.IDENTITY, b"hello")) == bytes.fromhex("0201000e01") + b"ACME\\User"
    assert p.process(request(2, EapType.NOTIFICATION, b"Welcome")) == bytes.fromhex("0202000502")
    out = p.process(h(C["challenge_request"]))
    assert out is not None
    # The Name carries the domain; the NT-Response is computed without it (RFC 2759 §8.2).
    expected = h(C["challenge_response"])
    assert out[-len(b"ACME\\User") :] == b"ACME\\User"
    assert out[9 : 9 + 1 + 49] == expected[9 : 9 + 1 + 49]
    assert int.from_bytes(out[2:4], "big") == len(out)
    assert int.from_bytes(out[7:9], "big") == len(out) - 5


def test_retransmitted_request_gets_the_same_response_without_new_randomness() -> None:
    p = peer()  # ScriptedRandom holds one peer challenge: a second draw would fail the test
    first = p.process(h(C["challenge_request"]))
    assert p.process(h(C["challenge_request"])) == first
    assert p.process(h(C["success_request"])) == h(C["success_response"])


# -- the CVE-2021-45079 class: no EAP-Success without a verified authenticator response -------


def test_eap_success_as_the_first_message_is_refused() -> None:
    p = peer()
    assert p.process(bytes.fromhex("03010004")) is None
    assert_failed(p, "EAP-Success before the gateway proved")


def test_eap_success_right_after_the_response_is_refused() -> None:
    p = challenged()
    assert p.process(bytes.fromhex("03110004")) is None
    assert_failed(p, "EAP-Success before the gateway proved")
    with pytest.raises(EapError, match="already ended"):
        p.process(bytes.fromhex("03110004"))


def test_wrong_authenticator_response_is_a_rogue_gateway() -> None:
    p = challenged()
    assert p.process(success_request(b"S=" + b"0" * 40 + b" M=hi")) is None
    assert_failed(p, "does not verify", "rogue")


def test_eap_success_after_a_failure_request_stays_a_failure() -> None:
    p = challenged()
    p.process(h(C["failure_request"]))
    assert p.process(bytes.fromhex("03120004")) is None
    assert_failed(p, "E=647", "EAP-Success")


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"M=hello",
        b"S=407A5589115FD0D6209F510FE9C04566932CDA5",  # 39 digits
        b"S=407A5589115FD0D6209F510FE9C04566932CDA56X",  # glued trailing text
        b"S=407A5589115FD0D6209F510FE9C04566932CDAZZ M=x",  # not hex
        b"s=407A5589115FD0D6209F510FE9C04566932CDA56",
    ],
)
def test_malformed_success_text(text: bytes) -> None:
    p = challenged()
    assert p.process(success_request(text)) is None
    assert_failed(p, "Success")


def test_success_text_is_case_insensitive_hex_and_message_is_optional() -> None:
    p = challenged()
    out = p.process(success_request(b"S=407a5589115fd0d6209f510fe9c04566932cda56"))
    assert out == h(C["success_response"])


def test_success_for_another_ms_chapv2_id() -> None:
    p = challenged()
    text = VECTORS["rfc2759"]["authenticator_response"].encode()
    assert p.process(success_request(text, ms_id=0x43)) is None
    assert_failed(p, "MS-CHAPv2-ID")


def test_eap_success_with_a_wrong_identifier() -> None:
    p = challenged()
    p.process(h(C["success_request"]))
    assert p.process(bytes.fromhex("03130004")) is None
    assert_failed(p, "Identifier")


# -- hostile or malformed requests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "words"),
    [
        (b"", "malformed"),
        (b"\x01\x11\x00", "malformed"),
        (bytes.fromhex("01110009") + b"\x1a\x01\x42\x00", "malformed"),  # Length 9, 8 octets
        (bytes.fromhex("0211000501"), "expected an EAP-Request"),
        (request(0x11, EapType.MSCHAPV2, b"\x01\x42\x00\x30" + bytes([16]) + AUTH_CHALLENGE), "MS-Length"),
        (request(0x11, EapType.MSCHAPV2, mschap(1, 0x42, bytes([8]) + AUTH_CHALLENGE)), "Value-Size"),
        (request(0x11, EapType.MSCHAPV2, mschap(1, 0x42, bytes([16]) + AUTH_CHALLENGE[:8])), "Value-Size"),
        (request(0x11, EapType.MSCHAPV2, b"\x01\x42"), "shorter than its header"),
        (request(0x11, EapType.MSCHAPV2, mschap(MsChapV2OpCode.SUCCESS, 0x42, b"S=00")), "unexpected"),
        (request(0x11, EapType.MSCHAPV2, mschap(MsChapV2OpCode.CHANGE_PASSWORD, 0x42)), "unexpected"),
        (request(0x11, EapType.MSCHAPV2, mschap(9, 0x42)), "OpCode 9"),
        (request(0x11, EapType.NAK, b"\x1a"), "Nak"),
    ],
)
def test_hostile_first_requests_fail_cleanly(packet: bytes, words: str) -> None:
    p = peer()
    assert p.process(packet) is None
    assert_failed(p, words)


def test_a_second_challenge_is_refused() -> None:
    p = challenged()
    again = request(0x12, EapType.MSCHAPV2, h(C["challenge_request"])[5:])
    assert p.process(again) is None
    assert_failed(p, "unexpected MS-CHAPv2 CHALLENGE")


def test_identity_or_other_method_in_the_middle_is_refused() -> None:
    p = challenged()
    assert p.process(request(0x12, EapType.IDENTITY)) is None
    assert_failed(p, "Identity")
    p = challenged()
    assert p.process(request(0x12, EapType.MD5_CHALLENGE, b"\x10" + bytes(16))) is None
    assert_failed(p, "middle")


def test_a_different_request_reusing_the_identifier_is_refused() -> None:
    p = challenged()
    text = VECTORS["rfc2759"]["authenticator_response"].encode()
    assert p.process(success_request(text, identifier=0x11)) is None
    assert_failed(p, "reuses Identifier 17")


def test_failure_request_without_fields_still_fails_cleanly() -> None:
    p = challenged()
    out = p.process(request(0x12, EapType.MSCHAPV2, mschap(MsChapV2OpCode.FAILURE, 0x42, b"\xff\x00garbage")))
    assert out == h(C["failure_response"])
    assert_failed(p, "E=?")


def test_a_new_request_instead_of_eap_failure() -> None:
    p = challenged()
    p.process(h(C["failure_request"]))
    assert p.process(request(0x13, EapType.IDENTITY)) is None
    assert_failed(p, "E=647", "instead of EAP-Failure")


def test_eap_failure_at_any_time() -> None:
    p = peer()
    assert p.process(bytes.fromhex("04000004")) is None
    assert_failed(p, "EAP-Failure")


def test_eap_error_is_an_authentication_failure() -> None:
    assert issubclass(EapError, AuthenticationFailed)


def test_constructor_checks_and_repr_hides_secrets() -> None:
    with pytest.raises(ValueError, match="256"):
        MsChapV2Peer("x" * 300, "pw", rng=SeededRandom(1))
    with pytest.raises(ValueError, match="256"):
        MsChapV2Peer("user", "p" * 257, rng=SeededRandom(1))
    p = MsChapV2Peer("user", "hunter2", rng=SeededRandom(1))
    assert "hunter2" not in repr(p) and "user" in repr(p)
