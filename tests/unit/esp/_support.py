"""Helpers for the ESP tests: suites, SA pairs, inner packets and a textbook reference sealer.

The reference sealer builds ESP packets from an arbitrary plaintext (trailer included) with the
``cryptography`` primitives used the plain way (a fresh CBC context per packet, a fresh HMAC),
so tests can craft authenticated packets with bad padding or TFC padding, independently of the
optimised code under test.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.childsa import ChildSaSpec, EspMode, Lifetimes
from pyipsec.crypto.rand import RandomSource, SeededRandom
from pyipsec.esp.sa import Direction, EspSa, EspSaConfig
from pyipsec.iana.transforms import EncrId, IntegId
from pyipsec.net.addr import Endpoint
from pyipsec.wire.payloads.ts import TrafficSelector

__all__ = [
    "SUITES",
    "CountingRandom",
    "Suite",
    "child_sa_spec",
    "ipv4_packet",
    "ipv6_packet",
    "reference_seal",
    "sa_pair",
]


@dataclass(frozen=True)
class Suite:
    name: str
    encr: EncrId
    encr_key_len: int  # with the 4-byte salt for AEAD
    integ: IntegId = IntegId.NONE
    integ_key_len: int = 0
    icv_len: int = 16
    block: int = 4  # payload alignment: 4 for AEAD, 16 for AES-CBC

    @property
    def aead(self) -> bool:
        return self.integ == IntegId.NONE

    @property
    def iv_len(self) -> int:
        return 8 if self.aead else 16

    def keys(self, seed: int = 0) -> tuple[bytes, bytes]:
        rnd = SeededRandom(f"keys-{self.name}-{seed}".encode())
        return rnd.random_bytes(self.encr_key_len), rnd.random_bytes(self.integ_key_len)

    @property
    def key_bits(self) -> int:
        return (self.encr_key_len - (4 if self.aead else 0)) * 8


SUITES = (
    Suite("aes128gcm16", EncrId.ENCR_AES_GCM_16, 20),
    Suite("aes192gcm16", EncrId.ENCR_AES_GCM_16, 28),
    Suite("aes256gcm16", EncrId.ENCR_AES_GCM_16, 36),
    Suite("chacha20poly1305", EncrId.ENCR_CHACHA20_POLY1305, 36),
    Suite("aes128cbc-sha1", EncrId.ENCR_AES_CBC, 16, IntegId.AUTH_HMAC_SHA1_96, 20, 12, 16),
    Suite("aes256cbc-sha256", EncrId.ENCR_AES_CBC, 32, IntegId.AUTH_HMAC_SHA2_256_128, 32, 16, 16),
    Suite("aes256cbc-sha384", EncrId.ENCR_AES_CBC, 32, IntegId.AUTH_HMAC_SHA2_384_192, 48, 24, 16),
    Suite("aes192cbc-sha512", EncrId.ENCR_AES_CBC, 24, IntegId.AUTH_HMAC_SHA2_512_256, 64, 32, 16),
)
SUITE_IDS = [s.name for s in SUITES]

_HASHES = {
    IntegId.AUTH_HMAC_SHA1_96: hashes.SHA1,
    IntegId.AUTH_HMAC_SHA2_256_128: hashes.SHA256,
    IntegId.AUTH_HMAC_SHA2_384_192: hashes.SHA384,
    IntegId.AUTH_HMAC_SHA2_512_256: hashes.SHA512,
}


class CountingRandom:
    """A seeded RandomSource that counts its calls."""

    def __init__(self, seed: int = 1) -> None:
        self._inner = SeededRandom(seed)
        self.calls: list[int] = []

    def random_bytes(self, n: int) -> bytes:
        self.calls.append(n)
        return self._inner.random_bytes(n)


def sa_pair(
    suite: Suite,
    *,
    spi: int = 0x1000_0001,
    esn: bool = False,
    mode: EspMode = EspMode.TUNNEL,
    window: int = 1024,
    rng: RandomSource | None = None,
    seq_soft_limit: int | None = None,
    seed: int = 0,
) -> tuple[EspSa, EspSa]:
    """(outbound, inbound) SAs sharing keys."""
    ekey, ikey = suite.keys(seed)
    common = {
        "spi": spi,
        "encr": suite.encr,
        "encr_key": ekey,
        "integ": suite.integ,
        "integ_key": ikey,
        "esn": esn,
        "mode": mode,
        "replay_window": window,
        "seq_soft_limit": seq_soft_limit,
    }
    out = EspSa(EspSaConfig(direction=Direction.OUTBOUND, **common), rng=rng or SeededRandom(7))  # type: ignore[arg-type]
    inb = EspSa(EspSaConfig(direction=Direction.INBOUND, **common))  # type: ignore[arg-type]
    return out, inb


def child_sa_spec(
    suite: Suite,
    spi_in: int,
    spi_out: int,
    local: str,
    remote: str,
    me: Endpoint,
    peer: Endpoint,
    *,
    mode: EspMode = EspMode.TUNNEL,
    lifetimes: Lifetimes | None = None,
    active: bool = True,
    esn: bool = False,
) -> ChildSaSpec:
    """One side of a Child SA between ``local`` and ``remote`` (CIDR strings), in UDP.

    Each ESP SA's keys follow from its SPI, so the two sides built with swapped SPIs agree."""
    ek_in, ik_in = suite.keys(spi_in)
    ek_out, ik_out = suite.keys(spi_out)
    return ChildSaSpec(
        spi_in=spi_in.to_bytes(4, "big"),
        spi_out=spi_out.to_bytes(4, "big"),
        encr=suite.encr,
        encr_key_bits=suite.key_bits,
        integ=suite.integ,
        esn=esn,
        mode=mode,
        local_ts=(TrafficSelector.from_network(local),),
        remote_ts=(TrafficSelector.from_network(remote),),
        local=me,
        remote=peer,
        encap=True,
        replay_window=1024,
        encr_key_in=ek_in,
        integ_key_in=ik_in,
        encr_key_out=ek_out,
        integ_key_out=ik_out,
        lifetimes=lifetimes,
        outbound_active=active,
    )


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_packet(payload_len: int, *, proto: int = 17, seed: int = 0) -> bytes:
    """A valid IPv4 packet (10.0.0.1 -> 10.0.0.2) with a deterministic payload."""
    payload = SeededRandom(seed).random_bytes(payload_len)
    total = 20 + payload_len
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, seed & 0xFFFF, 0x4000, 64, proto, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))  # fmt: skip
    header = header[:10] + _checksum(header).to_bytes(2, "big") + header[12:]
    return header + payload


