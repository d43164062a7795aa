"""AEAD encryption transforms with the IPsec salt/IV nonce layout.

Theory of operation: for every AEAD transform the keying material taken from prf+ is the
cipher key followed by a salt that stays fixed for the life of the SA; each message carries
an explicit 8-byte IV, and the AEAD nonce is ``salt | IV``:

* AES-GCM with 8/12/16-byte ICVs (RFC 4106 §4, RFC 5282 §7.1 for IKEv2): 4-byte salt, 12-byte
  nonce. The 16-byte ICV uses ``AESGCM``; the truncated ones seal with ``AESGCM`` and keep the
  left-most bytes of the tag (NIST SP 800-38D §5.2.1.2), and open through
  ``Cipher(AES, GCM(nonce, tag, min_tag_length=n))``.
* AES-CCM with 8/12/16-byte ICVs (RFC 4309 §4, §7.1): 3-byte salt, 11-byte nonce.
* ChaCha20-Poly1305 (RFC 7634 §2, RFC 8439): 32-byte key, 4-byte salt, 12-byte nonce.

``seal`` returns ciphertext | ICV and ``open`` raises :class:`~pyipsec.errors.IntegrityError`
on any authentication failure. The ``cryptography`` AEAD object is created once per key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from pyipsec.errors import IntegrityError
from pyipsec.iana.transforms import EncrId

__all__ = [
    "AES_AEAD_KEY_BITS",
    "AeadKey",
    "AeadSpec",
    "aes_ccm_spec",
    "aes_gcm_spec",
    "chacha20_poly1305_spec",
]

AES_AEAD_KEY_BITS: tuple[int, ...] = (128, 192, 256)
_IV_LEN = 8
_GCM_FULL_TAG = 16

_GCM_ICV = {EncrId.ENCR_AES_GCM_8: 8, EncrId.ENCR_AES_GCM_12: 12, EncrId.ENCR_AES_GCM_16: 16}
_CCM_ICV = {EncrId.ENCR_AES_CCM_8: 8, EncrId.ENCR_AES_CCM_12: 12, EncrId.ENCR_AES_CCM_16: 16}


class AeadKey(Protocol):
    """A keyed AEAD with the SA's salt folded in; the caller supplies the 8-byte IV."""

    def seal(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate: ciphertext | ICV."""
        ...

    def open(self, iv: bytes, data: bytes, aad: bytes) -> bytes:
        """Verify and decrypt ciphertext | ICV; raise IntegrityError if it does not verify."""
        ...


def _check_iv(iv: bytes) -> None:
    if len(iv) != _IV_LEN:
        raise ValueError(f"AEAD IV must be {_IV_LEN} bytes, got {len(iv)}")


class _SaltedAead:
    """Common shape: a ``cryptography`` AEAD taking (nonce, data, aad) with the ICV appended."""

    __slots__ = ("_aead", "_icv_len", "_salt")

    def __init__(self, aead: AESGCM | AESCCM | ChaCha20Poly1305, salt: bytes, icv_len: int) -> None:
        self._aead = aead
        self._salt = salt
        self._icv_len = icv_len

    def seal(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        _check_iv(iv)
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def open(self, iv: bytes, data: bytes, aad: bytes) -> bytes:
        _check_iv(iv)
        if len(data) < self._icv_len:
            raise IntegrityError(f"AEAD data shorter than its {self._icv_len}-byte ICV")
        try:
            return self._aead.decrypt(self._salt + iv, data, aad)
        except InvalidTag:
            raise IntegrityError("AEAD authentication failed") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(icv_len={self._icv_len})"


class _TruncatedGcm:
    """AES-GCM with an 8- or 12-byte ICV (RFC 4106 §4)."""

    __slots__ = ("_aead", "_algorithm", "_icv_len", "_salt")

    def __init__(self, key: bytes, salt: bytes, icv_len: int) -> None:
        self._aead = AESGCM(key)
        self._algorithm = algorithms.AES(key)
        self._salt = salt
        self._icv_len = icv_len

    def seal(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        _check_iv(iv)
        sealed = self._aead.encrypt(self._salt + iv, plaintext, aad)
        return sealed[: len(sealed) - _GCM_FULL_TAG + self._icv_len]

    def open(self, iv: bytes, data: bytes, aad: bytes) -> bytes:
        _check_iv(iv)
        if len(data) < self._icv_len:
            raise IntegrityError(f"AEAD data shorter than its {self._icv_len}-byte ICV")
        split = len(data) - self._icv_len
        mode = modes.GCM(self._salt + iv, data[split:], min_tag_length=self._icv_len)
        dec = Cipher(self._algorithm, mode).decryptor()
        dec.authenticate_additional_data(aad)
        plaintext = dec.update(data[:split])
        try:
            return plaintext + dec.finalize()
        except InvalidTag:
            raise IntegrityError("AEAD authentication failed") from None

    def __repr__(self) -> str:
        return f"_TruncatedGcm(icv_len={self._icv_len})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AeadSpec:
    """Registry entry for one AEAD transform at one key size.

    ``key_len`` is the cipher key alone; ``keymat_len`` = key + salt is what prf+ must
    produce for SK_e or an ESP key.
    """

    ident: EncrId
    key_bits: int
    key_len: int
    salt_len: int
    iv_len: int
    icv_len: int
    legacy: bool
    _aead: Callable[[bytes, bytes], AeadKey] = field(repr=False, compare=False)

    @property
    def keymat_len(self) -> int:
        return self.key_len + self.salt_len

    def new(self, keymat: bytes) -> AeadKey:
        """Key the AEAD with ``key | salt`` (``keymat_len`` bytes)."""
        if len(keymat) != self.keymat_len:
            raise ValueError(
                f"{self.ident.name} needs {self.keymat_len} bytes of key material, got {len(keymat)}"
            )
        return self._aead(keymat[: self.key_len], keymat[self.key_len :])


def aes_gcm_spec(ident: EncrId, key_bits: int) -> AeadSpec:
    """ENCR_AES_GCM_8/12/16 (RFC 4106, RFC 5282)."""
    icv_len = _GCM_ICV[ident]

    def make(key: bytes, salt: bytes) -> AeadKey:
        if icv_len == _GCM_FULL_TAG:
            return _SaltedAead(AESGCM(key), salt, icv_len)
        return _TruncatedGcm(key, salt, icv_len)

    return AeadSpec(
        ident=ident,
        key_bits=key_bits,
        key_len=key_bits // 8,
        salt_len=4,
        iv_len=_IV_LEN,
        icv_len=icv_len,
        legacy=False,
        _aead=make,
    )


def aes_ccm_spec(ident: EncrId, key_bits: int) -> AeadSpec:
    """ENCR_AES_CCM_8/12/16 (RFC 4309, RFC 5282)."""
    icv_len = _CCM_ICV[ident]

    def make(key: bytes, salt: bytes) -> AeadKey:
        return _SaltedAead(AESCCM(key, tag_length=icv_len), salt, icv_len)

    return AeadSpec(
        ident=ident,
        key_bits=key_bits,
        key_len=key_bits // 8,
        salt_len=3,
        iv_len=_IV_LEN,
        icv_len=icv_len,
        legacy=False,
        _aead=make,
    )


def _chacha(key: bytes, salt: bytes) -> AeadKey:
    return _SaltedAead(ChaCha20Poly1305(key), salt, 16)


def chacha20_poly1305_spec() -> AeadSpec:
    """ENCR_CHACHA20_POLY1305 (RFC 7634): 256-bit key, 4-byte salt, 16-byte ICV."""
    return AeadSpec(
        ident=EncrId.ENCR_CHACHA20_POLY1305,
        key_bits=256,
        key_len=32,
        salt_len=4,
        iv_len=_IV_LEN,
        icv_len=16,
        legacy=False,
        _aead=_chacha,
    )
