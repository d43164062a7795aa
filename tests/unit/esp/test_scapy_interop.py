"""Independent decoder: scapy's ESP implementation (``scapy.layers.ipsec``) against ours.

Our packets decrypt with scapy's SecurityAssociation, and scapy-encrypted packets decapsulate
with ours, for AES-GCM, ChaCha20-Poly1305 and AES-CBC with each HMAC, with and without ESN.
scapy is a test-only dependency (GPL): it is never imported from src/.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import CRYPT_ALGOS, ESP, IPSecIntegrityError, SecurityAssociation
from scapy.packet import Raw

from pyipsec.iana.transforms import EncrId, IntegId

from ._support import SUITE_IDS, SUITES, Suite, sa_pair

SPI = 0x2000_0002
OUTER = {"src": "192.0.2.1", "dst": "192.0.2.2"}

_SCAPY_AUTH = {
    IntegId.AUTH_HMAC_SHA1_96: "HMAC-SHA1-96",
    IntegId.AUTH_HMAC_SHA2_256_128: "SHA2-256-128",
    IntegId.AUTH_HMAC_SHA2_384_192: "SHA2-384-192",
    IntegId.AUTH_HMAC_SHA2_512_256: "SHA2-512-256",
}
_SCAPY_CRYPT = {
    EncrId.ENCR_AES_GCM_16: "AES-GCM",
    EncrId.ENCR_CHACHA20_POLY1305: "CHACHA20-POLY1305",
    EncrId.ENCR_AES_CBC: "AES-CBC",
}

# (low 32 bits of the first sequence number, ESN high half); hi > 0 only with ESN
SEQ_CASES = [(1, 0, False), (0xFFFF_FFF0, 0, False), (5, 1, True), (0xFFFF_FFFE, 7, True)]


def _scapy_sa(suite: Suite, *, esn: bool, esn_hi: int, seq_lo: int = 1) -> SecurityAssociation:
    ekey, ikey = suite.keys()
    return SecurityAssociation(
        ESP,
        spi=SPI,
        seq_num=seq_lo,
        crypt_algo=_SCAPY_CRYPT[suite.encr],
        crypt_key=ekey,
        auth_algo=None if suite.aead else _SCAPY_AUTH[suite.integ],
        auth_key=None if suite.aead else ikey,
        tunnel_header=IP(**OUTER),
        esn_en=esn,
        esn=esn_hi,
    )


def _inner(i: int) -> IP:
    return IP(src="10.1.0.1", dst="10.2.0.1", id=i) / UDP(sport=1000 + i, dport=53) / Raw(b"x" * (17 * i + 3))


def test_scapy_has_every_suite() -> None:
    # ChaCha20-Poly1305 is there in scapy >= 2.5, so no suite is left out
    assert {"AES-GCM", "CHACHA20-POLY1305", "AES-CBC"} <= set(CRYPT_ALGOS)


@pytest.mark.parametrize(("seq_lo", "esn_hi", "esn"), SEQ_CASES)
@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_scapy_decrypts_our_packets(suite: Suite, seq_lo: int, esn_hi: int, esn: bool) -> None:
    ours, _ = sa_pair(suite, spi=SPI, esn=esn)
    assert ours.seq is not None
    first = (esn_hi << 32) | seq_lo
    ours.seq.skip_to(first - 1)
    theirs = _scapy_sa(suite, esn=esn, esn_hi=esn_hi)
    for i in range(6):
        inner = bytes(_inner(i))
        wire = ours.encapsulate(inner, 4)
        assert int.from_bytes(wire[4:8], "big") == (first + i) & 0xFFFF_FFFF
        if esn and (first + i) >> 32 != theirs.esn:
            theirs = _scapy_sa(suite, esn=esn, esn_hi=(first + i) >> 32)
        outer = IP(bytes(IP(proto=50, **OUTER) / Raw(wire)))
        assert outer.haslayer(ESP)
        decrypted = theirs.decrypt(outer)
        assert bytes(decrypted) == inner


@pytest.mark.parametrize(("seq_lo", "esn_hi", "esn"), SEQ_CASES)
@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_we_decapsulate_scapy_packets(suite: Suite, seq_lo: int, esn_hi: int, esn: bool) -> None:
    _, ours = sa_pair(suite, spi=SPI, esn=esn)
    assert ours.replay is not None
    first = (esn_hi << 32) | seq_lo
    if first > 1:
        ours.replay.commit(first - 1)
    for i in range(6):
        seq = first + i
        # (scapy's encrypt(seq_num=0) would fall back to the SA's counter: pass it here)
        theirs = _scapy_sa(suite, esn=esn, esn_hi=seq >> 32, seq_lo=seq & 0xFFFF_FFFF)
        inner = bytes(_inner(i))
        encrypted = theirs.encrypt(IP(inner))
        assert encrypted[ESP].seq == seq & 0xFFFF_FFFF
        payload, next_header = ours.decapsulate(bytes(encrypted[ESP]))
        assert (payload, next_header) == (inner, 4)
    assert ours.packets == 6


@pytest.mark.parametrize("suite", SUITES, ids=SUITE_IDS)
def test_scapy_rejects_a_tampered_packet_of_ours(suite: Suite) -> None:
    ours, _ = sa_pair(suite, spi=SPI)
    wire = bytearray(ours.encapsulate(bytes(_inner(1)), 4))
    wire[-1] ^= 1
    with pytest.raises(IPSecIntegrityError):
        _scapy_sa(suite, esn=False, esn_hi=0).decrypt(IP(bytes(IP(proto=50, **OUTER) / Raw(bytes(wire)))))
