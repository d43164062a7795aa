"""Non-AEAD ciphers: RFC 3602 §4 (AES-CBC), RFC 3686 §6 (AES-CTR), 3DES-CBC."""

from __future__ import annotations

from typing import Any

import pytest

from pyipsec.crypto.cipher import TRIPLE_DES_AVAILABLE, CipherSpec
from pyipsec.crypto.registry import REGISTRY
from pyipsec.iana.transforms import EncrId
from tests.unit.crypto._support import h, load_vectors

_CBC = load_vectors("rfc3602_aes_cbc.json")["cases"]
_CTR = load_vectors("rfc3686_aes_ctr.json")["cases"]


def _cipher_spec(ident: EncrId, key_bits: int | None) -> CipherSpec:
    spec = REGISTRY.encr(ident, key_bits)
    assert isinstance(spec, CipherSpec)
    return spec


@pytest.mark.parametrize("case", _CBC, ids=lambda c: c["section"])
def test_aes_cbc_rfc3602(case: dict[str, Any]) -> None:
    key = h(case["key"])
    spec = _cipher_spec(EncrId.ENCR_AES_CBC, len(key) * 8)
    cipher = spec.new(key)
    iv, pt, ct = h(case["iv"]), h(case["plaintext"]), h(case["ciphertext"])
    assert cipher.encrypt(iv, pt) == ct
    assert cipher.decrypt(iv, ct) == pt


@pytest.mark.parametrize("case", _CTR, ids=lambda c: c["section"])
def test_aes_ctr_rfc3686(case: dict[str, Any]) -> None:
    key = h(case["key"])
    spec = _cipher_spec(EncrId.ENCR_AES_CTR, len(key) * 8)
    # RFC 3686 §5.1: the keying material is the AES key followed by the 4-byte nonce.
    keymat = key + h(case["nonce"])
    assert len(keymat) == spec.keymat_len
    cipher = spec.new(keymat)
    iv, pt, ct = h(case["iv"]), h(case["plaintext"]), h(case["ciphertext"])
    assert cipher.encrypt(iv, pt) == ct
    assert cipher.decrypt(iv, ct) == pt


@pytest.mark.skipif(not TRIPLE_DES_AVAILABLE, reason="this cryptography build has no 3DES")
def test_3des_cbc_known_answer_and_round_trip() -> None:
    spec = _cipher_spec(EncrId.ENCR_3DES, None)
    assert (spec.key_bits, spec.key_len, spec.block_len, spec.iv_len, spec.legacy) == (192, 24, 8, 8, True)
    # EDE with K1 = K2 = K3 is single DES; FIPS 81 Appendix B example: key 0123456789abcdef,
    # "Now is t" -> 3fa40e8a984d4815 (CBC with a zero IV equals ECB for the first block).
    des = spec.new(h("0123456789abcdef") * 3)
    assert des.encrypt(bytes(8), b"Now is t") == h("3fa40e8a984d4815")
    cipher = spec.new(bytes(range(24)))
    iv = bytes(range(8, 16))
    data = bytes(range(64))
    ct = cipher.encrypt(iv, data)
    assert ct != data
    assert cipher.decrypt(iv, ct) == data


@pytest.mark.parametrize("key_bits", [128, 192, 256])
def test_aes_spec_sizes(key_bits: int) -> None:
    cbc = _cipher_spec(EncrId.ENCR_AES_CBC, key_bits)
    assert (cbc.key_bits, cbc.key_len, cbc.block_len, cbc.iv_len, cbc.keymat_len) == (
        key_bits,
        key_bits // 8,
        16,
        16,
        key_bits // 8,
    )
    ctr = _cipher_spec(EncrId.ENCR_AES_CTR, key_bits)
    assert (ctr.key_len, ctr.iv_len, ctr.nonce_len, ctr.keymat_len) == (
        key_bits // 8,
        8,
        4,
        key_bits // 8 + 4,
    )
    assert not cbc.legacy and not ctr.legacy


def test_cbc_rejects_partial_blocks_and_bad_iv() -> None:
    cipher = _cipher_spec(EncrId.ENCR_AES_CBC, 128).new(bytes(16))
    with pytest.raises(ValueError):
        cipher.encrypt(bytes(16), bytes(15))
    with pytest.raises(ValueError):
        cipher.decrypt(bytes(16), bytes(17))
    with pytest.raises(ValueError):
        cipher.encrypt(bytes(8), bytes(16))


def test_ctr_any_length_and_iv_check() -> None:
    cipher = _cipher_spec(EncrId.ENCR_AES_CTR, 128).new(bytes(20))
    for n in (0, 1, 15, 17, 100):
        data = bytes(range(n))
        assert cipher.decrypt(bytes(8), cipher.encrypt(bytes(8), data)) == data
    with pytest.raises(ValueError):
        cipher.encrypt(bytes(16), b"x")


def test_wrong_key_material_length_rejected() -> None:
    with pytest.raises(ValueError):
        _cipher_spec(EncrId.ENCR_AES_CBC, 256).new(bytes(16))
    with pytest.raises(ValueError):
        _cipher_spec(EncrId.ENCR_AES_CTR, 128).new(bytes(16))  # nonce missing


def test_cipher_object_is_reusable_across_messages() -> None:
    cipher = _cipher_spec(EncrId.ENCR_AES_CBC, 128).new(bytes(range(16)))
    a = cipher.encrypt(bytes(16), bytes(32))
    b = cipher.encrypt(b"\x01" * 16, bytes(32))
    assert a != b
    assert cipher.encrypt(bytes(16), bytes(32)) == a
