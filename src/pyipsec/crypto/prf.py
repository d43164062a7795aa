"""Pseudorandom functions (Transform Type 2) and prf+ (RFC 7296 §2.13).

Theory of operation: a PRF here is a keyed object with ``compute(data) -> bytes`` and
``out_len``. The HMAC PRFs accept keys of any length (HMAC hashes long keys itself). The two
AES PRFs are fixed to 128-bit keys and normalise other lengths as their RFCs say:

* AES-XCBC-PRF-128 (RFC 4434 §2): a shorter key is padded with zero bytes to 16 bytes; a
  longer key is replaced by AES-XCBC-MAC(0^128, key).
* AES-CMAC-PRF-128 (RFC 4615 §3): any key that is not 16 bytes is replaced by
  AES-CMAC(0^128, key).

(RFC 7296 §2.14 additionally feeds these two PRFs only the first 8 bytes of each nonce when
computing SKEYSEED; that is the key-derivation code's business, not this module's.)

``prf_plus`` expands a key into as much keying material as asked for:
T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n), output T1 | T2 | ..., at most 255 blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import hashes

from pyipsec.crypto.integ import AesCmacMac, AesXcbcMac, HmacMac
from pyipsec.iana.transforms import PrfId

__all__ = [
    "PRF_SPECS",
    "Prf",
    "PrfSpec",
    "aes_cmac_prf_128",
    "aes_xcbc_prf_128",
    "prf_plus",
]

_AES_KEY = 16
_MAX_PRF_PLUS_BLOCKS = 255


class Prf(Protocol):
    """A keyed pseudorandom function."""

    @property
    def out_len(self) -> int: ...

    def compute(self, data: bytes) -> bytes: ...


def aes_xcbc_prf_128(key: bytes) -> Prf:
    """AES-XCBC-PRF-128 keyed with ``key`` of any length (RFC 4434 §2)."""
    if len(key) < _AES_KEY:
        key = key + bytes(_AES_KEY - len(key))
    elif len(key) > _AES_KEY:
        key = AesXcbcMac(bytes(_AES_KEY)).compute(key)
    return AesXcbcMac(key)


def aes_cmac_prf_128(key: bytes) -> Prf:
    """AES-CMAC-PRF-128 keyed with ``key`` of any length (RFC 4615 §3)."""
    if len(key) != _AES_KEY:
        key = AesCmacMac(bytes(_AES_KEY)).compute(key)
    return AesCmacMac(key)


def prf_plus(prf: Prf, seed: bytes, length: int) -> bytes:
    """RFC 7296 §2.13 prf+: the first ``length`` bytes of T1 | T2 | ... | T255."""
    if length < 0:
        raise ValueError(f"prf+ length must not be negative, got {length}")
    blocks = -(-length // prf.out_len)
    if blocks > _MAX_PRF_PLUS_BLOCKS:
        raise ValueError(
            f"prf+ can produce at most {_MAX_PRF_PLUS_BLOCKS * prf.out_len} bytes with this PRF, "
            f"{length} requested"
        )
    out: list[bytes] = []
    t = b""
    for counter in range(1, blocks + 1):
        t = prf.compute(t + seed + bytes((counter,)))
        out.append(t)
    return b"".join(out)[:length]


@dataclass(frozen=True, slots=True, kw_only=True)
class PrfSpec:
    """Registry entry for one PRF transform.

    ``key_len`` is the preferred key size in bytes, which is also the length of SK_d, SK_pi
    and SK_pr (RFC 7296 §2.14); ``out_len`` is the size of one PRF output.
    """

    ident: PrfId
    key_len: int
    out_len: int
    legacy: bool
    _prf: Callable[[bytes], Prf] = field(repr=False, compare=False)

    def new(self, key: bytes) -> Prf:
        """Key the PRF (any key length; see the module docstring for the AES PRFs)."""
        return self._prf(key)

    def prf_plus(self, key: bytes, seed: bytes, length: int) -> bytes:
        """prf+(key, seed) truncated to ``length`` bytes (RFC 7296 §2.13)."""
        return prf_plus(self._prf(key), seed, length)


def _hmac_prf(algorithm: hashes.HashAlgorithm) -> Callable[[bytes], Prf]:
    def make(key: bytes) -> Prf:
        return HmacMac(algorithm, key)

    return make


PRF_SPECS: tuple[PrfSpec, ...] = (
    # RFC 2104 / RFC 7296 §3.3.2: PRF_HMAC_SHA1, legacy (HMAC needs no collision resistance).
    PrfSpec(
        ident=PrfId.PRF_HMAC_SHA1,
        key_len=20,
        out_len=20,
        legacy=True,
        _prf=_hmac_prf(hashes.SHA1()),  # noqa: S303
    ),
    # RFC 4434.
    PrfSpec(ident=PrfId.PRF_AES128_XCBC, key_len=16, out_len=16, legacy=False, _prf=aes_xcbc_prf_128),
    # RFC 4868 §2.1: preferred key size = output size.
    PrfSpec(
        ident=PrfId.PRF_HMAC_SHA2_256, key_len=32, out_len=32, legacy=False, _prf=_hmac_prf(hashes.SHA256())
    ),
    PrfSpec(
        ident=PrfId.PRF_HMAC_SHA2_384, key_len=48, out_len=48, legacy=False, _prf=_hmac_prf(hashes.SHA384())
    ),
    PrfSpec(
        ident=PrfId.PRF_HMAC_SHA2_512, key_len=64, out_len=64, legacy=False, _prf=_hmac_prf(hashes.SHA512())
    ),
    # RFC 4615.
    PrfSpec(ident=PrfId.PRF_AES128_CMAC, key_len=16, out_len=16, legacy=False, _prf=aes_cmac_prf_128),
)
