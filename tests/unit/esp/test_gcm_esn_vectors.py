"""AES-GCM ESP packets with 64-bit extended sequence numbers (draft-mcgrew-gcm-test-01 §4).

These pin the ESN AAD layout SPI ‖ Seq-hi ‖ Seq-lo (RFC 4106 §5): the vectors are first checked
against ``AESGCM`` directly (so a mistyped vector fails as such), then decapsulated by an
inbound SA whose window infers the high half from its position (RFC 4303 Appendix A2.2), and
re-sealed with the vector's IV and sequence number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyipsec.childsa import EspMode
from pyipsec.esp.sa import Direction, EspSa, EspSaConfig
from pyipsec.iana.transforms import EncrId

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "vectors" / "esp_gcm_esn.json").read_text())
CASES: list[dict[str, Any]] = VECTORS["cases"]
IDS = [f"{c['key_bits']}-{c['spi']}-{c['seq']}" for c in CASES]


def _config(case: dict[str, Any], direction: Direction) -> EspSaConfig:
    return EspSaConfig(
        spi=int(case["spi"], 16),
        direction=direction,
        encr=EncrId.ENCR_AES_GCM_16,
        encr_key=bytes.fromhex(case["key"] + case["salt"]),
        esn=True,
        mode=EspMode.TRANSPORT,
    )


def _packet(case: dict[str, Any]) -> bytes:
    seq = int(case["seq"], 16)
    return (
        bytes.fromhex(case["spi"])
        + (seq & 0xFFFF_FFFF).to_bytes(4, "big")
        + bytes.fromhex(case["iv"] + case["ciphertext_icv"])
    )


def test_vectors_are_there() -> None:
    assert len(CASES) == 9
    assert {c["key_bits"] for c in CASES} == {128, 256}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vector_is_self_consistent(case: dict[str, Any]) -> None:
    aad = bytes.fromhex(case["spi"] + case["seq"])  # SPI ‖ seq-hi ‖ seq-lo
    sealed = AESGCM(bytes.fromhex(case["key"])).encrypt(
        bytes.fromhex(case["salt"] + case["iv"]), bytes.fromhex(case["plaintext"]), aad
    )
    assert sealed.hex() == case["ciphertext_icv"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_decapsulate_infers_the_high_half_and_decrypts(case: dict[str, Any]) -> None:
    seq = int(case["seq"], 16)
    sa = EspSa(_config(case, Direction.INBOUND))
    assert sa.replay is not None
    if seq > 1:
        sa.replay.commit(seq - 1)  # the window sits just before the packet
    plaintext = bytes.fromhex(case["plaintext"])
    pad_len, next_header = plaintext[-2], plaintext[-1]
    payload, nh = sa.decapsulate(_packet(case))
    assert (payload, nh) == (plaintext[: len(plaintext) - 2 - pad_len], next_header)
    assert sa.replay.top == seq


MIDDLE = [c for c in CASES if 100 <= int(c["seq"], 16) < 2**64 - 100]


@pytest.mark.parametrize("case", MIDDLE, ids=[f"{c['spi']}-{c['seq']}" for c in MIDDLE])
def test_decapsulate_with_the_window_ahead_of_the_packet(case: dict[str, Any]) -> None:
    seq = int(case["seq"], 16)
    sa = EspSa(_config(case, Direction.INBOUND))
    assert sa.replay is not None
    sa.replay.commit(seq + 99)  # later packets arrived first: this one is late but in the window
    sa.decapsulate(_packet(case))
    assert sa.replay.seen(seq) and sa.replay.top == seq + 99


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reseal_reproduces_the_vector(case: dict[str, Any]) -> None:
    sa = EspSa(_config(case, Direction.OUTBOUND))
    plaintext = bytes.fromhex(case["plaintext"])
    payload = plaintext[: len(plaintext) - 2 - plaintext[-2]]
    wire = sa.encapsulate_at(payload, plaintext[-1], seq=int(case["seq"], 16), iv=bytes.fromhex(case["iv"]))
    assert wire == _packet(case)
