"""Key derivation and AUTH inputs (RFC 7296 §2.13-2.18, RFC 9370 §2.2).

The expected values are computed here with the standard library's ``hmac`` (an independent
prf+), so these tests check the layout and the formulas; tests/unit/test_strongswan_vectors.py
checks the same functions against strongSwan's logged keys.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pyipsec.crypto.registry import REGISTRY
from pyipsec.iana.transforms import EncrId, IntegId, PrfId
from pyipsec.ike.keymat import (
    KEY_PAD,
    ChildKeys,
    IkeKeys,
    auth_octets,
    derive_child_keys,
    derive_ike_keys,
    psk_auth,
    rekey_skeyseed,
    skeyseed,
    verify_psk_auth,
)

NI = bytes(range(1, 33))
NR = bytes(range(101, 133))
SPI_I = bytes.fromhex("0011223344556677")
SPI_R = bytes.fromhex("8899aabbccddeeff")
G_IR = bytes(range(200, 232))

SHA256 = REGISTRY.prf(PrfId.PRF_HMAC_SHA2_256)
SHA384 = REGISTRY.prf(PrfId.PRF_HMAC_SHA2_384)


def hmac_prf_plus(name: str, key: bytes, seed: bytes, length: int) -> bytes:
    """RFC 7296 §2.13 prf+ with HMAC, written out independently."""
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + seed + bytes([n]), name).digest()
        out += t
        n += 1
    return out[:length]


def test_key_pad_is_the_rfc_string() -> None:
    assert KEY_PAD == b"Key Pad for IKEv2"
    assert len(KEY_PAD) == 17  # RFC 7296 §2.15: no terminating NUL


def test_skeyseed_hmac_keys_with_both_nonces() -> None:
    expected = hmac.new(NI + NR, G_IR, hashlib.sha256).digest()
    assert skeyseed(SHA256, NI, NR, G_IR) == expected


@pytest.mark.parametrize("prf_id", [PrfId.PRF_AES128_XCBC, PrfId.PRF_AES128_CMAC])
def test_skeyseed_fixed_key_prf_takes_half_from_each_nonce(prf_id: PrfId) -> None:
    # RFC 7296 §2.14: a 128-bit PRF key = the first 64 bits of Ni | the first 64 bits of Nr
    prf = REGISTRY.prf(prf_id)
    expected = prf.new(NI[:8] + NR[:8]).compute(G_IR)
    assert skeyseed(prf, NI, NR, G_IR) == expected
    assert skeyseed(prf, NI[:8] + b"\xff" * 24, NR[:8], G_IR) == expected
    assert skeyseed(prf, NI, NR, G_IR) != prf.new(NI + NR).compute(G_IR)


def test_rekey_skeyseed() -> None:
    sk_d_old = bytes(range(48))
    expected = hmac.new(sk_d_old, G_IR + NI + NR, hashlib.sha384).digest()
    assert rekey_skeyseed(SHA384, sk_d_old, G_IR, NI, NR) == expected


@pytest.mark.parametrize(
    ("prf", "hash_name", "encr", "integ", "e_len", "a_len"),
    [
        (
            SHA256,
            "sha256",
            REGISTRY.encr(EncrId.ENCR_AES_CBC, 128),
            REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_256_128),
            16,
            32,
        ),
        (
            SHA384,
            "sha384",
            REGISTRY.encr(EncrId.ENCR_AES_CBC, 256),
            REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_384_192),
            32,
            48,
        ),
        (
            SHA256,
            "sha256",
            REGISTRY.encr(EncrId.ENCR_AES_CTR, 192),
            REGISTRY.integ(IntegId.AUTH_AES_XCBC_96),
            28,
            16,
        ),
        (SHA256, "sha256", REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 128), None, 20, 0),
        (SHA384, "sha384", REGISTRY.encr(EncrId.ENCR_AES_CCM_8, 256), None, 35, 0),
        (SHA256, "sha256", REGISTRY.encr(EncrId.ENCR_CHACHA20_POLY1305), None, 36, 0),
    ],
    ids=["cbc128-sha256", "cbc256-sha384", "ctr192-xcbc", "gcm128", "ccm8-256", "chacha"],
)
def test_ike_key_layout(
    prf: object, hash_name: str, encr: object, integ: object, e_len: int, a_len: int
) -> None:
    p = {"sha256": 32, "sha384": 48}[hash_name]
    seed = b"SKEYSEED" * 4
    keys = derive_ike_keys(prf, encr, integ, seed, ni=NI, nr=NR, spi_i=SPI_I, spi_r=SPI_R)  # type: ignore[arg-type]
    stream = hmac_prf_plus(hash_name, seed, NI + NR + SPI_I + SPI_R, 3 * p + 2 * a_len + 2 * e_len)
    parts = []
    pos = 0
    for n in (p, a_len, a_len, e_len, e_len, p, p):
        parts.append(stream[pos : pos + n])
        pos += n
    assert keys == IkeKeys(*parts)
    assert len(keys.sk_d) == len(keys.sk_pi) == len(keys.sk_pr) == p


def test_ike_keys_reject_inconsistent_transforms() -> None:
    gcm = REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 256)
    cbc = REGISTRY.encr(EncrId.ENCR_AES_CBC, 256)
    integ = REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_256_128)
    with pytest.raises(ValueError, match="AEAD"):
        derive_ike_keys(SHA256, gcm, integ, b"s", ni=NI, nr=NR, spi_i=SPI_I, spi_r=SPI_R)
    with pytest.raises(ValueError, match="integrity"):
        derive_ike_keys(SHA256, cbc, None, b"s", ni=NI, nr=NR, spi_i=SPI_I, spi_r=SPI_R)
    with pytest.raises(ValueError, match="AEAD"):
        derive_child_keys(SHA256, b"d" * 32, gcm, integ, ni=NI, nr=NR)


def test_child_keys_order_is_encr_i_integ_i_encr_r_integ_r() -> None:
    sk_d = bytes(range(32))
    encr = REGISTRY.encr(EncrId.ENCR_AES_CBC, 256)
    integ = REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_256_128)
    stream = hmac_prf_plus("sha256", sk_d, NI + NR, 2 * (32 + 32))
    keys = derive_child_keys(SHA256, sk_d, encr, integ, ni=NI, nr=NR)
    assert keys == ChildKeys(stream[:32], stream[32:64], stream[64:96], stream[96:])


def test_child_keys_with_pfs_and_additional_key_exchanges() -> None:
    sk_d = bytes(range(32))
    aead = REGISTRY.encr(EncrId.ENCR_AES_GCM_16, 256)
    sk1, sk2 = b"\x01" * 32, b"\x02" * 1088
    stream = hmac_prf_plus("sha256", sk_d, G_IR + sk1 + sk2 + NI + NR, 2 * 36)
    keys = derive_child_keys(
        SHA256, sk_d, aead, None, ni=NI, nr=NR, g_ir_new=G_IR, additional_secrets=(sk1, sk2)
    )
    assert keys == ChildKeys(stream[:36], b"", stream[36:], b"")
    without_pfs = derive_child_keys(SHA256, sk_d, aead, None, ni=NI, nr=NR)
    assert without_pfs.encr_i != keys.encr_i


def test_keys_are_not_in_repr() -> None:
    keys = IkeKeys(*(bytes([i]) * 16 for i in range(7)))
    child = ChildKeys(b"\xaa" * 16, b"\xbb" * 16, b"\xcc" * 16, b"\xdd" * 16)
    for text in (repr(keys), repr(child)):
        for i in range(7):
            assert bytes([i]).hex() * 16 not in text
        assert "aaaa" not in text and "bbbb" not in text


def test_auth_octets_and_psk_auth() -> None:
    sk_p = b"\x5a" * 32
    real_message = b"IKE_SA_INIT request" * 5
    id_body = b"\x02\x00\x00\x00left.ih.test"
    octets = auth_octets(SHA256, sk_p, real_message, NR, id_body)
    assert octets == real_message + NR + hmac.new(sk_p, id_body, hashlib.sha256).digest()
    psk = b"ih-interop-psk-0123456789abcdef"
    pad_key = hmac.new(psk, b"Key Pad for IKEv2", hashlib.sha256).digest()
    expected = hmac.new(pad_key, octets, hashlib.sha256).digest()
    assert psk_auth(SHA256, psk, octets) == expected
    assert verify_psk_auth(SHA256, psk, octets, expected)
    assert not verify_psk_auth(SHA256, psk, octets, expected[:-1] + bytes([expected[-1] ^ 1]))
    assert not verify_psk_auth(SHA256, psk, octets, expected[:16])
    assert not verify_psk_auth(SHA256, b"other", octets, expected)


def test_eap_msk_auth_is_the_same_construction() -> None:
    msk = bytes(range(64))  # RFC 7296 §2.16: the MSK replaces the shared secret
    octets = b"octets"
    inner = hmac.new(msk, KEY_PAD, hashlib.sha384).digest()
    assert psk_auth(SHA384, msk, octets) == hmac.new(inner, octets, hashlib.sha384).digest()
