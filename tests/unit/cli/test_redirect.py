"""``pyipsec redirect`` and ``drain``: what they ask the daemon, what they print, their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from pyipsec.cli import redirect as cli_redirect
from pyipsec.cli.main import main


class FakeClient:
    calls: ClassVar[list[tuple[str, dict[str, object]]]] = []

    def __init__(self, *_a: object, **_k: object) -> None:
        pass

    def call(self, cmd: str, *, on_progress: object = None, **args: object) -> Any:
        FakeClient.calls.append((cmd, args))
        if cmd == "drain" and args.get("stop"):
            return {"draining": None, "redirected": [], "skipped": []}
        answer: dict[str, Any] = {
            "redirected": [3, 4],
            "skipped": [{"sa_id": 5, "reason": "IKE SA #5: the peer did not announce REDIRECT_SUPPORTED"}],
            "to": args["to"],
        }
        if cmd == "drain":
            answer["draining"] = args["to"]
        return answer


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    FakeClient.calls = []
    monkeypatch.setattr(cli_redirect, "ControlClient", FakeClient)
    return FakeClient


def test_redirect_a_connection_and_one_sa(client: type[FakeClient]) -> None:
    result = CliRunner().invoke(main, ["redirect", "office", "--to", "192.0.2.3"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "redirected 2 IKE SA(s) to 192.0.2.3",
        "skipped IKE SA #5: IKE SA #5: the peer did not announce REDIRECT_SUPPORTED",
    ]
    result = CliRunner().invoke(main, ["redirect", "--sa", "7", "--to", "vpn2.example.org", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["to"] == "vpn2.example.org"
    assert client.calls == [
        ("redirect", {"name": "office", "to": "192.0.2.3"}),
        ("redirect", {"sa_id": 7, "to": "vpn2.example.org"}),
    ]


def test_drain_and_its_end(client: type[FakeClient]) -> None:
    result = CliRunner().invoke(main, ["drain", "--to", "192.0.2.3"])
    assert result.exit_code == 0
    assert result.output.splitlines()[:2] == [
        "redirected 2 IKE SA(s) to 192.0.2.3",
        "draining: new clients go to 192.0.2.3",
    ]
    result = CliRunner().invoke(main, ["drain", "--stop"])
    assert result.output == "drain ended: serving new clients again\n"
    assert client.calls == [("drain", {"to": "192.0.2.3"}), ("drain", {"stop": True})]


@pytest.mark.parametrize(
    "argv",
    [
        ["redirect", "--to", "192.0.2.3"],  # neither NAME nor --sa
        ["redirect", "office", "--sa", "3", "--to", "192.0.2.3"],  # both
        ["redirect", "office"],  # no --to
        ["drain"],
        ["drain", "--to", "192.0.2.3", "--stop"],
    ],
)
def test_usage_mistakes_exit_2_without_calling_the_daemon(client: type[FakeClient], argv: list[str]) -> None:
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2
    assert client.calls == []


def test_without_a_daemon_it_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["drain", "--to", "192.0.2.3", "--socket", str(tmp_path / "none.sock")])
    assert result.exit_code == 1
    assert result.output.startswith("pyipsec: ") and len(result.output.splitlines()) == 1
