"""Known answers: every ESP packet strongSwan 5.9.8 sent in tests/captures/*.json.

Each packet decapsulates to exactly ``inner_packet_hex`` with next header 4, and sealing that
inner packet again with the captured IV and sequence number gives the captured packet back byte
for byte (strongSwan pads with the RFC 4303 §2.4 default 1, 2, 3, ..., as we do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyipsec.crypto.rand import SeededRandom
from pyipsec.esp.packet import ReplayedPacket
from pyipsec.esp.sa import Direction, EspSa, EspSaConfig
from pyipsec.iana.transforms import EncrId, IntegId

CAPTURES = Path(__file__).resolve().parents[2] / "captures"

# strongSwan proposal string -> (ENCR, INTEG)
PROPOSALS = {
    "AES_GCM_16_256/NO_EXT_SEQ": (EncrId.ENCR_AES_GCM_16, IntegId.NONE),
    "CHACHA20_POLY1305/NO_EXT_SEQ": (EncrId.ENCR_CHACHA20_POLY1305, IntegId.NONE),
    "AES_CBC_256/HMAC_SHA1_96/NO_EXT_SEQ": (EncrId.ENCR_AES_CBC, IntegId.AUTH_HMAC_SHA1_96),
    "AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ": (EncrId.ENCR_AES_CBC, IntegId.AUTH_HMAC_SHA2_256_128),
}


def _load() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = []
    for path in sorted(CAPTURES.glob("*.json")):
        capture = json.loads(path.read_text())
        for packet in capture["esp_packets"]:
            cases.append((f"{path.stem}:{packet['direction']}:{packet['seq']}", capture["child_sa"], packet))
    return cases


CASES = _load()


def _config(child_sa: dict[str, Any], packet: dict[str, Any], direction: Direction) -> EspSaConfig:
    encr, integ = PROPOSALS[child_sa["proposal"]]
    # "initiator" keys protect i->r packets, whose SPI is the responder's inbound SPI
    side = "initiator" if packet["direction"] == "i->r" else "responder"
    expected_spi = child_sa["spi_responder_inbound" if side == "initiator" else "spi_initiator_inbound"]
    assert packet["spi"] == expected_spi
    return EspSaConfig(
        spi=int(packet["spi"], 16),
        direction=direction,
        encr=encr,
        encr_key=bytes.fromhex(child_sa[f"encryption_{side}_key"]),
        integ=integ,
        integ_key=bytes.fromhex(child_sa[f"integrity_{side}_key"] or ""),
    )


def test_all_five_captures_and_their_suites_are_covered() -> None:
    files = {name.split(":")[0] for name, _, _ in CASES}
    assert len(files) == 5
    assert {child["proposal"] for _, child, _ in CASES} == set(PROPOSALS)
    assert len(CASES) == 30


@pytest.mark.parametrize(("name", "child_sa", "packet"), CASES, ids=[c[0] for c in CASES])
def test_decapsulates_to_the_captured_inner_packet(
    name: str, child_sa: dict[str, Any], packet: dict[str, Any]
) -> None:
    sa = EspSa(_config(child_sa, packet, Direction.INBOUND))
    wire = bytes.fromhex(packet["udp_payload_hex"])
    inner, next_header = sa.decapsulate(wire)
    assert inner.hex() == packet["inner_packet_hex"]
    assert next_header == packet["next_header"] == 4
    assert sa.replay is not None and sa.replay.top == packet["seq"]
    assert (sa.packets, sa.bytes) == (1, len(inner))
    # the same bytes as a memoryview
    again = EspSa(_config(child_sa, packet, Direction.INBOUND))
    assert again.decapsulate(memoryview(wire)) == (inner, 4)


@pytest.mark.parametrize(("name", "child_sa", "packet"), CASES, ids=[c[0] for c in CASES])
def test_reencapsulation_reproduces_the_captured_packet(
    name: str, child_sa: dict[str, Any], packet: dict[str, Any]
) -> None:
    sa = EspSa(_config(child_sa, packet, Direction.OUTBOUND), rng=SeededRandom(0))
    inner = bytes.fromhex(packet["inner_packet_hex"])
    wire = sa.encapsulate_at(inner, 4, seq=packet["seq"], iv=bytes.fromhex(packet["iv_hex"]))
    assert wire.hex() == packet["udp_payload_hex"]
    assert sa.encapsulated_len(len(inner)) == len(wire)


@pytest.mark.parametrize("file", sorted(p.name for p in CAPTURES.glob("*.json")))
def test_one_inbound_sa_takes_the_whole_captured_flow(file: str) -> None:
    capture = json.loads((CAPTURES / file).read_text())
    sas: dict[str, EspSa] = {}
    for packet in capture["esp_packets"]:
        sa = sas.setdefault(packet["spi"], EspSa(_config(capture["child_sa"], packet, Direction.INBOUND)))
        assert sa.decapsulate(bytes.fromhex(packet["udp_payload_hex"]))[0].hex() == packet["inner_packet_hex"]
    assert sorted(sa.packets for sa in sas.values()) == [3, 3]
    # a replay of any of them is now dropped and counted
    first = capture["esp_packets"][0]
    with pytest.raises(ReplayedPacket):
        sas[first["spi"]].decapsulate(bytes.fromhex(first["udp_payload_hex"]))
    assert sas[first["spi"]].replay_drops == 1
