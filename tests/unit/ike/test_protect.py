"""SK and SKF payload protection (RFC 7296 §3.14, RFC 5282, RFC 7634, RFC 7383 §2.5)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyipsec.crypto.aead import AeadSpec
from pyipsec.crypto.cipher import CipherSpec
from pyipsec.crypto.integ import IntegSpec
from pyipsec.crypto.rand import SeededRandom
from pyipsec.crypto.registry import REGISTRY
from pyipsec.errors import DecodeError, IntegrityError
from pyipsec.iana.ikev2 import ExchangeType, NotifyType, PayloadType, ProtocolId
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.ike.keymat import IkeKeys
from pyipsec.ike.protect import FragmentPiece, SkProtector, reassemble
from pyipsec.wire.message import (
    Message,
    decode_message,
    encode_message,
    encode_message_prefix,
    encode_payload_chain,
)
from pyipsec.wire.payloads.base import Payload
from pyipsec.wire.payloads.nonce import Nonce
from pyipsec.wire.payloads.notify import Notify
from pyipsec.wire.payloads.sk import EncryptedFragment, EncryptedPayload

SPI_I, SPI_R = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")
HEADER = Message(
    SPI_I, SPI_R, exchange_type=ExchangeType.INFORMATIONAL, message_id=7, is_initiator=True, is_response=False
)
INNER: tuple[Payload, ...] = (
    Notify(ProtocolId.NONE, b"", NotifyType.INITIAL_CONTACT),
    Nonce(bytes(range(32))),
    Notify(ProtocolId.ESP, b"\xc4\x2f\xce\x49", NotifyType.REKEY_SA),
)

SUITES: list[tuple[str, CipherSpec | AeadSpec, IntegSpec | None]] = [
    (
        "aes128-sha256",
        REGISTRY.encr(EncrId.ENCR_AES_CBC, 128),
        REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_256_128),
    ),
    (
        "aes256-sha512",
        REGISTRY.encr(EncrId.ENCR_AES_CBC, 256),
        REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_512_256),
    ),
    ("aes192-aesxcbc", REGISTRY.encr(EncrId.ENCR_AES_CBC, 192), REGISTRY.integ(IntegId.AUTH_AES_XCBC_96)),
    ("aes128-aescmac", REGISTRY.encr(EncrId.ENCR_AES_CBC, 128), REGISTRY.integ(IntegId.AUTH_AES_CMAC_96)),
    (
        "aes256ctr-sha384",
        REGISTRY.encr(EncrId.ENCR_AES_CTR, 256),
        REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_384_192),
    ),
    ("aes128gcm8", REGISTRY.encr(EncrId.ENCR_AES_GCM_8, 128), None),
    ("aes192gcm12", REGISTRY.encr(EncrId.ENCR_AES_GCM_12, 192), None),
    ("aes256gcm16", REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 256), None),
    ("aes128ccm8", REGISTRY.encr(EncrId.ENCR_AES_CCM_8, 128), None),
    ("aes256ccm16", REGISTRY.encr(EncrId.ENCR_AES_CCM_16, 256), None),
    ("chacha20poly1305", REGISTRY.encr(EncrId.ENCR_CHACHA20_POLY1305), None),
]
SUITE_IDS = [s[0] for s in SUITES]


def keys_for(encr: CipherSpec | AeadSpec, integ: IntegSpec | None) -> IkeKeys:
    rng = SeededRandom(b"keys")
    e, a = encr.keymat_len, 0 if integ is None else integ.key_len
    return IkeKeys(
        b"d" * 32,
        rng.random_bytes(a),
        rng.random_bytes(a),
        rng.random_bytes(e),
        rng.random_bytes(e),
        b"",
        b"",
    )


def protectors(encr: CipherSpec | AeadSpec, integ: IntegSpec | None) -> tuple[SkProtector, SkProtector]:
    return SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=True)


class Scripted:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def random_bytes(self, n: int) -> bytes:
        assert len(self.data) >= n
        out, self.data = self.data[:n], self.data[n:]
        return out


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x80
    return bytes(b)


@pytest.mark.parametrize(("name", "encr", "integ"), SUITES, ids=SUITE_IDS)
@pytest.mark.parametrize("inner", [INNER, ()], ids=["payloads", "empty"])
def test_round_trip(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None, inner: tuple[Payload, ...]
) -> None:
    out_i, in_r = (
        protectors(encr, integ)[0],
        SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1],
    )
    wire = out_i.protect(HEADER, inner, SeededRandom(1))
    msg = decode_message(wire)
    sk = msg.payloads[-1]
    assert isinstance(sk, EncryptedPayload)
    assert sk.inner_type == (inner[0].payload_type if inner else PayloadType.NO_NEXT_PAYLOAD)
    assert in_r.unprotect(msg) == inner
    _, plaintext = encode_payload_chain(inner)
    icv = encr.icv_len if isinstance(encr, AeadSpec) else integ.icv_len  # type: ignore[union-attr]
    body = len(sk.data) - encr.iv_len - icv
    if isinstance(encr, AeadSpec):
        assert body == len(plaintext) + 1  # no padding, just the Pad Length octet
    else:
        assert body % encr.block_len == 0 and 0 <= body - len(plaintext) - 1 < encr.block_len


@pytest.mark.parametrize(("name", "encr", "integ"), SUITES, ids=SUITE_IDS)
def test_any_modified_octet_fails_the_integrity_check(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None
) -> None:
    out_i, in_i = protectors(encr, integ)
    wire = out_i.protect(HEADER, INNER, SeededRandom(2))
    receiver = SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1]
    for index in (0, 19, 20, 27, 28, 31, 32, len(wire) // 2, len(wire) - 1):
        tampered = _flip(wire, index)
        try:
            msg = decode_message(tampered)
        except DecodeError:
            continue  # a flipped length or type: the codec already refuses it
        with pytest.raises(IntegrityError):
            receiver.unprotect(msg)
    with pytest.raises(IntegrityError):
        in_i.unprotect(decode_message(wire))  # the other direction's keys


@pytest.mark.parametrize(("name", "encr", "integ"), SUITES, ids=SUITE_IDS)
def test_iv_then_padding_come_from_the_random_source(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None
) -> None:
    out = protectors(encr, integ)[0]
    _, plaintext = encode_payload_chain(INNER)
    block = 1 if isinstance(encr, AeadSpec) else encr.block_len
    pad = -(len(plaintext) + 1) % block
    script = bytes(range(100, 100 + encr.iv_len)) + b"\xee" * pad
    rng = Scripted(script)
    wire = out.protect(HEADER, INNER, rng)
    assert rng.data == b""
    sk = decode_message(wire).payloads[-1]
    assert sk.data[: encr.iv_len] == script[: encr.iv_len]  # type: ignore[attr-defined]
    if isinstance(encr, CipherSpec):
        key = keys_for(encr, integ).sk_ei
        padded = encr.new(key).decrypt(script[: encr.iv_len], sk.data[encr.iv_len : -integ.icv_len])  # type: ignore[attr-defined, union-attr]
        assert padded == plaintext + b"\xee" * pad + bytes([pad])


def test_unprotected_payloads_before_sk_are_authenticated() -> None:
    encr, integ = SUITES[0][1], SUITES[0][2]
    out, _ = protectors(encr, integ)
    header = HEADER.with_payloads((Notify(ProtocolId.NONE, b"", NotifyType.COOKIE, b"c" * 16),))
    wire = out.protect(header, INNER, SeededRandom(3))
    msg = decode_message(wire)
    assert isinstance(msg.payloads[0], Notify) and isinstance(msg.payloads[1], EncryptedPayload)
    receiver = SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1]
    assert receiver.unprotect(msg) == INNER
    with pytest.raises(IntegrityError):
        receiver.unprotect(decode_message(_flip(wire, 40)))  # inside the cookie


# --- malformed plaintext behind a valid ICV --------------------------------------------------------


def _seal_raw(
    encr: CipherSpec | AeadSpec, integ: IntegSpec | None, padded: bytes, inner_type: PayloadType
) -> Message:
    """A message whose SK payload protects ``padded`` verbatim (valid ICV, any content)."""
    keys = keys_for(encr, integ)
    iv = b"\x42" * encr.iv_len
    stub = HEADER.with_payloads((EncryptedPayload(inner_type, b""),))
    if isinstance(encr, AeadSpec):
        data_len = encr.iv_len + len(padded) + encr.icv_len
        prefix = encode_message_prefix(stub, data_len)
        return decode_message(prefix + iv + encr.new(keys.sk_ei).seal(iv, padded, prefix))
    assert integ is not None
    ct = encr.new(keys.sk_ei).encrypt(iv, padded) if len(padded) % encr.block_len == 0 else padded
    prefix = encode_message_prefix(stub, encr.iv_len + len(ct) + integ.icv_len)
    signed = prefix + iv + ct
    return decode_message(signed + integ.new(keys.sk_ai).compute(signed))


@pytest.mark.parametrize(("name", "encr", "integ"), [SUITES[0], SUITES[7]], ids=["cbc", "gcm"])
def test_bad_pad_length_is_a_decode_error(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None
) -> None:
    receiver = SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1]
    msg = _seal_raw(encr, integ, b"\x00" * 15 + b"\x1f", PayloadType.NO_NEXT_PAYLOAD)
    with pytest.raises(DecodeError, match="pad length 31"):
        receiver.unprotect(msg)


@pytest.mark.parametrize(("name", "encr", "integ"), [SUITES[0], SUITES[7]], ids=["cbc", "gcm"])
def test_garbage_inner_chain_is_a_decode_error(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None
) -> None:
    receiver = SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1]
    msg = _seal_raw(encr, integ, b"\x00\x00\x00\x30" + b"\x00" * 11 + b"\x00", PayloadType.N)
    with pytest.raises(DecodeError):
        receiver.unprotect(msg)


def test_cbc_ciphertext_not_a_whole_number_of_blocks_is_a_decode_error() -> None:
    encr, integ = SUITES[0][1], SUITES[0][2]
    receiver = SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1]
    msg = _seal_raw(encr, integ, b"\x00" * 17, PayloadType.NO_NEXT_PAYLOAD)  # 17 octets, sent unencrypted
    with pytest.raises(DecodeError, match="whole number of blocks"):
        receiver.unprotect(msg)


@pytest.mark.parametrize(("name", "encr", "integ"), [SUITES[0], SUITES[7]], ids=["cbc", "gcm"])
def test_too_short_sk_payload_is_a_decode_error(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None
) -> None:
    receiver = protectors(encr, integ)[1]
    stub = HEADER.with_payloads((EncryptedPayload(PayloadType.NO_NEXT_PAYLOAD, b"\x00" * 8),))
    with pytest.raises(DecodeError, match="too short"):
        receiver.unprotect(decode_message(encode_message(stub)))


def test_unprotect_needs_raw_bytes_and_an_sk_payload() -> None:
    inbound = protectors(SUITES[7][1], None)[1]
    with pytest.raises(ValueError, match="raw"):
        inbound.unprotect(HEADER.with_payloads((EncryptedPayload(PayloadType.N, b"\x00" * 40),)))
    with pytest.raises(ValueError, match="SK payload"):
        inbound.unprotect(HEADER.with_payloads(INNER))
    with pytest.raises(ValueError, match="SKF payload"):
        inbound.unprotect_fragment(HEADER)


def test_constructor_checks_transform_combinations() -> None:
    gcm, cbc = SUITES[7][1], SUITES[0][1]
    integ = SUITES[0][2]
    with pytest.raises(ValueError, match="AEAD"):
        SkProtector(gcm, integ, b"k" * gcm.keymat_len, b"a" * 32)
    with pytest.raises(ValueError, match="integrity"):
        SkProtector(cbc, None, b"k" * 16)


# --- fragments (RFC 7383) -------------------------------------------------------------------------


BIG_INNER: tuple[Payload, ...] = tuple(Nonce(bytes([i]) * 200) for i in range(12))


@pytest.mark.parametrize(
    ("name", "encr", "integ"),
    [SUITES[0], SUITES[4], SUITES[7], SUITES[10]],
    ids=[SUITES[i][0] for i in (0, 4, 7, 10)],
)
@pytest.mark.parametrize("limit", [120, 300, 576, 1280])
def test_fragments_round_trip_in_any_order(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None, limit: int
) -> None:
    out = protectors(encr, integ)[0]
    receiver = SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1]
    wires = out.protect_fragments(HEADER, BIG_INNER, SeededRandom(4), max_message_len=limit)
    _, plaintext = encode_payload_chain(BIG_INNER)
    assert len(wires) >= len(plaintext) // limit
    pieces: list[FragmentPiece] = []
    for number, wire in enumerate(wires, start=1):
        assert len(wire) <= limit
        msg = decode_message(wire)
        skf = msg.payloads[-1]
        assert isinstance(skf, EncryptedFragment)
        assert (skf.fragment_number, skf.total_fragments) == (number, len(wires))
        assert skf.inner_type == (PayloadType.NONCE if number == 1 else PayloadType.NO_NEXT_PAYLOAD)
        pieces.append(receiver.unprotect_fragment(msg))
    random.Random(limit).shuffle(pieces)
    assert reassemble(pieces) == BIG_INNER


def test_small_message_is_one_fragment() -> None:
    encr = SUITES[7][1]
    out, _ = protectors(encr, None)
    receiver = SkProtector.pair(encr, None, keys_for(encr, None), initiator=False)[1]
    (wire,) = out.protect_fragments(HEADER, INNER, SeededRandom(5), max_message_len=1280)
    piece = receiver.unprotect_fragment(decode_message(wire))
    assert (piece.fragment_number, piece.total_fragments) == (1, 1)
    assert reassemble([piece]) == INNER


@pytest.mark.parametrize(("name", "encr", "integ"), [SUITES[0], SUITES[7]], ids=["cbc", "gcm"])
def test_fragment_number_is_authenticated(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None
) -> None:
    out = protectors(encr, integ)[0]
    receiver = SkProtector.pair(encr, integ, keys_for(encr, integ), initiator=False)[1]
    wires = out.protect_fragments(HEADER, BIG_INNER, SeededRandom(6), max_message_len=600)
    second = bytearray(wires[1])
    assert second[32:34] == b"\x00\x02"  # Fragment Number right after the SKF generic header
    second[33] = 3
    with pytest.raises(IntegrityError):
        receiver.unprotect_fragment(decode_message(bytes(second)))


def test_fragment_size_limits() -> None:
    encr, integ = SUITES[0][1], SUITES[0][2]
    out = protectors(encr, integ)[0]
    with pytest.raises(ValueError, match="no room"):
        out.protect_fragments(HEADER, INNER, SeededRandom(7), max_message_len=60)
    with pytest.raises(ValueError, match="unprotected payloads"):
        out.protect_fragments(HEADER.with_payloads(INNER[:1]), INNER, SeededRandom(7), max_message_len=600)


def test_reassemble_checks_completeness() -> None:
    a = FragmentPiece(1, 3, PayloadType.NONCE, b"x")
    b = FragmentPiece(2, 3, PayloadType.NO_NEXT_PAYLOAD, b"y")
    with pytest.raises(ValueError, match="incomplete"):
        reassemble([a, b])
    with pytest.raises(ValueError, match="duplicate"):
        reassemble([a, b, b])
    with pytest.raises(ValueError, match="inconsistent"):
        reassemble([a, FragmentPiece(2, 4, PayloadType.NO_NEXT_PAYLOAD, b"y")])
    with pytest.raises(ValueError, match="no fragments"):
        reassemble([])


# --- robustness -------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(data=st.binary(max_size=200), inner_type=st.sampled_from([PayloadType.N, PayloadType.NO_NEXT_PAYLOAD]))
@pytest.mark.parametrize(("name", "encr", "integ"), [SUITES[0], SUITES[7]], ids=["cbc", "gcm"])
def test_arbitrary_sk_data_raises_only_integrity_or_decode_errors(
    name: str, encr: CipherSpec | AeadSpec, integ: IntegSpec | None, data: bytes, inner_type: PayloadType
) -> None:
    receiver = protectors(encr, integ)[1]
    msg = decode_message(encode_message(HEADER.with_payloads((EncryptedPayload(inner_type, data),))))
    with pytest.raises((IntegrityError, DecodeError)):
        receiver.unprotect(msg)
