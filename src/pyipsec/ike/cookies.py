"""Stateless COOKIEs against IKE_SA_INIT floods (RFC 7296 §2.6).

Cookie = <version of secret> | <time made, 4 octets> | HMAC-SHA-256(secret, time | Ni | IPi | SPIi)[:16]
(21 octets). The time is the engine's monotonic clock in whole seconds, read through ``clock``
when the cookie is made and checked: a cookie is accepted only within ``valid_for`` seconds of
being made (strongSwan's receiver puts a timestamp in its cookies the same way), so a cookie
captured once cannot be replayed for long. The secret rotates every ``lifetime`` seconds; a
cookie made with the previous secret is still accepted, so a client answering right after a
rotation is not turned away; one made two rotations ago is not. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from pyipsec.crypto.rand import RandomSource

__all__ = ["COOKIE_LEN", "CookieJar"]

_SECRET_LEN = 32
_MAC_LEN = 16
_STAMP_LEN = 4
COOKIE_LEN = 1 + _STAMP_LEN + _MAC_LEN


class CookieJar:
    def __init__(
        self,
        rng: RandomSource,
        *,
        clock: Callable[[], float] = lambda: 0.0,
        lifetime: float = 120.0,
        valid_for: float = 10.0,
    ) -> None:
        self._rng = rng
        self._clock = clock
        self._lifetime = lifetime
        self._valid_for = valid_for
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
        stamp = (int(self._clock()) & 0xFFFFFFFF).to_bytes(_STAMP_LEN, "big")
        mac = self._mac(self._secrets[self._version], stamp, nonce_i, ip_i, spi_i)
        return bytes([self._version]) + stamp + mac

    def check(self, cookie: bytes, nonce_i: bytes, ip_i: bytes, spi_i: bytes) -> bool:
        if len(cookie) != COOKIE_LEN:
            return False
        secret = self._secrets.get(cookie[0])
        if secret is None:
            return False
        stamp = cookie[1 : 1 + _STAMP_LEN]
        mac = self._mac(secret, stamp, nonce_i, ip_i, spi_i)
        if not hmac.compare_digest(cookie[1 + _STAMP_LEN :], mac):
            return False
        age = int(self._clock()) - int.from_bytes(stamp, "big")
        return 0 <= age <= self._valid_for

    @staticmethod
    def _mac(secret: bytes, stamp: bytes, nonce_i: bytes, ip_i: bytes, spi_i: bytes) -> bytes:
        return hmac.new(secret, stamp + nonce_i + ip_i + spi_i, hashlib.sha256).digest()[:_MAC_LEN]
