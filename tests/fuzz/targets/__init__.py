"""The atheris fuzz targets (RELIABILITY.md §6, Z1-Z10), one module per target.

Theory of operation: each target module exposes ``check(data: bytes) -> None``, a plain Python
function that feeds ``data`` to one input-facing part of pyipsec and asserts its contract: only
the documented error classes escape (``DecodeError`` and friends from ``pyipsec.errors``, or a
counted drop), and accepted input round-trips where that applies. ``check`` raising anything
else (an ``AssertionError`` included) is a finding.

Nothing here imports atheris: ``scripts/fuzz.py`` runs ``check`` under libFuzzer, and
``tests/fuzz/test_corpus_replay.py`` replays the seed corpus (``tests/corpus/<target>/``) and
every crash ever found (``tests/corpus/<target>-crash/``) through the same ``check`` with plain
calls, so each crash stays a regression test.

This registry imports no target (and so no pyipsec module): the runner must enter atheris'
import instrumentation *before* pyipsec is imported. ``instrument`` names the top-level
packages whose code is instrumented for coverage feedback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPUS", "TARGETS", "Target"]

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
"""``tests/corpus``: ``<target>/`` holds the seeds, ``<target>-crash/`` the crash inputs."""


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    summary: str
    instrument: tuple[str, ...] = ("pyipsec",)

    @property
    def seeds(self) -> Path:
        return CORPUS / self.name

    @property
    def crashes(self) -> Path:
        return CORPUS / f"{self.name}-crash"


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("ike_decode", "tests.fuzz.targets.ike_decode", "Z1: IKE message decode, decode→encode→decode"),
        Target("ike_sk", "tests.fuzz.targets.ike_sk", "Z2: SK payload decrypt-and-decode with known keys"),
        Target("ike_engine", "tests.fuzz.targets.ike_engine", "Z1/Z2: fuzzed requests → IKE engine → tasks"),
        Target("ike_fragments", "tests.fuzz.targets.ike_fragments", "Z4: SKF fragments → reassembler"),
        Target("eap_mschapv2", "tests.fuzz.targets.eap_mschapv2", "Z6: EAP-MSCHAPv2 peer and server"),
        Target("eap_tls", "tests.fuzz.targets.eap_tls", "Z6: EAP-TLS peer and server"),
        Target(
            "config", "tests.fuzz.targets.config", "Z10: TOML text → config loader", ("pyipsec", "tomllib")
        ),
        Target("control", "tests.fuzz.targets.control", "Z10: control socket request parser and validator"),
        Target("esp_inbound", "tests.fuzz.targets.esp_inbound", "Z8: ESP inbound path and replay window"),
        Target(
            "udp4500", "tests.fuzz.targets.udp4500", "Z7: UDP 4500 demultiplexer (marker, keepalive, ESP)"
        ),
    )
}
