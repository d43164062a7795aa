"""ESP packet transforms: the bytes on the wire for each cipher suite (RFC 4303 §2).

Theory of operation
-------------------
An ESP packet is ``SPI(4) ‖ Sequence Number(4) ‖ IV ‖ ciphertext ‖ ICV`` where the
ciphertext covers ``payload ‖ Padding ‖ Pad Length(1) ‖ Next Header(1)`` (RFC 4303 §2).
One transform object per SA does the crypto for one suite; it is built once, holds its
``cryptography`` objects, and is then called per packet with no other per-packet set-up:

* :class:`AeadTransform`, AES-GCM-16 (RFC 4106) and ChaCha20-Poly1305 (RFC 7634): nonce =
  4-byte salt ‖ 8-byte IV, AAD = SPI ‖ Seq (or SPI ‖ Seq-hi ‖ Seq-lo with ESN, RFC 4106 §5,
  RFC 7634 §2.1). The IV is the 64-bit sequence number: unique per SA as RFC 4106 §3.1 and
  RFC 7634 §2 require, since the counter never wraps, and free to compute.
* :class:`CbcHmacTransform`, AES-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404) or
  HMAC-SHA2-256-128/-384-192/-512-256 (RFC 4868): encrypt-then-MAC, ICV = truncated HMAC over
  SPI ‖ Seq ‖ IV ‖ ciphertext, with the ESN high half appended for the ICV only
  (RFC 4303 §2.2.1, §3.3.2.2 and Appendix A). The HMAC is a ``.copy()`` of a keyed template.

  The CBC contexts are created once and never finalized, so their chaining state runs on from
  packet to packet. Decryption feeds ``IV ‖ ciphertext``: the first output block is discarded
  and the rest is exactly CBC decryption under that IV. Encryption feeds ``R ‖ plaintext`` with
  R a fresh random block from the injected RandomSource (read 4 KiB at a time): the first
  output block, ``E_K(R ⊕ previous ciphertext block)``, is uniformly random and unpredictable
  (RFC 3602 §2.3) and becomes the packet's IV, the rest is the CBC encryption of the plaintext
  under it. A caller-chosen IV (known-answer tests) uses a one-off context instead.

Padding is the RFC 4303 §2.4 default, 1, 2, 3, ..., to the cipher block size (AES-CBC) or to
4 bytes (AEAD). Receive-side checks of the trailer are done by :class:`~pyipsec.esp.sa.EspSa`
after the replay window committed (RFC 4303 §3.4).
"""

from __future__ import annotations

import hmac as _std_hmac
import struct
from typing import ClassVar, Protocol, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.crypto.registry import REGISTRY, AeadSpec, CipherSpec, IntegSpec
from pyipsec.errors import IntegrityError, PyIpsecError, UnsupportedAlgorithm
from pyipsec.iana.transforms import EncrId, IntegId

