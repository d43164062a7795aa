"""MD4 (RFC 1320), needed only for the NT password hash of MS-CHAPv2 (RFC 2759 §8.3).

Theory of operation: MD4 is broken as a general-purpose hash and OpenSSL 3+ moved it to the
legacy provider (OpenSSL 4 may not ship it at all), so :func:`md4` uses ``hashlib`` when the
running OpenSSL still offers it and otherwise this module's pure-Python implementation,
:func:`md4_pure`. Both give identical results; the unit tests run the RFC 1320 §A.5 suite on
the pure implementation whatever OpenSSL provides. The inputs here are tiny (a UTF-16
password, a 16-byte hash), so the speed of the pure version does not matter.

The algorithm (RFC 1320 §3): pad the message with ``0x80``, zeros to 56 mod 64 octets and
the 64-bit little-endian bit length; run each 64-octet block (sixteen little-endian words)
through three rounds of sixteen operations on the state ``A B C D``; the digest is the
final state in little-endian order.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["MD4_DIGEST_SIZE", "md4", "md4_pure", "openssl_has_md4"]

MD4_DIGEST_SIZE = 16

_MASK = 0xFFFFFFFF
_INIT = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)  # RFC 1320 §3.3
_ROUND2 = 0x5A827999  # RFC 1320 §3.4, square root of 2
_ROUND3 = 0x6ED9EBA1  # square root of 3

# Word order and shift amounts of the 48 steps (RFC 1320 §3.4).
_R1_ORDER = tuple(range(16))
_R1_SHIFT = (3, 7, 11, 19)
_R2_ORDER = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_R2_SHIFT = (3, 5, 9, 13)
_R3_ORDER = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
_R3_SHIFT = (3, 9, 11, 15)


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def _compress(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    x = struct.unpack("<16I", block)
    a, b, c, d = state
    # Each step updates one register and the roles rotate: (a, b, c, d) -> (d, a, b, c).
    for i, k in enumerate(_R1_ORDER):
        f = (b & c) | (~b & d)  # F(X,Y,Z) = XY v not(X) Z
        a, b, c, d = d, _rotl((a + f + x[k]) & _MASK, _R1_SHIFT[i % 4]), b, c
    for i, k in enumerate(_R2_ORDER):
        g = (b & c) | (b & d) | (c & d)  # G(X,Y,Z) = XY v XZ v YZ
        a, b, c, d = d, _rotl((a + g + x[k] + _ROUND2) & _MASK, _R2_SHIFT[i % 4]), b, c
    for i, k in enumerate(_R3_ORDER):
        h = b ^ c ^ d  # H(X,Y,Z) = X xor Y xor Z
        a, b, c, d = d, _rotl((a + h + x[k] + _ROUND3) & _MASK, _R3_SHIFT[i % 4]), b, c
    return (
        (state[0] + a) & _MASK,
        (state[1] + b) & _MASK,
        (state[2] + c) & _MASK,
        (state[3] + d) & _MASK,
    )


def md4_pure(data: bytes) -> bytes:
    """MD4 of ``data`` computed in Python (RFC 1320 §3)."""
    bit_length = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    padded = bytes(data) + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", bit_length)
    assert len(padded) % 64 == 0
    state = _INIT
    for offset in range(0, len(padded), 64):
        state = _compress(state, padded[offset : offset + 64])
    return struct.pack("<4I", *state)


def _probe_openssl() -> bool:
    try:
        hashlib.new("md4", b"")  # noqa: S324 - MD4 is what RFC 2759 mandates for the NT hash
    except ValueError:
        return False
    return True


_OPENSSL_MD4 = _probe_openssl()


def openssl_has_md4() -> bool:
    """True if ``hashlib`` (the linked OpenSSL) provides MD4, so :func:`md4` uses it."""
    return _OPENSSL_MD4


def md4(data: bytes) -> bytes:
    """MD4 of ``data`` (16 octets): OpenSSL's when available, else :func:`md4_pure`."""
    if _OPENSSL_MD4:
        return hashlib.new("md4", data).digest()  # noqa: S324 - see _probe_openssl
    return md4_pure(data)
