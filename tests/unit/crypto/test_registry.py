"""TransformRegistry: lookups, key sizes, errors, and that everything listed can be built."""

from __future__ import annotations

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.crypto.registry import REGISTRY, AeadSpec, CipherSpec
from pyipsec.errors import UnsupportedAlgorithm
from pyipsec.iana.transforms import EncrId, EsnId, IntegId, KeId, PrfId, TransformType


def _encr_cases() -> list[tuple[int, int | None]]:
    cases: list[tuple[int, int | None]] = []
    for ident in sorted(REGISTRY.supported(TransformType.ENCR)):
        sizes = REGISTRY.key_sizes(ident)
        cases.extend((ident, bits) for bits in (sizes or (None,)))
    return cases


@pytest.mark.parametrize(("ident", "key_bits"), _encr_cases(), ids=str)
def test_every_supported_encr_transform_works(ident: int, key_bits: int | None) -> None:
    spec = REGISTRY.encr(ident, key_bits)
    assert spec.ident == ident
    if key_bits is not None:
        assert spec.key_bits == key_bits
    keymat = bytes(range(spec.keymat_len))
    if isinstance(spec, AeadSpec):
        aead = spec.new(keymat)
        iv = bytes(spec.iv_len)
        sealed = aead.seal(iv, b"hello world", b"aad")
        assert len(sealed) == len(b"hello world") + spec.icv_len
        assert aead.open(iv, sealed, b"aad") == b"hello world"
    else:
        assert isinstance(spec, CipherSpec)
        cipher = spec.new(keymat)
        iv = bytes(spec.iv_len)
        data = bytes(range(spec.block_len * 3 if spec.block_len > 1 else 33))
        assert cipher.decrypt(iv, cipher.encrypt(iv, data)) == data


@pytest.mark.parametrize("ident", sorted(REGISTRY.supported(TransformType.PRF)), ids=str)
def test_every_supported_prf_works(ident: int) -> None:
    spec = REGISTRY.prf(ident)
    assert spec.ident == ident
    assert len(spec.new(bytes(spec.key_len)).compute(b"data")) == spec.out_len


@pytest.mark.parametrize("ident", sorted(REGISTRY.supported(TransformType.INTEG)), ids=str)
def test_every_supported_integ_works(ident: int) -> None:
    spec = REGISTRY.integ(ident)
    integ = spec.new(bytes(spec.key_len))
    integ.verify(b"data", integ.compute(b"data"))


@pytest.mark.parametrize("ident", sorted(REGISTRY.supported(TransformType.KE)), ids=str)
def test_every_supported_ke_can_be_initiated(ident: int) -> None:
    spec = REGISTRY.ke(ident)
    assert spec.ident == ident
    assert len(spec.initiate(SeededRandom(ident)).public) == spec.public_len


def test_supported_sets() -> None:
    assert REGISTRY.supported(TransformType.ENCR) >= {
        EncrId.ENCR_AES_CBC,
        EncrId.ENCR_AES_CTR,
        EncrId.ENCR_AES_GCM_8,
        EncrId.ENCR_AES_GCM_12,
        EncrId.ENCR_AES_GCM_16,
        EncrId.ENCR_AES_CCM_8,
        EncrId.ENCR_AES_CCM_12,
        EncrId.ENCR_AES_CCM_16,
        EncrId.ENCR_CHACHA20_POLY1305,
    }
    assert REGISTRY.supported(TransformType.PRF) == {
        PrfId.PRF_HMAC_SHA1,
        PrfId.PRF_AES128_XCBC,
        PrfId.PRF_HMAC_SHA2_256,
        PrfId.PRF_HMAC_SHA2_384,
        PrfId.PRF_HMAC_SHA2_512,
        PrfId.PRF_AES128_CMAC,
    }
    assert REGISTRY.supported(TransformType.INTEG) == {
        IntegId.AUTH_HMAC_SHA1_96,
        IntegId.AUTH_AES_XCBC_96,
        IntegId.AUTH_AES_CMAC_96,
        IntegId.AUTH_HMAC_SHA2_256_128,
        IntegId.AUTH_HMAC_SHA2_384_192,
        IntegId.AUTH_HMAC_SHA2_512_256,
    }
    ke = REGISTRY.supported(TransformType.KE)
    assert ke >= {
        KeId.MODP_1024,
        KeId.MODP_1536,
        KeId.MODP_2048,
        KeId.MODP_3072,
        KeId.MODP_4096,
        KeId.MODP_6144,
        KeId.MODP_8192,
        KeId.ECP_256,
        KeId.ECP_384,
        KeId.ECP_521,
        KeId.CURVE25519,
        KeId.CURVE448,
    }
    assert REGISTRY.supported(TransformType.ADDKE1) == ke
    assert REGISTRY.supported(TransformType.ADDKE7) == ke
    assert REGISTRY.supported(TransformType.ESN) == {
        EsnId.NO_EXTENDED_SEQUENCE_NUMBERS,
        EsnId.EXTENDED_SEQUENCE_NUMBERS,
    }
    assert REGISTRY.supported(TransformType(200)) == frozenset()
    # Not implemented: MD5, DES, NULL encryption, GMAC, Brainpool, the MODP groups with subgroups.
    assert PrfId.PRF_HMAC_MD5 not in REGISTRY.supported(TransformType.PRF)
    assert EncrId.ENCR_NULL not in REGISTRY.supported(TransformType.ENCR)
    assert IntegId.NONE not in REGISTRY.supported(TransformType.INTEG)
    assert KeId.MODP_2048_256_POS not in ke


