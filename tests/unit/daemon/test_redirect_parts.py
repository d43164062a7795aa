"""Parts of ``daemon.redirect``: the load file, the event loop's resolver, gateway names."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pyipsec.daemon import redirect
from pyipsec.daemon.redirect import FileLoad, Redirects, StoreLoad, check_gateway
from pyipsec.daemon.sharedstore import SharedStore
from pyipsec.errors import UsageError
from pyipsec.net.addr import Endpoint
from pyipsec.store.base import StoreUnavailable
from tests.support.daemons import GW_ADDR, World, psk_configs


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


class _Postgres:
    """The part of PostgresStore that SharedStore and the redirect policy use."""

    gateway_id = "gw1.example.org"

    def __init__(self) -> None:
        self.loads: dict[str, int] | None = {"gw1.example.org": 3, "gw2.example.org": 1}
        self.asked = 0

    def gateway_load(self, now: float) -> dict[str, int]:
        self.asked += 1
        if self.loads is None:
            raise StoreUnavailable("connection refused")
        return dict(self.loads)

    def close(self) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def test_store_figures_are_fetched_in_the_background_and_never_waited_for() -> None:
    pg = _Postgres()
    shared = SharedStore(pg)  # type: ignore[arg-type]
    clock = _Clock()
    load = StoreLoad(shared.gateway_load, clock, every=5.0)  # type: ignore[arg-type]
    seen: list[dict[str, int]] = []

    async def main() -> None:
        async def settle() -> None:
            for _ in range(100):
                await asyncio.sleep(0.01)
                if load._task is None:
                    return

        seen.append(dict(load.gateway_load()))  # nothing yet: the query has only started
        await settle()
        seen.append(dict(load.gateway_load()))  # the answer, without a new query
        clock.t = 4.0
        seen.append(dict(load.gateway_load()))
        await settle()
        pg.loads = None  # the database goes down
        clock.t = 6.0
        load.gateway_load()
        await settle()
        seen.append(dict(load.gateway_load()))

    try:
        asyncio.run(main())
    finally:
        shared.close()
    figures = {"gw1.example.org": 3, "gw2.example.org": 1}
    assert seen == [{}, figures, figures, {}]
    assert pg.asked == 2  # at t=0 and t=6, not at t=4


def test_a_gateway_with_a_shared_store_uses_its_figures_and_its_id(world: World, tmp_path: Path) -> None:
    rule = {"rule": "least-loaded", "gateways": ["gw1.example.org", "gw2.example.org"]}
    _client_cfg, gw_cfg = psk_configs(tmp_path, gateway={"settings": {"redirect": rule}})
    gw = world.node(gw_cfg, GW_ADDR)
    shared = SharedStore(_Postgres())  # type: ignore[arg-type]
    try:
        gw.runtime.store = shared
        r = Redirects(gw.runtime)
        assert isinstance(r.load, StoreLoad) and r.store_id == "gw1.example.org"
        here, peer = Endpoint.parse(GW_ADDR, 500), Endpoint.parse("192.0.2.1", 500)
        r.load.figures = {"gw1.example.org": 3, "gw2.example.org": 1}  # as last fetched
        assert r.init_target(here, peer) == "gw2.example.org"  # 1 < 3: the other one
        r.load.figures = {"gw1.example.org": 1, "gw2.example.org": 1}
        assert r.init_target(here, peer) is None  # a tie stays here
        r.load.figures = {}  # the store is down: nobody is sent away by load
        assert r.init_target(here, peer) is None
    finally:
        shared.close()
        gw.runtime.store = None
