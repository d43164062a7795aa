"""The load generator (``bench/loadgen.py``): its scheduling, its statistics, and its bookkeeping
of a real engine's events, against a real pyipsec gateway engine in memory (no sockets, no root).

The root-tier cross-check against real strongSwan clients is tests/integration/test_loadgen.py.
"""

from __future__ import annotations

from collections import deque
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
from bench.loadgen import (
    Arrivals,
    Client,
    LoadGen,
    client_config,
    client_names,
    percentile,
    psk_of,
    source_addresses,
    summarize,
)

from pyipsec.config.load import parse_config
from pyipsec.daemon.build import build_engine, build_engine_config
from pyipsec.ike.engine import IkeEngine
from pyipsec.net.addr import Datagram, Endpoint

GW_PSK, GW_EAP = "192.0.2.1", "192.0.2.3"
LAN = "10.1.2.0/24"
POOL = "10.234.0.0/24"

# -- scheduling -----------------------------------------------------------------------------------


def test_arrivals_follow_the_rate() -> None:
    a = Arrivals(5, rate=10.0, concurrency=100, t0=100.0)
    assert a.ready(100.0, 0) == [0]
    assert a.ready(100.05, 1) == []
    assert a.next_due() == pytest.approx(100.1)
    assert a.ready(100.25, 1) == [1, 2]  # late ticks catch up, in order
    assert a.ready(101.0, 0) == [3, 4]
    assert a.done and a.next_due() is None


def test_arrivals_respect_the_concurrency_cap() -> None:
    a = Arrivals(10, rate=1000.0, concurrency=3, t0=0.0)
    assert a.ready(1.0, 0) == [0, 1, 2]  # all ten are due, three may set up at once
    assert a.ready(1.0, 3) == []
    assert a.ready(1.1, 2) == [3]
    assert not a.done


