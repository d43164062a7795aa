"""The control protocol of a running daemon against a model (issue 16, "hypothesis state
machines").

A client daemon and a gateway (``tests/support/daemons.World``: real runtimes over a memory
network under a virtual clock); the machine talks to the client's control socket over one
connection, as ``pyipsec`` does, with ``up``, ``down`` (by name or by SA id: terminate),
``rekey`` (Child SAs, IKE, reauthentication), ``status``, ``connections`` and ``stats``, each
with valid and invalid arguments (unknown names and ids, wrong types, unknown keys, bad
combinations), plus unknown commands and lines that are not requests at all.

The model is one bit: whether connection ``office`` is up. ``up office`` sets it (even with a
timeout too short to see the result: the SA comes up all the same), ``down office`` or
``down`` of its SA id clears it; everything else leaves it alone, and the model says which
requests must fail.

Invariants: every request gets exactly one reply, after its progress lines, carrying its
``id``: ``ok`` with a JSON ``result``, or an ``error`` with a type and a message — never a
dropped connection, never an ``InternalError``; a request the model calls invalid is an
error, a valid one is not; and after each step, once the virtual clock has moved on a minute,
both daemons hold as many established IKE SAs of ``office`` as the model says (one or none),
the same ones, and ``status`` reports them.

Budget: 80 examples of 20 steps (about 13 s); ``PYIPSEC_STATEFUL_EXAMPLES`` raises it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pyipsec.control.protocol import MAX_LINE, JsonValue, encode_line
from tests.support.daemons import GW_ADDR, I_ADDR, World, psk_configs

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
ALLOWED = {
    "up": {"name", "timeout"},
    "down": {"name", "sa_id"},
    "rekey": {"name", "ike", "reauth"},
    "status": set(),
    "connections": set(),
    "stats": set(),
}
OTHER_NAMES = st.sampled_from(["nope", "Office", "office ", "x" * 300])
BAD_TIMEOUTS = st.sampled_from([0, -1, "5", True, None, 1e9, [], {}])


class ControlMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pyipsec-ctl-"))
        self.world = World(self.dir)
        client_cfg, gw_cfg = psk_configs(self.dir)
        self.gw = self.world.node(gw_cfg, GW_ADDR)
        self.client = self.world.node(client_cfg, I_ADDR)
        control = self.client.runtime.control
        self.world.drive(control.start())
        self.reader, self.writer = self.world.drive(
            asyncio.open_unix_connection(str(control.path), limit=4 * MAX_LINE)
        )
        self.next_id = 0
        self.up = False  # the model: connection office is up

    def teardown(self) -> None:
        try:
            # the last request's reply was its only one: the next line answers a new request
            self.request("connections", {}, valid=True)
            self.writer.close()
            self.world.drive(self.client.runtime.control.close())
        finally:
            self.world.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- talking to the daemon ------------------------------------------------------------------

    def _exchange(self, line: bytes, req_id: JsonValue) -> dict[str, Any]:
        """Send one line; read its progress lines and its one reply (checked well-formed)."""

        async def talk() -> list[dict[str, Any]]:
            self.writer.write(line)
            await self.writer.drain()
            lines = []
            while True:
                raw = await self.reader.readline()
                assert raw.endswith(b"\n"), f"connection closed after {lines}"
                msg = json.loads(raw)
                assert isinstance(msg, dict) and msg.get("id") == req_id, (req_id, msg)
                lines.append(msg)
                if "progress" not in msg:
                    return lines

        *progress, reply = self.world.drive(talk(), within=600)
        assert all(set(p) == {"id", "progress"} and isinstance(p["progress"], dict) for p in progress)
        assert isinstance(reply.get("ok"), bool), reply
        if reply["ok"]:
            assert set(reply) == {"id", "ok", "result"}, reply
        else:
            assert set(reply) == {"id", "ok", "error"}, reply
            error = reply["error"]
            assert isinstance(error, dict) and set(error) == {"type", "message"}, reply
            assert isinstance(error["type"], str) and isinstance(error["message"], str) and error["message"]
            assert error["type"] != "InternalError", reply
        return reply

    def request(self, cmd: str, args: dict[str, Any], *, valid: bool) -> Any:
        self.next_id += 1
        line = encode_line({"id": self.next_id, "cmd": cmd, "args": args})
        reply = self._exchange(line, self.next_id)
        assert reply["ok"] is valid, (cmd, args, reply)
        return reply.get("result")

    # -- valid and invalid commands -------------------------------------------------------------

    @rule(timeout=st.none() | st.sampled_from([0.001, 0.5, 30, 120.5]))
    def up_office(self, timeout: float | None) -> None:
        args: dict[str, Any] = {"name": "office"} | ({} if timeout is None else {"timeout": timeout})
        result = self.request("up", args, valid=True)
        assert isinstance(result, dict) and isinstance(result.get("sa_id"), int), result
        if timeout is None or timeout >= 30:
            assert result["ok"] is True, result  # the gateway is there: it comes up in time
        self.up = True

    @rule(name=OTHER_NAMES)
    def up_unknown(self, name: str) -> None:
        self.request("up", {"name": name}, valid=False)

    @rule(timeout=BAD_TIMEOUTS)
    def up_bad_timeout(self, timeout: object) -> None:
        self.request("up", {"name": "office", "timeout": timeout}, valid=False)

    @rule()
    def down_office(self) -> None:
        result = self.request("down", {"name": "office"}, valid=True)
        assert isinstance(result, dict) and isinstance(result["closed"], list)
        assert len(result["closed"]) == (1 if self.up else 0), result
        self.up = False

    @rule()
    def terminate(self) -> None:
        """``down`` of the SA id that ``status`` shows (an unknown id when there is none)."""
        ids = [sa.sa_id for sa in self.client.sas()]
        sa_id = ids[0] if ids else 4242
        result = self.request("down", {"sa_id": sa_id}, valid=bool(ids))
        if ids:
            assert result == {"closed": [sa_id]}, result
            self.up = False

    @rule(
        args=st.sampled_from(
            [{}, {"sa_id": True}, {"sa_id": 0}, {"sa_id": "1"}, {"name": "office", "sa_id": 1}, {"name": ""}]
        )
    )
    def down_bad(self, args: dict[str, Any]) -> None:
        self.request("down", args, valid=False)

    @rule(name=OTHER_NAMES)
    def down_unknown(self, name: str) -> None:
        self.request("down", {"name": name}, valid=False)

    @rule(kind=st.sampled_from([{}, {"ike": True}, {"reauth": True}, {"ike": False, "reauth": False}]))
    def rekey(self, kind: dict[str, bool]) -> None:
        result = self.request("rekey", {"name": "office", **kind}, valid=self.up)
        if self.up:
            assert isinstance(result, dict) and len(result) == 1, result

    @rule(
        args=st.sampled_from([{"name": "office", "ike": True, "reauth": True}, {"name": "office", "ike": 1}])
    )
    def rekey_bad(self, args: dict[str, Any]) -> None:
        self.request("rekey", args, valid=False)

    @rule()
    def status(self) -> None:
        result = self.request("status", {}, valid=True)
        assert isinstance(result, dict)
        established = [sa for sa in result["ike_sas"] if sa["state"] == "ESTABLISHED"]
        assert len(established) <= 1 and (not established or self.up), result["ike_sas"]

    @rule(cmd=st.sampled_from(["connections", "stats"]))
    def queries(self, cmd: str) -> None:
        result = self.request(cmd, {}, valid=True)
        if cmd == "connections":
            assert result == {"connections": ["office"]}

    @rule(
        cmd=st.sampled_from(sorted(ALLOWED)),
        args=st.dictionaries(st.text(max_size=6), JSON, min_size=1, max_size=3),
    )
    def unknown_keys(self, cmd: str, args: dict[str, Any]) -> None:
        """Any arguments with a key the command does not take are refused, whatever else."""
        if set(args) <= ALLOWED[cmd]:
            args = {**args, "force": True}
        self.request(cmd, args, valid=False)

    @rule(cmd=st.text(max_size=8).filter(lambda c: c not in ALLOWED))
    def unknown_command(self, cmd: str) -> None:
        self.request(cmd, {}, valid=False)

    @rule(
        line=st.sampled_from([b"nonsense\n", b"[1, 2]\n", b'{"id": 7}\n', b"{" * 100 + b"\n", b"\xff\xfe\n"])
        | st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"") + b"\n")
    )
    def garbage(self, line: bytes) -> None:
        try:
            req = json.loads(line)
        except ValueError:
            req = None
        req_id = req.get("id") if isinstance(req, dict) else None
        if isinstance(req, dict) and isinstance(req.get("cmd"), str) and req["cmd"] in ALLOWED:
            return  # (a real request, by chance)
        reply = self._exchange(line, req_id)
        assert reply["ok"] is False, reply

    # -- the daemons agree with the model ------------------------------------------------------

    @invariant()
    def sas_agree_with_the_model(self) -> None:
        self.world.run_for(60)  # rekeys, reauthentications and Deletes finish
        want = 1 if self.up else 0
        client = [sa for sa in self.client.sas() if sa.connection == "office" and sa.established]
        gateway = [sa for sa in self.gw.sas() if sa.connection == "office" and sa.established]
        assert len(client) == len(gateway) == want, (self.up, client, gateway)
        assert [(sa.spi_i, sa.spi_r) for sa in client] == [(sa.spi_i, sa.spi_r) for sa in gateway]
        assert len(self.client.sas()) == len(self.gw.sas()) == want  # nothing half-way either


TestControlModel = ControlMachine.TestCase
TestControlModel.settings = settings(
    max_examples=int(os.environ.get("PYIPSEC_STATEFUL_EXAMPLES", "80")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR")
