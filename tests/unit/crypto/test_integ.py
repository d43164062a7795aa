"""Integrity transforms: RFC 4868 §2.7.2, RFC 3566 §4.6, RFC 4493/4494 §4, RFC 2202/2404."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyipsec.crypto.integ import AesCmacMac, AesXcbcMac
from pyipsec.crypto.registry import REGISTRY
from pyipsec.errors import IntegrityError
from pyipsec.iana.transforms import IntegId
from tests.unit.crypto._support import h, load_vectors

_RFC4868 = load_vectors("rfc4868_hmac_sha2_ipsec.json")["cases"]
_XCBC = load_vectors("rfc3566_rfc4434_aes_xcbc.json")["mac"]
_CMAC = load_vectors("rfc4493_rfc4494_rfc4615_aes_cmac.json")["mac"]
_RFC2202 = load_vectors("rfc2202_hmac_sha1.json")["cases"]


def _check(ident: IntegId, key: bytes, data: bytes, icv: bytes) -> None:
    integ = REGISTRY.integ(ident).new(key)
    assert integ.icv_len == len(icv)
    assert integ.compute(data) == icv
    integ.verify(data, icv)
    with pytest.raises(IntegrityError):
        integ.verify(data + b"\x00", icv)
    with pytest.raises(IntegrityError):
        integ.verify(data, bytes([icv[0] ^ 1]) + icv[1:])


@pytest.mark.parametrize("case", _RFC4868, ids=lambda c: c["section"])
def test_hmac_sha2_truncated_icv_rfc4868(case: dict[str, Any]) -> None:
    _check(IntegId[case["integ"]], h(case["key"]), h(case["data"]), h(case["icv"]))


@pytest.mark.parametrize("case", _XCBC, ids=lambda c: c["section"])
def test_aes_xcbc_mac_rfc3566(case: dict[str, Any]) -> None:
    key, data = h(case["key"]), h(case["data"])
    assert AesXcbcMac(key).compute(data) == h(case["mac"])
    _check(IntegId.AUTH_AES_XCBC_96, key, data, h(case["mac96"]))


@pytest.mark.parametrize("case", _CMAC, ids=lambda c: c["section"])
def test_aes_cmac_rfc4493_and_cmac_96_rfc4494(case: dict[str, Any]) -> None:
    key, data = h(case["key"]), h(case["data"])
    assert AesCmacMac(key).compute(data) == h(case["mac"])
    _check(IntegId.AUTH_AES_CMAC_96, key, data, h(case["mac96"]))


@pytest.mark.parametrize("case", [c for c in _RFC2202 if len(c["key"]) == 40], ids=lambda c: c["section"])
def test_hmac_sha1_96(case: dict[str, Any]) -> None:
    # RFC 2404 §2: HMAC-SHA-1-96 is the left-most 96 bits of HMAC-SHA-1 (vectors: RFC 2202 §3).
    _check(IntegId.AUTH_HMAC_SHA1_96, h(case["key"]), h(case["data"]), h(case["digest"])[:12])


def test_rfc2202_case5_digest96_matches() -> None:
    (case,) = [c for c in _RFC2202 if "digest96" in c]
    integ = REGISTRY.integ(IntegId.AUTH_HMAC_SHA1_96).new(h(case["key"]))
    assert integ.compute(h(case["data"])) == h(case["digest96"])


def test_xcbc_mac_block_boundaries_against_definition() -> None:
    # Messages of every length around the block boundaries agree with a direct
    # transcription of RFC 3566 §4 over AES-ECB.
    key = bytes(range(16))

    def ecb(k: bytes, block: bytes) -> bytes:
        enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
        return enc.update(block) + enc.finalize()

    k1, k2, k3 = (ecb(key, bytes([c]) * 16) for c in (1, 2, 3))

    def reference(msg: bytes) -> bytes:
        blocks = [msg[i : i + 16] for i in range(0, len(msg), 16)] or [b""]
        e = bytes(16)
        for block in blocks[:-1]:
            e = ecb(k1, bytes(a ^ b for a, b in zip(block, e, strict=True)))
        last = blocks[-1]
        if len(last) == 16:
            last = bytes(a ^ b for a, b in zip(last, k2, strict=True))
        else:
            last = last + b"\x80" + bytes(15 - len(last))
            last = bytes(a ^ b for a, b in zip(last, k3, strict=True))
        return ecb(k1, bytes(a ^ b for a, b in zip(last, e, strict=True)))

    mac = AesXcbcMac(key)
    for n in (*range(0, 50), 63, 64, 65):
        msg = bytes((7 * i + 3) & 0xFF for i in range(n))
        assert mac.compute(msg) == reference(msg), n


@pytest.mark.parametrize(
    ("ident", "key_len", "icv_len", "legacy"),
    [
        (IntegId.AUTH_HMAC_SHA1_96, 20, 12, True),
        (IntegId.AUTH_AES_XCBC_96, 16, 12, False),
        (IntegId.AUTH_AES_CMAC_96, 16, 12, False),
        (IntegId.AUTH_HMAC_SHA2_256_128, 32, 16, False),
        (IntegId.AUTH_HMAC_SHA2_384_192, 48, 24, False),
        (IntegId.AUTH_HMAC_SHA2_512_256, 64, 32, False),
    ],
)
def test_integ_spec_sizes_and_key_length_check(
    ident: IntegId, key_len: int, icv_len: int, legacy: bool
) -> None:
    spec = REGISTRY.integ(ident)
    assert (spec.ident, spec.key_len, spec.icv_len, spec.legacy) == (ident, key_len, icv_len, legacy)
    integ = spec.new(bytes(key_len))
    icv = integ.compute(b"payload")
    assert len(icv) == icv_len
    with pytest.raises(IntegrityError):
        integ.verify(b"payload", icv[:-1])
    with pytest.raises(IntegrityError):
        integ.verify(b"payload", icv + b"\x00")
    with pytest.raises(ValueError):
        spec.new(bytes(key_len - 1))
    with pytest.raises(ValueError):
        spec.new(bytes(key_len + 1))


def test_integ_object_is_reusable() -> None:
    integ = REGISTRY.integ(IntegId.AUTH_HMAC_SHA2_256_128).new(bytes(32))
    a = integ.compute(b"one")
    b = integ.compute(b"two")
    assert a != b
    assert integ.compute(b"one") == a
    integ.verify(b"two", b)
