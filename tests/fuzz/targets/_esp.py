"""A receiving data plane with one fixed Child SA, for the ESP and port-4500 targets.

Two receivers get the same packets in the same order: the reference per-packet path
(``EspProcessor.inbound``) and the batched data plane's (``dataplane.fastpath.Decapsulator``),
each with its own processor, so their replay windows move alike and their results can be
compared. Packets for the SA are built with ``tests.unit.esp._support.reference_seal``, a
textbook ESP sealer, so fuzzer-chosen plaintext (trailer included) reaches past the ICV.
"""

from __future__ import annotations

from functools import cache
from ipaddress import ip_address

from pyipsec.childsa import ChildSaSpec
from pyipsec.crypto.rand import SeededRandom
from pyipsec.dataplane.fastpath import Decapsulator
from pyipsec.esp.processor import EspProcessor, child_counters
from pyipsec.esp.sad import Child
from pyipsec.net.addr import Endpoint
from tests.unit.esp._support import SUITES, Suite, child_sa_spec, reference_seal

__all__ = ["SPI", "Receivers", "seal", "suite_of"]

SPI = 0x2000
_A, _B = Endpoint(ip_address("192.0.2.1"), 4500), Endpoint(ip_address("192.0.2.2"), 4500)
_SUITES = (SUITES[0], SUITES[3], SUITES[4])  # AES-GCM, ChaCha20-Poly1305, AES-CBC + HMAC-SHA1
_INBOUND_DROPS = ("malformed", "spi_mismatches", "replay_drops", "integrity_failures", "pad_errors")


def suite_of(n: int) -> Suite:
    return _SUITES[n % len(_SUITES)]


def seal(suite: Suite, seq: int, plaintext: bytes) -> bytes:
    """An ESP packet of the SA carrying ``plaintext`` (trailer included) as given; a CBC
    plaintext is zero-extended to whole blocks (the cipher cannot encrypt less)."""
    if not suite.aead and len(plaintext) % 16:
        plaintext += bytes(16 - len(plaintext) % 16)
    ekey, ikey = suite.keys(SPI)
    return reference_seal(suite, ekey, ikey, spi=SPI, seq=seq, plaintext=plaintext, iv=bytes(suite.iv_len))


@cache
def _spec(suite: Suite) -> ChildSaSpec:
    return child_sa_spec(suite, SPI, 0x1000, "10.2.0.0/16", "10.1.0.0/16", _B, _A)


class _Side:
    def __init__(self, suite: Suite) -> None:
        self.proc = EspProcessor(rng=SeededRandom(1))
        self.child: Child = self.proc.install(_spec(suite))

    def counted_drops(self) -> int:
        """Every drop counted before or at decryption (global and the SA's)."""
        g = self.proc.counters
        inbound = self.child.inbound
        return g.malformed + g.unknown_spi + g.expired + sum(getattr(inbound, n) for n in _INBOUND_DROPS)

    def check_accounting(self, fed: int, delivered: int) -> None:
        """Each packet is either decrypted (``packets_in``) or a counted drop; what is decrypted
        is delivered unless counted as a policy drop (or a silent dummy packet, RFC 4303 §2.6)."""
        counters = child_counters(self.child)
        assert self.counted_drops() + counters["packets_in"] == fed, "a packet vanished without a count"
        assert delivered <= counters["packets_in"] - counters["policy_drops"]


class Receivers:
    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self.ref, self.fast = _Side(suite), _Side(suite)
        self.delivered: list[bytes] = []
        self.others: list[bytes] = []
        self.fed = 0
        self.decap = Decapsulator(
            self.fast.proc, self._write, vnet_hdr=False, coalesce=False, on_other=self._other
        )

    def _write(self, parts: object) -> None:
        assert isinstance(parts, tuple)
        self.delivered.append(b"".join(bytes(p) for p in parts))

    def _other(self, segment: memoryview) -> None:
        self.others.append(bytes(segment))

    def feed(self, packet: bytes) -> bytes | None:
        """One ESP packet to both receivers; the inner packet delivered (the same by both), or None."""
        self.fed += 1
        ref = self.ref.proc.inbound(packet)
        before = len(self.delivered)
        self.decap.datagram(memoryview(packet))
        self.decap.flush()
        fast = self.delivered[before:]
        assert len(fast) <= 1
        assert (ref[1] if ref else None) == (fast[0] if fast else None), (
            f"reference and fast path disagree: {ref and ref[1].hex()} vs {fast and fast[0].hex()}"
        )
        self.ref.check_accounting(self.fed, len(self.delivered))
        return fast[0] if fast else None
