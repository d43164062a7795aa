"""PRF known answers (RFC 4231, RFC 4868 §2.7, RFC 4434, RFC 4615, RFC 2202) and prf+ (RFC 7296 §2.13)."""

from __future__ import annotations

from typing import Any

import pytest

from pyipsec.crypto.prf import aes_cmac_prf_128, aes_xcbc_prf_128, prf_plus
from pyipsec.crypto.registry import REGISTRY
from pyipsec.iana.transforms import PrfId
from tests.unit.crypto._support import h, load_vectors

_RFC4231 = load_vectors("rfc4231_hmac_sha2.json")["cases"]
_RFC4868 = load_vectors("rfc4868_hmac_sha2_ipsec.json")["cases"]
_RFC2202 = load_vectors("rfc2202_hmac_sha1.json")["cases"]
_XCBC_PRF = load_vectors("rfc3566_rfc4434_aes_xcbc.json")["prf"]
_CMAC_PRF = load_vectors("rfc4493_rfc4494_rfc4615_aes_cmac.json")["prf"]

_HMAC_PRFS = {
    "sha256": PrfId.PRF_HMAC_SHA2_256,
    "sha384": PrfId.PRF_HMAC_SHA2_384,
    "sha512": PrfId.PRF_HMAC_SHA2_512,
}


@pytest.mark.parametrize(
    ("case", "alg"),
    [(c, alg) for c in _RFC4231 for alg in _HMAC_PRFS],
    ids=lambda v: v["section"] if isinstance(v, dict) else v,
)
def test_hmac_sha2_prf_rfc4231(case: dict[str, Any], alg: str) -> None:
    prf = REGISTRY.prf(_HMAC_PRFS[alg]).new(h(case["key"]))
    out = prf.compute(h(case["data"]))
    expected = h(case[alg])
    assert len(out) == prf.out_len
    assert out[: case.get("truncate", len(out))] == expected


@pytest.mark.parametrize("case", _RFC4868, ids=lambda c: c["section"])
def test_hmac_sha2_prf_rfc4868_full_length_keys(case: dict[str, Any]) -> None:
    spec = REGISTRY.prf(PrfId[case["prf"]])
    assert len(h(case["key"])) == spec.key_len
    assert spec.new(h(case["key"])).compute(h(case["data"])) == h(case["prf_output"])


@pytest.mark.parametrize("case", _RFC2202, ids=lambda c: c["section"])
def test_hmac_sha1_prf_rfc2202(case: dict[str, Any]) -> None:
    assert REGISTRY.prf(PrfId.PRF_HMAC_SHA1).new(h(case["key"])).compute(h(case["data"])) == h(case["digest"])


@pytest.mark.parametrize("case", _XCBC_PRF, ids=lambda c: c["section"])
def test_aes_xcbc_prf_128_rfc4434(case: dict[str, Any]) -> None:
    key, data, expected = h(case["key"]), h(case["data"]), h(case["output"])
    assert aes_xcbc_prf_128(key).compute(data) == expected
    assert REGISTRY.prf(PrfId.PRF_AES128_XCBC).new(key).compute(data) == expected


@pytest.mark.parametrize("case", _CMAC_PRF, ids=lambda c: c["section"])
def test_aes_cmac_prf_128_rfc4615(case: dict[str, Any]) -> None:
    key, data, expected = h(case["key"]), h(case["data"]), h(case["output"])
    assert aes_cmac_prf_128(key).compute(data) == expected
    assert REGISTRY.prf(PrfId.PRF_AES128_CMAC).new(key).compute(data) == expected


def test_xcbc_and_cmac_prf_key_normalisation_differs_for_short_keys() -> None:
    # RFC 4434 zero-pads a short key; RFC 4615 CMACs it. A 10-byte key therefore behaves
    # like its zero-padded 16-byte form for XCBC but not for CMAC.
    short = bytes(range(10))
    padded = short + bytes(6)
    data = b"message"
    assert aes_xcbc_prf_128(short).compute(data) == aes_xcbc_prf_128(padded).compute(data)
    assert aes_cmac_prf_128(short).compute(data) != aes_cmac_prf_128(padded).compute(data)


def test_prf_object_is_reusable() -> None:
    prf = REGISTRY.prf(PrfId.PRF_HMAC_SHA2_256).new(b"k" * 32)
    first = prf.compute(b"a")
    assert prf.compute(b"b") != first
    assert prf.compute(b"a") == first


@pytest.mark.parametrize("ident", sorted(REGISTRY.supported(2)))
def test_prf_plus_structure(ident: int) -> None:
    # RFC 7296 §2.13: T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n); output T1 | T2 | ...
    spec = REGISTRY.prf(ident)
    key, seed = b"K" * spec.key_len, b"seed-Ni-Nr-SPIs"
    prf = spec.new(key)
    t1 = prf.compute(seed + b"\x01")
    t2 = prf.compute(t1 + seed + b"\x02")
    t3 = prf.compute(t2 + seed + b"\x03")
    length = 2 * spec.out_len + 5
    out = spec.prf_plus(key, seed, length)
    assert out == (t1 + t2 + t3)[:length]
    assert prf_plus(prf, seed, length) == out
    assert spec.prf_plus(key, seed, 3) == t1[:3]
    assert spec.prf_plus(key, seed, 0) == b""


def test_prf_plus_limit_is_255_blocks() -> None:
    spec = REGISTRY.prf(PrfId.PRF_AES128_XCBC)
    key = bytes(16)
    out = spec.prf_plus(key, b"s", 255 * 16)
    assert len(out) == 255 * 16
    # The last block carries counter 255.
    prf = spec.new(key)
    assert out[-16:] == prf.compute(out[-32:-16] + b"s" + b"\xff")
    with pytest.raises(ValueError):
        spec.prf_plus(key, b"s", 255 * 16 + 1)
    with pytest.raises(ValueError):
        spec.prf_plus(key, b"s", -1)


@pytest.mark.parametrize(
    ("ident", "key_len", "out_len", "legacy"),
    [
        (PrfId.PRF_HMAC_SHA1, 20, 20, True),
        (PrfId.PRF_HMAC_SHA2_256, 32, 32, False),
        (PrfId.PRF_HMAC_SHA2_384, 48, 48, False),
        (PrfId.PRF_HMAC_SHA2_512, 64, 64, False),
        (PrfId.PRF_AES128_XCBC, 16, 16, False),
        (PrfId.PRF_AES128_CMAC, 16, 16, False),
    ],
)
def test_prf_spec_sizes(ident: PrfId, key_len: int, out_len: int, legacy: bool) -> None:
    spec = REGISTRY.prf(ident)
    assert (spec.ident, spec.key_len, spec.out_len, spec.legacy) == (ident, key_len, out_len, legacy)
    assert len(spec.new(bytes(key_len)).compute(b"x")) == out_len
