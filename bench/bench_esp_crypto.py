"""Micro-benchmark of the ESP packet core: encapsulate + decapsulate of 1400-byte packets.

Run: ``.venv/bin/python bench/bench_esp_crypto.py [--batches N] [--size BYTES]``.

For each suite, batches of 64 inner packets are encapsulated by an outbound ``EspSa`` and the
resulting ESP packets decapsulated by the matching inbound ``EspSa`` (each packet once, hot in
cache, as in the data-plane loop). It prints µs per packet for each direction and for the pair,
the pair's rate in Gbit/s of inner packets on one core, and, as the baseline measured in the
same run, the bare ``cryptography`` calls the suite is built on (seal + open with reused
objects, no ESP framing), with the ratio ESP / baseline. Figures are noisy (±10-30%): compare
ratios within one run. Not a test.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.crypto.rand import OS_RANDOM
from pyipsec.esp.sa import Direction, EspSa, EspSaConfig
from pyipsec.iana.transforms import EncrId, IntegId

BATCH = 64


@dataclass(frozen=True)
class Suite:
    name: str
    encr: EncrId
    encr_key_len: int
    integ: IntegId = IntegId.NONE
    integ_key_len: int = 0


SUITES = (
    Suite("aes128gcm16", EncrId.ENCR_AES_GCM_16, 16 + 4),
    Suite("aes256gcm16", EncrId.ENCR_AES_GCM_16, 32 + 4),
    Suite("chacha20poly1305", EncrId.ENCR_CHACHA20_POLY1305, 32 + 4),
    Suite("aes128-sha1", EncrId.ENCR_AES_CBC, 16, IntegId.AUTH_HMAC_SHA1_96, 20),
    Suite("aes256-sha256", EncrId.ENCR_AES_CBC, 32, IntegId.AUTH_HMAC_SHA2_256_128, 32),
    Suite("aes256-sha384", EncrId.ENCR_AES_CBC, 32, IntegId.AUTH_HMAC_SHA2_384_192, 48),
    Suite("aes256-sha512", EncrId.ENCR_AES_CBC, 32, IntegId.AUTH_HMAC_SHA2_512_256, 64),
)

_HASHES = {
    IntegId.AUTH_HMAC_SHA1_96: hashes.SHA1,
    IntegId.AUTH_HMAC_SHA2_256_128: hashes.SHA256,
    IntegId.AUTH_HMAC_SHA2_384_192: hashes.SHA384,
    IntegId.AUTH_HMAC_SHA2_512_256: hashes.SHA512,
}


def _raw_pair(suite: Suite, size: int) -> Callable[[], object]:
    """One seal + one open of ``size`` bytes with the bare primitives, objects reused."""
    data = os.urandom(size - size % 16)
    if suite.encr == EncrId.ENCR_AES_CBC:
        key = os.urandom(suite.encr_key_len)
        enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
        dec = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
        template = hmac.HMAC(os.urandom(suite.integ_key_len), _HASHES[suite.integ]())

        def cbc_hmac() -> object:
            mac = template.copy()
            ct = enc.update(data)
            mac.update(ct)
            mac.finalize()
            mac = template.copy()
            mac.update(ct)
            mac.finalize()
            return dec.update(ct)

        return cbc_hmac
    key = os.urandom(suite.encr_key_len - 4)
    aead = AESGCM(key) if suite.encr == EncrId.ENCR_AES_GCM_16 else ChaCha20Poly1305(key)
    nonce = os.urandom(12)
    aad = b"\x12\x34\x56\x78\x00\x00\x00\x01"

    def seal_open() -> object:
        return aead.decrypt(nonce, aead.encrypt(nonce, data, aad), aad)

    return seal_open


def _measure(suite: Suite, inner: bytes, batches: int) -> tuple[float, float]:
    """Seconds per packet for encapsulate and for decapsulate."""
    ekey = os.urandom(suite.encr_key_len)
    ikey = os.urandom(suite.integ_key_len)
    out_sa = EspSa(
        EspSaConfig(
            spi=0x1234_5678,
            direction=Direction.OUTBOUND,
            encr=suite.encr,
            encr_key=ekey,
            integ=suite.integ,
            integ_key=ikey,
        ),
        rng=OS_RANDOM,
    )
    in_sa = EspSa(
        EspSaConfig(
            spi=0x1234_5678,
            direction=Direction.INBOUND,
            encr=suite.encr,
            encr_key=ekey,
            integ=suite.integ,
            integ_key=ikey,
        )
    )
    encap = out_sa.encapsulate
    decap = in_sa.decapsulate
    clock = time.perf_counter
    t_enc = t_dec = 0.0
    for _ in range(batches):
        t0 = clock()
        batch = [encap(inner, 4) for _ in range(BATCH)]
        t1 = clock()
        for packet in batch:
            decap(packet)
        t2 = clock()
        t_enc += t1 - t0
        t_dec += t2 - t1
    assert in_sa.packets == batches * BATCH
    n = batches * BATCH
    return t_enc / n, t_dec / n


def _measure_raw(fn: Callable[[], object], batches: int) -> float:
    clock = time.perf_counter
    t0 = clock()
    for _ in range(batches * BATCH):
        fn()
    return (clock() - t0) / (batches * BATCH)


def run(batches: int, size: int, repeat: int) -> None:
    # an IPv4 header with the right total length, then random payload
    inner = bytes([0x45, 0]) + size.to_bytes(2, "big") + os.urandom(size - 4)
    print(f"ESP packet core: {size}-byte inner packets, {batches} x {BATCH} per suite, best of {repeat}")
    print(
        f"{'suite':<18} {'encap µs':>9} {'decap µs':>9} {'pair µs':>9} {'Gbit/s':>7}"
        f" {'raw pair µs':>12} {'ESP/raw':>8}"
    )
    for suite in SUITES:
        t_enc, t_dec = min((_measure(suite, inner, batches) for _ in range(repeat)), key=sum)
        raw = min(_measure_raw(_raw_pair(suite, size), batches) for _ in range(repeat))
        pair = t_enc + t_dec
        print(
            f"{suite.name:<18} {t_enc * 1e6:>9.2f} {t_dec * 1e6:>9.2f} {pair * 1e6:>9.2f}"
            f" {size * 8 / pair / 1e9:>7.2f} {raw * 1e6:>12.2f} {pair / raw:>8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="ESP encapsulate/decapsulate micro-benchmark")
    parser.add_argument("--batches", type=int, default=1500, help="batches of 64 packets per suite")
    parser.add_argument("--size", type=int, default=1400, help="inner packet size in bytes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per suite; the best is shown")
    args = parser.parse_args()
    run(args.batches, args.size, args.repeat)


if __name__ == "__main__":
    main()