def ipv6_packet(payload_len: int, *, next_header: int = 17, seed: int = 0) -> bytes:
    """An IPv6 packet (fd00::1 -> fd00::2) with a deterministic payload."""
    payload = SeededRandom(seed).random_bytes(payload_len)
    src = bytes.fromhex("fd000000000000000000000000000001")
    dst = bytes.fromhex("fd000000000000000000000000000002")
    return struct.pack(">IHBB", 6 << 28, payload_len, next_header, 64) + src + dst + payload


def reference_seal(
    suite: Suite,
    encr_key: bytes,
    integ_key: bytes,
    *,
    spi: int,
    seq: int,
    plaintext: bytes,
    esn: bool = False,
    iv: bytes | None = None,
) -> bytes:
    """ESP packet for ``plaintext`` (payload ‖ padding ‖ pad length ‖ next header, as given)."""
    iv = iv if iv is not None else os.urandom(suite.iv_len)
    header = struct.pack(">II", spi, seq & 0xFFFF_FFFF)
    if suite.aead:
        key, salt = encr_key[:-4], encr_key[-4:]
        aead = AESGCM(key) if suite.encr == EncrId.ENCR_AES_GCM_16 else ChaCha20Poly1305(key)
        aad = struct.pack(">III", spi, seq >> 32, seq & 0xFFFF_FFFF) if esn else header
        return header + iv + aead.encrypt(salt + iv, plaintext, aad)
    encryptor = Cipher(algorithms.AES(encr_key), modes.CBC(iv)).encryptor()
    body = iv + encryptor.update(plaintext) + encryptor.finalize()
    mac = hmac.HMAC(integ_key, _HASHES[suite.integ]())
    mac.update(header + body + (struct.pack(">I", seq >> 32) if esn else b""))
    return header + body + mac.finalize()[: suite.icv_len]
