"""Stateless COOKIEs against IKE_SA_INIT floods (RFC 7296 §2.6).

Cookie = <version of secret> | HMAC-SHA-256(secret, Ni | IPi | SPIi)[:16]. The secret
rotates every ``lifetime`` seconds; a cookie made with the previous secret is still
accepted, so a client answering right after a rotation is not turned away.
"""

from __future__ import annotations

import hashlib
import hmac

from pyipsec.crypto.rand import RandomSource

__all__ = ["CookieJar"]

_SECRET_LEN = 32
_MAC_LEN = 16


class CookieJar:
    def __init__(self, rng: RandomSource, *, lifetime: float = 120.0) -> None:
        self._rng = rng
        self._lifetime = lifetime
        self._version = 0
        self._secrets: dict[int, bytes] = {0: rng.random_bytes(_SECRET_LEN)}
        self._rotate_at = lifetime

    def rotate_if_due(self, now: float) -> None:
        if now < self._rotate_at:
            return
        self._version = (self._version + 1) % 256
        self._secrets = {
            self._version: self._rng.random_bytes(_SECRET_LEN),
            (self._version - 1) % 256: self._secrets[(self._version - 1) % 256],
        }
        self._rotate_at = now + self._lifetime

    def make(self, nonce_i: bytes, ip_i: bytes, spi_i: bytes) -> bytes:
        return bytes([self._version]) + self._mac(self._secrets[self._version], nonce_i, ip_i, spi_i)

    def check(self, cookie: bytes, nonce_i: bytes, ip_i: bytes, spi_i: bytes) -> bool:
        if len(cookie) != 1 + _MAC_LEN:
            return False
        secret = self._secrets.get(cookie[0])
        if secret is None:
            return False
        return hmac.compare_digest(cookie[1:], self._mac(secret, nonce_i, ip_i, spi_i))

    @staticmethod
    def _mac(secret: bytes, nonce_i: bytes, ip_i: bytes, spi_i: bytes) -> bytes:
        return hmac.new(secret, nonce_i + ip_i + spi_i, hashlib.sha256).digest()[:_MAC_LEN]
