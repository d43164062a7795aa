"""AEAD transforms with the IPsec salt | IV layout (RFC 4106, RFC 4309, RFC 7634)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyipsec.crypto.aead import AeadSpec
from pyipsec.crypto.registry import REGISTRY
from pyipsec.errors import IntegrityError
from pyipsec.iana.transforms import EncrId
from tests.unit.crypto._support import h, load_vectors

_GCM = load_vectors("gcm_mcgrew_viega.json")["cases"]
_CHACHA = load_vectors("rfc8439_chacha20_poly1305.json")["cases"]
_CCM = load_vectors("sp800_38c_aes_ccm.json")["cases"]

_GCM_IDS = {16: EncrId.ENCR_AES_GCM_16, 12: EncrId.ENCR_AES_GCM_12, 8: EncrId.ENCR_AES_GCM_8}
_CCM_IDS = {16: EncrId.ENCR_AES_CCM_16, 12: EncrId.ENCR_AES_CCM_12, 8: EncrId.ENCR_AES_CCM_8}


def _aead_spec(ident: EncrId, key_bits: int | None) -> AeadSpec:
    spec = REGISTRY.encr(ident, key_bits)
    assert isinstance(spec, AeadSpec)
    return spec


@pytest.mark.parametrize(
    ("case", "icv_len"),
    [(c, n) for c in _GCM for n in (16, 12, 8)],
    ids=lambda v: v["section"].rsplit(", ", 1)[-1] if isinstance(v, dict) else f"ICV{v}",
)
def test_aes_gcm_known_answers(case: dict[str, Any], icv_len: int) -> None:
    key, iv12 = h(case["key"]), h(case["iv"])
    spec = _aead_spec(_GCM_IDS[icv_len], len(key) * 8)
    # RFC 4106 §4: nonce = salt (4 bytes, from the keying material) | explicit IV (8 bytes).
    aead = spec.new(key + iv12[:4])
    iv = iv12[4:]
    pt, aad = h(case["plaintext"]), h(case["aad"])
    # The truncated ICV is the left-most bytes of the tag (NIST SP 800-38D §5.2.1.2).
    expected = h(case["ciphertext"]) + h(case["tag"])[:icv_len]
    sealed = aead.seal(iv, pt, aad)
    assert sealed == expected
    assert aead.open(iv, sealed, aad) == pt
    with pytest.raises(IntegrityError):
        aead.open(iv, sealed[:-1] + bytes([sealed[-1] ^ 0x80]), aad)
    with pytest.raises(IntegrityError):
        aead.open(iv, sealed, aad + b"x")
    if pt:
        with pytest.raises(IntegrityError):
            aead.open(iv, bytes([sealed[0] ^ 1]) + sealed[1:], aad)


@pytest.mark.parametrize("case", _CHACHA, ids=lambda c: c["section"])
def test_chacha20_poly1305_rfc8439(case: dict[str, Any]) -> None:
    spec = _aead_spec(EncrId.ENCR_CHACHA20_POLY1305, None)
    aead = spec.new(h(case["key"]) + h(case["salt"]))
    iv, pt, aad = h(case["iv"]), h(case["plaintext"]), h(case["aad"])
    sealed = aead.seal(iv, pt, aad)
    assert sealed == h(case["ciphertext"]) + h(case["tag"])
    assert aead.open(iv, sealed, aad) == pt
    with pytest.raises(IntegrityError):
        aead.open(iv, sealed[:-16] + bytes(16), aad)


# --- CCM: an independent transcription of RFC 3610 §2 / NIST SP 800-38C §6 over AES-ECB ---


def _ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def _reference_ccm(key: bytes, nonce: bytes, aad: bytes, msg: bytes, tag_len: int) -> bytes:
    q = 15 - len(nonce)
    flags = (0x40 if aad else 0) | ((tag_len - 2) // 2) << 3 | (q - 1)
    blocks = bytes([flags]) + nonce + len(msg).to_bytes(q, "big")
    if aad:
        assert len(aad) < 0xFF00
        a = len(aad).to_bytes(2, "big") + aad
        blocks += a + bytes(-len(a) % 16)
    blocks += msg + bytes(-len(msg) % 16)
    y = bytes(16)
    for i in range(0, len(blocks), 16):
        y = _ecb(key, _xor(y, blocks[i : i + 16]))

    def ctr(i: int) -> bytes:
        return _ecb(key, bytes([q - 1]) + nonce + i.to_bytes(q, "big"))

    stream = b"".join(ctr(i) for i in range(1, len(msg) // 16 + 2))
    return _xor(msg, stream) + _xor(y[:tag_len], ctr(0))


@pytest.mark.parametrize("case", _CCM, ids=lambda c: c["section"])
def test_reference_ccm_matches_sp800_38c(case: dict[str, Any]) -> None:
    out = _reference_ccm(
        h(case["key"]), h(case["nonce"]), h(case["aad"]), h(case["plaintext"]), case["tag_len"]
    )
    assert out == h(case["output"])


@pytest.mark.parametrize("icv_len", [8, 12, 16])
@pytest.mark.parametrize("key_bits", [128, 192, 256])
@pytest.mark.parametrize("msg_len", [0, 1, 16, 37])
def test_aes_ccm_ipsec_layout(icv_len: int, key_bits: int, msg_len: int) -> None:
    spec = _aead_spec(_CCM_IDS[icv_len], key_bits)
    assert (spec.salt_len, spec.iv_len, spec.icv_len) == (3, 8, icv_len)
    key = bytes(range(key_bits // 8))
    salt = b"\xa0\xa1\xa2"
    iv = bytes(range(0xB0, 0xB8))
    aad = bytes(range(8)) + b"\x00\x00\x00\x01"  # SPI | sequence number, as ESP would pass
    msg = bytes((5 * i) & 0xFF for i in range(msg_len))
    aead = spec.new(key + salt)
    sealed = aead.seal(iv, msg, aad)
    # RFC 4309 §4: nonce = 3-byte salt | 8-byte IV.
    assert sealed == _reference_ccm(key, salt + iv, aad, msg, icv_len)
    assert aead.open(iv, sealed, aad) == msg
    with pytest.raises(IntegrityError):
        aead.open(iv, sealed, aad[:-1] + b"\x02")


@pytest.mark.parametrize(
    ("ident", "key_bits", "salt_len", "icv_len"),
    [
        (EncrId.ENCR_AES_GCM_16, 256, 4, 16),
        (EncrId.ENCR_AES_GCM_12, 128, 4, 12),
        (EncrId.ENCR_AES_GCM_8, 192, 4, 8),
        (EncrId.ENCR_AES_CCM_16, 128, 3, 16),
        (EncrId.ENCR_AES_CCM_8, 256, 3, 8),
        (EncrId.ENCR_CHACHA20_POLY1305, None, 4, 16),
    ],
)
def test_aead_spec_sizes(ident: EncrId, key_bits: int | None, salt_len: int, icv_len: int) -> None:
    spec = _aead_spec(ident, key_bits)
    key_len = (key_bits or 256) // 8
    assert (spec.key_len, spec.salt_len, spec.iv_len, spec.icv_len) == (key_len, salt_len, 8, icv_len)
    assert spec.keymat_len == key_len + salt_len
    assert spec.key_bits == (key_bits or 256)
    assert not spec.legacy
    with pytest.raises(ValueError):
        spec.new(bytes(key_len))  # salt missing


@pytest.mark.parametrize(
    "ident",
    [EncrId.ENCR_AES_GCM_16, EncrId.ENCR_AES_GCM_8, EncrId.ENCR_AES_CCM_12, EncrId.ENCR_CHACHA20_POLY1305],
)
def test_aead_rejects_short_data_and_bad_iv(ident: EncrId) -> None:
    spec = _aead_spec(ident, None if ident == EncrId.ENCR_CHACHA20_POLY1305 else 128)
    aead = spec.new(bytes(spec.keymat_len))
    with pytest.raises(IntegrityError):
        aead.open(bytes(8), bytes(spec.icv_len - 1), b"")
    with pytest.raises(ValueError):
        aead.seal(bytes(12), b"data", b"")
    with pytest.raises(ValueError):
        aead.open(bytes(4), bytes(32), b"")


def test_salt_is_part_of_the_nonce() -> None:
    spec = _aead_spec(EncrId.ENCR_AES_GCM_16, 128)
    key = bytes(16)
    a = spec.new(key + b"\x00\x00\x00\x01").seal(bytes(8), b"same", b"")
    b = spec.new(key + b"\x00\x00\x00\x02").seal(bytes(8), b"same", b"")
    assert a != b
    with pytest.raises(IntegrityError):
        spec.new(key + b"\x00\x00\x00\x02").open(bytes(8), a, b"")
