"""Non-AEAD encryption transforms: AES-CBC, AES-CTR and (legacy) 3DES-CBC.

Theory of operation: a :class:`CipherSpec` is keyed with its keying material and returns a
:class:`Cipher` whose ``encrypt(iv, data)`` / ``decrypt(iv, data)`` process one message. The
``cryptography`` algorithm object (the AES key schedule) is built once per key; only the
mode context, which carries the per-message IV, is created per call. No padding is applied:
the caller (ESP, the SK payload) pads to ``block_len`` itself.

* CBC (RFC 3602 for AES, RFC 2451 for 3DES): the IV is one block; data must be a multiple of
  the block size.
* CTR (RFC 3686, RFC 5930 for IKEv2): the keying material is the AES key followed by a 4-byte
  nonce; the 16-byte counter block is nonce | 8-byte IV | 0x00000001, and data may have any
  length. ``key_len`` is the AES key alone, ``keymat_len`` the key plus the nonce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import CipherAlgorithm, algorithms, modes

from pyipsec.iana.transforms import EncrId

try:  # cryptography >= 43 keeps 3DES in the "decrepit" package.
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES as _TripleDES
except ImportError:  # pragma: no cover - depends on the installed cryptography
    _TripleDES = None  # type: ignore[assignment,misc]

__all__ = [
    "CBC_KEY_BITS",
    "CTR_NONCE_LEN",
    "Cipher",
    "CipherSpec",
    "TRIPLE_DES_AVAILABLE",
    "aes_cbc_spec",
    "aes_ctr_spec",
    "triple_des_spec",
]

CBC_KEY_BITS: tuple[int, ...] = (128, 192, 256)
CTR_NONCE_LEN = 4
_AES_BLOCK = 16
_DES_BLOCK = 8
_CTR_IV_LEN = 8
_CTR_INITIAL_COUNTER = (1).to_bytes(4, "big")
TRIPLE_DES_AVAILABLE: bool = _TripleDES is not None


class Cipher(Protocol):
    """A keyed, unauthenticated cipher; the caller supplies the IV per message."""

    def encrypt(self, iv: bytes, data: bytes) -> bytes: ...

    def decrypt(self, iv: bytes, data: bytes) -> bytes: ...


class CbcCipher:
    """CBC mode without padding over any block cipher."""

    __slots__ = ("_algorithm", "_block_len")

    def __init__(self, algorithm: CipherAlgorithm, block_len: int) -> None:
        self._algorithm = algorithm
        self._block_len = block_len

    def _check(self, iv: bytes, data: bytes) -> None:
        if len(iv) != self._block_len:
            raise ValueError(f"CBC IV must be {self._block_len} bytes, got {len(iv)}")
        if len(data) % self._block_len:
            raise ValueError(f"CBC data length {len(data)} is not a multiple of {self._block_len}")

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        self._check(iv, data)
        enc = _Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        self._check(iv, data)
        dec = _Cipher(self._algorithm, modes.CBC(iv)).decryptor()
        return dec.update(data) + dec.finalize()

    def __repr__(self) -> str:
        return f"CbcCipher({self._algorithm.name})"


class AesCtrCipher:
    """AES-CTR as used by ESP and IKEv2 (RFC 3686 §4): nonce | IV | 32-bit block counter."""

    __slots__ = ("_algorithm", "_nonce")

    def __init__(self, keymat: bytes) -> None:
        self._algorithm = algorithms.AES(keymat[:-CTR_NONCE_LEN])
        self._nonce = keymat[-CTR_NONCE_LEN:]

    def _counter_block(self, iv: bytes) -> bytes:
        if len(iv) != _CTR_IV_LEN:
            raise ValueError(f"AES-CTR IV must be {_CTR_IV_LEN} bytes, got {len(iv)}")
        return self._nonce + iv + _CTR_INITIAL_COUNTER

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        enc = _Cipher(self._algorithm, modes.CTR(self._counter_block(iv))).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        # CTR decryption is the same keystream XOR.
        return self.encrypt(iv, data)

    def __repr__(self) -> str:
        return "AesCtrCipher()"


@dataclass(frozen=True, slots=True, kw_only=True)
class CipherSpec:
    """Registry entry for one non-AEAD encryption transform at one key size.

    ``key_len`` is the cipher key in bytes; ``nonce_len`` the bytes of keying material that
    follow it (4 for AES-CTR, else 0); ``keymat_len`` their sum, which is what prf+ must
    produce for SK_e or an ESP encryption key.
    """

    ident: EncrId
    key_bits: int
    key_len: int
    block_len: int
    iv_len: int
    legacy: bool
    nonce_len: int = 0
    _cipher: Callable[[bytes], Cipher] = field(repr=False, compare=False)

    @property
    def keymat_len(self) -> int:
        return self.key_len + self.nonce_len

    def new(self, key: bytes) -> Cipher:
        """Key the cipher with ``keymat_len`` bytes of keying material."""
        if len(key) != self.keymat_len:
            raise ValueError(
                f"{self.ident.name} needs {self.keymat_len} bytes of key material, got {len(key)}"
            )
        return self._cipher(key)


def _aes_cbc(key: bytes) -> Cipher:
    return CbcCipher(algorithms.AES(key), _AES_BLOCK)


def _triple_des_cbc(key: bytes) -> Cipher:
    if _TripleDES is None:  # pragma: no cover - guarded by the registry
        raise RuntimeError("3DES is not available in this cryptography build")
    return CbcCipher(_TripleDES(key), _DES_BLOCK)


def aes_cbc_spec(key_bits: int) -> CipherSpec:
    """ENCR_AES_CBC (RFC 3602) at 128, 192 or 256 bits."""
    return CipherSpec(
        ident=EncrId.ENCR_AES_CBC,
        key_bits=key_bits,
        key_len=key_bits // 8,
        block_len=_AES_BLOCK,
        iv_len=_AES_BLOCK,
        legacy=False,
        _cipher=_aes_cbc,
    )


def aes_ctr_spec(key_bits: int) -> CipherSpec:
    """ENCR_AES_CTR (RFC 3686, RFC 5930) at 128, 192 or 256 bits; keymat = key | 4-byte nonce."""
    return CipherSpec(
        ident=EncrId.ENCR_AES_CTR,
        key_bits=key_bits,
        key_len=key_bits // 8,
        block_len=1,  # RFC 3686 §3.2: no padding needed beyond ESP's 4-byte alignment
        iv_len=_CTR_IV_LEN,
        legacy=False,
        nonce_len=CTR_NONCE_LEN,
        _cipher=AesCtrCipher,
    )


def triple_des_spec() -> CipherSpec:
    """ENCR_3DES (RFC 2451): 192-bit key (three DES keys, parity bits ignored), legacy."""
    return CipherSpec(
        ident=EncrId.ENCR_3DES,
        key_bits=192,
        key_len=24,
        block_len=_DES_BLOCK,
        iv_len=_DES_BLOCK,
        legacy=True,
        _cipher=_triple_des_cbc,
    )
