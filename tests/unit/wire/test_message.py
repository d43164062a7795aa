"""Message codec: header + payload chain (RFC 7296 §3.1, §3.2, §3.14; RFC 7383 §2.5)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pyipsec.errors import DecodeError, InvalidMajorVersion, UnsupportedCriticalPayload
from pyipsec.iana.ikev2 import ExchangeType, HeaderFlag, NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import KeId
from pyipsec.wire.buffer import Reader
from pyipsec.wire.header import IkeHeader
from pyipsec.wire.message import (
    Message,
    decode_message,
    decode_payload_chain,
    encode_header_for,
    encode_message,
    encode_message_prefix,
    encode_payload_chain,
)
from pyipsec.wire.payloads import base
from pyipsec.wire.payloads.delete import Delete
from pyipsec.wire.payloads.ke import KeyExchange
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload
from pyipsec.wire.payloads.unknown import UnknownPayload
from pyipsec.wire.payloads.vendor import VendorId

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes(8)
NI = bytes(range(32))
PUB = bytes(range(100, 132))


def init_request(*payloads: object, **kw: object) -> Message:
    args: dict[str, object] = {
        "exchange_type": ExchangeType.IKE_SA_INIT,
        "message_id": 0,
        "is_initiator": True,
        "is_response": False,
        "payloads": payloads or (KeyExchange(KeId.CURVE25519, PUB), Nonce(NI)),
    }
    args.update(kw)
    return Message(SPI_I, SPI_R, **args)  # type: ignore[arg-type]


# Hand-assembled IKE_SA_INIT request (RFC 7296 §3.1, §3.2, §3.4, §3.9): KE then Nonce.
KE_PAYLOAD = bytes.fromhex("28 00 0028 001f 0000") + PUB  # next = Nonce (40), length 40
NONCE_PAYLOAD = bytes.fromhex("00 00 0024") + NI  # last, length 36
INIT_BODY = KE_PAYLOAD + NONCE_PAYLOAD
INIT_HEADER = SPI_I + SPI_R + bytes.fromhex("22 20 22 08 00000000") + (28 + len(INIT_BODY)).to_bytes(4, "big")
INIT_WIRE = INIT_HEADER + INIT_BODY


def with_body(body: bytes, first: int = 0x22, flags: int = 0x08) -> bytes:
    """A message with this chain and a correct header Length."""
    header = SPI_I + SPI_R + bytes([first, 0x20, 0x22, flags]) + bytes(4)
    return header + (28 + len(body)).to_bytes(4, "big") + body


# -- encode / decode -----------------------------------------------------------------------------


def test_encode_known_bytes() -> None:
    assert encode_message(init_request()) == INIT_WIRE


def test_decode_known_bytes() -> None:
    msg = decode_message(INIT_WIRE)
    assert msg == init_request()
    assert msg.raw == INIT_WIRE
    assert msg.is_initiator and not msg.is_response
    assert msg.exchange_type is ExchangeType.IKE_SA_INIT


def test_raw_is_excluded_from_eq_and_repr() -> None:
    msg = decode_message(INIT_WIRE)
    assert msg == replace(msg, raw=b"other")
    assert "raw" not in repr(msg)
    assert init_request().raw == b""


def test_decode_accepts_memoryview_and_bytearray() -> None:
    assert decode_message(bytearray(INIT_WIRE)).raw == INIT_WIRE  # type: ignore[arg-type]
    assert decode_message(memoryview(INIT_WIRE)) == init_request()  # type: ignore[arg-type]


def test_empty_message() -> None:
    msg = init_request(payloads=())
    wire = encode_message(msg)
    assert len(wire) == 28 and wire[16] == 0
    assert decode_message(wire) == msg


def test_extra_flags_and_minor_version_roundtrip() -> None:
    wire = bytearray(INIT_WIRE)
    wire[17] = 0x21  # version 2.1
    wire[19] = 0x08 | 0x10 | 0x01  # I + Version + undefined bit 0
    msg = decode_message(bytes(wire))
    assert msg.minor_version == 1 and msg.extra_flags == 0x11
    assert msg.is_initiator and not msg.is_response
    assert msg.flags == HeaderFlag(0x19)
    assert encode_message(msg) == bytes(wire)


def test_header_of_message() -> None:
    h = init_request().header(1234)
    assert h == IkeHeader.decode(Reader(INIT_HEADER[:24] + (1234).to_bytes(4, "big")))


def test_encode_header_for() -> None:
    assert encode_header_for(init_request(), len(INIT_BODY)) == INIT_HEADER


def test_critical_bit_of_known_payload_ignored_and_cleared() -> None:
    wire = bytearray(INIT_WIRE)
    wire[28 + 1] = 0x80 | 0x7F  # critical + reserved bits on the KE payload
    msg = decode_message(bytes(wire))
    assert msg == init_request()
    assert encode_message(msg) == INIT_WIRE


# -- unknown payloads (RFC 7296 §2.5) ------------------------------------------------------------


def test_unknown_non_critical_payload_is_kept() -> None:
    # Nonce -> unknown type 200 (not critical) -> end.
    body = bytes.fromhex("c8 00 0024") + NI + bytes.fromhex("00 00 0007 aabbcc")
    wire = with_body(body, first=0x28)
    msg = decode_message(wire)
    assert msg.payloads == (Nonce(NI), UnknownPayload(PayloadType(200), False, body=bytes.fromhex("aabbcc")))
    assert encode_message(msg) == wire


def test_unknown_critical_payload_raises() -> None:
    body = bytes.fromhex("c8 00 0024") + NI + bytes.fromhex("00 80 0007 aabbcc")
    with pytest.raises(UnsupportedCriticalPayload) as exc:
        decode_message(with_body(body, first=0x28))
    assert exc.value.payload_type == 200
    assert exc.value.offset == 28 + 36
    assert exc.value.notify is NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD
    assert exc.value.notify_data() == b"\xc8"


def test_unknown_critical_payload_sent_with_its_bit() -> None:
    msg = init_request(UnknownPayload(PayloadType(99), True, body=b"x"))
    assert encode_message(msg)[28:] == bytes.fromhex("00 80 0005") + b"x"


def test_unknown_payload_can_carry_a_malformed_known_type() -> None:
    # Lets tests send a deliberately broken SA payload to a peer.
    wire = encode_message(init_request(UnknownPayload(PayloadType.SA, False, body=b"\xff")))
    with pytest.raises(DecodeError):
        decode_message(wire)


# -- SK / SKF --------------------------------------------------------------------------------------


def test_sk_payload_next_field_is_the_inner_type() -> None:
    sk = EncryptedPayload(PayloadType.IDi, b"iv+ciphertext+icv")
    msg = init_request(sk, exchange_type=ExchangeType.IKE_AUTH, message_id=1)
    wire = encode_message(msg)
    assert wire[16] == PayloadType.SK
    assert wire[28:32] == bytes([PayloadType.IDi, 0]) + (4 + 17).to_bytes(2, "big")
    assert decode_message(wire) == msg


def test_sk_after_other_payloads() -> None:
    msg = init_request(VendorId(b"v"), EncryptedPayload(PayloadType.NO_NEXT_PAYLOAD, b"data"))
    wire = encode_message(msg)
    assert wire[28] == PayloadType.SK
    assert decode_message(wire) == msg


def test_bytes_after_sk_payload_are_rejected() -> None:
    body = bytes.fromhex("23 00 0008 aabbccdd") + bytes.fromhex("00 00 0004")
    with pytest.raises(DecodeError, match="after its SK payload"):
        decode_message(with_body(body, first=PayloadType.SK))


def test_skf_payload() -> None:
    frag = EncryptedFragment(1, 3, PayloadType.IDi, b"data")
    msg = init_request(frag, exchange_type=ExchangeType.IKE_AUTH)
    wire = encode_message(msg)
    assert wire[28:] == bytes.fromhex("23 00 000c 0001 0003") + b"data"
    assert decode_message(wire) == msg


def test_bad_skf_header_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_message(with_body(bytes.fromhex("23 00 0008 0002 0001"), first=PayloadType.SKF))
    with pytest.raises(DecodeError):
        decode_message(with_body(bytes.fromhex("00 00 0006 0001"), first=PayloadType.SKF))


def test_sk_must_be_last_when_encoding() -> None:
    msg = init_request(EncryptedPayload(PayloadType.NO_NEXT_PAYLOAD, b""), VendorId(b"v"))
    with pytest.raises(ValueError, match="last"):
        encode_message(msg)


def test_encode_message_prefix_sk() -> None:
    data = b"I" * 8 + b"C" * 40 + b"T" * 16
    msg = init_request(
        VendorId(b"v"), EncryptedPayload(PayloadType.IDi, b"placeholder"), exchange_type=ExchangeType.IKE_AUTH
    )
    prefix = encode_message_prefix(msg, len(data))
    full = encode_message(replace(msg, payloads=(VendorId(b"v"), EncryptedPayload(PayloadType.IDi, data))))
    assert prefix + data == full
    assert len(prefix) == 28 + 5 + 4


def test_encode_message_prefix_skf_includes_fragment_fields() -> None:
    data = bytes(50)
    msg = init_request(EncryptedFragment(2, 2, PayloadType.NO_NEXT_PAYLOAD, b""))
    prefix = encode_message_prefix(msg, len(data))
    assert prefix[-4:] == bytes.fromhex("0002 0002")
    assert prefix + data == encode_message(
        init_request(EncryptedFragment(2, 2, PayloadType.NO_NEXT_PAYLOAD, data))
    )


def test_encode_message_prefix_errors() -> None:
    with pytest.raises(ValueError):
        encode_message_prefix(init_request(), 10)
    with pytest.raises(ValueError):
        encode_message_prefix(init_request(payloads=()), 10)
    with pytest.raises(ValueError):
        encode_message_prefix(init_request(EncryptedPayload(PayloadType.IDi, b"")), -1)


# -- bare chains (SK plaintext) ----------------------------------------------------------------


def test_payload_chain_roundtrip() -> None:
    payloads = (Delete(ProtocolId.ESP, (b"\x00\x00\x00\x01",)), Notify.of(NotifyType.INITIAL_CONTACT))
    first, data = encode_payload_chain(payloads)
    assert first is PayloadType.D
    assert data[0] == PayloadType.N
    assert decode_payload_chain(first, data) == payloads


def test_empty_chain() -> None:
    assert encode_payload_chain(()) == (PayloadType.NO_NEXT_PAYLOAD, b"")
    assert decode_payload_chain(PayloadType.NO_NEXT_PAYLOAD, b"") == ()


def test_chain_rejects_trailing_bytes() -> None:
    with pytest.raises(DecodeError, match="after its last payload"):
        decode_payload_chain(PayloadType.NO_NEXT_PAYLOAD, b"\x00")
    first, data = encode_payload_chain((VendorId(b"v"),))
    with pytest.raises(DecodeError):
        decode_payload_chain(first, data + b"\x00")


def test_chain_rejects_nested_sk() -> None:
    with pytest.raises(DecodeError, match="inside an encrypted payload"):
        decode_payload_chain(PayloadType.SK, bytes.fromhex("00 00 0004"))
    with pytest.raises(DecodeError, match="inside an encrypted payload"):
        decode_payload_chain(PayloadType.SKF, bytes.fromhex("00 00 0008 0001 0001"))
    with pytest.raises(ValueError):
        encode_payload_chain((EncryptedPayload(PayloadType.NO_NEXT_PAYLOAD, b""),))


def test_chain_error_offsets_use_base() -> None:
    with pytest.raises(DecodeError) as exc:
        decode_payload_chain(PayloadType.V, bytes.fromhex("00 00 0002"), base=40)
    assert exc.value.offset == 40


# -- malformed messages ----------------------------------------------------------------------


@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_header_length_must_match(delta: int) -> None:
    wire = INIT_HEADER[:24] + (len(INIT_WIRE) + delta).to_bytes(4, "big") + INIT_BODY
    with pytest.raises(DecodeError, match="header length"):
        decode_message(wire)


def test_trailing_byte_after_message_is_rejected() -> None:
    with pytest.raises(DecodeError, match="header length"):
        decode_message(INIT_WIRE + b"\x00")


@pytest.mark.parametrize("n", range(28))
def test_short_header(n: int) -> None:
    with pytest.raises(DecodeError):
        decode_message(INIT_WIRE[:n])


def test_major_version_checked() -> None:
    wire = bytearray(INIT_WIRE)
    wire[17] = 0x10
    with pytest.raises(InvalidMajorVersion):
        decode_message(bytes(wire))


@pytest.mark.parametrize("length", [0, 1, 3])
def test_payload_length_below_4(length: int) -> None:
    with pytest.raises(DecodeError, match="below 4"):
        decode_message(with_body(bytes([0, 0]) + length.to_bytes(2, "big"), first=PayloadType.V))


def test_payload_length_past_end() -> None:
    with pytest.raises(DecodeError, match="past the end"):
        decode_message(with_body(bytes.fromhex("00 00 0009 aabbcc"), first=PayloadType.V))


def test_truncated_generic_header() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        decode_message(with_body(bytes.fromhex("00 00"), first=PayloadType.V))


def test_chain_ends_early() -> None:
    # First payload says "Nonce follows" but the message ends.
    with pytest.raises(DecodeError, match="truncated"):
        decode_message(with_body(bytes.fromhex("28 00 0005 aa"), first=PayloadType.V))


def test_payload_body_errors_propagate_with_offsets() -> None:
    body = bytes.fromhex("00 00 0008") + bytes(4)  # a Nonce of 4 bytes
    with pytest.raises(DecodeError, match=r"16\.\.256") as exc:
        decode_message(with_body(body, first=PayloadType.NONCE))
    assert exc.value.offset == 32


def test_decoder_must_consume_its_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base._DECODERS, PayloadType(250), lambda ptype, r: VendorId(r.read(1)))
    with pytest.raises(DecodeError, match="trailing"):
        decode_message(with_body(bytes.fromhex("00 00 0006 aabb"), first=250))


def test_decoder_value_error_becomes_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ptype: PayloadType, r: Reader) -> base.Payload:
        raise ValueError("model invariant")

    monkeypatch.setitem(base._DECODERS, PayloadType(250), broken)
    with pytest.raises(DecodeError, match="model invariant") as exc:
        decode_message(with_body(bytes.fromhex("00 00 0004"), first=250))
    assert exc.value.offset == 28


def test_oversized_payload_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_message(init_request(VendorId(bytes(0xFFFC))))
    assert len(encode_message(init_request(VendorId(bytes(0xFFFB))))) == 28 + 0xFFFF


# -- accessors ----------------------------------------------------------------------------------


def test_accessors() -> None:
    n1 = Notify.of(NotifyType.NAT_DETECTION_SOURCE_IP, bytes(20))
    n2 = Notify.of(NotifyType.NAT_DETECTION_DESTINATION_IP, bytes(20))
    v = VendorId(b"v")
    msg = init_request(n1, v, n2)
    assert msg.get(PayloadType.N) is n1
    assert msg.get(PayloadType.SA) is None
    assert msg.get_all(PayloadType.N) == (n1, n2)
    assert msg.get_all(PayloadType.KE) == ()
    assert msg.find(VendorId) is v and msg.find(Nonce) is None
    assert msg.find_all(Notify) == (n1, n2)
    assert msg.notifies() == (n1, n2)
    assert msg.notify(NotifyType.NAT_DETECTION_DESTINATION_IP) is n2
    assert msg.notify(NotifyType.COOKIE) is None
    assert msg.with_payloads([v]).payloads == (v,)


# -- model invariants ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"message_id": -1},
        {"message_id": 1 << 32},
        {"extra_flags": 0x08},
        {"extra_flags": 0x20},
        {"extra_flags": 0x100},
        {"exchange_type": 256},
    ],
)
def test_message_rejects_invalid_fields(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        init_request(**kw)


def test_message_rejects_bad_spis() -> None:
    with pytest.raises(ValueError):
        Message(
            b"",
            SPI_R,
            exchange_type=ExchangeType.IKE_SA_INIT,
            message_id=0,
            is_initiator=True,
            is_response=False,
        )