def test_key_sizes() -> None:
    for ident in (EncrId.ENCR_AES_CBC, EncrId.ENCR_AES_CTR, EncrId.ENCR_AES_GCM_16, EncrId.ENCR_AES_CCM_8):
        assert REGISTRY.key_sizes(ident) == (128, 192, 256)
    assert REGISTRY.key_sizes(EncrId.ENCR_CHACHA20_POLY1305) == ()
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.key_sizes(EncrId.ENCR_DES)


def test_encr_key_size_rules() -> None:
    # AES needs a key length (RFC 7296 §3.3.5) and only 128/192/256 exist.
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.encr(EncrId.ENCR_AES_CBC)
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 512)
    # Fixed-size transforms take none, or their own size.
    chacha = REGISTRY.encr(EncrId.ENCR_CHACHA20_POLY1305)
    assert REGISTRY.encr(EncrId.ENCR_CHACHA20_POLY1305, 256) is chacha
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.encr(EncrId.ENCR_CHACHA20_POLY1305, 128)
    assert REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 256) is REGISTRY.encr(20, 256)


def test_unknown_ids_raise_unsupported_algorithm() -> None:
    with pytest.raises(UnsupportedAlgorithm, match="ENCR_DES"):
        REGISTRY.encr(EncrId.ENCR_DES)
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.encr(EncrId(999), 128)
    with pytest.raises(UnsupportedAlgorithm, match="PRF_HMAC_MD5"):
        REGISTRY.prf(PrfId.PRF_HMAC_MD5)
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.integ(IntegId.AUTH_HMAC_MD5_96)
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.integ(IntegId.NONE)
    with pytest.raises(UnsupportedAlgorithm, match="BRAINPOOL_P256"):
        REGISTRY.ke(KeId.BRAINPOOL_P256)
    with pytest.raises(UnsupportedAlgorithm):
        REGISTRY.ke(KeId.NONE)


def test_legacy_flags() -> None:
    assert REGISTRY.encr(EncrId.ENCR_3DES).legacy
    assert REGISTRY.prf(PrfId.PRF_HMAC_SHA1).legacy
    assert REGISTRY.integ(IntegId.AUTH_HMAC_SHA1_96).legacy
    assert REGISTRY.ke(KeId.MODP_1024).legacy
    assert REGISTRY.ke(KeId.MODP_1536).legacy
    assert not REGISTRY.ke(KeId.MODP_2048).legacy
    assert not REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 128).legacy
    assert not REGISTRY.prf(PrfId.PRF_HMAC_SHA2_256).legacy


def test_specs_are_frozen_and_hide_their_factories() -> None:
    spec = REGISTRY.prf(PrfId.PRF_HMAC_SHA2_256)
    with pytest.raises(AttributeError):
        spec.key_len = 1  # type: ignore[misc]
    assert "_prf" not in repr(spec)
    assert repr(REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 128)).startswith("AeadSpec(")
