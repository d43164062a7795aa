"""The seed corpus of the fuzz targets: ``python -m tests.fuzz.seeds [TARGET ...]`` rewrites
``tests/corpus/<target>/`` (of every target by default).

Seeds are real inputs in each target's input format, so the fuzzer starts from deep states:
the IKE messages, SK plaintexts and ESP packets of the five strongSwan captures
(``tests/captures``, copied from ``shared/vectors``), the example configurations, the control
commands, and the packets of honest EAP-MSCHAPv2 and EAP-TLS conversations. The crash
directories (``<target>-crash/``) are never touched.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterator
from hashlib import sha1
from pathlib import Path

from pyipsec.ike.eap.base import EapOutcome
from tests.fuzz.targets import CORPUS, TARGETS
from tests.fuzz.targets._eap import Method
from tests.fuzz.targets._input import frame
from tests.fuzz.targets.eap_mschapv2 import METHOD as MSCHAPV2
from tests.fuzz.targets.eap_tls import METHOD as EAP_TLS
from tests.fuzz.targets.esp_inbound import valid_plaintext
from tests.fuzz.targets.ike_engine import honest_requests

ROOT = Path(__file__).resolve().parents[2]
Seed = tuple[str, str, bytes]  # (target, name, input)


def _captures() -> Iterator[tuple[str, dict[str, object]]]:
    for path in sorted((ROOT / "tests" / "captures").glob("*.json")):
        yield path.stem.removeprefix("strongswan-"), json.loads(path.read_text())


def _ike(name: str, capture: dict) -> Iterator[Seed]:  # type: ignore[type-arg]
    for m in capture["ike_messages"]:
        udp = bytes.fromhex(m["udp_payload_hex"])
        ike = udp[4:] if m["non_esp_marker"] else udp
        tag = f"{name}-{m['exchange']}-{m['index']}"
        yield "ike_decode", tag, ike
        if m["exchange"] == "IKE_SA_INIT":
            yield "ike_engine", f"{tag}-init", bytes([3 if m["is_response"] else 0, ike[16]]) + ike[28:]
        yield "udp4500", tag, struct.pack(">H", 0) + (udp if m["non_esp_marker"] else bytes(4) + udp)
        sk = m.get("sk")
        if isinstance(sk, dict) and sk.get("decrypted_payloads_hex"):
            plain = bytes.fromhex(sk["decrypted_payloads_hex"])
            first = sk["inner_payloads"][0]["type"] if sk["inner_payloads"] else 0
            for suite in range(3):
                yield (
                    "ike_sk",
                    f"{tag}-suite{suite}",
                    bytes([suite, m["exchange_type"], first]) + plain + b"\0",
                )
            yield "ike_fragments", f"{tag}-valid", bytes([1, first, 3]) + bytes([2, 0, 1, 1, 0, 0]) + plain
            records = b"".join(
                bytes([1, n, 2, first if n == 1 else 0])
                + frame(plain[(n - 1) * len(plain) // 2 :][: len(plain) // 2 + 1])
                for n in (2, 1)
            )
            yield "ike_fragments", f"{tag}-records", b"\0" + records


def _esp(name: str, capture: dict) -> Iterator[Seed]:  # type: ignore[type-arg]
    packets = [bytes.fromhex(p["udp_payload_hex"]) for p in capture["esp_packets"]]
    for n, p in enumerate(packets):
        yield "udp4500", f"{name}-esp-{n}", struct.pack(">H", 0) + p
        inner = bytes.fromhex(capture["esp_packets"][n]["inner_packet_hex"])
        yield (
            "esp_inbound",
            f"{name}-inner-{n}",
            bytes([1, 0]) + struct.pack(">I", n + 1) + frame(inner + b"\0\x04"),
        )
    yield "esp_inbound", f"{name}-raw", bytes([0, 0]) + frame(*packets)


def _eap(target: str, method: Method) -> Iterator[Seed]:
    p, s = method.peer(), method.server()
    requests, responses = [s.start()], []
    while p.outcome is EapOutcome.CONTINUE:
        answer = p.process(requests[-1])
        if answer is None:
            break
        responses.append(answer)
        requests.append(s.process(answer))
        if s.outcome is not EapOutcome.CONTINUE:
            p.process(requests[-1])
            break
    yield target, "honest-peer", b"\0" + frame(*requests)
    yield target, "honest-server", b"\1" + frame(*responses)
    for step in range(len(requests)):
        yield target, f"spoil-request-{step}", bytes([2, step, 1, 1, 0, 4, 0xFF])
        yield target, f"spoil-response-{step}", bytes([2, step, 0, 0]) + requests[step][:4]


def _esp_modes() -> Iterator[Seed]:
    for suite in range(3):
        yield (
            "esp_inbound",
            f"replay-{suite}",
            bytes([2, suite])
            + b"".join(struct.pack(">I", n) for n in (1, 3, 2, 3, 2000, 900, 977, 976, 0xFFFFFFFF, 5)),
        )
        plain = valid_plaintext(4 if suite < 2 else 16)
        yield "esp_inbound", f"valid-{suite}", bytes([1, suite]) + struct.pack(">I", 7) + frame(plain)
    yield "udp4500", "keepalive", b"\0\0\xff"
    yield "udp4500", "gro", struct.pack(">H", 12) + bytes(4) + b"IKEmessage" + b"\xff" + bytes(13)


def _config() -> Iterator[Seed]:
    for path in sorted((ROOT / "examples").glob("*.toml")):
        yield "config", path.stem, path.read_bytes()


def _control() -> Iterator[Seed]:
    requests = [
        {"id": 1, "cmd": "status", "args": {}},
        {"id": 2, "cmd": "up", "args": {"name": "office", "timeout": 5}},
        {"id": 3, "cmd": "down", "args": {"sa_id": 4}},
        {"id": 4, "cmd": "down", "args": {"name": "office"}},
        {"id": 5, "cmd": "rekey", "args": {"name": "office", "ike": True}},
        {"id": "x", "cmd": "connections"},
        {"id": None, "cmd": "stats", "args": {}},
    ]
    for r in requests:
        yield "control", str(r["cmd"]), json.dumps(r).encode() + b"\n"


def _engine() -> Iterator[Seed]:
    for name, data in honest_requests():
        yield "ike_engine", name, data


def build() -> Iterator[Seed]:
    for name, capture in _captures():
        yield from _ike(name, capture)
        yield from _esp(name, capture)
    yield from _esp_modes()
    yield from _engine()
    yield from _eap("eap_mschapv2", MSCHAPV2)
    yield from _eap("eap_tls", EAP_TLS)
    yield from _config()
    yield from _control()


def main(names: list[str]) -> None:
    """Rewrite the seeds of the targets ``names`` (all when empty)."""
    chosen = names or list(TARGETS)
    for name in chosen:
        TARGETS[name].seeds.mkdir(parents=True, exist_ok=True)
        for f in TARGETS[name].seeds.iterdir():
            f.unlink()
    count = 0
    for target, name, data in build():
        assert target in TARGETS, target
        if target in chosen:
            (CORPUS / target / f"{name}-{sha1(data).hexdigest()[:8]}").write_bytes(data)
            count += 1
    print(f"wrote {count} seeds under {CORPUS.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
