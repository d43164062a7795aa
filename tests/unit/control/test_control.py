"""The control API against hostile or sloppy clients: limits before parsing, strict arguments,
every problem answered as an error reply (never a traceback, never a silent hang-up)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyipsec.control.protocol import MAX_DEPTH, MAX_LINE, JsonValue, decode_line, encode_line
from pyipsec.control.schema import SCHEMAS, BadRequest, DownArgs, RekeyArgs, UpArgs, parse_args
from pyipsec.control.server import ControlServer, Progress
from pyipsec.errors import PyIpsecError
from tests.support.daemons import I_ADDR, World, psk_configs

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ARG_KEYS = st.sampled_from(["name", "sa_id", "timeout", "ike", "reauth", "x"]) | st.text(max_size=6)
ARGS = st.dictionaries(ARG_KEYS, JSON, max_size=4)


# -- decoding -----------------------------------------------------------------------------------


def test_deep_nesting_is_refused_before_parsing() -> None:
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_DEPTH}"):
        decode_line(b"[" * 100_000)
    with pytest.raises(ValueError, match="nested deeper"):
        decode_line(b'{"args": ' + b'{"a": ' * 40 + b"1" + b"}" * 41)
    # brackets inside strings do not count
    assert decode_line(json.dumps({"cmd": "[" * 1000 + '\\"{'}).encode())["cmd"] == "[" * 1000 + '\\"{'


def test_a_line_is_a_json_object() -> None:
    for line in (b"[]", b"1", b'"x"', b"{", b"\xff"):
        with pytest.raises(ValueError):
            decode_line(line)


# -- arguments ----------------------------------------------------------------------------------


def test_booleans_are_not_numbers_and_unknown_keys_are_errors() -> None:
    with pytest.raises(BadRequest, match=r"args\.sa_id"):
        parse_args("down", {"sa_id": True})
    with pytest.raises(BadRequest, match=r"args\.timeout"):
        parse_args("up", {"name": "office", "timeout": "5"})
    with pytest.raises(BadRequest, match=r"args\.force"):
        parse_args("down", {"name": "office", "force": True})
    with pytest.raises(BadRequest, match="exactly one of name and sa_id"):
        parse_args("down", {})
    with pytest.raises(BadRequest, match="unknown command 'reboot'"):
        parse_args("reboot", {})
    assert parse_args("down", {"sa_id": 3}) == DownArgs(sa_id=3)
    assert parse_args("up", {"name": "office", "timeout": 5}) == UpArgs(name="office", timeout=5.0)
    assert parse_args("rekey", {"name": "office", "ike": True}) == RekeyArgs(name="office", ike=True)
    with pytest.raises(BadRequest):
        parse_args("up", {"name": "office", "timeout": float("nan")})


@given(cmd=st.sampled_from(sorted(SCHEMAS)) | st.text(max_size=6), args=ARGS)
def test_any_json_arguments_give_a_model_or_bad_request(cmd: str, args: dict[str, Any]) -> None:
    try:
        parsed = parse_args(cmd, args)
    except BadRequest as exc:
        assert str(exc)
    else:
        assert isinstance(parsed, SCHEMAS[cmd])


# -- the commands of a running daemon -----------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmd=st.sampled_from(sorted(SCHEMAS)), args=ARGS)
def test_commands_answer_any_arguments_with_a_result_or_an_error(
    world: World, tmp_path: Path, cmd: str, args: dict[str, Any]
) -> None:
    if not world.nodes:
        client_cfg, _ = psk_configs(tmp_path)
        world.node(client_cfg, I_ADDR)
    node = world.nodes[0]
    try:
        result = world.command(node, cmd, args, within=60)
    except PyIpsecError:
        return
    json.dumps(result)  # a result is JSON


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = World(tmp_path)
    yield w
    w.close()


# -- the socket ---------------------------------------------------------------------------------


async def _talk(path: Path, lines: list[bytes]) -> list[dict[str, JsonValue]]:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_LINE)
    replies = []
    try:
        for line in lines:
            try:
                writer.write(line)
                await writer.drain()
            except ConnectionError:  # the server hung up after its last answer
                break
            reply = await reader.readline()
            if not reply:
                break
            replies.append(json.loads(reply))
    finally:
        writer.close()
    return replies


def test_the_server_answers_every_bad_request_and_keeps_serving(tmp_path: Path) -> None:
    async def handler(cmd: str, args: dict[str, JsonValue], progress: Progress) -> JsonValue:
        parse_args(cmd, args)
        return {"ran": cmd}

    async def main() -> tuple[list[dict[str, JsonValue]], list[dict[str, JsonValue]]]:
        server = ControlServer(tmp_path / "control.sock", handler)
        await server.start()
        try:
            first = await _talk(
                server.path,
                [
                    b"[" * 100_000 + b"\n",
                    encode_line({"id": 1, "cmd": "down", "args": {"sa_id": True}}),
                    b"not json\n",
                    encode_line({"id": 2, "cmd": "status", "args": {}}),
                ],
            )
            too_long = await _talk(server.path, [b'{"cmd": "' + b"x" * (MAX_LINE + 10) + b'"}\n', b"{}\n"])
            return first, too_long
        finally:
            await server.close()

    first, too_long = asyncio.run(main())
    assert [r["ok"] for r in first] == [False, False, False, True]
    assert "nested deeper" in str(first[0]["error"])
    assert first[1]["id"] == 1 and "args.sa_id" in str(first[1]["error"])
    assert first[3] == {"id": 2, "ok": True, "result": {"ran": "status"}}
    assert len(too_long) == 1 and "longer than" in str(too_long[0]["error"])
