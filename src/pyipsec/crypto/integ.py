"""MAC primitives and the truncated integrity transforms built on them.

Theory of operation: three MAC primitives cover IKEv2 and ESP integrity and the PRFs:

* :class:`HmacMac` (RFC 2104) over SHA-1/SHA-2; it keeps one keyed ``cryptography`` HMAC
  object as a template and ``copy()``-es it per message, so the key schedule runs once.
* :class:`AesXcbcMac` (RFC 3566 §4), built here on AES-ECB and AES-CBC since
  ``cryptography`` has no XCBC.
* :class:`AesCmacMac` (RFC 4493), on ``cryptography``'s CMAC, also copied from a template.

Each returns its full-length MAC. An integrity transform (:class:`TruncatedMac`) truncates it
to the ICV length of the transform (RFC 2404 / RFC 4868 §2.6: the left-most bits) and verifies
with ``hmac.compare_digest``. :class:`IntegSpec` is the registry entry for one transform ID.
The objects are reusable but not meant to be shared between threads.
"""

from __future__ import annotations

import hmac as _std_hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyipsec.errors import IntegrityError
from pyipsec.iana.transforms import IntegId

__all__ = [
    "INTEG_SPECS",
    "AesCmacMac",
    "AesXcbcMac",
    "HmacMac",
    "Integ",
    "IntegSpec",
    "Mac",
    "TruncatedMac",
]

_AES_BLOCK = 16
_ZERO_BLOCK = bytes(_AES_BLOCK)


class Mac(Protocol):
    """A keyed MAC returning its full-length output (also the shape of a PRF)."""

    @property
    def out_len(self) -> int: ...

    def compute(self, data: bytes) -> bytes: ...


class Integ(Protocol):
    """A keyed integrity transform: truncated ICV out, verification in constant time."""

    @property
    def icv_len(self) -> int: ...

    def compute(self, data: bytes) -> bytes:
        """The ICV of ``data`` (already truncated to ``icv_len``)."""
        ...

    def verify(self, data: bytes, icv: bytes) -> None:
        """Raise :class:`~pyipsec.errors.IntegrityError` unless ``icv`` is the ICV of ``data``."""
        ...


class HmacMac:
    """HMAC (RFC 2104) with a keyed template copied per message."""

    __slots__ = ("_template", "out_len")

    def __init__(self, algorithm: hashes.HashAlgorithm, key: bytes) -> None:
        self._template = _hmac.HMAC(key, algorithm)
        self.out_len: int = algorithm.digest_size

    def compute(self, data: bytes) -> bytes:
        h = self._template.copy()
        h.update(data)
        return h.finalize()

    def __repr__(self) -> str:
        return f"HmacMac({self._template.algorithm.name})"


class AesXcbcMac:
    """AES-XCBC-MAC (RFC 3566 §4) with a 128-bit key; full 16-byte output.

    K1 = E(K, 0x01^16), K2 = E(K, 0x02^16), K3 = E(K, 0x03^16). All blocks but the last are
    CBC-MACed under K1; the last block is XORed with K2 if it is complete, or padded with
    0x80 00.. and XORed with K3 if not (an empty message counts as one incomplete block),
    then encrypted under K1.
    """

    __slots__ = ("_ecb_k1", "_k1", "_k2", "_k3")

    out_len = _AES_BLOCK

    def __init__(self, key: bytes) -> None:
        if len(key) != _AES_BLOCK:
            raise ValueError(f"AES-XCBC-MAC needs a 16-byte key, got {len(key)}")
        # ECB is the block-cipher primitive XCBC is defined on (RFC 3566 §4), one block at a time.
        derive = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
        subkeys = derive.update(b"\x01" * 16 + b"\x02" * 16 + b"\x03" * 16)
        self._k1 = algorithms.AES(subkeys[:16])
        self._k2 = int.from_bytes(subkeys[16:32], "big")
        self._k3 = int.from_bytes(subkeys[32:48], "big")
        # An ECB context carries no state between whole blocks, so one can serve every call.
        self._ecb_k1 = Cipher(self._k1, modes.ECB()).encryptor()  # noqa: S305

    def compute(self, data: bytes) -> bytes:
        n = len(data)
        rem = n % _AES_BLOCK
        if n and not rem:
            split = n - _AES_BLOCK
            last = int.from_bytes(data[split:], "big") ^ self._k2
        else:
            split = n - rem
            padded = data[split:] + b"\x80" + bytes(_AES_BLOCK - 1 - rem)
            last = int.from_bytes(padded, "big") ^ self._k3
        if split:
            chain = Cipher(self._k1, modes.CBC(_ZERO_BLOCK)).encryptor().update(data[:split])[-_AES_BLOCK:]
            last ^= int.from_bytes(chain, "big")
        return self._ecb_k1.update(last.to_bytes(_AES_BLOCK, "big"))

    def __repr__(self) -> str:
        return "AesXcbcMac()"


