"""Key exchange: RFC 5903 §8, RFC 7748 §6, MODP primes (RFC 2409/3526), RFC 6989 checks, ML-KEM."""

from __future__ import annotations

from typing import Any

import pytest

from pyipsec.crypto.ke import MODP_PRIMES
from pyipsec.crypto.rand import SeededRandom
from pyipsec.crypto.registry import REGISTRY, KeSpec
from pyipsec.errors import InvalidKeyExchange
from pyipsec.iana.transforms import KeId, TransformType
from tests.unit.crypto._support import ScriptedRandom, h, load_vectors

_RFC5903 = load_vectors("rfc5903_ecdh.json")["cases"]
_RFC7748 = load_vectors("rfc7748_x25519_x448.json")["cases"]

_ALL_KE = sorted(REGISTRY.supported(TransformType.KE))
_MODP = sorted(MODP_PRIMES)


# --- MODP primes ------------------------------------------------------------------------

# RFC 2409 §6.2 and RFC 3526 §2-§7: p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k).
_PRIME_OFFSETS = {
    KeId.MODP_1024: (1024, 129093),
    KeId.MODP_1536: (1536, 741804),
    KeId.MODP_2048: (2048, 124476),
    KeId.MODP_3072: (3072, 1690314),
    KeId.MODP_4096: (4096, 240904),
    KeId.MODP_6144: (6144, 929484),
    KeId.MODP_8192: (8192, 4743158),
}


