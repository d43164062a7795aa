"""``pyipsec reload``: the daemon's answer as text or JSON, exit status 1 when it refused the
file (a stand-in control client gives the daemon's answer; the real daemon's is in
tests/unit/daemon/test_reload.py and tests/integration/test_reload.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from pyipsec.cli import reload as cli_reload
from pyipsec.cli.main import main
from pyipsec.errors import PyIpsecError

DONE = {
    "ok": True,
    "file": "/etc/pyipsec/pyipsec.toml",
    "added": ["lab"],
    "removed": ["old"],
    "changed": [],
    "unchanged": ["office"],
    "deleted_sas": [7],
    "started": [],
    "settings_applied": ["cookie_threshold"],
    "secrets_changed": True,
    "pools_changed": ["rw"],
    "warnings": ["settings.port changed: needs a restart (keeping 500)"],
}
REFUSED = {
    "ok": False,
    "file": "/etc/pyipsec/pyipsec.toml",
    "errors": [
        {
            "file": "/etc/pyipsec/pyipsec.toml",
            "key": "connections.office.local.certs[0]",
            "message": "no file",
        },
        {"file": "/etc/pyipsec/pyipsec.toml", "key": "", "message": "Expected '='", "line": 3, "column": 7},
    ],
}


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[str] = []

    def call(self, cmd: str, **args: object) -> Any:
        self.calls.append(cmd)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _with(monkeypatch: pytest.MonkeyPatch, answer: Any) -> FakeClient:
    client = FakeClient(answer)
    monkeypatch.setattr(cli_reload, "_client", lambda _path: client)
    return client


def test_a_reload_prints_its_summary_and_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _with(monkeypatch, DONE)
    result = CliRunner().invoke(main, ["reload"])
    assert result.exit_code == 0 and client.calls == ["reload"]
    assert result.stdout.splitlines() == [
        "reloaded /etc/pyipsec/pyipsec.toml",
        "  added      lab",
        "  removed    old",
        "  changed    none",
        "  deleted    IKE SA #7",
        "  settings   cookie_threshold",
        "  pools      rw",
        "  secrets    changed (new authentications use them)",
    ]
    assert result.stderr == "warning: settings.port changed: needs a restart (keeping 500)\n"
    as_json = CliRunner().invoke(main, ["reload", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == DONE


def test_a_refused_reload_prints_every_error_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, REFUSED)
    result = CliRunner().invoke(main, ["reload"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "reload refused; the daemon keeps its running configuration (/etc/pyipsec/pyipsec.toml)",
        "error: /etc/pyipsec/pyipsec.toml:connections.office.local.certs[0]: no file",
        "error: /etc/pyipsec/pyipsec.toml:3: Expected '='",
    ]
    as_json = CliRunner().invoke(main, ["reload", "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout) == REFUSED


def test_no_daemon_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _with(monkeypatch, PyIpsecError("no daemon at /run/pyipsec/control.sock"))
    result = CliRunner().invoke(main, ["reload"])
    assert result.exit_code == 1 and result.stderr == "pyipsec: no daemon at /run/pyipsec/control.sock\n"