class AesCmacMac:
    """AES-CMAC (RFC 4493) with a 128-bit key; full 16-byte output."""

    __slots__ = ("_template",)

    out_len = _AES_BLOCK

    def __init__(self, key: bytes) -> None:
        if len(key) != _AES_BLOCK:
            raise ValueError(f"AES-CMAC needs a 16-byte key here, got {len(key)}")
        self._template = cmac.CMAC(algorithms.AES(key))

    def compute(self, data: bytes) -> bytes:
        c = self._template.copy()
        c.update(data)
        return c.finalize()

    def __repr__(self) -> str:
        return "AesCmacMac()"


class TruncatedMac:
    """An integrity transform: the left-most ``icv_len`` bytes of a MAC (RFC 4868 §2.6)."""

    __slots__ = ("_mac", "icv_len")

    def __init__(self, mac: Mac, icv_len: int) -> None:
        if not 0 < icv_len <= mac.out_len:
            raise ValueError(f"ICV length {icv_len} does not fit a {mac.out_len}-byte MAC")
        self._mac = mac
        self.icv_len: int = icv_len

    def compute(self, data: bytes) -> bytes:
        return self._mac.compute(data)[: self.icv_len]

    def verify(self, data: bytes, icv: bytes) -> None:
        expected = self.compute(data)
        if len(icv) != self.icv_len or not _std_hmac.compare_digest(expected, icv):
            raise IntegrityError("integrity check value mismatch")

    def __repr__(self) -> str:
        return f"TruncatedMac({self._mac!r}, icv_len={self.icv_len})"


@dataclass(frozen=True, slots=True, kw_only=True)
class IntegSpec:
    """Registry entry for one integrity transform (Transform Type 3).

    ``key_len`` is the key size in bytes (the length of SK_ai/SK_ar or of an ESP integrity
    key); ``icv_len`` the truncated ICV length on the wire.
    """

    ident: IntegId
    key_len: int
    icv_len: int
    legacy: bool
    _mac: Callable[[bytes], Mac] = field(repr=False, compare=False)

    def new(self, key: bytes) -> Integ:
        """Key the transform; ``key`` must be exactly ``key_len`` bytes."""
        if len(key) != self.key_len:
            raise ValueError(f"{self.ident.name} needs a {self.key_len}-byte key, got {len(key)}")
        return TruncatedMac(self._mac(key), self.icv_len)


def _hmac_factory(algorithm: hashes.HashAlgorithm) -> Callable[[bytes], Mac]:
    def make(key: bytes) -> Mac:
        return HmacMac(algorithm, key)

    return make


INTEG_SPECS: tuple[IntegSpec, ...] = (
    # RFC 2404 (HMAC-SHA-1-96), legacy; HMAC does not rely on SHA-1's collision resistance.
    IntegSpec(
        ident=IntegId.AUTH_HMAC_SHA1_96,
        key_len=20,
        icv_len=12,
        legacy=True,
        _mac=_hmac_factory(hashes.SHA1()),  # noqa: S303
    ),
    # RFC 3566 (AES-XCBC-MAC-96).
    IntegSpec(ident=IntegId.AUTH_AES_XCBC_96, key_len=16, icv_len=12, legacy=False, _mac=AesXcbcMac),
    # RFC 4494 (AES-CMAC-96).
    IntegSpec(ident=IntegId.AUTH_AES_CMAC_96, key_len=16, icv_len=12, legacy=False, _mac=AesCmacMac),
    # RFC 4868 §2.1-2.6: key length = digest length, ICV = half of it.
    IntegSpec(
        ident=IntegId.AUTH_HMAC_SHA2_256_128,
        key_len=32,
        icv_len=16,
        legacy=False,
        _mac=_hmac_factory(hashes.SHA256()),
    ),
    IntegSpec(
        ident=IntegId.AUTH_HMAC_SHA2_384_192,
        key_len=48,
        icv_len=24,
        legacy=False,
        _mac=_hmac_factory(hashes.SHA384()),
    ),
    IntegSpec(
        ident=IntegId.AUTH_HMAC_SHA2_512_256,
        key_len=64,
        icv_len=32,
        legacy=False,
        _mac=_hmac_factory(hashes.SHA512()),
    ),
)