@pytest.mark.parametrize(("count", "rate", "conc"), [(-1, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)])
def test_arrivals_refuse_nonsense(count: int, rate: float, conc: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        Arrivals(count, rate, conc, 0.0)


def test_names_and_sources() -> None:
    assert client_names(3) == ["user0001", "user0002", "user0003"]
    assert source_addresses("10.98.0.253", 4) == ["10.98.0.253", "10.98.0.254", "10.98.1.1", "10.98.1.2"]


# -- statistics -----------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([], 0.5) is None


def _client(i: int, started: float | None, installed: float | None, failure: str | None = None) -> Client:
    c = Client(i, f"user{i:04d}", "psk" if i % 2 else "eap", f"10.98.0.{i + 1}", due=float(i))
    c.started, c.installed, c.failure = started, installed, failure
    return c


def test_summary_counts_setups_failures_and_the_sustained_rate() -> None:
    clients = [_client(i, float(i), float(i) + 0.1 * (i + 1)) for i in range(4)]
    clients.append(_client(4, 4.0, None, "failed: AUTHENTICATION_FAILED"))
    clients.append(_client(5, 5.5, None, "failed: AUTHENTICATION_FAILED"))
    clients[1].lost = "timeout: DPD"
    s = summarize(clients, label="x")
    assert (s["clients"], s["started"], s["established"], s["failed"], s["lost"]) == (6, 6, 4, 2, 1)
    assert s["failures"] == {"failed: AUTHENTICATION_FAILED": 2}
    assert s["setup_ms"]["p50"] == pytest.approx(200.0)
    assert s["setup_ms"]["max"] == pytest.approx(400.0)
    # 4 established between the first start (0.0) and the last installation (3.4)
    assert s["setups_per_s"] == pytest.approx(4 / 3.4, abs=0.01)
    assert s["start_late_ms_max"] == pytest.approx(500.0)


# -- against a real gateway engine, in memory -------------------------------------------------------


def _gateway(tmp_path: Path, users: list[str]) -> IkeEngine:
    cfg = {
        "settings": {"users": str(tmp_path / "users.db")},
        "connections": {
            "psk": {
                "local_addrs": [GW_PSK],
                "proposals": ["aes256gcm16-prfsha256-ecp256"],
                "pools": ["rw"],
                "mobike": False,
                "local": {"auth": "psk", "id": "vpn.pyipsec.test"},
                "remote": {"auth": "psk"},
                "children": {"net": {"local_ts": [LAN], "esp_proposals": ["aes256gcm16"]}},
            }
        },
        "pools": {"rw": {"addrs": POOL}},
        "secrets": {f"ike-{u}": {"id": [u], "secret": psk_of(u)} for u in users},
    }
    engine, _store = build_engine(parse_config(cfg))
    return engine


class Net:
    """The load generator's engine and a gateway engine, datagrams carried in memory."""

    def __init__(self, gen: LoadGen, gw: IkeEngine) -> None:
        self.gen, self.gw = gen, gw
        self.wire: deque[Datagram] = deque()
        self.now = 0.0

    def send(self, dgrams: list[Datagram]) -> None:
        self.wire.extend(dgrams)

    def run(self) -> None:
        while self.wire:
            sent = self.wire.popleft()
            d = Datagram(sent.remote, sent.local, sent.payload)  # as the receiver sees it
            if str(d.local.ip) in (GW_PSK, GW_EAP):
                self.wire.extend(self.gw.receive_datagram(d, self.now).datagrams)
            else:
                self.send(self.gen.apply(self.gen.engine.receive_datagram(d, self.now), self.now))


def _loadgen(clients: list[Client], psk: dict[str, str] | None = None) -> LoadGen:
    raw: dict[str, Any] = client_config(clients, gateway_psk=GW_PSK, gateway_eap=GW_EAP, ca=None, lan=LAN)
    for name, key in (psk or {}).items():
        raw["secrets"][f"ike-{name}"]["secret"] = key
    engine_cfg, creds = build_engine_config(parse_config(raw))
    gws = {"psk": Endpoint(ip_address(GW_PSK), 500), "eap": Endpoint(ip_address(GW_EAP), 500)}
    return LoadGen(IkeEngine(engine_cfg, creds), clients, gws)


def test_clients_set_up_from_their_own_addresses_and_get_virtual_ips(tmp_path: Path) -> None:
    names = client_names(4)
    clients = [
        Client(i, n, "psk", s)
        for i, (n, s) in enumerate(zip(names, source_addresses("10.98.0.1", 4), strict=True))
    ]
    gen = _loadgen(clients, psk={"user0004": "a-wrong-key-for-user0004-0123"})
    gw = _gateway(tmp_path, names)
    net = Net(gen, gw)
    for k, c in enumerate(clients):
        net.now = k * 0.02
        net.send(gen.start(c, net.now))
        assert gen.in_setup == 1
        net.run()
    ok, bad = clients[:3], clients[3]
    assert all(c.installed is not None and c.failure is None for c in ok)
    assert bad.installed is None and bad.failure is not None and "AUTHENTICATION_FAILED" in bad.failure
    assert gen.in_setup == 0
    vips = {c.vip for c in ok}
    assert len(vips) == 3 and all(v is not None and ip_address(v) in ip_network(POOL) for v in vips)
    peers = {str(sa.remote.ip) for sa in gw.sas() if sa.state.name == "ESTABLISHED"}
    assert peers == {c.source for c in ok}  # one source address per client, as the gateway sees it
    s = summarize(clients)
    assert (s["established"], s["failed"], s["vips_distinct"]) == (3, 1, 3)


def test_an_sa_the_gateway_deletes_during_the_hold_makes_its_client_lost(tmp_path: Path) -> None:
    names = client_names(2)
    clients = [
        Client(i, n, "psk", s)
        for i, (n, s) in enumerate(zip(names, source_addresses("10.98.0.1", 2), strict=True))
    ]
    gen = _loadgen(clients)
    gw = _gateway(tmp_path, names)
    net = Net(gen, gw)
    for c in clients:
        net.send(gen.start(c, net.now))
        net.run()
    gen.holding = True
    victim = next(sa for sa in gw.sas() if str(sa.remote.ip) == clients[0].source)
    net.now = 1.0
    net.send(list(gw.terminate(victim.sa_id, net.now).datagrams))
    net.run()
    assert clients[0].lost is not None and clients[0].lost.startswith("peer")
    assert clients[1].lost is None
    net.send(gen.terminate_all(net.now))
    net.run()
    assert clients[1].deleted == net.now and not gen.by_sa
    assert not [sa for sa in gw.sas() if sa.state.name == "ESTABLISHED"]