def _arctan_inv(x: int, one: int) -> int:
    total = term = one // x
    k, sign = 1, -1
    while term:
        term //= x * x
        total += sign * (term // (2 * k + 1))
        sign, k = -sign, k + 1
    return total


def _pi_fixed(bits: int) -> int:
    """floor(pi * 2^bits) via Machin's formula with 64 guard bits."""
    one = 1 << (bits + 64)
    return (4 * (4 * _arctan_inv(5, one) - _arctan_inv(239, one))) >> 64


def _probable_prime(n: int, bases: tuple[int, ...]) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def test_modp_groups_cover_the_rfc_groups() -> None:
    assert set(MODP_PRIMES) == set(_PRIME_OFFSETS)


@pytest.mark.parametrize("ident", _MODP, ids=lambda i: KeId(i).name)
def test_modp_prime_matches_rfc_formula(ident: KeId) -> None:
    bits, k = _PRIME_OFFSETS[ident]
    p = MODP_PRIMES[ident]
    assert p.bit_length() == bits
    assert p == 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (_pi_fixed(bits - 130) + k)
    # Top and bottom 64 bits all ones.
    assert p >> (bits - 64) == 2**64 - 1
    assert p & (2**64 - 1) == 2**64 - 1


@pytest.mark.parametrize("ident", _MODP, ids=lambda i: KeId(i).name)
def test_modp_prime_is_a_safe_prime(ident: KeId) -> None:
    p = MODP_PRIMES[ident]
    # Each Miller-Rabin round on an 8192-bit number costs about a second in Python, so the
    # big groups get fewer bases; the formula test above already pins every bit.
    bits = p.bit_length()
    bases = (2, 3, 5, 7) if bits <= 2048 else (2, 3) if bits <= 4096 else (2,)
    assert _probable_prime(p, bases)
    assert _probable_prime((p - 1) // 2, bases)


def test_miller_rabin_helper_rejects_composites() -> None:
    # 561 and 41041 are Carmichael numbers (Fermat liars for every coprime base).
    assert not _probable_prime(561, (2,))
    assert not _probable_prime(41041, (2,))
    assert not _probable_prime(MODP_PRIMES[KeId.MODP_1024] - 2, (2, 3))
    assert _probable_prime(2**127 - 1, (2, 3, 5, 7))


# --- Round trips for every method --------------------------------------------------------


@pytest.mark.parametrize("ident", _ALL_KE, ids=lambda i: KeId(i).name)
def test_round_trip(ident: int) -> None:
    spec = REGISTRY.ke(ident)
    init = spec.initiate(SeededRandom(b"i"))
    assert len(init.public) == spec.public_len
    response, secret_r = spec.respond(init.public, SeededRandom(b"r"))
    assert len(response) == spec.response_len
    secret_i = init.complete(response)
    assert secret_i == secret_r
    assert any(secret_i)
    # A second, independent exchange yields a different secret.
    other = spec.initiate(SeededRandom(b"j"))
    _, secret_other = spec.respond(other.public, SeededRandom(b"s"))
    assert secret_other != secret_i


@pytest.mark.parametrize("ident", _ALL_KE, ids=lambda i: KeId(i).name)
def test_initiator_is_reproducible_with_seeded_random(ident: int) -> None:
    spec = REGISTRY.ke(ident)
    assert spec.initiate(SeededRandom(42)).public == spec.initiate(SeededRandom(42)).public
    assert spec.initiate(SeededRandom(42)).public != spec.initiate(SeededRandom(43)).public


@pytest.mark.parametrize(
    "ident", [i for i in _ALL_KE if not REGISTRY.ke(i).is_kem], ids=lambda i: KeId(i).name
)
def test_dh_responder_is_reproducible_with_seeded_random(ident: int) -> None:
    spec = REGISTRY.ke(ident)
    peer = spec.initiate(SeededRandom(1)).public
    assert spec.respond(peer, SeededRandom(2)) == spec.respond(peer, SeededRandom(2))


@pytest.mark.parametrize(
    ("ident", "legacy", "is_kem", "public_len", "response_len"),
    [
        (KeId.MODP_1024, True, False, 128, 128),
        (KeId.MODP_1536, True, False, 192, 192),
        (KeId.MODP_2048, False, False, 256, 256),
        (KeId.MODP_3072, False, False, 384, 384),
        (KeId.MODP_4096, False, False, 512, 512),
        (KeId.MODP_6144, False, False, 768, 768),
        (KeId.MODP_8192, False, False, 1024, 1024),
        (KeId.ECP_256, False, False, 64, 64),
        (KeId.ECP_384, False, False, 96, 96),
        (KeId.ECP_521, False, False, 132, 132),
        (KeId.CURVE25519, False, False, 32, 32),
        (KeId.CURVE448, False, False, 56, 56),
        (KeId.ML_KEM_768, False, True, 1184, 1088),
        (KeId.ML_KEM_1024, False, True, 1568, 1568),
    ],
)
def test_ke_spec_fields(ident: KeId, legacy: bool, is_kem: bool, public_len: int, response_len: int) -> None:
    spec = REGISTRY.ke(ident)
    assert (spec.ident, spec.legacy, spec.is_kem, spec.public_len, spec.response_len) == (
        ident,
        legacy,
        is_kem,
        public_len,
        response_len,
    )


# --- Known answers ----------------------------------------------------------------------


@pytest.mark.parametrize("case", _RFC5903, ids=lambda c: c["section"])
def test_ecdh_rfc5903(case: dict[str, Any]) -> None:
    spec = REGISTRY.ke(KeId[case["group"]])
    gi = h(case["gix"]) + h(case["giy"])
    gr = h(case["grx"]) + h(case["gry"])
    girx = h(case["girx"])
    rng = ScriptedRandom([h(case["i"])])
    init = spec.initiate(rng)
    assert rng.exhausted
    assert init.public == gi
    assert init.complete(gr) == girx
    response, secret = spec.respond(gi, ScriptedRandom([h(case["r"])]))
    assert (response, secret) == (gr, girx)


@pytest.mark.parametrize("case", _RFC7748, ids=lambda c: c["section"])
def test_x25519_x448_rfc7748(case: dict[str, Any]) -> None:
    spec = REGISTRY.ke(KeId[case["group"]])
    init = spec.initiate(ScriptedRandom([h(case["alice_private"])]))
    assert init.public == h(case["alice_public"])
    assert init.complete(h(case["bob_public"])) == h(case["shared"])
    response, secret = spec.respond(h(case["alice_public"]), ScriptedRandom([h(case["bob_private"])]))
    assert (response, secret) == (h(case["bob_public"]), h(case["shared"]))


class _ZeroThenFive:
    """Returns an all-zero exponent first (which must be redrawn), then x = 5."""

    def __init__(self) -> None:
        self.calls = 0

    def random_bytes(self, n: int) -> bytes:
        self.calls += 1
        return bytes(n) if self.calls == 1 else bytes(n - 1) + b"\x05"


@pytest.mark.parametrize("ident", [KeId.MODP_1024, KeId.MODP_2048], ids=lambda i: i.name)
def test_modp_exponentiation_known_answer(ident: KeId) -> None:
    p = MODP_PRIMES[ident]
    size = (p.bit_length() + 7) // 8
    spec = REGISTRY.ke(ident)
    rng = _ZeroThenFive()
    init = spec.initiate(rng)
    assert rng.calls == 2
    assert init.public == pow(2, 5, p).to_bytes(size, "big")
    peer_y = pow(2, 12345, p)
    # RFC 7296 §2.14: g^ir is zero-padded to the length of the prime.
    assert init.complete(peer_y.to_bytes(size, "big")) == pow(peer_y, 5, p).to_bytes(size, "big")


# --- RFC 6989 validation ----------------------------------------------------------------


def _both_sides_reject(spec: KeSpec, bad: bytes) -> None:
    init = spec.initiate(SeededRandom(9))
    with pytest.raises(InvalidKeyExchange):
        init.complete(bad)
    with pytest.raises(InvalidKeyExchange):
        spec.respond(bad, SeededRandom(10))


@pytest.mark.parametrize("ident", _MODP, ids=lambda i: KeId(i).name)
def test_modp_rejects_out_of_range_and_wrong_length(ident: KeId) -> None:
    spec = REGISTRY.ke(ident)
    p = MODP_PRIMES[ident]
    size = spec.public_len
    for y in (0, 1, p - 1, p, 2 ** (8 * size) - 1):
        _both_sides_reject(spec, y.to_bytes(size, "big"))
    good = spec.initiate(SeededRandom(3)).public
    _both_sides_reject(spec, good[1:])
    _both_sides_reject(spec, b"\x00" + good)
    # The boundary values just inside the range are accepted.
    for y in (2, p - 2):
        spec.respond(y.to_bytes(size, "big"), SeededRandom(4))


@pytest.mark.parametrize("case", _RFC5903, ids=lambda c: c["group"])
def test_ecp_rejects_invalid_points(case: dict[str, Any]) -> None:
    spec = REGISTRY.ke(KeId[case["group"]])
    gx, gy = h(case["gix"]), h(case["giy"])
    off_curve = gx + (int.from_bytes(gy, "big") ^ 1).to_bytes(len(gy), "big")
    _both_sides_reject(spec, off_curve)
    _both_sides_reject(spec, bytes(2 * len(gx)))  # (0, 0): the usual stand-in for infinity
    _both_sides_reject(spec, gx + gy + b"\x00")
    _both_sides_reject(spec, gx)  # x alone (compressed form without prefix)
    _both_sides_reject(spec, b"\x04" + gx + gy)  # SEC1 prefix is not part of the KE data


@pytest.mark.parametrize("ident", [KeId.CURVE25519, KeId.CURVE448], ids=lambda i: i.name)
def test_montgomery_rejects_wrong_length_and_zero_secret(ident: KeId) -> None:
    spec = REGISTRY.ke(ident)
    size = spec.public_len
    # u = 0 and u = 1 are low-order points: the shared secret is all zero (RFC 7748 §6).
    _both_sides_reject(spec, bytes(size))
    _both_sides_reject(spec, (1).to_bytes(size, "little"))
    good = spec.initiate(SeededRandom(5)).public
    _both_sides_reject(spec, good[:-1])
    _both_sides_reject(spec, good + b"\x00")


@pytest.mark.parametrize("ident", [KeId.ML_KEM_768, KeId.ML_KEM_1024], ids=lambda i: i.name)
def test_mlkem_validation(ident: KeId) -> None:
    spec = REGISTRY.ke(ident)
    init = spec.initiate(SeededRandom(6))
    with pytest.raises(InvalidKeyExchange):
        spec.respond(init.public[:-1], SeededRandom(7))
    with pytest.raises(InvalidKeyExchange):
        spec.respond(b"\xff" * spec.public_len, SeededRandom(7))  # coefficients >= q (FIPS 203 §7.2)
    ciphertext, secret = spec.respond(init.public, SeededRandom(7))
    with pytest.raises(InvalidKeyExchange):
        init.complete(ciphertext[:-1])
    # A modified ciphertext is implicitly rejected: a different (pseudorandom) secret.
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    assert init.complete(tampered) != secret
    assert init.complete(ciphertext) == secret
