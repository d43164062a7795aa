"""What the engine logs during real handshakes, formatted as the daemon would (``pyipsec.logs``):
each JSON line parses and the lifecycle lines carry the SA's name, unique id, peer and event;
failures say what to check; no secret reaches a log line in either format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pyipsec.ike.credentials import MemoryCredentials, SharedSecret
from pyipsec.ike.events import IkeSaClosed, IkeSaEstablished
from pyipsec.logs import TEXT_FORMAT, JsonFormatter
from tests.scenario.test_handshake_psk import pair
from tests.scenario.test_remote_access import RoadWarrior
from tests.support.engines import Link

PSK = b"correct horse battery staple"  # EnginePair's default pre-shared key


def _lines(records: list[logging.LogRecord]) -> tuple[list[dict[str, object]], str]:
    """Every record as a parsed JSON object, and all of them as the text and JSON log."""
    js, text = JsonFormatter(), logging.Formatter(TEXT_FORMAT)
    json_lines = [js.format(r) for r in records]
    assert all("\n" not in line for line in json_lines)
    return [json.loads(line) for line in json_lines], "\n".join(
        json_lines + [text.format(r) for r in records]
    )


def _events(objs: list[dict[str, object]], event: str) -> list[dict[str, object]]:
    return [o for o in objs if o.get("event") == event]


def test_a_psk_sa_lifecycle_is_logged_with_its_fields_and_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = pair()
    with caplog.at_level(logging.DEBUG, logger="pyipsec"):
        sa_id = p.initiate()
        p.run()
        (child,) = p.i.engine.sas()[0].children.values()
        p.i.rekey_child(sa_id, child.child_id)
        p.run()
        p.i.rekey_ike(sa_id)
        p.run()
        (sa,) = p.i.engine.sas()
        p.i.terminate(sa.sa_id)
        p.run()
    objs, everything = _lines(caplog.records)
    ei, er = p.i.of(IkeSaEstablished)[0], p.r.of(IkeSaEstablished)[0]  # (then the rekeyed ones)
    established = _events(objs, "ike_established")
    assert {(o["sa"], o["sa_id"], o["peer"]) for o in established} == {
        ("office", ei.sa_id, "192.0.2.2:4500"),
        ("gw", er.sa_id, "192.0.2.1:4500"),
    }
    assert all(o["level"] == "info" and o["logger"] == "pyipsec.ike" for o in established)
    children = _events(objs, "child_established")
    assert len(children) == 4 and {o["child"] for o in children} == {"net"}  # set up, then rekeyed
    assert _events(objs, "child_rekey") and _events(objs, "ike_rekey") and _events(objs, "ike_rekeyed")
    closed = _events(objs, "ike_closed")
    assert {(o["sa"], o["cause"]) for o in closed} >= {
        ("office", "local"),
        ("gw", "peer"),
        ("office", "rekeyed"),
    }
    # every line about an SA says which one
    assert all(
        {"sa", "sa_id", "peer"} <= o.keys() for o in objs if o["logger"] == "pyipsec.ike" and "event" in o
    )
    for secret in (PSK.decode(), PSK.hex()):
        assert secret not in everything


@pytest.mark.parametrize(("password", "ok"), [("alice-secret-1", True), ("wrong-password", False)])
def test_eap_passwords_reach_no_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, password: str, ok: bool
) -> None:
    rw = RoadWarrior(tmp_path)
    p = rw.client("alice", password)
    with caplog.at_level(logging.DEBUG, logger="pyipsec"):
        p.initiate()
        p.run()
    assert bool(p.i.of(IkeSaEstablished)) is ok
    objs, everything = _lines(caplog.records)
    for secret in (password, "alice-secret-1", password.encode().hex()):
        assert secret not in everything
    if not ok:
        (failed,) = _events(objs, "eap_failed")
        assert failed["sa"] == "rw" and "alice" in str(failed["message"])
        assert {o["sa"] for o in _events(objs, "ike_closed")} == {"rw", "home"}


def _closed_lines(caplog: pytest.LogCaptureFixture, side: str) -> list[str]:
    objs, _ = _lines(caplog.records)
    return [str(o["message"]) for o in _events(objs, "ike_closed") if o["sa"] == side]


def test_failures_say_what_to_check(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pyipsec"):
        p = pair()
        p.r.engine.ctx.creds = MemoryCredentials([SharedSecret(b"another secret entirely")])
        p.initiate()
        p.run()
    (mine,) = _closed_lines(caplog, "office")
    assert "AUTHENTICATION_FAILED" in mine and "check local.id and the pre-shared key" in mine
    (theirs,) = _closed_lines(caplog, "gw")
    assert "same secret for moon.test" in theirs
    assert not p.i.of(IkeSaEstablished)
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="pyipsec"):
        p = pair(i_proposals="aes128-sha256-modp2048", r_proposals="aes256gcm16-prfsha384-ecp384")
        p.initiate()
        p.run()
    (mine,) = _closed_lines(caplog, "office")
    assert "NO_PROPOSAL_CHOSEN" in mine and "compare our proposals with the peer's" in mine
    assert all("aes128-sha256-modp2048" in line for line in _closed_lines(caplog, "gw"))
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="pyipsec"):
        p = pair(i_remote_ts="10.9.0.0/16")
        p.initiate()
        p.run()
    objs, _ = _lines(caplog.records)
    (child,) = _events(objs, "child_failed")
    assert child["sa"] == "office" and "compare local_ts/remote_ts" in str(child["message"])
    (refused,) = _events(objs, "child_refused")
    assert refused["sa"] == "gw" and "10.9.0.0/16" in str(refused["message"])
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="pyipsec"):
        p = pair(link=Link(loss=1.0))
        p.initiate()
        p.run(until=1000)
    (closed,) = p.i.of(IkeSaClosed)
    objs, _ = _lines(caplog.records)
    (timeout,) = _events(objs, "timeout")
    assert timeout["sa"] == "office"
    (mine,) = _closed_lines(caplog, "office")
    assert "peer not responding" in mine and "UDP 500 and 4500" in mine and closed.reason in mine