__all__ = [
    "PAD_BYTES",
    "AeadTransform",
    "BadPadding",
    "BytesLike",
    "CbcHmacTransform",
    "EspDrop",
    "EspIntegrityFailure",
    "EspTransform",
    "MalformedEsp",
    "RandomBytes",
    "ReplayedPacket",
    "SpiMismatch",
    "check_keys",
    "make_transform",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview

PAD_BYTES = bytes(range(1, 256))
"""RFC 4303 §2.4 default padding: a padding of n bytes is ``PAD_BYTES[:n]`` (1, 2, ..., n)."""

_POOL = 4096  # bytes of randomness fetched per RandomSource call (CBC IV seeds)
_MASK32 = 0xFFFF_FFFF
_pack = struct.pack
_pack_into = struct.pack_into
_compare = _std_hmac.compare_digest


class RandomBytes(Protocol):
    """What ESP needs of a RandomSource: ``random_bytes(n)`` returning n unpredictable bytes."""

    def random_bytes(self, n: int) -> bytes: ...


# --- drop reasons -----------------------------------------------------------------------------


class EspDrop(PyIpsecError):
    """An inbound ESP packet was dropped; ``reason`` names the counter it went to."""

    reason: ClassVar[str] = "drop"


class SpiMismatch(EspDrop):
    """The packet's SPI is not this SA's."""

    reason = "spi"


class MalformedEsp(EspDrop):
    """Too short, ciphertext not a whole number of blocks, or an inner packet length that
    contradicts the decrypted payload."""

    reason = "malformed"


class ReplayedPacket(EspDrop):
    """Duplicate or left of the anti-replay window (RFC 4303 §3.4.3)."""

    reason = "replay"


class EspIntegrityFailure(EspDrop, IntegrityError):
    """ICV or AEAD tag mismatch (RFC 4303 §3.4.4); the replay window is left untouched."""

    reason = "integrity"


class BadPadding(EspDrop):
    """Pad Length beyond the payload or padding bytes not 1, 2, 3, ... (RFC 4303 §2.4)."""

    reason = "pad"


# --- suites -----------------------------------------------------------------------------------


_AEAD_SUITES = frozenset({EncrId.ENCR_AES_GCM_16, EncrId.ENCR_CHACHA20_POLY1305})
_AEAD_IV = 8  # RFC 4106 §3.1, RFC 7634 §2
_AEAD_ICV = 16
_HMAC_HASHES: dict[IntegId, type[hashes.HashAlgorithm]] = {
    IntegId.AUTH_HMAC_SHA1_96: hashes.SHA1,  # RFC 2404
    IntegId.AUTH_HMAC_SHA2_256_128: hashes.SHA256,  # RFC 4868 §2.1
    IntegId.AUTH_HMAC_SHA2_384_192: hashes.SHA384,
    IntegId.AUTH_HMAC_SHA2_512_256: hashes.SHA512,
}


def _trailer_table(align: int, next_header: int) -> tuple[bytes, ...]:
    """``Padding ‖ Pad Length ‖ Next Header`` for each pad length 0 .. align-1."""
    return tuple(PAD_BYTES[:n] + bytes((n, next_header)) for n in range(align))


class EspTransform:
    """Base of the per-suite transforms: sizes, and the two per-packet operations.

    ``seal(seq, inner, next_header, iv)`` returns the complete ESP packet for the full
    (64-bit with ESN) sequence number ``seq``; ``iv=None`` picks the IV itself.
    ``open(packet, seq)`` verifies and decrypts, returning the decrypted bytes whose
    ``[payload_offset:]`` is ``payload ‖ padding ‖ pad length ‖ next header``; it raises
    :class:`EspIntegrityFailure`. ``open`` expects ``len(packet) >= min_len`` and a
    ciphertext length that is a multiple of ``align`` for block ciphers (checked by the SA).
    """

    __slots__ = ("_trailers", "align", "esn", "icv_len", "iv_len", "min_len", "payload_offset", "spi")

    def __init__(self, *, spi: int, esn: bool, iv_len: int, icv_len: int, align: int, payload_offset: int):
        self.spi = spi
        self.esn = esn
        self.iv_len = iv_len
        self.icv_len = icv_len
        self.align = align
        self.payload_offset = payload_offset
        # smallest valid packet: header, IV, one aligned block holding pad length + next header, ICV
        self.min_len = 8 + iv_len + max(align, 4) + icv_len
        self._trailers: dict[int, tuple[bytes, ...]] = {}

    def sealed_len(self, inner_len: int) -> int:
        """Length of the ESP packet that ``seal`` makes of an ``inner_len``-byte payload."""
        body = inner_len + 2
        return 8 + self.iv_len + body + (-body % self.align) + self.icv_len

    def seal(self, seq: int, inner: BytesLike, next_header: int, iv: bytes | None = None) -> bytes:
        raise NotImplementedError

    def open(self, packet: BytesLike, seq: int) -> bytes:
        raise NotImplementedError

    # Buffer-oriented variants for the batched data plane (no intermediate bytes objects).

    def seal_into(self, seq: int, buf: memoryview, inner_len: int, next_header: int, out: memoryview) -> int:
        """Seal in place: ``buf[payload_offset : payload_offset + inner_len]`` holds the payload
        (the caller put it there); ``buf`` must have ``payload_offset + inner_len + align + 2``
        bytes. The transform writes its prefix and the trailer into ``buf`` and the whole ESP
        packet to ``out``, which needs ``sealed_len(inner_len) + align`` bytes of room (block
        ciphers write up to a block past the packet, which later packets overwrite). Returns
        the ESP packet length. IVs are chosen as :meth:`seal` chooses them."""
        raise NotImplementedError

    def open_into(self, packet: BytesLike, seq: int, out: memoryview) -> int:
        """Verify and decrypt into ``out`` (same layout as :meth:`open` returns, so the payload
        starts at ``payload_offset``); returns the number of bytes written. ``out`` needs
        ``len(packet) + align`` bytes of room. Raises :class:`EspIntegrityFailure`."""
        raise NotImplementedError


class AeadTransform(EspTransform):
    """AES-GCM-16 (RFC 4106) or ChaCha20-Poly1305 (RFC 7634) in ESP."""

    __slots__ = ("_aead", "_salt")

    def __init__(self, *, spi: int, esn: bool, aead: AESGCM | ChaCha20Poly1305, salt: bytes) -> None:
        super().__init__(spi=spi, esn=esn, iv_len=_AEAD_IV, icv_len=_AEAD_ICV, align=4, payload_offset=0)
        self._aead = aead
        self._salt = salt

    def seal(self, seq: int, inner: BytesLike, next_header: int, iv: bytes | None = None) -> bytes:
        table = self._trailers.get(next_header)
        if table is None:
            table = self._trailers[next_header] = _trailer_table(4, next_header)
        if iv is None:
            iv = seq.to_bytes(8, "big")  # unique per SA: the counter never wraps (RFC 4106 §3.1)
        header = _pack(">II", self.spi, seq & _MASK32)
        # RFC 4106 §5 / RFC 7634 §2.1: AAD = SPI ‖ Seq, or SPI ‖ Seq-hi ‖ Seq-lo with ESN
        aad = _pack(">III", self.spi, seq >> 32, seq & _MASK32) if self.esn else header
        sealed = self._aead.encrypt(self._salt + iv, b"".join((inner, table[-(len(inner) + 2) & 3])), aad)
        return b"".join((header, iv, sealed))

    def open(self, packet: BytesLike, seq: int) -> bytes:
        aad = _pack(">III", self.spi, seq >> 32, seq & _MASK32) if self.esn else packet[:8]
        try:
            return self._aead.decrypt(self._salt + packet[8:16], packet[16:], aad)
        except InvalidTag:
            raise EspIntegrityFailure(f"SPI {self.spi:08x} seq {seq}: AEAD tag mismatch") from None

    def seal_into(self, seq: int, buf: memoryview, inner_len: int, next_header: int, out: memoryview) -> int:
        table = self._trailers.get(next_header)
        if table is None:
            table = self._trailers[next_header] = _trailer_table(4, next_header)
        trailer = table[-(inner_len + 2) & 3]
        end = inner_len + len(trailer)
        buf[inner_len:end] = trailer
        low = seq & _MASK32
        _pack_into(">IIQ", out, 0, self.spi, low, seq)  # header, then IV = the 64-bit counter
        aad = _pack(">III", self.spi, seq >> 32, low) if self.esn else out[:8]
        self._aead.encrypt_into(self._salt + out[8:16], buf[:end], aad, out[16 : end + 32])
        return end + 32

    def open_into(self, packet: BytesLike, seq: int, out: memoryview) -> int:
        aad = _pack(">III", self.spi, seq >> 32, seq & _MASK32) if self.esn else packet[:8]
        size = len(packet) - 32
        try:
            self._aead.decrypt_into(self._salt + packet[8:16], packet[16:], aad, out[:size])
        except InvalidTag:
            raise EspIntegrityFailure(f"SPI {self.spi:08x} seq {seq}: AEAD tag mismatch") from None
        return size


class CbcHmacTransform(EspTransform):
    """AES-CBC (RFC 3602) with a truncated HMAC (RFC 2404, RFC 4868), encrypt-then-MAC."""

    __slots__ = ("_dec", "_enc", "_key", "_mac", "_pool", "_pos", "_rng")

    def __init__(
        self,
        *,
        spi: int,
        esn: bool,
        key: bytes,
        mac: crypto_hmac.HMAC,
        icv_len: int,
        rng: RandomBytes | None,
    ) -> None:
        super().__init__(spi=spi, esn=esn, iv_len=16, icv_len=icv_len, align=16, payload_offset=16)
        self._key = key
        self._mac = mac
        # Never finalized: the chaining state carries over between packets (module docstring).
        zero_iv = modes.CBC(bytes(16))
        self._enc: CipherContext = Cipher(algorithms.AES(key), zero_iv).encryptor()
        self._dec: CipherContext = Cipher(algorithms.AES(key), zero_iv).decryptor()
        self._rng = rng
        self._pool = b""
        self._pos = _POOL

    def seal(self, seq: int, inner: BytesLike, next_header: int, iv: bytes | None = None) -> bytes:
        table = self._trailers.get(next_header)
        if table is None:
            table = self._trailers[next_header] = _trailer_table(16, next_header)
        trailer = table[-(len(inner) + 2) & 15]
        if iv is None:
            pos = self._pos
            if pos == _POOL:
                if self._rng is None:
                    raise ValueError("an AES-CBC outbound SA needs a RandomSource (rng)")
                self._pool = self._rng.random_bytes(_POOL)
                pos = 0
            self._pos = pos + 16
            # IV = E_K(R ⊕ previous ciphertext block), then the CBC encryption under that IV
            body = self._enc.update(b"".join((self._pool[pos : pos + 16], inner, trailer)))
        else:
            if len(iv) != 16:
                raise ValueError("an AES-CBC IV is 16 bytes")
            once = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
            body = iv + once.update(b"".join((inner, trailer)))
        header = _pack(">II", self.spi, seq & _MASK32)
        mac = self._mac.copy()
        mac.update(header)
        mac.update(body)
        if self.esn:
            mac.update(_pack(">I", seq >> 32))  # RFC 4303 §2.2.1: high half in the ICV only
        return b"".join((header, body, mac.finalize()[: self.icv_len]))

    def open(self, packet: BytesLike, seq: int) -> bytes:
        end = len(packet) - self.icv_len
        mac = self._mac.copy()
        mac.update(packet[:end])
        if self.esn:
            mac.update(_pack(">I", seq >> 32))
        if not _compare(mac.finalize()[: self.icv_len], packet[end:]):
            raise EspIntegrityFailure(f"SPI {self.spi:08x} seq {seq}: ICV mismatch")
        # IV ‖ ciphertext through the running decryptor: block 0 is junk, the rest the plaintext
        return self._dec.update(packet[8:end])

    def seal_into(self, seq: int, buf: memoryview, inner_len: int, next_header: int, out: memoryview) -> int:
        if self._rng is None:
            raise ValueError("an AES-CBC outbound SA needs a RandomSource (rng)")
        table = self._trailers.get(next_header)
        if table is None:
            table = self._trailers[next_header] = _trailer_table(16, next_header)
        trailer = table[-(inner_len + 2) & 15]
        end = 16 + inner_len + len(trailer)
        buf[16 + inner_len : end] = trailer
        pos = self._pos
        if pos == _POOL:
            self._pool = self._rng.random_bytes(_POOL)
            pos = 0
        self._pos = pos + 16
        buf[:16] = self._pool[pos : pos + 16]
        # R ‖ plaintext through the running encryptor: block 0 becomes the IV (module docstring)
        self._enc.update_into(buf[:end], out[8 : end + 23])
        _pack_into(">II", out, 0, self.spi, seq & _MASK32)
        mac = self._mac.copy()
        mac.update(out[: end + 8])
        if self.esn:
            mac.update(_pack(">I", seq >> 32))
        icv_len = self.icv_len
        out[end + 8 : end + 8 + icv_len] = mac.finalize()[:icv_len]
        return end + 8 + icv_len

    def open_into(self, packet: BytesLike, seq: int, out: memoryview) -> int:
        end = len(packet) - self.icv_len
        mac = self._mac.copy()
        mac.update(packet[:end])
        if self.esn:
            mac.update(_pack(">I", seq >> 32))
        if not _compare(mac.finalize()[: self.icv_len], packet[end:]):
            raise EspIntegrityFailure(f"SPI {self.spi:08x} seq {seq}: ICV mismatch")
        return self._dec.update_into(packet[8:end], out[: end + 7])


def _suite(
    encr: EncrId, encr_key_len: int, integ: IntegId, integ_key_len: int
) -> tuple[AeadSpec | CipherSpec, IntegSpec | None]:
    """The registry specs of a supported ESP suite, with its key lengths checked."""
    if encr in _AEAD_SUITES:
        if integ != IntegId.NONE:
            raise UnsupportedAlgorithm(f"{encr.name} is a combined-mode cipher: no INTEG transform allowed")
    elif encr == EncrId.ENCR_AES_CBC:
        if integ not in _HMAC_HASHES:
            raise UnsupportedAlgorithm(f"ESP integrity algorithm {integ.name} is not supported with AES-CBC")
    else:
        raise UnsupportedAlgorithm(f"ESP encryption algorithm {encr.name} is not supported")
    if encr == EncrId.ENCR_CHACHA20_POLY1305:
        key_bits = None
    elif encr == EncrId.ENCR_AES_GCM_16:
        key_bits = (encr_key_len - 4) * 8  # key ‖ 4-byte salt (RFC 4106 §8.1)
    else:
        key_bits = encr_key_len * 8
    try:
        spec = REGISTRY.encr(encr, key_bits)
    except UnsupportedAlgorithm:
        raise ValueError(f"{encr.name}: {encr_key_len}-byte key material is invalid") from None
    if spec.keymat_len != encr_key_len:
        raise ValueError(f"{encr.name}: the key material is {spec.keymat_len} bytes, not {encr_key_len}")
    if integ == IntegId.NONE:
        if integ_key_len:
            raise ValueError(f"{encr.name}: no integrity key expected")
        return spec, None
    integ_spec = REGISTRY.integ(integ)
    if integ_key_len != integ_spec.key_len:
        raise ValueError(f"{integ.name}: the key is {integ_spec.key_len} bytes, not {integ_key_len}")
    return spec, integ_spec


def check_keys(
    encr: EncrId, encr_key: BytesLike, integ: IntegId = IntegId.NONE, integ_key: BytesLike = b""
) -> None:
    """Validate a suite and its key lengths: :class:`UnsupportedAlgorithm` for a suite not listed
    in the module docstring, ``ValueError`` for a key of the wrong length. For the AEAD suites
    ``encr_key`` ends with the 4-byte salt (RFC 4106 §8.1, RFC 7634 §2)."""
    _suite(encr, len(encr_key), integ, len(integ_key))


def make_transform(
    *,
    spi: int,
    encr: EncrId,
    encr_key: BytesLike,
    integ: IntegId = IntegId.NONE,
    integ_key: BytesLike = b"",
    esn: bool = False,
    rng: RandomBytes | None = None,
) -> EspTransform:
    """Build the transform of one SA, validating it as :func:`check_keys` does. An outbound
    AES-CBC SA needs ``rng`` (its IV seeds come from it)."""
    spec, integ_spec = _suite(encr, len(encr_key), integ, len(integ_key))
    if isinstance(spec, AeadSpec):
        assert (spec.salt_len, spec.iv_len, spec.icv_len) == (4, _AEAD_IV, _AEAD_ICV)
        key, salt = bytes(encr_key[: spec.key_len]), bytes(encr_key[spec.key_len :])
        aead = AESGCM(key) if encr == EncrId.ENCR_AES_GCM_16 else ChaCha20Poly1305(key)
        return AeadTransform(spi=spi, esn=esn, aead=aead, salt=salt)
    assert integ_spec is not None and spec.block_len == spec.iv_len == 16
    mac = crypto_hmac.HMAC(bytes(integ_key), _HMAC_HASHES[integ]())
    return CbcHmacTransform(
        spi=spi, esn=esn, key=bytes(encr_key), mac=mac, icv_len=integ_spec.icv_len, rng=rng
    )
