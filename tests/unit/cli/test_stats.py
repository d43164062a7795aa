"""``pyipsec stats`` and the data-plane line of ``pyipsec status``: the daemon's totals as text
and JSON (a stand-in control client gives the daemon's answer)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from pyipsec.cli import sas
from pyipsec.cli.main import main
from pyipsec.cli.sas import format_stats, format_status

TOTALS = {
    "unknown_spi": 3,
    "no_policy": 0,
    "malformed": 1,
    "replay_drops": 2,
    "integrity_failures": 5,
    "esp_malformed": 0,
    "packets_in": 120,
    "packets_out": 80,
    "ike_in": 7,
}
STATS = {
    "dataplane": TOTALS,
    "malformed": 0,
    "unknown_spi": 4,
    "cookies_sent": 0,
    "half_open_expired": 1,
    "udp_received": 10,
    "udp_sent": 9,
    "radius": {},
}


class FakeClient:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers

    def call(self, cmd: str, **args: object) -> Any:
        return self.answers[cmd]


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"stats": STATS, "status": {"ike_sas": [], "reconnecting": {}, "dataplane": TOTALS}}
    monkeypatch.setattr(sas, "_client", lambda *_a, **_k: FakeClient(answers))


def test_status_ends_with_the_data_planes_drops_by_reason() -> None:
    text = format_status({"ike_sas": [], "reconnecting": {}, "dataplane": TOTALS})
    assert text == (
        "no IKE SAs\n"
        "data plane: 120 packets in, 80 out; "
        "drops unknown_spi 3, malformed 1, replay_drops 2, integrity_failures 5\n"
    )
    clean = format_status({"ike_sas": [], "dataplane": {"packets_in": 4, "replay_drops": 0}})
    assert clean.endswith("data plane: 4 packets in, 0 out; no drops\n")
    assert "data plane" not in format_status({"ike_sas": [], "dataplane": {}})  # none running


def test_stats_text_and_json(daemon: None) -> None:
    result = CliRunner().invoke(main, ["stats"])
    assert result.exit_code == 0, result.output
    assert result.output == format_stats(STATS)
    lines = result.output.splitlines()
    assert "  unknown_spi 4" in lines[: lines.index("udp:")]  # the IKE engine's own count
    section = lines[
        lines.index("data plane (every SA since start, removed ones included, and drops of no SA):") :
    ]
    assert (
        "  replay_drops 2" in section and "  integrity_failures 5" in section and "  unknown_spi 3" in section
    )
    as_json = CliRunner().invoke(main, ["stats", "--json"])
    assert json.loads(as_json.output) == STATS
    status = CliRunner().invoke(main, ["status", "--json"])
    assert json.loads(status.output)["dataplane"] == TOTALS


def test_stats_without_a_daemon_is_one_line(tmp_path: Any) -> None:
    result = CliRunner().invoke(main, ["stats", "--socket", str(tmp_path / "none.sock")])
    assert result.exit_code == 1
    assert result.output.startswith("pyipsec: ") and len(result.output.splitlines()) == 1
