"""Parts of ``daemon.redirect``: the load file, the event loop's resolver, gateway names."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pyipsec.daemon import redirect
from pyipsec.daemon.redirect import FileLoad, check_gateway
from pyipsec.errors import UsageError


def test_the_load_file_gives_counts_and_survives_bad_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "load.json"
    f.write_text(json.dumps({"192.0.2.2": 4, "gw3": True, "gw4": "7", "gw5": 0}))
    assert FileLoad(f).gateway_load() == {"192.0.2.2": 4, "gw5": 0}  # booleans and strings ignored
    f.write_text("[1, 2]")
    assert FileLoad(f).gateway_load() == {}
    f.write_text("{not json")
    assert FileLoad(f).gateway_load() == {}
    assert FileLoad(tmp_path / "missing.json").gateway_load() == {}
    assert sum("redirect load_file" in r.getMessage() for r in caplog.records) == 3


def test_names_resolve_on_the_running_loop() -> None:
    got: list[str | None] = []

    async def main() -> None:
        redirect._loop_resolver("localhost", got.append)
        for _ in range(200):
            if got:
                return
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert got in (["127.0.0.1"], ["::1"])
    outside: list[str | None] = []
    redirect._loop_resolver("localhost", outside.append)  # no loop running: cannot wait here
    assert outside == [None]


@pytest.mark.parametrize("good", ["192.0.2.3", "2001:db8::1", "vpn2.example.org", "gw-2", "vpn.example.org."])
def test_gateway_names_accepted(good: str) -> None:
    assert check_gateway(good) == good


@pytest.mark.parametrize("bad", ["", "not a name", "-gw", "a..b", "é.example", "x" * 64 + ".org"])
def test_gateway_names_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="bad gateway"):
        check_gateway(bad)
